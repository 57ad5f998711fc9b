#include "metrics/endpoint.h"

#include <spdlog/spdlog.h>

#include <boost/asio/this_coro.hpp>
#include <stdexcept>

#include "metrics/answer_within.h"
#include "metrics/conntrack_census.h"

namespace mixlb::metrics {

namespace asio = boost::asio;

// g++ 12 can inline Asio's frame allocator into a coroutine's ramp but not
// its matching operator delete, then reports the pair as mismatched (see
// admin_server.cc); the pair is Asio's own.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

struct MetricsEndpoint::Gather {
  MetricsSources sources;
  MetricsEndpointOptions options;
  std::unique_ptr<ConntrackWalker> census;
  std::string census_problem;  // the last reason there was no census, said once

  // The census of the pinned table, or nullopt (and a warning the first
  // time it fails for a given reason: the families are then missing).
  asio::awaitable<std::optional<ConntrackCensus>> take_census() {
    if (sources.pin_dir.empty()) co_return std::nullopt;
    if (!census) {
      auto fd = open_pinned_conntrack(sources.pin_dir);
      if (!fd) {
        note_census_problem(fd.error().message());
        co_return std::nullopt;
      }
      census = std::make_unique<ConntrackWalker>(std::move(*fd), options.census);
    }
    auto taken = co_await census->take();
    if (!taken) {
      note_census_problem(taken.error().message());
      // The pin may have been replaced (a cleanup and a new start): open it
      // again next time.
      census.reset();
      co_return std::nullopt;
    }
    census_problem.clear();
    co_return std::move(*taken);
  }

  void note_census_problem(const std::string& why) {
    if (why == census_problem) return;
    census_problem = why;
    spdlog::warn("metrics: no connection-table census ({}); its families are left out", why);
  }

  asio::awaitable<GossipFigures> gossip() {
    GossipFigures g;
    if (!sources.gossip_snapshot) co_return g;
    g.enabled = true;
    const asio::any_io_executor executor = co_await asio::this_coro::executor;
    auto answer = co_await answer_within<GossipSnapshotResult>(executor, options.gossip_deadline,
                                                               sources.gossip_snapshot);
    if (answer && *answer) g.snapshot = std::move(**answer);
    co_return g;
  }

  asio::awaitable<std::string> scrape() {
    MetricsFigures f;
    f.node = sources.node;
    f.version = sources.version;
    // What waits on another thread first; the figures of this thread are
    // read after it, as close together as they can be.
    f.gossip = co_await gossip();
    f.conntrack = co_await take_census();
    auto datapath = sources.datapath();
    if (!datapath) throw std::runtime_error(datapath.error().message());
    f.datapath = std::move(*datapath);
    f.xdp_mode = sources.xdp_mode();
    f.uplink_attached = sources.uplink_attached();
    f.health = sources.health();
    f.app_health = sources.app_health();
    f.table_rebuilds = sources.table_rebuilds();
    if (sources.lifecycle) f.lifecycle = sources.lifecycle();
    if (sources.sockets) f.sockets = sources.sockets();
    co_return render_metrics(f);
  }
};

MetricsEndpoint::MetricsEndpoint(asio::io_context& io, asio::ip::tcp::endpoint listen,
                                 MetricsSources sources, MetricsEndpointOptions options)
    : gather_(std::make_shared<Gather>(Gather{std::move(sources), options, nullptr, {}})),
      server_(io, listen,
              [gather = gather_]() -> asio::awaitable<std::string> {
                co_return co_await gather->scrape();
              },
              options.server) {}

asio::awaitable<std::string> MetricsEndpoint::scrape() {
  // Held by the frame: a scrape in flight outlives the endpoint.
  const auto gather = gather_;
  co_return co_await gather->scrape();
}

#pragma GCC diagnostic pop

MetricsEndpoint::~MetricsEndpoint() { stop(); }

void MetricsEndpoint::start() { server_.start(); }
void MetricsEndpoint::stop() { server_.stop(); }

asio::ip::tcp::endpoint MetricsEndpoint::local_endpoint() const { return server_.local_endpoint(); }

}  // namespace mixlb::metrics
