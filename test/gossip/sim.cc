// The simulation's event loop and network model.
#include "sim.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace mixlb::gossip::sim {
namespace {

constexpr std::uint16_t kPort = 7946;
constexpr std::size_t kUdpIpHeaders = 28;  // IPv4 (20) + UDP (8)
constexpr std::size_t kTcpIpHeaders = 40;  // IPv4 (20) + TCP (20), per segment
constexpr std::size_t kTcpSegment = 1448;
constexpr std::size_t kStreamFraming = 4;  // the transport's length prefix

std::uint64_t stream_wire_bytes(std::size_t payload) {
  const std::size_t bytes = payload + kStreamFraming;
  return bytes + (bytes + kTcpSegment - 1) / kTcpSegment * kTcpIpHeaders;
}

}  // namespace

std::uint64_t test_seed(std::uint64_t fallback) {
  const char* env = std::getenv("MIXLB_GOSSIP_SEED");
  if (env == nullptr || *env == '\0') return fallback;
  if (std::string(env) == "random")
    return std::random_device{}() * 0x100000001ull ^ std::random_device{}();
  return std::strtoull(env, nullptr, 0);
}

double seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

Simulation::Simulation(std::string label, std::uint64_t seed)
    : label_(std::move(label)), rng_(seed) {
  std::fprintf(stderr, "[gossip sim] %s: seed %llu (replay with MIXLB_GOSSIP_SEED=%llu)\n",
               label_.c_str(), static_cast<unsigned long long>(seed),
               static_cast<unsigned long long>(seed));
  std::fflush(stderr);
}

Address Simulation::address(int index) const {
  const unsigned n = static_cast<unsigned>(index) + 1;
  return Address::v4(10, static_cast<std::uint8_t>(n >> 16), static_cast<std::uint8_t>(n >> 8),
                     static_cast<std::uint8_t>(n), kPort);
}

int Simulation::index_of(const Address& a) const {
  if (a.family != Address::Family::kV4 || a.ip[0] != 10 || a.port != kPort) return -1;
  const int n = (a.ip[1] << 16) | (a.ip[2] << 8) | a.ip[3];
  return n >= 1 && n <= size() ? n - 1 : -1;
}

int Simulation::add_node(const std::function<void(Config&)>& tweak,
                         std::optional<std::optional<Key>> key) {
  const int index = size();
  Config config = base_;
  config.name = name(index);
  config.address = address(index);
  if (tweak) tweak(config);
  const std::optional<Key> node_key = key ? *key : cluster_key_;
  std::optional<Keyring> keyring;
  if (node_key) keyring.emplace(kClusterName, *node_key);
  auto node = std::make_unique<Node>();
  node->swim = std::make_unique<Swim>(std::move(config), std::move(keyring), rng_(), now_);
  nodes_.push_back(std::move(node));
  after_input(index);
  return index;
}

void Simulation::join(int index, const std::vector<int>& seeds) {
  std::vector<Address> addresses;
  for (int seed : seeds) addresses.push_back(address(seed));
  node(index).join(addresses, now_);
  after_input(index);
}

void Simulation::input(int index, const std::function<void(Swim&)>& call) {
  call(node(index));
  after_input(index);
}

void Simulation::partition(const std::vector<int>& side) {
  for (auto& node : nodes_) node->group = 0;
  for (int index : side) nodes_[index]->group = 1;
}

void Simulation::heal() {
  for (auto& node : nodes_) node->group = 0;
}

void Simulation::crash(int index) { nodes_[index]->running = false; }

void Simulation::inject(const Address& from_address, int to, Bytes bytes) {
  push(Item{now_ + link_delay(to), 0, Kind::kDatagram, -1, to, 0, store(std::move(bytes)),
            from_address});
}

void Simulation::at(Duration when, std::function<void()> action) {
  actions_.push_back(std::move(action));
  push(Item{TimePoint{} + when, 0, Kind::kAction, -1, -1, 0, actions_.size() - 1, {}});
}

void Simulation::run_for(Duration d) {
  const TimePoint end = now_ + d;
  while (!heap_.empty() && heap_.top().at <= end) {
    Item item = heap_.top();
    heap_.pop();
    now_ = item.at;
    deliver(item);
  }
  now_ = end;
}

bool Simulation::run_until(const std::function<bool()>& done, Duration limit, Duration every) {
  const TimePoint deadline = now_ + limit;
  while (true) {
    if (done()) return true;
    if (now_ >= deadline) return false;
    run_for(std::min<Duration>(every, deadline - now_));
  }
}

