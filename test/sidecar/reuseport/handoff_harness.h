#pragma once
// A HandoffServer for tests: on a socket in a temporary directory, its
// io_context on a thread of its own (the clients under test block), and a
// recording callback in place of the registry that notes what each request
// brought — pid, label, ready, and each fd's SO_COOKIE, type and flags, read
// while the fds are still open — and refuses when told to. Shared by the
// handoff server's tests and mixlb-run's.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "reuseport/handoff.h"
#include "reuseport/registry.h"

namespace mixlb::test {

using namespace std::chrono_literals;

// How many fds this process has open now.
inline std::size_t open_fd_count() {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
    ++count;
  return count;
}

// Polls `done` until it holds; false after `timeout`.
inline bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout = 2s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// What the callback saw of one received fd.
struct SeenFd {
  bool socket = false;   // fstat says S_ISSOCK
  bool cloexec = false;  // MSG_CMSG_CLOEXEC did its work
  std::uint64_t cookie = 0;
  std::string service;  // "tcp 127.0.0.1:8080", from inspect_socket
  bool reuseport = false;
  bool listening = false;
};

struct SeenRequest {
  std::int32_t pid = 0;
  std::string label;
  bool ready = true;
  std::vector<SeenFd> fds;
  std::size_t open_fds = 0;  // the process's open fds while the callback ran
};

inline std::uint64_t socket_cookie(int fd) {
  std::uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  REQUIRE(::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) == 0);
  return cookie;
}

// A temporary directory, removed with what is in it.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "mixlb-handoff-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

class RunningHandoff {
 public:
  explicit RunningHandoff(HandoffServerOptions options = {})
      : path_(dir_.file("handoff.sock")), server_(io_, recorder(), std::move(options)) {
    server_.start(path_);
    thread_ = std::thread([this] {
      io_.run();
      drained_.set_value();
    });
  }
  RunningHandoff(const RunningHandoff&) = delete;
  RunningHandoff& operator=(const RunningHandoff&) = delete;
  ~RunningHandoff() {
    if (thread_.joinable()) shutdown();
  }

  const std::string& path() const { return path_; }
  const ScratchDir& dir() const { return dir_; }

  // Makes the callback answer every request with this error ("" = accept).
  void refuse_with(std::string error) {
    std::lock_guard lock(mutex_);
    refusal_ = std::move(error);
  }
  std::vector<SeenRequest> seen() {
    std::lock_guard lock(mutex_);
    return seen_;
  }

  // Runs `f` on the io_context's thread and waits for it.
  template <typename F>
  auto on_io(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    boost::asio::post(io_, [&task] { task(); });
    return result.get();
  }
  std::size_t connections() {
    return on_io([this] { return server_.connections(); });
  }

  // Stops the server on its thread and waits for the io_context to run out
  // of work, which it does only if stop() left nothing pending.
  bool shutdown() {
    boost::asio::post(io_, [this] { server_.stop(); });
    const bool drained = drained_.get_future().wait_for(5s) == std::future_status::ready;
    if (!drained) io_.stop();
    thread_.join();
    return drained;
  }

 private:
  HandoffRegister recorder() {
    return
        [this](
            const RegisterRequest& request) -> std::expected<std::vector<Registered>, std::string> {
          SeenRequest seen{request.pid, request.label, request.ready, {}, open_fd_count()};
          std::map<ServiceKey, std::size_t> services;
          for (const int fd : request.fds) {
            SeenFd fd_seen;
            struct stat st {};
            fd_seen.socket = ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
            fd_seen.cloexec = (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
            if (const auto facts = inspect_socket(fd)) {
              fd_seen.cookie = facts->cookie;
              fd_seen.service = facts->service.to_string();
              fd_seen.reuseport = facts->reuseport;
              fd_seen.listening = facts->listening;
              ++services[facts->service];
            }
            seen.fds.push_back(fd_seen);
          }
          std::lock_guard lock(mutex_);
          seen_.push_back(std::move(seen));
          if (!refusal_.empty()) return std::unexpected(refusal_);
          std::vector<Registered> registered;
          for (const auto& [service, count] : services) {
            registered.push_back(Registered{service, 2, count, request.ready, 0});
          }
          return registered;
        };
  }

  ScratchDir dir_;
  std::string path_;
  std::mutex mutex_;
  std::vector<SeenRequest> seen_;
  std::string refusal_;
  boost::asio::io_context io_;
  HandoffServer server_;
  std::promise<void> drained_;
  std::thread thread_;
};

}  // namespace mixlb::test
