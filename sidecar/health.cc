#include "health.h"

#include "common/log_failure.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <charconv>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace mixlb {
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

// What one probe owns. Shared with the timeout's handler, which may run
// after the probe's coroutine has moved on.
struct Probe {
  explicit Probe(const asio::any_io_executor& ex) : socket(ex), deadline(ex) {}
  tcp::socket socket;
  asio::steady_timer deadline;
  bool timed_out = false;
};

std::string endpoint_text(const HealthCheckConfig& c) {
  return c.host.find(':') != std::string::npos ? fmt::format("[{}]:{}", c.host, c.port)
                                               : fmt::format("{}:{}", c.host, c.port);
}

// "" when the status line says 2xx or 3xx, else why not.
std::string judge_status_line(std::string_view line) {
  // "HTTP/1.1 200 OK"
  if (line.substr(0, 5) != "HTTP/") return fmt::format("not an HTTP status line: '{}'", line.substr(0, 40));
  const auto space = line.find(' ');
  if (space == std::string_view::npos || line.size() < space + 4)
    return fmt::format("malformed HTTP status line: '{}'", line.substr(0, 40));
  int code = 0;
  const char* first = line.data() + space + 1;
  if (std::from_chars(first, first + 3, code).ec != std::errc{} || code < 100 || code > 599)
    return fmt::format("malformed HTTP status line: '{}'", line.substr(0, 40));
  if (code >= 200 && code < 400) return "";
  return fmt::format("HTTP {}", code);
}

asio::awaitable<std::string> run_probe(const HealthCheckConfig& c) {
  auto probe = std::make_shared<Probe>(co_await asio::this_coro::executor);
  probe->deadline.expires_after(c.timeout);
  probe->deadline.async_wait([probe](const boost::system::error_code& ec) {
    if (ec) return;
    probe->timed_out = true;
    boost::system::error_code ignored;
    probe->socket.close(ignored);
  });
  auto why = [&](std::string_view step, const boost::system::error_code& ec) {
    return fmt::format("{} {}: {}", step, endpoint_text(c),
                       probe->timed_out ? fmt::format("no answer within {} ms", c.timeout.count())
                                        : ec.message());
  };

  boost::system::error_code ec;
  const auto address = asio::ip::make_address(c.host, ec);
  if (ec) co_return fmt::format("bad address '{}': {}", c.host, ec.message());
  std::string result;
  co_await probe->socket.async_connect(tcp::endpoint(address, c.port),
                                       asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    result = why("connect", ec);
  } else if (c.kind == HealthCheckConfig::Kind::kHttp) {
    const std::string request = fmt::format(
        "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: mixlb-health\r\nConnection: close\r\n\r\n", c.path,
        endpoint_text(c));
    co_await asio::async_write(probe->socket, asio::buffer(request),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      result = why("HTTP request to", ec);
    } else {
      std::string line;
      const std::size_t n = co_await asio::async_read_until(
          probe->socket, asio::dynamic_buffer(line, 4096), "\r\n",
          asio::redirect_error(asio::use_awaitable, ec));
      result = ec ? why("HTTP status from", ec) : judge_status_line(std::string_view(line).substr(0, n - 2));
    }
  }
  probe->deadline.cancel();
  co_return result;
}

}  // namespace

struct HealthChecker::State {
  State(asio::io_context& io, HealthCheckConfig c, OnChange cb)
      : config(std::move(c)), on_change(std::move(cb)), ticker(io) {}
  HealthCheckConfig config;
  OnChange on_change;
  asio::steady_timer ticker;
  bool running = false;
  bool healthy = false;
  std::uint32_t ok_streak = 0;
  std::uint32_t fail_streak = 0;
  std::uint64_t probes = 0;
  std::string last = "not probed yet";
};

namespace {

asio::awaitable<void> check_loop(std::shared_ptr<HealthChecker::State> s);

}  // namespace

HealthChecker::HealthChecker(asio::io_context& io, HealthCheckConfig config, OnChange on_change)
    : state_(std::make_shared<State>(io, std::move(config), std::move(on_change))) {
  io_ = &io;
}

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::start() {
  if (state_->running) return;
  state_->running = true;
  asio::co_spawn(*io_, check_loop(state_), log_failure("health checker stopped"));
}

