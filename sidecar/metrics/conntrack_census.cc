#include "metrics/conntrack_census.h"

#include <functional>

namespace mixlb::metrics {

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

DpResult<ConntrackCensus> take_conntrack_census(int ct_fd, const ConntrackCensusOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  auto info = conntrack_info(ct_fd, "the connection table");
  if (!info) return std::unexpected(info.error());

  ConntrackCensus census;
  census.capacity = info->max_entries;
  const std::uint64_t now = coarse_now_ns();
  const std::chrono::nanoseconds window = options.active_window;

  auto walked = walk_conntrack(ct_fd, options.batch, [&](const mixlb_flow_key& key, const mixlb_ct_value& value) {
    ++census.entries;
    ++census.flows[{value.vip_id, value.node_id, classify_flow(key, value, now, window)}];
  });
  if (!walked) return std::unexpected(walked.error());
  census.took = std::chrono::steady_clock::now() - started;
  return census;
}

ConntrackWalker::ConntrackWalker(UniqueFd ct, ConntrackCensusOptions options)
    : table_(std::make_shared<const Table>(Table{std::move(ct), options})) {}

ConntrackWalker::~ConntrackWalker() {
  thread_.stop();
  thread_.join();
}

boost::asio::awaitable<DpResult<ConntrackCensus>> ConntrackWalker::take() {
  const ConntrackCensusOptions options = table_->options;
  return run<ConntrackCensus>([options](int fd) { return take_conntrack_census(fd, options); },
                              "the census of the connection table");
}

}  // namespace mixlb::metrics
