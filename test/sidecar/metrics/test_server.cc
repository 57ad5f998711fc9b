// MetricsServer over real sockets on loopback (port 0). The server runs on
// its io_context in a thread of its own; the tests are blocking clients
// written with plain sockets and poll(), so that a client can misbehave in
// ways an HTTP library would not let it: stop half-way through a request,
// dribble it a byte at a time, send garbage, never read. Timeouts are short
// (hundreds of ms) and every wait is bounded.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

// clang-format off
// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>
// clang-format on

#include <doctest/doctest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "metrics/server.h"

namespace mixlb::metrics {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;

  std::string header(const std::string& name) const {
    const auto found = headers.find(name);
    return found == headers.end() ? std::string() : found->second;
  }
};

// A blocking HTTP client that does exactly what it is told.
class Client {
 public:
  explicit Client(const tcp::endpoint& to) {
    fd_ = ::socket(to.address().is_v6() ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    REQUIRE(::connect(fd_, to.data(), static_cast<socklen_t>(to.size())) == 0);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client() { ::close(fd_); }

  void send(std::string_view bytes) { REQUIRE(try_send(bytes)); }

  // For a thread of its own, where a failed REQUIRE would end the process.
  bool try_send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // One response (its header only for HEAD); nullopt when the connection
  // ended or stalled first.
  std::optional<Response> response(bool head = false, std::chrono::milliseconds timeout = 3s) {
    const auto deadline = Clock::now() + timeout;
    std::size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos)
      if (!fill(deadline)) return std::nullopt;
    Response r;
    const std::string head_text = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    if (std::sscanf(head_text.c_str(), "HTTP/1.%*d %d", &r.status) != 1) return std::nullopt;
    std::size_t at = head_text.find("\r\n");
    while (at != std::string::npos) {
      const std::size_t next = head_text.find("\r\n", at + 2);
      const std::string line = head_text.substr(at + 2, next == std::string::npos ? next : next - at - 2);
      const std::size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
      }
      at = next;
    }
    if (head) return r;
    const std::size_t length = std::stoul(r.header("content-length"));
    while (buffer_.size() < length)
      if (!fill(deadline)) return std::nullopt;
    r.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return r;
  }

  // True when the server closed the connection (end of stream or reset)
  // within `timeout`, having sent nothing more.
  bool closed(std::chrono::milliseconds timeout = 3s) {
    const auto deadline = Clock::now() + timeout;
    while (fill(deadline)) {
    }
    return ended_ && buffer_.empty();
  }

