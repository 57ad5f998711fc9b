#pragma once
// The client side of the admin socket (admin_protocol.h): blocking calls
// with a deadline, no event loop, for mixlbctl and tests. It is part of the
// small mixlb_admin_client library, so mixlbctl links none of the daemon's
// libraries.
//
// Most commands are one call: admin_call (the daemon's reply) or
// admin_request (the result, or one message for whatever went wrong). A
// stream command keeps its AdminClient: call() for the first reply, then
// next_line() for each event until the daemon closes the stream.
#include <sys/un.h>

#include <chrono>
#include <expected>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "admin/admin_protocol.h"

namespace mixlb {

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

// The address of a Unix socket at `path`; nullopt when the path is empty or
// too long for one.
std::optional<sockaddr_un> unix_socket_address(const std::string& path);

// One connection to a daemon's admin socket.
class AdminClient {
 public:
  // Connects within `timeout`. The error says why not ("cannot connect to
  // /run/mixlb/mix1.sock: No such file or directory — is mixlb running?").
  static std::expected<AdminClient, std::string> connect(const std::string& path,
                                                         std::chrono::milliseconds timeout);
  AdminClient(AdminClient&& other) noexcept;
  AdminClient& operator=(AdminClient&& other) noexcept;
  AdminClient(const AdminClient&) = delete;
  AdminClient& operator=(const AdminClient&) = delete;
  ~AdminClient();

  // Sends one request and waits for its reply line, all within `timeout`.
  // The expected value is the daemon's reply, ok or not; the unexpected one
  // says why there was no reply.
  std::expected<AdminReply, std::string> call(std::string_view cmd, const nlohmann::json& args,
                                              std::chrono::milliseconds timeout);

  // The next line after a stream's first reply (without its newline),
  // waiting as long as it takes; nullopt when the daemon closed the stream.
  std::expected<std::optional<std::string>, std::string> next_line();

 private:
  using Deadline = std::optional<std::chrono::steady_clock::time_point>;
  friend std::expected<AdminReply, std::string> admin_call(const std::string&, std::string_view,
                                                           const nlohmann::json&,
                                                           std::chrono::milliseconds);
  AdminClient(int fd, std::string path);
  // call() by `deadline`; `timeout` is what an error says was given.
  std::expected<AdminReply, std::string> call_by(std::string_view cmd, const nlohmann::json& args,
                                                 std::chrono::steady_clock::time_point deadline,
                                                 std::chrono::milliseconds timeout);
  std::expected<std::optional<std::string>, std::string> read_line(Deadline deadline,
                                                                   std::chrono::milliseconds timeout);

  int fd_ = -1;
  std::string path_;
  std::string pending_;  // received past the last line returned
};

// Sends one request on a fresh connection and waits for its reply line, all
// within `timeout`. The expected value is the daemon's reply, ok or not; the
// unexpected one says why there was no reply.
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
