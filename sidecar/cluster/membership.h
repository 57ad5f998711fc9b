#pragma once
// Membership turns what the gossip layer says about the members, and what
// this node knows about itself, into the two inputs of ClusterSync: the
// member set and each VIP port's serving set.
//
// A member is in the tables while gossip holds it alive or suspect (a
// suspect may still be fine; only death or leave takes it out) and its
// metadata decodes. It serves a VIP port when its app passes its health
// check, its sidecar is not restarting and its metadata lists the port's
// tag; its weight is the one it publishes (0 when drained). Every node
// applies the same rules to the same gossip state, so every node builds the
// same tables.
//
// A member that died or left is gone for new flows at once, but it stays
// "departed" for the flow grace period: still in the node map (with its
// address and MAC), in no table, so the connections already pinned to it
// keep being forwarded there. Its data path may well be serving them still
// (a sidecar crashed, its XDP program and app did not), and a sidecar back
// within the grace period finds every flow where it was.
//
// Two names whose node ids collide cannot both be in the tables; the
// smaller name wins on every node and the other is shown with the reason.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cluster/cluster_sync.h"
#include "cluster/member_metadata.h"
#include "swim.h"

namespace mixlb {

// When a starting sidecar may publish its first tables: once a join
// through one seed has succeeded, or the joins through every seed have
// failed (one seed down must not end the wait while another may answer).
// Seeds given by name count once they are resolved: until then the wait
// goes on. With no seed at all it may publish at once.
class JoinWait {
 public:
  explicit JoinWait(std::size_t seeds, bool names_pending = false)
      : seeds_(seeds), names_pending_(names_pending), done_(seeds == 0 && !names_pending) {}
  // The result of one join push-pull; true when the wait is over (from this
  // result on).
  bool on_result(bool ok) {
    if (!done_ && ok) ok_ = done_ = true;
    if (!done_) ++failures_;
    return settle();
  }
  // The seeds given by name were resolved and `joins` joins started through
  // their addresses.
  bool on_names_resolved(std::size_t joins) {
    if (!names_pending_) return done_;
    names_pending_ = false;
    seeds_ += joins;
    return settle();
  }
  bool done() const { return done_; }
  // Whether the wait ended without any seed answering.
  bool alone() const { return done_ && !ok_ && seeds_ != 0; }

 private:
  bool settle() {
    if (!done_ && !names_pending_ && failures_ >= seeds_) done_ = true;
    return done_;
  }
  std::size_t seeds_;
  bool names_pending_;
  std::size_t failures_ = 0;
  bool ok_ = false;
  bool done_;
};

struct MemberRecord {
  std::string name;
  std::uint32_t id = 0;
  bool self = false;
  gossip::Address gossip_address;
  gossip::MemberState state = gossip::MemberState::kAlive;
  std::uint32_t incarnation = 0;
  std::optional<MemberMetadata> metadata;
  std::string problem;  // why it is left out of the tables while alive
  std::chrono::steady_clock::time_point since{};  // the last state change
};

class Membership {
 public:
  // `vips`: this node's configured VIP ports. A member that died or left
  // stays departed for `flow_grace`. Records of members dead or left for
  // longer than `forget_after` (at least twice the grace) are dropped.
  Membership(std::string self_name, std::vector<VipEntry> vips,
             std::chrono::steady_clock::duration flow_grace = std::chrono::minutes(1),
             std::chrono::steady_clock::duration forget_after = std::chrono::minutes(10));

  // This node's own state (gossip reports no events about the node itself).
  // True when the tables' inputs changed.
  bool set_self(const MemberMetadata& metadata, gossip::Address gossip_address);
  // One gossip event. True when the tables' inputs changed.
  bool apply(const gossip::MemberEvent& event,
             std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());

  // The members in the tables, this node first, then by name; then the
  // departed ones whose grace has not run out at `now` (Member::departed).
  std::vector<Member> members(
      std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now()) const;
  // When the grace of the next departed member runs out after `now` (the
  // tables must be rebuilt then), or nullopt when none is departed.
  std::optional<std::chrono::steady_clock::time_point> next_grace_end(
      std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now()) const;
  std::chrono::steady_clock::duration flow_grace() const { return flow_grace_; }
  // A reload: the configured VIP ports, and the grace. True when the tables'
  // inputs changed.
  void set_vips(std::vector<VipEntry> vips) { vips_ = std::move(vips); }
  void set_flow_grace(std::chrono::steady_clock::duration grace) {
    flow_grace_ = grace;
    forget_after_ = std::max(forget_after_, 2 * grace);
  }
  // The configured VIP ports with their serving sets.
  std::vector<VipEntry> vip_entries() const;

  // Every member known, this node included, by name.
  const std::map<std::string, MemberRecord>& records() const { return records_; }
  // The labels of the VIP ports a member publishes ("#1a2b3c4d" for a tag
  // this node does not configure).
  std::vector<std::string> vip_labels(const MemberMetadata& metadata) const;
  // The names of the members in the tables now.
  std::vector<std::string> in_tables() const;

 private:
  // What the tables are built from: each member in them with its address
  // and metadata. Compared before and after a change.
  using TableInputs = std::vector<std::pair<std::string, MemberMetadata>>;
  TableInputs table_inputs() const;
  bool eligible(const MemberRecord& record) const;  // alive or suspect, metadata decodes
  // The records in the tables: eligible, and the smallest eligible name of
  // their node id.
  std::vector<const MemberRecord*> in_table_records() const;
  // Dead or left within the grace period, metadata known, node id not
  // taken by a member in the tables.
  std::vector<const MemberRecord*> departed_records(std::chrono::steady_clock::time_point now) const;
  void forget_old(std::chrono::steady_clock::time_point now);

  std::string self_name_;
  std::vector<VipEntry> vips_;
  std::chrono::steady_clock::duration flow_grace_;
  std::chrono::steady_clock::duration forget_after_;
  std::map<std::string, MemberRecord> records_;
};

}  // namespace mixlb
