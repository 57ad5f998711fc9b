#pragma once
// How many TCP connections the node's app still has on its VIPs: what a
// leaving sidecar waits for before it takes the data path away. Read from
// /proc/thread-self/net/tcp and tcp6, so it counts the sockets of the
// network namespace the calling thread is in (a sidecar in the app's
// namespace sees the app's). The files cost one pass over every socket of
// the namespace; the leave reads them once a second, for a bounded time.
#include <cstdint>
#include <expected>
#include <span>
#include <string_view>
#include <system_error>

#include "kernel/address.h"

namespace mixlb {

struct VipPort {
  Address address;
  std::uint16_t port = 0;  // host order; 0 = every port
};

// Connections (every state but LISTEN, TIME_WAIT and CLOSE) whose local end
// is one of `vips`.
std::expected<std::size_t, std::error_code> count_vip_connections(std::span<const VipPort> vips);

// The same over the text of a /proc/net/tcp or tcp6 file (for tests).
std::size_t count_vip_connections_in(std::string_view proc_net_tcp, std::span<const VipPort> vips);

}  // namespace mixlb