 private:
  // Reads what arrives before `deadline`; false at its end, or the stream's.
  bool fill(Clock::time_point deadline) {
    if (ended_) return false;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    pollfd p{fd_, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char chunk[16384];
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) {
      ended_ = true;
      return false;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string buffer_;
  bool ended_ = false;
};

MetricsServerOptions fast_options() {
  MetricsServerOptions o;
  o.max_connections = 4;
  o.max_header_bytes = 1024;
  o.idle_timeout = 1s;
  o.request_timeout = 300ms;
  o.write_timeout = 1s;
  o.scrape_timeout = 1s;
  o.reuse_window = 0ms;
  return o;
}

const tcp::endpoint kLoopback4(asio::ip::make_address("127.0.0.1"), 0);

// A server on its io_context, run by a thread of its own until stop(),
// which returns once every coroutine has finished (io_context::run()
// returns only when no work is left).
struct Served {
  explicit Served(ScrapeHandler handler, MetricsServerOptions options = fast_options(),
                  tcp::endpoint at = kLoopback4)
      : server(io, at, std::move(handler), options) {
    server.start();
    thread = std::thread([this] { io.run(); });
  }
  ~Served() { stop(); }

  void stop() {
    if (!thread.joinable()) return;
    asio::post(io, [this] { server.stop(); });
    thread.join();
  }

  // Reads something of the server's on its own thread.
  template <typename F>
  auto on_io(F f) {
    std::packaged_task<decltype(f())()> task(f);
    auto result = task.get_future();
    asio::post(io, [&task] { task(); });
    return result.get();
  }
  std::size_t connections() { return on_io([this] { return server.connections(); }); }
  std::uint64_t scrapes() { return on_io([this] { return server.scrapes(); }); }

  // Waits until the server holds `n` connections.
  bool wait_connections(std::size_t n) {
    const auto deadline = Clock::now() + 3s;
    while (Clock::now() < deadline) {
      if (connections() == n) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }

  tcp::endpoint endpoint() const { return server.local_endpoint(); }

  asio::io_context io;
  MetricsServer server;
  std::thread thread;
};

// A scrape handler that answers `text`, after `delay` on a timer (never
// blocking the io_context), and counts its calls.
ScrapeHandler answering(std::string text, std::shared_ptr<std::atomic<int>> calls = nullptr,
                        std::chrono::milliseconds delay = 0ms) {
  return [=]() -> asio::awaitable<std::string> {
    if (calls) ++*calls;
    if (delay.count() > 0) {
      asio::steady_timer timer(co_await asio::this_coro::executor, delay);
      co_await timer.async_wait(asio::use_awaitable);
    }
    co_return text;
  };
}

constexpr const char* kGet = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
const std::string kText = "# HELP up Up.\n# TYPE up gauge\nup 1\n";

TEST_CASE("GET /metrics: 200, the exposition type, the handler's text; the connection stays open") {
  auto calls = std::make_shared<std::atomic<int>>(0);
  Served s(answering(kText, calls));
  Client c(s.endpoint());
  c.send(kGet);
  const auto r = c.response();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->header("content-type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(r->body == kText);
  // Keep-alive: the next request on the same connection scrapes again
  // (reuse_window is 0 here).
  c.send(kGet);
  const auto again = c.response();
  REQUIRE(again);
  CHECK(again->status == 200);
  CHECK(*calls == 2);
}

TEST_CASE("HEAD: the same header and length, no body") {
  Served s(answering(kText));
  Client c(s.endpoint());
  c.send("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  const auto head = c.response(true);
  REQUIRE(head);
  CHECK(head->status == 200);
  CHECK(head->header("content-length") == std::to_string(kText.size()));
  CHECK(head->header("content-type") == "text/plain; version=0.0.4; charset=utf-8");
  // Had HEAD sent a body, this response would be read from its bytes.
  c.send(kGet);
  const auto get = c.response();
  REQUIRE(get);
  CHECK(get->status == 200);
  CHECK(get->body == kText);
}

TEST_CASE("GET / links /metrics; other paths 404; other methods 405 with Allow") {
  Served s(answering(kText));
  Client c(s.endpoint());
  c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r = c.response();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->header("content-type") == "text/html; charset=utf-8");
  CHECK(r->body.find("<a href=\"/metrics\">") != std::string::npos);

  c.send("GET /metricsz HTTP/1.1\r\nHost: x\r\n\r\n");
  r = c.response();
  REQUIRE(r);
  CHECK(r->status == 404);

  c.send("DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  r = c.response();
  REQUIRE(r);
  CHECK(r->status == 405);
  CHECK(r->header("allow") == "GET, HEAD");

  // A query string does not change the path.
  c.send("GET /metrics?name[]=up HTTP/1.1\r\nHost: x\r\n\r\n");
  r = c.response();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == kText);
}

TEST_CASE("HTTP/1.0 without keep-alive: one response, then the server closes") {
  Served s(answering(kText));
  Client c(s.endpoint());
  c.send("GET /metrics HTTP/1.0\r\n\r\n");
  const auto r = c.response();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == kText);
  CHECK(c.closed());
}

TEST_CASE("malformed requests get 400 and a close; the server serves the next client") {
  Served s(answering(kText));
  for (const std::string& bad : {std::string("BLAH\r\n\r\n"),
                                std::string("GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n"),
                                std::string("GET /metrics HTTP/9.9\r\n\r\n"),
                                std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),
                                std::string("GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")}) {
    CAPTURE(bad);
    Client c(s.endpoint());
    c.send(bad);
    const auto r = c.response();
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(r->header("connection") == "close");
    CHECK(c.closed());
  }
  Client good(s.endpoint());
  good.send(kGet);
  const auto r = good.response();
  REQUIRE(r);
  CHECK(r->status == 200);
}

TEST_CASE("a header over the limit gets 431 and a close") {
  Served s(answering(kText));
  Client c(s.endpoint());
  c.send("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(2000, 'a') + "\r\n\r\n");
  const auto r = c.response();
  REQUIRE(r);
  CHECK(r->status == 431);
  CHECK(c.closed());
}

TEST_CASE("a slow client is cut off after the request timeout and costs the others nothing") {
  auto options = fast_options();
  options.idle_timeout = 10s;  // the well-behaved connection stays to the end
  Served s(answering(kText), options);
  const auto started = Clock::now();
  Client stalled(s.endpoint());
  stalled.send("GET /metr");
  Client dribbling(s.endpoint());
  // A valid request, a byte at a time, that would take 2 s to arrive.
  const std::string dribble = "GET /metrics HTTP/1.1\r\nX-Pad: " + std::string(60, 'a') + "\r\n\r\n";
  std::thread dribbler([&] {
    for (const char byte : dribble) {
      if (!dribbling.try_send(std::string_view(&byte, 1))) break;  // cut off
      std::this_thread::sleep_for(25ms);
      if (Clock::now() - started > 1500ms) break;
    }
  });
  // Meanwhile a well-behaved client is served at once.
  Client good(s.endpoint());
  good.send(kGet);
  const auto r = good.response(false, 1s);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(Clock::now() - started < 250ms);

  CHECK(stalled.closed());
  CHECK(Clock::now() - started >= 280ms);  // the request timeout is 300 ms
  dribbler.join();
  CHECK(dribbling.closed());
  CHECK(s.wait_connections(1));  // only the good one is left
}

TEST_CASE("an idle connection is closed after the idle timeout") {
  auto options = fast_options();
  options.idle_timeout = 200ms;
  Served s(answering(kText), options);
  Client c(s.endpoint());
  c.send(kGet);
  REQUIRE(c.response());
  const auto served = Clock::now();
  CHECK(c.closed());
  CHECK(Clock::now() - served >= 180ms);
  CHECK(Clock::now() - served < 2s);
}

TEST_CASE("full: a newcomer takes the slot of the connection that has waited longest") {
  auto options = fast_options();
  options.max_connections = 2;
  options.idle_timeout = 10s;
  Served s(answering(kText), options);
  Client oldest(s.endpoint());
  REQUIRE(s.wait_connections(1));
  Client younger(s.endpoint());
  REQUIRE(s.wait_connections(2));
  Client newcomer(s.endpoint());
  newcomer.send(kGet);
  const auto r = newcomer.response();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(oldest.closed());
  younger.send(kGet);
  const auto y = younger.response();
  REQUIRE(y);
  CHECK(y->status == 200);
}

TEST_CASE("full of connections busy answering: 503 with Retry-After; the busy ones finish") {
  auto options = fast_options();
  options.max_connections = 2;
  auto calls = std::make_shared<std::atomic<int>>(0);
  Served s(answering(kText, calls, 400ms), options);
  Client a(s.endpoint());
  Client b(s.endpoint());
  a.send(kGet);
  b.send(kGet);
  REQUIRE(s.wait_connections(2));
  std::this_thread::sleep_for(50ms);  // both requests are read and waiting for the scrape
  Client c(s.endpoint());
  const auto refused = c.response();
  REQUIRE(refused);
  CHECK(refused->status == 503);
  CHECK(refused->header("retry-after") == "1");
  CHECK(c.closed());
  const auto ra = a.response();
  const auto rb = b.response();
  REQUIRE(ra);
  REQUIRE(rb);
  CHECK(ra->body == kText);
  CHECK(rb->body == kText);
  CHECK(*calls == 1);  // one scrape served both
}

TEST_CASE("concurrent requests share one scrape; a recent result is served again") {
  auto options = fast_options();
  options.reuse_window = 10s;
  auto calls = std::make_shared<std::atomic<int>>(0);
  Served s(answering(kText, calls, 100ms), options);
  Client a(s.endpoint()), b(s.endpoint()), c(s.endpoint());
  a.send(kGet);
  b.send(kGet);
  c.send(kGet);
  for (Client* client : {&a, &b, &c}) {
    const auto r = client->response();
    REQUIRE(r);
    CHECK(r->body == kText);
  }
  a.send(kGet);
  const auto again = a.response();
  REQUIRE(again);
  CHECK(again->body == kText);
  CHECK(*calls == 1);
  CHECK(s.scrapes() == 1);
}

TEST_CASE("a scrape that throws answers 500 with the reason, and is not served again") {
  auto options = fast_options();
  options.reuse_window = 10s;
  auto calls = std::make_shared<std::atomic<int>>(0);
  Served s(
      [calls]() -> asio::awaitable<std::string> {
        ++*calls;
        throw std::runtime_error("reading counters of VIP 3: Bad file descriptor");
        co_return std::string();
      },
      options);
  Client c(s.endpoint());
  c.send(kGet);
  const auto r = c.response();
  REQUIRE(r);
  CHECK(r->status == 500);
  CHECK(r->body == "scrape failed: reading counters of VIP 3: Bad file descriptor\n");
  c.send(kGet);
  REQUIRE(c.response());
  CHECK(*calls == 2);
}

TEST_CASE("a scrape past its timeout answers 503") {
  auto options = fast_options();
  options.scrape_timeout = 100ms;
  Served s(answering(kText, nullptr, 1s), options);
  Client c(s.endpoint());
  const auto started = Clock::now();
  c.send(kGet);
  const auto r = c.response();
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(r->body == "scrape failed: the scrape did not finish within 100 ms\n");
  CHECK(Clock::now() - started < 900ms);
}

TEST_CASE("stop() closes every connection; the io_context then runs out of work") {
  Served s(answering(kText));
  Client a(s.endpoint()), b(s.endpoint());
  a.send(kGet);
  REQUIRE(a.response());
  REQUIRE(s.wait_connections(2));
  s.stop();  // returns only once io_context::run() has returned
  CHECK(s.server.connections() == 0);
  CHECK(a.closed());
  CHECK(b.closed());
}

TEST_CASE("a taken port is a start-up error that names the address") {
  Served first(answering(kText));
  const auto taken = first.endpoint();
  asio::io_context io;
  MetricsServer second(io, taken, answering(kText));
  try {
    second.start();
    FAIL("start() on a taken port succeeded");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()) ==
          "metrics on 127.0.0.1:" + std::to_string(taken.port()) + ": address already in use");
  }
}

// Whether this machine has IPv6 on loopback, found once with a plain socket.
bool ipv6_loopback(const char* cases) {
  static const std::string reason = [] {
    const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return std::string("socket(AF_INET6): ") + std::strerror(errno);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    const int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    const int error = errno;
    ::close(fd);
    return rc == 0 ? std::string() : std::string("bind [::1]: ") + std::strerror(error);
  }();
  if (!reason.empty()) std::fprintf(stderr, "[%s] skipped: %s\n", cases, reason.c_str());
  return reason.empty();
}

TEST_CASE("IPv6: served on [::1]" * doctest::skip(!ipv6_loopback("metrics server on IPv6"))) {
  Served s(answering(kText), fast_options(), tcp::endpoint(asio::ip::make_address("::1"), 0));
  CHECK(to_string(s.endpoint()) == "[::1]:" + std::to_string(s.endpoint().port()));
  Client c(s.endpoint());
  c.send(kGet);
  const auto r = c.response();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == kText);
}

TEST_CASE("listen addresses: IPv4 and bracketed IPv6 with a port; anything else says what it wants") {
  auto v4 = parse_listen_endpoint("127.0.0.1:9650");
  REQUIRE(v4);
  CHECK(v4->address() == asio::ip::make_address("127.0.0.1"));
  CHECK(v4->port() == 9650);
  auto v6 = parse_listen_endpoint("[::1]:9650");
  REQUIRE(v6);
  CHECK(v6->address() == asio::ip::make_address("::1"));
  CHECK(to_string(*v6) == "[::1]:9650");
  auto any6 = parse_listen_endpoint("[::]:9650");
  REQUIRE(any6);
  CHECK(any6->address().is_v6());
  for (const char* bad : {"127.0.0.1", "localhost:9650", "::1:9650", "127.0.0.1:99999", ""}) {
    CAPTURE(bad);
    const auto r = parse_listen_endpoint(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error() == "expected ADDRESS:PORT such as 127.0.0.1:9650 or [::1]:9650, got '" +
                           std::string(bad) + "'");
  }
}

}  // namespace
}  // namespace mixlb::metrics
