// HealthChecker against real sockets on loopback: a TCP listener, an HTTP
// server answering a chosen status, one that never answers, and a port where
// nothing listens. Timings are short (tens of ms) so the cases run quickly;
// each case runs its io_context until the expected change or a deadline.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "health.h"

namespace mixlb {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;

// Accepts connections; answers each with `reply` (if any) and keeps the
// sockets open until it is destroyed.
class Server {
 public:
  Server(asio::io_context& io, std::optional<std::string> reply)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)), reply_(std::move(reply)) {
    accept();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  void close() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (auto& s : open_) s->close(ignored);
  }

 private:
  void accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
      if (ec) return;
      auto s = std::make_shared<tcp::socket>(std::move(socket));
      open_.push_back(s);
      if (reply_) asio::async_write(*s, asio::buffer(*reply_), [s](auto, auto) {});
      accept();
    });
  }
  tcp::acceptor acceptor_;
  std::optional<std::string> reply_;
  std::vector<std::shared_ptr<tcp::socket>> open_;
};

HealthCheckConfig fast(HealthCheckConfig::Kind kind, std::uint16_t port) {
  HealthCheckConfig c;
  c.kind = kind;
  c.port = port;
  c.path = "/healthz";
  c.interval = 20ms;
  c.timeout = 100ms;
  c.rise = 2;
  c.fall = 2;
  return c;
}

struct Changes {
  std::vector<std::pair<bool, std::string>> seen;
  HealthChecker::OnChange callback() {
    return [this](bool healthy, const std::string& why) { seen.emplace_back(healthy, why); };
  }
};

// Runs the loop until `done` or two seconds have passed.
template <typename Done>
void run_until(asio::io_context& io, Done done) {
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (!done() && std::chrono::steady_clock::now() < deadline) io.run_for(10ms);
}

// A loopback port where nothing listens (bound then released).
std::uint16_t closed_port(asio::io_context& io) {
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

}  // namespace

