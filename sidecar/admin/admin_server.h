#pragma once
// The daemon's admin endpoint (a Unix stream socket speaking the protocol in
// admin_protocol.h) and the blocking client mixlbctl uses to talk to it.
//
// The server runs on the daemon's io_context: one accept coroutine and one
// coroutine per connection, each spawned with a completion handler that logs
// what escaped it. Handlers run on the io_context's thread, so they read the
// daemon's state without locks. Everything that could let one client hurt
// the daemon is bounded: line length (kAdminMaxLine), connections (64), idle
// time (30 s); a bad request costs the client an error line, never the
// daemon anything.
//
// The socket file is the instance's identity on the node, so start() refuses
// to take a path another live mixlb is serving, replaces a stale file left by
// a crash, creates the parent directory 0700 if missing and makes the socket
// 0600 (root only, like the daemon). stop() removes the file, but only if it
// is still the one this server bound.
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <expected>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "admin/admin_protocol.h"

namespace mixlb {

struct AdminServerOptions {
  std::chrono::milliseconds idle_timeout{30'000};
  std::size_t max_connections = 64;
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

// Client side.

inline constexpr std::string_view kAdminRunDir = "/run/mixlb";

// <run_dir>/<node>.sock, the daemon's default for node `node`.
std::string admin_socket_for_node(std::string_view node, std::string_view run_dir = kAdminRunDir);

struct AdminSocketLookupError {
  bool ambiguous = false;  // several sockets: the user must choose (a usage error)
  std::string message;
};
// The only *.sock socket in `run_dir`; otherwise an error that lists what
// is there.
std::expected<std::string, AdminSocketLookupError> find_admin_socket(
    std::string_view run_dir = kAdminRunDir);

// Sends one request on a fresh connection and waits for its reply line, all
// within `timeout`. The expected value is the daemon's reply, ok or not; the
// unexpected one says why there was no reply ("cannot connect to
// /run/mixlb/mix1.sock: No such file or directory — is mixlb running?").
std::expected<AdminReply, std::string> admin_call(const std::string& path, std::string_view cmd,
                                                  const nlohmann::json& args,
                                                  std::chrono::milliseconds timeout);

// admin_call folded into one channel: the result, or a message that is either
// why the daemon could not be reached or the daemon's own error.
std::expected<nlohmann::json, std::string> admin_request(const std::string& path,
                                                         std::string_view cmd,
                                                         const nlohmann::json& args,
                                                         std::chrono::milliseconds timeout);

}  // namespace mixlb
