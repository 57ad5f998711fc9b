#pragma once
// Which of the app's sockets the reuseport selector (bpf/mixlb_reuseport.bpf.c)
// may give flows to: services, their generations, each generation's workers.
//
//   service     one SO_REUSEPORT group: (family, protocol, bound address,
//               port), e.g. tcp 0.0.0.0:80. Only a managed VIP port is
//               accepted: the caller says which ports those are.
//   generation  one instance of the app: the sockets it registered under one
//               label (its pid by default). Numbered 1, 2, ... per service.
//               States: starting (registered, gets no flows), active (gets
//               every new flow; one per service), draining (was active,
//               keeps what it has, gets nothing new; its closing listeners'
//               queues migrate to the active one).
//   worker      one socket of a generation, at an index of the sockarray;
//               the generation's table spreads the slots over its workers
//               (Maglev over the socket cookies: a worker that comes or goes
//               moves only its own slots) or gives each CPU its socket.
//
// The registry holds no socket: it puts each one into the sockarray, whose
// entry the kernel removes when the socket closes, and lets its fd go. So
// an app that exits really closes its listeners (and their queues
// migrate), and nothing of the app outlives it here. reconcile() notices the
// sockets the kernel let go, rebuilds the tables without them and forgets
// generations that have none left.
//
// Every kernel write goes through SelectorMaps (ReuseportSelector in the
// daemon, a recording fake in the tests). A generation's table is written
// when its sockets register; the switch is then one write of the service.
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kernel/abi.h"
#include "kernel/address.h"
#include "kernel/reuseport.h"  // SelectorMaps

namespace mixlb {

enum class WorkerPolicy : std::uint8_t { kHash, kCpu };
std::string_view to_string(WorkerPolicy policy);
std::optional<WorkerPolicy> parse_worker_policy(std::string_view text);

struct ServiceKey {
  int proto = 0;  // IPPROTO_TCP / IPPROTO_UDP
  Address address;  // as bound; all zero words = any
  std::uint16_t port = 0;
  mixlb_rp_key bpf() const;
  std::string to_string() const;  // "tcp 0.0.0.0:80", "udp [::]:443"
  friend auto operator<=>(const ServiceKey&, const ServiceKey&) = default;
};

// What a socket is, read from the socket itself.
struct SocketFacts {
  ServiceKey service;
  bool reuseport = false;
  bool listening = false;  // TCP: in LISTEN
  int incoming_cpu = -1;   // SO_INCOMING_CPU, -1 when unset
  std::uint64_t cookie = 0;  // SO_COOKIE
};
std::expected<SocketFacts, std::string> inspect_socket(int fd);

enum class GenerationState : std::uint8_t { kStarting, kActive, kDraining };
std::string_view to_string(GenerationState state);

struct WorkerView {
  std::uint32_t index = 0;
  std::uint64_t cookie = 0;
  int incoming_cpu = -1;
};

struct GenerationView {
  std::uint32_t number = 0;
  std::string label;
  std::int32_t pid = 0;
  GenerationState state = GenerationState::kStarting;
  std::uint32_t table = 0;
  std::vector<WorkerView> workers;
};

struct ServiceView {
  ServiceKey key;
  WorkerPolicy policy = WorkerPolicy::kHash;
  std::vector<GenerationView> generations;
};

struct RegisterRequest {
  std::span<const int> fds;  // borrowed: the registry keeps none of them
  std::int32_t pid = 0;
  std::string label;  // "" = "pid:<pid>"
  bool ready = true;  // switch new flows to it at once
};

struct Registered {
  ServiceKey service;
  std::uint32_t generation = 0;
  std::size_t sockets = 0;
  bool active = false;
  std::uint64_t switch_ns = 0;  // how long the switch to it took (the service write), when it switched
};

struct RegistrySettings {
  WorkerPolicy policy = WorkerPolicy::kHash;
  std::uint64_t udp_idle_ns = 30'000'000'000ull;
  // Whether (protocol, bound address, port) is one of this node's VIP ports.
  std::function<bool(const ServiceKey&)> managed;
};

class SocketRegistry {
 public:
  SocketRegistry(const SelectorMaps& maps, RegistrySettings settings);

  // Adds `request`'s sockets: each to its service, under the generation of
  // the request's label (a new one, numbered next, unless the label is
  // registered already). Checks every socket before it changes anything:
  // an error names the socket (by its position) and what is wrong with it.
  std::expected<std::vector<Registered>, std::string> register_sockets(const RegisterRequest& request);

  // Makes generation `number` of `service` the active one: one write of the
  // service. The one active before drains.
  // Returns how long the switch took, in nanoseconds.
  std::expected<std::uint64_t, std::string> switch_to(const ServiceKey& service, std::uint32_t number);
  // Takes a generation's workers out of the sockarray and forgets it: the
  // selector gives it nothing more (its sockets stay in the kernel's group
  // until the app closes them; the kernel's own hash reaches them only when
  // a selection fails). The active generation only when it is the
  // service's last; the service is then left to the kernel.
  std::expected<void, std::string> drain(const ServiceKey& service, std::uint32_t number);

  // Drops the workers whose socket the kernel let go, rewrites the tables
  // of generations that lost some, forgets generations left with none (and
  // services left with no generation). Returns how many workers went.
  std::size_t reconcile();

  std::vector<ServiceView> services() const;
  // The registry as JSON, and back: a restarted sidecar takes over the
  // generations its predecessor registered. import_state() keeps only the
  // workers whose socket the kernel still holds at the recorded index (by
  // cookie), rewrites their tables and the services, and returns how many
  // workers it kept. It needs an empty registry.
  nlohmann::json export_state() const;
  std::expected<std::size_t, std::string> import_state(const nlohmann::json& state);

  // The generation that holds the socket of `cookie`, if one does.
  std::optional<std::uint32_t> generation_of(std::uint64_t cookie) const;
  // The service `name` means: its full name ("tcp 0.0.0.0:80"), or
  // "tcp/80" when one service has that protocol and port.
  std::expected<ServiceKey, std::string> resolve(std::string_view name) const;

 private:
  struct Worker {
    std::uint32_t index;
    std::uint64_t cookie;
    int incoming_cpu;
  };
  struct Generation {
    std::uint32_t number;
    std::string label;
    std::int32_t pid;
    GenerationState state;
    std::uint32_t table;
    std::vector<Worker> workers;
  };
  struct Service {
    std::uint32_t next_number = 1;
    std::vector<Generation> generations;
  };

  std::expected<void, std::string> write_table(const Generation& generation) const;
  std::expected<void, std::string> write_service(const ServiceKey& key, const Generation& active) const;
  Generation* find(const ServiceKey& key, std::uint32_t number);
  std::optional<std::uint32_t> take_index();
  std::optional<std::uint32_t> take_table();
  void forget(Generation& generation);

  const SelectorMaps& maps_;
  RegistrySettings settings_;
  std::map<ServiceKey, Service> services_;
  std::vector<bool> index_used_ = std::vector<bool>(MIXLB_RP_MAX_SOCKETS, false);
  std::vector<bool> table_used_ = std::vector<bool>(MIXLB_RP_MAX_TABLES, false);
};

// The worker table of `workers` by `policy`: Maglev over their cookies
// (hash), or slot c -> the worker whose incoming CPU is c, else the worker
// c mod n (cpu). Empty workers: every slot names index 0.
mixlb_rp_table build_worker_table(std::span<const WorkerView> workers, WorkerPolicy policy);

}  // namespace mixlb
