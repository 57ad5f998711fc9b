#pragma once
// The handoff socket: where a cooperating app hands its SO_REUSEPORT sockets
// to the sidecar with SCM_RIGHTS, so the reuseport selector can place its
// flows (reuseport/sockets.h). The app side is the plain-C header
// client/mixlb_sockets.h, which mixlb-run uses.
//
// It is a Unix socket of its own, not a command of the admin socket: an app
// needs this one request and nothing of what the admin socket offers, and
// the admin protocol carries no file descriptors. One request a connection:
//
//   app -> sidecar   {"label":"web-v2","ready":true}\n     in one sendmsg
//                    with SCM_RIGHTS carrying 1..64 socket fds; both keys
//                    optional (label "" = "pid:<pid>", ready true)
//   sidecar -> app   {"ok":true,"registered":[{"service":"tcp 0.0.0.0:80",
//                    "generation":2,"sockets":1,"active":true}]}\n
//                    or {"ok":false,"error":"..."}\n, then it closes
//
// The pid of the generation is the connecting process's (SO_PEERCRED), not
// something the request says, so an app cannot register under another's.
//
// The server runs on the daemon's io_context like the admin server
// (admin/admin_server.h), and its socket file follows the same rules, in
// the same code (admin/socket_file.h): 0600, a missing directory made 0700,
// a path a live server answers on refused and a stale one replaced, the
// file removed by stop() only while it is still the one it bound; only root
// and the daemon's own uid may register (peer credentials read at accept,
// the others get an error line); each connection has its request within
// 2 s; connections are bounded. It waits with Asio and reads with ::recvmsg
// on the native handle, since Asio cannot receive ancillary data. Every fd
// it receives is closed once the request is answered, on every path: the
// registry keeps none (it leaves the sockets in the kernel's sockarray), so
// the app stays their only owner. Bad input costs its sender an error line,
// never the server anything.
#include <sys/types.h>

// clang-format off
// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>
// clang-format on

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "admin/admin_server.h"  // PeerCredentials, read_peer_credentials
#include "reuseport/registry.h"

namespace mixlb {

// What one request may carry: the fds (the selector's groups are small; the
// kernel would allow 253) and the bytes of its line, newline excluded.
inline constexpr std::size_t kHandoffMaxFds = 64;
inline constexpr std::size_t kHandoffMaxLine = 4096;

// The request line's contents, parsed.
struct HandoffRequest {
  std::string label;
  bool ready = true;
};

// Parses one request line (without its newline). The error says what was
// wrong with it: not JSON, not an object, which key is unknown, which has
// the wrong type.
std::expected<HandoffRequest, std::string> parse_handoff_request(std::string_view line);

// The reply line, newline included, for what the registration gave.
std::string encode_handoff_reply(const std::expected<std::vector<Registered>, std::string>& result);

// Registers the sockets of one request: SocketService::register_sockets in
// the daemon, a recorder in tests. It runs on the io_context's thread; the
// request's fds are borrowed and closed after it returns.
using HandoffRegister =
    std::function<std::expected<std::vector<Registered>, std::string>(const RegisterRequest&)>;

struct HandoffServerOptions {
  // The whole request, line and fds, must arrive within this time; then the
  // reply must be written within it again.
  std::chrono::milliseconds request_timeout{2'000};
  // Connections open at once; more are refused with an error line. Each can
  // hold up to kHandoffMaxFds received fds until it is answered.
  std::size_t max_connections = 16;
  // Peers with any other uid are refused with an error line.
  std::vector<uid_t> allowed_uids = default_admin_uids();
  // How the server learns who connected: read_peer_credentials, or a
  // stand-in that lets a test play other users.
  std::function<std::expected<PeerCredentials, std::string>(int fd)> peer_credentials =
      read_peer_credentials;
};

class HandoffServer {
 public:
  HandoffServer(boost::asio::io_context& io, HandoffRegister register_sockets,
                HandoffServerOptions options = {});
  HandoffServer(const HandoffServer&) = delete;
  HandoffServer& operator=(const HandoffServer&) = delete;
  ~HandoffServer();  // stop()

  // Binds `path` and starts accepting. Start-up errors throw
  // std::runtime_error with a sentence naming the path ("... is already
  // served by a live process"). The directory must exist.
  void start(const std::string& path);
  // Closes the listener and every connection (their fds too) and removes the
  // socket file if it is still the one start() bound. Call start() and
  // stop() on the io_context's thread, or while it is not running.
  void stop();

  // The path of the last start(); "" before one.
  const std::string& path() const;
  std::size_t connections() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace mixlb