TEST_SUITE("health") {

TEST_CASE("a TCP check turns healthy after `rise` successes, and reports it once") {
  asio::io_context io;
  Server server(io, std::nullopt);
  Changes changes;
  HealthChecker checker(io, fast(HealthCheckConfig::Kind::kTcp, server.port()), changes.callback());
  CHECK_FALSE(checker.healthy());
  checker.start();
  run_until(io, [&] { return checker.probes() >= 4; });
  CHECK(checker.healthy());
  REQUIRE(changes.seen.size() == 1);
  CHECK(changes.seen[0].first);
  CHECK(checker.last_result() == "ok");
}

TEST_CASE("nothing listening keeps the app unhealthy and says why") {
  asio::io_context io;
  Changes changes;
  HealthChecker checker(io, fast(HealthCheckConfig::Kind::kTcp, closed_port(io)), changes.callback());
  checker.start();
  run_until(io, [&] { return checker.probes() >= 3; });
  CHECK_FALSE(checker.healthy());
  CHECK(changes.seen.empty());
  CHECK(checker.last_result().find("Connection refused") != std::string::npos);
  CHECK(checker.last_result().find("127.0.0.1:") != std::string::npos);
}

TEST_CASE("an app that goes away turns unhealthy after `fall` failures") {
  asio::io_context io;
  Server server(io, std::nullopt);
  Changes changes;
  HealthChecker checker(io, fast(HealthCheckConfig::Kind::kTcp, server.port()), changes.callback());
  checker.start();
  run_until(io, [&] { return checker.healthy(); });
  REQUIRE(checker.healthy());
  server.close();
  run_until(io, [&] { return !checker.healthy(); });
  CHECK_FALSE(checker.healthy());
  REQUIRE(changes.seen.size() == 2);
  CHECK_FALSE(changes.seen[1].first);
  CHECK(changes.seen[1].second.find("connect 127.0.0.1:") == 0);
}

TEST_CASE("an HTTP check wants a 2xx or 3xx status line") {
  asio::io_context io;
  Server good(io, std::string("HTTP/1.1 204 No Content\r\n\r\n"));
  Server bad(io, std::string("HTTP/1.0 503 Service Unavailable\r\n\r\n"));
  Changes good_changes, bad_changes;
  HealthChecker up(io, fast(HealthCheckConfig::Kind::kHttp, good.port()), good_changes.callback());
  HealthChecker down(io, fast(HealthCheckConfig::Kind::kHttp, bad.port()), bad_changes.callback());
  up.start();
  down.start();
  run_until(io, [&] { return up.healthy() && down.probes() >= 3; });
  CHECK(up.healthy());
  CHECK_FALSE(down.healthy());
  CHECK(down.last_result() == "HTTP 503");
}

TEST_CASE("an HTTP server that accepts but never answers fails by timeout") {
  asio::io_context io;
  Server mute(io, std::nullopt);
  Changes changes;
  HealthChecker checker(io, fast(HealthCheckConfig::Kind::kHttp, mute.port()), changes.callback());
  checker.start();
  run_until(io, [&] { return checker.probes() >= 2; });
  CHECK_FALSE(checker.healthy());
  CHECK(checker.last_result() == "HTTP status from 127.0.0.1:" + std::to_string(mute.port()) +
                                     ": no answer within 100 ms");
}

TEST_CASE("a reply that is not HTTP fails with the line it got") {
  asio::io_context io;
  Server odd(io, std::string("SSH-2.0-OpenSSH\r\n"));
  Changes changes;
  HealthChecker checker(io, fast(HealthCheckConfig::Kind::kHttp, odd.port()), changes.callback());
  checker.start();
  run_until(io, [&] { return checker.probes() >= 2; });
  CHECK_FALSE(checker.healthy());
  CHECK(checker.last_result() == "not an HTTP status line: 'SSH-2.0-OpenSSH'");
}

TEST_CASE("stop ends the checking: no more probes") {
  asio::io_context io;
  Server server(io, std::nullopt);
  HealthChecker checker(io, fast(HealthCheckConfig::Kind::kTcp, server.port()), nullptr);
  checker.start();
  run_until(io, [&] { return checker.probes() >= 2; });
  checker.stop();
  const auto probes = checker.probes();
  io.run_for(200ms);
  CHECK(checker.probes() <= probes + 1);  // one probe may have been in flight
}


TEST_CASE("HealthChecks: one failing service is unhealthy alone; others and unchecked ones are not") {
  asio::io_context io;
  Server up(io, std::nullopt);
  const std::uint16_t down = closed_port(io);
  std::vector<std::pair<std::vector<std::string>, bool>> seen;
  HealthChecks checks(io, [&](const ServiceCheck& c, bool healthy, const std::string&) {
    seen.emplace_back(c.services, healthy);
  });
  checks.set({ServiceCheck{fast(HealthCheckConfig::Kind::kTcp, up.port()), {"a:80/tcp", "a:53/udp"}},
              ServiceCheck{fast(HealthCheckConfig::Kind::kTcp, down), {"a:7000/tcp"}}});
  CHECK_FALSE(checks.healthy("a:80/tcp"));  // every check starts unhealthy
  run_until(io, [&] { return checks.healthy("a:80/tcp"); });
  CHECK(checks.healthy("a:80/tcp"));
  CHECK(checks.healthy("a:53/udp"));
  CHECK_FALSE(checks.healthy("a:7000/tcp"));
  CHECK(checks.healthy("b:443/tcp"));  // no check stands for it
  CHECK_FALSE(checks.healthy());
  CHECK(checks.last_result().starts_with("tcp 127.0.0.1:" + std::to_string(down) + ": "));
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].first == std::vector<std::string>{"a:80/tcp", "a:53/udp"});
  CHECK(seen[0].second);
  REQUIRE(checks.view().size() == 2);
}

TEST_CASE("HealthChecks::set keeps a kept target's verdict, starts new ones unhealthy, stops gone ones") {
  asio::io_context io;
  Server first(io, std::nullopt), fourth(io, std::nullopt);
  std::vector<std::string> changed;  // the first service of each change
  HealthChecks checks(io, [&](const ServiceCheck& c, bool, const std::string&) {
    changed.push_back(c.services.front());
  });
  Server third(io, std::nullopt);
  checks.set({ServiceCheck{fast(HealthCheckConfig::Kind::kTcp, first.port()), {"a:80/tcp"}},
              ServiceCheck{fast(HealthCheckConfig::Kind::kTcp, third.port()), {"a:81/tcp"}}});
  run_until(io, [&] { return checks.healthy(); });
  REQUIRE(checks.healthy());
  changed.clear();
  // A reload: port 80's check stays (now for two services), port 81's goes,
  // another port is a new target.
  checks.set({ServiceCheck{fast(HealthCheckConfig::Kind::kTcp, first.port()), {"a:80/tcp", "a:90/tcp"}},
              ServiceCheck{fast(HealthCheckConfig::Kind::kTcp, fourth.port()), {"a:82/tcp"}}});
  CHECK(checks.healthy("a:80/tcp"));
  CHECK(checks.healthy("a:90/tcp"));
  CHECK_FALSE(checks.healthy("a:82/tcp"));
  CHECK(checks.healthy("a:81/tcp"));  // no longer checked
  REQUIRE(checks.view().size() == 2);
  CHECK(checks.view()[0].check.services.size() == 2);
  // The gone check no longer probes: its app going away changes nothing.
  third.close();
  run_until(io, [&] { return checks.healthy("a:82/tcp"); });
  io.run_for(150ms);
  CHECK(fmt::format("{}", fmt::join(changed, " ")) == "a:82/tcp");
}

}  // TEST_SUITE

}  // namespace mixlb
