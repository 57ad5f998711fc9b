#pragma once
// The file of a Unix stream socket a daemon listens on (the admin socket, the
// handoff socket): one place for what makes such a file safe to take and to
// give back, so both servers follow the same rules.
//
//   - A file at the path that nobody answers on any more (what a crashed
//     sidecar leaves) is replaced; one a live process answers on, or
//     anything that is not a socket, is refused, so two daemons never serve
//     one path.
//   - Missing directories are made with mode 0700.
//   - The file is 0600 from its first moment: the socket's inode gets the
//     mode before bind(), which gives the file that mode less the umask, so
//     the process-wide umask is never touched while other threads run.
//   - remove_if_ours() removes the file only while it is still the one this
//     object bound (same device and inode): a successor that took the path
//     over keeps its socket.
#include <sys/types.h>

// clang-format off
// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>
// clang-format on

#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace mixlb {

class SocketFile {
 public:
  // `what` names the socket in errors and logs: "admin socket".
  explicit SocketFile(std::string what) : what_(std::move(what)) {}

  // Opens `acceptor`, binds it at `path` (mode 0600) and listens. Throws
  // std::runtime_error with a sentence that names the path and the fault;
  // the acceptor is closed and nothing is left at the path then.
  void listen(boost::asio::local::stream_protocol::acceptor& acceptor, const std::string& path);
  void remove_if_ours(const std::string& path);

 private:
  std::string what_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

// The next connection on `acceptor`; nullopt once the server is gone (the
// acceptor closed, or `serving()` says no). An accept that fails otherwise
// (EMFILE and the like) is logged as `what` at `path` and retried after
// 100 ms, so a server out of descriptors never spins on the error.
boost::asio::awaitable<std::optional<boost::asio::local::stream_protocol::socket>> accept_next(
    boost::asio::local::stream_protocol::acceptor& acceptor, std::string_view what, const std::string& path,
    std::function<bool()> serving);

}  // namespace mixlb
