// The SWIM + Lifeguard state machine. Timers live in one heap of deadlines;
// a timer that has become pointless (an ack arrived, a suspicion was
// refuted) is not removed but recognised as stale when it fires, which keeps
// every path that changes state free of timer bookkeeping.
#include "swim.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

#include "error.h"

namespace mixlb::gossip {
namespace {

std::string event_key(std::string_view origin, std::uint64_t seq) {
  std::string key(origin);
  key.push_back('\0');
  for (int shift = 56; shift >= 0; shift -= 8) key.push_back(static_cast<char>(seq >> shift));
  return key;
}

Bytes framed(const Message& message) {
  Bytes out;
  out.reserve(encoded_size(message));
  if (append_message(out, message)) return {};
  return out;
}

// A datagram's plaintext holding one message alone.
Bytes alone(const Message& message) {
  Bytes out{kWireVersion};
  if (append_message(out, message)) return {};
  return out;
}

bool is_live(MemberState state) {
  return state == MemberState::kAlive || state == MemberState::kSuspect;
}

std::error_code error_of(KeyStatus status) {
  switch (status) {
    case KeyStatus::kOk:
      return {};
    case KeyStatus::kKeyNotInstalled:
      return Errc::kKeyNotInstalled;
    case KeyStatus::kKeyIsPrimary:
      return Errc::kKeyIsPrimary;
    case KeyStatus::kKeyringFull:
      return Errc::kKeyringFull;
  }
  return Errc::kBadValue;
}

// The ids of `keys`, back to back, as an answer lists them.
Bytes ids_of(std::span<const Key> keys) {
  Bytes ids;
  ids.reserve(keys.size() * kKeyIdSize);
  for (const auto& key : keys) {
    const KeyId id = key_id(key);
    ids.insert(ids.end(), id.begin(), id.end());
  }
  return ids;
}

// What the origin records of one member's answer (`ids` as ids_of makes them).
KeyAnswer answer_of(std::string_view member, KeyStatus status, ByteView ids) {
  KeyAnswer answer{std::string(member),
                   status == KeyStatus::kOk ? KeyOutcome::kOk : KeyOutcome::kFailed,
                   error_of(status),
                   {}};
  for (std::size_t at = 0; at + kKeyIdSize <= ids.size(); at += kKeyIdSize) {
    KeyId id{};
    std::copy_n(ids.begin() + static_cast<std::ptrdiff_t>(at), kKeyIdSize, id.begin());
    answer.keys.push_back(id);
  }
  return answer;
}

}  // namespace

std::string_view to_string(MemberEventKind kind) {
  switch (kind) {
    case MemberEventKind::kJoined:
      return "joined";
    case MemberEventKind::kUpdated:
      return "updated";
    case MemberEventKind::kSuspect:
      return "suspect";
    case MemberEventKind::kAlive:
      return "alive";
    case MemberEventKind::kDead:
      return "dead";
    case MemberEventKind::kLeft:
      return "left";
  }
  return "unknown";
}

std::string_view to_string(SyncPurpose purpose) {
  switch (purpose) {
    case SyncPurpose::kJoin:
      return "join";
    case SyncPurpose::kPeriodic:
      return "periodic";
    case SyncPurpose::kRejoin:
      return "rejoin";
    case SyncPurpose::kLargeUpdate:
      return "large update";
  }
  return "unknown";
}

std::string_view to_string(KeyOutcome outcome) {
  switch (outcome) {
    case KeyOutcome::kOk:
      return "ok";
    case KeyOutcome::kFailed:
      return "failed";
    case KeyOutcome::kNoAnswer:
      return "no answer";
  }
  return "unknown";
}

std::size_t KeyResult::count(KeyOutcome outcome) const {
  return static_cast<std::size_t>(std::count_if(
      answers.begin(), answers.end(), [&](const KeyAnswer& a) { return a.outcome == outcome; }));
}

bool KeyResult::ok() const { return count(KeyOutcome::kOk) == answers.size(); }

std::string_view to_string(DropReason reason) {
  switch (reason) {
    case DropReason::kNoKeyAuthenticates:
      return "no installed key authenticates the packet";
    case DropReason::kNotEncrypted:
      return "packet is not encrypted";
    case DropReason::kUnexpectedEncryption:
      return "packet is encrypted but this node has no keyring";
    case DropReason::kMalformed:
      return "malformed";
    case DropReason::kMisdirected:
      return "ping for another member";
    case DropReason::kCount:
      break;
  }
  return "unknown";
}

Swim::Swim(Config config, std::optional<Keyring> keyring, std::uint64_t seed, TimePoint now)
    : config_(std::move(config)),
      keyring_(std::move(keyring)),
      rng_(seed),
      awareness_(config_.awareness_max_multiplier) {
  validate(config_);
  next_seq_ = static_cast<std::uint32_t>(rng_());
  // Event sequence numbers start at a random point, so a restarted origin's
  // events are not mistaken for copies of its earlier ones.
  next_event_seq_ = rng_() >> 1;
  // Key request ids start at a random point for the same reason. They are
  // a namespace of their own, so the events' random start serves, and the
  // random choices that follow are the same as before key requests existed.
  next_key_request_ = next_event_seq_;

  Entry& self = add_member(config_.name, config_.address);
  self.member.metadata = config_.metadata;
  self.member.state = MemberState::kAlive;
  self.member.state_changed = now;
  queue_update(config_.name, Alive{0, config_.name, config_.address, self.member.metadata}, now);

  // Staggered starts, as memberlist does, so nodes started together do not
  // probe and sync in lockstep.
  schedule(now + Duration(random_below(config_.probe_interval.count())), TimerKind::kProbe);
  schedule(now + Duration(random_below(config_.push_pull_interval.count())), TimerKind::kPushPull);
  schedule(now + config_.rejoin_interval, TimerKind::kRejoin);
}

// ---------------------------------------------------------------- inputs

void Swim::join(std::span<const Address> seeds, TimePoint now) {
  for (const auto& seed : seeds) {
    if (seed == config_.address) continue;
    if (std::find(seeds_.begin(), seeds_.end(), seed) == seeds_.end()) seeds_.push_back(seed);
    if (!left_) start_sync(seed, SyncPurpose::kJoin, now);
  }
}

std::size_t Swim::named_seeds_resolved(std::span<const Address> addresses, TimePoint now) {
  named_seeds_.clear();
  for (const auto& a : addresses) {
    if (a != config_.address &&
        std::find(named_seeds_.begin(), named_seeds_.end(), a) == named_seeds_.end()) {
      named_seeds_.push_back(a);
    }
  }
  if (std::exchange(has_named_seeds_, true)) {
    if (!left_) rejoin(now);
    return 0;
  }
  if (left_) return 0;
  for (const auto& seed : named_seeds_) start_sync(seed, SyncPurpose::kJoin, now);
  return named_seeds_.size();
}

void Swim::on_datagram(const Address& from, ByteView bytes, TimePoint now) {
  ++stats_.datagrams_received;
  stats_.bytes_received += bytes.size();
  auto plain = open(from, bytes);
  if (!plain) return;
  auto messages = decode_packet(*plain);
  if (!messages) {
    drop(DropReason::kMalformed, from, messages.error().message);
    return;
  }
  for (const auto& message : *messages) handle(from, message, now);
}

std::expected<Bytes, std::error_code> Swim::on_stream(const Address& from, ByteView request,
                                                      TimePoint now) {
  ++stats_.streams_served;
  auto plain = open(from, request);
  if (!plain) return std::unexpected(plain.error());
  auto remote = decode_push_pull(*plain);
  if (!remote) {
    drop(DropReason::kMalformed, from, remote.error().message);
    return std::unexpected(remote.error().code);
  }
  merge(*remote, now);
  return local_state(false);
}

void Swim::on_stream_reply(std::uint64_t id, ByteView reply, TimePoint now) {
  auto it = pending_streams_.find(id);
  if (it == pending_streams_.end()) return;
  const PendingStream pending = it->second;
  pending_streams_.erase(it);
  std::error_code error;
  if (auto plain = open(pending.peer, reply); !plain) {
    error = plain.error();
  } else if (auto remote = decode_push_pull(*plain); !remote) {
    drop(DropReason::kMalformed, pending.peer, remote.error().message);
    error = remote.error().code;
  } else {
    merge(*remote, now);
  }
  events_.emplace_back(SyncResult{pending.peer, pending.purpose, error});
}

void Swim::on_stream_failed(std::uint64_t id, std::error_code error, TimePoint) {
  auto it = pending_streams_.find(id);
  if (it == pending_streams_.end()) return;
  events_.emplace_back(SyncResult{it->second.peer, it->second.purpose, error});
  pending_streams_.erase(it);
}

void Swim::tick(TimePoint now) {
  while (!timers_.empty() && timers_.top().at <= now) {
    Timer timer = timers_.top();
    timers_.pop();
    fire(timer, now);
  }
}

std::error_code Swim::set_metadata(Bytes metadata, TimePoint now) {
  if (left_) return Errc::kLeft;
  if (metadata.size() > config_.max_metadata_size) return Errc::kTooLarge;
  Entry& self = self_entry();
  self.member.metadata = std::move(metadata);
  self.member.incarnation += 1;
  queue_update(config_.name,
               Alive{self.member.incarnation, config_.name, config_.address, self.member.metadata},
               now);
  return {};
}

std::expected<std::uint64_t, std::error_code> Swim::send_event(ByteView payload, TimePoint now) {
  if (left_) return std::unexpected(make_error_code(Errc::kLeft));
  if (payload.size() > config_.max_event_payload) {
    return std::unexpected(make_error_code(Errc::kTooLarge));
  }
  if (user_events_.size() >= config_.max_queued_events) {
    ++stats_.events_dropped;
    return std::unexpected(make_error_code(Errc::kQueueFull));
  }
  const std::uint64_t seq = next_event_seq_++;
  const std::string key = event_key(config_.name, seq);
  remember_event(key, now);
  user_events_.push(key, framed(UserEvent{config_.name, seq, payload}));
  arm_gossip(now);
  if (config_.event_round_gap > Duration::zero() && !event_round_armed_) {
    event_round_armed_ = true;
    schedule(std::max(now, last_round_ + config_.event_round_gap), TimerKind::kEventRound);
  }
  return seq;
}

void Swim::leave(TimePoint now) {
  if (left_) return;
  left_ = true;
  Entry& self = self_entry();
  self.member.state = MemberState::kLeft;
  self.member.state_changed = now;
  queue_update(config_.name, Leave{self.member.incarnation, config_.name}, now);
  probe_.active = false;
  // Say it at once rather than at the next gossip tick: the caller may stop
  // the transport soon after.
  gossip(now);
}

// ---------------------------------------------------------------- outputs

std::vector<Datagram> Swim::take_datagrams() { return std::exchange(datagrams_, {}); }

std::vector<StreamRequest> Swim::take_stream_requests() {
  return std::exchange(stream_requests_, {});
}

std::vector<Event> Swim::take_events() { return std::exchange(events_, {}); }

std::vector<KeyEvent> Swim::take_key_events() { return std::exchange(key_events_, {}); }

TimePoint Swim::next_deadline() const {
  return timers_.empty() ? TimePoint::max() : timers_.top().at;
}

const Member& Swim::self() const { return find(config_.name)->member; }

const Member* Swim::member(std::string_view name) const {
  const Entry* entry = find(name);
  return entry ? &entry->member : nullptr;
}

std::vector<Member> Swim::members() const {
  std::vector<Member> out;
  out.reserve(members_.size());
  for (const auto& entry : members_) out.push_back(entry.member);
  return out;
}

std::size_t Swim::live_members() const {
  return static_cast<std::size_t>(
      std::count_if(members_.begin(), members_.end(), [](const Entry& e) {
        return e.member.state == MemberState::kAlive || e.member.state == MemberState::kSuspect;
      }));
}

std::array<std::size_t, 4> Swim::state_counts() const {
  std::array<std::size_t, 4> counts{};
  for (const auto& entry : members_) ++counts[static_cast<std::size_t>(entry.member.state)];
  return counts;
}

// ---------------------------------------------------------------- timers

std::uint64_t Swim::schedule(TimePoint at, TimerKind kind, std::uint64_t arg, std::string name) {
  const std::uint64_t id = next_timer_id_++;
  timers_.push(Timer{at, id, kind, arg, std::move(name)});
  return id;
}

void Swim::fire(const Timer& timer, TimePoint now) {
  switch (timer.kind) {
    case TimerKind::kProbe:
      start_probe(now);
      break;
    case TimerKind::kProbeTimeout:
      probe_timeout(static_cast<std::uint32_t>(timer.arg), now);
      break;
    case TimerKind::kProbeEnd:
      probe_end(static_cast<std::uint32_t>(timer.arg), now);
      break;
    case TimerKind::kForward: {
      auto it = forwards_.find(static_cast<std::uint32_t>(timer.arg));
      if (it == forwards_.end()) break;  // the ack came
      if (it->second.want_nack) send(it->second.requester, {Nack{it->second.seq}});
      forwards_.erase(it);
      break;
    }
    case TimerKind::kSuspicion:
      suspicion_expired(timer.name, timer.id, now);
      break;
    case TimerKind::kSuspicionRecheck:
      suspicion_recheck(timer.name, timer.arg, now);
      break;
    case TimerKind::kGossip:
      gossip_armed_ = false;
      gossip(now);
      if (!updates_.empty() || !user_events_.empty() || !key_forwards_.empty()) arm_gossip(now);
      break;
    case TimerKind::kEventRound:
      event_round_armed_ = false;
      gossip(now);
      break;
    case TimerKind::kPushPull:
      if (left_) break;
      push_pull(now);
      schedule(now + push_pull_period(config_, members_.size()), TimerKind::kPushPull);
      break;
    case TimerKind::kRejoin:
      if (left_) break;
      // With seeds given by name, the attempt waits for their addresses.
      if (has_named_seeds_) {
        resolve_requested_ = true;
      } else {
        rejoin(now);
      }
      schedule(now + config_.rejoin_interval, TimerKind::kRejoin);
      break;
    case TimerKind::kStream:
      on_stream_failed(timer.arg, std::make_error_code(std::errc::timed_out), now);
      break;
    case TimerKind::kKeyRetry:
      key_retry(timer.arg, now);
      break;
    case TimerKind::kKeyDeadline:
      finish_key_request(timer.arg, now, true);
      break;
  }
}

// ---------------------------------------------------------------- probing

void Swim::start_probe(TimePoint now) {
  if (left_) return;
  Entry* target = next_probe_target(now);
  if (!target) {
    probe_.active = false;
    schedule(now + config_.probe_interval, TimerKind::kProbe);
    return;
  }
  const Member& m = target->member;
  probe_ = Probe{true, next_seq_++, m.name, m.incarnation, false, 0, 0};
  ++stats_.probes;
  const Ping ping{probe_.seq, m.name, config_.name};
  if (m.state == MemberState::kAlive) {
    send(m.address, {ping});
  } else {
    // Buddy system: tell the suspect before asking, so it can refute now.
    send(m.address, {Suspect{m.incarnation, m.name, config_.name}, ping});
  }
  schedule(now + config_.probe_timeout, TimerKind::kProbeTimeout, probe_.seq);
  schedule(now + awareness_.scale(config_.probe_interval), TimerKind::kProbeEnd, probe_.seq);
}

Swim::Entry* Swim::next_probe_target(TimePoint now) {
  // Two passes at most: the rest of this round, then a fresh round.
  for (std::size_t tries = 0; tries <= 2 * members_.size(); ++tries) {
    if (probe_index_ >= members_.size()) {
      reset_probe_order(now);
      probe_index_ = 0;
      continue;
    }
    Entry& entry = members_[probe_index_++];
    const auto state = entry.member.state;
    if (entry.member.name == config_.name || state == MemberState::kDead ||
        state == MemberState::kLeft) {
      continue;
    }
    return &entry;
  }
  return nullptr;
}

// At the end of each round: forget members dead (or left) for longer than
// gossip_to_the_dead, and shuffle the order for the next round.
void Swim::reset_probe_order(TimePoint now) {
  std::vector<Entry> kept;
  kept.reserve(members_.size());
  for (auto& entry : members_) {
    const auto state = entry.member.state;
    const bool gone = (state == MemberState::kDead || state == MemberState::kLeft) &&
                      entry.member.name != config_.name &&
                      now - entry.member.state_changed > config_.gossip_to_the_dead;
    if (!gone) kept.push_back(std::move(entry));
  }
  members_ = std::move(kept);
  for (std::size_t i = members_.size(); i > 1; --i) {
    std::swap(members_[i - 1], members_[random_below(i)]);
  }
  index_.clear();
  for (std::size_t i = 0; i < members_.size(); ++i) index_.emplace(members_[i].member.name, i);
}

void Swim::probe_timeout(std::uint32_t seq, TimePoint) {
  if (!probe_.active || probe_.seq != seq || probe_.acked || left_) return;
  const Entry* target = find(probe_.target);
  if (!target) return;
  ++stats_.indirect_probes;
  const std::string target_name = probe_.target;
  auto helpers = random_members(config_.indirect_checks, [&](const Entry& e) {
    return e.member.state == MemberState::kAlive && e.member.name != config_.name &&
           e.member.name != target_name;
  });
  const Address target_address = target->member.address;
  for (Entry* helper : helpers) {
    send(helper->member.address, {PingReq{seq, target_name, target_address, true, config_.name}});
  }
  probe_.expected_nacks = static_cast<int>(helpers.size());
  // The direct path gets a second chance alongside the indirect ones (where
  // memberlist tries TCP): a lost ping or ack is the commonest reason for a
  // missed ack, and one more datagram on a failed probe costs little.
  if (config_.retry_direct_ping) send(target_address, {Ping{seq, target_name, config_.name}});
}

void Swim::probe_end(std::uint32_t seq, TimePoint now) {
  if (!probe_.active || probe_.seq != seq) return;
  probe_.active = false;
  if (!probe_.acked && !left_) {
    ++stats_.probes_failed;
    // Lifeguard: missing nacks mean our own links or our own processing are
    // the likelier culprit; with no one to nack, any failure counts.
    const int delta = probe_.expected_nacks > 0 ? probe_.expected_nacks - probe_.nacks : 1;
    awareness_.apply(delta);
    if (Entry* target = find(probe_.target);
        target && (target->member.state == MemberState::kAlive ||
                   target->member.state == MemberState::kSuspect)) {
      ++stats_.suspicions_raised;
      on_suspect(probe_.incarnation, probe_.target, config_.name, now);
    }
  }
  start_probe(now);
}

// ---------------------------------------------------------------- messages

void Swim::handle(const Address& from, const Message& message, TimePoint now) {
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, Ping>) {
          if (m.target != config_.name) {
            drop(DropReason::kMisdirected, from,
                 "ping for " + std::string(m.target) + " from " + std::string(m.source));
            return;
          }
          send(from, {Ack{m.seq}});
        } else if constexpr (std::is_same_v<T, PingReq>) {
          const std::uint32_t local = next_seq_++;
          forwards_[local] = Forward{from, m.seq, m.want_nack};
          send(m.target_address, {Ping{local, m.target, config_.name}});
          schedule(now + config_.probe_timeout, TimerKind::kForward, local);
        } else if constexpr (std::is_same_v<T, Ack>) {
          if (probe_.active && probe_.seq == m.seq) {
            if (!probe_.acked) {
              probe_.acked = true;
              awareness_.apply(-1);
            }
          } else if (auto it = forwards_.find(m.seq); it != forwards_.end()) {
            const Forward forward = it->second;
            forwards_.erase(it);
            send(forward.requester, {Ack{forward.seq}});
          }
        } else if constexpr (std::is_same_v<T, Nack>) {
          if (probe_.active && probe_.seq == m.seq) {
            ++probe_.nacks;
            ++stats_.nacks_received;
          }
        } else if constexpr (std::is_same_v<T, Alive>) {
          on_alive(m.incarnation, m.name, m.address, m.metadata, now);
        } else if constexpr (std::is_same_v<T, Suspect>) {
          on_suspect(m.incarnation, m.name, m.from, now, &from);
        } else if constexpr (std::is_same_v<T, Dead>) {
          on_dead(m.incarnation, m.name, m.from, false, now, &from);
        } else if constexpr (std::is_same_v<T, Leave>) {
          on_dead(m.incarnation, m.name, m.name, true, now, &from);
        } else if constexpr (std::is_same_v<T, UserEvent>) {
          on_user_event(m.origin, m.seq, m.payload, now);
        } else if constexpr (std::is_same_v<T, KeyRequest>) {
          on_key_request(m, now);
        } else if constexpr (std::is_same_v<T, KeyResponse>) {
          on_key_response(m, now);
        }
      },
      message);
}

