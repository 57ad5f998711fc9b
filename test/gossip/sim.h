#pragma once
// A deterministic simulation of many gossip nodes on a fake network, driven
// by a virtual clock — tarantool's SWIM test harness, for mixlb's core.
//
// Every Swim core runs in this one process. The simulation owns the only
// clock: an event heap of packet deliveries, stream hand-offs, node wake-ups
// and scripted actions, popped in (time, sequence) order, so a virtual hour
// of a thousand nodes takes seconds and the same seed replays the same run
// exactly. The network between nodes can lose packets (everywhere or per
// link), delay them with jitter, cut a link one way, split the nodes into
// partitions, and make a node slow: everything sent to it is processed late.
// A crashed node stops: its timers never fire and what is sent to it is lost.
//
// The seed is printed when a simulation starts; MIXLB_GOSSIP_SEED=N replays
// a run (see test_seed()).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "swim.h"

namespace mixlb::gossip::sim {

// The seed for a scenario: MIXLB_GOSSIP_SEED when set, else `fallback`.
std::uint64_t test_seed(std::uint64_t fallback);

// Virtual time since the start of the simulation, in seconds.
double seconds(Duration d);

class Simulation {
 public:
  // `label` names the scenario in the printed seed line.
  Simulation(std::string label, std::uint64_t seed);

  // The configuration every node starts from; name and address are set per
  // node. Change it before adding nodes.
  Config& base_config() { return base_; }
  // Seal every packet with a keyring of this key (all nodes), or plaintext.
  void use_key(std::optional<Key> key) { cluster_key_ = key; }
  static constexpr const char* kClusterName = "mixlb-sim";

  // Creates node "node-<index>" now; `tweak` may adjust its configuration,
  // `key` overrides the cluster key for this node alone. Returns its index.
  int add_node(const std::function<void(Config&)>& tweak = {},
               std::optional<std::optional<Key>> key = std::nullopt);
  void join(int node, const std::vector<int>& seeds);
  // Makes a call of the test's on a node now (send_event, change_key,
  // start_key_request, ...) and hands out what it queued at once, as after
  // any input, instead of at the node's next wake-up.
  void input(int node, const std::function<void(Swim&)>& call);

  Swim& node(int index) { return *nodes_[index]->swim; }
  std::string name(int index) const { return "node-" + std::to_string(index); }
  Address address(int index) const;
  int size() const { return static_cast<int>(nodes_.size()); }
  bool running(int index) const { return nodes_[index]->running; }

  // --- the network ---
  void set_loss(double loss) { loss_ = loss; }
  void set_link_loss(int from, int to, double loss) { link_loss_[{from, to}] = loss; }
  void set_delay(Duration base, Duration jitter) {
    delay_ = base;
    jitter_ = jitter;
  }
  void cut(int from, int to) { cuts_.insert({from, to}); }
  void uncut(int from, int to) { cuts_.erase({from, to}); }
  // Nodes in `side` reach each other and no one else, and the rest the same.
  void partition(const std::vector<int>& side);
  void heal();
  // Everything sent to `index` is processed `lag` late (plus up to lag/2).
  void set_slow(int index, Duration lag) { nodes_[index]->lag = lag; }
  // The node stops for good, as a process killed with SIGKILL.
  void crash(int index);
  // Sends raw bytes as if from `from_address` (an intruder, a replay).
  void inject(const Address& from_address, int to, Bytes bytes);

  // --- time ---
  TimePoint now() const { return now_; }
  Duration elapsed() const { return now_ - TimePoint{}; }
  void at(Duration when, std::function<void()> action);
  void run_for(Duration d);
  // Runs until `done` holds (checked every `every`) or `limit` passes;
  // returns whether it held.
  bool run_until(const std::function<bool()>& done, Duration limit, Duration every = 100ms);

  // --- observation ---
  // The seeds given by name: when a node asks for them (take_resolve_request,
  // once per re-join round after its first named_seeds_resolved), this
  // answers at once with their addresses now.
  std::function<std::vector<Address>(int node)> resolve_seeds;
  // Called for every event any running node reports, with the time.
  std::function<void(int observer, const Event& event)> on_event;
  // The same for key events (keyring changes, key request results).
  std::function<void(int observer, const KeyEvent& event)> on_key_event;
  // Every running node holds exactly the running nodes as live members
  // (alive, or suspect: under loss some suspicion is always being refuted).
  bool converged() const;
  // Bytes each node has put on the wire (datagrams with IPv4/UDP headers,
  // streams with framing and IPv4/TCP headers).
  std::uint64_t bytes_sent(int index) const { return nodes_[index]->bytes_sent; }
  std::uint64_t datagrams_delivered() const { return delivered_; }

