// MetricsEndpoint with canned sources: a scrape gathers each source into
// its families, waits for the gossip thread only until its deadline, leaves
// out the census when there is no table to count, fails (500, with the
// reason) when the data path cannot be read, and serves it all over HTTP on
// the io_context it was given.
// clang-format off
// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>
// clang-format on

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "common/log_failure.h"
#include "metrics/endpoint.h"

namespace mixlb::metrics {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

bool has_line(const std::string& text, const std::string& line) {
  return text.starts_with(line + "\n") || text.find("\n" + line + "\n") != std::string::npos;
}

// Sources as a daemon with one VIP, one check and gossip off would give.
MetricsSources canned() {
  MetricsSources s;
  s.node = "mix1";
  s.version = "0.1.0";
  s.datapath = [] {
    DatapathFigures d;
    VipFigures v;
    v.vip = "10.100.0.1:80/tcp";
    v.vip_id = 0;
    v.backends = 1;
    v.counters.local_pkts = 5;
    v.nodes = {{"mix1", true, 1, {5, 370}}};
    d.vips.push_back(v);
    return DpResult<DatapathFigures>(d);
  };
  s.xdp_mode = [] { return std::optional(AttachMode::kGeneric); };
  s.uplink_attached = [] { return true; };
  s.health = [] { return std::vector<ServiceHealth>{{"app", false}}; };
  s.app_health = [] { return std::vector<AppHealth>{{"mix1", false}}; };
  s.table_rebuilds = [] { return std::uint64_t{4}; };
  return s;
}

const tcp::endpoint kLoopback(asio::ip::make_address("127.0.0.1"), 0);

// Runs `endpoint.scrape()` on `io` to its end; the exception it threw, if any.
struct Scraped {
  std::optional<std::string> text;
  std::string error;
};
Scraped scrape_on(asio::io_context& io, MetricsEndpoint& endpoint) {
  Scraped out;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        try {
          out.text = co_await endpoint.scrape();
        } catch (const std::exception& e) {
          out.error = e.what();
        }
      },
      log_failure("endpoint test"));
  io.run_for(5s);
  io.restart();
  return out;
}

TEST_CASE("a scrape gathers every source into its family") {
  asio::io_context io;
  MetricsEndpoint endpoint(io, kLoopback, canned());
  const auto s = scrape_on(io, endpoint);
  REQUIRE(s.text);
  const std::string& t = *s.text;
  CHECK(has_line(t, "mixlb_node_info{node=\"mix1\",version=\"0.1.0\"} 1"));
  CHECK(has_line(t, "mixlb_vip_packets_total{vip=\"10.100.0.1:80/tcp\",path=\"local\"} 5"));
  CHECK(has_line(t, "mixlb_vip_node_bytes_total{vip=\"10.100.0.1:80/tcp\",node=\"mix1\",role=\"local\"} 370"));
  CHECK(has_line(t, "mixlb_xdp_mode{mode=\"generic\"} 1"));
  CHECK(has_line(t, "mixlb_uplink_attached 1"));
  CHECK(has_line(t, "mixlb_health_check_healthy{service=\"app\"} 0"));
  CHECK(has_line(t, "mixlb_app_healthy{node=\"mix1\"} 0"));
  CHECK(has_line(t, "mixlb_table_rebuilds_total 4"));
  // No pin directory: no census; gossip off: no gossip families.
  CHECK(t.find("mixlb_conntrack_entries") == std::string::npos);
  CHECK(t.find("mixlb_gossip") == std::string::npos);
}

TEST_CASE("gossip: a snapshot from the gossip thread is used; none within the deadline is said so") {
  asio::io_context io;
  std::thread gossip_thread;
  auto sources = canned();
  sources.gossip_snapshot = [&](std::function<void(GossipSnapshotResult)> done) {
    gossip_thread = std::thread([done] {
      gossip::TransportSnapshot snapshot;
      snapshot.core.probes = 77;
      gossip::Member self;
      self.name = "mix1";
      self.state = gossip::MemberState::kAlive;
      snapshot.members = {self};
      done(snapshot);
    });
  };
  MetricsEndpoint answered(io, kLoopback, sources);
  const auto a = scrape_on(io, answered);
  gossip_thread.join();
  REQUIRE(a.text);
  CHECK(has_line(*a.text, "mixlb_gossip_snapshot_success 1"));
  CHECK(has_line(*a.text, "mixlb_gossip_probes_total 77"));
  CHECK(has_line(*a.text, "mixlb_gossip_members{state=\"alive\"} 1"));

  // A gossip thread that does not answer: the scrape goes on without it
  // after the deadline, and an error answer counts as no answer.
  std::function<void(GossipSnapshotResult)> kept;
  sources.gossip_snapshot = [&](std::function<void(GossipSnapshotResult)> done) { kept = done; };
  MetricsEndpointOptions options;
  options.gossip_deadline = 50ms;
  MetricsEndpoint silent(io, kLoopback, sources, options);
  const auto started = std::chrono::steady_clock::now();
  const auto b = scrape_on(io, silent);
  REQUIRE(b.text);
  CHECK(std::chrono::steady_clock::now() - started < 2s);
  CHECK(has_line(*b.text, "mixlb_gossip_snapshot_success 0"));
  CHECK(b.text->find("mixlb_gossip_probes_total") == std::string::npos);

  sources.gossip_snapshot = [](std::function<void(GossipSnapshotResult)> done) {
    done(std::unexpected(std::make_error_code(std::errc::not_connected)));
  };
  MetricsEndpoint stopped(io, kLoopback, sources);
  const auto c = scrape_on(io, stopped);
  REQUIRE(c.text);
  CHECK(has_line(*c.text, "mixlb_gossip_snapshot_success 0"));
}

