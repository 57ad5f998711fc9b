#include "reuseport/registry.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "cluster/maglev.h"

namespace mixlb {

std::string_view to_string(WorkerPolicy policy) { return policy == WorkerPolicy::kCpu ? "cpu" : "hash"; }

std::optional<WorkerPolicy> parse_worker_policy(std::string_view text) {
  if (text == "hash") return WorkerPolicy::kHash;
  if (text == "cpu") return WorkerPolicy::kCpu;
  return std::nullopt;
}

std::string_view to_string(GenerationState state) {
  switch (state) {
    case GenerationState::kStarting: return "starting";
    case GenerationState::kActive: return "active";
    case GenerationState::kDraining: return "draining";
  }
  return "?";
}

mixlb_rp_key ServiceKey::bpf() const {
  mixlb_rp_key key{};
  for (std::size_t i = 0; i < 4; ++i) key.addr[i] = address.words[i];
  key.port = port;
  key.proto = static_cast<std::uint8_t>(proto);
  key.family = static_cast<std::uint8_t>(address.family);
  return key;
}

std::string ServiceKey::to_string() const {
  const char* p = proto == IPPROTO_UDP ? "udp" : "tcp";
  if (address.is_v6()) return fmt::format("{} [{}]:{}", p, address.to_string(), port);
  return fmt::format("{} {}:{}", p, address.to_string(), port);
}

std::expected<SocketFacts, std::string> inspect_socket(int fd) {
  auto get = [fd](int option, const char* name) -> std::expected<int, std::string> {
    int value = 0;
    socklen_t len = sizeof(value);
    if (::getsockopt(fd, SOL_SOCKET, option, &value, &len) != 0)
      return std::unexpected(fmt::format("reading {}: {}", name, std::strerror(errno)));
    return value;
  };
  auto domain = get(SO_DOMAIN, "SO_DOMAIN");
  if (!domain) return std::unexpected(domain.error() + " (not a socket?)");
  if (*domain != AF_INET && *domain != AF_INET6) return std::unexpected("not an IPv4 or IPv6 socket");
  auto protocol = get(SO_PROTOCOL, "SO_PROTOCOL");
  if (!protocol) return std::unexpected(protocol.error());
  if (*protocol != IPPROTO_TCP && *protocol != IPPROTO_UDP) return std::unexpected("neither TCP nor UDP");
  SocketFacts facts;
  facts.service.proto = *protocol;
  auto reuseport = get(SO_REUSEPORT, "SO_REUSEPORT");
  auto listening = get(SO_ACCEPTCONN, "SO_ACCEPTCONN");
  auto cpu = get(SO_INCOMING_CPU, "SO_INCOMING_CPU");
  if (!reuseport) return std::unexpected(reuseport.error());
  if (!listening) return std::unexpected(listening.error());
  facts.reuseport = *reuseport != 0;
  facts.listening = *listening != 0;
  facts.incoming_cpu = cpu ? *cpu : -1;
  socklen_t cookie_len = sizeof(facts.cookie);
  if (::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &facts.cookie, &cookie_len) != 0)
    return std::unexpected(fmt::format("reading SO_COOKIE: {}", std::strerror(errno)));
  sockaddr_storage at{};
  socklen_t len = sizeof(at);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&at), &len) != 0)
    return std::unexpected(fmt::format("reading its address: {}", std::strerror(errno)));
  if (at.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&at);
    facts.service.address = Address::v4(in->sin_addr.s_addr);
    facts.service.port = ntohs(in->sin_port);
  } else {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&at);
    facts.service.address.family = AF_INET6;
    std::memcpy(facts.service.address.words.data(), &in6->sin6_addr, 16);
    facts.service.port = ntohs(in6->sin6_port);
  }
  return facts;
}

mixlb_rp_table build_worker_table(std::span<const WorkerView> workers, WorkerPolicy policy) {
  mixlb_rp_table table{};
  if (workers.empty()) return table;
  if (policy == WorkerPolicy::kCpu) {
    for (std::uint32_t slot = 0; slot < MIXLB_RP_TABLE_SLOTS; ++slot) {
      auto mine = std::find_if(workers.begin(), workers.end(),
                               [&](const WorkerView& w) { return w.incoming_cpu == static_cast<int>(slot); });
      table.socks[slot] = mine != workers.end() ? mine->index : workers[slot % workers.size()].index;
    }
    return table;
  }
  std::vector<MaglevBackend> backends;
  backends.reserve(workers.size());
  for (const auto& w : workers) backends.push_back({fmt::format("socket:{}", w.cookie), w.index + 1, 1});
  const auto slots = build_maglev_table(backends, MIXLB_RP_TABLE_SLOTS);
  for (std::uint32_t slot = 0; slot < MIXLB_RP_TABLE_SLOTS; ++slot) table.socks[slot] = slots[slot] - 1;
  return table;
}