void Swim::on_alive(std::uint32_t incarnation, std::string_view name, const Address& address,
                    ByteView metadata, TimePoint now) {
  const bool is_self = name == config_.name;
  if (is_self && left_) return;
  Entry* entry = find(name);
  bool is_new = false;
  bool replaces = false;
  if (!entry) {
    entry = &add_member(name, address);
    entry->member.state = MemberState::kDead;  // becomes alive below
    is_new = true;
  } else if (!is_self && entry->member.address != address) {
    // Another node claims a name we know at a different address. Only a
    // member that is gone may be replaced.
    if (entry->member.state == MemberState::kDead || entry->member.state == MemberState::kLeft) {
      replaces = true;
    } else {
      ++stats_.address_conflicts;
      return;
    }
  }
  Member& m = entry->member;
  if (!is_self && !is_new && !replaces && incarnation <= m.incarnation) return;
  if (is_self && incarnation < m.incarnation) return;

  if (is_self) {
    // Someone speaks for us. The same claim we made is harmless; anything
    // else (a newer incarnation, other metadata, another address) is refuted.
    if (incarnation == m.incarnation && address == m.address &&
        std::equal(metadata.begin(), metadata.end(), m.metadata.begin(), m.metadata.end())) {
      return;
    }
    refute(*entry, incarnation, now);
    return;
  }

  entry->suspicion.reset();
  const MemberState old_state = m.state;
  const bool metadata_changed =
      !std::equal(metadata.begin(), metadata.end(), m.metadata.begin(), m.metadata.end());
  const bool address_changed = m.address != address;
  m.incarnation = incarnation;
  m.address = address;
  if (metadata_changed) m.metadata.assign(metadata.begin(), metadata.end());
  if (m.state != MemberState::kAlive) {
    m.state = MemberState::kAlive;
    m.state_changed = now;
  }
  const std::string key = m.name;
  queue_update(key, Alive{incarnation, key, address, metadata}, now);

  if (is_new || old_state == MemberState::kDead || old_state == MemberState::kLeft) {
    member_event(MemberEventKind::kJoined, entry->member);
  } else {
    if (old_state == MemberState::kSuspect) member_event(MemberEventKind::kAlive, entry->member);
    if (metadata_changed || address_changed) member_event(MemberEventKind::kUpdated, entry->member);
  }
}

