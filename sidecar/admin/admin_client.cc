#include "admin/admin_client.h"

#include <dirent.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <system_error>
#include <utility>
#include <vector>

namespace mixlb {

namespace {

using Clock = std::chrono::steady_clock;

std::string errno_text(int error) {
  return std::error_code(error, std::system_category()).message();
}

// Milliseconds left until `deadline` for poll(): -1 (forever) without one.
int poll_ms(std::optional<Clock::time_point> deadline) {
  if (!deadline) return -1;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now());
  return static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 1'000'000'000));
}

std::string no_reply(const std::string& path, std::chrono::milliseconds timeout) {
  return fmt::format("no reply from {} within {} ms — is mixlb stuck?", path, timeout.count());
}

// Status replies grow with the cluster; anything past this is not a reply.
constexpr std::size_t kMaxReply = 64 * 1024 * 1024;

}  // namespace

std::string admin_socket_for_node(std::string_view node, std::string_view run_dir) {
  return fmt::format("{}/{}.sock", run_dir, node);
}

std::expected<std::string, AdminSocketLookupError> find_admin_socket(std::string_view run_dir) {
  const std::string dir(run_dir);
  DIR* stream = ::opendir(dir.c_str());
  if (stream == nullptr) {
    const int error = errno;
    if (error == ENOENT) {
      return std::unexpected(AdminSocketLookupError{
          false, fmt::format("no mixlb admin socket: {} does not exist — is mixlb running?", dir)});
    }
    return std::unexpected(
        AdminSocketLookupError{false, fmt::format("cannot list {}: {}", dir, errno_text(error))});
  }
  std::vector<std::string> sockets;
  while (const dirent* entry = ::readdir(stream)) {
    const std::string_view name = entry->d_name;
    if (name.size() <= 5 || !name.ends_with(".sock")) continue;
    struct stat st {};
    const std::string path = dir + "/" + std::string(name);
    if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) sockets.emplace_back(name);
  }
  ::closedir(stream);
  std::sort(sockets.begin(), sockets.end());
  if (sockets.empty()) {
    return std::unexpected(AdminSocketLookupError{
        false, fmt::format("no mixlb admin socket in {} — is mixlb running?", dir)});
  }
  if (sockets.size() > 1) {
    return std::unexpected(AdminSocketLookupError{
        true,
        fmt::format("several mixlb instances in {} ({}); choose one with -n NODE or -s SOCKET", dir,
                    fmt::join(sockets, ", "))});
  }
  return dir + "/" + sockets.front();
}

std::optional<sockaddr_un> unix_socket_address(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path)) return std::nullopt;
  std::memcpy(address.sun_path, path.data(), path.size());
  return address;
}

