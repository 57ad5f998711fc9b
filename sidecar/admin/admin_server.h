#pragma once
// The daemon's admin endpoint: a Unix stream socket speaking the protocol in
// admin_protocol.h. The blocking client is admin_client.h.
//
// The server runs on the daemon's io_context: one accept coroutine and one
// coroutine per connection, each spawned with a completion handler that logs
// what escaped it. The handler is a coroutine too, run on the io_context's
// thread, so it reads the daemon's state without locks and may wait for an
// answer posted back from another thread (gossip) without blocking anyone.
//
// Everything that could let one client hurt the daemon or lock mixlbctl out
// is bounded: line length (kAdminMaxLine); connections (64, the last one
// kept for root); the first request must arrive within 2 s, so silent
// connections cannot hold the slots; after that a request, a handler and a
// reply each get the idle time (30 s). A bad request costs the client an
// error line, never the daemon anything. A stream answer keeps its
// connection (and its slot) until the client closes it or the server
// stops; its lines are written as the stream has them, each write within
// the idle time, so a client that stops reading is closed, and the stream's
// own queue (monitor.h) bounds what waits meanwhile. The peer's credentials are read at
// accept: by default only root and the daemon's own user may talk.
//
// The socket file is the instance's identity on the node, so start() refuses
// to take a path another live mixlb is serving, replaces a stale file left by
// a crash, creates the parent directory 0700 if missing and makes the socket
// 0600 (root only, like the daemon). stop() removes the file, but only if it
// is still the one this server bound.
#include <sys/types.h>

// clang-format off
// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>
// clang-format on

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <expected>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "admin/admin_client.h"
#include "admin/admin_protocol.h"

namespace mixlb {

// What a handler answers: a result, sent as the ok reply, and for a stream
// command the stream whose lines follow it.
struct AdminAnswer {
  AdminAnswer(nlohmann::json answer) : result(std::move(answer)) {}  // NOLINT: a plain result
  AdminAnswer(nlohmann::json answer, std::shared_ptr<AdminStream> lines)
      : result(std::move(answer)), stream(std::move(lines)) {}
  nlohmann::json result;
  std::shared_ptr<AdminStream> stream;
};

// Answers one request. A coroutine, so its arguments are taken by value: it
// must own what it reads after it first suspends. It throws AdminError to
// refuse a request (the message is the reply's error); anything else it
// throws becomes "internal error: ..." and an error in the log.
using AdminHandler =
    std::function<boost::asio::awaitable<AdminAnswer>(std::string cmd, nlohmann::json args)>;

// Parses `line` and runs the handler on an io_context of its own until it
// has finished: the server's rules without a socket, for tests and tools.
// What the handler awaits (a timer, say) runs on that io_context too. A
// stream answer gives its first reply, and the stream is closed.
AdminOutcome handle_admin_line(std::string_view line, const AdminHandler& handler);

// Who is at the other end of a Unix socket, as the kernel saw it connect.
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// SO_PEERCRED of a connected Unix socket; the error says why not.
std::expected<PeerCredentials, std::string> read_peer_credentials(int fd);

// Root and the effective uid of this process (once if they are the same).
std::vector<uid_t> default_admin_uids();

struct AdminServerOptions {
  // A connection must send its first complete request line within this time,
  // or it is closed: until it has talked it only holds a slot.
  std::chrono::milliseconds first_request_timeout{2'000};
  // After that, the time each request line, handler and reply may take.
  std::chrono::milliseconds idle_timeout{30'000};
  // The last connection is kept for root, so mixlbctl run as root gets in
  // even when others hold every other slot.
  std::size_t max_connections = 64;
  // Peers with any other uid are refused with an error line.
  std::vector<uid_t> allowed_uids = default_admin_uids();
  // How the server learns who connected: read_peer_credentials, or a stand-in
  // that lets a test play other users.
  std::function<std::expected<PeerCredentials, std::string>(int fd)> peer_credentials =
      read_peer_credentials;
};

class AdminServer {
 public:
  using Handler = AdminHandler;

  AdminServer(boost::asio::io_context& io, std::string path, Handler handler,
              AdminServerOptions options = {});
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;
  ~AdminServer();  // stop()

  // Binds and starts accepting. Start-up errors throw std::runtime_error with
  // a sentence naming the path ("another mixlb is already serving ...").
  void start();
  // Closes the listener and every connection and removes the socket file.
  // Call start() and stop() on the io_context's thread, or while it is not
  // running.
  void stop();

  const std::string& path() const;
  std::size_t connections() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace mixlb
