#include "admin/admin_server.h"

#include "admin/socket_file.h"

#include <array>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <exception>
#include <optional>
#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

#include "common/log_failure.h"
#include "common/quote.h"
#include "kernel/unique_fd.h"

namespace mixlb {

namespace asio = boost::asio;
using Stream = asio::local::stream_protocol;

namespace {

std::string errno_text(int error) {
  return std::error_code(error, std::system_category()).message();
}

// g++ 12 can inline Asio's frame allocator into a coroutine's ramp but not
// its matching operator delete, then reports them as mismatched; whether it
// does depends on the coroutine's size. The pair is Asio's own, so the
// warning is silenced for the server's coroutines rather than dodged by
// reshaping them until the heuristic changes its mind.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

// Awaits the handler and turns what it throws into an error reply. It owns
// copies of the request and the handler, so it can outlive a session that
// stopped waiting for it.
asio::awaitable<AdminOutcome> answer(AdminRequest request, AdminHandler handler) {
  try {
    AdminAnswer answered = co_await handler(request.cmd, std::move(request.args));
    co_return AdminOutcome{encode_ok_reply(answered.result), {}, std::move(answered.stream)};
  } catch (...) {
    co_return admin_failure_outcome(request.cmd, std::current_exception());
  }
}

// Runs answer() in a coroutine of its own on `executor` and hands its outcome
// to `deliver` there. A coroutine of its own, not one awaited by the
// session, so that a session can stop waiting for a handler that does not
// finish: Boost 1.74 has neither awaitable operators nor per-operation
// cancellation to put a deadline on an awaited coroutine.
void spawn_answer(const asio::any_io_executor& executor, AdminRequest request,
                  const AdminHandler& handler, std::function<void(AdminOutcome)> deliver) {
  std::string cmd = request.cmd;
  asio::co_spawn(executor, answer(std::move(request), handler),
                 [cmd = std::move(cmd), deliver = std::move(deliver)](std::exception_ptr error,
                                                                      AdminOutcome outcome) {
                   deliver(error ? admin_failure_outcome(cmd, error) : std::move(outcome));
                 });
}

}  // namespace

AdminOutcome handle_admin_line(std::string_view line, const AdminHandler& handler) {
  auto request = parse_admin_request(line);
  if (!request) return {encode_error_reply(request.error()), {}};
  asio::io_context io;
  AdminOutcome outcome;
  spawn_answer(io.get_executor(), std::move(*request), handler,
               [&](AdminOutcome answered) { outcome = std::move(answered); });
  // The spawned coroutine holds work on `io` until it has delivered, so run()
  // returns only with the outcome in place.
  io.run();
  if (outcome.stream) std::exchange(outcome.stream, nullptr)->close();
  return outcome;
}

std::expected<PeerCredentials, std::string> read_peer_credentials(int fd) {
  ucred credentials{};
  socklen_t size = sizeof(credentials);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0) {
    return std::unexpected(
        fmt::format("cannot read the peer's credentials (SO_PEERCRED): {}", errno_text(errno)));
  }
  return PeerCredentials{credentials.pid, credentials.uid, credentials.gid};
}

std::vector<uid_t> default_admin_uids() {
  const uid_t self = ::geteuid();
  if (self == 0) return {0};
  return {0, self};
}

// ---------------------------------------------------------------------------
// Server.

struct AdminServer::State {
  struct Connection {
    Connection(Stream::socket s, std::shared_ptr<State> owner)
        : socket(std::move(s)),
          idle_timer(socket.get_executor()),
          answer_timer(socket.get_executor()),
          state(std::move(owner)) {
      state->live.insert(this);
    }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection() {
      // A stream answer that no session took (it came after the session
      // gave up on it) must still leave its source.
      if (answer && answer->stream) answer->stream->close();
      state->live.erase(this);
    }

    void close() {
      closed = true;
      boost::system::error_code ignored;
      socket.close(ignored);
      idle_timer.cancel();
      answer_timer.cancel();
    }