void Swim::on_suspect(std::uint32_t incarnation, std::string_view name, std::string_view from,
                      TimePoint now, const Address* sender) {
  Entry* entry = find(name);
  if (!entry) return;
  Member& m = entry->member;
  if (incarnation < m.incarnation) {
    correct(*entry, sender, now);
    return;
  }

  if (entry->suspicion) {
    // Another accuser: count it and pass it on, so confirmations flow even
    // when members probe a node that is already suspect.
    if (entry->suspicion->confirm(from)) {
      queue_update(m.name, Suspect{incarnation, m.name, from}, now);
      entry = find(name);
      entry->suspicion_timer =
          schedule(entry->suspicion->deadline(), TimerKind::kSuspicion, 0, entry->member.name);
    }
    return;
  }
  if (m.state != MemberState::kAlive) return;

  if (m.name == config_.name) {
    if (!left_) refute(*entry, incarnation, now);
    return;
  }

  const std::string key = m.name;
  queue_update(key, Suspect{incarnation, key, from}, now);
  entry = find(key);
  Member& member = entry->member;
  member.incarnation = incarnation;
  member.state = MemberState::kSuspect;
  member.state_changed = now;

  // Expect suspicion_confirmations independent accusers, none when the
  // cluster is too small to provide them (n less ourselves and the suspect).
  const std::size_t n = members_.size();
  int k = config_.suspicion_confirmations;
  if (n < 2 || static_cast<int>(n - 2) < k) k = 0;
  const Duration min = suspicion_min_timeout(config_, n);
  const Duration max = min * config_.suspicion_max_timeout_mult;
  entry->suspicion = std::make_unique<Suspicion>(from, k, min, max, now);
  entry->suspicion_timer =
      schedule(entry->suspicion->deadline(), TimerKind::kSuspicion, 0, member.name);
  schedule(now + min / 2, TimerKind::kSuspicionRecheck,
           static_cast<std::uint64_t>(now.time_since_epoch().count()), member.name);
  member_event(MemberEventKind::kSuspect, member);
}

