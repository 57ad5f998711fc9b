#pragma once
// The gossip wire codec: every message SWIM nodes exchange, to and from
// bytes. No I/O, no time, no protocol state — only formats and their bounds,
// so it can be tested exhaustively and fuzzed on its own.
//
// A datagram (the plaintext inside the keyring's envelope, keyring.h) is a
// version byte followed by one or more messages, each framed as type, length,
// body. A datagram with several messages is a compound packet: a probe with
// membership updates and user events piggybacked behind it.
//
//   offset 0        1        2        3        4                  4+len
//          +--------+--------+--------+--------+--------- ... ----+--------+---
//          | ver=1  | type   | length (u16 BE) | body (len bytes) | type   | ...
//          +--------+--------+--------+--------+--------- ... ----+--------+---
//
//   A ping, seq 42, from "node-3" to "node-7", with one alive update behind it:
//
//   01                                 wire version 1
//   01 00 12                           ping, 18-byte body
//      00 00 00 2a                       seq 42
//      06 6e 6f 64 65 2d 37              target name "node-7" (u8 length)
//      06 6e 6f 64 65 2d 33              source name "node-3"
//   05 00 14                           alive, 20-byte body
//      00 00 00 03                       incarnation 3
//      06 6e 6f 64 65 2d 39              name "node-9"
//      04 0a 00 00 09 1f 0a              address: family 4, 10.0.0.9, port 7946
//      00 00                             metadata: none (u16 length)
//
// All integers are big-endian. Names are 1..255 bytes (u8 length); metadata
// and payloads carry a u16 length. Every length is checked against the bytes
// that are left before anything is read, and a body must be consumed exactly,
// so a decoder never reads past its input and a malformed packet is refused
// with the place it went wrong ("ping-req: target name: length 200 exceeds
// the 21 bytes left at offset 8"). New fields mean a new version byte.
//
// Push-pull state (the full membership, exchanged over a stream on join and
// periodically) is too large for a datagram and has its own frame: the
// version byte, the type byte 10, then the body to the end of the stream
// message (the transport delimits stream messages).
//
// Key management (swim.h, "Key requests") has two datagram messages of its
// own, each always sent alone in its datagram. A request, spread from member
// to member; "make key 1f20..26 the primary", from "node-3", whose primary
// was key c0c1..c7 when it asked, and whose members answer to
// 10.0.0.3:7946:
//
//   01                                 wire version 1
//   0b 00 28                           key-request, 40-byte body
//      06 6e 6f 64 65 2d 33              origin "node-3"
//      00 00 00 00 00 00 00 07           request id 7 (the origin's)
//      00                                flags: bit 0, asked again by the origin
//      03                                op 3 use (1 list, 2 install, 4 remove)
//      04 0a 00 00 03 1f 0a              answer to: family 4, 10.0.0.3, port 7946
//      c0 c1 c2 c3 c4 c5 c6 c7           request key: the id of the origin's
//                                          primary at the start
//      1f 20 21 22 23 24 25 26           use, remove: the key's id (8 bytes);
//                                          install: the key (32); list: nothing
//
// An answer, sent by each member to the origin's answer address:
//
//   01                                 wire version 1
//   0c 00 21                           key-response, 33-byte body
//      00 00 00 00 00 00 00 07           request id 7
//      06 6e 6f 64 65 2d 39              member "node-9"
//      00                                status 0 ok (1 key not installed,
//                                          2 the primary key, 3 keyring full)
//      02                                2 key ids follow, the primary's first
//      1f 20 21 22 23 24 25 26           the member's keys after the request
//      a0 a1 a2 a3 a4 a5 a6 a7
//
// Only an install carries a key. Everything else names keys by their id, a
// hash of the key (keyring.h), so a member that never held a key does not
// learn it from a use, a removal or anyone's list.
//
// Decoded messages borrow: their names, metadata and payloads are views into
// the buffer they were decoded from, which must outlive them.
#include <cstddef>
#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "address.h"

