#include "reuseport/handoff.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <exception>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <system_error>

#include "admin/socket_file.h"
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


// Takes ownership of the fds an SCM_RIGHTS message of `message` carries, so
// that whatever happens next, they are closed.
void take_fds(msghdr& message, std::vector<UniqueFd>& into) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
      into.emplace_back(fd);
    }
  }
}

std::string_view plural(std::size_t n, std::string_view one, std::string_view many) {
  return n == 1 ? one : many;
}

}  // namespace

std::expected<HandoffRequest, std::string> parse_handoff_request(std::string_view line) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    // what() starts with "[json.exception.parse_error.101] ", which says
    // nothing to the app's author.
    std::string_view why = e.what();
    if (const auto end = why.find("] ");
        why.starts_with("[json.") && end != std::string_view::npos) {
      why.remove_prefix(end + 2);
    }
    return std::unexpected(fmt::format("the request line is not JSON: {}", why));
  }
  if (!json.is_object()) {
    return std::unexpected(fmt::format(
        R"(the request line must be a JSON object such as {{"label":"web","ready":true}}, not {})",
        json.type_name()));
  }
  HandoffRequest request;
  for (const auto& [key, value] : json.items()) {
    if (key == "label") {
      if (!value.is_string()) {
        return std::unexpected(
            fmt::format("\"label\" must be a string, not {}", value.type_name()));
      }
      request.label = value.get<std::string>();
    } else if (key == "ready") {
      if (!value.is_boolean()) {
        return std::unexpected(
            fmt::format("\"ready\" must be true or false, not {}", value.type_name()));
      }
      request.ready = value.get<bool>();
    } else {
      return std::unexpected(fmt::format("unknown key {} (a request takes \"label\" and \"ready\")",
                                         quote_input(key)));
    }
  }
  return request;
}