void Swim::suspicion_expired(const std::string& name, std::uint64_t timer, TimePoint now) {
  Entry* entry = find(name);
  if (!entry || !entry->suspicion || entry->suspicion_timer != timer) return;
  if (entry->member.state != MemberState::kSuspect) return;
  if (now < entry->suspicion->deadline()) return;
  ++stats_.deaths_declared;
  on_dead(entry->member.incarnation, name, config_.name, false, now);
}

// Halfway to the shortest possible timeout, a suspicion still held is spread
// again, in the first accuser's name (so it confirms nothing). A member that
// missed every copy of the suspect's refutation learns it now: whoever hears
// this stale suspicion answers with the newer alive (correct()). Without it,
// one member in a few hundred thousand per suspicion kept a refuted suspicion
// to its end at 10 % loss — a false death, measured (docs/gossip.md).
void Swim::suspicion_recheck(const std::string& name, std::uint64_t started, TimePoint now) {
  Entry* entry = find(name);
  if (!entry || !entry->suspicion || entry->member.state != MemberState::kSuspect) return;
  if (static_cast<std::uint64_t>(entry->suspicion->start().time_since_epoch().count()) != started) {
    return;  // a later suspicion; it has its own recheck
  }
  ++stats_.rechecks;
  const Member& m = entry->member;
  queue_update(m.name, Suspect{m.incarnation, m.name, entry->suspicion->first_accuser()}, now);
}

