// The reuseport selector with real sockets, in the tests' network namespace:
// the real program (bpf/mixlb_reuseport.bpf.c) attached to SO_REUSEPORT
// groups on 127.0.0.1, tables written by hand (one socket per table), and
// what the kernel then does with connections and datagrams: which socket
// gets them, where a closing listener's queue goes, which UDP flows stay.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "kernel/reuseport.h"
#include "netns_fixture.h"

namespace mixlb {
namespace {

using namespace std::chrono_literals;

constexpr std::uint16_t kPort = 7080;

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_port = htons(port);
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return at;
}

// A member of the group at 127.0.0.1:kPort: listening (TCP) or bound (UDP),
// non-blocking so the checks below can ask "did this one get it?".
int member(int type) {
  const int fd = ::socket(AF_INET, type | SOCK_NONBLOCK, 0);
  REQUIRE(fd >= 0);
  const int one = 1;
  REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0);
  const sockaddr_in at = loopback(kPort);
  REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&at), sizeof(at)) == 0);
  if (type == SOCK_STREAM) REQUIRE(::listen(fd, 64) == 0);
  return fd;
}

mixlb_rp_key service_key(std::uint8_t proto) {
  mixlb_rp_key key{};
  key.addr[0] = htonl(INADDR_LOOPBACK);
  key.port = kPort;
  key.proto = proto;
  key.family = MIXLB_AF_INET;
  return key;
}

mixlb_rp_table table_of(std::uint32_t index) {
  mixlb_rp_table t{};
  for (auto& slot : t.socks) slot = index;
  return t;
}

// A selector with table 0 = the socket at index 0 and table 1 = index 1,
// the service's active table 0.
struct Selector {
  std::unique_ptr<ReuseportSelector> sel;
  mixlb_rp_key key;
  explicit Selector(std::uint8_t proto, std::uint64_t udp_idle_ns = 60'000'000'000ull) : key(service_key(proto)) {
    test_net();  // the tests' own namespace
    auto loaded = ReuseportSelector::load("");
    REQUIRE_MESSAGE(loaded.has_value(), (loaded ? "" : loaded.error().message()));
    sel = std::move(*loaded);
    REQUIRE(sel->set_table(0, table_of(0)).has_value());
    REQUIRE(sel->set_table(1, table_of(1)).has_value());
    activate(0, udp_idle_ns);
  }
  void activate(std::uint32_t table, std::uint64_t udp_idle_ns = 60'000'000'000ull) const {
    REQUIRE(sel->set_service(key, mixlb_rp_service{table, MIXLB_RP_POLICY_HASH, udp_idle_ns}).has_value());
  }
  void put(std::uint32_t index, int fd) const {
    auto cookie = sel->put_socket(index, fd);
    REQUIRE_MESSAGE(cookie.has_value(), (cookie ? "" : cookie.error().message()));
    REQUIRE(sel->attach(fd).has_value());
  }
  ReuseportStats stats(std::uint32_t table) const {
    auto s = sel->stats(table);
    REQUIRE(s.has_value());
    return *s;
  }
};

// Connects `n` clients (the handshake completes into an accept queue).
std::vector<int> connect_clients(int n) {
  std::vector<int> out;
  for (int i = 0; i < n; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    const sockaddr_in at = loopback(kPort);
    REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&at), sizeof(at)) == 0);
    out.push_back(fd);
  }
  return out;
}

// Accepts everything queued on `listener` (waiting a little for stragglers).
std::vector<int> accept_all(int listener) {
  std::vector<int> out;
  for (int idle = 0; idle < 20;) {
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK);
    if (fd >= 0) {
      out.push_back(fd);
      idle = 0;
      continue;
    }
    ++idle;
    std::this_thread::sleep_for(5ms);
  }
  return out;
}

void close_all(const std::vector<int>& fds) {
  for (int fd : fds) ::close(fd);
}

// A UDP client bound to its own port, which names its flow.
int udp_client() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  REQUIRE(fd >= 0);
  const sockaddr_in at = loopback(0);
  REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&at), sizeof(at)) == 0);
  return fd;
}

