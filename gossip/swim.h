#pragma once
// The SWIM protocol core with the Lifeguard refinements: membership and
// failure detection for one node, as a deterministic state machine.
//
// Sans-IO. The core never touches a socket, a clock or an event loop: the
// caller hands it what arrived and the current time, and collects what it
// must send, when it wants to be woken next, and what happened.
//
//   inputs                                outputs (take_*())
//   ------                                -------
//   join(seeds, now)                      datagrams to send      (UDP)
//   on_datagram(from, bytes, now)         stream requests        (TCP push-pull)
//   on_stream(from, bytes, now) -> reply  events: member joined/updated/
//   on_stream_reply / _failed(id, ...)      suspect/alive/dead/left, user
//   tick(now)  when now >= next_deadline()  events, push-pull results
//   set_metadata, send_event, leave       next_deadline()
//
// Given the same inputs, times and seed it makes the same choices, which is
// what lets test/gossip run thousands of them on a simulated network. It is
// single-threaded by design; the transport owns the thread and the locking.
//
// The protocol (Das et al. 2002; Dadgar et al. 2018; memberlist's choices
// where the papers leave room):
//   - Failure detection: one member per (health-scaled) probe interval, in a
//     shuffled round-robin order; a direct ping, then after probe_timeout
//     ping-reqs through `indirect_checks` random members, which answer a nack
//     when the target stays silent, and one more direct ping. No ack by the
//     end of the interval: the target becomes suspect.
//   - Suspicion, not death: a suspect is declared dead when its suspicion
//     timer runs out (lifeguard.h: long at first, shorter with each
//     independent accuser). Incarnation numbers order the claims about a
//     member; only the member itself raises its incarnation, to refute a
//     suspicion or death, or to publish new metadata.
//   - Buddy system: a suspect that we probe gets the suspicion in the same
//     packet as the ping, so it can refute at once.
//   - Dissemination: updates ride on every packet we send (separate, bounded
//     shares for membership updates and user events), each at most
//     λ·log10(n) times, and pending updates go to a few random members every
//     gossip interval. Full state is exchanged by push-pull over a stream on
//     join, periodically, and for updates too large for a packet.
//   - Precedence of updates about a member with incarnation i:
//       alive(j)   wins over anything with i < j (and brings back dead/left)
//       suspect(j) wins over alive(i) for i <= j
//       dead(j), leave(j) win over alive and suspect for i <= j
//     Remote push-pull state that says "dead" is taken as a suspicion: the
//     accused gets the chance to refute it.
//   - Leave: the member announces it and stops probing; others mark it left.
//   - Seeds that are not alive members are re-joined periodically, so a
//     partition heals without an operator.
//   - Two additions of mixlb's, both sending only a member's newest state: a
//     stale suspicion or death claim is answered to its sender with the newer
//     alive, and a suspicion still held halfway to its minimum timeout is
//     spread again, so a member that missed a refutation learns of it in
//     time (docs/gossip.md has the measurements).
#include <array>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

#include "broadcast_queue.h"
#include "codec.h"
#include "config.h"
#include "keyring.h"
#include "lifeguard.h"

