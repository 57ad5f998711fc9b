#include "kernel/conntrack_walk.h"

#include <bpf/bpf.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

namespace mixlb {

std::uint64_t coarse_now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

DpResult<bpf_map_info> conntrack_info(int fd, const std::string& what) {
  bpf_map_info info{};
  __u32 length = sizeof(info);
  if (const int rc = bpf_obj_get_info_by_fd(fd, &info, &length); rc != 0)
    return datapath_failure("reading the map information of " + what, rc);
  if (info.type != BPF_MAP_TYPE_LRU_HASH || info.key_size != sizeof(mixlb_flow_key) ||
      info.value_size != sizeof(mixlb_ct_value)) {
    return std::unexpected(DatapathError{
        what + " is not a connection table (type " + std::to_string(info.type) + ", key " +
            std::to_string(info.key_size) + " bytes, value " + std::to_string(info.value_size) +
            " bytes)",
        std::make_error_code(std::errc::invalid_argument)});
  }
  return info;
}

DpResult<UniqueFd> open_pinned_conntrack(const std::string& pin_dir) {
  const std::string path = pin_dir + "/mixlb_ct";
  UniqueFd fd(bpf_obj_get(path.c_str()));
  if (!fd) {
    const int err = errno;
    return datapath_failure("opening the connection table pinned at " + path +
                    (err == EPERM || err == EACCES ? " (needs root or CAP_BPF)" : ""),
                err);
  }
  auto info = conntrack_info(fd.get(), path);
  if (!info) return std::unexpected(info.error());
  return fd;
}

DpResult<void> walk_conntrack(int fd, std::uint32_t batch,
                              const std::function<void(const mixlb_flow_key&, const mixlb_ct_value&)>& visit) {
  batch = std::max<std::uint32_t>(batch, 1);
  std::vector<mixlb_flow_key> keys(batch);
  std::vector<mixlb_ct_value> values(batch);
  // The kernel's position in the hash table between calls: opaque, at most
  // a key's size.
  alignas(8) unsigned char position[sizeof(mixlb_flow_key)] = {};
  alignas(8) unsigned char next[sizeof(mixlb_flow_key)] = {};
  bool first = true;
  const bpf_map_batch_opts opts{.sz = sizeof(bpf_map_batch_opts), .elem_flags = 0, .flags = 0};
  for (;;) {
    __u32 count = batch;
    const int rc = bpf_map_lookup_batch(fd, first ? nullptr : position, next, keys.data(),
                                        values.data(), &count, &opts);
    const int err = rc == 0 ? 0 : errno;
    // The entries of the last call arrive together with ENOENT.
    for (__u32 i = 0; i < count; ++i) visit(keys[i], values[i]);
    if (rc != 0 && err == ENOENT) return {};
    if (rc != 0 && err == ENOSPC && count == 0) {
      // One hash bucket holds more entries than a batch: read it again with
      // room for all of them.
      batch *= 2;
      keys.resize(batch);
      values.resize(batch);
      continue;
    }
    if (rc != 0) return datapath_failure("walking the connection table", err);
    std::memcpy(position, next, sizeof(position));
    first = false;
  }
}

std::optional<SweepReason> sweep_reason(const SweepRules& rules, const mixlb_flow_key& key,
                                        const mixlb_ct_value& value, std::uint64_t now_ns) {
  if (value.last_seen_ns >= now_ns) return std::nullopt;
  const std::uint64_t idle = now_ns - value.last_seen_ns;
  const auto past = [&](std::uint64_t limit) { return limit != 0 && idle > limit; };
  constexpr std::uint8_t kTcp = 6, kUdp = 17;
  if (key.proto == kUdp) return past(rules.udp_idle_ns) ? std::optional(SweepReason::kUdpIdle) : std::nullopt;
  if (key.proto != kTcp) return std::nullopt;
  if ((value.flags & (MIXLB_CT_SEEN_FIN | MIXLB_CT_SEEN_RST)) != 0)
    return past(rules.tcp_closing_idle_ns) ? std::optional(SweepReason::kTcpClosing) : std::nullopt;
  return past(rules.tcp_idle_ns) ? std::optional(SweepReason::kTcpIdle) : std::nullopt;
}

DpResult<SweepResult> sweep_conntrack(int fd, const SweepRules& rules) {
  const auto started = std::chrono::steady_clock::now();
  SweepResult out;
  std::vector<mixlb_flow_key> doomed;
  const std::uint64_t now = coarse_now_ns();
  auto walked = walk_conntrack(fd, 4096, [&](const mixlb_flow_key& key, const mixlb_ct_value& value) {
    ++out.walked;
    if (sweep_reason(rules, key, value, now)) doomed.push_back(key);
  });
  if (!walked) return std::unexpected(walked.error());
  for (const auto& key : doomed) {
    mixlb_ct_value value{};
    if (bpf_map_lookup_elem(fd, &key, &value) != 0) continue;  // gone meanwhile
    const auto reason = sweep_reason(rules, key, value, coarse_now_ns());
    if (!reason) {
      ++out.kept_late;
      continue;
    }
    if (bpf_map_delete_elem(fd, &key) != 0) {
      if (errno == ENOENT) continue;
      return datapath_failure("removing an idle connection", errno);
    }
    switch (*reason) {
      case SweepReason::kUdpIdle: ++out.udp_idle; break;
      case SweepReason::kTcpClosing: ++out.tcp_closing; break;
      case SweepReason::kTcpIdle: ++out.tcp_idle; break;
    }
  }
  out.took_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started).count());
  return out;
}

}  // namespace mixlb