void Swim::on_dead(std::uint32_t incarnation, std::string_view name, std::string_view from,
                   bool leave, TimePoint now, const Address* sender) {
  Entry* entry = find(name);
  if (!entry) return;
  Member& m = entry->member;
  if (incarnation < m.incarnation) {
    if (!leave) correct(*entry, sender, now);
    return;
  }
  entry->suspicion.reset();
  if (m.state == MemberState::kDead || m.state == MemberState::kLeft) return;
  if (m.name == config_.name) {
    // A death or departure we did not announce: we are here to deny it.
    if (!left_) refute(*entry, incarnation, now);
    return;
  }
  const std::string key = m.name;
  if (leave) {
    queue_update(key, Leave{incarnation, key}, now);
  } else {
    queue_update(key, Dead{incarnation, key, from}, now);
  }
  entry = find(key);
  entry->member.incarnation = incarnation;
  entry->member.state = leave ? MemberState::kLeft : MemberState::kDead;
  entry->member.state_changed = now;
  member_event(leave ? MemberEventKind::kLeft : MemberEventKind::kDead, entry->member);
}

// The sender still spreads a suspicion (or death) that the member has since
// refuted: it missed every copy of the refutation. Tell it directly, or its
// suspicion timer will declare a live member dead (measured at 10 % loss:
// without this, about one member in a thousand misses a given refutation).
void Swim::correct(const Entry& entry, const Address* sender, TimePoint now) {
  if (sender == nullptr || entry.member.state != MemberState::kAlive || left_) return;
  const Member& m = entry.member;
  ++stats_.corrections;
  const Alive alive{m.incarnation, m.name, m.address, m.metadata};
  if (1 + encoded_size(alive) > packet_room()) {
    start_sync(*sender, SyncPurpose::kLargeUpdate, now);
    return;
  }
  send(*sender, {alive});
}

void Swim::refute(Entry& self, std::uint32_t accused, TimePoint now) {
  Member& m = self.member;
  std::uint32_t incarnation = m.incarnation + 1;
  if (accused >= incarnation) incarnation = accused + 1;
  m.incarnation = incarnation;
  ++stats_.refutations;
  // Lifeguard: having to refute hints that we are the slow one.
  awareness_.apply(1);
  queue_update(config_.name, Alive{incarnation, config_.name, config_.address, m.metadata}, now);
}

void Swim::on_user_event(std::string_view origin, std::uint64_t seq, ByteView payload,
                         TimePoint now) {
  if (origin == config_.name) return;
  const std::string key = event_key(origin, seq);
  if (seen_events_.count(key)) return;
  remember_event(key, now);
  if (user_events_.size() < config_.max_queued_events) {
    user_events_.push(key, framed(UserEvent{origin, seq, payload}));
    arm_gossip(now);
  } else {
    ++stats_.events_dropped;  // delivered here; the other members hear it from the origin
  }
  events_.emplace_back(
      UserEventDelivery{std::string(origin), seq, Bytes(payload.begin(), payload.end())});
}

void Swim::remember_event(const std::string& key, TimePoint now) {
  while (!seen_order_.empty() && now - seen_order_.front().first > config_.event_dedup_window) {
    seen_events_.erase(seen_order_.front().second);
    seen_order_.pop();
  }
  seen_events_.emplace(key, now);
  seen_order_.emplace(now, key);
}

// ---------------------------------------------------------------- key requests

