#pragma once
// An IPv4 or IPv6 address in the form the data path keys use: four 32-bit
// words in network byte order, IPv4 in the first word. Parsing and printing go
// through inet_pton/inet_ntop; anything else about addresses lives elsewhere.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mixlb {

struct Address {
  int family = 0;                    // AF_INET or AF_INET6; 0 = unset
  std::array<std::uint32_t, 4> words{};  // network byte order

  static std::optional<Address> parse(std::string_view text);
  static Address v4(std::uint32_t network_order);
  std::string to_string() const;
  bool is_v4() const;
  bool is_v6() const;
  friend bool operator==(const Address&, const Address&) = default;
  friend auto operator<=>(const Address&, const Address&) = default;
};

}  // namespace mixlb
