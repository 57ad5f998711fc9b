#pragma once
// The sidecar's /metrics as the daemon runs it: a MetricsServer (server.h)
// whose scrape handler gathers the figures from the daemon's parts and
// renders them (collect.h).
//
// The daemon hands its parts in as MetricsSources, small functions that
// read one thing each, so that this file knows what a scrape needs but
// nothing of how the daemon is wired, and a test can hand in canned ones.
// A scrape runs on the io_context's thread and never blocks it: the
// connection-table census runs on the census taker's thread
// (conntrack_census.h) and the gossip snapshot comes from the gossip thread
// within a deadline (answer_within.h); everything else is a few map reads.
//
// The census taker opens the pinned connection table at the first scrape,
// not at start(): the endpoint is bound before the data path is loaded, so
// that a taken port stops a start before it changes anything.
// clang-format off
// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>
// clang-format on

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "metrics/collect.h"
#include "metrics/server.h"
#include "transport.h"

namespace mixlb::metrics {

using GossipSnapshotResult = std::expected<gossip::TransportSnapshot, std::error_code>;

struct MetricsSources {
  std::string node;
  std::string version;
  // The data path's counters (read_datapath() over the daemon's parts).
  std::function<DpResult<DatapathFigures>()> datapath;
  // Where the connection table is pinned; empty: no census.
  std::string pin_dir;
  // The XDP attach mode on the uplink (nullopt: none), and whether the
  // program is attached and the uplink there.
  std::function<std::optional<AttachMode>()> xdp_mode;
  std::function<bool()> uplink_attached;
  // This node's own checks, as (service, healthy) pairs.
  std::function<std::vector<ServiceHealth>()> health;
  // Every member's app health as this node last heard it.
  std::function<std::vector<AppHealth>()> app_health;
  std::function<std::uint64_t()> table_rebuilds;
  // The sweeper's, close tracking's and invalidation's counters; empty:
  // their families are left out.
  std::function<LifecycleFigures()> lifecycle;
  // The reuseport selector's generations; empty: its families are left out.
  std::function<std::optional<SocketsFigures>()> sockets;
  // Asks the gossip thread for a snapshot, answered through the callback on
  // any thread; empty when gossip is off.
  std::function<void(std::function<void(GossipSnapshotResult)>)> gossip_snapshot;
};

struct MetricsEndpointOptions {
  MetricsServerOptions server;
  // How long a scrape waits for the gossip thread.
  std::chrono::milliseconds gossip_deadline{1000};
  ConntrackCensusOptions census;
};

class MetricsEndpoint {
 public:
  MetricsEndpoint(boost::asio::io_context& io, boost::asio::ip::tcp::endpoint listen,
                  MetricsSources sources, MetricsEndpointOptions options = {});
  ~MetricsEndpoint();  // stop()
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  // Binds and serves. Throws std::runtime_error naming the address
  // ("metrics on 127.0.0.1:9650: address already in use").
  void start();
  // Closes the listener and every connection (idempotent).
  void stop();
  boost::asio::ip::tcp::endpoint local_endpoint() const;

  // One scrape's exposition, as GET /metrics answers it. Throws when the
  // data path's counters cannot be read.
  boost::asio::awaitable<std::string> scrape();

 private:
  struct Gather;  // the sources and the census taker, shared with scrapes in flight
  std::shared_ptr<Gather> gather_;
  MetricsServer server_;
};

}  // namespace mixlb::metrics
