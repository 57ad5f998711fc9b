#pragma once
// HostSetup puts the settings a balancing node needs on its host — sysctls
// (arp_ignore, arp_announce, forwarding) and the VIPs as host addresses on
// lo — and keeps the HostRecord (host_record.h) of what mixlb changed.
//
// It knows, for every change, whose it is. Three cases:
//   - this instance made it: a failed start puts it back (undo_own);
//   - a predecessor made it (the record says so; a restarted sidecar finds
//     it in place): a failed start leaves it, the record keeps it, and a
//     leave or cleanup puts it back;
//   - it was so before mixlb came (a sysctl already at the value, a VIP the
//     operator put on lo): nobody touches it, ever.
// restore_host() is the way out for the last two: it puts back everything a
// record holds, so `mixlbctl leave` and `mixlb cleanup` leave the host as it
// was before the first sidecar started.
//
// Both take the kernel through SysctlOps and Rtnl, so every path is tested
// with fakes.
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernel/address.h"
#include "kernel/host_record.h"
#include "kernel/netlink.h"
#include "kernel/sysctl.h"

namespace mixlb {

struct SysctlSetting {
  SysctlKey key;
  std::string value;
};

struct HostPlan {
  int lo_ifindex = 0;
  std::vector<SysctlSetting> sysctls;  // applied in this order
  std::vector<Address> vips;           // each goes on lo once, as /32 or /128
};

// A change the host refused; the message names the setting and the errno.
class HostSetupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "10.100.0.1/32", "fd00:100::1/128": how the record names a VIP on lo.
std::string vip_record_name(const Address& vip);

class HostSetup {
 public:
  // Saves the record; called after every change to it, so a crash at any
  // point leaves a record of everything made so far.
  using Persist = std::function<void()>;

  HostSetup(SysctlOps& sysctls, Rtnl& netlink, HostRecord& record, Persist persist);

  // Makes the host match the plan. On the first failure it undoes what this
  // call changed and throws HostSetupError.
  void apply(const HostPlan& plan);

  // Puts back what this instance changed, newest first; what a predecessor
  // made or what was there before stays. For a start that failed.
  void undo_own();

  // A reload: VIP addresses to put on lo (as apply() does), and one to take
  // off — only if mixlb put it there. Throw HostSetupError like apply().
  void add_vips(int lo_ifindex, const std::vector<Address>& vips);
  void remove_vip(int lo_ifindex, const Address& vip);

  // What this instance changed itself (for logs and tests).
  std::size_t own_changes() const { return own_.size(); }

 private:
  struct Change {
    enum class Kind { kSysctl, kVip } kind;
    SysctlKey key{};          // kSysctl
    std::string previous;     // kSysctl: the value this instance replaced
    bool recorded = false;    // this instance added the record's entry
    Address vip;              // kVip
    int lo_ifindex = 0;       // kVip
  };

  void set_sysctl(const SysctlSetting& setting);
  void add_vip(int lo_ifindex, const Address& vip);
  // Puts back this instance's changes after the first `keep`, newest first.
  void undo_to(std::size_t keep);

  SysctlOps& sysctls_;
  Rtnl& netlink_;
  HostRecord& record_;
  Persist persist_;
  std::vector<Change> own_;
};

// Puts back everything `record` holds, in the namespace of the calling
// thread: neighbour entries mixlb made (on record.interface), VIPs mixlb put
// on lo, sysctls to their original values. Each entry leaves the record as it
// is put back (and `persist` runs), so an interrupted run can be repeated. A
// thing already gone counts as put back. Returns one line per failure; the
// entries that failed stay in the record.
std::vector<std::string> restore_host(HostRecord& record, SysctlOps& sysctls, Rtnl& netlink,
                                      const HostSetup::Persist& persist);

}  // namespace mixlb
