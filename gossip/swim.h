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
//   named_seeds_resolved(addresses, now)  take_resolve_request()
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
//     partition heals without an operator. Seeds given by name (DNS) are
//     resolved by the caller: at the start, and again at every re-join,
//     whose attempt then waits for the fresh addresses.
//   - Two additions of mixlb's, both sending only a member's newest state: a
//     stale suspicion or death claim is answered to its sender with the newer
//     alive, and a suspicion still held halfway to its minimum timeout is
//     spread again, so a member that missed a refutation learns of it in
//     time (docs/gossip.md has the measurements).
//
// Key requests (Serf's key queries: `serf keys`). One member, the origin,
// asks every member to list its keys, install a key, make one the primary,
// or remove one; each member applies the request to its own keyring once
// and answers the origin directly; the origin reports one KeyResult with
// every member's outcome. How it is built, and why:
//   - The origin applies the request to itself first, then spreads it like a
//     user event: each member that applies it passes it on to a few random
//     members every gossip interval, a bounded number of times. Requests are
//     deduplicated by (origin, id); a member keeps its answer for
//     event_dedup_window, so a copy never applies a request twice.
//   - Key-management messages travel in datagrams of their own. Copies of
//     a request are sealed as any packet is, under the sender's primary. An
//     answer is sealed under the member's primary and also under the request
//     key, the origin's primary when it started, which the origin still
//     holds: it opens at the origin whichever of the two has switched
//     primary since. The origin re-asks silent members under every key it
//     holds but a key being installed, so a member that shares any other key
//     with it is reached: a `use` of a key some member lacks reaches it
//     under the old key, and it answers "key is not installed" instead of
//     being cut off unheard; a member that missed an install and then a use
//     is brought back by installing again. Extra copies go under the keys
//     that can matter only, never under every key by default: a copy under
//     a key the receiver lacks is a drop it counts (kNoKeyAuthenticates),
//     and a rotation that goes well shows none. After a `remove`, the removed
//     key opens nothing here, and a member left with only that key hears no
//     more requests.
//   - The origin waits for every member that was alive or suspect when it
//     started (it stops waiting for one that dies), re-asks the silent ones
//     directly every key_request_retry (a member that already applied the
//     request answers again from what it kept), and gives up after
//     key_request_timeout: those members are reported kNoAnswer. Answers are
//     taken only for a pending request, only from a live member, once each.
//   - Lists and answers name keys by id (keyring.h: key_id); only an
//     install carries a key, and use and remove name theirs by id, so a key
//     reaches no member through a use, a removal or a listing.
//   - A request that fails at its origin is refused there, not spread: a
//     `use` of a key the origin does not hold (it would cut itself off), the
//     removal of its own primary, an install on its full ring. Removing a
//     key a member does not hold is not a failure there (memberlist's rule),
//     so a removal can be repeated after a partial one.
//   - One request at a time per origin: a second one while the first is
//     collecting answers is refused (kBusy), so an install cannot race the
//     use that depends on it.
// Key events (KeyringChanged, KeyResult) come out of take_key_events(),
// apart from take_events(): they carry key material, which should reach
// the code that keeps the keyring file and no consumer, or log, of
// membership events.
#include <array>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <utility>
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

// One name of the seeds given by name, as a resolution found it: the
// addresses in the transport's family (none when the name did not resolve,
// and then `error` says why).
struct SeedLookup {
  SeedName name;
  std::vector<Address> addresses;
  std::error_code error;
};

// The transport resolved the seeds given by name: at the start (`first`,
// and `joins` is how many join syncs it started through them, each ending
// in a kJoin SyncResult) or for a re-join round. Produced by the transport,
// never by the core.
struct SeedsResolved {
  std::vector<SeedLookup> lookups;
  std::size_t joins = 0;
  bool first = false;
  bool changed = false;  // the addresses differ from the previous resolution's
};

using Event = std::variant<MemberEvent, UserEventDelivery, SyncResult, SeedsResolved>;

// This node's keyring changed (a key request, its own or another member's,
// or change_key()): the keys it holds now, the primary first. Emitted only
// when the set or the primary did change.
struct KeyringChanged {
  std::vector<Key> keys;
};

