#include "cluster/membership.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "cluster/node_id.h"

namespace mixlb {

Membership::Membership(std::string self_name, std::vector<VipEntry> vips,
                       std::chrono::steady_clock::duration flow_grace,
                       std::chrono::steady_clock::duration forget_after)
    : self_name_(std::move(self_name)),
      vips_(std::move(vips)),
      flow_grace_(flow_grace),
      forget_after_(std::max(forget_after, 2 * flow_grace)) {}

namespace {

bool gone(gossip::MemberState state) {
  return state == gossip::MemberState::kDead || state == gossip::MemberState::kLeft;
}

}  // namespace

bool Membership::eligible(const MemberRecord& r) const {
  return (r.state == gossip::MemberState::kAlive || r.state == gossip::MemberState::kSuspect) &&
         r.metadata.has_value();
}

std::vector<const MemberRecord*> Membership::in_table_records() const {
  std::vector<const MemberRecord*> out;
  std::map<std::uint32_t, const MemberRecord*> by_id;  // records_ is in name order
  for (const auto& [name, r] : records_)
    if (eligible(r) && by_id.emplace(r.id, &r).second) out.push_back(&r);
  return out;
}

std::vector<const MemberRecord*> Membership::departed_records(
    std::chrono::steady_clock::time_point now) const {
  std::set<std::uint32_t> taken;
  for (const MemberRecord* r : in_table_records()) taken.insert(r->id);
  std::vector<const MemberRecord*> out;
  for (const auto& [name, r] : records_)
    if (!r.self && gone(r.state) && r.metadata && now - r.since < flow_grace_ &&
        taken.insert(r.id).second)
      out.push_back(&r);
  return out;
}

std::optional<std::chrono::steady_clock::time_point> Membership::next_grace_end(
    std::chrono::steady_clock::time_point now) const {
  std::optional<std::chrono::steady_clock::time_point> next;
  for (const MemberRecord* r : departed_records(now)) {
    const auto end = r->since + flow_grace_;
    if (!next || end < *next) next = end;
  }
  return next;
}

std::vector<std::string> Membership::in_tables() const {
  std::vector<std::string> out;
  for (const MemberRecord* r : in_table_records()) out.push_back(r->name);
  return out;
}

Membership::TableInputs Membership::table_inputs() const {
  TableInputs out;
  for (const MemberRecord* r : in_table_records()) out.emplace_back(r->name, *r->metadata);
  return out;
}

bool Membership::set_self(const MemberMetadata& metadata, gossip::Address gossip_address) {
  const TableInputs before = table_inputs();
  MemberRecord& r = records_[self_name_];
  if (r.name.empty()) {
    r.name = self_name_;
    r.id = node_id_for(self_name_);
    r.self = true;
    r.since = std::chrono::steady_clock::now();
  }
  r.gossip_address = gossip_address;
  r.metadata = metadata;
  return table_inputs() != before;
}

bool Membership::apply(const gossip::MemberEvent& event, std::chrono::steady_clock::time_point now) {
  const gossip::Member& m = event.member;
  if (m.name == self_name_) {
    // The core reports nothing about this node; a member of this name is
    // another process claiming it, which the core already refutes.
    spdlog::warn("gossip: ignoring an event about this node's own name from {}",
                 m.address.to_string());
    return false;
  }
  const TableInputs before = table_inputs();
  MemberRecord& r = records_[m.name];
  const bool known = !r.name.empty();
  r.name = m.name;
  r.id = node_id_for(m.name);
  r.gossip_address = m.address;
  r.incarnation = m.incarnation;
  r.since = m.state_changed;
  const gossip::MemberState previous = known ? r.state : gossip::MemberState::kDead;
  r.state = m.state;

  if (m.state == gossip::MemberState::kAlive || !r.metadata) {
    auto decoded = decode_metadata(m.metadata);
    if (decoded) {
      r.metadata = std::move(*decoded);
      r.problem.clear();
    } else {
      if (r.problem != decoded.error())
        spdlog::warn("gossip: member {} ({}) left out of the tables: {}", m.name,
                     m.address.to_string(), decoded.error());
      r.metadata.reset();
      r.problem = decoded.error();
    }
  }
  if (previous != m.state || !known)
    spdlog::info("gossip: member {} ({}) is {} (incarnation {})", m.name, m.address.to_string(),
                 gossip::to_string(m.state), m.incarnation);

  forget_old(now);
  // A collision is reported when the member joins or changes; the rule
  // that settles it needs no state.
  const auto winners = in_table_records();
  if (eligible(r) && std::find(winners.begin(), winners.end(), &r) == winners.end()) {
    const std::string problem =
        fmt::format("node id {:#010x} is also that of a member with a smaller name", r.id);
    if (r.problem != problem) spdlog::error("gossip: member {}: {}; rename one of them", r.name, problem);
    r.problem = problem;
  }
  return table_inputs() != before;
}

void Membership::forget_old(std::chrono::steady_clock::time_point now) {
  std::erase_if(records_, [&](const auto& entry) {
    const MemberRecord& r = entry.second;
    return !r.self && gone(r.state) && now - r.since > forget_after_;
  });
}

std::vector<Member> Membership::members(std::chrono::steady_clock::time_point now) const {
  std::vector<Member> out;
  for (const MemberRecord* r : in_table_records()) {
    Member m{r->name, r->id, r->metadata->address, r->metadata->weight, r->self};
    if (r->self)
      out.insert(out.begin(), m);
    else
      out.push_back(m);
  }
  for (const MemberRecord* r : departed_records(now)) {
    Member m{r->name, r->id, r->metadata->address, 0, false};
    m.departed = true;
    out.push_back(m);
  }
  return out;
}

std::vector<VipEntry> Membership::vip_entries() const {
  std::vector<VipEntry> out = vips_;
  const auto members = in_table_records();
  for (auto& v : out) {
    const std::uint32_t tag = vip_tag(v.key);
    std::vector<std::string> serving;
    for (const MemberRecord* r : members) {
      const auto& tags = r->metadata->vips;
      if (r->metadata->app_healthy && !r->metadata->restarting &&
          std::find(tags.begin(), tags.end(), tag) != tags.end())
        serving.push_back(r->name);
    }
    v.serving = std::move(serving);
  }
  return out;
}

std::vector<std::string> Membership::vip_labels(const MemberMetadata& metadata) const {
  std::vector<std::string> out;
  for (auto tag : metadata.vips) {
    auto it = std::find_if(vips_.begin(), vips_.end(),
                           [&](const VipEntry& v) { return vip_tag(v.key) == tag; });
    out.push_back(it != vips_.end() ? it->label : fmt::format("#{:08x}", tag));
  }
  return out;
}

}  // namespace mixlb
