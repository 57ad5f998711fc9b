// The wire codec. Encoding appends to a byte vector; decoding goes through a
// Reader that checks every read against what is left and remembers the first
// failure with its place, so the message decoders read as straight-line field
// lists and the error still says exactly where the bytes went wrong.
#include "codec.h"

#include <iterator>
#include <string>
#include <type_traits>

#include "error.h"

namespace mixlb::gossip {
namespace {

// ---- encoding ----

void put_u8(Bytes& out, std::uint8_t v) { out.push_back(v); }

void put_u16(Bytes& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}

void put_u32(Bytes& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

void put_u64(Bytes& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

void put_name(Bytes& out, std::string_view name) {
  put_u8(out, static_cast<std::uint8_t>(name.size()));
  out.insert(out.end(), name.begin(), name.end());
}

void put_bytes16(Bytes& out, ByteView bytes) {
  put_u16(out, static_cast<std::uint16_t>(bytes.size()));
  out.insert(out.end(), bytes.begin(), bytes.end());
}

std::size_t address_size(const Address& a) {
  return 1 + (a.family == Address::Family::kV4 ? 4 : 16) + 2;
}

void put_address(Bytes& out, const Address& a) {
  put_u8(out, static_cast<std::uint8_t>(a.family));
  const std::size_t n = a.family == Address::Family::kV4 ? 4 : 16;
  out.insert(out.end(), a.ip.begin(), a.ip.begin() + static_cast<std::ptrdiff_t>(n));
  put_u16(out, a.port);
}

bool name_ok(std::string_view name) { return !name.empty() && name.size() <= kMaxNameSize; }

// Body sizes, and whether the variable fields are within their bounds
// (kTooLarge) and of the sizes their message calls for (kBadValue).
struct BodyPlan {
  std::size_t size = 0;
  bool ok = true;
  Errc error = Errc::kTooLarge;
};

// The size of a key request's key field, by operation.
std::size_t key_field_size(KeyOp op) {
  switch (op) {
    case KeyOp::kList:
      return 0;
    case KeyOp::kInstall:
      return kKeyBytes;
    case KeyOp::kUse:
    case KeyOp::kRemove:
      return kKeyIdBytes;
  }
  return 0;
}

bool key_op_ok(std::uint8_t op) {
  return op >= static_cast<std::uint8_t>(KeyOp::kList) &&
         op <= static_cast<std::uint8_t>(KeyOp::kRemove);
}

bool key_status_ok(std::uint8_t status) {
  return status <= static_cast<std::uint8_t>(KeyStatus::kKeyringFull);
}

BodyPlan plan(const Ping& m) {
  return {4 + 1 + m.target.size() + 1 + m.source.size(), name_ok(m.target) && name_ok(m.source)};
}
BodyPlan plan(const PingReq& m) {
  return {4 + 1 + m.target.size() + address_size(m.target_address) + 1 + 1 + m.source.size(),
          name_ok(m.target) && name_ok(m.source)};
}
BodyPlan plan(const Ack&) { return {4, true}; }
BodyPlan plan(const Nack&) { return {4, true}; }
BodyPlan plan(const Alive& m) {
  return {4 + 1 + m.name.size() + address_size(m.address) + 2 + m.metadata.size(),
          name_ok(m.name) && m.metadata.size() <= kMaxBodySize};
}
BodyPlan plan(const Suspect& m) {
  return {4 + 1 + m.name.size() + 1 + m.from.size(), name_ok(m.name) && name_ok(m.from)};
}
BodyPlan plan(const Dead& m) {
  return {4 + 1 + m.name.size() + 1 + m.from.size(), name_ok(m.name) && name_ok(m.from)};
}
BodyPlan plan(const Leave& m) { return {4 + 1 + m.name.size(), name_ok(m.name)}; }
BodyPlan plan(const UserEvent& m) {
  return {1 + m.origin.size() + 8 + 2 + m.payload.size(),
          name_ok(m.origin) && m.payload.size() <= kMaxBodySize};
}
BodyPlan plan(const KeyRequest& m) {
  const std::size_t size = 1 + m.origin.size() + 8 + 1 + 1 + address_size(m.answer_to) +
                           m.request_key.size() + m.key.size();
  if (!name_ok(m.origin)) return {size, false};
  const bool shaped = key_op_ok(static_cast<std::uint8_t>(m.op)) &&
                      m.request_key.size() == kKeyIdBytes && m.key.size() == key_field_size(m.op);
  return {size, shaped, Errc::kBadValue};
}
BodyPlan plan(const KeyResponse& m) {
  const std::size_t size = 8 + 1 + m.member.size() + 1 + 1 + m.key_ids.size();
  if (!name_ok(m.member)) return {size, false};
  const bool shaped = key_status_ok(static_cast<std::uint8_t>(m.status)) &&
                      m.key_ids.size() % kKeyIdBytes == 0 &&
                      m.key_ids.size() / kKeyIdBytes <= UINT8_MAX;
  return {size, shaped, Errc::kBadValue};
}

void put_body(Bytes& out, const Ping& m) {
  put_u32(out, m.seq);
  put_name(out, m.target);
  put_name(out, m.source);
}
void put_body(Bytes& out, const PingReq& m) {
  put_u32(out, m.seq);
  put_name(out, m.target);
  put_address(out, m.target_address);
  put_u8(out, m.want_nack ? 1 : 0);
  put_name(out, m.source);
}
void put_body(Bytes& out, const Ack& m) { put_u32(out, m.seq); }
void put_body(Bytes& out, const Nack& m) { put_u32(out, m.seq); }
void put_body(Bytes& out, const Alive& m) {
  put_u32(out, m.incarnation);
  put_name(out, m.name);
  put_address(out, m.address);
  put_bytes16(out, m.metadata);
}
void put_body(Bytes& out, const Suspect& m) {
  put_u32(out, m.incarnation);
  put_name(out, m.name);
  put_name(out, m.from);
}
void put_body(Bytes& out, const Dead& m) {
  put_u32(out, m.incarnation);
  put_name(out, m.name);
  put_name(out, m.from);
}
void put_body(Bytes& out, const Leave& m) {
  put_u32(out, m.incarnation);
  put_name(out, m.name);
}
void put_body(Bytes& out, const UserEvent& m) {
  put_name(out, m.origin);
  put_u64(out, m.seq);
  put_bytes16(out, m.payload);
}
void put_body(Bytes& out, const KeyRequest& m) {
  put_name(out, m.origin);
  put_u64(out, m.id);
  put_u8(out, m.reask ? 1 : 0);
  put_u8(out, static_cast<std::uint8_t>(m.op));
  put_address(out, m.answer_to);
  out.insert(out.end(), m.request_key.begin(), m.request_key.end());
  out.insert(out.end(), m.key.begin(), m.key.end());
}
void put_body(Bytes& out, const KeyResponse& m) {
  put_u64(out, m.id);
  put_name(out, m.member);
  put_u8(out, static_cast<std::uint8_t>(m.status));
  put_u8(out, static_cast<std::uint8_t>(m.key_ids.size() / kKeyIdBytes));
  out.insert(out.end(), m.key_ids.begin(), m.key_ids.end());
}

// ---- decoding ----

class Reader {
 public:
  Reader(ByteView bytes, std::size_t base) : bytes_(bytes), base_(base) {}

  void set_context(std::string context) { context_ = std::move(context); }
  bool ok() const { return !error_.code; }
  std::size_t left() const { return bytes_.size() - pos_; }
  std::size_t offset() const { return base_ + pos_; }
  DecodeError take_error() { return std::move(error_); }

  void fail(Errc code, std::string_view field, const std::string& detail) {
    fail_at(code, field, detail, offset());
  }

  void fail_at(Errc code, std::string_view field, const std::string& detail, std::size_t at) {
    if (!ok()) return;
    error_.code = code;
    error_.offset = at;
    error_.message = context_;
    if (!field.empty()) error_.message += ": " + std::string(field);
    error_.message += ": " + detail + " at offset " + std::to_string(at);
  }

  bool need(std::size_t n, std::string_view field) {
    if (!ok()) return false;
    if (left() < n) {
      fail(Errc::kTruncated, field,
           "needs " + std::to_string(n) + " bytes, " + std::to_string(left()) + " left");
      return false;
    }
    return true;
  }

  std::uint64_t uint(std::size_t n, std::string_view field) {
    if (!need(n, field)) return 0;
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | bytes_[pos_ + i];
    pos_ += n;
    return v;
  }
  std::uint8_t u8(std::string_view field) { return static_cast<std::uint8_t>(uint(1, field)); }
  std::uint16_t u16(std::string_view field) { return static_cast<std::uint16_t>(uint(2, field)); }
  std::uint32_t u32(std::string_view field) { return static_cast<std::uint32_t>(uint(4, field)); }
  std::uint64_t u64(std::string_view field) { return uint(8, field); }

  ByteView take(std::size_t length, std::string_view field, std::size_t length_at) {
    if (!ok()) return {};
    if (length > left()) {
      fail_at(Errc::kTruncated, field,
              "length " + std::to_string(length) + " exceeds the " + std::to_string(left()) +
                  " bytes left",
              length_at);
      return {};
    }
    ByteView v = bytes_.subspan(pos_, length);
    pos_ += length;
    return v;
  }

  std::string_view name(std::string_view field) {
    const std::size_t at = offset();
    const std::size_t length = u8(field);
    if (!ok()) return {};
    if (length == 0) {
      fail_at(Errc::kBadValue, field, "empty name", at);
      return {};
    }
    ByteView v = take(length, field, at);
    return {reinterpret_cast<const char*>(v.data()), v.size()};
  }

  ByteView bytes16(std::string_view field) {
    const std::size_t at = offset();
    const std::size_t length = u16(field);
    return take(length, field, at);
  }

  Address address(std::string_view field) {
    Address a;
    const std::size_t at = offset();
    const std::uint8_t family = u8(field);
    if (!ok()) return a;
    std::size_t n = 0;
    if (family == 4) {
      a.family = Address::Family::kV4;
      n = 4;
    } else if (family == 6) {
      a.family = Address::Family::kV6;
      n = 16;
    } else {
      fail_at(Errc::kBadValue, field, "family " + std::to_string(family) + " is neither 4 nor 6",
              at);
      return a;
    }
    if (!need(n + 2, field)) return a;
    for (std::size_t i = 0; i < n; ++i) a.ip[i] = bytes_[pos_ + i];
    pos_ += n;
    a.port = u16(field);
    return a;
  }

  // A body must be consumed exactly.
  void finish() {
    if (ok() && left() != 0) {
      fail(Errc::kTrailingBytes, "", std::to_string(left()) + " bytes after the last field");
    }
  }

 private:
  ByteView bytes_;
  std::size_t base_;
  std::size_t pos_ = 0;
  std::string context_;
  DecodeError error_;
};

std::string_view wire_name(MessageType type) { return to_string(type); }

Message read_body(MessageType type, Reader& r) {
  switch (type) {
    case MessageType::kPing: {
      Ping m;
      m.seq = r.u32("seq");
      m.target = r.name("target name");
      m.source = r.name("source name");
      return m;
    }
    case MessageType::kPingReq: {
      PingReq m;
      m.seq = r.u32("seq");
      m.target = r.name("target name");
      m.target_address = r.address("target address");
      const std::size_t at = r.offset();
      const std::uint8_t flag = r.u8("nack flag");
      if (r.ok() && flag > 1) {
        r.fail_at(Errc::kBadValue, "nack flag", "value " + std::to_string(flag) + " is not 0 or 1",
                  at);
      }
      m.want_nack = flag == 1;
      m.source = r.name("source name");
      return m;
    }
    case MessageType::kAck:
      return Ack{r.u32("seq")};
    case MessageType::kNack:
      return Nack{r.u32("seq")};
    case MessageType::kAlive: {
      Alive m;
      m.incarnation = r.u32("incarnation");
      m.name = r.name("name");
      m.address = r.address("address");
      m.metadata = r.bytes16("metadata");
      return m;
    }
    case MessageType::kSuspect: {
      Suspect m;
      m.incarnation = r.u32("incarnation");
      m.name = r.name("name");
      m.from = r.name("from");
      return m;
    }
    case MessageType::kDead: {
      Dead m;
      m.incarnation = r.u32("incarnation");
      m.name = r.name("name");
      m.from = r.name("from");
      return m;
    }
    case MessageType::kLeave: {
      Leave m;
      m.incarnation = r.u32("incarnation");
      m.name = r.name("name");
      return m;
    }
    case MessageType::kUserEvent: {
      UserEvent m;
      m.origin = r.name("origin");
      m.seq = r.u64("sequence");
      m.payload = r.bytes16("payload");
      return m;
    }
    case MessageType::kKeyRequest: {
      KeyRequest m;
      m.origin = r.name("origin");
      m.id = r.u64("request id");
      const std::size_t flags_at = r.offset();
      const std::uint8_t flags = r.u8("flags");
      if (r.ok() && flags > 1) {
        r.fail_at(Errc::kBadValue, "flags", "unknown flag bits " + std::to_string(flags), flags_at);
      }
      m.reask = (flags & 1) != 0;
      const std::size_t op_at = r.offset();
      const std::uint8_t op = r.u8("op");
      if (r.ok() && !key_op_ok(op)) {
        r.fail_at(Errc::kBadValue, "op", "value " + std::to_string(op) + " is not a key operation",
                  op_at);
      }
      m.op = static_cast<KeyOp>(op);
      m.answer_to = r.address("answer address");
      m.request_key = r.take(kKeyIdBytes, "request key", r.offset());
      const std::size_t key_size = r.ok() ? key_field_size(m.op) : 0;
      if (r.ok() && r.left() != key_size) {
        r.fail(Errc::kBadValue, "key",
               std::string(to_string(m.op)) + " takes " + std::to_string(key_size) +
                   " bytes of key, " + std::to_string(r.left()) + " left");
      }
      m.key = r.take(key_size, "key", r.offset());
      return m;
    }
    case MessageType::kKeyResponse: {
      KeyResponse m;
      m.id = r.u64("request id");
      m.member = r.name("member");
      const std::size_t status_at = r.offset();
      const std::uint8_t status = r.u8("status");
      if (r.ok() && !key_status_ok(status)) {
        r.fail_at(Errc::kBadValue, "status",
                  "value " + std::to_string(status) + " is not a key status", status_at);
      }
      m.status = static_cast<KeyStatus>(status);
      const std::size_t count_at = r.offset();
      const std::size_t count = r.u8("key count");
      if (r.ok() && count * kKeyIdBytes > r.left()) {
        r.fail_at(Errc::kTruncated, "key count",
                  std::to_string(count) + " key ids need " + std::to_string(count * kKeyIdBytes) +
                      " bytes, " + std::to_string(r.left()) + " left",
                  count_at);
      }
      m.key_ids = r.take(count * kKeyIdBytes, "key ids", count_at);
      return m;
    }
    case MessageType::kPushPull:
      break;
  }
  return Ack{};  // unreachable: the caller checked the type
}

bool is_datagram_type(std::uint8_t type) {
  return (type >= static_cast<std::uint8_t>(MessageType::kPing) &&
          type <= static_cast<std::uint8_t>(MessageType::kUserEvent)) ||
         type == static_cast<std::uint8_t>(MessageType::kKeyRequest) ||
         type == static_cast<std::uint8_t>(MessageType::kKeyResponse);
}

bool check_version(Reader& r) {
  const std::uint8_t version = r.u8("version");
  if (r.ok() && version != kWireVersion) {
    r.fail_at(Errc::kBadVersion, "version",
              "version " + std::to_string(version) + " is not " + std::to_string(kWireVersion), 0);
  }
  return r.ok();
}

}  // namespace

std::string_view to_string(MessageType type) {
  switch (type) {
    case MessageType::kPing:
      return "ping";
    case MessageType::kPingReq:
      return "ping-req";
    case MessageType::kAck:
      return "ack";
    case MessageType::kNack:
      return "nack";
    case MessageType::kAlive:
      return "alive";
    case MessageType::kSuspect:
      return "suspect";
    case MessageType::kDead:
      return "dead";
    case MessageType::kLeave:
      return "leave";
    case MessageType::kUserEvent:
      return "user-event";
    case MessageType::kPushPull:
      return "push-pull";
    case MessageType::kKeyRequest:
      return "key-request";
    case MessageType::kKeyResponse:
      return "key-response";
  }
  return "unknown";
}

std::string_view to_string(KeyOp op) {
  switch (op) {
    case KeyOp::kList:
      return "list";
    case KeyOp::kInstall:
      return "install";
    case KeyOp::kUse:
      return "use";
    case KeyOp::kRemove:
      return "remove";
  }
  return "unknown";
}

std::string_view to_string(MemberState state) {
  switch (state) {
    case MemberState::kAlive:
      return "alive";
    case MemberState::kSuspect:
      return "suspect";
    case MemberState::kDead:
      return "dead";
    case MemberState::kLeft:
      return "left";
  }
  return "unknown";
}

// The wire type of each alternative of Message, in its order; push-pull (10)
// is a stream frame, not a Message.
MessageType type_of(const Message& message) {
  static constexpr MessageType kTypes[] = {
      MessageType::kPing,       MessageType::kPingReq,     MessageType::kAck,
      MessageType::kNack,       MessageType::kAlive,       MessageType::kSuspect,
      MessageType::kDead,       MessageType::kLeave,       MessageType::kUserEvent,
      MessageType::kKeyRequest, MessageType::kKeyResponse,
  };
  static_assert(std::size(kTypes) == std::variant_size_v<Message>);
  return kTypes[message.index()];
}

std::size_t encoded_size(const Message& message) {
  return kMessageHeaderSize + std::visit([](const auto& m) { return plan(m).size; }, message);
}

std::error_code append_message(Bytes& out, const Message& message) {
  return std::visit(
      [&](const auto& m) -> std::error_code {
        const BodyPlan p = plan(m);
        if (!p.ok) return p.error;
        if (p.size > kMaxBodySize) return Errc::kTooLarge;
        put_u8(out, static_cast<std::uint8_t>(type_of(Message{m})));
        put_u16(out, static_cast<std::uint16_t>(p.size));
        put_body(out, m);
        return {};
      },
      message);
}

std::expected<Bytes, std::error_code> encode_packet(std::span<const Message> messages) {
  Bytes out;
  std::size_t total = 1;
  for (const auto& m : messages) total += encoded_size(m);
  out.reserve(total);
  out.push_back(kWireVersion);
  for (const auto& m : messages) {
    if (auto ec = append_message(out, m)) return std::unexpected(ec);
  }
  return out;
}

std::expected<std::vector<Message>, DecodeError> decode_packet(ByteView bytes) {
  Reader r(bytes, 0);
  r.set_context("packet");
  if (!check_version(r)) return std::unexpected(r.take_error());
  std::vector<Message> messages;
  if (r.left() == 0) {
    r.fail(Errc::kTruncated, "", "no message after the version byte");
    return std::unexpected(r.take_error());
  }
  for (int index = 1; r.left() > 0; ++index) {
    const std::string label = "message " + std::to_string(index);
    const std::size_t type_at = r.offset();
    const std::uint8_t type = r.u8(label + " type");
    if (r.ok() && !is_datagram_type(type)) {
      r.fail_at(Errc::kUnknownMessage, label, "unknown type " + std::to_string(type), type_at);
    }
    const std::size_t length_at = r.offset();
    const std::size_t length = r.u16(label + " length");
    const std::size_t body_at = r.offset();
    const ByteView body = r.take(length, label + " length", length_at);
    if (!r.ok()) return std::unexpected(r.take_error());
    Reader br(body, body_at);
    br.set_context(std::string(wire_name(static_cast<MessageType>(type))));
    Message m = read_body(static_cast<MessageType>(type), br);
    br.finish();
    if (!br.ok()) return std::unexpected(br.take_error());
    messages.push_back(m);
  }
  return messages;
}

std::expected<Bytes, std::error_code> encode_push_pull(const PushPull& state) {
  if (!name_ok(state.sender) || state.members.size() > UINT32_MAX ||
      state.events.size() > UINT32_MAX) {
    return std::unexpected(make_error_code(Errc::kTooLarge));
  }
  Bytes out;
  std::size_t total = 2 + 1 + 1 + state.sender.size() + 8;
  for (const auto& m : state.members)
    total += 1 + m.name.size() + 19 + 4 + 1 + 2 + m.metadata.size();
  for (const auto& e : state.events) total += 1 + e.origin.size() + 8 + 2 + e.payload.size();
  out.reserve(total);
  put_u8(out, kWireVersion);
  put_u8(out, static_cast<std::uint8_t>(MessageType::kPushPull));
  put_u8(out, state.join ? 1 : 0);
  put_name(out, state.sender);
  put_u32(out, static_cast<std::uint32_t>(state.members.size()));
  for (const auto& m : state.members) {
    if (!name_ok(m.name) || m.metadata.size() > kMaxBodySize) {
      return std::unexpected(make_error_code(Errc::kTooLarge));
    }
    put_name(out, m.name);
    put_address(out, m.address);
    put_u32(out, m.incarnation);
    put_u8(out, static_cast<std::uint8_t>(m.state));
    put_bytes16(out, m.metadata);
  }
  put_u32(out, static_cast<std::uint32_t>(state.events.size()));
  for (const auto& e : state.events) {
    if (!name_ok(e.origin) || e.payload.size() > kMaxBodySize) {
      return std::unexpected(make_error_code(Errc::kTooLarge));
    }
    put_name(out, e.origin);
    put_u64(out, e.seq);
    put_bytes16(out, e.payload);
  }
  return out;
}

std::expected<PushPull, DecodeError> decode_push_pull(ByteView bytes) {
  // The smallest encodings, used to refuse counts that cannot fit before
  // reserving memory for them.
  constexpr std::size_t kMinMember = 2 + 7 + 4 + 1 + 2;
  constexpr std::size_t kMinEvent = 2 + 8 + 2;

  Reader r(bytes, 0);
  r.set_context("push-pull");
  if (!check_version(r)) return std::unexpected(r.take_error());
  const std::size_t type_at = r.offset();
  const std::uint8_t type = r.u8("type");
  if (r.ok() && type != static_cast<std::uint8_t>(MessageType::kPushPull)) {
    r.fail_at(Errc::kUnknownMessage, "type", "type " + std::to_string(type) + " is not push-pull",
              type_at);
  }
  PushPull state;
  const std::size_t flags_at = r.offset();
  const std::uint8_t flags = r.u8("flags");
  if (r.ok() && flags > 1) {
    r.fail_at(Errc::kBadValue, "flags", "unknown flag bits " + std::to_string(flags), flags_at);
  }
  state.join = (flags & 1) != 0;
  state.sender = r.name("sender");
  const std::size_t count_at = r.offset();
  const std::uint32_t members = r.u32("member count");
  if (r.ok() && std::uint64_t{members} * kMinMember > r.left()) {
    r.fail_at(Errc::kTruncated, "member count",
              std::to_string(members) + " members need at least " +
                  std::to_string(std::uint64_t{members} * kMinMember) + " bytes, " +
                  std::to_string(r.left()) + " left",
              count_at);
  }
  if (!r.ok()) return std::unexpected(r.take_error());
  state.members.reserve(members);
  for (std::uint32_t i = 0; i < members && r.ok(); ++i) {
    r.set_context("push-pull: member " + std::to_string(i + 1));
    MemberRecord m;
    m.name = r.name("name");
    m.address = r.address("address");
    m.incarnation = r.u32("incarnation");
    const std::size_t state_at = r.offset();
    const std::uint8_t s = r.u8("state");
    if (r.ok() && s > static_cast<std::uint8_t>(MemberState::kLeft)) {
      r.fail_at(Errc::kBadValue, "state", "value " + std::to_string(s) + " is not a member state",
                state_at);
    }
    m.state = static_cast<MemberState>(s);
    m.metadata = r.bytes16("metadata");
    state.members.push_back(m);
  }
  r.set_context("push-pull");
  const std::size_t events_at = r.offset();
  const std::uint32_t events = r.u32("event count");
  if (r.ok() && std::uint64_t{events} * kMinEvent > r.left()) {
    r.fail_at(Errc::kTruncated, "event count",
              std::to_string(events) + " events need at least " +
                  std::to_string(std::uint64_t{events} * kMinEvent) + " bytes, " +
                  std::to_string(r.left()) + " left",
              events_at);
  }
  if (!r.ok()) return std::unexpected(r.take_error());
  state.events.reserve(events);
  for (std::uint32_t i = 0; i < events && r.ok(); ++i) {
    r.set_context("push-pull: event " + std::to_string(i + 1));
    UserEvent e;
    e.origin = r.name("origin");
    e.seq = r.u64("sequence");
    e.payload = r.bytes16("payload");
    state.events.push_back(e);
  }
  r.set_context("push-pull");
  r.finish();
  if (!r.ok()) return std::unexpected(r.take_error());
  return state;
}

}  // namespace mixlb::gossip
