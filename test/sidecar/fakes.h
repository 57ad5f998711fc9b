#pragma once
// Fakes of the daemon's kernel seams (kernel/netlink.h's Rtnl, sysctl.h's
// SysctlOps): plain maps that behave like the kernel for what the sidecar
// asks, and that can be told to refuse a call, so start, stop and failure
// paths run without privilege and fail where a test says.
#include <map>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "kernel/netlink.h"
#include "kernel/sysctl.h"

namespace mixlb::test {

class FakeSysctls final : public SysctlOps {
 public:
  std::map<std::string, std::string> values;  // key name -> value
  std::map<std::string, std::errc> refuse;     // key name -> the error a write gets
  std::vector<std::string> writes;             // "key=value", in order

  std::expected<std::string, std::error_code> read(const SysctlKey& key) override {
    auto it = values.find(key.name());
    if (it == values.end()) return std::unexpected(std::make_error_code(std::errc::no_such_file_or_directory));
    return it->second;
  }
  std::error_code write(const SysctlKey& key, std::string_view value) override {
    if (auto it = refuse.find(key.name()); it != refuse.end()) return std::make_error_code(it->second);
    if (!values.contains(key.name())) return std::make_error_code(std::errc::no_such_file_or_directory);
    values[key.name()] = std::string(value);
    writes.push_back(key.name() + "=" + std::string(value));
    return {};
  }
};

class FakeRtnl final : public Rtnl {
 public:
  std::map<std::string, int> links{{"lo", 1}, {"eth0", 2}};
  std::map<int, MacAddress> macs{{2, MacAddress{0x02, 0, 0, 0, 0, 0x11}}};
  std::set<std::pair<int, Address>> addresses;       // (ifindex, address) on a link
  std::map<std::pair<int, Address>, Neighbour> neighbours;
  std::set<Address> refuse_address;                  // add_address fails for these (EPERM)
  std::set<Address> refuse_neighbour_delete;         // delete_neighbour fails (EPERM)
  bool managed = true;                               // the kernel takes NTF_EXT_MANAGED

  std::expected<int, std::error_code> link_index(std::string_view name) override {
    auto it = links.find(std::string(name));
    if (it == links.end()) return std::unexpected(std::make_error_code(std::errc::no_such_device));
    return it->second;
  }
  std::expected<MacAddress, std::error_code> link_mac(int ifindex) override {
    auto it = macs.find(ifindex);
    if (it == macs.end()) return std::unexpected(std::make_error_code(std::errc::no_such_device));
    return it->second;
  }
  std::expected<std::vector<InterfaceAddress>, std::error_code> ipv4_addresses(int ifindex) override {
    std::vector<InterfaceAddress> out;
    for (const auto& [i, a] : addresses)
      if (i == ifindex && a.is_v4()) out.push_back({a, 24, false});
    return out;
  }
  std::expected<AddressChange, std::error_code> add_address(int ifindex, const Address& address,
                                                            int) override {
    if (refuse_address.contains(address))
      return std::unexpected(std::make_error_code(std::errc::operation_not_permitted));
    return addresses.insert({ifindex, address}).second ? AddressChange::kAdded
                                                       : AddressChange::kAlreadyPresent;
  }
  std::error_code delete_address(int ifindex, const Address& address, int) override {
    if (addresses.erase({ifindex, address}) == 0)
      return std::make_error_code(std::errc::address_not_available);
    return {};
  }
  std::expected<NeighbourSetup, std::error_code> add_managed_neighbour(int ifindex,
                                                                       const Address& peer) override {
    auto [it, inserted] = neighbours.try_emplace({ifindex, peer});
    if (inserted) {
      it->second.address = peer;
      it->second.ifindex = ifindex;
    }
    return NeighbourSetup{managed, inserted};
  }
  std::error_code kick_neighbour(int, const Address&) override { return {}; }
  std::error_code delete_neighbour(int ifindex, const Address& peer) override {
    if (refuse_neighbour_delete.contains(peer))
      return std::make_error_code(std::errc::operation_not_permitted);
    if (neighbours.erase({ifindex, peer}) == 0)
      return std::make_error_code(std::errc::no_such_file_or_directory);
    return {};
  }
  std::expected<Neighbour, std::error_code> get_neighbour(int ifindex, const Address& peer) override {
    auto it = neighbours.find({ifindex, peer});
    if (it == neighbours.end())
      return std::unexpected(std::make_error_code(std::errc::no_such_file_or_directory));
    return it->second;
  }

  bool has_address(int ifindex, const char* text) const {
    return addresses.contains({ifindex, *Address::parse(text)});
  }
};

}  // namespace mixlb::test
