// Close tracking with real sockets: in the tests' network namespace, a VIP
// on lo and connections to it from 10.0.0.1; the real close-tracking program
// on a test XDP program's maps. Checks which closes delete the entry and
// reach the sidecar, and which do not.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "cluster/cluster_sync.h"
#include "cluster/node_id.h"
#include "kernel/close_tracker.h"
#include "netns_fixture.h"

namespace mixlb {
namespace {

using namespace std::chrono_literals;

// A TCP socket bound to `ip:port` (0: any port).
int tcp_socket(const char* ip, std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_port = htons(port);
  ::inet_pton(AF_INET, ip, &at.sin_addr);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&at), sizeof(at)) == 0);
  return fd;
}

std::uint16_t local_port(int fd) {
  sockaddr_in at{};
  socklen_t len = sizeof(at);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&at), &len);
  return ntohs(at.sin_port);
}

// client (10.0.0.1:port) -> server (ip:vport): the accepted socket, the client's.
std::pair<int, int> connect_pair(int listener, const char* ip, std::uint16_t vport) {
  const int client = tcp_socket("10.0.0.1", 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(vport);
  ::inet_pton(AF_INET, ip, &to.sin_addr);
  REQUIRE(::connect(client, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 0);
  const int server = ::accept(listener, nullptr, nullptr);
  REQUIRE(server >= 0);
  return {server, client};
}

mixlb_flow_key key_of(std::uint16_t client_port, const char* vip, std::uint16_t vport) {
  mixlb_flow_key k{};
  ::inet_pton(AF_INET, "10.0.0.1", &k.src[0]);
  ::inet_pton(AF_INET, vip, &k.dst[0]);
  k.sport = htons(client_port);
  k.dport = htons(vport);
  k.proto = 6;
  k.family = MIXLB_AF_INET;
  return k;
}

// The VIP 10.100.0.1:80/tcp on lo, served by node mix1 alone, in a test
// program's maps.
std::unique_ptr<XdpProgram> program_with_vip() {
  REQUIRE(std::system("ip addr add 10.100.0.1/32 dev lo 2>/dev/null; true") == 0);
  DatapathSettings settings = small_test_settings(node_id_for("mix1"), 13);
  auto prog = load_test_program(settings);
  ClusterSync sync(prog->maps(), settings.max_vips);
  VipEntry vip;
  vip.key = make_vip_key(*Address::parse("10.100.0.1"), 80, 6);
  vip.label = vip_label(vip.key);
  const std::vector<Member> members{Member{"mix1", node_id_for("mix1"), *Address::parse("10.0.0.1"), 1, true}};
  const std::vector<VipEntry> vips{vip};
  REQUIRE(sync.apply(members, vips).has_value());
  return prog;
}

}  // namespace

TEST_SUITE("close-tracking" * doctest::skip(cannot_run())) {
  TEST_CASE("a VIP socket's close deletes its entry and reaches the sidecar; others do not") {
    test_net();
    auto prog = program_with_vip();

    boost::asio::io_context io;
    std::vector<mixlb_close_event> events;
    auto tracker = CloseTracker::start(io, *prog, [&](const mixlb_close_event& e) { events.push_back(e); });
    REQUIRE_MESSAGE(tracker.has_value(), (tracker ? "" : tracker.error().message()));

    const int listener = tcp_socket("10.100.0.1", 80);
    REQUIRE(::listen(listener, 16) == 0);
    const int other = tcp_socket("10.0.0.1", 8080);  // not a VIP
    REQUIRE(::listen(other, 16) == 0);

    const mixlb_ct_value entry{.last_seen_ns = 1, .node_id = node_id_for("mix1"), .flags = MIXLB_CT_SEEN_SYN};
    // The server closes first, then the client closes first: both end the
    // server socket in CLOSE. The first flow came in directly (an entry
    // here), the second through a peer (an origin record, no entry).
    const std::uint32_t peer = node_id_for("mix2");
    std::vector<mixlb_flow_key> keys;
    for (bool server_first : {true, false}) {
      auto [server, client] = connect_pair(listener, "10.100.0.1", 80);
      const auto key = key_of(local_port(client), "10.100.0.1", 80);
      keys.push_back(key);
      if (server_first)
        REQUIRE(prog->maps().conntrack_insert(key, entry).has_value());
      else
        REQUIRE(bpf_map_update_elem(prog->map_fd("mixlb_origins"), &key, &peer, BPF_ANY) == 0);
      ::close(server_first ? server : client);
      std::this_thread::sleep_for(50ms);
      ::close(server_first ? client : server);
    }
    // A connection to a port that is no VIP: no event, its entry stays.
    auto [s3, c3] = connect_pair(other, "10.0.0.1", 8080);
    const auto stray = key_of(local_port(c3), "10.0.0.1", 8080);
    REQUIRE(prog->maps().conntrack_insert(stray, entry).has_value());
    ::close(s3);
    ::close(c3);
    ::close(listener);  // the listener's own close is not a connection
    ::close(other);

    const auto deadline = std::chrono::steady_clock::now() + 3s;
    while (events.size() < 2 && std::chrono::steady_clock::now() < deadline) io.run_for(50ms);
    io.run_for(200ms);  // anything more that would come
    REQUIRE(events.size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
      CAPTURE(i);
      CHECK(std::memcmp(&events[i].flow, &keys[i], sizeof(mixlb_flow_key)) == 0);
      CHECK(events[i].at_ns > 0);
      auto gone = prog->maps().conntrack(keys[i]);
      REQUIRE(gone.has_value());
      CHECK_FALSE(gone->has_value());
    }
    CHECK(events[0].flags == MIXLB_CLOSE_EV_DELETED);
    CHECK(events[0].origin_node == MIXLB_NODE_NONE);
    CHECK(events[1].flags == 0);
    CHECK(events[1].origin_node == peer);
    auto origin = prog->maps().origin(keys[1]);  // read once, then gone
    REQUIRE(origin.has_value());
    CHECK_FALSE(origin->has_value());
    auto kept = prog->maps().conntrack(stray);
    REQUIRE(kept.has_value());
    CHECK(kept->has_value());
    const CloseCounters c = (*tracker)->counters();
    CHECK(c.seen == 2);
    CHECK(c.deleted == 1);
    CHECK(c.ring_full == 0);
    CHECK(c.consumed == 2);
    std::system("ip addr del 10.100.0.1/32 dev lo 2>/dev/null");
  }

  TEST_CASE("a batch window hands on the closes of the window together, one wake-up for all") {
    test_net();
    auto prog = program_with_vip();
    const int listener = tcp_socket("10.100.0.1", 80);
    REQUIRE(::listen(listener, 64) == 0);

    // Ten closes 10 ms apart, the sidecar's loop running between them; the
    // times at which they are handed on, for a window of `batch`.
    auto handed_on = [&](std::chrono::milliseconds batch) {
      boost::asio::io_context io;
      std::vector<std::chrono::steady_clock::time_point> at;
      auto tracker = CloseTracker::start(
          io, *prog, [&](const mixlb_close_event&) { at.push_back(std::chrono::steady_clock::now()); }, batch);
      REQUIRE_MESSAGE(tracker.has_value(), (tracker ? "" : tracker.error().message()));
      for (int i = 0; i < 10; ++i) {
        auto [server, client] = connect_pair(listener, "10.100.0.1", 80);
        ::close(server);
        ::close(client);
        io.run_for(10ms);
      }
      const auto deadline = std::chrono::steady_clock::now() + 3s;
      while (at.size() < 10 && std::chrono::steady_clock::now() < deadline) io.run_for(20ms);
      REQUIRE(at.size() == 10);
      return at;
    };
    auto spread = [](const auto& at) { return at.back() - at.front(); };
    // Without a window each close is handed on as it comes, 10 ms apart;
    // with a window longer than the ten, all at once.
    const auto each = handed_on(0ms);
    const auto together = handed_on(300ms);
    MESSAGE("handed on over ", std::chrono::duration<double, std::milli>(spread(each)).count(), " ms without a window, ",
            std::chrono::duration<double, std::milli>(spread(together)).count(), " ms with one of 300 ms");
    CHECK(spread(each) >= 50ms);
    CHECK(spread(together) < 5ms);
    ::close(listener);
    std::system("ip addr del 10.100.0.1/32 dev lo 2>/dev/null");
  }
}

}  // namespace mixlb
