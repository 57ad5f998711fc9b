// The split daemon's ways in and out, run in this process on the real BPF
// program (a veth of the test namespace as the uplink) with the host side —
// netlink and sysctls — on fakes that record what it changed:
//   start from nothing, stop for a restart (everything stays), start again
//   (everything adopted, nothing changed), a second instance (refused,
//   nothing touched), a start that fails after a restart (the data path it
//   found stays), and a leave (everything goes, the host as before).
#include <doctest/doctest.h>
#include <bpf/bpf.h>
#include <net/if.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include "admin/admin_server.h"
#include "daemon.h"
#include "fakes.h"
#include "kernel/bpffs.h"
#include "kernel/host_record.h"
#include "netns_fixture.h"

namespace mixlb {
namespace {

using namespace std::chrono_literals;

struct DaemonHost {
  test::FakeSysctls sysctls;
  test::FakeRtnl netlink;
  std::string uplink;
  std::string dir = std::filesystem::temp_directory_path() / ("mixlb-daemon-" + std::to_string(::getpid()));
  std::string bpffs = "/sys/fs/bpf/mixlb-daemon-" + std::to_string(::getpid());

  // The uplink is a veth of the test namespace; the fakes know it by name.
  explicit DaemonHost(std::string uplink_name = "dp0", int ifindex = test_net().dp0)
      : uplink(std::move(uplink_name)) {
    netlink.links = {{"lo", 1}};
    show_uplink(ifindex);
    for (const std::string& k : std::vector<std::string>{"all.arp_ignore", "all.arp_announce",
                                                         uplink + ".arp_ignore", uplink + ".arp_announce",
                                                         uplink + ".forwarding"})
      sysctls.values["net.ipv4.conf." + k] = "0";
    std::filesystem::create_directories(dir);
    auto ready = ensure_bpffs(bpffs);
    REQUIRE_MESSAGE(ready.has_value(), (ready ? "" : ready.error()));
  }
  void show_uplink(int ifindex) {
    netlink.links[uplink] = ifindex;
    netlink.macs[ifindex] = read_mac(uplink);
  }
  ~DaemonHost() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    std::filesystem::remove_all(bpffs, ec);
  }

  Config config() const {
    Config c;
    c.node.name = "mix1";
    c.node.interface = uplink;
    c.node.address = *Address::parse("10.0.0.1");
    c.node.run_dir = dir;
    c.node.admin_socket = dir + "/mix1.sock";
    c.node.bpffs_dir = bpffs;
    c.datapath.xdp_mode = XdpMode::kNative;
    c.datapath.maglev_table_size = 251;
    c.datapath.max_vips = 4;
    c.datapath.max_nodes = 16;
    c.datapath.conntrack_entries = 1024;
    c.gossip.enabled = false;
    c.health.kind = HealthKind::kNone;
    c.node.leave_timeout_ms = 5000;
    VipConfig vip;
    vip.address = *Address::parse("10.100.0.1");
    vip.ports = {80};
    c.vips = {vip};
    c.peers = {{"mix1", *Address::parse("10.0.0.1"), 1}, {"mix2", *Address::parse("10.0.0.2"), 1}};
    validate(c);
    return c;
  }
  std::string record_path() const { return host_record_path(dir, "mix1"); }
};

// A daemon on a thread of its own; its admin socket answers once it serves.
struct Running {
  std::future<int> exit;
  std::string socket;

  Running(const DaemonHost& host, const Config& config) : socket(config.node.admin_socket) {
    std::promise<int> done;
    exit = done.get_future();
    std::thread([&host, config, done = std::move(done)]() mutable {
      try {
        int status = 0;
        {
          // Destroyed before the test hears the exit: it holds the lock.
          Daemon daemon(config, DaemonSeams{const_cast<test::FakeRtnl*>(&host.netlink),
                                            const_cast<test::FakeSysctls*>(&host.sysctls)});
          status = daemon.run();
        }
        done.set_value(status);
      } catch (...) {
        done.set_exception(std::current_exception());
      }
    }).detach();
    for (int i = 0; i < 200; ++i) {
      if (exit.wait_for(0s) == std::future_status::ready) return;
      if (admin_request(socket, "status", nlohmann::json::object(), 1000ms)) return;
      std::this_thread::sleep_for(20ms);
    }
    FAIL("the daemon did not answer on " << socket);
  }

  nlohmann::json ask(const char* cmd) {
    auto reply = admin_request(socket, cmd, nlohmann::json::object(), 5000ms);
    REQUIRE_MESSAGE(reply.has_value(), (reply ? "" : reply.error()));
    return *reply;
  }

