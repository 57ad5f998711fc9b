// The socket registry: real sockets on loopback (what it reads from them is
// the point), a recording fake for the selector's maps (what it writes).
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "kernel/unique_fd.h"
#include "loopback.h"
#include "reuseport/registry.h"

namespace mixlb {
namespace {

// The selector's maps as plain containers; the tests play the kernel by
// emptying an index (a socket that closed).
class FakeMaps : public SelectorMaps {
 public:
  mutable std::map<std::uint32_t, std::uint64_t> socks;
  mutable std::map<std::uint32_t, mixlb_rp_table> tables;
  mutable std::map<std::uint16_t, mixlb_rp_service> services;  // by port
  mutable std::set<int> attached;

  DpResult<void> attach(int fd) const override {
    attached.insert(fd);
    return {};
  }
  DpResult<std::uint64_t> put_socket(std::uint32_t index, int fd) const override {
    std::uint64_t cookie = 0;
    socklen_t len = sizeof(cookie);
    REQUIRE(::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) == 0);
    return socks[index] = cookie;
  }
  DpResult<void> remove_socket(std::uint32_t index) const override {
    socks.erase(index);
    return {};
  }
  DpResult<std::optional<std::uint64_t>> socket_at(std::uint32_t index) const override {
    auto it = socks.find(index);
    if (it == socks.end()) return std::nullopt;
    return it->second;
  }
  DpResult<void> set_table(std::uint32_t table, const mixlb_rp_table& workers) const override {
    tables[table] = workers;
    return {};
  }
  DpResult<void> set_service(const mixlb_rp_key& key, const mixlb_rp_service& service) const override {
    services[key.port] = service;
    return {};
  }
  DpResult<void> remove_service(const mixlb_rp_key& key) const override {
    services.erase(key.port);
    return {};
  }
  DpResult<void> reset_stats(std::uint32_t) const override { return {}; }

  // Which indices a table names, and how many slots each.
  std::map<std::uint32_t, int> shares(std::uint32_t table) const {
    std::map<std::uint32_t, int> out;
    for (auto s : tables.at(table).socks) ++out[s];
    return out;
  }
};

UniqueFd sock(int type, std::uint16_t port, bool reuseport = true, bool listen = true) {
  return test::loopback_socket(type, port, reuseport, listen);
}

std::uint16_t port_of(const UniqueFd& fd) {
  sockaddr_in at{};
  socklen_t len = sizeof(at);
  REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&at), &len) == 0);
  return ntohs(at.sin_port);
}

struct Fixture {
  FakeMaps maps;
  UniqueFd first = sock(SOCK_STREAM, 0);
  std::uint16_t port = port_of(first);
  SocketRegistry registry{maps, RegistrySettings{.managed = [this](const ServiceKey& k) { return k.port == port; }}};

  std::vector<Registered> add(std::vector<int> fds, std::string label, bool ready = true) {
    auto r = registry.register_sockets(RegisterRequest{fds, 42, std::move(label), ready});
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error()));
    return *r;
  }
  const GenerationView& generation(std::uint32_t number) {
    static std::vector<ServiceView> last;
    last = registry.services();
    REQUIRE(last.size() == 1);
    auto& gens = last[0].generations;
    auto it = std::find_if(gens.begin(), gens.end(), [&](const GenerationView& g) { return g.number == number; });
    REQUIRE(it != gens.end());
    return *it;
  }
};

}  // namespace