 private:
  struct Node {
    std::unique_ptr<Swim> swim;
    bool running = true;
    Duration lag{};
    TimePoint wake = TimePoint::max();
    std::uint64_t bytes_sent = 0;
    int group = 0;
  };
  enum class Kind : std::uint8_t {
    kDatagram,
    kWake,
    kStreamRequest,
    kStreamReply,
    kStreamFail,
    kAction
  };
  struct Item {
    TimePoint at;
    std::uint64_t seq;
    Kind kind;
    int from;
    int to;
    std::uint64_t id;
    std::size_t slot;  // payload slot (bytes or action)
    Address from_address;
    friend bool operator>(const Item& a, const Item& b) {
      return a.at != b.at ? a.at > b.at : a.seq > b.seq;
    }
  };

  void push(Item item);
  std::size_t store(Bytes bytes);
  Bytes take(std::size_t slot);
  int index_of(const Address& address) const;
  bool reachable(int from, int to) const;
  Duration link_delay(int to);
  void after_input(int index);
  void deliver(const Item& item);
  double uniform() { return std::uniform_real_distribution<double>(0, 1)(rng_); }

  std::string label_;
  std::mt19937_64 rng_;
  Config base_;
  std::optional<Key> cluster_key_;
  std::vector<std::unique_ptr<Node>> nodes_;
  TimePoint now_{};
  std::uint64_t next_seq_ = 0;
  std::priority_queue<Item, std::vector<Item>, std::greater<>> heap_;
  std::vector<Bytes> payloads_;
  std::vector<std::size_t> free_payloads_;
  std::vector<std::function<void()>> actions_;
  double loss_ = 0;
  std::map<std::pair<int, int>, double> link_loss_;
  std::set<std::pair<int, int>> cuts_;
  Duration delay_ = 500us;
  Duration jitter_ = 1500us;
  Duration connect_timeout_ = 2s;
  std::uint64_t delivered_ = 0;
};

// Starts `n` nodes the way a fleet comes up: nodes 0..seeds-1 at once, each
// joining the other seeds, and every other node at a random moment within
// `spread`, joining through all the seeds.
void start_cluster(Simulation& sim, int n, int seeds, Duration spread);

// Times at which running nodes first mark `subject` dead (or left), from the
// moment of `since`; one entry per observer that did.
class DeathWatch {
 public:
  DeathWatch(Simulation& sim, int subject);
  ~DeathWatch();
  DeathWatch(const DeathWatch&) = delete;
  DeathWatch& operator=(const DeathWatch&) = delete;

  // Running observers (other than the subject) that have marked it dead.
  bool all_saw() const;
  const std::map<int, Duration>& seen() const { return seen_; }

 private:
  Simulation& sim_;
  int subject_;
  std::string subject_name_;
  TimePoint since_;
  std::map<int, Duration> seen_;
  std::function<void(int, const Event&)> chained_;
};

// The key events of every node: the keyrings each reported, and the results
// of key requests. Chains the simulation's on_key_event while it lives.
class KeyWatch {
 public:
  explicit KeyWatch(Simulation& sim);
  ~KeyWatch();
  KeyWatch(const KeyWatch&) = delete;
  KeyWatch& operator=(const KeyWatch&) = delete;

  // Starts a key request at `origin` and runs the simulation until its
  // result comes (or `limit` passes: nullopt). A refusal fails the test.
  std::optional<KeyResult> request(int origin, KeyOp op, std::optional<Key> key,
                                   Duration limit = 60s);

  // Every KeyringChanged a node reported, in order.
  const std::vector<std::vector<Key>>& changes(int node) const;
  // The answer of `member` in `result`; nullptr when it is not listed.
  static const KeyAnswer* answer(const KeyResult& result, const std::string& member);

 private:
  Simulation& sim_;
  std::map<int, std::vector<std::vector<Key>>> changes_;
  std::map<std::pair<int, std::uint64_t>, KeyResult> results_;
  std::function<void(int, const KeyEvent&)> chained_;
};

}  // namespace mixlb::gossip::sim
