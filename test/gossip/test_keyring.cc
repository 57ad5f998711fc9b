// The keyring: sealed packets open only with an installed key and the same
// cluster name, tampering is caught, rotation keeps every step mutually
// readable, and the primary key cannot be removed.
#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it
#include <set>
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
  b.add(new_key);
  CHECK(b.keys().size() == 2);
  CHECK(b.primary() == old_key);
  a.add(new_key);
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
  ring.add(key);
  CHECK(ring.keys().size() == 1);
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
