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
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

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

}  // namespace mixlb