std::string encode_handoff_reply(
    const std::expected<std::vector<Registered>, std::string>& result) {
  // Ordered, so the line reads as the protocol shows it: "ok" first.
  nlohmann::ordered_json reply;
  if (result) {
    reply["ok"] = true;
    auto& registered = reply["registered"] = nlohmann::ordered_json::array();
    for (const Registered& r : *result) {
      registered.push_back(nlohmann::ordered_json{{"service", r.service.to_string()},
                                                  {"generation", r.generation},
                                                  {"sockets", r.sockets},
                                                  {"active", r.active}});
    }
  } else {
    reply["ok"] = false;
    reply["error"] = result.error();
  }
  // An error may quote bytes that are not UTF-8; the reply must still go.
  return reply.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

// g++ 12 can inline Asio's frame allocator into a coroutine's ramp but not
// its matching operator delete, then reports them as mismatched (see
// admin_server.cc); the pair is Asio's own.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

struct HandoffServer::State {
  struct Connection {
    Connection(Stream::socket s, PeerCredentials who, std::shared_ptr<State> owner)
        : socket(std::move(s)),
          deadline(socket.get_executor()),
          peer(who),
          state(std::move(owner)),
          generation(state->generation) {
      state->live.insert(this);
    }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection() { state->live.erase(this); }

    void close() {
      closed = true;
      boost::system::error_code ignored;
      socket.close(ignored);
      deadline.cancel();
      fds.clear();
    }

    Stream::socket socket;
    // Cancels the wait or write under way when it fires.
    asio::steady_timer deadline;
    PeerCredentials peer;
    std::shared_ptr<State> state;
    std::uint64_t generation;
    // Every fd received so far: owned from the moment recvmsg installs it.
    std::vector<UniqueFd> fds;
    bool timed_out = false;
    bool closed = false;
  };

  State(asio::io_context& context, HandoffRegister callback, HandoffServerOptions server_options)
      : io(context),
        register_sockets(std::move(callback)),
        options(std::move(server_options)),
        acceptor(context) {}

  // Whether a connection accepted under `of` may still be served: not after
  // a stop(), so the callback never runs for a server that is gone.
  bool current(std::uint64_t of) const { return running && generation == of; }

  // Cancels the connection's wait or write when it lasts past `timeout`. A
  // wait that was re-armed after it fired finds its expiry in the future
  // and leaves the connection alone.
  static void arm_deadline(const std::shared_ptr<Connection>& c,
                           std::chrono::milliseconds timeout) {
    c->deadline.expires_after(timeout);
    c->deadline.async_wait(
        [weak = std::weak_ptr<Connection>(c)](const boost::system::error_code& ec) {
          const auto connection = weak.lock();
          if (ec || !connection ||
              connection->deadline.expiry() > asio::steady_timer::clock_type::now())
            return;
          connection->timed_out = true;
          boost::system::error_code ignored;
          connection->socket.cancel(ignored);
        });
  }

  // Reads the request line, taking the fds of whichever recvmsg carries
  // them. The unexpected value is the error to reply with, or "" when there
  // is nobody to reply to (the server closed the connection, or the peer
  // did without a word).
  static asio::awaitable<std::expected<std::string, std::string>> read_request(
      std::shared_ptr<Connection> c) {
    const auto timeout = c->state->options.request_timeout;
    std::string line;
    std::array<char, kHandoffMaxLine + 1> buffer;  // the longest line and its newline
    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * kHandoffMaxFds)> control;
    for (;;) {
      boost::system::error_code ec;
      co_await c->socket.async_wait(Stream::socket::wait_read,
                                    asio::redirect_error(asio::use_awaitable, ec));
      if (c->closed) co_return std::unexpected(std::string());
      if (c->timed_out) {
        co_return std::unexpected(fmt::format("no complete request within {} ms", timeout.count()));
      }
      if (ec)
        co_return std::unexpected(fmt::format("cannot wait for the request: {}", ec.message()));

      iovec data{buffer.data(), buffer.size() - line.size()};
      msghdr message{};
      message.msg_iov = &data;
      message.msg_iovlen = 1;
      message.msg_control = control.data();
      message.msg_controllen = control.size();
      const ssize_t n =
          ::recvmsg(c->socket.native_handle(), &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
      if (n < 0) {
        const int error = errno;
        if (error == EAGAIN || error == EWOULDBLOCK || error == EINTR) continue;
        co_return std::unexpected(fmt::format("cannot read the request: {}", errno_text(error)));
      }
      take_fds(message, c->fds);
      // The control buffer holds kHandoffMaxFds fds; the kernel closes the
      // ones that did not fit and says so with MSG_CTRUNC.
      if ((message.msg_flags & MSG_CTRUNC) != 0 || c->fds.size() > kHandoffMaxFds) {
        co_return std::unexpected(
            fmt::format("too many fds: a request may carry at most {}", kHandoffMaxFds));
      }
      line.append(buffer.data(), static_cast<std::size_t>(n));
      if (const auto newline = line.find('\n'); newline != std::string::npos) {
        if (newline + 1 != line.size()) {
          co_return std::unexpected(
              fmt::format("a request is one line; {} more byte(s) followed its newline",
                          line.size() - newline - 1));
        }
        line.pop_back();
        if (!line.empty() && line.back() == '\r') line.pop_back();
        co_return line;
      }
      if (line.size() > kHandoffMaxLine) {
        co_return std::unexpected(
            fmt::format("the request line is longer than {} bytes", kHandoffMaxLine));
      }
      if (n == 0 && line.empty() && c->fds.empty()) {
        // Nothing sent: a probe, such as another server's check that this
        // path is live. Nobody waits for a reply.
        spdlog::debug("handoff {}: pid {} closed without a request", c->state->path, c->peer.pid);
        co_return std::unexpected(std::string());
      }
      if (n == 0) {
        co_return std::unexpected(
            std::string("the connection ended before the request line's newline"));
      }
    }
  }

  // Hands the request to the callback, which must not take the server down
  // whatever it throws.
  std::expected<std::vector<Registered>, std::string> call_register(
      const RegisterRequest& request) {
    try {
      return register_sockets(request);
    } catch (const std::exception& e) {
      spdlog::error("handoff {}: registering pid {}'s sockets threw: {}", path, request.pid,
                    e.what());
      return std::unexpected(fmt::format("internal error: {}", e.what()));
    }
  }

  static asio::awaitable<void> session(std::shared_ptr<Connection> c) {
    State& s = *c->state;
    arm_deadline(c, s.options.request_timeout);
    const auto line = co_await read_request(c);
    if (c->closed || (!line && line.error().empty())) {
      c->close();
      co_return;
    }

    std::expected<std::vector<Registered>, std::string> result;
    std::string label;
    if (!line) {
      result = std::unexpected(line.error());
    } else if (auto request = parse_handoff_request(*line); !request) {
      result = std::unexpected(request.error());
    } else if (c->fds.empty()) {
      result = std::unexpected(fmt::format(
          "the request carried no fds: send 1 to {} sockets as SCM_RIGHTS with the request line",
          kHandoffMaxFds));
    } else if (!s.current(c->generation)) {
      c->close();
      co_return;
    } else {
      label = request->label;
      std::vector<int> fds;
      fds.reserve(c->fds.size());
      for (const UniqueFd& fd : c->fds) fds.push_back(fd.get());
      result = s.call_register(RegisterRequest{fds, c->peer.pid, request->label, request->ready});
    }
    const std::size_t received = c->fds.size();
    // The registry keeps no fd: closing ours leaves the app their only owner.
    c->fds.clear();

    if (result) {
      spdlog::info("handoff {}: pid {} registered {} socket{}{}", s.path, c->peer.pid, received,
                   plural(received, "", "s"), label.empty() ? "" : " as " + quote_input(label));
    } else {
      spdlog::warn("handoff {}: refused pid {} ({} fd{}): {}", s.path, c->peer.pid, received,
                   plural(received, "", "s"), result.error());
    }
    const std::string reply = encode_handoff_reply(result);
    arm_deadline(c, s.options.request_timeout);
    boost::system::error_code ec;
    co_await asio::async_write(c->socket, asio::buffer(reply),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec && !c->closed)
      spdlog::debug("handoff {}: reply to pid {} not sent: {}", s.path, c->peer.pid, ec.message());
    c->close();
  }

  // A refused peer gets one error line; its reply is short enough to fit in
  // the socket's buffer, so the write does not wait on the peer.
  static asio::awaitable<void> refuse(Stream::socket socket, std::string message) {
    const std::string reply = encode_handoff_reply(std::unexpected(std::move(message)));
    boost::system::error_code ec;
    co_await asio::async_write(socket, asio::buffer(reply),
                               asio::redirect_error(asio::use_awaitable, ec));
    socket.close(ec);
  }

  // Why a newly accepted peer may not register, or nullopt.
  std::optional<std::string> refusal(
      const std::expected<PeerCredentials, std::string>& peer) const {
    if (!peer) return peer.error();
    if (std::find(options.allowed_uids.begin(), options.allowed_uids.end(), peer->uid) ==
        options.allowed_uids.end()) {
      return fmt::format("uid {} may not register sockets here (allowed: {})", peer->uid,
                         fmt::join(options.allowed_uids, ", "));
    }
    if (live.size() >= options.max_connections) {
      return fmt::format("too many handoff connections (limit {}); try again later",
                         options.max_connections);
    }
    return std::nullopt;
  }

  // One loop per start(); a loop from before a stop() and a restart sees a
  // newer generation and ends instead of accepting next to the new one.
  static asio::awaitable<void> accept_loop(std::shared_ptr<State> self) {
    const std::uint64_t generation = self->generation;
    for (;;) {
      auto accepted =
          co_await accept_next(self->acceptor, "handoff", self->path, [&] { return self->current(generation); });
      if (!accepted) co_return;
      Stream::socket socket = std::move(*accepted);
      const auto peer = self->options.peer_credentials(socket.native_handle());
      if (const auto refused = self->refusal(peer)) {
        spdlog::warn("handoff {}: refusing a connection{}: {}", self->path,
                     peer ? fmt::format(" from pid {} uid {}", peer->pid, peer->uid) : "",
                     *refused);
        asio::co_spawn(self->io, refuse(std::move(socket), *refused),
                       log_failure("handoff refusal"));
        continue;
      }
      auto connection = std::make_shared<Connection>(std::move(socket), *peer, self);
      asio::co_spawn(self->io, session(std::move(connection)), log_failure("handoff connection"));
    }
  }

  asio::io_context& io;
  HandoffRegister register_sockets;
  HandoffServerOptions options;
  Stream::acceptor acceptor;
  std::string path;
  std::set<Connection*> live;
  bool running = false;
  std::uint64_t generation = 0;
  SocketFile file{"handoff socket"};
};

#pragma GCC diagnostic pop

HandoffServer::HandoffServer(asio::io_context& io, HandoffRegister register_sockets,
                             HandoffServerOptions options)
    : state_(std::make_shared<State>(io, std::move(register_sockets), std::move(options))) {}

HandoffServer::~HandoffServer() { stop(); }

void HandoffServer::start(const std::string& path) {
  State& s = *state_;
  if (s.running) {
    throw std::runtime_error(fmt::format(
        "the handoff server already serves {}; stop it before starting it at {}", s.path, path));
  }
  s.file.listen(s.acceptor, path);
  s.path = path;
  s.running = true;
  ++s.generation;
  asio::co_spawn(s.io, State::accept_loop(state_), log_failure("handoff accept loop"));
  spdlog::info("handoff socket listening on {}", path);
}

void HandoffServer::stop() {
  State& s = *state_;
  if (!s.running) return;
  s.running = false;
  boost::system::error_code ignored;
  s.acceptor.close(ignored);
  // A closed connection leaves `live` when its coroutine finishes.
  for (auto* connection : std::vector<State::Connection*>(s.live.begin(), s.live.end())) {
    connection->close();
  }
  s.file.remove_if_ours(s.path);
  spdlog::info("handoff socket {} closed", s.path);
}

const std::string& HandoffServer::path() const { return state_->path; }
std::size_t HandoffServer::connections() const { return state_->live.size(); }

}  // namespace mixlb