enum class KeyOutcome : std::uint8_t {
  kOk,        // the member applied the request (or had nothing to do)
  kFailed,    // the member answered, and refused: `error` says why
  kNoAnswer,  // no answer: the member died meanwhile, or key_request_timeout passed
};
std::string_view to_string(KeyOutcome outcome);

// What the origin of a key request heard from one member.
struct KeyAnswer {
  std::string member;
  KeyOutcome outcome = KeyOutcome::kNoAnswer;
  // kFailed: Errc::kKeyNotInstalled (use), kKeyIsPrimary (remove) or
  // kKeyringFull (install).
  std::error_code error;
  // When it answered: the ids of the keys it holds after the request, its
  // primary's first.
  std::vector<KeyId> keys;
};

// The end of a key request this node started: one answer per member that
// was alive or suspect when it started, and per other member that answered
// meanwhile, by member name.
struct KeyResult {
  std::uint64_t id = 0;
  KeyOp op = KeyOp::kList;
  std::optional<KeyId> key;  // install, use, remove: the key's id
  std::vector<KeyAnswer> answers;
  Duration elapsed{};      // from the start to this result
  bool timed_out = false;  // key_request_timeout ended it, not the last answer

  std::size_t count(KeyOutcome outcome) const;
  // Every member answered, and every answer is kOk.
  bool ok() const;
};