    Stream::socket socket;
    // The deadline of the read or write under way; closes the socket.
    asio::steady_timer idle_timer;
    // The deadline of the handler under way; cancelled early by its answer.
    // While streaming, the wait for lines, cancelled when some arrive.
    asio::steady_timer answer_timer;
    std::optional<AdminOutcome> answer;
    std::shared_ptr<State> state;
    bool timed_out = false;
    bool closed = false;
    bool lines_ready = false;  // a stream's wake arrived since its last take()
    bool hung_up = false;      // the client of a stream closed its end
  };

  State(asio::io_context& context, std::string socket_path, Handler request_handler,
        AdminServerOptions server_options)
      : io(context),
        path(std::move(socket_path)),
        handler(std::move(request_handler)),
        options(std::move(server_options)),
        acceptor(context) {}

  // Closes the connection when the read or write now starting takes longer
  // than `timeout`. A wait that was re-armed after it fired finds its expiry
  // in the future and leaves the connection alone.
  static void arm_idle_timer(const std::shared_ptr<Connection>& connection,
                             std::chrono::milliseconds timeout) {
    connection->idle_timer.expires_after(timeout);
    connection->idle_timer.async_wait(
        [weak = std::weak_ptr<Connection>(connection)](const boost::system::error_code& ec) {
          if (ec) return;
          const auto c = weak.lock();
          if (!c || c->idle_timer.expiry() > asio::steady_timer::clock_type::now()) return;
          c->timed_out = true;
          boost::system::error_code ignored;
          c->socket.close(ignored);
        });
  }

  // While a handler runs the socket has no deadline of its own; the expiry at
  // the end of time also tells a wait that already fired to stand down.
  static void disarm_idle_timer(const std::shared_ptr<Connection>& connection) {
    connection->idle_timer.expires_at(asio::steady_timer::time_point::max());
  }

  // Runs the handler for `request` and has its outcome delivered to the
  // connection, cancelling answer_timer, which otherwise expires after the
  // idle timeout. The outcome finds the connection only while the session
  // still holds it.
  static void start_answer(const std::shared_ptr<Connection>& c, AdminRequest request) {
    c->answer.reset();
    c->answer_timer.expires_after(c->state->options.idle_timeout);
    spawn_answer(c->socket.get_executor(), std::move(request), c->state->handler,
                 [weak = std::weak_ptr<Connection>(c)](AdminOutcome outcome) {
                   const auto connection = weak.lock();
                   if (!connection) {
                     if (outcome.stream) outcome.stream->close();
                     return;
                   }
                   connection->answer = std::move(outcome);
                   connection->answer_timer.cancel();
                 });
  }

