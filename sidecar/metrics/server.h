#pragma once
// The sidecar's Prometheus endpoint: HTTP/1.1 on a TCP address, served with
// Boost.Beast on the daemon's io_context.
//
//   GET  /metrics   200, text/plain; version=0.0.4 — whatever the scrape
//                   handler renders (collect.h)
//   GET  /          a small page linking /metrics
//   HEAD            either of them without the body
//   other methods   405; other paths 404; a malformed request 400 and a
//                   header over the limit 431, both followed by a close
//
// One accept coroutine and one per connection, spawned with log_failure,
// as the admin server does. What a client can make the daemon spend is
// bounded, so that a slow or hostile client costs only itself:
//   - connections: at most max_connections. A new connection always gets
//     in unless every slot is busy answering: it takes the slot of the
//     connection that has waited longest for its next request, so idle or
//     half-sent connections cannot lock a scraper out.
//   - time: a connection waits idle_timeout for a request to start,
//     request_timeout for the rest of it (a request sent a byte at a time
//     is cut off), write_timeout for each response.
//   - memory: request headers up to max_header_bytes; a request body is
//     refused.
//   - work: one scrape at a time. Requests that arrive while one runs wait
//     for its result, and a result younger than reuse_window is served
//     again, so scraping in a loop from many connections costs the daemon
//     one scrape per window. A scrape that takes longer than scrape_timeout
//     answers 503 to those waiting; one that throws answers 500.
//
// The scrape handler is a coroutine so that it can await what lives on
// another thread (a gossip snapshot, see answer_within.h) without blocking
// the io_context.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace mixlb::metrics {

struct MetricsServerOptions {
  std::size_t max_connections = 16;
  std::size_t max_header_bytes = 8 * 1024;
  // Waiting for a request to begin; Prometheus keeps its connection open
  // between scrapes, so this is longer than a usual scrape interval.
  std::chrono::milliseconds idle_timeout{90'000};
  // From a request's first byte to its last.
  std::chrono::milliseconds request_timeout{5'000};
  std::chrono::milliseconds write_timeout{10'000};
  // Prometheus' own default scrape timeout is 10 s; answering before it
  // turns a stuck scrape into a 503 it can report.
  std::chrono::milliseconds scrape_timeout{5'000};
  std::chrono::milliseconds reuse_window{1'000};
};

// Renders the exposition. Throws to fail the scrape (500, and a warning in
// the log with what it threw).
using ScrapeHandler = std::function<boost::asio::awaitable<std::string>()>;

class MetricsServer {
 public:
  MetricsServer(boost::asio::io_context& io, boost::asio::ip::tcp::endpoint listen,
                ScrapeHandler scrape, MetricsServerOptions options = {});
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  ~MetricsServer();  // stop()

  // Binds and starts accepting. Throws std::runtime_error naming the address
  // ("metrics on 127.0.0.1:9650: address already in use").
  void start();
  // Closes the listener and every connection. Call start() and stop() on
  // the io_context's thread, or while it is not running.
  void stop();

  // The bound address (the port picked, when the listen port was 0).
  boost::asio::ip::tcp::endpoint local_endpoint() const;
  std::size_t connections() const;
  // How many times the scrape handler has been started.
  std::uint64_t scrapes() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// "127.0.0.1:9650" or "[::1]:9650" as an endpoint, or why not.
std::expected<boost::asio::ip::tcp::endpoint, std::string> parse_listen_endpoint(
    std::string_view text);

// The endpoint as it is written in configuration and messages.
std::string to_string(const boost::asio::ip::tcp::endpoint& endpoint);

}  // namespace mixlb::metrics
