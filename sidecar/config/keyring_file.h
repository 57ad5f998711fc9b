#pragma once
// The cluster keyring file: the keys that seal and open gossip packets
// (gossip/keyring.h), one per line, kept outside the TOML configuration so
// the configuration can be shared and version-controlled while the keys stay
// secret. gossip.keyring in the configuration names the file; the daemon
// reads it at start-up, rewrites it whenever a key request changes this
// node's keyring (so a restart comes back with the keys the cluster uses
// now), and `mixlb keygen` makes a first one.
//
// Writing is atomic: the new contents go to a temporary file in the same
// directory (same file system, so the final rename cannot copy), which is
// flushed to disk before it takes the file's name, and the directory is
// flushed after. A crash leaves the old file or the new one, never a mix,
// and never a file without keys where a keyring was.
#include <expected>
#include <span>
#include <string>
#include <system_error>
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
// as line K", "PATH: no key in the keyring file", "PATH: 17 keys in the
// keyring file; a keyring holds at most 16" (gossip::kMaxKeys). No message
// quotes a line of the file: any line may be a key.
std::vector<gossip::Key> read_keyring_file(const std::string& path);

// The comment line a written keyring file starts with.
extern const char* const kKeyringFileHeader;

// Rewrites the keyring file at `path` with `keys`, the primary first, in the
// format read_keyring_file() reads, after kKeyringFileHeader; mode 0600,
// whatever the mode of the file it replaces. Errors carry the errno of the
// step that failed (invalid_argument when `keys` is empty); the temporary
// file is removed then and `path` is left as it was.
std::error_code write_keyring_file(const std::string& path, std::span<const gossip::Key> keys);

// `mixlb keygen`: writes a new keyring file at `path` holding one fresh
// key, mode 0400 (read_keyring_file accepts it; write_keyring_file replaces
// it with a 0600 file when the keys change). Never replaces anything:
// file_exists when `path` exists, whatever it is. Returns the key, for the
// caller to show its id (gossip::key_id), never the key itself.
std::expected<gossip::Key, std::error_code> generate_keyring_file(const std::string& path);

}  // namespace mixlb
