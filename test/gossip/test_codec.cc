// The wire codec: every message round-trips, every truncation of a valid
// packet is refused (never read past), decode errors say where, and the
// picture in codec.h is the codec's real output.
#include <doctest/doctest.h>

#include <algorithm>
#include <ostream>  // doctest prints std::error_code through it
#include <string>
#include <vector>

#include "codec.h"
#include "error.h"

namespace mixlb::gossip {
namespace {

const Address kAddress4 = Address::v4(10, 0, 0, 9, 7946);

Address address6() {
  auto a = Address::parse("[2001:db8::1]:7946");
  REQUIRE(a);
  return *a;
}

const Bytes kMetadata{1, 2, 3, 4, 5};
const Bytes kKey(kKeyBytes, 0x42);
const Bytes kKeyId{0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26};
const Bytes kRequestKey{0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7};
const Bytes kKeyIds{0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26,
                    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7};

std::vector<Message> one_of_each() {
  static const Bytes payload{'h', 'i'};
  return {
      Ping{42, "node-7", "node-3"},
      PingReq{43, "node-7", address6(), true, "node-3"},
      Ack{44},
      Nack{45},
      Alive{3, "node-9", kAddress4, kMetadata},
      Suspect{4, "node-9", "node-3"},
      Dead{5, "node-9", "node-3"},
      Leave{6, "node-9"},
      UserEvent{"node-3", 0x0102030405060708ull, payload},
      KeyRequest{"node-3", 7, false, KeyOp::kList, kAddress4, kRequestKey, {}},
      KeyRequest{"node-3", 8, true, KeyOp::kInstall, address6(), kRequestKey, kKey},
      KeyRequest{"node-3", 9, false, KeyOp::kUse, kAddress4, kRequestKey, kKeyId},
      KeyRequest{"node-3", 10, false, KeyOp::kRemove, kAddress4, kRequestKey, kKeyId},
      KeyResponse{7, "node-9", KeyStatus::kOk, kKeyIds},
      KeyResponse{9, "node-9", KeyStatus::kKeyNotInstalled, kKeyId},
      KeyResponse{11, "node-9", KeyStatus::kKeyringFull, {}},
  };
}

bool same(const Message& a, const Message& b) {
  if (a.index() != b.index()) return false;
  return std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        const T& y = std::get<T>(b);
        auto bytes_eq = [](ByteView p, ByteView q) {
          return std::equal(p.begin(), p.end(), q.begin(), q.end());
        };
        if constexpr (std::is_same_v<T, Ping>) {
          return x.seq == y.seq && x.target == y.target && x.source == y.source;
        } else if constexpr (std::is_same_v<T, PingReq>) {
          return x.seq == y.seq && x.target == y.target && x.target_address == y.target_address &&
                 x.want_nack == y.want_nack && x.source == y.source;
        } else if constexpr (std::is_same_v<T, Ack> || std::is_same_v<T, Nack>) {
          return x.seq == y.seq;
        } else if constexpr (std::is_same_v<T, Alive>) {
          return x.incarnation == y.incarnation && x.name == y.name && x.address == y.address &&
                 bytes_eq(x.metadata, y.metadata);
        } else if constexpr (std::is_same_v<T, Suspect> || std::is_same_v<T, Dead>) {
          return x.incarnation == y.incarnation && x.name == y.name && x.from == y.from;
        } else if constexpr (std::is_same_v<T, Leave>) {
          return x.incarnation == y.incarnation && x.name == y.name;
        } else if constexpr (std::is_same_v<T, UserEvent>) {
          return x.origin == y.origin && x.seq == y.seq && bytes_eq(x.payload, y.payload);
        } else if constexpr (std::is_same_v<T, KeyRequest>) {
          return x.origin == y.origin && x.id == y.id && x.reask == y.reask && x.op == y.op &&
                 x.answer_to == y.answer_to && bytes_eq(x.request_key, y.request_key) &&
                 bytes_eq(x.key, y.key);
        } else {
          static_assert(std::is_same_v<T, KeyResponse>);
          return x.id == y.id && x.member == y.member && x.status == y.status &&
                 bytes_eq(x.key_ids, y.key_ids);
        }
      },
      a);
}