using KeyEvent = std::variant<KeyringChanged, KeyResult>;

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
  std::uint64_t key_requests_started = 0;  // as their origin
  std::uint64_t key_requests_applied = 0;  // each once, this node's own included
  std::uint64_t key_answers_sent = 0;      // answers to other origins (first and again)
  std::uint64_t key_answers_received = 0;  // accepted by this node as origin
  std::uint64_t key_answers_ignored = 0;   // for no pending request, or from a non-member
  std::uint64_t event_burst_packets = 0;   // gossip packets beyond gossip_nodes per round (Config)
  std::uint64_t events_dropped = 0;        // user events refused or not relayed: max_queued_events
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
  // The addresses the seeds given by name resolve to now (the caller
  // resolves them: at the start, then each time take_resolve_request() asks).
  // They replace the previous resolution's, this node's own address left
  // out; a name that no longer resolves to an address stops being re-joined.
  // The first call joins through each address, as join() does, and returns
  // how many joins it started (each ends in a kJoin SyncResult); later calls
  // make the re-join attempt that was waiting for them and return 0. From
  // the first call on, every re-join round asks for a fresh resolution.
  std::size_t named_seeds_resolved(std::span<const Address> addresses, TimePoint now);
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

  // Starts a key request as its origin ("Key requests" above) and returns
  // its id; its KeyResult comes out of take_key_events(). `key` is required
  // for install, use and remove and refused for list (kBadValue). Refused
  // before anything is sent or changed: kNoKeyring, kLeft, kBusy (this
  // node's previous request has not ended), and what this node's own part
  // fails with: kKeyNotInstalled (use of a key it does not hold: its own
  // traffic would stay under a key the others stop sealing with),
  // kKeyIsPrimary (removal of its own primary), kKeyringFull (install on a
  // ring of kMaxKeys keys).
  std::expected<std::uint64_t, std::error_code> start_key_request(KeyOp op,
                                                                  const std::optional<Key>& key,
                                                                  TimePoint now);
  // Changes this node's keyring alone, as a key request would here:
  // install, use or remove (kBadValue for list); kNoKeyring without one.
  // For a rotation by hand, one node at a time.
  std::error_code change_key(KeyOp op, const Key& key, TimePoint now);

  // --- outputs ---

  std::vector<Datagram> take_datagrams();
  std::vector<StreamRequest> take_stream_requests();
  std::vector<Event> take_events();
  std::vector<KeyEvent> take_key_events();
  // True once per re-join round when seeds are given by name: resolve them
  // and answer with named_seeds_resolved().
  bool take_resolve_request() { return std::exchange(resolve_requested_, false); }
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
  // The keyring (nullptr in plaintext mode); it changes through
  // start_key_request() and change_key() only, which report each change.
  const Keyring* keyring() const { return keyring_ ? &*keyring_ : nullptr; }

 private:
  enum class TimerKind : std::uint8_t {
    kProbe,
    kProbeTimeout,
    kProbeEnd,
    kForward,
    kSuspicion,
    kSuspicionRecheck,
    kGossip,
    kEventRound,  // a gossip round started by a new user event of this node
    kPushPull,
    kRejoin,
    kStream,
    kKeyRetry,
    kKeyDeadline,
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
  // A key request this node applied, and the answer it gave (a plaintext
  // datagram), kept for event_dedup_window to answer a re-ask with.
  struct AppliedKeyRequest {
    Bytes answer;
    Address answer_to;
    KeyId request_key{};
  };
  // A key request this node passes on, as a plaintext datagram, and to how
  // many members it has gone so far.
  struct KeyForward {
    Bytes packet;
    int sent = 0;
  };
  // The key request this node started and is collecting answers for.
  struct PendingKeyRequest {
    std::uint64_t id = 0;
    KeyOp op = KeyOp::kList;
    std::optional<KeyId> key;
    TimePoint started{};
    TimePoint deadline{};
    Bytes reask;  // the request with the re-ask flag, as a plaintext datagram
    std::set<std::string, std::less<>> expected;            // live when it started
    std::map<std::string, KeyAnswer, std::less<>> answers;  // those that answered
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

  // Key requests.
  void on_key_request(const KeyRequest& request, TimePoint now);
  void on_key_response(const KeyResponse& response, TimePoint now);
  KeyStatus apply_key_op(KeyOp op, ByteView key);
  Bytes key_answer(std::uint64_t id, KeyStatus status) const;
  void remember_key_request(const std::string& key, AppliedKeyRequest applied, TimePoint now);
  void forward_key_request(const KeyRequest& request, TimePoint now);
  void key_retry(std::uint64_t id, TimePoint now);
  // Ends the request when no live expected member is still silent, or
  // `deadline` says time is up; returns whether it ended.
  bool finish_key_request(std::uint64_t id, TimePoint now, bool deadline);
  void refute(Entry& self, std::uint32_t accused, TimePoint now);
  void suspicion_expired(const std::string& name, std::uint64_t timer, TimePoint now);
  void suspicion_recheck(const std::string& name, std::uint64_t started, TimePoint now);

  // Sending.
  void send(const Address& to, std::initializer_list<Message> primary);
  // Returns the bytes of user events it added; `events_since` as in
  // BroadcastQueue::fill (0: this packet).
  std::size_t piggyback(Bytes& plain, std::uint64_t events_since = 0);
  void emit(const Address& to, const Bytes& plain);
  // Key management's datagrams: one per envelope, each made by the keyring
  // (seal_also, seal_each: see "Key requests" above).
  void emit_sealed(const Address& to, std::vector<Bytes> envelopes);
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
  bool event_round_armed_ = false;
  TimePoint last_round_{};
  std::uint64_t packets_filled_ = 0;
  std::uint64_t next_event_seq_;
  std::unordered_map<std::string, TimePoint> seen_events_;
  std::queue<std::pair<TimePoint, std::string>> seen_order_;

  std::map<std::string, AppliedKeyRequest> applied_key_requests_;
  std::queue<std::pair<TimePoint, std::string>> applied_key_order_;
  std::vector<KeyForward> key_forwards_;
  std::optional<PendingKeyRequest> key_request_;  // one at a time
  std::uint64_t next_key_request_;

  std::vector<Address> seeds_;
  std::vector<Address> named_seeds_;  // the last resolution of the seeds given by name
  bool has_named_seeds_ = false;
  bool resolve_requested_ = false;
  std::uint64_t next_stream_id_ = 1;
  std::map<std::uint64_t, PendingStream> pending_streams_;

  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  std::uint64_t next_timer_id_ = 1;

  bool left_ = false;
  std::vector<Datagram> datagrams_;
  std::vector<StreamRequest> stream_requests_;
  std::vector<Event> events_;
  std::vector<KeyEvent> key_events_;
  Stats stats_;
};

}  // namespace mixlb::gossip
