#pragma once
// The cluster keyring file: the keys that seal and open gossip packets
// (gossip/keyring.h), one per line, kept outside the TOML configuration so
// the configuration can be shared and version-controlled while the keys stay
// secret. gossip.keyring in the configuration names the file; the daemon
// reads it at start-up.
#include <string>
#include <vector>

#include "keyring.h"  // gossip/keyring.h

namespace mixlb {

// The cluster keyring file: one key per line as 64 hex digits; the first key
// is the primary (it seals), the rest are secondaries (accepted when opening)
// for rotation. Blank lines and lines starting with '#' are ignored;
// surrounding whitespace is trimmed.
//
// Throws ConfigError (config.h): "PATH: cannot open the keyring file: ...",
// "PATH: the keyring file is readable by others (mode 0644); chmod 600 it",
// "PATH:LINE: not a key (expected 64 hex digits)", "PATH:LINE: the same key
// as line K", "PATH: no key in the keyring file". No message quotes a line of
// the file: any line may be a key.
std::vector<gossip::Key> read_keyring_file(const std::string& path);

}  // namespace mixlb
