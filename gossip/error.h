#pragma once
// The gossip library's error codes, one std::error_category for all of them.
//
// Every fallible call in gossip/ answers with std::error_code (through
// std::expected where there is also a value), so the transport and the
// sidecar can test for a condition by value and still log a readable
// message. Decode failures carry more than a code — where in the packet they
// happened — and use DecodeError (codec.h), whose code is one of these.
#include <string>
#include <system_error>

namespace mixlb::gossip {

enum class Errc {
  kTruncated = 1,         // a field runs past the end of the bytes
  kBadVersion,            // unknown wire or envelope version
  kUnknownMessage,        // unknown message type
  kBadValue,              // a field holds a value the format does not allow
  kTrailingBytes,         // bytes left over after the last field
  kTooLarge,              // a message, name, metadata or payload over its bound
  kNotEncrypted,          // a plaintext packet reached a node with a keyring
  kUnexpectedEncryption,  // an encrypted packet reached a node without one
  kNoKeyAuthenticates,    // no installed key opens the packet
  kKeyNotInstalled,       // keyring: the key is not in the ring
  kKeyIsPrimary,          // keyring: the primary key cannot be removed
  kLeft,                  // the node has left the cluster
  kKeyringFull,           // keyring: it holds kMaxKeys keys already
  kNoKeyring,             // key management at a node that sends plaintext
  kBusy,                  // a key request of this node is still running
  kQueueFull,             // max_queued_events user events are waiting to be spread
};

const std::error_category& gossip_category() noexcept;

inline std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), gossip_category()};
}

}  // namespace mixlb::gossip

template <>
struct std::is_error_code_enum<mixlb::gossip::Errc> : std::true_type {};