AdminClient::AdminClient(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

AdminClient::AdminClient(AdminClient&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      pending_(std::move(other.pending_)) {}

AdminClient& AdminClient::operator=(AdminClient&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    pending_ = std::move(other.pending_);
  }
  return *this;
}

AdminClient::~AdminClient() {
  if (fd_ >= 0) ::close(fd_);
}

std::expected<AdminClient, std::string> AdminClient::connect(const std::string& path,
                                                             std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const auto address = unix_socket_address(path);
  if (!address) {
    return std::unexpected(fmt::format("cannot connect to {}: path is empty or too long", path));
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return std::unexpected(fmt::format("cannot create a socket: {}", errno_text(errno)));
  AdminClient client(fd, path);
  // A Unix socket connects at once or fails; EAGAIN means the daemon's
  // backlog is full, so try again until the deadline.
  while (::connect(fd, reinterpret_cast<const sockaddr*>(&*address), sizeof(*address)) != 0) {
    const int error = errno;
    if (error == EINTR) continue;
    if (error == EAGAIN && poll_ms(deadline) > 0) {
      ::poll(nullptr, 0, 10);
      continue;
    }
    if (error == EAGAIN) return std::unexpected(no_reply(path, timeout));
    const char* hint =
        error == EACCES || error == EPERM ? " — are you root?" : " — is mixlb running?";
    return std::unexpected(
        fmt::format("cannot connect to {}: {}{}", path, errno_text(error), hint));
  }
  return client;
}

std::expected<AdminReply, std::string> AdminClient::call(std::string_view cmd,
                                                         const nlohmann::json& args,
                                                         std::chrono::milliseconds timeout) {
  return call_by(cmd, args, Clock::now() + timeout, timeout);
}

std::expected<AdminReply, std::string> AdminClient::call_by(
    std::string_view cmd, const nlohmann::json& args, std::chrono::steady_clock::time_point deadline,
    std::chrono::milliseconds timeout) {
  const std::string request = encode_admin_request(cmd, args);
  std::size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd_, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n >= 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EPIPE || errno == ECONNRESET) {
      // The daemon hung up before reading; a connection it refuses (too
      // many, a uid not allowed) gets an error line first, which says more.
      const int error = errno;
      if (auto line = read_line(deadline, timeout); line && *line) {
        if (auto parsed = parse_admin_reply(**line)) return parsed;
      }
      return std::unexpected(fmt::format("cannot send to {}: {}", path_, errno_text(error)));
    }
    if (errno != EAGAIN) {
      return std::unexpected(fmt::format("cannot send to {}: {}", path_, errno_text(errno)));
    }
    pollfd pfd{fd_, POLLOUT, 0};
    if (::poll(&pfd, 1, poll_ms(deadline)) == 0) return std::unexpected(no_reply(path_, timeout));
  }
  auto line = read_line(deadline, timeout);
  if (!line) return std::unexpected(std::move(line.error()));
  if (!*line) return std::unexpected(fmt::format("{} closed the connection without a reply", path_));
  auto parsed = parse_admin_reply(**line);
  if (!parsed) return std::unexpected(fmt::format("{} from {}", parsed.error(), path_));
  return parsed;
}

std::expected<std::optional<std::string>, std::string> AdminClient::next_line() {
  return read_line(std::nullopt, std::chrono::milliseconds(0));
}

std::expected<std::optional<std::string>, std::string> AdminClient::read_line(
    Deadline deadline, std::chrono::milliseconds timeout) {
  char chunk[16 * 1024];
  for (;;) {
    if (const auto newline = pending_.find('\n'); newline != std::string::npos) {
      std::string line = pending_.substr(0, newline);
      pending_.erase(0, newline + 1);
      return line;
    }
    if (pending_.size() > kMaxReply) {
      return std::unexpected(fmt::format("a line from {} exceeds {} bytes", path_, kMaxReply));
    }
    pollfd pfd{fd_, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, poll_ms(deadline));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(fmt::format("cannot wait for {}: {}", path_, errno_text(errno)));
    }
    if (ready == 0) return std::unexpected(no_reply(path_, timeout));
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return std::unexpected(fmt::format("cannot read from {}: {}", path_, errno_text(errno)));
    }
    if (n == 0) return std::optional<std::string>();
    pending_.append(chunk, static_cast<std::size_t>(n));
  }
}

std::expected<AdminReply, std::string> admin_call(const std::string& path, std::string_view cmd,
                                                  const nlohmann::json& args,
                                                  std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto client = AdminClient::connect(path, timeout);
  if (!client) return std::unexpected(std::move(client.error()));
  return client->call_by(cmd, args, deadline, timeout);
}

std::expected<nlohmann::json, std::string> admin_request(const std::string& path,
                                                         std::string_view cmd,
                                                         const nlohmann::json& args,
                                                         std::chrono::milliseconds timeout) {
  auto reply = admin_call(path, cmd, args, timeout);
  if (!reply) return std::unexpected(std::move(reply.error()));
  if (!reply->ok) return std::unexpected(std::move(reply->error));
  return std::move(reply->result);
}

}  // namespace mixlb