TEST_CASE("the ping picture in codec.h is what the codec writes") {
  const std::vector<Message> messages{Ping{42, "node-7", "node-3"},
                                      Alive{3, "node-9", Address::v4(10, 0, 0, 9, 7946), {}}};
  auto bytes = encode_packet(messages);
  REQUIRE(bytes);
  const Bytes expected{
      0x01,                                      // version
      0x01, 0x00, 0x12,                          // ping, 18 bytes
      0x00, 0x00, 0x00, 0x2a,                    // seq 42
      0x06, 'n',  'o',  'd',  'e',  '-',  '7',   // target
      0x06, 'n',  'o',  'd',  'e',  '-',  '3',   // source
      0x05, 0x00, 0x14,                          // alive, 20 bytes
      0x00, 0x00, 0x00, 0x03,                    // incarnation 3
      0x06, 'n',  'o',  'd',  'e',  '-',  '9',   // name
      0x04, 0x0a, 0x00, 0x00, 0x09, 0x1f, 0x0a,  // 10.0.0.9:7946
      0x00, 0x00,                                // no metadata
  };
  CHECK(*bytes == expected);
}

TEST_CASE("the key-request and key-response pictures in codec.h are what the codec writes") {
  auto request = encode_packet(std::vector<Message>{KeyRequest{
      "node-3", 7, false, KeyOp::kUse, Address::v4(10, 0, 0, 3, 7946), kRequestKey, kKeyId}});
  REQUIRE(request);
  const Bytes expected_request{
      0x01,                                            // version
      0x0b, 0x00, 0x28,                                // key-request, 40 bytes
      0x06, 'n',  'o',  'd',  'e',  '-',  '3',         // origin
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,  // request id 7
      0x00,                                            // flags
      0x03,                                            // use
      0x04, 0x0a, 0x00, 0x00, 0x03, 0x1f, 0x0a,        // answer to 10.0.0.3:7946
      0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,  // the origin's primary's id
      0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26,  // the key's id
  };
  CHECK(*request == expected_request);

  auto response =
      encode_packet(std::vector<Message>{KeyResponse{7, "node-9", KeyStatus::kOk, kKeyIds}});
  REQUIRE(response);
  const Bytes expected_response{
      0x01,                                            // version
      0x0c, 0x00, 0x21,                                // key-response, 33 bytes
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,  // request id 7
      0x06, 'n',  'o',  'd',  'e',  '-',  '9',         // member
      0x00,                                            // ok
      0x02,                                            // two key ids
      0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26,  // the primary's
      0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
  };
  CHECK(*response == expected_response);
}

TEST_CASE("every message round-trips, alone and all in one compound packet") {
  const auto messages = one_of_each();
  for (const auto& message : messages) {
    CAPTURE(to_string(type_of(message)));
    auto bytes = encode_packet(std::vector<Message>{message});
    REQUIRE(bytes);
    CHECK(bytes->size() == 1 + encoded_size(message));
    auto decoded = decode_packet(*bytes);
    REQUIRE(decoded);
    REQUIRE(decoded->size() == 1);
    CHECK(same(decoded->front(), message));
  }
  auto bytes = encode_packet(messages);
  REQUIRE(bytes);
  auto decoded = decode_packet(*bytes);
  REQUIRE(decoded);
  REQUIRE(decoded->size() == messages.size());
  for (std::size_t i = 0; i < messages.size(); ++i) CHECK(same((*decoded)[i], messages[i]));
}

TEST_CASE("every truncation of a valid packet is refused") {
  auto bytes = encode_packet(one_of_each());
  REQUIRE(bytes);
  // Cutting at a message boundary leaves a valid, shorter packet; anywhere
  // else it must fail, and the error must point inside the bytes given.
  std::vector<std::size_t> boundaries{1};
  for (const auto& m : one_of_each()) boundaries.push_back(boundaries.back() + encoded_size(m));
  for (std::size_t cut = 0; cut < bytes->size(); ++cut) {
    CAPTURE(cut);
    auto decoded = decode_packet(ByteView(bytes->data(), cut));
    const bool boundary = std::find(boundaries.begin(), boundaries.end(), cut) != boundaries.end();
    if (boundary && cut > 1) {
      CHECK(decoded);
    } else {
      REQUIRE_FALSE(decoded);
      CHECK(decoded.error().offset <= cut);
      CHECK(decoded.error().code == Errc::kTruncated);
    }
  }
}

