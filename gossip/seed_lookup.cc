#include "seed_lookup.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <string>

#include "sockaddr.h"

namespace mixlb::gossip {
namespace {

class ResolverCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "getaddrinfo"; }
  std::string message(int code) const override { return gai_strerror(code); }
};

}  // namespace

const std::error_category& resolver_category() {
  static const ResolverCategory category;
  return category;
}

std::expected<std::vector<Address>, std::error_code> lookup_seed(const SeedName& name,
                                                                 Address::Family family) {
  addrinfo hints{};
  hints.ai_family = family == Address::Family::kV4 ? AF_INET : AF_INET6;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  const int status = getaddrinfo(name.host.c_str(), nullptr, &hints, &found);
  if (status == EAI_SYSTEM) return std::unexpected(std::error_code(errno, std::system_category()));
  if (status != 0) return std::unexpected(std::error_code(status, resolver_category()));
  const std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owner(found, freeaddrinfo);
  std::vector<Address> addresses;
  for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    auto address = from_sockaddr(ai->ai_addr);
    if (!address || address->family != family) continue;
    address->port = name.port;
    if (std::find(addresses.begin(), addresses.end(), *address) == addresses.end()) {
      addresses.push_back(*address);
    }
  }
  // getaddrinfo answers with a family it was not asked for only through
  // AI_V4MAPPED, which is not set; an empty list still means "none here".
  if (addresses.empty()) return std::unexpected(std::error_code(EAI_NODATA, resolver_category()));
  return addresses;
}

}  // namespace mixlb::gossip
