#include "metrics/server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <exception>
#include <optional>
#include <set>
#include <stdexcept>
#include <vector>

#include "address.h"
#include "common/log_failure.h"

namespace mixlb::metrics {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kExpositionType = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view kIndexPage =
    "<html><head><title>mixlb</title></head><body><h1>mixlb</h1>"
    "<p><a href=\"/metrics\">Metrics</a></p></body></html>\n";

// strerror's sentences start with a capital; ours continue one.
std::string lowercase_first(std::string text) {
  if (text.size() > 1 && std::isupper(static_cast<unsigned char>(text[0])) &&
      std::islower(static_cast<unsigned char>(text[1])))
    text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return text;
}

http::response<http::string_body> make_response(http::status status, unsigned version,
                                                std::string_view type, std::string body) {
  http::response<http::string_body> res{status, version};
  res.set(http::field::content_type, beast::string_view(type.data(), type.size()));
  res.body() = std::move(body);
  return res;
}

http::response<http::string_body> text_response(http::status status, unsigned version,
                                                std::string body) {
  return make_response(status, version, "text/plain; charset=utf-8", std::move(body));
}

// A failed read: what it says about the request (answer 400 or 431), or
// nothing to answer (the client went away, was cut off, or is evicted).
std::optional<http::status> refusal_for(const beast::error_code& ec) {
  if (ec == http::error::header_limit || ec == http::error::buffer_overflow)
    return http::status::request_header_fields_too_large;
  if (ec.category() == http::make_error_code(http::error::end_of_stream).category() &&
      ec != http::error::end_of_stream && ec != http::error::partial_message)
    return http::status::bad_request;
  return std::nullopt;
}

}  // namespace

std::string to_string(const tcp::endpoint& endpoint) {
  const std::string address = endpoint.address().to_string();
  return endpoint.address().is_v6() ? fmt::format("[{}]:{}", address, endpoint.port())
                                    : fmt::format("{}:{}", address, endpoint.port());
}

std::expected<tcp::endpoint, std::string> parse_listen_endpoint(std::string_view text) {
  const auto parsed = gossip::Address::parse(text);
  if (!parsed) {
    return std::unexpected(fmt::format(
        "expected ADDRESS:PORT such as 127.0.0.1:9650 or [::1]:9650, got '{}'", text));
  }
  if (parsed->family == gossip::Address::Family::kV4) {
    asio::ip::address_v4::bytes_type bytes;
    std::copy_n(parsed->ip.begin(), bytes.size(), bytes.begin());
    return tcp::endpoint(asio::ip::address_v4(bytes), parsed->port);
  }
  asio::ip::address_v6::bytes_type bytes;
  std::copy_n(parsed->ip.begin(), bytes.size(), bytes.begin());
  return tcp::endpoint(asio::ip::address_v6(bytes), parsed->port);
}

// g++ 12 can inline Asio's frame allocator into a coroutine's ramp but not
// its matching operator delete, then reports the pair as mismatched (see
// admin_server.cc); the pair is Asio's own.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

struct MetricsServer::State : std::enable_shared_from_this<State> {
  struct Connection {
    Connection(tcp::socket socket, std::shared_ptr<State> owner)
        : stream(std::move(socket)), state(std::move(owner)) {
      state->live.insert(this);
    }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection() { state->live.erase(this); }

    void close() {
      closing = true;
      stream.close();
    }

    beast::tcp_stream stream;
    std::shared_ptr<State> state;
    // Waiting for a request (or for the rest of one): the slot may be
    // given to a newcomer.
    bool waiting = true;
    Clock::time_point waiting_since = Clock::now();
    bool closing = false;  // closed by stop() or evicted; still in `live` until its coroutine ends
  };

  // The outcome of one run of the scrape handler, handed to every request
  // that waited for it.
  struct Scrape {
    bool ok = false;
    bool timed_out = false;
    std::string text;  // the exposition, or why there is none
  };
  struct Waiter {
    explicit Waiter(asio::io_context& io) : timer(io) {}
    asio::steady_timer timer;
    std::optional<Scrape> result;
  };

  State(asio::io_context& context, tcp::endpoint endpoint, ScrapeHandler handler,
        MetricsServerOptions server_options)
      : io(context),
        listen(endpoint),
        scrape(std::move(handler)),
        options(server_options),
        acceptor(context) {}

  // The connections that count against the limit: those not on their way out.
  std::size_t occupied() const {
    return static_cast<std::size_t>(
        std::count_if(live.begin(), live.end(), [](const Connection* c) { return !c->closing; }));
  }