namespace mixlb::gossip {

struct Member {
  std::string name;
  Address address;
  Bytes metadata;
  std::uint32_t incarnation = 0;
  MemberState state = MemberState::kAlive;
  TimePoint state_changed{};
};

enum class MemberEventKind {
  kJoined,   // a member we did not know, or knew as dead or left, is alive
  kUpdated,  // an alive member's metadata or address changed
  kSuspect,  // a member is suspected of having failed
  kAlive,    // a suspect refuted its suspicion
  kDead,     // a member was declared failed
  kLeft,     // a member left on purpose
};
std::string_view to_string(MemberEventKind kind);

struct MemberEvent {
  MemberEventKind kind;
  Member member;  // the member as it is after the change
};

// A user event from another member, delivered once.
struct UserEventDelivery {
  std::string origin;
  std::uint64_t seq = 0;
  Bytes payload;
};

enum class SyncPurpose { kJoin, kPeriodic, kRejoin, kLargeUpdate };
std::string_view to_string(SyncPurpose purpose);

// A push-pull this node started has finished; error is empty on success.
struct SyncResult {
  Address peer;
  SyncPurpose purpose = SyncPurpose::kJoin;
  std::error_code error;
};

using Event = std::variant<MemberEvent, UserEventDelivery, SyncResult>;

struct Datagram {
  Address to;
  Bytes bytes;
};

// A push-pull for the transport to carry: connect to `to`, send `bytes` as
// one stream message, read one stream message back and hand it to
// on_stream_reply(id, ...) — or report on_stream_failed(id, ...). Requests
// not answered within config.stream_timeout count as failed.
struct StreamRequest {
  std::uint64_t id = 0;
  Address to;
  Bytes bytes;
  SyncPurpose purpose = SyncPurpose::kJoin;
};

enum class DropReason : std::uint8_t {
  kNoKeyAuthenticates,    // wrong key, another cluster's name, or tampered
  kNotEncrypted,          // plaintext at a node that requires encryption
  kUnexpectedEncryption,  // an envelope at a node without a keyring
  kMalformed,             // the codec refused it
  kMisdirected,           // a ping for another member (a reused address)
  kCount,
};
std::string_view to_string(DropReason reason);

struct Stats {
  std::uint64_t datagrams_sent = 0;
  std::uint64_t datagrams_received = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t streams_started = 0;
  std::uint64_t streams_served = 0;
  std::uint64_t probes = 0;
  std::uint64_t probes_failed = 0;      // no ack by the end of the interval
  std::uint64_t indirect_probes = 0;    // probes that needed ping-reqs
  std::uint64_t nacks_received = 0;     // for our own probes
  std::uint64_t suspicions_raised = 0;  // members this node itself suspected
  std::uint64_t deaths_declared = 0;    // suspicion timers of this node that ran out
  std::uint64_t refutations = 0;
  std::uint64_t address_conflicts = 0;  // alive claims for a name at another address
  std::uint64_t corrections = 0;        // stale suspicions answered with a newer alive
  std::uint64_t rechecks = 0;           // suspicions spread again halfway to their minimum
  std::array<std::uint64_t, static_cast<std::size_t>(DropReason::kCount)> drops{};
  std::string last_drop;  // "10.0.0.9:7946: no installed key authenticates the packet"
};

class Swim {
 public:
  // Validates the configuration (std::invalid_argument on error). Without a
  // keyring, packets travel in plaintext — for tests and closed labs only.
  Swim(Config config, std::optional<Keyring> keyring, std::uint64_t seed, TimePoint now);

  // --- inputs ---

  // Starts push-pull with each seed (our own address is skipped) and keeps
  // the list for periodic re-joins.
  void join(std::span<const Address> seeds, TimePoint now);
  void on_datagram(const Address& from, ByteView bytes, TimePoint now);
  // Serves a push-pull: merges the peer's state, returns ours (sealed) for the
  // transport to send back, or the reason the request was refused.
  std::expected<Bytes, std::error_code> on_stream(const Address& from, ByteView request,
                                                  TimePoint now);
  void on_stream_reply(std::uint64_t id, ByteView reply, TimePoint now);
  void on_stream_failed(std::uint64_t id, std::error_code error, TimePoint now);
  // Runs every timer due at `now`.
  void tick(TimePoint now);

  // Publishes new metadata (bumps our incarnation). kTooLarge over
  // max_metadata_size, kLeft after leave().
  std::error_code set_metadata(Bytes metadata, TimePoint now);
  // Sends a user event to every other member; returns its sequence number.
  std::expected<std::uint64_t, std::error_code> send_event(ByteView payload, TimePoint now);
  // Announces that we leave, and stops probing. Final: a node that left
  // does not come back; start a new Swim to rejoin.
  void leave(TimePoint now);

  // --- outputs ---

  std::vector<Datagram> take_datagrams();
  std::vector<StreamRequest> take_stream_requests();
  std::vector<Event> take_events();
  // When tick() wants to run next (TimePoint::max() when nothing is armed).
  TimePoint next_deadline() const;

  // --- state ---

  const Config& config() const { return config_; }
  const Member& self() const;
  const Member* member(std::string_view name) const;
  // Every member we know, ourselves included (dead and left ones until
  // gossip_to_the_dead has passed).
  std::vector<Member> members() const;
  // Members alive or suspect, ourselves included.
  std::size_t live_members() const;
  // How many members we hold in each state, indexed by MemberState.
  std::array<std::size_t, 4> state_counts() const;
  std::size_t known_members() const { return members_.size(); }
  bool has_left() const { return left_; }
  int health_score() const { return awareness_.score(); }
  const Stats& stats() const { return stats_; }
  // The keyring, for rotation (nullptr in plaintext mode).
  Keyring* keyring() { return keyring_ ? &*keyring_ : nullptr; }

