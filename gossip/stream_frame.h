#pragma once
// Stream message framing for push-pull over TCP: each direction of a
// connection carries exactly one message, a 4-byte big-endian length and
// that many bytes.
//
//   +--------+--------+--------+--------+------------ ... ------------+
//   | length (u32 BE)                   | message (sealed push-pull)   |
//   +--------+--------+--------+--------+------------ ... ------------+
//
// The reader is fed whatever chunks TCP delivers and refuses a length over
// its bound as soon as the 4 length bytes are in — before buffering any of
// the body — so a peer cannot make a node allocate more than the bound.
// Bytes after the one message are a protocol error, not silently dropped.
#include <cstddef>
#include <cstdint>
#include <expected>
#include <system_error>

#include "codec.h"

namespace mixlb::gossip {

constexpr std::size_t kFrameHeaderSize = 4;

// The message with its length prefix; kTooLarge over 4 GiB - 1.
std::expected<Bytes, std::error_code> frame_message(ByteView message);

class FrameReader {
 public:
  explicit FrameReader(std::size_t max_message) : max_message_(max_message) {}

  // Takes the next chunk of the stream. true once the whole message is in;
  // errors: kTooLarge (announced length over the bound), kTrailingBytes
  // (bytes after the message). After an error or completion, feed no more.
  std::expected<bool, std::error_code> feed(ByteView chunk);

  bool complete() const { return complete_; }
  // The bytes received so far (the header excluded).
  std::size_t received() const { return body_.size(); }
  // The message, once complete.
  Bytes take() { return std::move(body_); }

 private:
  std::size_t max_message_;
  std::uint8_t header_[kFrameHeaderSize] = {};
  std::size_t header_have_ = 0;
  std::size_t length_ = 0;
  bool complete_ = false;
  Bytes body_;
};

}  // namespace mixlb::gossip
