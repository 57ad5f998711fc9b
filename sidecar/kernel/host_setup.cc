#include "kernel/host_setup.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

namespace mixlb {
namespace {

int host_prefix(const Address& a) { return a.is_v6() ? 128 : 32; }

}  // namespace

std::string vip_record_name(const Address& vip) {
  return fmt::format("{}/{}", vip.to_string(), host_prefix(vip));
}

HostSetup::HostSetup(SysctlOps& sysctls, Rtnl& netlink, HostRecord& record, Persist persist)
    : sysctls_(sysctls), netlink_(netlink), record_(record), persist_(std::move(persist)) {}

void HostSetup::apply(const HostPlan& plan) {
  const std::size_t before = own_.size();
  try {
    for (const auto& s : plan.sysctls) set_sysctl(s);
    std::set<Address> done;
    for (const Address& vip : plan.vips)
      if (done.insert(vip).second) add_vip(plan.lo_ifindex, vip);
  } catch (const HostSetupError&) {
    // Only this call's changes: earlier ones are the caller's to keep or undo.
    undo_to(before);
    throw;
  }
}

// The record learns the original value before the write, so a crash between
// the two still leaves a record that restores it.
void HostSetup::set_sysctl(const SysctlSetting& s) {
  const std::string name = s.key.name();
  auto current = sysctls_.read(s.key);
  if (!current)
    throw HostSetupError(fmt::format("reading sysctl {}: {}", name, current.error().message()));
  if (same_sysctl_value(*current, s.value)) {
    if (record_.sysctl(name)) spdlog::debug("sysctl {} = {} (set by an earlier mixlb)", name, s.value);
    return;
  }
  const bool recorded = record_.add_sysctl(name, *current);
  if (recorded) persist_();
  if (auto ec = sysctls_.write(s.key, s.value)) {
    if (recorded && record_.remove_sysctl(name)) persist_();
    throw HostSetupError(fmt::format("setting sysctl {} to {}: {}", name, s.value, ec.message()));
  }
  spdlog::debug("sysctl {}: {} -> {}", name, *current, s.value);
  Change c{Change::Kind::kSysctl};
  c.key = s.key;
  c.previous = std::move(*current);
  c.recorded = recorded;
  own_.push_back(std::move(c));
}

void HostSetup::add_vip(int lo_ifindex, const Address& vip) {
  const std::string name = vip_record_name(vip);
  const bool recorded = record_.add_vip(name);
  if (recorded) persist_();
  auto change = netlink_.add_address(lo_ifindex, vip, host_prefix(vip));
  if (!change) {
    if (recorded && record_.remove_vip(name)) persist_();
    throw HostSetupError(
        fmt::format("adding VIP {} to lo: {}", vip.to_string(), change.error().message()));
  }
  if (*change == AddressChange::kAlreadyPresent) {
    if (recorded) {
      // Not mixlb's: it was there before any sidecar started.
      record_.remove_vip(name);
      persist_();
      spdlog::info("VIP {} was already on lo; it will be left there", vip.to_string());
    } else {
      spdlog::info("VIP {} is on lo since an earlier mixlb", vip.to_string());
    }
    return;
  }
  Change c{Change::Kind::kVip};
  c.vip = vip;
  c.lo_ifindex = lo_ifindex;
  c.recorded = recorded;
  own_.push_back(std::move(c));
}

void HostSetup::undo_own() { undo_to(0); }

void HostSetup::add_vips(int lo_ifindex, const std::vector<Address>& vips) {
  HostPlan plan;
  plan.lo_ifindex = lo_ifindex;
  plan.vips = vips;
  apply(plan);
}

void HostSetup::remove_vip(int lo_ifindex, const Address& vip) {
  const std::string name = vip_record_name(vip);
  if (!record_.has_vip(name)) {
    spdlog::info("VIP {} is no longer configured; it was on lo before mixlb and stays", vip.to_string());
    return;
  }
  if (auto ec = netlink_.delete_address(lo_ifindex, vip, host_prefix(vip));
      ec && ec != std::errc::address_not_available)
    throw HostSetupError(fmt::format("removing VIP {} from lo: {}", vip.to_string(), ec.message()));
  record_.remove_vip(name);
  persist_();
  // Not this instance's to undo any more.
  std::erase_if(own_, [&](const Change& c) { return c.kind == Change::Kind::kVip && c.vip == vip; });
}

void HostSetup::undo_to(std::size_t keep) {
  while (own_.size() > keep) {
    Change c = std::move(own_.back());
    own_.pop_back();
    if (c.kind == Change::Kind::kVip) {
      const std::string name = vip_record_name(c.vip);
      auto ec = netlink_.delete_address(c.lo_ifindex, c.vip, host_prefix(c.vip));
      if (ec && ec != std::errc::address_not_available) {
        spdlog::error("removing VIP {} from lo: {}", c.vip.to_string(), ec.message());
        continue;  // still there: the record keeps it for a cleanup
      }
      if (c.recorded && record_.remove_vip(name)) persist_();
      continue;
    }
    const std::string name = c.key.name();
    if (auto ec = sysctls_.write(c.key, c.previous)) {
      spdlog::error("restoring sysctl {} to '{}': {}", name, c.previous, ec.message());
      continue;
    }
    if (c.recorded && record_.remove_sysctl(name)) persist_();
  }
}

std::vector<std::string> restore_host(HostRecord& record, SysctlOps& sysctls, Rtnl& netlink,
                                      const HostSetup::Persist& persist) {
  std::vector<std::string> problems;
  auto problem = [&](std::string line) {
    spdlog::error("{}", line);
    problems.push_back(std::move(line));
  };

  // Neighbour entries first: they name the uplink, which may be gone (and
  // its entries with it).
  if (!record.neighbours.empty()) {
    auto ifindex = netlink.link_index(record.interface);
    if (!ifindex && ifindex.error() == std::errc::no_such_device) {
      record.neighbours.clear();
      persist();
    } else if (!ifindex) {
      problem(fmt::format("interface {}: {}", record.interface, ifindex.error().message()));
    } else {
      const std::vector<std::string> list = record.neighbours;
      for (const std::string& text : list) {
        const auto peer = Address::parse(text);
        auto ec = peer ? netlink.delete_neighbour(*ifindex, *peer)
                       : std::make_error_code(std::errc::invalid_argument);
        if (ec && ec != std::errc::no_such_file_or_directory) {
          problem(fmt::format("deleting neighbour {} on {}: {}", text, record.interface, ec.message()));
          continue;
        }
        record.remove_neighbour(text);
        persist();
      }
    }
  }

  if (!record.vips.empty()) {
    auto lo = netlink.link_index("lo");
    if (!lo) {
      problem(fmt::format("interface lo: {}", lo.error().message()));
    } else {
      const std::vector<std::string> list = record.vips;
      for (const std::string& text : list) {
        const auto slash = text.find('/');
        const auto vip = Address::parse(std::string_view(text).substr(0, slash));
        auto ec = vip ? netlink.delete_address(*lo, *vip, host_prefix(*vip))
                      : std::make_error_code(std::errc::invalid_argument);
        if (ec && ec != std::errc::address_not_available) {
          problem(fmt::format("removing VIP {} from lo: {}", text, ec.message()));
          continue;
        }
        record.remove_vip(text);
        persist();
      }
    }
  }

  // Newest first, as conf.all.* writes propagate to the per-interface keys.
  const std::vector<HostRecord::Sysctl> sysctl_list = record.sysctls;
  for (auto it = sysctl_list.rbegin(); it != sysctl_list.rend(); ++it) {
    auto key = SysctlKey::parse(it->key);
    auto ec = key ? sysctls.write(*key, it->original) : key.error();
    // An interface that is gone took its settings with it.
    if (ec && ec != std::errc::no_such_file_or_directory) {
      problem(fmt::format("restoring sysctl {} to '{}': {}", it->key, it->original, ec.message()));
      continue;
    }
    record.remove_sysctl(it->key);
    persist();
  }
  return problems;
}

}  // namespace mixlb
