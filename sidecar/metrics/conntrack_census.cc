#include "metrics/conntrack_census.h"

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <vector>

#include "metrics/answer_within.h"

namespace mixlb::metrics {

namespace {

std::unexpected<DatapathError> fail(std::string what, int err) {
  // libbpf returns -errno; the raw calls leave it in errno.
  if (err < 0) err = -err;
  if (err == 0) err = EIO;
  return std::unexpected(DatapathError{std::move(what), std::error_code(err, std::generic_category())});
}

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
    return fail("reading the map information of " + what, rc);
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

}  // namespace

std::string_view to_string(FlowState state) {
  switch (state) {
    case FlowState::kActive:
      return "active";
    case FlowState::kClosing:
      return "closing";
    case FlowState::kIdle:
      return "idle";
  }
  return "unknown";
}

FlowState classify_flow(const mixlb_flow_key& key, const mixlb_ct_value& value,
                        std::uint64_t now_ns, std::chrono::nanoseconds active_window) {
  constexpr std::uint8_t kTcp = 6;
  if (key.proto == kTcp && (value.flags & (MIXLB_CT_SEEN_FIN | MIXLB_CT_SEEN_RST)) != 0)
    return FlowState::kClosing;
  // An entry touched after `now_ns` was read is as recent as can be; the
  // unsigned difference would otherwise wrap and call it idle.
  if (value.last_seen_ns >= now_ns ||
      now_ns - value.last_seen_ns <= static_cast<std::uint64_t>(active_window.count()))
    return FlowState::kActive;
  return FlowState::kIdle;
}

DpResult<UniqueFd> open_pinned_conntrack(const std::string& pin_dir) {
  const std::string path = pin_dir + "/mixlb_ct";
  UniqueFd fd(bpf_obj_get(path.c_str()));
  if (!fd) {
    const int err = errno;
    return fail("opening the connection table pinned at " + path +
                    (err == EPERM || err == EACCES ? " (needs root or CAP_BPF)" : ""),
                err);
  }
  auto info = conntrack_info(fd.get(), path);
  if (!info) return std::unexpected(info.error());
  return fd;
}

DpResult<ConntrackCensus> take_conntrack_census(int ct_fd, const ConntrackCensusOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  auto info = conntrack_info(ct_fd, "the connection table");
  if (!info) return std::unexpected(info.error());

  ConntrackCensus census;
  census.capacity = info->max_entries;
  const std::uint64_t now = coarse_now_ns();
  const std::chrono::nanoseconds window = options.active_window;

  std::uint32_t batch = std::max<std::uint32_t>(options.batch, 1);
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
    const int rc = bpf_map_lookup_batch(ct_fd, first ? nullptr : position, next, keys.data(),
                                        values.data(), &count, &opts);
    const int err = rc == 0 ? 0 : errno;
    // The entries of the last call arrive together with ENOENT.
    for (__u32 i = 0; i < count; ++i) {
      ++census.entries;
      ++census.flows[{values[i].vip_id, values[i].node_id, classify_flow(keys[i], values[i], now, window)}];
    }
    if (rc != 0 && err == ENOENT) break;
    if (rc != 0 && err == ENOSPC && count == 0) {
      // One hash bucket holds more entries than a batch: read it again with
      // room for all of them.
      batch *= 2;
      keys.resize(batch);
      values.resize(batch);
      continue;
    }
    if (rc != 0) return fail("walking the connection table", err);
    std::memcpy(position, next, sizeof(position));
    first = false;
  }
  census.took = std::chrono::steady_clock::now() - started;
  return census;
}

ConntrackCensusTaker::ConntrackCensusTaker(UniqueFd ct, ConntrackCensusOptions options)
    : table_(std::make_shared<const Table>(Table{std::move(ct), options})) {}

ConntrackCensusTaker::~ConntrackCensusTaker() {
  thread_.stop();
  thread_.join();
}

// g++ 12 can inline Asio's frame allocator into a coroutine's ramp but not
// its matching operator delete, then reports the pair as mismatched (see
// admin_server.cc); the pair is Asio's own.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

boost::asio::awaitable<DpResult<ConntrackCensus>> ConntrackCensusTaker::take() {
  // The walk holds the table (and its fd) by a shared pointer, so a census
  // finishing after the taker is gone still reads an open descriptor.
  // `ask` is named, not a lambda in the co_await expression: see
  // answer_within.h for what g++ 12 does to such a temporary.
  using Result = DpResult<ConntrackCensus>;
  const std::function<void(std::function<void(Result)>)> ask =
      [table = table_, thread = thread_.get_executor()](std::function<void(Result)> done) {
        boost::asio::post(thread, [table, done = std::move(done)] {
          done(take_conntrack_census(table->fd.get(), table->options));
        });
      };
  const boost::asio::any_io_executor executor = co_await boost::asio::this_coro::executor;
  auto census = co_await answer_within<Result>(executor, table_->options.deadline, ask);
  if (census) co_return std::move(*census);
  co_return std::unexpected(DatapathError{
      "the census of the connection table did not finish within " +
          std::to_string(table_->options.deadline.count()) + " ms",
      std::make_error_code(std::errc::timed_out)});
}

#pragma GCC diagnostic pop

}  // namespace mixlb::metrics
