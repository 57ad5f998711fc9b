// libsodium calls of the keyring. Keys are wiped from memory when a key is
// removed and when the keyring goes.
#include "keyring.h"

#include <sodium.h>

#include <algorithm>
#include <mutex>
#include <stdexcept>

#include "error.h"

namespace mixlb::gossip {
namespace {

static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == kKeySize);
static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == kNonceSize);
static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == kTagSize);

// Associated data: the envelope version and the cluster name, so a change of
// either makes every packet fail authentication rather than be misread.
Bytes associated_data(std::string_view cluster_name) {
  Bytes ad;
  ad.reserve(1 + cluster_name.size());
  ad.push_back(kEnvelopeVersion);
  ad.insert(ad.end(), cluster_name.begin(), cluster_name.end());
  return ad;
}

std::string to_hex(ByteView bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes.size());
  for (auto byte : bytes) {
    out.push_back(kDigits[byte >> 4]);
    out.push_back(kDigits[byte & 15]);
  }
  return out;
}

}  // namespace

void ensure_sodium() {
  static std::once_flag once;
  static int result = 0;
  std::call_once(once, [] { result = sodium_init(); });
  if (result < 0) throw std::runtime_error("libsodium failed to initialise");
}

Key generate_key() {
  ensure_sodium();
  Key key;
  crypto_aead_xchacha20poly1305_ietf_keygen(key.data());
  return key;
}

std::expected<Key, std::error_code> parse_key(std::string_view hex) {
  if (hex.size() != 2 * kKeySize) return std::unexpected(make_error_code(Errc::kBadValue));
  Key key;
  for (std::size_t i = 0; i < kKeySize; ++i) {
    auto digit = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    const int hi = digit(hex[2 * i]);
    const int lo = digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::unexpected(make_error_code(Errc::kBadValue));
    key[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return key;
}

std::string key_to_hex(const Key& key) { return to_hex(key); }

KeyId key_id(const Key& key) {
  ensure_sodium();
  // A label of our own ahead of the key, so the id is no hash anyone else
  // computes over the same key.
  static constexpr std::string_view kLabel = "mixlb gossip key id v1";
  crypto_generichash_state state;
  crypto_generichash_init(&state, nullptr, 0, crypto_generichash_BYTES_MIN);
  crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(kLabel.data()),
                            kLabel.size());
  crypto_generichash_update(&state, key.data(), key.size());
  std::array<std::uint8_t, crypto_generichash_BYTES_MIN> hash{};
  crypto_generichash_final(&state, hash.data(), hash.size());
  sodium_memzero(&state, sizeof state);
  KeyId id{};
  std::copy_n(hash.begin(), id.size(), id.begin());
  return id;
}

std::string key_id_to_hex(const KeyId& id) { return to_hex(id); }

Keyring::Keyring(std::string cluster_name, const Key& primary)
    : cluster_name_(std::move(cluster_name)), keys_{primary} {
  ensure_sodium();
  randombytes_buf(nonce_prefix_.data(), nonce_prefix_.size());
}

Keyring::~Keyring() {
  for (auto& key : keys_) sodium_memzero(key.data(), key.size());
}

std::error_code Keyring::add(const Key& key) {
  if (std::find(keys_.begin(), keys_.end(), key) != keys_.end()) return {};
  if (keys_.size() >= kMaxKeys) return Errc::kKeyringFull;
  keys_.push_back(key);
  return {};
}

std::error_code Keyring::use(const Key& key) {
  auto it = std::find(keys_.begin(), keys_.end(), key);
  if (it == keys_.end()) return Errc::kKeyNotInstalled;
  std::rotate(keys_.begin(), it, it + 1);
  return {};
}

std::error_code Keyring::remove(const Key& key) {
  auto it = std::find(keys_.begin(), keys_.end(), key);
  if (it == keys_.end()) return Errc::kKeyNotInstalled;
  if (it == keys_.begin()) return Errc::kKeyIsPrimary;
  sodium_memzero(it->data(), it->size());
  keys_.erase(it);
  return {};
}

const Key* Keyring::find(const KeyId& id) const {
  for (const auto& key : keys_) {
    if (key_id(key) == id) return &key;
  }
  return nullptr;
}

Bytes Keyring::seal(ByteView plaintext) { return seal_with(keys_.front(), plaintext); }

std::vector<Bytes> Keyring::seal_also(ByteView plaintext, const KeyId& also) {
  std::vector<Bytes> out;
  out.push_back(seal_with(keys_.front(), plaintext));
  if (const Key* other = find(also); other != nullptr && other != &keys_.front()) {
    out.push_back(seal_with(*other, plaintext));
  }
  return out;
}

std::vector<Bytes> Keyring::seal_each(ByteView plaintext, const std::optional<KeyId>& skip) {
  std::vector<Bytes> out;
  for (const auto& key : keys_) {
    if (!skip || key_id(key) != *skip) out.push_back(seal_with(key, plaintext));
  }
  return out;
}

Bytes Keyring::seal_with(const Key& key, ByteView plaintext) {
  Bytes out(kEnvelopeOverhead + plaintext.size());
  out[0] = kEnvelopeVersion;
  std::uint8_t* nonce = out.data() + 1;
  std::copy(nonce_prefix_.begin(), nonce_prefix_.end(), nonce);
  const std::uint64_t counter = nonce_counter_++;
  for (int i = 0; i < 8; ++i) nonce[16 + i] = static_cast<std::uint8_t>(counter >> (56 - 8 * i));
  const Bytes ad = associated_data(cluster_name_);
  unsigned long long written = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out.data() + 1 + kNonceSize, &written,
                                             plaintext.data(), plaintext.size(), ad.data(),
                                             ad.size(), nullptr, nonce, key.data());
  out.resize(1 + kNonceSize + written);
  return out;
}

std::expected<Bytes, std::error_code> Keyring::open(ByteView envelope) const {
  if (envelope.empty() || envelope[0] != kEnvelopeVersion) {
    return std::unexpected(make_error_code(Errc::kNotEncrypted));
  }
  if (envelope.size() < kEnvelopeOverhead) {
    return std::unexpected(make_error_code(Errc::kTruncated));
  }
  const std::uint8_t* nonce = envelope.data() + 1;
  const std::uint8_t* cipher = nonce + kNonceSize;
  const std::size_t cipher_size = envelope.size() - 1 - kNonceSize;
  const Bytes ad = associated_data(cluster_name_);
  Bytes plain(cipher_size - kTagSize);
  for (const auto& key : keys_) {
    unsigned long long written = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain.data(), &written, nullptr, cipher,
                                                   cipher_size, ad.data(), ad.size(), nonce,
                                                   key.data()) == 0) {
      plain.resize(written);
      return plain;
    }
  }
  return std::unexpected(make_error_code(Errc::kNoKeyAuthenticates));
}

}  // namespace mixlb::gossip