SocketRegistry::SocketRegistry(const SelectorMaps& maps, RegistrySettings settings)
    : maps_(maps), settings_(std::move(settings)) {}

namespace {

std::vector<WorkerView> views_of(const auto& workers) {
  std::vector<WorkerView> out;
  for (const auto& w : workers) out.push_back({w.index, w.cookie, w.incoming_cpu});
  return out;
}

}  // namespace

std::expected<void, std::string> SocketRegistry::write_table(const Generation& generation) const {
  if (auto r = maps_.set_table(generation.table, build_worker_table(views_of(generation.workers), settings_.policy));
      !r)
    return std::unexpected(r.error().message());
  return {};
}

std::expected<void, std::string> SocketRegistry::write_service(const ServiceKey& key, const Generation& active) const {
  const mixlb_rp_service value{active.table,
                               settings_.policy == WorkerPolicy::kCpu ? MIXLB_RP_POLICY_CPU : MIXLB_RP_POLICY_HASH,
                               settings_.udp_idle_ns};
  if (auto r = maps_.set_service(key.bpf(), value); !r) return std::unexpected(r.error().message());
  return {};
}

std::optional<std::uint32_t> SocketRegistry::take_index() {
  auto free = std::find(index_used_.begin(), index_used_.end(), false);
  if (free == index_used_.end()) return std::nullopt;
  *free = true;
  return static_cast<std::uint32_t>(free - index_used_.begin());
}

std::optional<std::uint32_t> SocketRegistry::take_table() {
  auto free = std::find(table_used_.begin(), table_used_.end(), false);
  if (free == table_used_.end()) return std::nullopt;
  *free = true;
  return static_cast<std::uint32_t>(free - table_used_.begin());
}

SocketRegistry::Generation* SocketRegistry::find(const ServiceKey& key, std::uint32_t number) {
  auto s = services_.find(key);
  if (s == services_.end()) return nullptr;
  for (auto& g : s->second.generations)
    if (g.number == number) return &g;
  return nullptr;
}

void SocketRegistry::forget(Generation& generation) {
  for (const auto& w : generation.workers) {
    (void)maps_.remove_socket(w.index);
    index_used_[w.index] = false;
  }
  generation.workers.clear();
  table_used_[generation.table] = false;
}

std::expected<std::vector<Registered>, std::string> SocketRegistry::register_sockets(const RegisterRequest& request) {
  if (request.fds.empty()) return std::unexpected("no sockets to register");
  const std::string label = request.label.empty() ? fmt::format("pid:{}", request.pid) : request.label;
  // Every socket is checked before anything changes.
  std::vector<SocketFacts> facts;
  for (std::size_t i = 0; i < request.fds.size(); ++i) {
    auto f = inspect_socket(request.fds[i]);
    if (!f) return std::unexpected(fmt::format("socket {}: {}", i + 1, f.error()));
    if (!f->reuseport)
      return std::unexpected(fmt::format("socket {} ({}): SO_REUSEPORT is not set, so a new generation could not "
                                         "join its group",
                                         i + 1, f->service.to_string()));
    if (f->service.proto == IPPROTO_TCP && !f->listening)
      return std::unexpected(fmt::format("socket {} ({}): a TCP socket must be listening", i + 1, f->service.to_string()));
    if (f->service.port == 0) return std::unexpected(fmt::format("socket {}: not bound to a port", i + 1));
    if (!settings_.managed || !settings_.managed(f->service))
      return std::unexpected(fmt::format("socket {} ({}): not a VIP port this node serves; only the ports of the "
                                         "configured VIPs are managed",
                                         i + 1, f->service.to_string()));
    if (auto g = generation_of(f->cookie))
      return std::unexpected(fmt::format("socket {} ({}): registered already, in generation {}", i + 1,
                                         f->service.to_string(), *g));
    for (const auto& earlier : facts)
      if (earlier.cookie == f->cookie)
        return std::unexpected(fmt::format("socket {} ({}): the same socket twice", i + 1, f->service.to_string()));
    facts.push_back(*f);
  }
  std::vector<Registered> out;
  for (std::size_t i = 0; i < request.fds.size(); ++i) {
    const ServiceKey& key = facts[i].service;
    Service& service = services_[key];
    Generation* generation = nullptr;
    for (auto& g : service.generations)
      if (g.label == label) generation = &g;
    if (!generation) {
      auto table = take_table();
      if (!table) return std::unexpected(fmt::format("{}: every one of the {} generation tables is in use", key.to_string(), MIXLB_RP_MAX_TABLES));
      (void)maps_.reset_stats(*table);
      service.generations.push_back(
          Generation{service.next_number++, label, request.pid, GenerationState::kStarting, *table, {}});
      generation = &service.generations.back();
    }
    auto index = take_index();
    if (!index) return std::unexpected(fmt::format("{}: every one of the {} socket slots is in use", key.to_string(), MIXLB_RP_MAX_SOCKETS));
    auto cookie = maps_.put_socket(*index, request.fds[i]);
    if (!cookie) {
      index_used_[*index] = false;
      return std::unexpected(fmt::format("socket {} ({}): {}", i + 1, key.to_string(), cookie.error().message()));
    }
    if (auto attached = maps_.attach(request.fds[i]); !attached)
      return std::unexpected(fmt::format("socket {} ({}): {}", i + 1, key.to_string(), attached.error().message()));
    generation->workers.push_back(Worker{*index, *cookie, facts[i].incoming_cpu});
    if (auto w = write_table(*generation); !w) return std::unexpected(w.error());
    auto same = std::find_if(out.begin(), out.end(), [&](const Registered& r) { return r.service == key; });
    if (same == out.end()) {
      out.push_back(Registered{key, generation->number, 0, false});
      same = out.end() - 1;
    }
    ++same->sockets;
  }
  for (auto& r : out) {
    Generation* g = find(r.service, r.generation);
    const bool first = services_[r.service].generations.size() == 1;
    if (g->state == GenerationState::kActive || request.ready || first) {
      auto s = switch_to(r.service, r.generation);
      if (!s) return std::unexpected(s.error());
      r.switch_ns = *s;
    }
    r.active = g->state == GenerationState::kActive;
  }
  return out;
}

