// HostSetup and the HostRecord: what a start changes on the host, what a
// failed start puts back (only its own changes), what a restart leaves for
// the next sidecar, and what a leave or cleanup restores (everything mixlb
// made, nothing else) — on fakes of the kernel.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <fstream>
#include <string>

#include "../fakes.h"
#include "kernel/host_record.h"
#include "kernel/host_setup.h"
#include "kernel/instance_lock.h"
#include "kernel/vip_sockets.h"

namespace mixlb {
namespace {

using test::FakeRtnl;
using test::FakeSysctls;

SysctlKey key(const char* name) { return *SysctlKey::parse(name); }

// A node's host before any sidecar: everything at the kernel's defaults.
struct Host {
  FakeSysctls sysctls;
  FakeRtnl netlink;
  Host() {
    for (const char* k : {"net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.all.arp_announce",
                          "net.ipv4.conf.eth0.arp_ignore", "net.ipv4.conf.eth0.arp_announce",
                          "net.ipv4.conf.eth0.forwarding"})
      sysctls.values[k] = "0";
  }
};

HostPlan plan() {
  HostPlan p;
  p.lo_ifindex = 1;
  p.sysctls = {{key("net.ipv4.conf.all.arp_ignore"), "1"},
               {key("net.ipv4.conf.all.arp_announce"), "2"},
               {key("net.ipv4.conf.eth0.forwarding"), "1"}};
  p.vips = {*Address::parse("10.100.0.1"), *Address::parse("fd00:100::1"), *Address::parse("10.100.0.1")};
  return p;
}

struct Recorder {
  HostRecord record;
  int saves = 0;
  HostSetup::Persist persist() {
    return [this] { ++saves; };
  }
};

}  // namespace

TEST_SUITE("host") {
  TEST_CASE("a first start records what it changes; a failed start puts exactly that back") {
    Host h;
    Recorder r;
    HostSetup setup(h.sysctls, h.netlink, r.record, r.persist());
    setup.apply(plan());
    CHECK(h.sysctls.values["net.ipv4.conf.all.arp_ignore"] == "1");
    CHECK(h.sysctls.values["net.ipv4.conf.eth0.forwarding"] == "1");
    CHECK(h.netlink.has_address(1, "10.100.0.1"));
    CHECK(h.netlink.has_address(1, "fd00:100::1"));
    // Each VIP once, however often the plan names it.
    CHECK(h.netlink.addresses.size() == 2);
    CHECK(r.record.sysctls.size() == 3);
    CHECK(r.record.sysctl("net.ipv4.conf.all.arp_announce")->original == "0");
    CHECK(r.record.vips == std::vector<std::string>{"10.100.0.1/32", "fd00:100::1/128"});
    CHECK(setup.own_changes() == 5);
    CHECK(r.saves >= 5);

    setup.undo_own();
    CHECK(h.sysctls.values["net.ipv4.conf.all.arp_ignore"] == "0");
    CHECK(h.sysctls.values["net.ipv4.conf.eth0.forwarding"] == "0");
    CHECK(h.netlink.addresses.empty());
    CHECK(r.record.host_clean());
  }

  TEST_CASE("what was so before mixlb is neither recorded nor touched, on the way in or out") {
    Host h;
    h.sysctls.values["net.ipv4.conf.all.arp_ignore"] = "1";
    h.netlink.addresses.insert({1, *Address::parse("10.100.0.1")});
    Recorder r;
    HostSetup setup(h.sysctls, h.netlink, r.record, r.persist());
    setup.apply(plan());
    CHECK_FALSE(r.record.sysctl("net.ipv4.conf.all.arp_ignore"));
    CHECK_FALSE(r.record.has_vip("10.100.0.1/32"));
    CHECK(r.record.has_vip("fd00:100::1/128"));
    CHECK(restore_host(r.record, h.sysctls, h.netlink, r.persist()).empty());
    CHECK(h.sysctls.values["net.ipv4.conf.all.arp_ignore"] == "1");
    CHECK(h.netlink.has_address(1, "10.100.0.1"));
    CHECK_FALSE(h.netlink.has_address(1, "fd00:100::1"));
    CHECK(r.record.host_clean());
  }

  TEST_CASE("a refused change undoes the rest of the call and names what was refused") {
    Host h;
    h.netlink.refuse_address.insert(*Address::parse("fd00:100::1"));
    Recorder r;
    HostSetup setup(h.sysctls, h.netlink, r.record, r.persist());
    try {
      setup.apply(plan());
      FAIL("apply did not throw");
    } catch (const HostSetupError& e) {
      CHECK(std::string(e.what()) == "adding VIP fd00:100::1 to lo: Operation not permitted");
    }
    CHECK(h.netlink.addresses.empty());
    CHECK(h.sysctls.values["net.ipv4.conf.all.arp_ignore"] == "0");
    CHECK(r.record.host_clean());
    CHECK(setup.own_changes() == 0);

    Host g;
    g.sysctls.refuse["net.ipv4.conf.eth0.forwarding"] = std::errc::permission_denied;
    Recorder q;
    HostSetup second(g.sysctls, g.netlink, q.record, q.persist());
    CHECK_THROWS_WITH_AS(second.apply(plan()),
                         "setting sysctl net.ipv4.conf.eth0.forwarding to 1: Permission denied",
                         HostSetupError);
    CHECK(g.sysctls.values["net.ipv4.conf.all.arp_ignore"] == "0");
    CHECK(q.record.host_clean());
  }

  TEST_CASE("a restarted sidecar finds its predecessor's changes: it keeps them, a leave removes them") {
    Host h;
    Recorder first;
    {
      HostSetup setup(h.sysctls, h.netlink, first.record, first.persist());
      setup.apply(plan());
      // The first sidecar stops for a restart: nothing is undone.
    }
    Recorder second;
    second.record = first.record;
    HostSetup setup(h.sysctls, h.netlink, second.record, second.persist());
    setup.apply(plan());
    CHECK(setup.own_changes() == 0);
    CHECK(second.record == first.record);
    // A start of the successor that fails leaves everything in place.
    setup.undo_own();
    CHECK(h.sysctls.values["net.ipv4.conf.all.arp_ignore"] == "1");
    CHECK(h.netlink.addresses.size() == 2);
    CHECK(second.record == first.record);
    // A leave puts the host back as it was before the first sidecar.
    CHECK(restore_host(second.record, h.sysctls, h.netlink, second.persist()).empty());
    CHECK(h.sysctls.values["net.ipv4.conf.all.arp_ignore"] == "0");
    CHECK(h.sysctls.values["net.ipv4.conf.all.arp_announce"] == "0");
    CHECK(h.sysctls.values["net.ipv4.conf.eth0.forwarding"] == "0");
    CHECK(h.netlink.addresses.empty());
    CHECK(second.record.host_clean());
  }

  TEST_CASE("a setting changed back by someone meanwhile is set again; the original stays the first one") {
    Host h;
    Recorder r;
    HostSetup(h.sysctls, h.netlink, r.record, r.persist()).apply(plan());
    h.sysctls.values["net.ipv4.conf.all.arp_ignore"] = "8";  // an operator, between two sidecars
    HostSetup next(h.sysctls, h.netlink, r.record, r.persist());
    next.apply(plan());
    CHECK(h.sysctls.values["net.ipv4.conf.all.arp_ignore"] == "1");
    CHECK(r.record.sysctl("net.ipv4.conf.all.arp_ignore")->original == "0");
    // This instance's own change is undone to what it found...
    next.undo_own();
    CHECK(h.sysctls.values["net.ipv4.conf.all.arp_ignore"] == "8");
    // ... and a cleanup restores what was there before mixlb.
    CHECK(restore_host(r.record, h.sysctls, h.netlink, r.persist()).empty());
    CHECK(h.sysctls.values["net.ipv4.conf.all.arp_ignore"] == "0");
  }

  TEST_CASE("restore_host: neighbour entries go, a vanished uplink took its own, failures stay recorded") {
    Host h;
    Recorder r;
    r.record.interface = "eth0";
    h.netlink.add_managed_neighbour(2, *Address::parse("10.0.0.12"));
    h.netlink.add_managed_neighbour(2, *Address::parse("10.0.0.13"));
    r.record.neighbours = {"10.0.0.12", "10.0.0.13", "10.0.0.14"};  // .14 is gone already
    h.netlink.refuse_neighbour_delete.insert(*Address::parse("10.0.0.13"));
    r.record.add_sysctl("net.ipv4.conf.gone0.forwarding", "0");  // its interface is gone
    const auto problems = restore_host(r.record, h.sysctls, h.netlink, r.persist());
    REQUIRE(problems.size() == 1);
    CHECK(problems[0] == "deleting neighbour 10.0.0.13 on eth0: Operation not permitted");
    CHECK(r.record.neighbours == std::vector<std::string>{"10.0.0.13"});
    CHECK(r.record.sysctls.empty());
    CHECK_FALSE(h.netlink.neighbours.contains({2, *Address::parse("10.0.0.12")}));

    h.netlink.links.erase("eth0");
    CHECK(restore_host(r.record, h.sysctls, h.netlink, r.persist()).empty());
    CHECK(r.record.host_clean());
  }

  TEST_CASE("the record survives a round trip through its file; a bad file is refused, not guessed") {
    const std::string dir = std::filesystem::temp_directory_path() / ("mixlb-record-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const std::string path = host_record_path(dir, "mix1");
    CHECK(path == dir + "/mix1.host.json");
    CHECK(load_host_record(path).value() == std::nullopt);

    HostRecord r;
    r.node = "mix1";
    r.interface = "eth0.100";
    r.netns = 4026531992;
    r.pin_dir = "/sys/fs/bpf/mixlb/mix1";
    r.created_pin_parent = true;
    r.sysctls = {{"net.ipv4.conf.all.arp_ignore", "0"}, {"net/ipv4/conf/eth0.100/forwarding", "0"}};
    r.vips = {"10.100.0.1/32"};
    r.neighbours = {"10.0.0.12"};
    REQUIRE_FALSE(save_host_record(path, r));
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
    CHECK(load_host_record(path).value() == r);

    std::ofstream(path) << "{\"version\": 1, \"node\": 5}";
    auto bad = load_host_record(path);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().starts_with(path + ": not a host record: "));
    std::ofstream(path) << "{\"version\": 9}";
    CHECK(load_host_record(path).error() == path + ": host record version 9 is not 1");
    CHECK_FALSE(remove_host_record(path));
    CHECK_FALSE(remove_host_record(path));  // already gone: fine
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("one sidecar per node: the second is refused with the first one's pid") {
    const std::string dir = std::filesystem::temp_directory_path() /
                            ("mixlb-lock-" + std::to_string(::getpid())) / "run";
    std::optional<InstanceLock> first;
    {
      auto taken = InstanceLock::acquire(dir, "mix1");
      REQUIRE(taken);
      first.emplace(std::move(*taken));
    }
    struct stat st {};
    REQUIRE(::stat(dir.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    auto second = InstanceLock::acquire(dir, "mix1");
    REQUIRE_FALSE(second);
    CHECK(second.error().holder == ::getpid());
    CHECK(second.error().message == "another mixlb for node mix1 is running (pid " +
                                        std::to_string(::getpid()) + "; lock " + dir + "/mix1.lock)");
    // Another node on the same host is another instance.
    CHECK(InstanceLock::acquire(dir, "mix2"));
    // The lock goes with its holder, however that ends.
    first.reset();
    CHECK(InstanceLock::acquire(dir, "mix1"));
    std::filesystem::remove_all(std::filesystem::path(dir).parent_path());
  }

  TEST_CASE("connections on VIPs are counted from /proc/net/tcp, listeners and TIME_WAIT aside") {
    // 10.100.0.1:80 established (01), listening (0A), a TIME_WAIT (06), an
    // established one on another port, and one on another address.
    const std::string tcp4 =
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100640A:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n"
        "   1: 0100640A:0050 0201000A:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2\n"
        "   2: 0100640A:0050 0201000A:9C41 06 00000000:00000000 00:00000000 00000000     0        0 0\n"
        "   3: 0100640A:1B58 0201000A:9C42 01 00000000:00000000 00:00000000 00000000     0        0 3\n"
        "   4: 0B00000A:0050 0201000A:9C43 01 00000000:00000000 00:00000000 00000000     0        0 4\n";
    const std::vector<VipPort> port80{{*Address::parse("10.100.0.1"), 80}};
    CHECK(count_vip_connections_in(tcp4, port80) == 1);
    const std::vector<VipPort> any{{*Address::parse("10.100.0.1"), 0}};
    CHECK(count_vip_connections_in(tcp4, any) == 2);
    // fd00:100::1 port 7000, CLOSE_WAIT (08): still a connection.
    const std::string tcp6 =
        "  sl  local_address                         remote_address                        st\n"
        "   0: 000100FD000000000000000001000000:1B58 000000FD000000000000000002000000:9C40 08\n";
    CHECK(count_vip_connections_in(tcp6, std::vector<VipPort>{{*Address::parse("fd00:100::1"), 7000}}) == 1);
    CHECK(count_vip_connections_in("garbage\nnot a line at all\n", any) == 0);
  }
}

}  // namespace mixlb