std::expected<std::uint64_t, std::error_code> Swim::start_key_request(KeyOp op,
                                                                      const std::optional<Key>& key,
                                                                      TimePoint now) {
  auto refuse = [](std::error_code e) { return std::unexpected(e); };
  if (!keyring_) return refuse(Errc::kNoKeyring);
  if (left_) return refuse(Errc::kLeft);
  if ((op == KeyOp::kList) == key.has_value()) return refuse(Errc::kBadValue);
  if (key_request_) return refuse(Errc::kBusy);
  std::optional<KeyId> id;
  Bytes key_field;  // what the request carries: the key, its id, or nothing
  if (key) {
    id = key_id(*key);
    if (op == KeyOp::kInstall) {
      key_field.assign(key->begin(), key->end());
    } else {
      key_field.assign(id->begin(), id->end());
    }
  }
  // The key every member can open now: ours seals with it.
  const KeyId request_key = key_id(keyring_->primary());
  // This node first, as any member would apply it. What fails here is
  // refused before anything is sent: a use of a key this node lacks (its
  // own traffic would stay under a key the others stop sealing with), the
  // removal of its own primary, an install on a full ring.
  if (const KeyStatus status = apply_key_op(op, key_field); status != KeyStatus::kOk) {
    return refuse(error_of(status));
  }
  ++stats_.key_requests_applied;
  ++stats_.key_requests_started;

  const std::uint64_t request_id = next_key_request_++;
  KeyRequest request{config_.name, request_id, false, op, config_.address, request_key, key_field};
  PendingKeyRequest pending;
  pending.id = request_id;
  pending.op = op;
  pending.key = id;
  pending.started = now;
  pending.deadline = now + config_.key_request_timeout;
  request.reask = true;
  pending.reask = alone(request);
  request.reask = false;
  for (const auto& entry : members_) {
    if (is_live(entry.member.state)) pending.expected.insert(entry.member.name);
  }
  // Its own answer is recorded directly, and the id is remembered so that
  // copies coming back are ignored.
  Bytes answer = key_answer(request_id, KeyStatus::kOk);
  pending.answers.emplace(config_.name,
                          answer_of(config_.name, KeyStatus::kOk, ids_of(keyring_->keys())));
  remember_key_request(event_key(config_.name, request_id),
                       AppliedKeyRequest{std::move(answer), config_.address, request_key}, now);
  key_request_ = std::move(pending);

  if (finish_key_request(request_id, now, false)) return request_id;  // no one else to ask
  forward_key_request(request, now);
  // Spread it now rather than at the next gossip tick: an operator waits.
  gossip(now);
  schedule(now + config_.key_request_retry, TimerKind::kKeyRetry, request_id);
  schedule(now + config_.key_request_timeout, TimerKind::kKeyDeadline, request_id);
  return request_id;
}

std::error_code Swim::change_key(KeyOp op, const Key& key, TimePoint) {
  if (!keyring_) return Errc::kNoKeyring;
  if (op == KeyOp::kList) return Errc::kBadValue;
  const KeyId id = key_id(key);
  const KeyStatus status = op == KeyOp::kInstall ? apply_key_op(op, key) : apply_key_op(op, id);
  return error_of(status);
}

// A member's part: apply once, answer the origin, pass the request on. A
// copy of a request already applied is ignored, unless the origin asks
// again, which gets the answer kept from the first time.
void Swim::on_key_request(const KeyRequest& request, TimePoint now) {
  if (!keyring_ || left_) return;
  const std::string key = event_key(request.origin, request.id);
  if (auto it = applied_key_requests_.find(key); it != applied_key_requests_.end()) {
    if (request.reask) {
      ++stats_.key_answers_sent;
      emit_sealed(it->second.answer_to,
                  keyring_->seal_also(it->second.answer, it->second.request_key));
    }
    return;
  }
  KeyId request_key{};
  std::copy_n(request.request_key.begin(), kKeyIdSize, request_key.begin());
  const KeyStatus status = apply_key_op(request.op, request.key);
  ++stats_.key_requests_applied;
  Bytes answer = key_answer(request.id, status);
  ++stats_.key_answers_sent;
  emit_sealed(request.answer_to, keyring_->seal_also(answer, request_key));
  remember_key_request(key, AppliedKeyRequest{std::move(answer), request.answer_to, request_key},
                       now);
  forward_key_request(request, now);
}

void Swim::on_key_response(const KeyResponse& response, TimePoint now) {
  const Entry* entry = find(response.member);
  if (!key_request_ || key_request_->id != response.id || entry == nullptr ||
      !is_live(entry->member.state)) {
    ++stats_.key_answers_ignored;
    return;
  }
  // A second copy (sealed under another key) or an answer sent again.
  if (key_request_->answers.count(response.member)) return;
  ++stats_.key_answers_received;
  key_request_->answers.emplace(response.member,
                                answer_of(response.member, response.status, response.key_ids));
  finish_key_request(response.id, now, false);
}

// `key` is the request's key field: the key for an install, its id for use
// and remove. Reports the change, if there was one.
KeyStatus Swim::apply_key_op(KeyOp op, ByteView key) {
  Keyring& ring = *keyring_;
  KeyId id{};
  if (op == KeyOp::kUse || op == KeyOp::kRemove) std::copy_n(key.begin(), kKeyIdSize, id.begin());
  bool changed = false;
  switch (op) {
    case KeyOp::kList:
      return KeyStatus::kOk;
    case KeyOp::kInstall: {
      Key k{};
      std::copy_n(key.begin(), kKeySize, k.begin());
      const std::size_t before = ring.keys().size();
      if (ring.add(k)) return KeyStatus::kKeyringFull;
      changed = ring.keys().size() != before;
      break;
    }
    case KeyOp::kUse: {
      const Key* k = ring.find(id);
      if (k == nullptr) return KeyStatus::kKeyNotInstalled;
      changed = k != &ring.primary();
      if (changed) ring.use(Key(*k));
      break;
    }
    case KeyOp::kRemove: {
      const Key* k = ring.find(id);
      if (k == nullptr) return KeyStatus::kOk;  // already gone: nothing to do
      if (k == &ring.primary()) return KeyStatus::kKeyIsPrimary;
      ring.remove(Key(*k));
      changed = true;
      break;
    }
  }
  if (changed) {
    key_events_.emplace_back(
        KeyringChanged{std::vector<Key>(ring.keys().begin(), ring.keys().end())});
  }
  return KeyStatus::kOk;
}

Bytes Swim::key_answer(std::uint64_t id, KeyStatus status) const {
  const Bytes ids = ids_of(keyring_->keys());
  return alone(KeyResponse{id, config_.name, status, ids});
}

void Swim::remember_key_request(const std::string& key, AppliedKeyRequest applied, TimePoint now) {
  while (!applied_key_order_.empty() &&
         now - applied_key_order_.front().first > config_.event_dedup_window) {
    applied_key_requests_.erase(applied_key_order_.front().second);
    applied_key_order_.pop();
  }
  applied_key_requests_.emplace(key, std::move(applied));
  applied_key_order_.emplace(now, key);
}

void Swim::forward_key_request(const KeyRequest& request, TimePoint now) {
  KeyRequest copy = request;
  copy.reask = false;
  key_forwards_.push_back(KeyForward{alone(copy), 0});
  arm_gossip(now);
}

