// The length-prefixed stream framing of push-pull messages.
#include "stream_frame.h"

#include <algorithm>
#include <limits>

#include "error.h"

namespace mixlb::gossip {

std::expected<Bytes, std::error_code> frame_message(ByteView message) {
  if (message.size() > std::numeric_limits<std::uint32_t>::max()) {
    return std::unexpected(make_error_code(Errc::kTooLarge));
  }
  const auto n = static_cast<std::uint32_t>(message.size());
  Bytes out;
  out.reserve(kFrameHeaderSize + message.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(n >> shift));
  out.insert(out.end(), message.begin(), message.end());
  return out;
}

std::expected<bool, std::error_code> FrameReader::feed(ByteView chunk) {
  if (complete_) {
    if (chunk.empty()) return true;
    return std::unexpected(make_error_code(Errc::kTrailingBytes));
  }
  if (header_have_ < kFrameHeaderSize) {
    const std::size_t n = std::min(kFrameHeaderSize - header_have_, chunk.size());
    std::copy_n(chunk.begin(), n, header_ + header_have_);
    header_have_ += n;
    chunk = chunk.subspan(n);
    if (header_have_ < kFrameHeaderSize) return false;
    length_ = (std::size_t{header_[0]} << 24) | (std::size_t{header_[1]} << 16) |
              (std::size_t{header_[2]} << 8) | std::size_t{header_[3]};
    if (length_ > max_message_) return std::unexpected(make_error_code(Errc::kTooLarge));
    // Grown as bytes arrive: a length alone must not buy a large buffer.
    body_.reserve(std::min<std::size_t>(length_, 65536));
  }
  const std::size_t n = std::min(length_ - body_.size(), chunk.size());
  body_.insert(body_.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
  chunk = chunk.subspan(n);
  if (body_.size() < length_) return false;
  complete_ = true;
  if (!chunk.empty()) return std::unexpected(make_error_code(Errc::kTrailingBytes));
  return true;
}

}  // namespace mixlb::gossip
