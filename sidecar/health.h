#pragma once
// HealthChecker watches the node's own app: every interval it opens a TCP
// connection to it (kind tcp) or sends an HTTP GET and wants a 2xx/3xx status
// line (kind http), within a timeout. `rise` successes in a row make the app
// healthy, `fall` failures in a row make it unhealthy; the checker starts
// unhealthy, so a node serves a VIP only once its app has answered. Each
// change is reported through a callback, on the io_context's thread, with the
// reason ("connect 127.0.0.1:80: Connection refused", "HTTP 503").
//
// One coroutine per checker; the timeout is a timer that closes the socket,
// which ends whatever operation the probe was waiting on.
//
// HealthChecks runs one checker per service: an app is often several
// (nginx on :80, a gRPC server on :9000), and one failing must take the node
// out of that service only, not out of every VIP port. Services that share
// a check (the same target, kind and path) share its checker; a service
// without a check counts as healthy.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mixlb {

struct HealthCheckConfig {
  enum class Kind { kTcp, kHttp };
  Kind kind = Kind::kTcp;
  std::string host = "127.0.0.1";  // an IPv4 or IPv6 address
  std::uint16_t port = 80;
  std::string path = "/";  // http only
  std::chrono::milliseconds interval{1000};
  std::chrono::milliseconds timeout{500};
  std::uint32_t rise = 2;
  std::uint32_t fall = 3;
};

class HealthChecker {
 public:
  // healthy, and why (the last probe's result).
  using OnChange = std::function<void(bool, const std::string&)>;

  HealthChecker(boost::asio::io_context& io, HealthCheckConfig config, OnChange on_change);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  void start();
  void stop();
  // Checks from the next probe on with `config` (a reload), keeping the
  // verdict and the streaks.
  void reconfigure(HealthCheckConfig config);
  const HealthCheckConfig& config() const;

  bool healthy() const;
  // The last probe's result: "ok" or why it failed.
  const std::string& last_result() const;
  std::uint64_t probes() const;

 public:
  struct State;  // shared with the checking coroutine, which may outlive this object

 private:
  boost::asio::io_context* io_;
  std::shared_ptr<State> state_;
};

// One check and the services (VIP port labels, "10.100.0.1:80/tcp") whose
// health it decides.
struct ServiceCheck {
  HealthCheckConfig config;
  std::vector<std::string> services;
};

class HealthChecks {
 public:
  // A check changed its verdict.
  using OnChange = std::function<void(const ServiceCheck&, bool healthy, const std::string& why)>;

  HealthChecks(boost::asio::io_context& io, OnChange on_change);
  ~HealthChecks();
  HealthChecks(const HealthChecks&) = delete;
  HealthChecks& operator=(const HealthChecks&) = delete;

  // Makes the running checks exactly `checks` (a start, or a reload): a
  // check whose target, kind and path are unchanged keeps its checker and its
  // verdict (its timings and services follow the new entry), the others start
  // unhealthy, and checks no longer wanted stop.
  void set(std::vector<ServiceCheck> checks);
  void stop();

  // A service's verdict; true for a service no check stands for.
  bool healthy(std::string_view service) const;
  // Every check passes (true without checks).
  bool healthy() const;
  // "ok", or the first failing check's target and reason.
  std::string last_result() const;

  struct View {
    const ServiceCheck& check;
    const HealthChecker& checker;
  };
  std::vector<View> view() const;

 private:
  struct Entry {
    ServiceCheck check;
    std::unique_ptr<HealthChecker> checker;
  };
  boost::asio::io_context& io_;
  OnChange on_change_;
  std::vector<std::unique_ptr<Entry>> entries_;
};

// "tcp 10.100.0.1:80", "http [fd00::1]:8080/healthz": how a check is shown.
std::string check_target(const HealthCheckConfig& config);
// The same probe: kind, host and port, and the path of an HTTP check.
bool same_target(const HealthCheckConfig& a, const HealthCheckConfig& b);

}  // namespace mixlb