void Swim::key_retry(std::uint64_t id, TimePoint now) {
  if (finish_key_request(id, now, false)) return;
  const PendingKeyRequest& pending = *key_request_;
  for (const auto& name : pending.expected) {
    if (pending.answers.count(name)) continue;
    const Entry* entry = find(name);
    if (entry == nullptr || !is_live(entry->member.state)) continue;
    // Under every key but the one being installed: the member may have
    // missed a request that changed our primary (a member that lacks the
    // new key is reached under the old one), and a key it is being asked to
    // install is one it may not hold.
    emit_sealed(entry->member.address,
                keyring_->seal_each(pending.reask,
                                    pending.op == KeyOp::kInstall ? pending.key : std::nullopt));
  }
  if (now + config_.key_request_retry < pending.deadline) {
    schedule(now + config_.key_request_retry, TimerKind::kKeyRetry, id);
  }
}

bool Swim::finish_key_request(std::uint64_t id, TimePoint now, bool deadline) {
  if (!key_request_ || key_request_->id != id) return true;  // a timer of an ended request
  PendingKeyRequest& pending = *key_request_;
  bool silent = false;  // a live expected member has not answered
  for (const auto& name : pending.expected) {
    if (pending.answers.count(name)) continue;
    const Entry* entry = find(name);
    if (entry != nullptr && is_live(entry->member.state)) silent = true;
  }
  if (silent && !deadline) return false;
  KeyResult result;
  result.id = id;
  result.op = pending.op;
  result.key = pending.key;
  result.elapsed = now - pending.started;
  result.timed_out = silent;
  // Those that did not answer, dead since or not, then all by name.
  for (const auto& name : pending.expected) {
    pending.answers.try_emplace(name, KeyAnswer{name, KeyOutcome::kNoAnswer, {}, {}});
  }
  for (auto& [name, answer] : pending.answers) result.answers.push_back(std::move(answer));
  key_request_.reset();
  key_events_.emplace_back(std::move(result));
  return true;
}

// ---------------------------------------------------------------- sending

std::size_t Swim::packet_room() const {
  return config_.packet_size - (keyring_ ? kEnvelopeOverhead : 0);
}

void Swim::send(const Address& to, std::initializer_list<Message> primary) {
  Bytes plain;
  plain.reserve(packet_room());
  plain.push_back(kWireVersion);
  for (const auto& message : primary) {
    if (append_message(plain, message)) return;  // names are validated; cannot happen
  }
  piggyback(plain);
  emit(to, plain);
}

// Fills what is left of the packet: each kind first takes up to its share,
// then whatever room the other kind left unused.
std::size_t Swim::piggyback(Bytes& plain, std::uint64_t events_since) {
  const std::size_t room = packet_room();
  if (plain.size() >= room) return 0;
  const std::size_t free = room - plain.size();
  const auto membership =
      static_cast<std::size_t>(static_cast<double>(free) * config_.membership_share);
  const std::size_t n = members_.size();
  const int limit = retransmit_limit(config_, n);
  const std::uint64_t packet = ++packets_filled_;
  std::size_t used = updates_.fill(plain, membership, limit, packet);
  const std::size_t events =
      user_events_.fill(plain, free - used, event_retransmit_limit(config_, n), packet, events_since);
  used += events;
  if (used < free) updates_.fill(plain, free - used, limit, packet);
  return events;
}

void Swim::emit(const Address& to, const Bytes& plain) {
  Bytes bytes = keyring_ ? keyring_->seal(plain) : plain;
  ++stats_.datagrams_sent;
  stats_.bytes_sent += bytes.size();
  datagrams_.push_back(Datagram{to, std::move(bytes)});
}

void Swim::emit_sealed(const Address& to, std::vector<Bytes> envelopes) {
  for (auto& bytes : envelopes) {
    ++stats_.datagrams_sent;
    stats_.bytes_sent += bytes.size();
    datagrams_.push_back(Datagram{to, std::move(bytes)});
  }
}

void Swim::queue_update(const std::string& name, const Message& update, TimePoint now) {
  Bytes message = framed(update);
  if (message.empty()) return;
  if (message.size() > packet_room() - 1) {
    // Larger than any packet: only state sync can carry it.
    updates_.erase(name);
    auto peers = random_members(1, [&](const Entry& e) {
      return e.member.state == MemberState::kAlive && e.member.name != config_.name;
    });
    if (!peers.empty()) start_sync(peers.front()->member.address, SyncPurpose::kLargeUpdate, now);
    return;
  }
  updates_.push(name, std::move(message));
  arm_gossip(now);
}

void Swim::arm_gossip(TimePoint now) {
  if (gossip_armed_) return;
  gossip_armed_ = true;
  schedule(now + config_.gossip_interval, TimerKind::kGossip);
}

void Swim::gossip(TimePoint now) {
  if (updates_.empty() && user_events_.empty() && key_forwards_.empty()) return;
  last_round_ = now;
  auto gossip_target = [&](const Entry& e) {
    if (e.member.name == config_.name) return false;
    switch (e.member.state) {
      case MemberState::kAlive:
      case MemberState::kSuspect:
        return true;
      case MemberState::kDead:
        return now - e.member.state_changed <= config_.gossip_to_the_dead;
      case MemberState::kLeft:
        return false;
    }
    return false;
  };
  auto targets = random_members(config_.gossip_nodes, gossip_target);
  bool piggybacking = !updates_.empty() || !user_events_.empty();
  const std::uint64_t round_start = packets_filled_ + 1;
  for (Entry* target : targets) {
    for (auto& forward : key_forwards_) {
      emit(target->member.address, forward.packet);
      ++forward.sent;
    }
    if (!piggybacking) continue;
    Bytes plain;
    plain.reserve(packet_room());
    plain.push_back(kWireVersion);
    piggyback(plain);
    if (plain.size() == 1) {
      piggybacking = false;
      continue;
    }
    emit(target->member.address, plain);
  }
  // Events the round's packets had no room for: more packets, each to a
  // random member, with only events not yet sent in this round.
  for (int extra = 0; extra < config_.event_burst_packets && !user_events_.empty() && !targets.empty();
       ++extra) {
    auto target = random_members(1, gossip_target);
    if (target.empty()) break;
    Bytes plain;
    plain.reserve(packet_room());
    plain.push_back(kWireVersion);
    const bool events = piggyback(plain, round_start) > 0;
    // Membership updates put in are counted as sent: send them even when
    // the packet has no event left to carry.
    if (plain.size() > 1) {
      ++stats_.event_burst_packets;
      emit(target.front()->member.address, plain);
    }
    if (!events) break;
  }
  const int limit = event_retransmit_limit(config_, members_.size());
  std::erase_if(key_forwards_, [&](const KeyForward& f) { return f.sent >= limit; });
}