TEST_CASE("a length that lies is refused with the message, field and offset") {
  auto bytes = encode_packet(std::vector<Message>{PingReq{7, "node-7", kAddress4, true, "node-3"}});
  REQUIRE(bytes);
  // Layout: version(0) type(1) length(2..3) seq(4..7) target-name length at 8.
  Bytes lying = *bytes;
  lying[8] = 200;
  auto decoded = decode_packet(lying);
  REQUIRE_FALSE(decoded);
  CHECK(decoded.error().code == Errc::kTruncated);
  CHECK(decoded.error().offset == 8);
  const std::size_t left = lying.size() - 9;
  CHECK(decoded.error().message == "ping-req: target name: length 200 exceeds the " +
                                       std::to_string(left) + " bytes left at offset 8");
}

TEST_CASE("framing errors: version, unknown type, body longer than the packet, trailing bytes") {
  auto bytes = encode_packet(std::vector<Message>{Ack{1}});
  REQUIRE(bytes);
  SUBCASE("version") {
    Bytes b = *bytes;
    b[0] = 2;
    auto d = decode_packet(b);
    REQUIRE_FALSE(d);
    CHECK(d.error().code == Errc::kBadVersion);
    CHECK(d.error().message == "packet: version: version 2 is not 1 at offset 0");
  }
  SUBCASE("unknown type") {
    Bytes b = *bytes;
    b[1] = 77;
    auto d = decode_packet(b);
    REQUIRE_FALSE(d);
    CHECK(d.error().code == Errc::kUnknownMessage);
    CHECK(d.error().message == "packet: message 1: unknown type 77 at offset 1");
  }
  SUBCASE("push-pull is not a datagram message") {
    Bytes b = *bytes;
    b[1] = static_cast<std::uint8_t>(MessageType::kPushPull);
    CHECK(decode_packet(b).error().code == Errc::kUnknownMessage);
  }
  SUBCASE("body length past the end") {
    Bytes b = *bytes;
    b[3] = 9;
    auto d = decode_packet(b);
    REQUIRE_FALSE(d);
    CHECK(d.error().message ==
          "packet: message 1 length: length 9 exceeds the 4 bytes left at offset 2");
  }
  SUBCASE("a body with bytes after its last field") {
    Bytes b = *bytes;
    b[3] = 5;
    b.push_back(0);
    auto d = decode_packet(b);
    REQUIRE_FALSE(d);
    CHECK(d.error().code == Errc::kTrailingBytes);
    CHECK(d.error().message == "ack: 1 bytes after the last field at offset 8");
  }
  SUBCASE("a version byte alone") {
    CHECK(decode_packet(Bytes{kWireVersion}).error().code == Errc::kTruncated);
  }
}

TEST_CASE("field values the format does not allow") {
  SUBCASE("an empty name") {
    Bytes b{kWireVersion, 8, 0, 5, 0, 0, 0, 1, 0};
    auto d = decode_packet(b);
    REQUIRE_FALSE(d);
    CHECK(d.error().code == Errc::kBadValue);
    CHECK(d.error().message == "leave: name: empty name at offset 8");
  }
  SUBCASE("an address family other than 4 or 6") {
    auto bytes = encode_packet(std::vector<Message>{Alive{1, "a", kAddress4, {}}});
    REQUIRE(bytes);
    Bytes b = *bytes;
    b[10] = 5;  // version, header(3), incarnation(4), name(2) -> family at 10
    auto d = decode_packet(b);
    REQUIRE_FALSE(d);
    CHECK(d.error().message == "alive: address: family 5 is neither 4 nor 6 at offset 10");
  }
  SUBCASE("a nack flag other than 0 or 1") {
    auto bytes = encode_packet(std::vector<Message>{PingReq{1, "t", kAddress4, false, "s"}});
    REQUIRE(bytes);
    Bytes b = *bytes;
    const std::size_t flag_at = 1 + 3 + 4 + 2 + 7;
    b[flag_at] = 2;
    auto d = decode_packet(b);
    REQUIRE_FALSE(d);
    CHECK(d.error().code == Errc::kBadValue);
    CHECK(d.error().offset == flag_at);
  }
}

