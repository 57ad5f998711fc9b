// Address <-> sockaddr, with v4-mapped IPv6 folded back to IPv4.
#include "sockaddr.h"

#include <algorithm>
#include <cstring>

namespace mixlb::gossip {
namespace {

constexpr std::uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

}  // namespace

sockaddr_storage to_sockaddr(const Address& address) {
  sockaddr_storage storage{};
  if (address.family == Address::Family::kV4) {
    auto* in = reinterpret_cast<sockaddr_in*>(&storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(address.port);
    std::memcpy(&in->sin_addr, address.ip.data(), 4);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(address.port);
    std::memcpy(&in6->sin6_addr, address.ip.data(), 16);
  }
  return storage;
}

std::expected<sockaddr_storage, std::error_code> to_sockaddr_for(const Address& address,
                                                                 int socket_family) {
  if (socket_family == AF_INET6 && address.family == Address::Family::kV4) {
    sockaddr_storage storage{};
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(address.port);
    std::memcpy(&in6->sin6_addr, kMappedPrefix, sizeof kMappedPrefix);
    std::memcpy(reinterpret_cast<std::uint8_t*>(&in6->sin6_addr) + 12, address.ip.data(), 4);
    return storage;
  }
  if (socket_family == AF_INET && address.family == Address::Family::kV6) {
    return std::unexpected(std::make_error_code(std::errc::address_family_not_supported));
  }
  return to_sockaddr(address);
}

std::optional<Address> from_sockaddr(const sockaddr* address) {
  if (address == nullptr) return std::nullopt;
  Address out;
  if (address->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address);
    out.family = Address::Family::kV4;
    std::memcpy(out.ip.data(), &in->sin_addr, 4);
    out.port = ntohs(in->sin_port);
    return out;
  }
  if (address->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(&in6->sin6_addr);
    out.port = ntohs(in6->sin6_port);
    if (std::equal(bytes, bytes + 12, kMappedPrefix)) {
      out.family = Address::Family::kV4;
      std::memcpy(out.ip.data(), bytes + 12, 4);
    } else {
      out.family = Address::Family::kV6;
      std::memcpy(out.ip.data(), bytes, 16);
    }
    return out;
  }
  return std::nullopt;
}

bool is_unspecified(const Address& address) {
  const std::size_t n = address.family == Address::Family::kV4 ? 4 : 16;
  return std::all_of(address.ip.begin(), address.ip.begin() + static_cast<std::ptrdiff_t>(n),
                     [](std::uint8_t b) { return b == 0; });
}

}  // namespace mixlb::gossip
