#pragma once
// The text mixlbctl prints for each command's result (results.h): aligned
// tables and one-line summaries, built from the typed results so that a
// layout is tested with canned values, no daemon needed. What a result
// does not hold (an optional left unset, an empty string) shows as "-".
// The command table (commands.h) names the renderer of each command.
#include <string>

#include "admin/results.h"

namespace mixlb {

// A header, then aligned tables of nodes and VIPs, then the conntrack
// counters. A VIP's backends show their weight when it is not 1 ("mix2:3"),
// and serving nodes drained to weight 0 follow them as "name:0".
std::string render_status(const StatusResult& status);

// The global counters (events, drops by reason, bpf_fib_lookup results; the
// non-zero ones only for drops and results), then one row per (VIP, node):
// packets and bytes this node served itself ("local") or forwarded to that
// node ("forwarded").
std::string render_stats(const StatsResult& stats);

// An ipvsadm-like table: per VIP the packets and bytes this node balanced
// and their rates, then one row per backend with its weight, then what
// peers balanced to this node.
std::string render_vips(const VipsResult& vips);
std::string render_ct(const CtResult& ct);

// One row per member known to gossip (state, incarnation, addresses,
// weight, app health, whether this node's tables hold it, its VIP ports),
// the reason a live member is left out, then this node's gossip counters.
std::string render_members(const MembersResult& members);

// One line each.
std::string render_drain(const DrainResult& drain);
// `sockets`: the JSON the daemon's SocketService::view() makes, plus what an
// action did (`adopted`, `skipped`, `switched`, `drained`).
std::string render_sockets(const nlohmann::json& sockets);
std::string render_leave(const LeaveResult& leave);
// What a reload applied and what waits for a restart.
std::string render_reload(const ReloadResult& reload);
// A new key with what to do with it; or what each member answered (the keys
// it holds, the primary first and starred), after a line for the whole.
std::string render_keys(const KeysResult& keys);

// Where a flow goes, in one line, e.g.
//   10.100.0.1:80/tcp from 192.0.2.1:40000 -> mix2 (forwarded, Maglev)
std::string render_which(const WhichResult& which);

// The line that opens a monitor stream, then one line per event:
//   2024-05-01T10:00:00.123Z member mix2: alive -> suspect
std::string render_monitor_started(const MonitorStarted& started);
std::string render_monitor_event(const MonitorEvent& event);

}  // namespace mixlb