  int wait() {
    REQUIRE(exit.wait_for(15s) == std::future_status::ready);
    return exit.get();
  }
};

int ifindex_of(const std::string& name) { return static_cast<int>(if_nametoindex(name.c_str())); }

// Polls the daemon's status until `done` holds, at most 5 s.
template <typename Done>
bool eventually(Running& daemon, Done done) {
  for (int i = 0; i < 100; ++i) {
    if (done(daemon.ask("status"))) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

bool pinned(const DaemonHost& h, const char* name) {
  return std::filesystem::exists(h.bpffs + "/mix1/" + name);
}

}  // namespace

TEST_SUITE("daemon" * doctest::skip(cannot_run())) {
  TEST_CASE("restart keeps and adopts everything; a second instance and a failed start touch nothing; leave removes all") {
    DaemonHost host;
    const Config config = host.config();
    const int dp0 = test_net().dp0;

    // 1. A first start: the host gets its settings, the uplink the program.
    {
      Running first(host, config);
      const auto status = first.ask("status");
      CHECK(status["xdp_mode"] == "native");
      CHECK(status["instance"]["adopted_maps"] == false);
      CHECK(status["instance"]["adopted_link"] == false);
      CHECK(host.sysctls.values["net.ipv4.conf.dp0.forwarding"] == "1");
      CHECK(host.netlink.has_address(1, "10.100.0.1"));
      CHECK(pinned(host, "xdp_link"));
      auto record = load_host_record(host.record_path());
      REQUIRE(record.has_value());
      REQUIRE(record->has_value());
      CHECK((*record)->sysctls.size() == 5);
      CHECK((*record)->vips == std::vector<std::string>{"10.100.0.1/32"});
      CHECK((*record)->neighbours == std::vector<std::string>{"10.0.0.2"});

      // 2. A second instance of the node is refused and changes nothing.
      const auto writes = host.sysctls.writes.size();
      DaemonSeams seams{&host.netlink, &host.sysctls};
      Daemon second(config, seams);
      const std::string refusal =
          "another mixlb for node mix1 is running (pid " + std::to_string(::getpid());
      CHECK_THROWS_WITH_AS(second.run(), doctest::Contains(refusal.c_str()), StartupError);
      CHECK(host.sysctls.writes.size() == writes);
      CHECK(first.ask("status")["node"] == "mix1");
      CHECK(query_xdp_mode(dp0) == AttachMode::kNative);

      // 3. SIGTERM: a stop for a restart.
      ::kill(::getpid(), SIGTERM);
      CHECK(first.wait() == 0);
    }
    CHECK(query_xdp_mode(dp0) == AttachMode::kNative);
    CHECK(pinned(host, "xdp_link"));
    CHECK(pinned(host, "mixlb_ct"));
    CHECK(host.sysctls.values["net.ipv4.conf.dp0.forwarding"] == "1");
    CHECK(host.netlink.has_address(1, "10.100.0.1"));
    CHECK(host.netlink.neighbours.contains({dp0, *Address::parse("10.0.0.2")}));
    const auto record_after_stop = load_host_record(host.record_path());
    REQUIRE(record_after_stop.has_value());
    REQUIRE(record_after_stop->has_value());

    // 4. A start that fails after the restart (its admin socket path is
    // taken by a file) leaves the data path it found.
    {
      std::ofstream(config.node.admin_socket) << "not a socket";
      const auto writes = host.sysctls.writes.size();
      Daemon failing(config, DaemonSeams{&host.netlink, &host.sysctls});
      CHECK_THROWS_WITH_AS(failing.run(), doctest::Contains("exists and is not a socket"), StartupError);
      CHECK(query_xdp_mode(dp0) == AttachMode::kNative);
      CHECK(pinned(host, "xdp_link"));
      CHECK(host.sysctls.writes.size() == writes);
      CHECK(host.netlink.has_address(1, "10.100.0.1"));
      CHECK(load_host_record(host.record_path()).value() == *record_after_stop);
      std::filesystem::remove(config.node.admin_socket);
    }

    // 5. The next start adopts it all, changing nothing on the host.
    {
      const auto writes = host.sysctls.writes.size();
      Running next(host, config);
      const auto status = next.ask("status");
      CHECK(status["instance"]["adopted_maps"] == true);
      CHECK(status["instance"]["adopted_link"] == true);
      CHECK(status["uplink"] == "attached");
      CHECK(host.sysctls.writes.size() == writes);
      CHECK(load_host_record(host.record_path()).value() == *record_after_stop);

      // 6. A leave: the host as before the first start.
      const auto leave = next.ask("leave");
      CHECK(leave["leaving"] == true);
      CHECK(next.wait() == 0);
    }
    CHECK(xdp_detached_soon(dp0));
    CHECK_FALSE(std::filesystem::exists(host.bpffs + "/mix1"));
    for (const auto& [key, value] : host.sysctls.values) CHECK_MESSAGE(value == "0", key);
    CHECK_FALSE(host.netlink.has_address(1, "10.100.0.1"));
    CHECK_FALSE(host.netlink.neighbours.contains({dp0, *Address::parse("10.0.0.2")}));
    CHECK_FALSE(std::filesystem::exists(host.record_path()));
  }
  TEST_CASE("a first start that fails half-way leaves the host as it found it") {
    DaemonHost host;
    host.sysctls.refuse["net.ipv4.conf.dp0.forwarding"] = std::errc::operation_not_permitted;
    Daemon daemon(host.config(), DaemonSeams{&host.netlink, &host.sysctls});
    CHECK_THROWS_WITH_AS(daemon.run(),
                         "setting sysctl net.ipv4.conf.dp0.forwarding to 1: Operation not permitted",
                         StartupError);
    CHECK(xdp_detached_soon(test_net().dp0));
    CHECK_FALSE(std::filesystem::exists(host.bpffs + "/mix1"));
    CHECK_FALSE(std::filesystem::exists(host.record_path()));
    CHECK_FALSE(std::filesystem::exists(host.dir + "/mix1.sock"));
    for (const auto& [key, value] : host.sysctls.values) CHECK_MESSAGE(value == "0", key);
    CHECK(host.netlink.addresses.empty());
  }

  TEST_CASE("an uplink that is detached or vanishes is reported and attached again; SIGHUP is ignored; SIGTERM may mean leave") {
    sh("ip link add upl0 type veth peer name upl0p");
    sh("ip link set upl0 up");
    DaemonHost host("upl0", ifindex_of("upl0"));
    Config config = host.config();
    config.node.on_stop = StopAction::kLeave;
    Running daemon(host, config);
    REQUIRE(daemon.ask("status")["uplink"] == "attached");

    // SIGHUP changes nothing: no reload yet, and no death either.
    ::kill(::getpid(), SIGHUP);
    std::this_thread::sleep_for(200ms);
    CHECK(daemon.exit.wait_for(0s) == std::future_status::timeout);
    CHECK(daemon.ask("status")["phase"] == "serving");

    // Someone detaches the program (bpftool link detach): it comes back.
    {
      const int link = bpf_obj_get((host.bpffs + "/mix1/xdp_link").c_str());
      REQUIRE(link >= 0);
      bpf_link_info before{};
      std::uint32_t len = sizeof(before);
      REQUIRE(bpf_obj_get_info_by_fd(link, &before, &len) == 0);
      REQUIRE(bpf_link_detach(link) == 0);
      ::close(link);
      CHECK(xdp_detached_soon(ifindex_of("upl0")));
      CHECK(eventually(daemon, [](const nlohmann::json&) {
        return query_xdp_mode(ifindex_of("upl0")) == AttachMode::kNative;
      }));
      const int again = bpf_obj_get((host.bpffs + "/mix1/xdp_link").c_str());
      REQUIRE(again >= 0);
      bpf_link_info after{};
      len = sizeof(after);
      REQUIRE(bpf_obj_get_info_by_fd(again, &after, &len) == 0);
      ::close(again);
      CHECK(after.id != before.id);  // a new link, pinned in the old one's place
      CHECK(daemon.ask("status")["uplink"] == "attached");
    }

    // The interface goes away: status says so.
    sh("ip link del upl0");
    host.netlink.links.erase("upl0");
    CHECK(eventually(daemon, [](const nlohmann::json& st) { return st["uplink"] == "missing"; }));

    // It comes back, with another index: the program is attached to it.
    sh("ip link add upl0 type veth peer name upl0p");
    sh("ip link set upl0 up");
    const int reborn = ifindex_of("upl0");
    host.show_uplink(reborn);
    CHECK(eventually(daemon, [&](const nlohmann::json& st) {
      return st["uplink"] == "attached" && st["ifindex"] == reborn;
    }));
    CHECK(query_xdp_mode(reborn) == AttachMode::kNative);

    // node.on_stop = "leave": SIGTERM leaves and removes everything.
    ::kill(::getpid(), SIGTERM);
    CHECK(daemon.wait() == 0);
    CHECK(xdp_detached_soon(reborn));
    CHECK_FALSE(std::filesystem::exists(host.bpffs + "/mix1"));
    for (const auto& [key, value] : host.sysctls.values) CHECK_MESSAGE(value == "0", key);
    CHECK_FALSE(std::filesystem::exists(host.record_path()));
    sh("ip link del upl0");
  }
}

}  // namespace mixlb