// ---------------------------------------------------------------- state sync

Bytes Swim::local_state(bool join) {
  PushPull state;
  state.join = join;
  state.sender = config_.name;
  state.members.reserve(members_.size());
  for (const auto& entry : members_) {
    const Member& m = entry.member;
    state.members.push_back(MemberRecord{m.name, m.address, m.incarnation, m.state, m.metadata});
  }
  // User events still being spread travel along, for members that missed
  // them. Their framed copies are decoded from one buffer the views point into.
  Bytes events_buffer{kWireVersion};
  user_events_.for_each([&](const std::string&, ByteView message) {
    events_buffer.insert(events_buffer.end(), message.begin(), message.end());
  });
  if (events_buffer.size() > 1) {
    if (auto decoded = decode_packet(events_buffer)) {
      for (const auto& message : *decoded) {
        if (const auto* event = std::get_if<UserEvent>(&message)) state.events.push_back(*event);
      }
    }
  }
  auto encoded = encode_push_pull(state);
  if (!encoded) return {};
  return keyring_ ? keyring_->seal(*encoded) : std::move(*encoded);
}

void Swim::start_sync(const Address& to, SyncPurpose purpose, TimePoint now) {
  const std::uint64_t id = next_stream_id_++;
  pending_streams_.emplace(id, PendingStream{to, purpose});
  ++stats_.streams_started;
  stream_requests_.push_back(StreamRequest{
      id, to, local_state(purpose == SyncPurpose::kJoin || purpose == SyncPurpose::kRejoin),
      purpose});
  schedule(now + config_.stream_timeout, TimerKind::kStream, id);
}

// memberlist's mergeState: alive claims are taken as they are, departures
// too, but a remote "dead" is only a suspicion here, so the accused can still
// refute it.
void Swim::merge(const PushPull& remote, TimePoint now) {
  for (const auto& record : remote.members) {
    switch (record.state) {
      case MemberState::kAlive:
        on_alive(record.incarnation, record.name, record.address, record.metadata, now);
        break;
      case MemberState::kLeft:
        on_dead(record.incarnation, record.name, record.name, true, now);
        break;
      case MemberState::kDead:
      case MemberState::kSuspect:
        on_suspect(record.incarnation, record.name, remote.sender, now);
        break;
    }
  }
  for (const auto& event : remote.events)
    on_user_event(event.origin, event.seq, event.payload, now);
}

std::expected<Bytes, std::error_code> Swim::open(const Address& from, ByteView bytes) {
  const bool sealed = !bytes.empty() && bytes[0] == kEnvelopeVersion;
  if (!keyring_) {
    if (sealed) {
      drop(DropReason::kUnexpectedEncryption, from, "");
      return std::unexpected(make_error_code(Errc::kUnexpectedEncryption));
    }
    return Bytes(bytes.begin(), bytes.end());
  }
  auto plain = keyring_->open(bytes);
  if (!plain) {
    const std::error_code error = plain.error();
    if (error == Errc::kNotEncrypted) {
      drop(DropReason::kNotEncrypted, from, "");
    } else if (error == Errc::kNoKeyAuthenticates) {
      drop(DropReason::kNoKeyAuthenticates, from, "");
    } else {
      drop(DropReason::kMalformed, from, "envelope: " + error.message());
    }
    return std::unexpected(error);
  }
  return plain;
}

void Swim::push_pull(TimePoint now) {
  auto peers = random_members(1, [&](const Entry& e) {
    return e.member.state == MemberState::kAlive && e.member.name != config_.name;
  });
  if (!peers.empty()) start_sync(peers.front()->member.address, SyncPurpose::kPeriodic, now);
}

void Swim::rejoin(TimePoint now) {
  std::unordered_set<Address> live;
  for (const auto& entry : members_) {
    if (entry.member.state == MemberState::kAlive || entry.member.state == MemberState::kSuspect) {
      live.insert(entry.member.address);
    }
  }
  std::vector<Address> missing;
  for (const auto* list : {&seeds_, &named_seeds_}) {
    for (const auto& seed : *list) {
      if (!live.count(seed) &&
          std::find(missing.begin(), missing.end(), seed) == missing.end()) {
        missing.push_back(seed);
      }
    }
  }
  if (missing.empty()) return;
  start_sync(missing[random_below(missing.size())], SyncPurpose::kRejoin, now);
}

// ---------------------------------------------------------------- members

Swim::Entry* Swim::find(std::string_view name) {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &members_[it->second];
}

const Swim::Entry* Swim::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &members_[it->second];
}

// A new member takes a random place in the probe order (memberlist does the
// same), so members that join together are not probed together.
Swim::Entry& Swim::add_member(std::string_view name, const Address& address) {
  Entry entry;
  entry.member.name = std::string(name);
  entry.member.address = address;
  members_.push_back(std::move(entry));
  const std::size_t last = members_.size() - 1;
  const std::size_t slot = random_below(members_.size());
  std::swap(members_[last], members_[slot]);
  index_[members_[last].member.name] = last;
  index_[members_[slot].member.name] = slot;
  return members_[slot];
}

std::vector<Swim::Entry*> Swim::random_members(int k,
                                               const std::function<bool(const Entry&)>& wanted) {
  std::vector<Entry*> chosen;
  const std::size_t n = members_.size();
  for (std::size_t tries = 0; tries < 3 * n && static_cast<int>(chosen.size()) < k; ++tries) {
    Entry* entry = &members_[random_below(n)];
    if (!wanted(*entry)) continue;
    if (std::find(chosen.begin(), chosen.end(), entry) != chosen.end()) continue;
    chosen.push_back(entry);
  }
  return chosen;
}

std::size_t Swim::random_below(std::size_t n) {
  if (n <= 1) return 0;
  return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
}

void Swim::member_event(MemberEventKind kind, const Member& member) {
  events_.emplace_back(MemberEvent{kind, member});
}

void Swim::drop(DropReason reason, const Address& from, const std::string& detail) {
  ++stats_.drops[static_cast<std::size_t>(reason)];
  stats_.last_drop = from.to_string() + ": " + std::string(to_string(reason));
  if (!detail.empty()) stats_.last_drop += ": " + detail;
}

}  // namespace mixlb::gossip
