#pragma once
// What the kernel says of the sockets of this network namespace, by cookie:
// a NETLINK_SOCK_DIAG dump of the TCP listeners and the UDP sockets (IPv4
// and IPv6). `mixlbctl sockets` shows each managed socket's state and
// accept queue from it without holding the socket: the sidecar keeps no
// copy of the app's sockets.
#include <cstdint>
#include <expected>
#include <map>
#include <system_error>

namespace mixlb {

struct SocketDiag {
  std::uint8_t state = 0;     // TCP_LISTEN (10), or TCP_CLOSE (7) for an unconnected UDP socket
  std::uint32_t queued = 0;   // listener: connections waiting in the accept queue; UDP: bytes queued
  std::uint32_t backlog = 0;  // listener: the accept queue's limit
  std::uint32_t inode = 0;
};

// Every TCP listener and UDP socket of the calling thread's namespace.
std::expected<std::map<std::uint64_t, SocketDiag>, std::error_code> dump_sockets();

}  // namespace mixlb