TEST_SUITE("reuseport-registry") {
  TEST_CASE("the first generation's sockets are spread over its table and it is active at once") {
    Fixture f;
    UniqueFd second = sock(SOCK_STREAM, f.port);
    auto r = f.add({f.first.get(), second.get()}, "v1", false);
    REQUIRE(r.size() == 1);
    CHECK(r[0].generation == 1);
    CHECK(r[0].sockets == 2);
    CHECK(r[0].active);  // the only generation: nothing else could serve
    CHECK(r[0].service.to_string() == "tcp 127.0.0.1:" + std::to_string(f.port));
    const auto& g = f.generation(1);
    REQUIRE(g.workers.size() == 2);
    auto shares = f.maps.shares(g.table);
    REQUIRE(shares.size() == 2);
    for (auto [index, slots] : shares) CHECK(slots >= 100);  // about half of 257 each
    CHECK(f.maps.services.at(f.port).table == g.table);
    CHECK(f.maps.attached.size() == 2);
  }

  TEST_CASE("a new generation waits until switched; the switch is one service write and the old one drains") {
    Fixture f;
    f.add({f.first.get()}, "v1");
    UniqueFd next = sock(SOCK_STREAM, f.port);
    auto r = f.add({next.get()}, "v2", /*ready=*/false);
    CHECK(r[0].generation == 2);
    CHECK_FALSE(r[0].active);
    const std::uint32_t old_table = f.generation(1).table, new_table = f.generation(2).table;
    CHECK(old_table != new_table);
    CHECK(f.maps.services.at(f.port).table == old_table);
    CHECK(f.generation(2).state == GenerationState::kStarting);

    REQUIRE(f.registry.switch_to(r[0].service, 2).has_value());
    CHECK(f.maps.services.at(f.port).table == new_table);
    CHECK(f.generation(2).state == GenerationState::kActive);
    CHECK(f.generation(1).state == GenerationState::kDraining);
  }

  TEST_CASE("a ready registration switches at once; more sockets under the same label join its table") {
    Fixture f;
    f.add({f.first.get()}, "v1");
    UniqueFd a = sock(SOCK_STREAM, f.port), b = sock(SOCK_STREAM, f.port);
    f.add({a.get()}, "v2", true);
    CHECK(f.generation(2).state == GenerationState::kActive);
    f.add({b.get()}, "v2", true);  // a second worker of v2
    CHECK(f.generation(2).workers.size() == 2);
    CHECK(f.maps.shares(f.generation(2).table).size() == 2);
  }

  TEST_CASE("a batch with one bad socket registers nothing, and the error names the socket and the fault") {
    Fixture f;
    UniqueFd no_reuseport = sock(SOCK_STREAM, 0, false);
    UniqueFd not_listening = sock(SOCK_STREAM, f.port, true, false);
    UniqueFd other_port = sock(SOCK_STREAM, 0);
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    UniqueFd p0(pipe_fds[0]), p1(pipe_fds[1]);
    struct Case {
      int fd;
      const char* says;
    };
    for (const Case& c : {Case{no_reuseport.get(), "SO_REUSEPORT is not set"},
                          Case{not_listening.get(), "must be listening"},
                          Case{other_port.get(), "not a VIP port this node serves"},
                          Case{p0.get(), "not a socket"}}) {
      CAPTURE(c.says);
      std::vector<int> fds{f.first.get(), c.fd};
      auto r = f.registry.register_sockets(RegisterRequest{fds, 1, "v1", true});
      REQUIRE_FALSE(r.has_value());
      CHECK(r.error().find("socket 2") != std::string::npos);
      CHECK(r.error().find(c.says) != std::string::npos);
      CHECK(f.registry.services().empty());
      CHECK(f.maps.socks.empty());
    }
  }

  TEST_CASE("a socket registered already is refused, under any label") {
    Fixture f;
    f.add({f.first.get()}, "v1");
    for (const char* label : {"v1", "v2"}) {
      std::vector<int> fds{f.first.get()};
      auto again = f.registry.register_sockets(RegisterRequest{fds, 1, label, true});
      REQUIRE_FALSE(again.has_value());
      CHECK(again.error().find("registered already, in generation 1") != std::string::npos);
    }
    UniqueFd other = sock(SOCK_STREAM, f.port);
    std::vector<int> twice{other.get(), other.get()};
    auto dup = f.registry.register_sockets(RegisterRequest{twice, 1, "v2", true});
    REQUIRE_FALSE(dup.has_value());
    CHECK(dup.error().find("the same socket twice") != std::string::npos);
    CHECK(f.registry.services()[0].generations.size() == 1);
  }

  TEST_CASE("sockets the kernel let go leave their table; an empty generation is forgotten, the newest takes over") {
    Fixture f;
    UniqueFd second = sock(SOCK_STREAM, f.port), next = sock(SOCK_STREAM, f.port);
    f.add({f.first.get(), second.get()}, "v1");
    f.add({next.get()}, "v2", false);
    const auto v1 = f.generation(1);
    // One of v1's sockets closes: its slots go to the other.
    f.maps.socks.erase(v1.workers[0].index);
    CHECK(f.registry.reconcile() == 1);
    CHECK(f.maps.shares(v1.table) == std::map<std::uint32_t, int>{{v1.workers[1].index, 257}});
    // The other too: v1 is gone, and v2 (registered, not yet switched) is active.
    f.maps.socks.erase(v1.workers[1].index);
    CHECK(f.registry.reconcile() == 1);
    auto services = f.registry.services();
    REQUIRE(services.size() == 1);
    REQUIRE(services[0].generations.size() == 1);
    CHECK(services[0].generations[0].number == 2);
    CHECK(services[0].generations[0].state == GenerationState::kActive);
    CHECK(f.maps.services.at(f.port).table == services[0].generations[0].table);
    // Its last socket gone too, the service is left to the kernel.
    f.maps.socks.clear();
    f.registry.reconcile();
    CHECK(f.registry.services().empty());
    CHECK(f.maps.services.empty());
  }

  TEST_CASE("a socket index taken by another socket since is not the worker's any more") {
    Fixture f;
    f.add({f.first.get()}, "v1");
    const auto index = f.generation(1).workers[0].index;
    f.maps.socks[index] = 1;  // another cookie at that index
    CHECK(f.registry.reconcile() == 1);
  }

  TEST_CASE("drain forgets a generation; the active one only when it is the last") {
    Fixture f;
    UniqueFd next = sock(SOCK_STREAM, f.port);
    auto r = f.add({f.first.get()}, "v1");
    f.add({next.get()}, "v2", true);
    const ServiceKey key = r[0].service;
    auto refused = f.registry.drain(key, 2);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().find("active") != std::string::npos);
    const auto old_index = f.generation(1).workers[0].index;
    REQUIRE(f.registry.drain(key, 1).has_value());
    CHECK_FALSE(f.maps.socks.contains(old_index));
    CHECK(f.registry.services()[0].generations.size() == 1);
    REQUIRE(f.registry.drain(key, 2).has_value());
    CHECK(f.registry.services().empty());
    CHECK(f.maps.services.empty());
    CHECK_FALSE(f.registry.drain(key, 2).has_value());
  }

  TEST_CASE("a restarted sidecar takes over the generations, without the sockets that closed meanwhile") {
    Fixture f;
    UniqueFd second = sock(SOCK_STREAM, f.port), next = sock(SOCK_STREAM, f.port);
    f.add({f.first.get(), second.get()}, "v1");
    f.add({next.get()}, "v2", false);
    const nlohmann::json state = f.registry.export_state();
    const auto v1 = f.generation(1);
    f.maps.socks.erase(v1.workers[1].index);  // closed while no sidecar ran
    f.maps.tables.clear();
    f.maps.services.clear();

    SocketRegistry after(f.maps, RegistrySettings{.managed = [&](const ServiceKey& k) { return k.port == f.port; }});
    auto kept = after.import_state(state);
    REQUIRE_MESSAGE(kept.has_value(), (kept ? "" : kept.error()));
    CHECK(*kept == 2);
    auto services = after.services();
    REQUIRE(services.size() == 1);
    REQUIRE(services[0].generations.size() == 2);
    CHECK(services[0].generations[0].state == GenerationState::kActive);
    CHECK(services[0].generations[0].workers.size() == 1);
    CHECK(services[0].generations[1].state == GenerationState::kStarting);
    // Tables and the service are written again, from what was kept.
    CHECK(f.maps.shares(v1.table) == std::map<std::uint32_t, int>{{v1.workers[0].index, 257}});
    CHECK(f.maps.services.at(f.port).table == v1.table);
    // Its index allocator knows the kept ones: a new socket takes another slot.
    UniqueFd third = sock(SOCK_STREAM, f.port);
    std::vector<int> fds{third.get()};
    auto r = after.register_sockets(RegisterRequest{fds, 7, "v3", false});
    REQUIRE(r.has_value());
    CHECK(r->front().generation == 3);
    std::set<std::uint32_t> indices;
    for (const auto& g : after.services()[0].generations)
      for (const auto& w : g.workers) CHECK(indices.insert(w.index).second);

    CHECK_FALSE(after.import_state(state).has_value());  // not into a registry in use
    SocketRegistry fresh(f.maps, RegistrySettings{});
    auto bad = fresh.import_state(nlohmann::json{{"version", 1}, {"services", {{{"proto", 6}}}}});
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().find("malformed") != std::string::npos);
  }

  TEST_CASE("services are named in full or as protocol/port") {
    Fixture f;
    UniqueFd udp = sock(SOCK_DGRAM, f.port);
    f.add({f.first.get(), udp.get()}, "v1");
    const std::string tcp_name = "tcp/" + std::to_string(f.port);
    auto tcp = f.registry.resolve(tcp_name);
    REQUIRE(tcp.has_value());
    CHECK(tcp->proto == IPPROTO_TCP);
    auto full = f.registry.resolve("udp 127.0.0.1:" + std::to_string(f.port));
    REQUIRE(full.has_value());
    CHECK(full->proto == IPPROTO_UDP);
    CHECK_FALSE(f.registry.resolve("tcp/1").has_value());
  }

  TEST_CASE("worker tables: a worker that goes moves only its own slots; cpu gives each CPU its socket") {
    std::vector<WorkerView> three{{0, 11, -1}, {1, 12, -1}, {2, 13, -1}};
    const auto before = build_worker_table(three, WorkerPolicy::kHash);
    std::map<std::uint32_t, int> shares;
    for (auto s : before.socks) ++shares[s];
    for (auto [index, slots] : shares) CHECK(slots >= 257 / 3 - 20);
    std::vector<WorkerView> two{three[0], three[2]};
    const auto after = build_worker_table(two, WorkerPolicy::kHash);
    int moved = 0;
    for (std::uint32_t i = 0; i < MIXLB_RP_TABLE_SLOTS; ++i)
      if (before.socks[i] != 1 && before.socks[i] != after.socks[i]) ++moved;
    CHECK(moved == 0);

    std::vector<WorkerView> pinned{{5, 1, 1}, {6, 2, 0}};
    const auto cpu = build_worker_table(pinned, WorkerPolicy::kCpu);
    CHECK(cpu.socks[0] == 6);
    CHECK(cpu.socks[1] == 5);
  }
}

}  // namespace mixlb