  static asio::awaitable<void> session(std::shared_ptr<Connection> c) {
    const AdminServerOptions& options = c->state->options;
    std::string buffer;
    boost::system::error_code ec;
    bool talked = false;  // a whole request line has arrived
    for (;;) {
      arm_idle_timer(c, talked ? options.idle_timeout : options.first_request_timeout);
      const std::size_t n = co_await asio::async_read_until(
          c->socket, asio::dynamic_buffer(buffer, kAdminMaxLine + 1), '\n',
          asio::redirect_error(asio::use_awaitable, ec));
      std::string_view line;
      bool final_line = false;
      if (ec == asio::error::not_found) {
        // The buffer filled up without a newline: answer once, then hang up,
        // since the rest of that line cannot be told from a next request.
        spdlog::warn("admin {}: request line over {} bytes; closing the connection", c->state->path,
                     kAdminMaxLine);
        const std::string reply = encode_error_reply(fmt::format(
            "request line longer than {} bytes; closing the connection", kAdminMaxLine));
        arm_idle_timer(c, options.idle_timeout);
        co_await asio::async_write(c->socket, asio::buffer(reply),
                                   asio::redirect_error(asio::use_awaitable, ec));
        // Lingering close: closing with the rest of the line unread would
        // reset the connection and the client could lose the reply. Stop
        // sending, then read and discard (bounded) until the client is done.
        c->socket.shutdown(asio::local::stream_protocol::socket::shutdown_send, ec);
        std::array<char, 4096> scratch;
        for (std::size_t drained = 0; !ec && drained < 16 * kAdminMaxLine;) {
          arm_idle_timer(c, options.idle_timeout);
          drained += co_await c->socket.async_read_some(
              asio::buffer(scratch), asio::redirect_error(asio::use_awaitable, ec));
        }
        break;
      }
      if (ec == asio::error::eof && !buffer.empty()) {
        line = buffer;  // a last request without its newline
        final_line = true;
      } else if (ec) {
        if (c->timed_out && talked) {
          spdlog::debug("admin {}: closed a connection idle for {} ms", c->state->path,
                        options.idle_timeout.count());
        } else if (c->timed_out) {
          spdlog::debug("admin {}: closed a connection that sent no request within {} ms",
                        c->state->path, options.first_request_timeout.count());
        }
        break;
      } else {
        line = std::string_view(buffer.data(), n - 1);
      }
      talked = true;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

      auto request = parse_admin_request(line);
      buffer.erase(0, final_line ? buffer.size() : n);
      AdminOutcome outcome;
      if (!request) {
        outcome.reply = encode_error_reply(request.error());
      } else {
        const std::string cmd = request->cmd;
        disarm_idle_timer(c);
        start_answer(c, std::move(*request));
        if (!c->answer) {
          co_await c->answer_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        if (c->closed) break;
        if (c->answer) {
          outcome = *std::exchange(c->answer, std::nullopt);
        } else {
          // The handler may still finish; its answer then finds no session.
          spdlog::warn("admin {}: command {} did not finish within {} ms; closing the connection",
                       c->state->path, quote_input(cmd), options.idle_timeout.count());
          outcome.reply = encode_error_reply(
              fmt::format("command {} did not finish within {} ms; closing the connection",
                          quote_input(cmd), options.idle_timeout.count()));
          final_line = true;
        }
      }
      if (!outcome.internal_error.empty()) {
        spdlog::error("admin {}: {}", c->state->path, outcome.internal_error);
      }

      arm_idle_timer(c, options.idle_timeout);
      co_await asio::async_write(c->socket, asio::buffer(outcome.reply),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (outcome.stream) {
        if (!ec) co_await stream_lines(c, outcome.stream);
        outcome.stream->close();
        break;
      }
      if (ec || final_line) break;
    }
    c->close();
  }

  // Reads until the client of a stream closes its end (what it sends is of
  // no use to the stream) and wakes the stream's writer to end.
  static asio::awaitable<void> watch_hangup(std::shared_ptr<Connection> c) {
    std::array<char, 512> scratch;
    boost::system::error_code ec;
    while (!ec) {
      co_await c->socket.async_read_some(asio::buffer(scratch),
                                         asio::redirect_error(asio::use_awaitable, ec));
    }
    c->hung_up = true;
    c->answer_timer.cancel();
  }

  // Writes a stream's lines as it has them until the client hangs up, a
  // write fails or times out, or the server stops. The stream's wake may
  // come from any thread, so it is posted here, where it sets lines_ready
  // before cancelling the wait: a wake that lands while the writer is busy
  // is not lost, since the writer checks the flag before it waits again.
  static asio::awaitable<void> stream_lines(std::shared_ptr<Connection> c,
                                            std::shared_ptr<AdminStream> stream) {
    const auto executor = c->socket.get_executor();
    stream->on_ready([executor, weak = std::weak_ptr<Connection>(c)] {
      asio::post(executor, [weak] {
        if (const auto connection = weak.lock()) {
          connection->lines_ready = true;
          connection->answer_timer.cancel();
        }
      });
    });
    asio::co_spawn(executor, watch_hangup(c), log_failure("admin stream hang-up watch"));
    boost::system::error_code ec;
    while (!c->closed && !c->hung_up) {
      c->lines_ready = false;
      const std::string lines = stream->take();
      if (lines.empty()) {
        c->answer_timer.expires_at(asio::steady_timer::time_point::max());
        if (!c->lines_ready && !c->hung_up) {
          co_await c->answer_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        continue;
      }
      arm_idle_timer(c, c->state->options.idle_timeout);
      co_await asio::async_write(c->socket, asio::buffer(lines),
                                 asio::redirect_error(asio::use_awaitable, ec));
      disarm_idle_timer(c);
      if (ec) {
        if (c->timed_out)
          spdlog::debug("admin {}: closed a stream whose client read nothing for {} ms",
                        c->state->path, c->state->options.idle_timeout.count());
        break;
      }
    }
  }

  static asio::awaitable<void> refuse(Stream::socket socket, std::string message) {
    const std::string reply = encode_error_reply(message);
    boost::system::error_code ec;
    co_await asio::async_write(socket, asio::buffer(reply),
                               asio::redirect_error(asio::use_awaitable, ec));
    socket.close(ec);
  }

  // Why a newly accepted peer may not have a connection, or nullopt. The
  // last slot is root's, so that whoever holds the others, root gets in.
  std::optional<std::string> refusal(const PeerCredentials& peer) const {
    if (std::find(options.allowed_uids.begin(), options.allowed_uids.end(), peer.uid) ==
        options.allowed_uids.end()) {
      spdlog::warn("admin {}: refusing pid {} uid {}: not an allowed uid ({})", path, peer.pid,
                   peer.uid, fmt::join(options.allowed_uids, ", "));
      return fmt::format("uid {} may not use this admin socket (allowed: {})", peer.uid,
                         fmt::join(options.allowed_uids, ", "));
    }
    if (live.size() >= options.max_connections ||
        (live.size() + 1 >= options.max_connections && peer.uid != 0)) {
      spdlog::warn("admin {}: refusing pid {} uid {}, {} connections already open{}", path,
                   peer.pid, peer.uid, live.size(),
                   live.size() < options.max_connections ? " (the last is kept for root)" : "");
      return fmt::format("too many admin connections (limit {}); try again later",
                         options.max_connections);
    }
    return std::nullopt;
  }

  // One loop per start(); a loop from before a stop() and a restart sees a
  // newer generation and ends instead of accepting next to the new one.
  static asio::awaitable<void> accept_loop(std::shared_ptr<State> self) {
    const std::uint64_t generation = self->generation;
    auto current = [&] { return self->running && self->generation == generation; };
    for (;;) {
      auto accepted = co_await accept_next(self->acceptor, "admin", self->path, current);
      if (!accepted) co_return;
      Stream::socket socket = std::move(*accepted);
      const auto peer = self->options.peer_credentials(socket.native_handle());
      std::optional<std::string> refused;
      if (!peer) {
        spdlog::warn("admin {}: refusing a connection: {}", self->path, peer.error());
        refused = peer.error();
      } else {
        spdlog::debug("admin {}: connection from pid {} uid {} gid {}", self->path, peer->pid,
                      peer->uid, peer->gid);
        refused = self->refusal(*peer);
      }
      if (refused) {
        asio::co_spawn(self->io, refuse(std::move(socket), std::move(*refused)),
                       log_failure("admin connection refusal"));
        continue;
      }
      auto connection = std::make_shared<Connection>(std::move(socket), self);
      asio::co_spawn(self->io, session(std::move(connection)), log_failure("admin connection"));
    }
  }

  asio::io_context& io;
  std::string path;
  Handler handler;
  AdminServerOptions options;
  Stream::acceptor acceptor;
  std::set<Connection*> live;
  bool running = false;
  std::uint64_t generation = 0;
  SocketFile file{"admin socket"};
};

#pragma GCC diagnostic pop

AdminServer::AdminServer(asio::io_context& io, std::string path, Handler handler,
                         AdminServerOptions options)
    : state_(
          std::make_shared<State>(io, std::move(path), std::move(handler), std::move(options))) {}

AdminServer::~AdminServer() { stop(); }

void AdminServer::start() {
  State& s = *state_;
  if (s.running) return;
  s.file.listen(s.acceptor, s.path);

  s.running = true;
  ++s.generation;
  asio::co_spawn(s.io, State::accept_loop(state_), log_failure("admin accept loop"));
  spdlog::info("admin socket listening on {}", s.path);
}

void AdminServer::stop() {
  State& s = *state_;
  if (!s.running) return;
  s.running = false;
  boost::system::error_code ignored;
  s.acceptor.close(ignored);
  // A closed connection leaves `live` only when its coroutine finishes.
  for (auto* connection : std::vector<State::Connection*>(s.live.begin(), s.live.end())) {
    connection->close();
  }
  s.file.remove_if_ours(s.path);
  spdlog::info("admin socket {} closed", s.path);
}

const std::string& AdminServer::path() const { return state_->path; }
std::size_t AdminServer::connections() const { return state_->live.size(); }

}  // namespace mixlb
