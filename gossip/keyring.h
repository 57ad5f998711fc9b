#pragma once
// The cluster keyring: every gossip datagram and stream message is sealed
// with libsodium's XChaCha20-Poly1305 (IETF) AEAD, with the cluster name as
// associated data, so a packet from another cluster or from a node without a
// key neither decrypts nor authenticates, and cannot be replayed into a
// cluster of another name.
//
//   +--------+------------------------+----------------------------+----------+
//   | 0xE1   | nonce (24 bytes)       | ciphertext (plaintext len) | tag (16) |
//   +--------+------------------------+----------------------------+----------+
//    envelope version 1: 41 bytes of overhead per packet
//
// One key is the primary (it seals); the others are secondaries (they only
// open). Rotation without a flag day: install the new key as a secondary on
// every node, make it the primary on every node, then remove the old one
// everywhere. At each step every node can open what any other node seals.
// Opening tries the primary first, then the secondaries.
//
// Nonces are 16 random bytes drawn once per keyring followed by a 64-bit
// counter: unique without a system call per packet. A keyring is therefore
// move-only — a copy would repeat its twin's nonces. The nonce sequence is
// the ring's, not a key's, so sealing under a secondary as well
// (seal_also) draws from the same sequence: no nonce is used twice under
// any key.
//
// Keys are named by their id: the first 8 bytes of a BLAKE2b hash of the
// key, under a label of mixlb's own. An id tells keys apart in listings and
// requests without revealing anything about the key.
#include <array>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "codec.h"

namespace mixlb::gossip {

// A key and a key's id, of the sizes the wire format carries (codec.h).
constexpr std::size_t kKeySize = kKeyBytes;
constexpr std::size_t kKeyIdSize = kKeyIdBytes;
// The most keys a ring holds: a rotation needs two, and a key request's
// answer lists every key of the member in one datagram.
constexpr std::size_t kMaxKeys = 16;
constexpr std::uint8_t kEnvelopeVersion = 0xE1;
constexpr std::size_t kNonceSize = 24;
constexpr std::size_t kTagSize = 16;
constexpr std::size_t kEnvelopeOverhead = 1 + kNonceSize + kTagSize;

using Key = std::array<std::uint8_t, kKeySize>;
using KeyId = std::array<std::uint8_t, kKeyIdSize>;

// Initialises libsodium once per process; safe to call from any thread.
// Throws std::runtime_error when libsodium cannot initialise.
void ensure_sodium();

// A fresh random key.
Key generate_key();

// A key from 64 hex digits; nullopt-like error kBadValue otherwise.
std::expected<Key, std::error_code> parse_key(std::string_view hex);
std::string key_to_hex(const Key& key);

// The key's id (see above), and its 16 hex digits.
KeyId key_id(const Key& key);
std::string key_id_to_hex(const KeyId& id);

class Keyring {
 public:
  Keyring(std::string cluster_name, const Key& primary);
  Keyring(Keyring&&) noexcept = default;
  Keyring& operator=(Keyring&&) noexcept = default;
  Keyring(const Keyring&) = delete;
  Keyring& operator=(const Keyring&) = delete;
  ~Keyring();

  // Installs a secondary key (accepted for opening). Adding an installed key
  // is a no-op; kKeyringFull when the ring holds kMaxKeys keys already.
  std::error_code add(const Key& key);
  // Makes an installed key the primary; the old primary stays a secondary.
  std::error_code use(const Key& key);
  // Removes a secondary key; the primary cannot be removed.
  std::error_code remove(const Key& key);

  const Key& primary() const { return keys_.front(); }
  // All installed keys, the primary first.
  std::span<const Key> keys() const { return keys_; }
  // The installed key with this id; nullptr when there is none.
  const Key* find(const KeyId& id) const;
  const std::string& cluster_name() const { return cluster_name_; }

  Bytes seal(ByteView plaintext);
  // The plaintext sealed under the primary and, when it is installed and
  // is not the primary, under the key with id `also` as well (the
  // primary's envelope first): for messages that must reach members that
  // have not switched to our primary (key management, swim.h).
  std::vector<Bytes> seal_also(ByteView plaintext, const KeyId& also);
  // The plaintext sealed under each installed key but the one with id
  // `skip` (if any), the primary's envelope first: for a message that must
  // reach a member whichever of our keys it shares with us.
  std::vector<Bytes> seal_each(ByteView plaintext, const std::optional<KeyId>& skip);
  // kNotEncrypted when the bytes are not an envelope, kTruncated when too
  // short for one, kNoKeyAuthenticates when no installed key opens them.
  std::expected<Bytes, std::error_code> open(ByteView envelope) const;

 private:
  std::string cluster_name_;
  std::vector<Key> keys_;  // keys_[0] is the primary
  Bytes seal_with(const Key& key, ByteView plaintext);

  std::array<std::uint8_t, 16> nonce_prefix_{};
  std::uint64_t nonce_counter_ = 0;
};

}  // namespace mixlb::gossip