  // Frees a slot for a newcomer by closing the connection that has waited
  // longest for a request; false when every slot is busy answering.
  bool evict_one() {
    Connection* oldest = nullptr;
    for (Connection* c : live) {
      if (c->closing || !c->waiting) continue;
      if (!oldest || c->waiting_since < oldest->waiting_since) oldest = c;
    }
    if (!oldest) return false;
    spdlog::debug("metrics on {}: closing a connection idle for {} ms to make room", to_string(listen),
                  std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() -
                                                                        oldest->waiting_since)
                      .count());
    oldest->close();
    return true;
  }

  // Hands the result of the scrape under way, or of one that finished
  // within reuse_window, to the request; starts a scrape when none runs.
  asio::awaitable<Scrape> scrape_result() {
    if (last && Clock::now() - last_at < options.reuse_window) co_return *last;
    auto waiter = std::make_shared<Waiter>(io);
    waiter->timer.expires_after(options.scrape_timeout);
    waiters.push_back(waiter);
    if (!scraping) {
      scraping = true;
      ++scrapes;
      asio::co_spawn(io, run_scrape(scrape),
                     [self = shared_from_this()](std::exception_ptr error, std::string text) {
                       self->finish_scrape(error, std::move(text));
                     });
    }
    boost::system::error_code ec;
    co_await waiter->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (waiter->result) co_return *waiter->result;
    co_return Scrape{false, true, fmt::format("the scrape did not finish within {} ms",
                                        options.scrape_timeout.count())};
  }

  // A copy of the handler, so a scrape still running after stop() has what
  // it needs.
  static asio::awaitable<std::string> run_scrape(ScrapeHandler handler) {
    co_return co_await handler();
  }

  void finish_scrape(const std::exception_ptr& error, std::string text) {
    scraping = false;
    Scrape result{true, false, std::move(text)};
    if (error) {
      result.ok = false;
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        result.text = e.what();
      } catch (...) {
        result.text = "unknown exception";
      }
      spdlog::warn("metrics on {}: scrape failed: {}", to_string(listen), result.text);
    } else {
      last = result;
      last_at = Clock::now();
    }
    for (const auto& weak : std::exchange(waiters, {})) {
      if (const auto waiter = weak.lock()) {
        waiter->result = result;
        waiter->timer.cancel();
      }
    }
  }

  asio::awaitable<http::response<http::string_body>> answer(
      const http::request<http::empty_body>& req) {
    const std::string_view target(req.target().data(), req.target().size());
    const std::string_view path = target.substr(0, target.find('?'));
    const unsigned version = req.version();
    if (path != "/metrics" && path != "/")
      co_return text_response(http::status::not_found, version, "not found; try /metrics\n");
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      auto res = text_response(http::status::method_not_allowed, version, "use GET or HEAD\n");
      res.set(http::field::allow, "GET, HEAD");
      co_return res;
    }
    if (path == "/")
      co_return make_response(http::status::ok, version, "text/html; charset=utf-8",
                              std::string(kIndexPage));
    Scrape result = co_await scrape_result();
    if (result.ok)
      co_return make_response(http::status::ok, version, kExpositionType, std::move(result.text));
    co_return text_response(
        result.timed_out ? http::status::service_unavailable : http::status::internal_server_error,
        version, "scrape failed: " + result.text + "\n");
  }

  // Writes `res` (its header only for HEAD) within write_timeout.
  static asio::awaitable<bool> send(Connection& c, http::response<http::string_body> res,
                                    bool head) {
    const auto& options = c.state->options;
    beast::error_code ec;
    c.stream.expires_after(options.write_timeout);
    if (head) {
      const std::size_t length = res.body().size();
      http::response<http::empty_body> header{std::move(res.base())};
      header.content_length(length);
      co_await http::async_write(c.stream, header, asio::redirect_error(asio::use_awaitable, ec));
    } else {
      res.prepare_payload();
      co_await http::async_write(c.stream, res, asio::redirect_error(asio::use_awaitable, ec));
    }
    co_return !ec;
  }

  // Stops sending, then reads and discards (a little, briefly) what the
  // client still sends, so that closing does not reset the connection and
  // take the last response with it.
  static asio::awaitable<void> linger(Connection& c) {
    beast::error_code ec;
    c.stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    std::array<char, 4096> scratch;
    c.stream.expires_after(std::chrono::seconds(1));
    for (std::size_t drained = 0; !ec && drained < 64 * 1024;) {
      drained += co_await c.stream.async_read_some(asio::buffer(scratch),
                                                   asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  static asio::awaitable<void> session(std::shared_ptr<Connection> c) {
    const MetricsServerOptions& options = c->state->options;
    beast::flat_buffer buffer(options.max_header_bytes + 1);
    beast::error_code ec;
    for (;;) {
      c->waiting = true;
      c->waiting_since = Clock::now();
      if (buffer.size() == 0) {
        c->stream.expires_after(options.idle_timeout);
        const std::size_t n = co_await c->stream.async_read_some(
            buffer.prepare(options.max_header_bytes + 1),
            asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;  // closed, idle too long, evicted or stopped
        buffer.commit(n);
      }
      http::request_parser<http::empty_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
      c->stream.expires_after(options.request_timeout);
      co_await http::async_read(c->stream, buffer, parser,
                                asio::redirect_error(asio::use_awaitable, ec));
      c->waiting = false;
      if (ec) {
        const auto refusal = refusal_for(ec);
        if (!refusal) break;
        spdlog::debug("metrics on {}: refusing a request: {}", to_string(c->state->listen),
                      ec.message());
        auto res = text_response(*refusal, 11, "bad request: " + ec.message() + "\n");
        res.keep_alive(false);
        if (co_await send(*c, std::move(res), false)) co_await linger(*c);
        break;
      }
      const auto& req = parser.get();
      auto res = co_await c->state->answer(req);
      if (c->closing) break;
      const bool keep_alive = req.keep_alive();
      res.keep_alive(keep_alive);
      if (!co_await send(*c, std::move(res), req.method() == http::verb::head) || !keep_alive)
        break;
    }
    beast::error_code ignored;
    c->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    c->stream.close();
  }

  static asio::awaitable<void> refuse(tcp::socket socket, MetricsServerOptions options) {
    beast::tcp_stream stream(std::move(socket));
    auto res = text_response(http::status::service_unavailable, 11,
                             "too many connections busy answering; try again\n");
    res.keep_alive(false);
    res.set(http::field::retry_after, "1");
    res.prepare_payload();
    beast::error_code ec;
    stream.expires_after(options.write_timeout);
    co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream.close();
  }

  // One loop per start(); a loop from before a stop() and a restart sees a
  // newer generation and ends instead of accepting next to the new one.
  static asio::awaitable<void> accept_loop(std::shared_ptr<State> self) {
    const std::uint64_t generation = self->generation;
    auto current = [&] { return self->running && self->generation == generation; };
    for (;;) {
      boost::system::error_code ec;
      tcp::socket socket =
          co_await self->acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (!current() || ec == asio::error::operation_aborted) co_return;
      if (ec) {
        // EMFILE and the like: back off instead of spinning on the error.
        spdlog::warn("metrics on {}: accept failed: {}", to_string(self->listen), ec.message());
        asio::steady_timer pause(self->io, std::chrono::milliseconds(100));
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (!current()) co_return;
        continue;
      }
      if (self->occupied() >= self->options.max_connections && !self->evict_one()) {
        spdlog::warn("metrics on {}: refusing a connection: {} connections busy answering",
                     to_string(self->listen), self->occupied());
        asio::co_spawn(self->io, refuse(std::move(socket), self->options),
                       log_failure("metrics connection refusal"));
        continue;
      }
      auto connection = std::make_shared<Connection>(std::move(socket), self);
      asio::co_spawn(self->io, session(std::move(connection)), log_failure("metrics connection"));
    }
  }

  asio::io_context& io;
  tcp::endpoint listen;
  ScrapeHandler scrape;
  MetricsServerOptions options;
  tcp::acceptor acceptor;
  std::set<Connection*> live;
  bool running = false;
  std::uint64_t generation = 0;

  bool scraping = false;
  std::uint64_t scrapes = 0;
  std::vector<std::weak_ptr<Waiter>> waiters;
  std::optional<Scrape> last;  // the last successful scrape
  Clock::time_point last_at{};
};

#pragma GCC diagnostic pop

MetricsServer::MetricsServer(asio::io_context& io, tcp::endpoint listen, ScrapeHandler scrape,
                             MetricsServerOptions options)
    : state_(std::make_shared<State>(io, listen, std::move(scrape), options)) {}

MetricsServer::~MetricsServer() { stop(); }

void MetricsServer::start() {
  State& s = *state_;
  if (s.running) return;
  const std::string where = "metrics on " + to_string(s.listen);
  boost::system::error_code ec;
  auto fail = [&](std::string_view step) {
    boost::system::error_code ignored;
    s.acceptor.close(ignored);
    throw std::runtime_error(where + ": " + std::string(step) + lowercase_first(ec.message()));
  };
  s.acceptor.open(s.listen.protocol(), ec);
  if (ec) fail("cannot open a socket: ");
  // A restarted sidecar must be able to bind while the old one's
  // connections linger in TIME_WAIT; a live listener still refuses it.
  s.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (ec) fail("cannot set SO_REUSEADDR: ");
  s.acceptor.bind(s.listen, ec);
  if (ec) fail("");
  s.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) fail("cannot listen: ");
  // Port 0 picked a port: name that one from now on.
  s.listen = s.acceptor.local_endpoint(ec);
  if (ec) fail("cannot read the bound address: ");
  s.running = true;
  ++s.generation;
  asio::co_spawn(s.io, State::accept_loop(state_), log_failure("metrics accept loop"));
  spdlog::info("metrics on {}", to_string(s.listen));
}

void MetricsServer::stop() {
  State& s = *state_;
  if (!s.running) return;
  s.running = false;
  boost::system::error_code ignored;
  s.acceptor.close(ignored);
  // A closed connection leaves `live` only when its coroutine finishes.
  for (auto* connection : std::vector<State::Connection*>(s.live.begin(), s.live.end()))
    connection->close();
  spdlog::info("metrics on {} closed", to_string(s.listen));
}

tcp::endpoint MetricsServer::local_endpoint() const { return state_->listen; }

std::size_t MetricsServer::connections() const { return state_->live.size(); }
std::uint64_t MetricsServer::scrapes() const { return state_->scrapes; }

}  // namespace mixlb::metrics
