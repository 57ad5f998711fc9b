// The keyring: sealed packets open only with an installed key and the same
// cluster name, tampering is caught, rotation keeps every step mutually
// readable, the primary key cannot be removed, a ring holds at most kMaxKeys
// keys; keys named by id, and packets sealed under more than one key.
#include <doctest/doctest.h>

#include <optional>
#include <ostream>  // doctest prints std::error_code through it
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "error.h"
#include "keyring.h"

namespace mixlb::gossip {
namespace {

const Bytes kPlain{'p', 'i', 'n', 'g'};

TEST_CASE("a sealed packet opens with the same key and cluster name") {
  const Key key = generate_key();
  Keyring a("prod", key);
  Keyring b("prod", key);
  const Bytes sealed = a.seal(kPlain);
  CHECK(sealed.size() == kPlain.size() + kEnvelopeOverhead);
  CHECK(sealed[0] == kEnvelopeVersion);
  auto opened = b.open(sealed);
  REQUIRE(opened);
  CHECK(*opened == kPlain);
}

TEST_CASE("nonces never repeat within a keyring") {
  Keyring a("prod", generate_key());
  std::set<Bytes> nonces;
  for (int i = 0; i < 1000; ++i) {
    const Bytes sealed = a.seal(kPlain);
    nonces.emplace(sealed.begin() + 1, sealed.begin() + 1 + kNonceSize);
  }
  CHECK(nonces.size() == 1000);
}

TEST_CASE("a packet authenticates with no key: wrong key, other cluster, tampering") {
  const Key key = generate_key();
  Keyring sender("prod", key);
  const Bytes sealed = sender.seal(kPlain);
  SUBCASE("wrong key") {
    Keyring other("prod", generate_key());
    CHECK(other.open(sealed).error() == Errc::kNoKeyAuthenticates);
  }
  SUBCASE("same key, another cluster name") {
    Keyring other("staging", key);
    CHECK(other.open(sealed).error() == Errc::kNoKeyAuthenticates);
  }
  SUBCASE("every single flipped bit") {
    Keyring receiver("prod", key);
    for (std::size_t i = 1; i < sealed.size(); ++i) {
      Bytes tampered = sealed;
      tampered[i] ^= 0x10;
      CAPTURE(i);
      CHECK(receiver.open(tampered).error() == Errc::kNoKeyAuthenticates);
    }
  }
  SUBCASE("plaintext and short envelopes") {
    Keyring receiver("prod", key);
    CHECK(receiver.open(kPlain).error() == Errc::kNotEncrypted);
    CHECK(receiver.open(Bytes{kEnvelopeVersion, 1, 2}).error() == Errc::kTruncated);
    CHECK(receiver.open(Bytes{}).error() == Errc::kNotEncrypted);
  }
}

TEST_CASE("rotation: secondary everywhere, then primary, then the old key removed") {
  const Key old_key = generate_key();
  const Key new_key = generate_key();
  Keyring a("prod", old_key);
  Keyring b("prod", old_key);

  // Step 1: b accepts the new key before anyone uses it.
  REQUIRE_FALSE(b.add(new_key));
  CHECK(b.keys().size() == 2);
  CHECK(b.primary() == old_key);
  REQUIRE_FALSE(a.add(new_key));
  // Step 2: a seals with the new key; b (old primary) still opens it.
  REQUIRE_FALSE(a.use(new_key));
  CHECK(a.primary() == new_key);
  CHECK(b.open(a.seal(kPlain)));
  CHECK(a.open(b.seal(kPlain)));  // and a still opens b's old-key packets
  REQUIRE_FALSE(b.use(new_key));
  // Step 3: the old key goes; old-key packets no longer open.
  Keyring straggler("prod", old_key);
  REQUIRE_FALSE(a.remove(old_key));
  REQUIRE_FALSE(b.remove(old_key));
  CHECK(a.keys().size() == 1);
  CHECK(a.open(b.seal(kPlain)));
  CHECK(a.open(straggler.seal(kPlain)).error() == Errc::kNoKeyAuthenticates);
}

TEST_CASE("keyring operations that must fail") {
  const Key key = generate_key();
  Keyring ring("prod", key);
  CHECK(ring.remove(key) == Errc::kKeyIsPrimary);
  CHECK(ring.use(generate_key()) == Errc::kKeyNotInstalled);
  CHECK(ring.remove(generate_key()) == Errc::kKeyNotInstalled);
  CHECK_FALSE(ring.add(key));
  CHECK(ring.keys().size() == 1);
}

TEST_CASE("a ring holds at most kMaxKeys keys; adding one it holds is still fine") {
  Keyring ring("prod", generate_key());
  while (ring.keys().size() < kMaxKeys) REQUIRE_FALSE(ring.add(generate_key()));
  CHECK(ring.add(generate_key()) == Errc::kKeyringFull);
  CHECK(ring.keys().size() == kMaxKeys);
  CHECK_FALSE(ring.add(ring.keys().back()));
  // Room again after a removal.
  REQUIRE_FALSE(ring.remove(Key(ring.keys().back())));
  CHECK_FALSE(ring.add(generate_key()));
}

TEST_CASE("a key's id: 8 bytes, the same for the same key, found in the ring") {
  Key a{};
  a.fill(0x11);
  Key b = a;
  b[31] = 0x12;
  CHECK(key_id(a) == key_id(Key(a)));
  CHECK(key_id(a) != key_id(b));  // one bit apart
  CHECK(key_id_to_hex(key_id(a)).size() == 2 * kKeyIdSize);
  // The id is no prefix of the key (nor of its hex).
  CHECK(key_to_hex(a).find(key_id_to_hex(key_id(a))) == std::string::npos);
  Keyring ring("prod", a);
  REQUIRE_FALSE(ring.add(b));
  REQUIRE(ring.find(key_id(b)) != nullptr);
  CHECK(*ring.find(key_id(b)) == b);
  CHECK(ring.find(key_id(generate_key())) == nullptr);
}

TEST_CASE("sealing under more keys than the primary: seal_also and seal_each") {
  const Key k1 = generate_key(), k2 = generate_key(), k3 = generate_key();
  Keyring ring("prod", k1);
  REQUIRE_FALSE(ring.add(k2));
  REQUIRE_FALSE(ring.add(k3));
  // Which single key opens each envelope, in order.
  auto openers = [&](const std::vector<Bytes>& envelopes) {
    std::vector<Key> out;
    for (const auto& e : envelopes) {
      for (const Key& k : {k1, k2, k3}) {
        if (Keyring("prod", k).open(e)) out.push_back(k);
      }
    }
    return out;
  };
  CHECK(openers(ring.seal_also(kPlain, key_id(k3))) == std::vector<Key>{k1, k3});
  // Not twice under the primary, nor under a key the ring lacks.
  CHECK(openers(ring.seal_also(kPlain, key_id(k1))) == std::vector<Key>{k1});
  CHECK(openers(ring.seal_also(kPlain, key_id(generate_key()))) == std::vector<Key>{k1});
  CHECK(openers(ring.seal_each(kPlain, std::nullopt)) == std::vector<Key>{k1, k2, k3});
  CHECK(openers(ring.seal_each(kPlain, key_id(k2))) == std::vector<Key>{k1, k3});
  // One nonce sequence for the ring: no two envelopes share a nonce.
  std::set<Bytes> nonces;
  for (const auto& e : ring.seal_each(kPlain, std::nullopt)) {
    nonces.emplace(e.begin() + 1, e.begin() + 1 + kNonceSize);
  }
  const Bytes single = ring.seal(kPlain);
  nonces.emplace(single.begin() + 1, single.begin() + 1 + kNonceSize);
  CHECK(nonces.size() == 4);
}

TEST_CASE("keys in hex") {
  const Key key = generate_key();
  auto parsed = parse_key(key_to_hex(key));
  REQUIRE(parsed);
  CHECK(*parsed == key);
  CHECK(parse_key("abc").error() == Errc::kBadValue);
  CHECK(parse_key(std::string(64, 'g')).error() == Errc::kBadValue);
}

TEST_CASE("libsodium initialises once under concurrent first use") {
  std::vector<std::thread> threads;
  std::vector<Key> keys(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&keys, i] { keys[i] = generate_key(); });
  }
  for (auto& t : threads) t.join();
  CHECK(std::set<Key>(keys.begin(), keys.end()).size() == 8);
}

}  // namespace
}  // namespace mixlb::gossip