TEST_CASE("key-request and key-response errors say which field, and where") {
  auto request = encode_packet(std::vector<Message>{
      KeyRequest{"node-3", 7, false, KeyOp::kUse, kAddress4, kRequestKey, kKeyId}});
  REQUIRE(request);
  // version(1) header(3) origin(7) id(8) -> flags at 19, op at 20, address
  // at 21..27, request key at 28..35, key from 36.
  SUBCASE("flags") {
    Bytes b = *request;
    b[19] = 2;
    auto d = decode_packet(b);
    REQUIRE_FALSE(d);
    CHECK(d.error().code == Errc::kBadValue);
    CHECK(d.error().message == "key-request: flags: unknown flag bits 2 at offset 19");
  }
  SUBCASE("an operation that does not exist") {
    Bytes b = *request;
    b[20] = 9;
    auto d = decode_packet(b);
    REQUIRE_FALSE(d);
    CHECK(d.error().code == Errc::kBadValue);
    CHECK(d.error().message == "key-request: op: value 9 is not a key operation at offset 20");
  }
  SUBCASE("a key field of the wrong size for the operation") {
    Bytes b = *request;
    b[20] = static_cast<std::uint8_t>(KeyOp::kInstall);  // wants 32 bytes, has 8
    auto d = decode_packet(b);
    REQUIRE_FALSE(d);
    CHECK(d.error().code == Errc::kBadValue);
    CHECK(d.error().message ==
          "key-request: key: install takes 32 bytes of key, 8 left at offset 36");
    b[20] = static_cast<std::uint8_t>(KeyOp::kList);  // wants none
    d = decode_packet(b);
    REQUIRE_FALSE(d);
    CHECK(d.error().message == "key-request: key: list takes 0 bytes of key, 8 left at offset 36");
  }

  auto response =
      encode_packet(std::vector<Message>{KeyResponse{7, "node-9", KeyStatus::kOk, kKeyIds}});
  REQUIRE(response);
  // version(1) header(3) id(8) member(7) -> status at 19, count at 20, ids from 21.
  SUBCASE("a status that does not exist") {
    Bytes b = *response;
    b[19] = 7;
    auto d = decode_packet(b);
    REQUIRE_FALSE(d);
    CHECK(d.error().message == "key-response: status: value 7 is not a key status at offset 19");
  }
  SUBCASE("more key ids than the body holds, and fewer") {
    Bytes b = *response;
    b[20] = 3;
    auto d = decode_packet(b);
    REQUIRE_FALSE(d);
    CHECK(d.error().code == Errc::kTruncated);
    CHECK(d.error().message ==
          "key-response: key count: 3 key ids need 24 bytes, 16 left at offset 20");
    b[20] = 1;
    d = decode_packet(b);
    REQUIRE_FALSE(d);
    CHECK(d.error().code == Errc::kTrailingBytes);
    CHECK(d.error().offset == 29);
  }
}

TEST_CASE("encoding refuses key fields of the wrong shape") {
  Bytes out;
  CHECK(append_message(out, KeyRequest{"o", 1, false, KeyOp::kInstall, kAddress4, kRequestKey,
                                       kKeyId}) == Errc::kBadValue);
  CHECK(append_message(out, KeyRequest{"o", 1, false, KeyOp::kUse, kAddress4, kRequestKey, kKey}) ==
        Errc::kBadValue);
  CHECK(append_message(out, KeyRequest{"o", 1, false, KeyOp::kList, kAddress4, kRequestKey,
                                       kKeyId}) == Errc::kBadValue);
  CHECK(append_message(
            out, KeyRequest{"o", 1, false, static_cast<KeyOp>(5), kAddress4, kRequestKey, {}}) ==
        Errc::kBadValue);
  CHECK(append_message(out, KeyRequest{"o", 1, false, KeyOp::kList, kAddress4, kKey, {}}) ==
        Errc::kBadValue);
  CHECK(append_message(out, KeyResponse{1, "m", KeyStatus::kOk, ByteView(kKeyIds).first(9)}) ==
        Errc::kBadValue);
  CHECK(append_message(out, KeyResponse{1, "m", static_cast<KeyStatus>(4), {}}) == Errc::kBadValue);
  CHECK(append_message(out, KeyRequest{"", 1, false, KeyOp::kList, kAddress4, kRequestKey, {}}) ==
        Errc::kTooLarge);
  CHECK(out.empty());
}

