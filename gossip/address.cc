// Address parsing and printing, through inet_pton/inet_ntop so the text forms
// are exactly the ones the rest of the system (config, logs) uses.
#include "address.h"

#include <arpa/inet.h>

#include <charconv>

namespace mixlb::gossip {

Address Address::v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d,
                    std::uint16_t port) {
  Address address;
  address.family = Family::kV4;
  address.ip[0] = a;
  address.ip[1] = b;
  address.ip[2] = c;
  address.ip[3] = d;
  address.port = port;
  return address;
}

std::optional<Address> Address::parse(std::string_view text) {
  std::string host;
  std::string_view port_text;
  Address address;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
    address.family = Family::kV6;
    if (inet_pton(AF_INET6, host.c_str(), address.ip.data()) != 1) return std::nullopt;
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    address.family = Family::kV4;
    if (inet_pton(AF_INET, host.c_str(), address.ip.data()) != 1) return std::nullopt;
  }
  unsigned port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    return std::nullopt;
  }
  address.port = static_cast<std::uint16_t>(port);
  return address;
}

std::string Address::to_string() const {
  char buffer[INET6_ADDRSTRLEN] = {};
  if (family == Family::kV4) {
    inet_ntop(AF_INET, ip.data(), buffer, sizeof buffer);
    return std::string(buffer) + ":" + std::to_string(port);
  }
  inet_ntop(AF_INET6, ip.data(), buffer, sizeof buffer);
  return "[" + std::string(buffer) + "]:" + std::to_string(port);
}

}  // namespace mixlb::gossip
