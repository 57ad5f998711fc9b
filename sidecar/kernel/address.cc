#include "kernel/address.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>

namespace mixlb {

std::optional<Address> Address::parse(std::string_view text) {
  const std::string s(text);
  Address a;
  if (inet_pton(AF_INET, s.c_str(), a.words.data()) == 1) {
    a.family = AF_INET;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.words.data()) == 1) {
    a.family = AF_INET6;
    return a;
  }
  return std::nullopt;
}

Address Address::v4(std::uint32_t network_order) {
  Address a;
  a.family = AF_INET;
  a.words[0] = network_order;
  return a;
}

std::string Address::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == 0 || inet_ntop(family, words.data(), buf, sizeof(buf)) == nullptr) return "-";
  return buf;
}

bool Address::is_v4() const { return family == AF_INET; }
bool Address::is_v6() const { return family == AF_INET6; }

}  // namespace mixlb