void HealthChecker::stop() {
  state_->running = false;
  state_->ticker.cancel();
}

void HealthChecker::reconfigure(HealthCheckConfig config) {
  // The verdict and the streaks stay: a reload that changes how the app is
  // checked must not make it unhealthy until it has risen again.
  state_->config = std::move(config);
}

const HealthCheckConfig& HealthChecker::config() const { return state_->config; }

bool HealthChecker::healthy() const { return state_->healthy; }
const std::string& HealthChecker::last_result() const { return state_->last; }
std::uint64_t HealthChecker::probes() const { return state_->probes; }

namespace {

asio::awaitable<void> check_loop(std::shared_ptr<HealthChecker::State> s) {
  while (s->running) {
    const std::string failure = co_await run_probe(s->config);
    if (!s->running) break;
    ++s->probes;
    s->last = failure.empty() ? "ok" : failure;
    if (failure.empty()) {
      s->fail_streak = 0;
      if (++s->ok_streak >= s->config.rise && !s->healthy) {
        s->healthy = true;
        if (s->on_change) s->on_change(true, s->last);
      }
    } else {
      s->ok_streak = 0;
      if (++s->fail_streak >= s->config.fall && s->healthy) {
        s->healthy = false;
        if (s->on_change) s->on_change(false, s->last);
      }
    }
    boost::system::error_code ec;
    s->ticker.expires_after(s->config.interval);
    co_await s->ticker.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace

std::string check_target(const HealthCheckConfig& c) {
  const std::string text = fmt::format("{} {}", c.kind == HealthCheckConfig::Kind::kHttp ? "http" : "tcp",
                                       endpoint_text(c));
  return c.kind == HealthCheckConfig::Kind::kHttp ? text + c.path : text;
}

bool same_target(const HealthCheckConfig& a, const HealthCheckConfig& b) {
  return a.kind == b.kind && a.host == b.host && a.port == b.port &&
         (a.kind != HealthCheckConfig::Kind::kHttp || a.path == b.path);
}

HealthChecks::HealthChecks(asio::io_context& io, OnChange on_change)
    : io_(io), on_change_(std::move(on_change)) {}

HealthChecks::~HealthChecks() { stop(); }

void HealthChecks::set(std::vector<ServiceCheck> checks) {
  std::vector<std::unique_ptr<Entry>> next;
  for (auto& check : checks) {
    auto kept = std::find_if(entries_.begin(), entries_.end(), [&](const std::unique_ptr<Entry>& e) {
      return e && same_target(e->check.config, check.config);
    });
    if (kept != entries_.end()) {
      (*kept)->checker->reconfigure(check.config);
      (*kept)->check = std::move(check);
      next.push_back(std::move(*kept));
      continue;
    }
    auto entry = std::make_unique<Entry>();
    entry->check = std::move(check);
    Entry* raw = entry.get();
    entry->checker = std::make_unique<HealthChecker>(
        io_, entry->check.config,
        [this, raw](bool healthy, const std::string& why) { on_change_(raw->check, healthy, why); });
    entry->checker->start();
    next.push_back(std::move(entry));
  }
  // What is left in entries_ is no longer wanted; its checkers stop here.
  for (auto& e : entries_)
    if (e) e->checker->stop();
  entries_ = std::move(next);
}

void HealthChecks::stop() {
  for (auto& e : entries_) e->checker->stop();
}

bool HealthChecks::healthy(std::string_view service) const {
  for (const auto& e : entries_)
    for (const auto& s : e->check.services)
      if (s == service && !e->checker->healthy()) return false;
  return true;
}

bool HealthChecks::healthy() const {
  return std::all_of(entries_.begin(), entries_.end(),
                     [](const std::unique_ptr<Entry>& e) { return e->checker->healthy(); });
}

std::string HealthChecks::last_result() const {
  for (const auto& e : entries_)
    if (!e->checker->healthy())
      return fmt::format("{}: {}", check_target(e->check.config), e->checker->last_result());
  return "ok";
}

std::vector<HealthChecks::View> HealthChecks::view() const {
  std::vector<View> out;
  for (const auto& e : entries_) out.push_back(View{e->check, *e->checker});
  return out;
}

}  // namespace mixlb