 private:
  enum class TimerKind : std::uint8_t {
    kProbe,
    kProbeTimeout,
    kProbeEnd,
    kForward,
    kSuspicion,
    kSuspicionRecheck,
    kGossip,
    kPushPull,
    kRejoin,
    kStream,
  };
  struct Timer {
    TimePoint at;
    std::uint64_t id;
    TimerKind kind;
    std::uint64_t arg;
    std::string name;
    friend bool operator>(const Timer& a, const Timer& b) {
      return a.at != b.at ? a.at > b.at : a.id > b.id;
    }
  };
  struct Entry {
    Member member;
    std::unique_ptr<Suspicion> suspicion;
    std::uint64_t suspicion_timer = 0;
  };
  struct Probe {
    bool active = false;
    std::uint32_t seq = 0;
    std::string target;
    std::uint32_t incarnation = 0;
    bool acked = false;
    int expected_nacks = 0;
    int nacks = 0;
  };
  struct Forward {
    Address requester;
    std::uint32_t seq = 0;
    bool want_nack = false;
  };
  struct PendingStream {
    Address peer;
    SyncPurpose purpose;
  };

  std::uint64_t schedule(TimePoint at, TimerKind kind, std::uint64_t arg = 0,
                         std::string name = {});
  void fire(const Timer& timer, TimePoint now);

  // Probing.
  void start_probe(TimePoint now);
  Entry* next_probe_target(TimePoint now);
  void reset_probe_order(TimePoint now);
  void probe_timeout(std::uint32_t seq, TimePoint now);
  void probe_end(std::uint32_t seq, TimePoint now);

  // Messages.
  void handle(const Address& from, const Message& message, TimePoint now);
  void on_alive(std::uint32_t incarnation, std::string_view name, const Address& address,
                ByteView metadata, TimePoint now);
  // `sender` is where a datagram carrying the claim came from (nullptr for
  // push-pull state and for our own conclusions).
  void on_suspect(std::uint32_t incarnation, std::string_view name, std::string_view from,
                  TimePoint now, const Address* sender = nullptr);
  void on_dead(std::uint32_t incarnation, std::string_view name, std::string_view from, bool leave,
               TimePoint now, const Address* sender = nullptr);
  void correct(const Entry& entry, const Address* sender, TimePoint now);
  void on_user_event(std::string_view origin, std::uint64_t seq, ByteView payload, TimePoint now);
  void refute(Entry& self, std::uint32_t accused, TimePoint now);
  void suspicion_expired(const std::string& name, std::uint64_t timer, TimePoint now);
  void suspicion_recheck(const std::string& name, std::uint64_t started, TimePoint now);

  // Sending.
  void send(const Address& to, std::initializer_list<Message> primary);
  void piggyback(Bytes& plain);
  void emit(const Address& to, const Bytes& plain);
  void queue_update(const std::string& name, const Message& update, TimePoint now);
  void remember_event(const std::string& key, TimePoint now);
  void arm_gossip(TimePoint now);
  void gossip(TimePoint now);

  // State sync.
  Bytes local_state(bool join);
  void start_sync(const Address& to, SyncPurpose purpose, TimePoint now);
  void merge(const PushPull& remote, TimePoint now);
  std::expected<Bytes, std::error_code> open(const Address& from, ByteView bytes);
  void push_pull(TimePoint now);
  void rejoin(TimePoint now);

  Entry* find(std::string_view name);
  const Entry* find(std::string_view name) const;
  Entry& add_member(std::string_view name, const Address& address);
  Entry& self_entry() { return *find(config_.name); }
  std::vector<Entry*> random_members(int k, const std::function<bool(const Entry&)>& wanted);
  std::size_t random_below(std::size_t n);
  void member_event(MemberEventKind kind, const Member& member);
  void drop(DropReason reason, const Address& from, const std::string& detail);
  std::size_t packet_room() const;

  Config config_;
  std::optional<Keyring> keyring_;
  std::mt19937_64 rng_;
  Awareness awareness_;

  // Hashes std::string and std::string_view alike, so lookups by a name
  // decoded from a packet need no copy.
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view name) const noexcept {
      return std::hash<std::string_view>{}(name);
    }
  };

  std::vector<Entry> members_;  // the probe order; ourselves included
  std::unordered_map<std::string, std::size_t, NameHash, std::equal_to<>> index_;
  std::size_t probe_index_ = 0;
  Probe probe_;
  std::uint32_t next_seq_;
  std::unordered_map<std::uint32_t, Forward> forwards_;

  BroadcastQueue updates_;
  BroadcastQueue user_events_;
  bool gossip_armed_ = false;
  std::uint64_t packets_filled_ = 0;
  std::uint64_t next_event_seq_;
  std::unordered_map<std::string, TimePoint> seen_events_;
  std::queue<std::pair<TimePoint, std::string>> seen_order_;

  std::vector<Address> seeds_;
  std::uint64_t next_stream_id_ = 1;
  std::map<std::uint64_t, PendingStream> pending_streams_;

  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  std::uint64_t next_timer_id_ = 1;

  bool left_ = false;
  std::vector<Datagram> datagrams_;
  std::vector<StreamRequest> stream_requests_;
  std::vector<Event> events_;
  Stats stats_;
};

}  // namespace mixlb::gossip
