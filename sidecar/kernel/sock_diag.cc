#include "kernel/sock_diag.h"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

#include "kernel/unique_fd.h"

namespace mixlb {
namespace {

constexpr std::uint32_t kTcpListenState = 10;

// One dump of `protocol` sockets of `family` in `states`, into `out`.
std::error_code dump(int fd, std::uint8_t family, std::uint8_t protocol, std::uint32_t states,
                     std::map<std::uint64_t, SocketDiag>& out) {
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } req{};
  req.header.nlmsg_len = sizeof(req);
  req.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.header.nlmsg_seq = 1;
  req.request.sdiag_family = family;
  req.request.sdiag_protocol = protocol;
  req.request.idiag_states = states;
  if (::send(fd, &req, sizeof(req), 0) < 0) return {errno, std::generic_category()};
  std::vector<char> buffer(64 * 1024);
  for (;;) {
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return {errno, std::generic_category()};
    }
    auto* msg = reinterpret_cast<nlmsghdr*>(buffer.data());
    int left = static_cast<int>(n);
    for (; NLMSG_OK(msg, left); msg = NLMSG_NEXT(msg, left)) {
      if (msg->nlmsg_type == NLMSG_DONE) return {};
      if (msg->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(msg));
        return {err->error ? -err->error : EIO, std::generic_category()};
      }
      if (msg->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
      const auto* d = static_cast<const inet_diag_msg*>(NLMSG_DATA(msg));
      std::uint64_t cookie = 0;
      std::memcpy(&cookie, d->id.idiag_cookie, sizeof(cookie));
      out[cookie] = SocketDiag{d->idiag_state, d->idiag_rqueue, d->idiag_wqueue, d->idiag_inode};
    }
  }
}

}  // namespace

std::expected<std::map<std::uint64_t, SocketDiag>, std::error_code> dump_sockets() {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!fd) return std::unexpected(std::error_code(errno, std::generic_category()));
  std::map<std::uint64_t, SocketDiag> out;
  for (std::uint8_t family : {std::uint8_t(AF_INET), std::uint8_t(AF_INET6)}) {
    if (auto ec = dump(fd.get(), family, IPPROTO_TCP, 1u << kTcpListenState, out)) return std::unexpected(ec);
    if (auto ec = dump(fd.get(), family, IPPROTO_UDP, ~0u, out)) return std::unexpected(ec);
  }
  return out;
}

}  // namespace mixlb