bool Simulation::converged() const {
  std::size_t running = 0;
  for (const auto& node : nodes_) running += node->running ? 1 : 0;
  for (const auto& node : nodes_) {
    if (!node->running) continue;
    const auto counts = node->swim->state_counts();
    if (counts[static_cast<std::size_t>(MemberState::kAlive)] +
            counts[static_cast<std::size_t>(MemberState::kSuspect)] !=
        running) {
      return false;
    }
  }
  // The counts agree; now check names, once.
  for (const auto& node : nodes_) {
    if (!node->running) continue;
    for (int j = 0; j < size(); ++j) {
      if (!nodes_[j]->running) continue;
      const Member* m = node->swim->member(name(j));
      if (m == nullptr || (m->state != MemberState::kAlive && m->state != MemberState::kSuspect)) {
        return false;
      }
    }
  }
  return true;
}

void Simulation::push(Item item) {
  item.seq = next_seq_++;
  heap_.push(item);
}

std::size_t Simulation::store(Bytes bytes) {
  if (!free_payloads_.empty()) {
    const std::size_t slot = free_payloads_.back();
    free_payloads_.pop_back();
    payloads_[slot] = std::move(bytes);
    return slot;
  }
  payloads_.push_back(std::move(bytes));
  return payloads_.size() - 1;
}

Bytes Simulation::take(std::size_t slot) {
  Bytes bytes = std::move(payloads_[slot]);
  payloads_[slot] = Bytes{};
  free_payloads_.push_back(slot);
  return bytes;
}

bool Simulation::reachable(int from, int to) const {
  if (from < 0) return true;
  if (nodes_[from]->group != nodes_[to]->group) return false;
  return !cuts_.count({from, to});
}

Duration Simulation::link_delay(int to) {
  Duration d = delay_ + std::chrono::duration_cast<Duration>(jitter_ * uniform());
  const Duration lag = nodes_[to]->lag;
  if (lag > Duration::zero())
    d += lag + std::chrono::duration_cast<Duration>(lag * (uniform() / 2));
  return d;
}

void Simulation::after_input(int index) {
  Node& node = *nodes_[index];
  Swim& swim = *node.swim;
  if (swim.take_resolve_request() && resolve_seeds) swim.named_seeds_resolved(resolve_seeds(index), now_);
  for (auto& datagram : swim.take_datagrams()) {
    node.bytes_sent += datagram.bytes.size() + kUdpIpHeaders;
    const int to = index_of(datagram.to);
    if (to < 0 || !reachable(index, to)) continue;
    auto link = link_loss_.find({index, to});
    const double loss = link == link_loss_.end() ? loss_ : link->second;
    if (loss > 0 && uniform() < loss) continue;
    push(Item{now_ + link_delay(to), 0, Kind::kDatagram, index, to, 0,
              store(std::move(datagram.bytes)), address(index)});
  }
  for (auto& request : swim.take_stream_requests()) {
    node.bytes_sent += stream_wire_bytes(request.bytes.size());
    const int to = index_of(request.to);
    if (to < 0 || !reachable(index, to) || !nodes_[to]->running) {
      push(Item{now_ + connect_timeout_, 0, Kind::kStreamFail, to, index, request.id, 0, {}});
      continue;
    }
    // Connection set-up and the request: two trips.
    push(Item{now_ + link_delay(to) + link_delay(to), 0, Kind::kStreamRequest, index, to,
              request.id, store(std::move(request.bytes)), address(index)});
  }
  if (auto events = swim.take_events(); on_event) {
    for (const auto& event : events) on_event(index, event);
  }
  if (auto events = swim.take_key_events(); on_key_event) {
    for (const auto& event : events) on_key_event(index, event);
  }
  if (!node.running) return;
  const TimePoint next = std::max(now_, swim.next_deadline());
  if (next < node.wake) {
    node.wake = next;
    push(Item{next, 0, Kind::kWake, -1, index, 0, 0, {}});
  }
}

