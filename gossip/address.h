#pragma once
// A member's gossip endpoint: an IPv4 or IPv6 address and a port.
//
// The protocol core never opens a socket, but it must name where to send
// (a member advertises its endpoint in its alive messages) and the codec
// must put endpoints on the wire, so the endpoint is a plain value here
// rather than a sockaddr. The transport converts at its edge; the
// simulation invents addresses of its own.
#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace mixlb::gossip {

struct Address {
  enum class Family : std::uint8_t { kV4 = 4, kV6 = 6 };

  Family family = Family::kV4;
  std::array<std::uint8_t, 16> ip{};  // IPv4 uses the first 4 bytes; the rest stay 0
  std::uint16_t port = 0;

  static Address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d,
                    std::uint16_t port);
  // Parses "1.2.3.4:7946" or "[2001:db8::1]:7946"; nullopt when malformed.
  static std::optional<Address> parse(std::string_view text);

  std::string to_string() const;

  friend auto operator<=>(const Address&, const Address&) = default;
  friend bool operator==(const Address&, const Address&) = default;
};

// A seed given by name: a host name the system resolver knows (DNS, or
// /etc/hosts) and the gossip port. The transport resolves it at the start
// and again at every re-join, so a name whose addresses change (a headless
// Kubernetes service, a DNS record of the current nodes) stays a good seed.
struct SeedName {
  std::string host;
  std::uint16_t port = 0;

  std::string to_string() const { return host + ":" + std::to_string(port); }
  friend bool operator==(const SeedName&, const SeedName&) = default;
};

}  // namespace mixlb::gossip

template <>
struct std::hash<mixlb::gossip::Address> {
  std::size_t operator()(const mixlb::gossip::Address& a) const noexcept {
    std::uint64_t h = 1469598103934665603ull;  // FNV-1a over family, ip and port
    auto mix = [&h](std::uint8_t byte) {
      h ^= byte;
      h *= 1099511628211ull;
    };
    mix(static_cast<std::uint8_t>(a.family));
    for (auto byte : a.ip) mix(byte);
    mix(static_cast<std::uint8_t>(a.port >> 8));
    mix(static_cast<std::uint8_t>(a.port));
    return static_cast<std::size_t>(h);
  }
};
