#include "admin/socket_file.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <system_error>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "admin/admin_client.h"  // unix_socket_address
#include "kernel/unique_fd.h"

namespace mixlb {
namespace {

std::string errno_text(int error) { return std::error_code(error, std::system_category()).message(); }

// Connects without blocking: 0 when something is listening (or its backlog
// is full, which also means it is alive), otherwise the errno.
int probe_socket(const sockaddr_un& address) {
  const UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return errno;
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0) return 0;
  return errno == EAGAIN ? 0 : errno;
}

// mkdir -p with mode 0700 for the directories it creates.
void make_private_directories(const std::string& dir, const std::string& what) {
  if (dir.empty()) return;
  std::size_t at = 0;
  while (at != std::string::npos) {
    at = dir.find('/', at + 1);
    const std::string prefix = dir.substr(0, at);
    if (prefix.empty() || prefix == "/") continue;
    if (::mkdir(prefix.c_str(), 0700) == 0) {
      // mkdir's mode passes through the umask; say exactly what we mean.
      if (::chmod(prefix.c_str(), 0700) != 0)
        throw std::runtime_error(fmt::format("cannot set mode 0700 on {}: {}", prefix, errno_text(errno)));
      continue;
    }
    if (errno == EEXIST) continue;
    throw std::runtime_error(
        fmt::format("cannot create directory {} for the {}: {}", prefix, what, errno_text(errno)));
  }
}

// Makes `path` free to bind: its directory exists, and a socket file that
// nobody answers on any more is removed.
void prepare(const std::string& path, const sockaddr_un& address, const std::string& what) {
  if (const auto slash = path.rfind('/'); slash != std::string::npos && slash != 0)
    make_private_directories(path.substr(0, slash), what);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throw std::runtime_error(fmt::format("cannot check {}: {}", path, errno_text(errno)));
  }
  if (!S_ISSOCK(st.st_mode))
    throw std::runtime_error(fmt::format("{} exists and is not a socket; refusing to replace it", path));
  const int probe = probe_socket(address);
  if (probe == 0) throw std::runtime_error(fmt::format("another mixlb is already serving {}", path));
  if (probe == ENOENT) return;  // it went away meanwhile
  if (probe != ECONNREFUSED)
    throw std::runtime_error(fmt::format("cannot check whether {} is in use: {}", path, errno_text(probe)));
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    throw std::runtime_error(fmt::format("cannot remove stale {} {}: {}", what, path, errno_text(errno)));
  spdlog::info("removed stale {} {}", what, path);
}

}  // namespace

void SocketFile::listen(boost::asio::local::stream_protocol::acceptor& acceptor, const std::string& path) {
  using Stream = boost::asio::local::stream_protocol;
  const auto address = unix_socket_address(path);
  if (!address)
    throw std::runtime_error(fmt::format("{} path '{}' is empty or longer than {} bytes", what_, path,
                                         sizeof(sockaddr_un::sun_path) - 1));
  prepare(path, *address, what_);
  boost::system::error_code ec;
  auto fail = [&](std::string message) {
    boost::system::error_code ignored;
    const bool bound = acceptor.is_open() && ino_ != 0;
    acceptor.close(ignored);
    if (bound) ::unlink(path.c_str());
    dev_ = 0;
    ino_ = 0;
    throw std::runtime_error(std::move(message));
  };
  acceptor.open(Stream(), ec);
  if (ec) fail(fmt::format("cannot create {} {}: {}", what_, path, ec.message()));
  if (::fchmod(acceptor.native_handle(), 0600) != 0)
    fail(fmt::format("cannot set mode of {} {}: {}", what_, path, errno_text(errno)));
  acceptor.bind(Stream::endpoint(path), ec);
  if (ec) fail(fmt::format("cannot bind {} {}: {}", what_, path, ec.message()));
  struct stat st {};
  if (::chmod(path.c_str(), 0600) != 0 || ::lstat(path.c_str(), &st) != 0) {
    const int error = errno;
    ::unlink(path.c_str());
    fail(fmt::format("cannot set mode 0600 on {} {}: {}", what_, path, errno_text(error)));
  }
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  if (!S_ISSOCK(st.st_mode) || (st.st_mode & 07777) != 0600)
    fail(fmt::format("{} {} has mode {:o}, not 0600", what_, path, st.st_mode & 07777));
  acceptor.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (ec) fail(fmt::format("cannot listen on {} {}: {}", what_, path, ec.message()));
}

boost::asio::awaitable<std::optional<boost::asio::local::stream_protocol::socket>> accept_next(
    boost::asio::local::stream_protocol::acceptor& acceptor, std::string_view what, const std::string& path,
    std::function<bool()> serving) {
  namespace asio = boost::asio;
  for (;;) {
    boost::system::error_code ec;
    auto socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (!serving() || ec == asio::error::operation_aborted) co_return std::nullopt;
    if (!ec) co_return std::move(socket);
    spdlog::warn("{} {}: accept failed: {}", what, path, ec.message());
    asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(100));
    co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (!serving()) co_return std::nullopt;
  }
}

void SocketFile::remove_if_ours(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) ::unlink(path.c_str());
  dev_ = 0;
  ino_ = 0;
}

}  // namespace mixlb