namespace mixlb::gossip {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

constexpr std::uint8_t kWireVersion = 1;
constexpr std::size_t kMessageHeaderSize = 3;  // type and u16 length
constexpr std::size_t kMaxNameSize = 255;
constexpr std::size_t kMaxBodySize = 65535;

enum class MessageType : std::uint8_t {
  kPing = 1,
  kPingReq = 2,
  kAck = 3,
  kNack = 4,
  kAlive = 5,
  kSuspect = 6,
  kDead = 7,
  kLeave = 8,
  kUserEvent = 9,
  kPushPull = 10,
  kKeyRequest = 11,
  kKeyResponse = 12,
};

// What one member believes about another. On the wire in push-pull state.
enum class MemberState : std::uint8_t { kAlive = 0, kSuspect = 1, kDead = 2, kLeft = 3 };

// What a key request asks every member to do with its keyring.
enum class KeyOp : std::uint8_t { kList = 1, kInstall = 2, kUse = 3, kRemove = 4 };

// A member's verdict on a key request; anything but kOk left its keyring
// unchanged.
enum class KeyStatus : std::uint8_t {
  kOk = 0,
  kKeyNotInstalled = 1,  // use: the member does not hold the key
  kKeyIsPrimary = 2,     // remove: the key is the member's primary
  kKeyringFull = 3,      // install: the member holds kMaxKeys keys already
};

constexpr std::size_t kKeyBytes = 32;   // a key (keyring.h: kKeySize)
constexpr std::size_t kKeyIdBytes = 8;  // a key's id (keyring.h: key_id)

std::string_view to_string(MessageType type);
std::string_view to_string(MemberState state);
std::string_view to_string(KeyOp op);

// "Are you alive?" — answered with an ack carrying the same seq. The target
// name lets a node that now owns a reused address ignore a ping meant for
// its predecessor.
struct Ping {
  std::uint32_t seq = 0;
  std::string_view target;
  std::string_view source;
};

// "Ping target for me" — the receiver pings the target with a seq of its own
// and relays the ack under this seq; with want_nack it answers a nack when
// the target stays silent, so the requester learns its own link works.
struct PingReq {
  std::uint32_t seq = 0;
  std::string_view target;
  Address target_address;
  bool want_nack = false;
  std::string_view source;
};

struct Ack {
  std::uint32_t seq = 0;
};

struct Nack {
  std::uint32_t seq = 0;
};

// Membership updates; each is newer than another about the same member when
// its incarnation is higher (see swim.h for the precedence rules).
struct Alive {
  std::uint32_t incarnation = 0;
  std::string_view name;
  Address address;
  ByteView metadata;
};

struct Suspect {
  std::uint32_t incarnation = 0;
  std::string_view name;
  std::string_view from;  // the suspecting member: independent confirmations are counted by it
};

struct Dead {
  std::uint32_t incarnation = 0;
  std::string_view name;
  std::string_view from;
};

// A member's own announcement that it leaves for good.
struct Leave {
  std::uint32_t incarnation = 0;
  std::string_view name;
};

// An application message, deduplicated by (origin, seq) and delivered once.
struct UserEvent {
  std::string_view origin;
  std::uint64_t seq = 0;
  ByteView payload;
};

// A key-management request, spread to every member; each applies it once
// and answers `answer_to` with a KeyResponse. `request_key` is the id of
// the origin's primary when it started (kKeyIdBytes): the copies of the
// request and the answers are sealed under it as well as under the
// sender's primary. `key` is the key itself for an install (kKeyBytes), its
// id for use and remove (kKeyIdBytes), and empty for a list. `reask` marks
// a copy the origin sends again to a member whose answer it lacks: a member
// that has already applied the request sends its answer again instead of
// ignoring the copy.
struct KeyRequest {
  std::string_view origin;
  std::uint64_t id = 0;
  bool reask = false;
  KeyOp op = KeyOp::kList;
  Address answer_to;
  ByteView request_key;
  ByteView key;
};

// One member's answer: its verdict and the ids of the keys it holds after
// the request (kKeyIdBytes each, the primary's first).
struct KeyResponse {
  std::uint64_t id = 0;
  std::string_view member;
  KeyStatus status = KeyStatus::kOk;
  ByteView key_ids;
};

using Message = std::variant<Ping, PingReq, Ack, Nack, Alive, Suspect, Dead, Leave, UserEvent,
                             KeyRequest, KeyResponse>;

// One member's entry in push-pull state.
struct MemberRecord {
  std::string_view name;
  Address address;
  std::uint32_t incarnation = 0;
  MemberState state = MemberState::kAlive;
  ByteView metadata;
};

struct PushPull {
  bool join = false;  // the sender is joining (or re-joining) through us
  std::string_view sender;
  std::vector<MemberRecord> members;
  std::vector<UserEvent> events;  // user events still being disseminated
};

struct DecodeError {
  std::error_code code;
  std::string message;  // "<where>: <field>: <what> at offset N"
  std::size_t offset = 0;
};

MessageType type_of(const Message& message);

// Size of the framed message (header and body).
std::size_t encoded_size(const Message& message);

// Appends the framed message to `out`; kTooLarge when a name exceeds 255
// bytes or the body exceeds 65535, kBadValue when a key request's request
// key is not an id or its key not of the size its operation calls for, or
// a response's key ids are not whole ids or more than 255 (and then `out`
// is unchanged).
std::error_code append_message(Bytes& out, const Message& message);

// A datagram's plaintext: the version byte, then each message framed.
std::expected<Bytes, std::error_code> encode_packet(std::span<const Message> messages);

// Decodes a whole datagram plaintext; at least one message is required.
std::expected<std::vector<Message>, DecodeError> decode_packet(ByteView bytes);

std::expected<Bytes, std::error_code> encode_push_pull(const PushPull& state);
std::expected<PushPull, DecodeError> decode_push_pull(ByteView bytes);

}  // namespace mixlb::gossip