std::expected<std::uint64_t, std::string> SocketRegistry::switch_to(const ServiceKey& key, std::uint32_t number) {
  Generation* target = find(key, number);
  if (!target) return std::unexpected(fmt::format("{} has no generation {}", key.to_string(), number));
  if (target->workers.empty()) return std::unexpected(fmt::format("{} generation {} has no sockets", key.to_string(), number));
  const auto started = std::chrono::steady_clock::now();
  if (auto w = write_service(key, *target); !w) return std::unexpected(w.error());
  const auto took = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started);
  for (auto& g : services_[key].generations)
    if (g.state == GenerationState::kActive && g.number != number) g.state = GenerationState::kDraining;
  target->state = GenerationState::kActive;
  return static_cast<std::uint64_t>(took.count());
}

std::expected<void, std::string> SocketRegistry::drain(const ServiceKey& key, std::uint32_t number) {
  Generation* target = find(key, number);
  if (!target) return std::unexpected(fmt::format("{} has no generation {}", key.to_string(), number));
  Service& service = services_[key];
  if (target->state == GenerationState::kActive && service.generations.size() > 1)
    return std::unexpected(fmt::format("{} generation {} is the active one: switch to another first",
                                       key.to_string(), number));
  if (target->state == GenerationState::kActive) {
    if (auto r = maps_.remove_service(key.bpf()); !r) return std::unexpected(r.error().message());
  }
  forget(*target);
  std::erase_if(service.generations, [&](const Generation& g) { return g.number == number; });
  if (service.generations.empty()) services_.erase(key);
  return {};
}

std::size_t SocketRegistry::reconcile() {
  std::size_t gone = 0;
  for (auto s = services_.begin(); s != services_.end();) {
    auto& generations = s->second.generations;
    for (auto& g : generations) {
      const std::size_t before = g.workers.size();
      std::erase_if(g.workers, [&](const Worker& w) {
        auto at = maps_.socket_at(w.index);
        const bool there = !at || (at->has_value() && **at == w.cookie);  // a read error keeps it
        if (!there) index_used_[w.index] = false;
        return !there;
      });
      if (g.workers.size() != before) {
        gone += before - g.workers.size();
        if (!g.workers.empty()) (void)write_table(g);
      }
    }
    // A generation with no socket left is forgotten; if it was the active
    // one, the newest remaining generation takes over (the app's new
    // instance, registered but not yet switched, is better than nothing),
    // or the service is left to the kernel.
    bool lost_active = false;
    std::erase_if(generations, [&](Generation& g) {
      if (!g.workers.empty()) return false;
      lost_active = lost_active || g.state == GenerationState::kActive;
      table_used_[g.table] = false;
      return true;
    });
    if (generations.empty()) {
      (void)maps_.remove_service(s->first.bpf());
      s = services_.erase(s);
      continue;
    }
    if (lost_active) (void)switch_to(s->first, generations.back().number);
    ++s;
  }
  return gone;
}

std::vector<ServiceView> SocketRegistry::services() const {
  std::vector<ServiceView> out;
  for (const auto& [key, service] : services_) {
    ServiceView view{key, settings_.policy, {}};
    for (const auto& g : service.generations)
      view.generations.push_back(GenerationView{g.number, g.label, g.pid, g.state, g.table, views_of(g.workers)});
    out.push_back(std::move(view));
  }
  return out;
}

