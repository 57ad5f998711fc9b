#pragma once
// Conversions between the protocol's Address and the sockaddr the socket
// calls take: the transport's edge (address.h keeps the core free of them).
//
// A socket bound to an IPv6 address may be dual-stack ("::" accepts IPv4
// too): datagrams from IPv4 peers then arrive as v4-mapped IPv6 addresses
// (::ffff:a.b.c.d), which are turned back into IPv4 here, so a member is
// known by one address whichever socket heard it. Sending to an IPv4 member
// from such a socket needs the mapped form, which to_sockaddr_for() gives.
#include <netinet/in.h>
#include <sys/socket.h>

#include <expected>
#include <optional>
#include <system_error>

#include "address.h"

namespace mixlb::gossip {

sockaddr_storage to_sockaddr(const Address& address);

// The address in the form a socket of `socket_family` (AF_INET or
// AF_INET6) can send to: IPv4 mapped into IPv6 for an IPv6 socket;
// address_family_not_supported for IPv6 from an IPv4 socket.
std::expected<sockaddr_storage, std::error_code> to_sockaddr_for(const Address& address,
                                                                 int socket_family);

// nullopt for anything but AF_INET and AF_INET6.
std::optional<Address> from_sockaddr(const sockaddr* address);

// Whether the address is 0.0.0.0 or :: (a bind-anywhere address, not one
// other members can reach).
bool is_unspecified(const Address& address);

}  // namespace mixlb::gossip