TEST_CASE("encoding refuses names and bodies over their bounds") {
  const std::string long_name(256, 'x');
  Bytes out;
  CHECK(append_message(out, Ping{1, long_name, "a"}) == Errc::kTooLarge);
  CHECK(append_message(out, Ping{1, "", "a"}) == Errc::kTooLarge);
  const Bytes huge(70000, 0);
  CHECK(append_message(out, Alive{1, "a", kAddress4, huge}) == Errc::kTooLarge);
  CHECK(out.empty());
  CHECK_FALSE(encode_packet(std::vector<Message>{Ping{1, long_name, "a"}}));
}

PushPull sample_state() {
  static const Bytes payload{9, 9};
  PushPull state;
  state.join = true;
  state.sender = "node-1";
  state.members.push_back(MemberRecord{"node-1", kAddress4, 7, MemberState::kAlive, kMetadata});
  state.members.push_back(MemberRecord{"node-2", address6(), 2, MemberState::kSuspect, {}});
  state.members.push_back(MemberRecord{"node-3", kAddress4, 9, MemberState::kLeft, {}});
  state.events.push_back(UserEvent{"node-2", 77, payload});
  return state;
}

TEST_CASE("push-pull state round-trips and every truncation is refused") {
  const PushPull state = sample_state();
  auto bytes = encode_push_pull(state);
  REQUIRE(bytes);
  auto decoded = decode_push_pull(*bytes);
  REQUIRE(decoded);
  CHECK(decoded->join);
  CHECK(decoded->sender == "node-1");
  REQUIRE(decoded->members.size() == 3);
  CHECK(decoded->members[1].name == "node-2");
  CHECK(decoded->members[1].address == address6());
  CHECK(decoded->members[1].state == MemberState::kSuspect);
  CHECK(decoded->members[2].incarnation == 9);
  CHECK(std::equal(decoded->members[0].metadata.begin(), decoded->members[0].metadata.end(),
                   kMetadata.begin(), kMetadata.end()));
  REQUIRE(decoded->events.size() == 1);
  CHECK(decoded->events[0].seq == 77);
  for (std::size_t cut = 0; cut < bytes->size(); ++cut) {
    CAPTURE(cut);
    auto d = decode_push_pull(ByteView(bytes->data(), cut));
    REQUIRE_FALSE(d);
    CHECK(d.error().offset <= cut);
  }
}

TEST_CASE("push-pull errors name the member and refuse impossible counts") {
  auto bytes = encode_push_pull(sample_state());
  REQUIRE(bytes);
  SUBCASE("a member state that does not exist") {
    Bytes b = *bytes;
    // version, type, flags, sender(7), count(4), member 1: name(7) address(7) incarnation(4)
    const std::size_t state_at = 3 + 7 + 4 + 7 + 7 + 4;
    b[state_at] = 9;
    auto d = decode_push_pull(b);
    REQUIRE_FALSE(d);
    CHECK(d.error().message ==
          "push-pull: member 1: state: value 9 is not a member state at offset " +
              std::to_string(state_at));
  }
  SUBCASE("a member count that cannot fit") {
    Bytes b = *bytes;
    b[10] = 0xff;  // member count's high byte
    auto d = decode_push_pull(b);
    REQUIRE_FALSE(d);
    CHECK(d.error().code == Errc::kTruncated);
    CHECK(d.error().offset == 10);
  }
  SUBCASE("a datagram is not push-pull state") {
    auto ping = encode_packet(std::vector<Message>{Ack{1}});
    REQUIRE(ping);
    CHECK(decode_push_pull(*ping).error().code == Errc::kUnknownMessage);
  }
}

TEST_CASE("addresses print and parse in both families") {
  CHECK(kAddress4.to_string() == "10.0.0.9:7946");
  CHECK(address6().to_string() == "[2001:db8::1]:7946");
  CHECK(Address::parse("10.0.0.9:7946") == kAddress4);
  CHECK_FALSE(Address::parse("10.0.0.9"));
  CHECK_FALSE(Address::parse("10.0.0.9:70000"));
  CHECK_FALSE(Address::parse("[2001:db8::1]7946"));
  CHECK_FALSE(Address::parse("host:1"));
}

}  // namespace
}  // namespace mixlb::gossip
