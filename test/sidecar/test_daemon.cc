// The split daemon's ways in and out, run in this process on the real BPF
// program (a veth of the test namespace as the uplink) with the host side —
// netlink and sysctls — on fakes that record what it changed:
//   start from nothing, stop for a restart (everything stays), start again
//   (everything adopted, nothing changed), a second instance (refused,
//   nothing touched), a start that fails after a restart (the data path it
//   found stays), and a leave (everything goes, the host as before).
#include <doctest/doctest.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
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

  // `args`: the command line a reload reads again.
  Running(const DaemonHost& host, const Config& config, std::vector<std::string> args = {})
      : socket(config.node.admin_socket) {
    std::promise<int> done;
    exit = done.get_future();
    std::thread([&host, config, args, done = std::move(done)]() mutable {
      try {
        int status = 0;
        {
          // Destroyed before the test hears the exit: it holds the lock.
          Daemon daemon(config,
                        DaemonSeams{const_cast<test::FakeRtnl*>(&host.netlink),
                                    const_cast<test::FakeSysctls*>(&host.sysctls)},
                        args);
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

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// GET /metrics on 127.0.0.1:PORT with HTTP/1.0 (answered, then closed): the
// whole response, or "" when nothing listens there.
std::string scrape(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  const sockaddr_in to = loopback(port);
  std::string response;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) == 0) {
    const std::string request = "GET /metrics HTTP/1.0\r\n\r\n";
    CHECK(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
    char chunk[16384];
    for (pollfd p{fd, POLLIN, 0}; ::poll(&p, 1, 5000) > 0;) {
      const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
      if (n <= 0) break;
      response.append(chunk, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return response;
}

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

// The daemon host's configuration as a file (a reload reads it again), with
// the metrics endpoint on 127.0.0.1:PORT.
void write_config(const DaemonHost& host, const std::string& path, std::uint16_t port) {
  std::ofstream(path) << "[node]\n"
                      << "name = \"mix1\"\ninterface = \"" << host.uplink << "\"\n"
                      << "address = \"10.0.0.1\"\nrun_dir = \"" << host.dir << "\"\n"
                      << "admin_socket = \"" << host.dir << "/mix1.sock\"\n"
                      << "bpffs_dir = \"" << host.bpffs << "\"\nleave_timeout_ms = 5000\n"
                      << "[datapath]\nxdp_mode = \"native\"\nmaglev_table_size = 251\n"
                      << "max_vips = 4\nmax_nodes = 16\nconntrack_entries = 1024\n"
                      << "[gossip]\nenabled = false\n"
                      << "[health]\nkind = \"none\"\n"
                      << "[metrics]\nlisten = \"127.0.0.1:" << port << "\"\n"
                      << "[[vip]]\naddress = \"10.100.0.1\"\nports = [80]\n"
                      << "[[peer]]\nname = \"mix1\"\naddress = \"10.0.0.1\"\n"
                      << "[[peer]]\nname = \"mix2\"\naddress = \"10.0.0.2\"\n";
}

Config config_of(const std::vector<std::string>& args) {
  std::vector<const char*> argv{"mixlb"};
  for (const auto& a : args) argv.push_back(a.c_str());
  auto config = config_from_args(static_cast<int>(argv.size()), argv.data());
  REQUIRE(config.has_value());
  return *config;
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
  TEST_CASE("metrics: a taken port stops a start that changed nothing; served with the daemon, named in status, moved by a reload, closed on every way out") {
    DaemonHost host;
    const int dp0 = test_net().dp0;
    const std::string file = host.dir + "/mix1.toml";
    write_config(host, file, 19651);
    const std::vector<std::string> args{"--config", file};
    const Config config = config_of(args);

    // 1. The port is taken: the start stops before it changed anything.
    {
      const int blocker = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      const sockaddr_in at = loopback(19651);
      REQUIRE(::bind(blocker, reinterpret_cast<const sockaddr*>(&at), sizeof(at)) == 0);
      REQUIRE(::listen(blocker, 1) == 0);
      Daemon daemon(config, DaemonSeams{&host.netlink, &host.sysctls}, args);
      CHECK_THROWS_WITH_AS(daemon.run(), "metrics on 127.0.0.1:19651: address already in use",
                           StartupError);
      ::close(blocker);
      CHECK_FALSE(query_xdp_mode(dp0).has_value());
      CHECK_FALSE(std::filesystem::exists(host.bpffs + "/mix1"));
      CHECK_FALSE(std::filesystem::exists(host.record_path()));
      CHECK_FALSE(std::filesystem::exists(config.node.admin_socket));
      CHECK(host.sysctls.writes.empty());
      CHECK(host.netlink.addresses.empty());
    }

    // 2. Served while the daemon serves, from its parts; status names it.
    {
      Running daemon(host, config, args);
      CHECK(daemon.ask("status")["metrics"] == "127.0.0.1:19651");
      const std::string text = scrape(19651);
      REQUIRE(text.starts_with("HTTP/1.0 200 OK\r\n"));
      CHECK(has_line(text, "mixlb_node_info{node=\"mix1\",version=\"" MIXLB_VERSION "\"} 1"));
      CHECK(has_line(text, "mixlb_xdp_mode{mode=\"native\"} 1"));
      CHECK(has_line(text, "mixlb_uplink_attached 1"));
      CHECK(has_line(text, "mixlb_vip_backends{vip=\"10.100.0.1:80/tcp\"} 2"));
      CHECK(has_line(text, "mixlb_vip_packets_total{vip=\"10.100.0.1:80/tcp\",path=\"local\"} 0"));
      CHECK(has_line(text, "mixlb_vip_node_weight{vip=\"10.100.0.1:80/tcp\",node=\"mix2\"} 1"));
      CHECK(has_line(text, "mixlb_app_healthy{node=\"mix1\"} 1"));
      CHECK(text.find("mixlb_health_check_healthy{") == std::string::npos);  // health.kind = none
      // The census of the pinned table this daemon made.
      CHECK(has_line(text, "mixlb_conntrack_entries_limit 1024"));
      CHECK(has_line(text, "mixlb_conntrack_entries 0"));
      CHECK(text.find("mixlb_gossip") == std::string::npos);  // gossip off

      // 3. A reload that changes metrics.listen moves the endpoint.
      write_config(host, file, 19652);
      const auto reloaded = daemon.ask("reload");
      CHECK(reloaded["applied"] == nlohmann::json::array({"metrics.listen"}));
      CHECK(daemon.ask("status")["metrics"] == "127.0.0.1:19652");
      CHECK(scrape(19652).starts_with("HTTP/1.0 200 OK\r\n"));
      CHECK(scrape(19651).empty());

      // 4. SIGTERM, a stop for a restart: the endpoint closes with the daemon.
      ::kill(::getpid(), SIGTERM);
      CHECK(daemon.wait() == 0);
      CHECK(scrape(19652).empty());
    }

    // 5. The next start adopts the data path and serves again; a leave
    // closes the endpoint too (and leaves the host as it was).
    {
      Running daemon(host, config_of(args), args);
      CHECK(daemon.ask("status")["instance"]["adopted_maps"] == true);
      CHECK(scrape(19652).starts_with("HTTP/1.0 200 OK\r\n"));
      CHECK(daemon.ask("leave")["leaving"] == true);
      CHECK(daemon.wait() == 0);
      CHECK(scrape(19652).empty());
    }
    CHECK_FALSE(query_xdp_mode(dp0).has_value());
    CHECK_FALSE(std::filesystem::exists(host.bpffs + "/mix1"));
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

  TEST_CASE("an uplink that is detached or vanishes is reported and attached again; SIGHUP without a file changes nothing; SIGTERM may mean leave") {
    sh("ip link add upl0 type veth peer name upl0p");
    sh("ip link set upl0 up");
    DaemonHost host("upl0", ifindex_of("upl0"));
    Config config = host.config();
    config.node.on_stop = StopAction::kLeave;
    Running daemon(host, config);
    REQUIRE(daemon.ask("status")["uplink"] == "attached");

    // SIGHUP asks for a reload; without --config there is no file, so it
    // changes nothing (the log says why), and the daemon does not die.
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
