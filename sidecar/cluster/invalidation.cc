#include "cluster/invalidation.h"

#include <fmt/format.h>

#include <cstring>
#include <stdexcept>

#include "common/wire.h"

namespace mixlb {
namespace {

std::size_t address_bytes(const mixlb_flow_key& flow) { return flow.family == MIXLB_AF_INET6 ? 16 : 4; }

}  // namespace

std::size_t encoded_flow_size(const mixlb_flow_key& flow) { return 6 + 2 * address_bytes(flow); }

std::vector<std::uint8_t> encode_invalidations(const InvalidationBatch& batch) {
  if (batch.flows.size() > 0xffff)
    throw std::length_error(fmt::format("{} flows do not fit one invalidation message", batch.flows.size()));
  std::vector<std::uint8_t> out;
  out.reserve(kInvalidationHeaderSize + batch.flows.size() * 42);
  out.push_back(kInvalidationMagic);
  put_be(out, batch.sender, 4);
  put_be(out, batch.sequence, 8);
  put_be(out, static_cast<std::uint64_t>(batch.sent_us), 8);
  put_be(out, static_cast<std::uint64_t>(batch.closed_us), 8);
  put_be(out, batch.flows.size(), 2);
  for (const mixlb_flow_key& f : batch.flows) {
    out.push_back(f.family == MIXLB_AF_INET6 ? 6 : 4);
    out.push_back(f.proto);
    const auto* ports = reinterpret_cast<const std::uint8_t*>(&f.sport);
    out.insert(out.end(), ports, ports + 4);  // sport, dport: network order as stored
    const auto* src = reinterpret_cast<const std::uint8_t*>(f.src);
    const auto* dst = reinterpret_cast<const std::uint8_t*>(f.dst);
    out.insert(out.end(), src, src + address_bytes(f));
    out.insert(out.end(), dst, dst + address_bytes(f));
  }
  return out;
}

std::expected<InvalidationBatch, std::string> decode_invalidations(std::span<const std::uint8_t> bytes) {
  WireReader r(bytes, "invalidation");
  InvalidationBatch b;
  const auto magic = r.uint(1, "magic");
  if (magic != kInvalidationMagic)
    r.fail("magic", fmt::format("{:#04x} is not an invalidation's {:#04x}", magic, kInvalidationMagic));
  b.sender = static_cast<std::uint32_t>(r.uint(4, "sender"));
  if (r.ok() && b.sender == MIXLB_NODE_NONE) r.fail("sender", "node id 0 is no node");
  b.sequence = r.uint(8, "sequence");
  b.sent_us = static_cast<std::int64_t>(r.uint(8, "sent time"));
  b.closed_us = static_cast<std::int64_t>(r.uint(8, "close time"));
  const auto count = r.uint(2, "flow count");
  if (r.ok() && count == 0) r.fail("flow count", "a message without flows");
  b.flows.reserve(r.ok() ? count : 0);
  for (std::uint64_t i = 0; i < count && r.ok(); ++i) {
    mixlb_flow_key f{};
    const auto family = r.uint(1, "flow family");
    if (r.ok() && family != 4 && family != 6)
      r.fail("flow family", fmt::format("{} is neither 4 nor 6 (flow {})", family, i));
    f.family = family == 6 ? MIXLB_AF_INET6 : MIXLB_AF_INET;
    f.proto = static_cast<std::uint8_t>(r.uint(1, "flow protocol"));
    if (r.ok() && f.proto != 6 && f.proto != 17)
      r.fail("flow protocol", fmt::format("{} is neither TCP nor UDP (flow {})", f.proto, i));
    r.copy(&f.sport, 2, "flow source port");
    r.copy(&f.dport, 2, "flow VIP port");
    r.copy(f.src, address_bytes(f), "flow client address");
    r.copy(f.dst, address_bytes(f), "flow VIP address");
    b.flows.push_back(f);
  }
  r.expect_end();
  if (!r.ok()) return std::unexpected(r.error());
  return b;
}

std::int64_t unix_now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

ReplayGuard::Verdict ReplayGuard::check(std::uint32_t sender, std::uint64_t sequence,
                                        std::int64_t sent_us, std::int64_t now_us) {
  const std::int64_t age = now_us - sent_us;
  if (age > max_age_us_ || -age > max_age_us_) return Verdict::kStale;
  auto [it, fresh_sender] = windows_.try_emplace(sender);
  Window& w = it->second;
  if (fresh_sender || sequence > w.top) {
    const std::uint64_t shift = fresh_sender ? 64 : sequence - w.top;
    w.bits = shift >= 64 ? 0 : w.bits << shift;
    w.bits |= 1;
    w.top = sequence;
    return Verdict::kFresh;
  }
  const std::uint64_t behind = w.top - sequence;
  if (behind >= 64) return Verdict::kReplayed;  // older than the window: cannot tell, refuse
  const std::uint64_t bit = std::uint64_t{1} << behind;
  if (w.bits & bit) return Verdict::kReplayed;
  w.bits |= bit;
  return Verdict::kFresh;
}

}  // namespace mixlb
