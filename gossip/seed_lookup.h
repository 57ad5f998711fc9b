#pragma once
// Resolving a seed given by name (address.h, SeedName) with the system
// resolver. Blocking: the transport calls it on a libuv worker thread, never
// on its loop.
#include <expected>
#include <functional>
#include <system_error>
#include <vector>

#include "address.h"

namespace mixlb::gossip {

// The addresses `name` resolves to in `family`, each with name.port, in the
// resolver's order without repeats. An error when the name does not resolve
// or has no address in the family; its message is the resolver's
// (getaddrinfo's, as gai_strerror gives it).
using SeedLookupFn =
    std::function<std::expected<std::vector<Address>, std::error_code>(const SeedName&, Address::Family)>;

std::expected<std::vector<Address>, std::error_code> lookup_seed(const SeedName& name,
                                                                 Address::Family family);

// getaddrinfo()'s EAI_* codes.
const std::error_category& resolver_category();

}  // namespace mixlb::gossip