TEST_CASE("a connection table that cannot be opened leaves the census out, not the scrape") {
  asio::io_context io;
  auto sources = canned();
  sources.pin_dir = "/nonexistent/mixlb-endpoint-test";
  MetricsEndpoint endpoint(io, kLoopback, sources);
  for (int i = 0; i < 2; ++i) {  // and again: it tries to open the table at each scrape
    const auto s = scrape_on(io, endpoint);
    REQUIRE(s.text);
    CHECK(s.text->find("mixlb_conntrack_entries") == std::string::npos);
    CHECK(has_line(*s.text, "mixlb_uplink_attached 1"));
  }
}

TEST_CASE("counters that cannot be read fail the scrape with the reason") {
  asio::io_context io;
  auto sources = canned();
  sources.datapath = [] {
    return DpResult<DatapathFigures>(std::unexpected(DatapathError{
        "reading the global counters", std::make_error_code(std::errc::bad_file_descriptor)}));
  };
  MetricsEndpoint endpoint(io, kLoopback, sources);
  const auto s = scrape_on(io, endpoint);
  CHECK_FALSE(s.text);
  CHECK(s.error.find("reading the global counters") != std::string::npos);
}

// GET /metrics over a plain socket with HTTP/1.0: the server answers and
// closes, so the response is everything read until the end.
std::string http_get(const tcp::endpoint& to, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  REQUIRE(::connect(fd, to.data(), static_cast<socklen_t>(to.size())) == 0);
  const std::string request = "GET " + path + " HTTP/1.0\r\n\r\n";
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  std::string response;
  char chunk[16384];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) break;
    const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) break;
    response.append(chunk, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return response;
}

TEST_CASE("served over HTTP on the given io_context; stop() closes the port") {
  asio::io_context io;
  auto sources = canned();
  std::atomic<bool> failing = false;
  const auto datapath = sources.datapath;
  sources.datapath = [&failing, datapath] {
    if (failing) {
      return DpResult<DatapathFigures>(std::unexpected(
          DatapathError{"reading VIP 0", std::make_error_code(std::errc::bad_file_descriptor)}));
    }
    return datapath();
  };
  MetricsEndpointOptions options;
  options.server.reuse_window = 0ms;
  MetricsEndpoint endpoint(io, kLoopback, sources, options);
  endpoint.start();
  const tcp::endpoint at = endpoint.local_endpoint();
  CHECK(at.port() != 0);
  auto work = asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });

  const std::string ok = http_get(at, "/metrics");
  CHECK(ok.starts_with("HTTP/1.0 200 OK\r\n"));
  CHECK(ok.find("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n") != std::string::npos);
  CHECK(ok.find("\nmixlb_node_info{node=\"mix1\",version=\"0.1.0\"} 1\n") != std::string::npos);

  failing = true;
  const std::string failed = http_get(at, "/metrics");
  CHECK(failed.starts_with("HTTP/1.0 500 Internal Server Error\r\n"));
  CHECK(failed.find("scrape failed: reading VIP 0: ") != std::string::npos);

  asio::post(io, [&] { endpoint.stop(); });
  work.reset();
  runner.join();  // every connection and coroutine has ended
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  CHECK(::connect(fd, at.data(), static_cast<socklen_t>(at.size())) != 0);
  ::close(fd);
}

TEST_CASE("a taken port: start() throws naming the address") {
  asio::io_context io;
  MetricsEndpoint first(io, kLoopback, canned());
  first.start();
  MetricsEndpoint second(io, first.local_endpoint(), canned());
  CHECK_THROWS_WITH_AS(second.start(),
                       ("metrics on 127.0.0.1:" + std::to_string(first.local_endpoint().port()) +
                        ": address already in use")
                           .c_str(),
                       std::runtime_error);
}

}  // namespace
}  // namespace mixlb::metrics