void send_one(int client) {
  const sockaddr_in to = loopback(kPort);
  REQUIRE(::sendto(client, "x", 1, 0, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) == 1);
}

// Which of `members` received the one datagram just sent (-1: none).
int receiver(const std::vector<int>& members) {
  for (int tries = 0; tries < 100; ++tries) {
    for (std::size_t i = 0; i < members.size(); ++i) {
      char b;
      if (::recv(members[i], &b, 1, MSG_DONTWAIT) == 1) return static_cast<int>(i);
    }
    std::this_thread::sleep_for(1ms);
  }
  return -1;
}

}  // namespace

TEST_SUITE("reuseport" * doctest::skip(cannot_run())) {
  TEST_CASE("new connections go to the active generation's socket; a switch is one service write") {
    Selector s(IPPROTO_TCP);
    const int old_gen = member(SOCK_STREAM), new_gen = member(SOCK_STREAM);
    s.put(0, old_gen);
    s.put(1, new_gen);

    auto clients = connect_clients(20);
    CHECK(accept_all(old_gen).size() == 20);
    CHECK(accept_all(new_gen).empty());
    s.activate(1);
    auto more = connect_clients(20);
    CHECK(accept_all(new_gen).size() == 20);
    CHECK(accept_all(old_gen).empty());
    CHECK(s.stats(0).selected == 20);
    CHECK(s.stats(1).selected == 20);
    CHECK(s.stats(0).fallback + s.stats(1).fallback == 0);
    close_all(clients);
    close_all(more);
    ::close(old_gen);
    ::close(new_gen);
  }

  TEST_CASE("a closing listener's queued connections migrate to the active generation, none reset") {
    Selector s(IPPROTO_TCP);
    const int old_gen = member(SOCK_STREAM), new_gen = member(SOCK_STREAM);
    s.put(0, old_gen);
    s.put(1, new_gen);
    auto clients = connect_clients(10);  // queued on the old generation, not accepted
    s.activate(1);
    ::close(old_gen);
    auto moved = accept_all(new_gen);
    CHECK(moved.size() == 10);
    CHECK(s.stats(1).migrated == 10);
    // Each connection is whole: what its client sends arrives.
    for (int c : clients) REQUIRE(::send(c, "ping", 4, 0) == 4);
    std::size_t got = 0;
    for (int m : moved) {
      char buf[8];
      for (int tries = 0; tries < 100; ++tries) {
        if (::recv(m, buf, sizeof(buf), 0) == 4) {
          ++got;
          break;
        }
        std::this_thread::sleep_for(1ms);
      }
    }
    CHECK(got == 10);
    // The kernel emptied the closed listener's index by itself.
    auto at0 = s.sel->socket_at(0);
    REQUIRE(at0.has_value());
    CHECK_FALSE(at0->has_value());
    close_all(clients);
    close_all(moved);
    ::close(new_gen);
  }

  TEST_CASE("a UDP flow stays on the socket of its first datagram across a switch, until that socket goes") {
    Selector s(IPPROTO_UDP);
    const int old_gen = member(SOCK_DGRAM), new_gen = member(SOCK_DGRAM);
    s.put(0, old_gen);
    s.put(1, new_gen);
    const std::vector<int> members{old_gen, new_gen};
    const int live = udp_client();
    send_one(live);
    CHECK(receiver(members) == 0);
    s.activate(1);
    for (int i = 0; i < 5; ++i) {
      send_one(live);
      CHECK(receiver(members) == 0);  // sticky
    }
    const int fresh = udp_client();
    send_one(fresh);
    CHECK(receiver(members) == 1);  // a new flow: the new generation
    CHECK(s.stats(0).selected == 1);
    CHECK(s.stats(0).sticky == 5);
    CHECK(s.stats(1).selected == 1);
    auto flows = s.sel->flows_of(0);
    REQUIRE(flows.has_value());
    CHECK(*flows == 1);
    // Its socket gone, the flow is placed afresh, never lost.
    ::close(old_gen);
    send_one(live);
    CHECK(receiver({new_gen}) == 0);
    CHECK(s.stats(1).selected == 2);
    ::close(live);
    ::close(fresh);
    ::close(new_gen);
  }

  TEST_CASE("an idle UDP flow is placed by the active generation again") {
    Selector s(IPPROTO_UDP, 20'000'000ull);  // 20 ms
    const int old_gen = member(SOCK_DGRAM), new_gen = member(SOCK_DGRAM);
    s.put(0, old_gen);
    s.put(1, new_gen);
    const std::vector<int> members{old_gen, new_gen};
    const int client = udp_client();
    send_one(client);
    CHECK(receiver(members) == 0);
    s.activate(1, 20'000'000ull);
    std::this_thread::sleep_for(50ms);
    send_one(client);
    CHECK(receiver(members) == 1);
    ::close(client);
    ::close(old_gen);
    ::close(new_gen);
  }

  TEST_CASE("a table naming a socket that is gone: the kernel's hash places the flow, and it is counted") {
    Selector s(IPPROTO_TCP);
    const int only = member(SOCK_STREAM);
    s.put(1, only);
    // Table 0 names index 0, which holds nothing.
    auto clients = connect_clients(3);
    CHECK(accept_all(only).size() == 3);
    CHECK(s.stats(0).fallback == 3);
    CHECK(s.stats(0).selected == 0);
    close_all(clients);
    ::close(only);
  }

  // One CPU: nothing to tell apart.
  TEST_CASE("the cpu policy gives each receiving CPU its slot's socket" *
            doctest::skip(std::thread::hardware_concurrency() < 2)) {
    Selector s(IPPROTO_TCP);
    const int cpu0 = member(SOCK_STREAM), cpu1 = member(SOCK_STREAM);
    s.put(0, cpu0);
    s.put(1, cpu1);
    mixlb_rp_table by_cpu{};
    for (std::uint32_t slot = 0; slot < MIXLB_RP_TABLE_SLOTS; ++slot) by_cpu.socks[slot] = slot % 2;
    REQUIRE(s.sel->set_table(2, by_cpu).has_value());
    REQUIRE(s.sel->set_service(s.key, mixlb_rp_service{2, MIXLB_RP_POLICY_CPU, 0}).has_value());
    // On loopback the SYN is received on the CPU that sent it.
    for (int cpu : {0, 1, 0, 1}) {
      CAPTURE(cpu);
      std::vector<int> clients;
      std::thread([&] {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        REQUIRE(::pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0);
        clients = connect_clients(3);
      }).join();
      CHECK(accept_all(cpu == 0 ? cpu0 : cpu1).size() == 3);
      CHECK(accept_all(cpu == 0 ? cpu1 : cpu0).empty());
      close_all(clients);
    }
    CHECK(s.stats(2).selected == 12);
    ::close(cpu0);
    ::close(cpu1);
  }

  TEST_CASE("a socket the sockarray cannot hold is refused with the reason") {
    Selector s(IPPROTO_TCP);
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);  // neither bound nor listening
    REQUIRE(fd >= 0);
    auto put = s.sel->put_socket(0, fd);
    REQUIRE_FALSE(put.has_value());
    CHECK(put.error().message().find("must listen") != std::string::npos);
    ::close(fd);
  }

  TEST_CASE("a group without a service entry is left to the kernel: nothing selected, nothing counted") {
    Selector s(IPPROTO_TCP);
    REQUIRE(s.sel->remove_service(s.key).has_value());
    const int a = member(SOCK_STREAM), b = member(SOCK_STREAM);
    s.put(0, a);
    s.put(1, b);
    auto clients = connect_clients(16);
    CHECK(accept_all(a).size() + accept_all(b).size() == 16);
    CHECK(s.stats(0).selected + s.stats(0).fallback + s.stats(1).selected + s.stats(1).fallback == 0);
    close_all(clients);
    ::close(a);
    ::close(b);
  }
}

}  // namespace mixlb
