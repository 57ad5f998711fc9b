#include "admin/results.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <iterator>
#include <stdexcept>
#include <type_traits>

namespace mixlb {

namespace {

using nlohmann::json;

const json& object_of(const json& j) {
  if (!j.is_object()) throw std::invalid_argument("expected a JSON object");
  return j;
}

// Reads `key` into `out` when it is there and not null; a value of the wrong
// type throws.
template <typename T>
void read(const json& j, std::string_view key, T& out) {
  const json& object = object_of(j);
  const auto it = object.find(key);
  if (it != object.end() && !it->is_null()) it->get_to(out);
}

template <typename T>
void read(const json& j, std::string_view key, std::optional<T>& out) {
  const json& object = object_of(j);
  const auto it = object.find(key);
  out.reset();
  if (it != object.end() && !it->is_null()) out = it->template get<T>();
}

template <typename T>
void write(json& j, std::string_view key, const std::optional<T>& value) {
  if (value) j[std::string(key)] = *value;
}

// An optional written as null when unset, for fields scripts expect to find.
template <typename T>
json or_null(const std::optional<T>& value) {
  return value ? json(*value) : json(nullptr);
}

}  // namespace

// --- stats, status -----------------------------------------------------------

void to_json(json& j, const NamedCounters& v) {
  j = {{"events", v.events}, {"drops", v.drops}, {"fib", v.fib}};
}
void from_json(const json& j, NamedCounters& v) {
  read(j, "events", v.events);
  read(j, "drops", v.drops);
  read(j, "fib", v.fib);
}

void to_json(json& j, const VipPackets& v) {
  j = {{"local_pkts", v.local_pkts},         {"local_bytes", v.local_bytes},
       {"fwd_pkts", v.fwd_pkts},             {"fwd_bytes", v.fwd_bytes},
       {"from_peer_pkts", v.from_peer_pkts}, {"from_peer_bytes", v.from_peer_bytes},
       {"drops", v.drops}};
}
void from_json(const json& j, VipPackets& v) {
  read(j, "local_pkts", v.local_pkts);
  read(j, "local_bytes", v.local_bytes);
  read(j, "fwd_pkts", v.fwd_pkts);
  read(j, "fwd_bytes", v.fwd_bytes);
  read(j, "from_peer_pkts", v.from_peer_pkts);
  read(j, "from_peer_bytes", v.from_peer_bytes);
  read(j, "drops", v.drops);
}

void to_json(json& j, const NodePackets& v) {
  j = {{"name", v.name}, {"self", v.self}, {"pkts", v.pkts}, {"bytes", v.bytes}};
}
void from_json(const json& j, NodePackets& v) {
  read(j, "name", v.name);
  read(j, "self", v.self);
  read(j, "pkts", v.pkts);
  read(j, "bytes", v.bytes);
}

void to_json(json& j, const VipStats& v) {
  j = {{"vip", v.vip}, {"backends", v.backends}};
  write(j, "weights", v.weights);
  write(j, "vip_id", v.vip_id);
  write(j, "counters", v.counters);
  write(j, "per_node", v.per_node);
}
void from_json(const json& j, VipStats& v) {
  read(j, "vip", v.vip);
  read(j, "backends", v.backends);
  read(j, "weights", v.weights);
  read(j, "vip_id", v.vip_id);
  read(j, "counters", v.counters);
  read(j, "per_node", v.per_node);
}

void to_json(json& j, const StatsResult& v) {
  j = {{"node", v.node},
       {"node_id", v.node_id},
       {"counters", v.counters},
       {"vips", v.vips},
       {"invalidation", v.invalidation},
       {"invalidation_latency", v.invalidation_latency}};
  if (!v.invalidation_apply.empty()) j["invalidation_apply"] = v.invalidation_apply;
}
void from_json(const json& j, StatsResult& v) {
  read(j, "node", v.node);
  read(j, "node_id", v.node_id);
  read(j, "counters", v.counters);
  read(j, "vips", v.vips);
  read(j, "invalidation", v.invalidation);
  read(j, "invalidation_latency", v.invalidation_latency);
  read(j, "invalidation_apply", v.invalidation_apply);
}

void to_json(json& j, const NodeRow& v) {
  j = {{"name", v.name},
       {"id", v.id},
       {"address", v.address},
       {"weight", v.weight},
       {"mac", v.mac},
       {"self", v.self},
       {"departed", v.departed},
       {"neighbour", v.neighbour},
       {"managed_neighbour", v.managed_neighbour}};
}
void from_json(const json& j, NodeRow& v) {
  read(j, "name", v.name);
  read(j, "id", v.id);
  read(j, "address", v.address);
  read(j, "weight", v.weight);
  read(j, "mac", v.mac);
  read(j, "self", v.self);
  read(j, "departed", v.departed);
  read(j, "neighbour", v.neighbour);
  read(j, "managed_neighbour", v.managed_neighbour);
}

void to_json(json& j, const InstanceInfo& v) {
  j = {{"pid", v.pid},
       {"lock", v.lock},
       {"host_record", v.host_record},
       {"adopted_maps", v.adopted_maps},
       {"adopted_link", v.adopted_link},
       {"on_stop", v.on_stop}};
}
void from_json(const json& j, InstanceInfo& v) {
  read(j, "pid", v.pid);
  read(j, "lock", v.lock);
  read(j, "host_record", v.host_record);
  read(j, "adopted_maps", v.adopted_maps);
  read(j, "adopted_link", v.adopted_link);
  read(j, "on_stop", v.on_stop);
}

void to_json(json& j, const ServiceCheckInfo& v) {
  j = {{"target", v.target}, {"services", v.services}, {"healthy", v.healthy}, {"last", v.last}};
}
void from_json(const json& j, ServiceCheckInfo& v) {
  read(j, "target", v.target);
  read(j, "services", v.services);
  read(j, "healthy", v.healthy);
  read(j, "last", v.last);
}

void to_json(json& j, const AppCheckInfo& v) {
  j = {{"kind", v.kind}};
  if (v.kind == "none") return;
  j["target"] = v.target;
  j["healthy"] = v.healthy;
  j["last"] = v.last;
  j["checks"] = v.checks;
}
void from_json(const json& j, AppCheckInfo& v) {
  read(j, "kind", v.kind);
  read(j, "target", v.target);
  read(j, "healthy", v.healthy);
  read(j, "last", v.last);
  read(j, "checks", v.checks);
}

void to_json(json& j, const GossipInfo& v) {
  j = {{"enabled", v.enabled}};
  if (!v.enabled) return;
  j.update({{"address", v.address},
            {"cluster", v.cluster},
            {"encrypted", v.encrypted},
            {"joined", v.joined},
            {"members_alive", v.members_alive},
            {"drained", v.drained},
            {"flow_grace_ms", v.flow_grace_ms},
            {"table_rebuilds", v.table_rebuilds},
            {"user_events", v.user_events},
            {"last_sync_error", v.last_sync_error}});
}
void from_json(const json& j, GossipInfo& v) {
  read(j, "enabled", v.enabled);
  read(j, "address", v.address);
  read(j, "cluster", v.cluster);
  read(j, "encrypted", v.encrypted);
  read(j, "joined", v.joined);
  read(j, "members_alive", v.members_alive);
  read(j, "drained", v.drained);
  read(j, "flow_grace_ms", v.flow_grace_ms);
  read(j, "table_rebuilds", v.table_rebuilds);
  read(j, "user_events", v.user_events);
  read(j, "last_sync_error", v.last_sync_error);
}

void to_json(json& j, const ConntrackCounts& v) {
  j = {{"hit", v.hit}, {"miss", v.miss}, {"insert", v.insert}, {"insert_fail", v.insert_fail}};
}
void from_json(const json& j, ConntrackCounts& v) {
  read(j, "hit", v.hit);
  read(j, "miss", v.miss);
  read(j, "insert", v.insert);
  read(j, "insert_fail", v.insert_fail);
}

void to_json(json& j, const StatusResult& v) {
  to_json(j, static_cast<const StatsResult&>(v));
  j.update({{"interface", v.interface},
            {"ifindex", v.ifindex},
            {"xdp_mode", v.xdp_mode},
            {"uplink", v.uplink},
            {"address", v.address},
            {"mac", v.mac},
            {"maglev_table_size", v.maglev_table_size},
            {"phase", v.phase},
            {"nodes", v.nodes}});
  write(j, "metrics", v.metrics);
  write(j, "leave", v.leave);
  write(j, "instance", v.instance);
  write(j, "health", v.health);
  write(j, "gossip", v.gossip);
  write(j, "conntrack", v.conntrack);
}
void from_json(const json& j, StatusResult& v) {
  from_json(j, static_cast<StatsResult&>(v));
  read(j, "interface", v.interface);
  read(j, "ifindex", v.ifindex);
  read(j, "xdp_mode", v.xdp_mode);
  read(j, "uplink", v.uplink);
  read(j, "address", v.address);
  read(j, "mac", v.mac);
  read(j, "maglev_table_size", v.maglev_table_size);
  read(j, "metrics", v.metrics);
  read(j, "phase", v.phase);
  read(j, "leave", v.leave);
  read(j, "instance", v.instance);
  read(j, "health", v.health);
  read(j, "gossip", v.gossip);
  read(j, "nodes", v.nodes);
  read(j, "conntrack", v.conntrack);
}

// --- members -----------------------------------------------------------------

void to_json(json& j, const MemberRow& v) {
  j = {{"name", v.name},
       {"self", v.self},
       {"state", v.state},
       {"incarnation", v.incarnation},
       {"gossip_address", v.gossip_address},
       {"in_tables", v.in_tables},
       {"since_s", v.since_s}};
  if (v.departed) j["departed"] = true;
  write(j, "flows_kept_s", v.flows_kept_s);
  write(j, "address", v.address);
  write(j, "mac", v.mac);
  write(j, "weight", v.weight);
  write(j, "app_healthy", v.app_healthy);
  write(j, "restarting", v.restarting);
  write(j, "vips", v.vips);
  write(j, "problem", v.problem);
}
void from_json(const json& j, MemberRow& v) {
  read(j, "name", v.name);
  read(j, "self", v.self);
  read(j, "state", v.state);
  read(j, "incarnation", v.incarnation);
  read(j, "gossip_address", v.gossip_address);
  read(j, "in_tables", v.in_tables);
  read(j, "since_s", v.since_s);
  read(j, "departed", v.departed);
  read(j, "flows_kept_s", v.flows_kept_s);
  read(j, "address", v.address);
  read(j, "mac", v.mac);
  read(j, "weight", v.weight);
  read(j, "app_healthy", v.app_healthy);
  read(j, "restarting", v.restarting);
  read(j, "vips", v.vips);
  read(j, "problem", v.problem);
}

void to_json(json& j, const GossipCounters& v) {
  j = {{"health_score", v.health_score},
       {"probes", v.probes},
       {"probes_failed", v.probes_failed},
       {"suspicions_raised", v.suspicions_raised},
       {"deaths_declared", v.deaths_declared},
       {"refutations", v.refutations},
       {"bytes_sent", v.bytes_sent},
       {"bytes_received", v.bytes_received},
       {"drops", v.drops},
       {"events_dropped", v.events_dropped},
       {"last_drop", v.last_drop},
       {"last_error", v.last_error}};
}
void from_json(const json& j, GossipCounters& v) {
  read(j, "health_score", v.health_score);
  read(j, "probes", v.probes);
  read(j, "probes_failed", v.probes_failed);
  read(j, "suspicions_raised", v.suspicions_raised);
  read(j, "deaths_declared", v.deaths_declared);
  read(j, "refutations", v.refutations);
  read(j, "bytes_sent", v.bytes_sent);
  read(j, "bytes_received", v.bytes_received);
  read(j, "drops", v.drops);
  read(j, "events_dropped", v.events_dropped);
  read(j, "last_drop", v.last_drop);
  read(j, "last_error", v.last_error);
}

void to_json(json& j, const MembersResult& v) {
  j = {{"node", v.node},
       {"cluster", v.cluster},
       {"gossip_address", v.gossip_address},
       {"members", v.members}};
  write(j, "states", v.states);
  j["gossip"] = v.gossip ? json(*v.gossip) : json{{"error", v.gossip_error}};
}
void from_json(const json& j, MembersResult& v) {
  read(j, "node", v.node);
  read(j, "cluster", v.cluster);
  read(j, "gossip_address", v.gossip_address);
  read(j, "members", v.members);
  read(j, "states", v.states);
  v.gossip.reset();
  v.gossip_error.clear();
  const auto gossip = object_of(j).find("gossip");
  if (gossip == j.end() || !gossip->is_object()) return;
  if (gossip->contains("error")) {
    read(*gossip, "error", v.gossip_error);
  } else {
    v.gossip = gossip->get<GossipCounters>();
  }
}

void keep_member_states(MembersResult& result, std::vector<std::string> states) {
  std::erase_if(result.members, [&](const MemberRow& m) {
    return std::find(states.begin(), states.end(), m.state) == states.end();
  });
  result.states = std::move(states);
}

// --- drain, leave, reload, which ----------------------------------------------

void to_json(json& j, const DrainResult& v) {
  j = {{"node", v.node}, {"drained", v.drained}, {"weight", v.weight}};
}
void from_json(const json& j, DrainResult& v) {
  read(j, "node", v.node);
  read(j, "drained", v.drained);
  read(j, "weight", v.weight);
}

void to_json(json& j, const LeaveResult& v) {
  j = {{"node", v.node}, {"leaving", v.leaving}};
  write(j, "timeout_ms", v.timeout_ms);
  write(j, "state", v.state);
}
void from_json(const json& j, LeaveResult& v) {
  read(j, "node", v.node);
  read(j, "leaving", v.leaving);
  read(j, "timeout_ms", v.timeout_ms);
  read(j, "state", v.state);
}

void to_json(json& j, const KeyMemberAnswer& v) {
  j = {{"member", v.member}, {"outcome", v.outcome}, {"keys", v.keys}};
  if (v.error) j["error"] = *v.error;
}
void from_json(const json& j, KeyMemberAnswer& v) {
  read(j, "member", v.member);
  read(j, "outcome", v.outcome);
  read(j, "error", v.error);
  read(j, "keys", v.keys);
}

void to_json(json& j, const KeysResult& v) {
  j = {{"op", v.op},           {"ok", v.ok},           {"timed_out", v.timed_out},
       {"elapsed_s", v.elapsed_s}, {"members", v.members}, {"local_keys", v.local_keys}};
  if (v.key_id) j["key_id"] = *v.key_id;
  if (v.key) j["key"] = *v.key;
}
void from_json(const json& j, KeysResult& v) {
  read(j, "op", v.op);
  read(j, "key_id", v.key_id);
  read(j, "key", v.key);
  read(j, "ok", v.ok);
  read(j, "timed_out", v.timed_out);
  read(j, "elapsed_s", v.elapsed_s);
  read(j, "members", v.members);
  read(j, "local_keys", v.local_keys);
}

void to_json(json& j, const ReloadResult& v) {
  j = {{"file", v.file},
       {"changed", v.changed},
       {"applied", v.applied},
       {"needs_restart", v.needs_restart}};
}
void from_json(const json& j, ReloadResult& v) {
  read(j, "file", v.file);
  read(j, "changed", v.changed);
  read(j, "applied", v.applied);
  read(j, "needs_restart", v.needs_restart);
}

void to_json(json& j, const WhichFlow& v) {
  j = {{"proto", v.proto}, {"src", v.src}, {"sport", v.sport}, {"dst", v.dst}, {"dport", v.dport}};
}
void from_json(const json& j, WhichFlow& v) {
  read(j, "proto", v.proto);
  read(j, "src", v.src);
  read(j, "sport", v.sport);
  read(j, "dst", v.dst);
  read(j, "dport", v.dport);
}

void to_json(json& j, const WhichResult& v) {
  j = {{"flow", v.flow},
       {"vip", or_null(v.vip)},
       {"node", or_null(v.node)},
       {"node_id", v.node_id},
       {"self", v.self},
       {"verdict", v.verdict},
       {"from_conntrack", v.from_conntrack}};
  write(j, "drop_reason", v.drop_reason);
}
void from_json(const json& j, WhichResult& v) {
  read(j, "flow", v.flow);
  read(j, "vip", v.vip);
  read(j, "node", v.node);
  read(j, "node_id", v.node_id);
  read(j, "self", v.self);
  read(j, "verdict", v.verdict);
  read(j, "drop_reason", v.drop_reason);
  read(j, "from_conntrack", v.from_conntrack);
}

// --- vips --------------------------------------------------------------------

void to_json(json& j, const PacketRate& v) {
  j = {{"pkts_per_s", v.pkts_per_s}, {"bytes_per_s", v.bytes_per_s}};
}
void from_json(const json& j, PacketRate& v) {
  read(j, "pkts_per_s", v.pkts_per_s);
  read(j, "bytes_per_s", v.bytes_per_s);
}

void to_json(json& j, const VipBackend& v) {
  j = {{"name", v.name},
       {"self", v.self},
       {"in_table", v.in_table},
       {"pkts", v.pkts},
       {"bytes", v.bytes}};
  write(j, "weight", v.weight);
  write(j, "rate", v.rate);
}
void from_json(const json& j, VipBackend& v) {
  read(j, "name", v.name);
  read(j, "self", v.self);
  read(j, "weight", v.weight);
  read(j, "in_table", v.in_table);
  read(j, "pkts", v.pkts);
  read(j, "bytes", v.bytes);
  read(j, "rate", v.rate);
}

void to_json(json& j, const VipTraffic& v) {
  j = {{"vip", v.vip},
       {"pkts", v.pkts},
       {"bytes", v.bytes},
       {"from_peer_pkts", v.from_peer_pkts},
       {"from_peer_bytes", v.from_peer_bytes},
       {"dropped", v.dropped},
       {"backends", v.backends}};
  write(j, "vip_id", v.vip_id);
  write(j, "rate", v.rate);
  write(j, "from_peer_rate", v.from_peer_rate);
}
void from_json(const json& j, VipTraffic& v) {
  read(j, "vip", v.vip);
  read(j, "vip_id", v.vip_id);
  read(j, "pkts", v.pkts);
  read(j, "bytes", v.bytes);
  read(j, "from_peer_pkts", v.from_peer_pkts);
  read(j, "from_peer_bytes", v.from_peer_bytes);
  read(j, "dropped", v.dropped);
  read(j, "rate", v.rate);
  read(j, "from_peer_rate", v.from_peer_rate);
  read(j, "backends", v.backends);
}

void to_json(json& j, const VipsResult& v) {
  j = {{"node", v.node}, {"vips", v.vips}};
  write(j, "interval_s", v.interval_s);
}
void from_json(const json& j, VipsResult& v) {
  read(j, "node", v.node);
  read(j, "interval_s", v.interval_s);
  read(j, "vips", v.vips);
}

// --- ct ----------------------------------------------------------------------

void to_json(json& j, const CtRow& v) {
  j = {{"client", v.client}, {"vip", v.vip},     {"proto", v.proto},  {"node", v.node},
       {"state", v.state},   {"flags", v.flags}, {"idle_s", v.idle_s}};
  write(j, "age_s", v.age_s);
}
void from_json(const json& j, CtRow& v) {
  read(j, "client", v.client);
  read(j, "vip", v.vip);
  read(j, "proto", v.proto);
  read(j, "node", v.node);
  read(j, "state", v.state);
  read(j, "flags", v.flags);
  read(j, "age_s", v.age_s);
  read(j, "idle_s", v.idle_s);
}

void to_json(json& j, const CtResult& v) {
  j = {{"node", v.node},       {"entries", v.entries}, {"capacity", v.capacity},
       {"matched", v.matched}, {"filter", v.filter},   {"rows", v.rows}};
}
void from_json(const json& j, CtResult& v) {
  read(j, "node", v.node);
  read(j, "entries", v.entries);
  read(j, "capacity", v.capacity);
  read(j, "matched", v.matched);
  read(j, "filter", v.filter);
  read(j, "rows", v.rows);
}

// --- monitor -----------------------------------------------------------------

std::string node_id_text(std::uint32_t id) { return fmt::format("{:#010x}", id); }

std::optional<int> log_level_rank(std::string_view level) {
  const auto it = std::find(std::begin(kLogLevels), std::end(kLogLevels), level);
  if (it == std::end(kLogLevels)) return std::nullopt;
  return static_cast<int>(it - std::begin(kLogLevels));
}

std::string event_time(std::chrono::system_clock::time_point at) {
  const auto ms = std::chrono::floor<std::chrono::milliseconds>(at.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", utc, ms - std::int64_t{seconds} * 1000);
}

void to_json(json& j, const MonitorStarted& v) {
  j = {{"stream", "monitor"}, {"node", v.node}, {"level", v.level}};
}
void from_json(const json& j, MonitorStarted& v) {
  read(j, "node", v.node);
  read(j, "level", v.level);
}

void to_json(json& j, const MemberChange& v) {
  j = {{"time", v.time}, {"name", v.name}, {"state", v.state}};
  write(j, "previous", v.previous);
  write(j, "weight", v.weight);
  write(j, "previous_weight", v.previous_weight);
  write(j, "restarting", v.restarting);
}
void from_json(const json& j, MemberChange& v) {
  read(j, "time", v.time);
  read(j, "name", v.name);
  read(j, "state", v.state);
  read(j, "previous", v.previous);
  read(j, "weight", v.weight);
  read(j, "previous_weight", v.previous_weight);
  read(j, "restarting", v.restarting);
}

void to_json(json& j, const HealthChange& v) {
  j = {{"time", v.time}, {"node", v.node}, {"healthy", v.healthy}, {"reason", v.reason}};
}
void from_json(const json& j, HealthChange& v) {
  read(j, "time", v.time);
  read(j, "node", v.node);
  read(j, "healthy", v.healthy);
  read(j, "reason", v.reason);
}

void to_json(json& j, const LogLine& v) {
  j = {{"time", v.time}, {"level", v.level}, {"message", v.message}};
}
void from_json(const json& j, LogLine& v) {
  read(j, "time", v.time);
  read(j, "level", v.level);
  read(j, "message", v.message);
}

void to_json(json& j, const EventsDropped& v) {
  j = {{"time", v.time}, {"count", v.count}, {"total", v.total}};
}
void from_json(const json& j, EventsDropped& v) {
  read(j, "time", v.time);
  read(j, "count", v.count);
  read(j, "total", v.total);
}

namespace {

// The "event" word of each kind of event, in the variant's order.
constexpr std::string_view kEventKinds[] = {"member", "health", "log", "dropped"};
static_assert(std::size(kEventKinds) == std::variant_size_v<decltype(MonitorEvent::event)>);

template <std::size_t I = 0>
void read_event(const json& j, std::string_view kind, MonitorEvent& v) {
  using Variant = decltype(MonitorEvent::event);
  if constexpr (I < std::variant_size_v<Variant>) {
    if (kind == kEventKinds[I]) {
      v.event = j.get<std::variant_alternative_t<I, Variant>>();
      return;
    }
    read_event<I + 1>(j, kind, v);
  } else {
    throw std::invalid_argument(fmt::format("unknown monitor event \"{}\"", kind));
  }
}

}  // namespace

void to_json(json& j, const MonitorEvent& v) {
  std::visit([&](const auto& event) { to_json(j, event); }, v.event);
  j["event"] = kEventKinds[v.event.index()];
}
void from_json(const json& j, MonitorEvent& v) {
  std::string kind;
  read(j, "event", kind);
  read_event(j, kind, v);
}

}  // namespace mixlb