nlohmann::json SocketRegistry::export_state() const {
  using nlohmann::json;
  json services = json::array();
  for (const auto& [key, service] : services_) {
    json generations = json::array();
    for (const auto& g : service.generations) {
      json workers = json::array();
      for (const auto& w : g.workers)
        workers.push_back({{"index", w.index}, {"cookie", w.cookie}, {"incoming_cpu", w.incoming_cpu}});
      generations.push_back({{"number", g.number}, {"label", g.label}, {"pid", g.pid},
                             {"state", to_string(g.state)}, {"table", g.table}, {"workers", std::move(workers)}});
    }
    services.push_back({{"proto", key.proto},
                        {"address", key.address.to_string()},
                        {"port", key.port},
                        {"next_number", service.next_number},
                        {"generations", std::move(generations)}});
  }
  return json{{"version", 1}, {"services", std::move(services)}};
}

std::expected<std::size_t, std::string> SocketRegistry::import_state(const nlohmann::json& state) {
  if (!services_.empty()) return std::unexpected("the registry is not empty");
  std::size_t kept = 0;
  try {
    if (state.at("version").get<int>() != 1) return std::unexpected("unknown state version");
    for (const auto& s : state.at("services")) {
      ServiceKey key;
      key.proto = s.at("proto").get<int>();
      auto address = Address::parse(s.at("address").get<std::string>());
      if (!address) return std::unexpected("a service with a bad address");
      key.address = *address;
      key.port = s.at("port").get<std::uint16_t>();
      Service service;
      service.next_number = s.at("next_number").get<std::uint32_t>();
      for (const auto& g : s.at("generations")) {
        Generation generation{g.at("number").get<std::uint32_t>(), g.at("label").get<std::string>(),
                              g.at("pid").get<std::int32_t>(), GenerationState::kStarting,
                              g.at("table").get<std::uint32_t>(), {}};
        const std::string st = g.at("state").get<std::string>();
        generation.state = st == "active" ? GenerationState::kActive
                           : st == "draining" ? GenerationState::kDraining
                                              : GenerationState::kStarting;
        if (generation.table >= MIXLB_RP_MAX_TABLES || table_used_[generation.table])
          return std::unexpected("a generation with a bad or repeated table");
        for (const auto& w : g.at("workers")) {
          Worker worker{w.at("index").get<std::uint32_t>(), w.at("cookie").get<std::uint64_t>(),
                        w.at("incoming_cpu").get<int>()};
          if (worker.index >= MIXLB_RP_MAX_SOCKETS || index_used_[worker.index]) continue;
          auto at = maps_.socket_at(worker.index);
          if (!at || !at->has_value() || **at != worker.cookie) continue;  // closed meanwhile
          index_used_[worker.index] = true;
          generation.workers.push_back(worker);
          ++kept;
        }
        if (generation.workers.empty()) continue;
        table_used_[generation.table] = true;
        service.generations.push_back(std::move(generation));
      }
      if (service.generations.empty()) {
        (void)maps_.remove_service(key.bpf());
        continue;
      }
      services_[key] = std::move(service);
    }
  } catch (const nlohmann::json::exception& e) {
    services_.clear();
    std::fill(index_used_.begin(), index_used_.end(), false);
    std::fill(table_used_.begin(), table_used_.end(), false);
    return std::unexpected(std::string("malformed: ") + e.what());
  }
  // The tables and services as the kept workers make them.
  for (auto& [key, service] : services_) {
    const Generation* active = nullptr;
    for (const auto& g : service.generations) {
      (void)write_table(g);
      if (g.state == GenerationState::kActive) active = &g;
    }
    if (!active) {
      (void)switch_to(key, service.generations.back().number);
    } else {
      (void)write_service(key, *active);
    }
  }
  return kept;
}

std::optional<std::uint32_t> SocketRegistry::generation_of(std::uint64_t cookie) const {
  for (const auto& [key, service] : services_)
    for (const auto& g : service.generations)
      for (const auto& w : g.workers)
        if (w.cookie == cookie) return g.number;
  return std::nullopt;
}

std::expected<ServiceKey, std::string> SocketRegistry::resolve(std::string_view name) const {
  std::vector<ServiceKey> matches;
  for (const auto& [key, service] : services_) {
    const std::string short_name = fmt::format("{}/{}", key.proto == IPPROTO_UDP ? "udp" : "tcp", key.port);
    if (key.to_string() == name) return key;
    if (short_name == name) matches.push_back(key);
  }
  if (matches.size() == 1) return matches.front();
  if (matches.empty()) return std::unexpected(fmt::format("no managed service {}", name));
  return std::unexpected(fmt::format("{} names {} services; give the full name, as `sockets` lists it", name,
                                     matches.size()));
}

}  // namespace mixlb