void Simulation::deliver(const Item& item) {
  switch (item.kind) {
    case Kind::kDatagram: {
      Bytes bytes = take(item.slot);
      if (!nodes_[item.to]->running) return;
      ++delivered_;
      node(item.to).on_datagram(item.from_address, bytes, now_);
      after_input(item.to);
      return;
    }
    case Kind::kWake: {
      Node& n = *nodes_[item.to];
      if (!n.running || item.at != n.wake) return;
      n.wake = TimePoint::max();
      n.swim->tick(now_);
      after_input(item.to);
      return;
    }
    case Kind::kStreamRequest: {
      Bytes bytes = take(item.slot);
      if (!nodes_[item.to]->running || !reachable(item.from, item.to)) {
        push(Item{
            now_ + connect_timeout_, 0, Kind::kStreamFail, item.to, item.from, item.id, 0, {}});
        return;
      }
      auto reply = node(item.to).on_stream(item.from_address, bytes, now_);
      after_input(item.to);
      if (!reply) {
        push(Item{now_ + link_delay(item.from),
                  0,
                  Kind::kStreamFail,
                  item.to,
                  item.from,
                  item.id,
                  0,
                  {}});
        return;
      }
      nodes_[item.to]->bytes_sent += stream_wire_bytes(reply->size());
      push(Item{now_ + link_delay(item.from), 0, Kind::kStreamReply, item.to, item.from, item.id,
                store(std::move(*reply)), address(item.to)});
      return;
    }
    case Kind::kStreamReply: {
      Bytes bytes = take(item.slot);
      if (!nodes_[item.to]->running) return;
      node(item.to).on_stream_reply(item.id, bytes, now_);
      after_input(item.to);
      return;
    }
    case Kind::kStreamFail: {
      if (!nodes_[item.to]->running) return;
      node(item.to).on_stream_failed(item.id, std::make_error_code(std::errc::connection_refused),
                                     now_);
      after_input(item.to);
      return;
    }
    case Kind::kAction:
      actions_[item.slot]();
      return;
  }
}

void start_cluster(Simulation& sim, int n, int seeds, Duration spread) {
  std::vector<int> seed_list;
  for (int i = 0; i < std::min(n, seeds); ++i) seed_list.push_back(sim.add_node());
  for (int seed : seed_list) sim.join(seed, seed_list);
  std::mt19937_64 rng(static_cast<std::uint64_t>(n) * 7919);
  std::vector<Duration> starts;
  for (int i = static_cast<int>(seed_list.size()); i < n; ++i) {
    starts.push_back(std::chrono::duration_cast<Duration>(
        spread * std::uniform_real_distribution<double>(0, 1)(rng)));
  }
  std::sort(starts.begin(), starts.end());
  for (Duration start : starts) {
    sim.at(sim.elapsed() + start, [&sim, seed_list] {
      const int index = sim.add_node();
      sim.join(index, seed_list);
    });
  }
}

DeathWatch::DeathWatch(Simulation& sim, int subject)
    : sim_(sim),
      subject_(subject),
      subject_name_(sim.name(subject)),
      since_(sim.now()),
      chained_(sim.on_event) {
  sim_.on_event = [this](int observer, const Event& event) {
    if (chained_) chained_(observer, event);
    const auto* e = std::get_if<MemberEvent>(&event);
    if (e == nullptr || e->member.name != subject_name_) return;
    if (e->kind != MemberEventKind::kDead && e->kind != MemberEventKind::kLeft) return;
    seen_.emplace(observer, sim_.now() - since_);
  };
}

DeathWatch::~DeathWatch() { sim_.on_event = chained_; }

bool DeathWatch::all_saw() const {
  for (int i = 0; i < sim_.size(); ++i) {
    if (i == subject_ || !sim_.running(i)) continue;
    if (!seen_.count(i)) return false;
  }
  return true;
}

KeyWatch::KeyWatch(Simulation& sim) : sim_(sim), chained_(sim.on_key_event) {
  sim_.on_key_event = [this](int observer, const KeyEvent& event) {
    if (chained_) chained_(observer, event);
    if (const auto* changed = std::get_if<KeyringChanged>(&event)) {
      changes_[observer].push_back(changed->keys);
    } else {
      const auto& result = std::get<KeyResult>(event);
      results_.emplace(std::pair{observer, result.id}, result);
    }
  };
}

KeyWatch::~KeyWatch() { sim_.on_key_event = chained_; }

std::optional<KeyResult> KeyWatch::request(int origin, KeyOp op, std::optional<Key> key,
                                           Duration limit) {
  std::expected<std::uint64_t, std::error_code> id = std::unexpected(std::error_code());
  sim_.input(origin, [&](Swim& node) { id = node.start_key_request(op, key, sim_.now()); });
  if (!id) throw std::runtime_error("key request refused: " + id.error().message());
  const std::pair<int, std::uint64_t> at{origin, *id};
  if (!sim_.run_until([&] { return results_.count(at) > 0; }, limit, 10ms)) return std::nullopt;
  return results_.at(at);
}

const std::vector<std::vector<Key>>& KeyWatch::changes(int node) const {
  static const std::vector<std::vector<Key>> kNone;
  auto it = changes_.find(node);
  return it == changes_.end() ? kNone : it->second;
}

const KeyAnswer* KeyWatch::answer(const KeyResult& result, const std::string& member) {
  for (const auto& a : result.answers) {
    if (a.member == member) return &a;
  }
  return nullptr;
}

}  // namespace mixlb::gossip::sim
