#pragma once
// Big-endian fields of mixlb's own small messages (gossip metadata,
// invalidations): a writer, and a reader whose first shortfall or bad value
// becomes the error, named with the field and the byte offset where the
// field starts; reads after an error return zeros.
#include <fmt/format.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mixlb {

inline void put_be(std::vector<std::uint8_t>& out, std::uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
}

class WireReader {
 public:
  // `what` starts every error ("metadata", "invalidation").
  WireReader(std::span<const std::uint8_t> bytes, std::string_view what) : bytes_(bytes), what_(what) {}

  // An unsigned field of n bytes (n <= 8).
  std::uint64_t uint(std::size_t n, std::string_view field) {
    if (!error_.empty()) return 0;
    start_ = pos_;
    if (bytes_.size() - pos_ < n) {
      fail(field, fmt::format("needs {} byte(s), {} left", n, bytes_.size() - pos_));
      return 0;
    }
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | bytes_[pos_ + i];
    pos_ += n;
    return v;
  }
  void copy(void* to, std::size_t n, std::string_view field) {
    if (!error_.empty()) return;
    start_ = pos_;
    if (bytes_.size() - pos_ < n) {
      fail(field, fmt::format("needs {} byte(s), {} left", n, bytes_.size() - pos_));
      return;
    }
    std::memcpy(to, bytes_.data() + pos_, n);
    pos_ += n;
  }
  void fail(std::string_view field, const std::string& problem) {
    if (error_.empty()) error_ = fmt::format("{}: {}: {} at offset {}", what_, field, problem, start_);
  }
  // Fails when bytes are left after the last field.
  void expect_end() {
    if (!error_.empty() || left() == 0) return;
    start_ = pos_;
    fail("end", fmt::format("{} byte(s) after the last field", left()));
  }
  std::size_t left() const { return bytes_.size() - pos_; }
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  std::span<const std::uint8_t> bytes_;
  std::string_view what_;
  std::size_t pos_ = 0;
  std::size_t start_ = 0;  // where the field being read starts
  std::string error_;
};

}  // namespace mixlb
