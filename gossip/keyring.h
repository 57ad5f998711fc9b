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
// move-only — a copy would repeat its twin's nonces.
#include <array>
#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "codec.h"

namespace mixlb::gossip {

constexpr std::size_t kKeySize = 32;
constexpr std::uint8_t kEnvelopeVersion = 0xE1;
constexpr std::size_t kNonceSize = 24;
constexpr std::size_t kTagSize = 16;
constexpr std::size_t kEnvelopeOverhead = 1 + kNonceSize + kTagSize;

using Key = std::array<std::uint8_t, kKeySize>;

// Initialises libsodium once per process; safe to call from any thread.
// Throws std::runtime_error when libsodium cannot initialise.
void ensure_sodium();

// A fresh random key.
Key generate_key();

// A key from 64 hex digits; nullopt-like error kBadValue otherwise.
std::expected<Key, std::error_code> parse_key(std::string_view hex);
std::string key_to_hex(const Key& key);

class Keyring {
 public:
  Keyring(std::string cluster_name, const Key& primary);
  Keyring(Keyring&&) noexcept = default;
  Keyring& operator=(Keyring&&) noexcept = default;
  Keyring(const Keyring&) = delete;
  Keyring& operator=(const Keyring&) = delete;
  ~Keyring();

  // Installs a secondary key (accepted for opening). Adding an installed key
  // is a no-op.
  void add(const Key& key);
  // Makes an installed key the primary; the old primary stays a secondary.
  std::error_code use(const Key& key);
  // Removes a secondary key; the primary cannot be removed.
  std::error_code remove(const Key& key);

  const Key& primary() const { return keys_.front(); }
  // All installed keys, the primary first.
  std::span<const Key> keys() const { return keys_; }
  const std::string& cluster_name() const { return cluster_name_; }

  Bytes seal(ByteView plaintext);
  // kNotEncrypted when the bytes are not an envelope, kTruncated when too
  // short for one, kNoKeyAuthenticates when no installed key opens them.
  std::expected<Bytes, std::error_code> open(ByteView envelope) const;

 private:
  std::string cluster_name_;
  std::vector<Key> keys_;  // keys_[0] is the primary
  std::array<std::uint8_t, 16> nonce_prefix_{};
  std::uint64_t nonce_counter_ = 0;
};

}  // namespace mixlb::gossip
