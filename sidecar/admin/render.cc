#include "admin/render.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace mixlb {

namespace {

std::string dash(std::string_view text) { return text.empty() ? "-" : std::string(text); }

template <typename T>
std::string dash(const std::optional<T>& value) {
  return value ? fmt::format("{}", *value) : "-";
}

std::string yes_no(bool value) { return value ? "yes" : "no"; }

std::string joined(const std::vector<std::string>& items, std::string_view separator) {
  return items.empty() ? "-" : fmt::format("{}", fmt::join(items, separator));
}

struct Column {
  std::string title;
  bool numeric = false;  // right-aligned
};

// Columns padded to their widest cell, two spaces apart, indented by two;
// no trailing blanks.
std::string render_table(const std::vector<Column>& columns,
                         const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths(columns.size());
  for (std::size_t c = 0; c < columns.size(); ++c) widths[c] = columns[c].title.size();
  for (const auto& row : rows) {
    for (std::size_t c = 0; c < columns.size() && c < row.size(); ++c) {
      widths[c] = std::max(widths[c], row[c].size());
    }
  }
  auto line = [&](auto cell) {
    std::string out = "  ";
    for (std::size_t c = 0; c < columns.size(); ++c) {
      const std::string& text = cell(c);
      const std::size_t pad = widths[c] - std::min(widths[c], text.size());
      if (c != 0) out += "  ";
      if (columns[c].numeric) out.append(pad, ' ');
      out += text;
      if (!columns[c].numeric) out.append(pad, ' ');
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out.push_back('\n');
    return out;
  };
  std::string table = line([&](std::size_t c) -> const std::string& { return columns[c].title; });
  static const std::string kEmpty;
  for (const auto& row : rows) {
    table +=
        line([&](std::size_t c) -> const std::string& { return c < row.size() ? row[c] : kEmpty; });
  }
  return table;
}

// "mix1,mix2:3,mix3:0": the table's backends, with their weight when it is
// not 1, then the serving nodes drained to 0. Without weights, the names.
std::string backends_text(const VipStats& vip) {
  if (!vip.weights) return joined(vip.backends, ",");
  std::vector<std::string> items;
  for (const auto& backend : vip.backends) {
    std::string item = backend;
    const auto weight = vip.weights->find(backend);
    if (weight != vip.weights->end() && weight->second != 1) item += fmt::format(":{}", weight->second);
    items.push_back(std::move(item));
  }
  for (const auto& [name, weight] : *vip.weights) {
    if (weight == 0) items.push_back(name + ":0");
  }
  return joined(items, ",");
}

// "name count  name count", the counters in name order; with skip_zero, the
// zero ones are left out. "none" when nothing is left.
std::string counter_line(const Counts& counters, bool skip_zero) {
  std::string out;
  for (const auto& [name, value] : counters) {
    if (skip_zero && value == 0) continue;
    if (!out.empty()) out += "  ";
    out += fmt::format("{} {}", name, value);
  }
  return out.empty() ? "none" : out;
}

// An address as it stands before ":port": IPv6 in brackets.
std::string host_text(std::string_view address) {
  std::string text = dash(address);
  if (text.find(':') != std::string::npos) text = "[" + text + "]";
  return text;
}

std::string rate_text(const std::optional<PacketRate>& rate, double PacketRate::*which) {
  return rate ? fmt::format("{:.0f}", (*rate).*which) : "-";
}

}  // namespace

std::string render_status(const StatusResult& s) {
  std::string out = fmt::format("mixlb node {} (id {})\n", dash(s.node), node_id_text(s.node_id));
  out += fmt::format("  interface  {} (ifindex {}), xdp {}{}\n", dash(s.interface), s.ifindex,
                     dash(s.xdp_mode),
                     s.uplink == "missing"    ? ", UPLINK MISSING: nothing is balanced here"
                     : s.uplink == "detached" ? ", PROGRAM DETACHED: attaching it again"
                                              : "");
  if (s.phase == "leaving") out += fmt::format("  LEAVING    {}\n", dash(s.leave));
  if (const auto& instance = s.instance) {
    const bool adopted = instance->adopted_maps || instance->adopted_link;
    out += fmt::format("  instance   pid {}, on SIGTERM: {}{}\n", instance->pid,
                       dash(instance->on_stop),
                       adopted ? fmt::format(" (adopted the data path of an earlier mixlb: maps {}, "
                                             "link {})",
                                             yes_no(instance->adopted_maps),
                                             yes_no(instance->adopted_link))
                               : "");
  }
  out += fmt::format("  address    {}, mac {}\n", dash(s.address), dash(s.mac));
  out += fmt::format("  maglev     {} slots per VIP\n", s.maglev_table_size);
  if (s.metrics)
    out += fmt::format("  metrics    {}\n", *s.metrics == "off" ? *s.metrics : "http://" + *s.metrics + "/metrics");
  if (const auto& health = s.health; health && health->kind != "none" && !health->checks.empty()) {
    // One line per check (an older daemon sends one check, as its target).
    out += fmt::format("  app        {}\n", health->healthy ? "healthy" : "UNHEALTHY");
    for (const auto& c : health->checks)
      out += fmt::format("    {} for {}: {} (last probe: {})\n", dash(c.target),
                         c.services.empty() ? std::string("-") : fmt::format("{}", fmt::join(c.services, ", ")),
                         c.healthy ? "healthy" : "UNHEALTHY", dash(c.last));
  } else if (const auto& health = s.health; health && health->kind != "none") {
    out += fmt::format("  app        {} {}: {} (last probe: {})\n", health->kind,
                       dash(health->target), health->healthy ? "healthy" : "UNHEALTHY",
                       dash(health->last));
  } else if (health) {
    out += "  app        not checked\n";
  }

  if (const auto& gossip = s.gossip; gossip && gossip->enabled) {
    out += fmt::format("  gossip     {}, cluster '{}', {}, {} member(s) alive{}{}\n",
                       dash(gossip->address), gossip->cluster,
                       gossip->encrypted ? "encrypted" : "NOT ENCRYPTED", gossip->members_alive,
                       gossip->joined ? "" : ", joining", gossip->drained ? ", DRAINED" : "");
    if (!gossip->last_sync_error.empty())
      out += "  tables     NOT UPDATED: " + gossip->last_sync_error + "\n";
  } else if (gossip) {
    out += "  gossip     off: the peer list is the member set\n";
  }

  out += "\nnodes\n";
  if (s.nodes.empty()) {
    out += "  none\n";
  } else {
    std::vector<std::vector<std::string>> rows;
    for (const auto& node : s.nodes) {
      rows.push_back({node.name + (node.departed ? " (departed)" : ""), node_id_text(node.id),
                      dash(node.address), std::to_string(node.weight), dash(node.mac),
                      dash(node.neighbour)});
    }
    out += render_table(
        {{"NAME"}, {"ID", true}, {"ADDRESS"}, {"WEIGHT", true}, {"MAC"}, {"NEIGHBOUR"}}, rows);
  }

  out += "\nvips\n";
  if (s.vips.empty()) {
    out += "  none\n";
  } else {
    std::vector<std::vector<std::string>> rows;
    std::vector<std::vector<std::string>> drop_lines;  // per VIP, the non-zero reasons
    for (const auto& vip : s.vips) {
      std::vector<std::string> reasons;
      if (!vip.counters) {
        rows.push_back({vip.vip, backends_text(vip), "-", "-", "-", "-", "-", "-", "-"});
        drop_lines.push_back({});
        continue;
      }
      const VipPackets& c = *vip.counters;
      std::uint64_t dropped = 0;
      for (const auto& [reason, count] : c.drops) {
        dropped += count;
        if (count != 0) reasons.push_back(fmt::format("dropped {}: {}", reason, count));
      }
      rows.push_back({vip.vip, backends_text(vip), std::to_string(c.local_pkts),
                      std::to_string(c.local_bytes), std::to_string(c.fwd_pkts),
                      std::to_string(c.fwd_bytes), std::to_string(c.from_peer_pkts),
                      std::to_string(c.from_peer_bytes), std::to_string(dropped)});
      drop_lines.push_back(std::move(reasons));
    }
    const std::vector<Column> columns = {{"VIP"},
                                         {"BACKENDS"},
                                         {"LOCAL PKTS", true},
                                         {"LOCAL BYTES", true},
                                         {"FWD PKTS", true},
                                         {"FWD BYTES", true},
                                         {"PEER PKTS", true},
                                         {"PEER BYTES", true},
                                         {"DROPPED", true}};
    // The table is rendered whole for its widths, then each VIP's drop
    // reasons are slotted in under its row.
    const std::string table = render_table(columns, rows);
    std::size_t at = table.find('\n') + 1;
    out += table.substr(0, at);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const std::size_t end = table.find('\n', at) + 1;
      out += table.substr(at, end - at);
      at = end;
      for (const auto& reason : drop_lines[i]) out += "    " + reason + "\n";
    }
  }

  out += "\nconntrack\n";
  if (const auto& ct = s.conntrack) {
    out += fmt::format("  hit {}  miss {}  insert {}  insert_fail {}\n", ct->hit, ct->miss,
                       ct->insert, ct->insert_fail);
  } else {
    out += "  -\n";
  }
  return out;
}

std::string render_stats(const StatsResult& stats) {
  std::string out = fmt::format("mixlb node {} (id {})\n", dash(stats.node), node_id_text(stats.node_id));
  out += "\ncounters\n";
  out += "  events  " + counter_line(stats.counters.events, false) + "\n";
  out += "  drops   " + counter_line(stats.counters.drops, true) + "\n";
  out += "  fib     " + counter_line(stats.counters.fib, true) + "\n";
  if (!stats.invalidation.empty()) {
    const auto& l = stats.invalidation_latency;
    auto get = [&](const char* k) { return l.contains(k) ? l.at(k) : 0; };
    out += fmt::format("  invalidation by {}", stats.invalidation);
    if (stats.invalidation_apply == "kernel") out += ", applied in the kernel";
    if (stats.invalidation_apply == "per_flow") out += ", applied a flow per syscall";
    out += ": close-to-delete latency";
    out += get("samples") == 0 ? " -\n"
                               : fmt::format(" p50 {} us, p99 {} us (last {} applied)\n", get("p50_us"),
                                             get("p99_us"), get("samples"));
  }

  out += "\nper VIP and node\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& vip : stats.vips) {
    if (!vip.per_node || vip.per_node->empty()) {
      rows.push_back({vip.vip, "-", "-", "-", "-", "-"});
      continue;
    }
    for (const auto& node : *vip.per_node) {
      std::string weight = "-";
      if (vip.weights) {
        if (const auto w = vip.weights->find(node.name); w != vip.weights->end())
          weight = std::to_string(w->second);
      }
      rows.push_back({vip.vip, node.name, weight, node.self ? "local" : "forwarded",
                      std::to_string(node.pkts), std::to_string(node.bytes)});
    }
  }
  if (rows.empty()) {
    out += "  none\n";
  } else {
    out += render_table(
        {{"VIP"}, {"NODE"}, {"WEIGHT", true}, {"ROLE"}, {"PKTS", true}, {"BYTES", true}}, rows);
  }
  return out;
}

std::string render_vips(const VipsResult& result) {
  std::string out = fmt::format("mixlb node {}: VIP traffic balanced here, {}\n", dash(result.node),
                                result.interval_s
                                    ? fmt::format("rates over the last {:.1f} s", *result.interval_s)
                                    : std::string("no rates yet (the daemon samples every second)"));
  if (result.vips.empty()) return out + "  none\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& vip : result.vips) {
    rows.push_back({vip.vip, "", std::to_string(vip.pkts), std::to_string(vip.bytes),
                    rate_text(vip.rate, &PacketRate::pkts_per_s),
                    rate_text(vip.rate, &PacketRate::bytes_per_s), std::to_string(vip.dropped)});
    for (const auto& backend : vip.backends) {
      std::string name = "  -> " + backend.name;
      if (backend.self) name += " (this node)";
      if (!backend.weight) {
        name += " (not serving, flows kept)";
      } else if (!backend.in_table) {
        name += *backend.weight == 0 ? " (drained)" : " (not in the table)";
      }
      rows.push_back({name, dash(backend.weight), std::to_string(backend.pkts),
                      std::to_string(backend.bytes), rate_text(backend.rate, &PacketRate::pkts_per_s),
                      rate_text(backend.rate, &PacketRate::bytes_per_s), ""});
    }
    rows.push_back({"  <- from peers", "", std::to_string(vip.from_peer_pkts),
                    std::to_string(vip.from_peer_bytes),
                    rate_text(vip.from_peer_rate, &PacketRate::pkts_per_s),
                    rate_text(vip.from_peer_rate, &PacketRate::bytes_per_s), ""});
  }
  return out + render_table({{"VIP / BACKEND"},
                             {"WEIGHT", true},
                             {"PKTS", true},
                             {"BYTES", true},
                             {"PKTS/S", true},
                             {"BYTES/S", true},
                             {"DROPPED", true}},
                            rows);
}

std::string render_ct(const CtResult& ct) {
  std::string out = fmt::format("mixlb node {}: connection table {} of {} entries", dash(ct.node),
                                ct.entries, ct.capacity);
  if (!ct.filter.empty()) out += fmt::format("; {} match {}", ct.matched, fmt::join(ct.filter, ", "));
  out += ct.rows.size() < ct.matched ? fmt::format("; the {} most recent:\n", ct.rows.size()) : "\n";
  if (ct.rows.empty()) return out;
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : ct.rows) {
    rows.push_back({r.client, r.vip + "/" + r.proto, r.node, r.state, r.flags,
                    r.age_s ? fmt::format("{:.1f}", *r.age_s) : "-", fmt::format("{:.1f}", r.idle_s)});
  }
  return out + render_table({{"CLIENT"},
                             {"VIP"},
                             {"NODE"},
                             {"STATE"},
                             {"FLAGS"},
                             {"AGE S", true},
                             {"IDLE S", true}},
                            rows);
}

std::string render_members(const MembersResult& members) {
  std::string out = fmt::format("mixlb cluster '{}' seen from {} (gossip {})\n", members.cluster,
                                dash(members.node), dash(members.gossip_address));
  if (members.states) out += fmt::format("  members {}\n", fmt::join(*members.states, " or "));
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> problems;
  for (const auto& m : members.members) {
    std::string app = m.app_healthy ? (*m.app_healthy ? "ok" : "FAILING") : "-";
    if (m.restarting == true) app += ", restarting";
    // A departed member is in no table but still gets its established flows.
    std::string tables = yes_no(m.in_tables);
    if (m.departed) tables = fmt::format("flows only, {:.0f} s left", m.flows_kept_s.value_or(0.0));
    rows.push_back({m.name + (m.self ? " (self)" : ""), dash(m.state),
                    std::to_string(m.incarnation), dash(m.gossip_address), dash(m.address),
                    dash(m.weight), app, tables, m.vips ? joined(*m.vips, ",") : "-"});
    if (m.problem) problems.push_back(fmt::format("  {}: {}\n", m.name, *m.problem));
  }
  if (rows.empty()) {
    out += "  none\n";
  } else {
    out += render_table({{"NAME"},
                         {"STATE"},
                         {"INC", true},
                         {"GOSSIP"},
                         {"ADDRESS"},
                         {"WEIGHT", true},
                         {"APP"},
                         {"TABLES"},
                         {"VIPS"}},
                        rows);
  }
  for (const auto& p : problems) out += p;
  if (const auto& g = members.gossip) {
    out += fmt::format(
        "\ngossip  probes {} (failed {}), suspicions raised {}, deaths declared {}, refutations "
        "{}, local health {}\n        sent {} B, received {} B, dropped {} message(s){}{}\n",
        g->probes, g->probes_failed, g->suspicions_raised, g->deaths_declared, g->refutations,
        g->health_score, g->bytes_sent, g->bytes_received, g->drops,
        g->last_drop.empty() ? std::string() : " (last: " + g->last_drop + ")",
        g->events_dropped == 0 ? std::string()
                               : fmt::format(", {} user event(s) over the queue bound", g->events_dropped));
  } else if (!members.gossip_error.empty()) {
    out += "\ngossip  " + members.gossip_error + "\n";
  }
  return out;
}

std::string render_leave(const LeaveResult& leave) {
  if (leave.state)
    return fmt::format("{} is already leaving: {}\n", dash(leave.node), *leave.state);
  return fmt::format("{} is leaving: no new flows from now on; established connections are served "
                     "until they end (at most {} ms), then mixlb removes the data path and exits\n",
                     dash(leave.node), dash(leave.timeout_ms));
}

std::string render_drain(const DrainResult& drain) {
  if (drain.drained) {
    return fmt::format("{} drained: weight 0 is published, new flows go to other nodes; "
                       "established connections stay\n",
                       dash(drain.node));
  }
  return fmt::format("{} serving again with weight {}\n", dash(drain.node), drain.weight);
}

std::string render_sockets(const nlohmann::json& result) {
  using nlohmann::json;
  std::string out;
  // What an action did, above the view it left.
  if (result.contains("adopted")) {
    for (const auto& r : result["adopted"])
      out += fmt::format("adopted {} socket(s) of {} as generation {}{}\n", r.value("sockets", 0),
                         r.value("service", std::string("-")), r.value("generation", 0),
                         r.value("active", false) ? ", active" : ", waiting for `sockets switch`");
    for (const auto& k : result.value("skipped", json::array()))
      out += fmt::format("  left fd {}: {}\n", k.value("fd", 0), k.value("why", std::string("-")));
  }
  if (result.contains("switched"))
    out += fmt::format("{} switched to generation {}\n", result["switched"].value("service", std::string("-")),
                       result["switched"].value("generation", 0));
  if (result.contains("drained"))
    out += fmt::format("{} generation {} drained\n", result["drained"].value("service", std::string("-")),
                       result["drained"].value("generation", 0));
  const auto& services = result.value("services", json::array());
  if (services.empty()) return out + "no managed sockets: hand the app's sockets over with `mixlbctl sockets "
                                     "adopt --pid PID`\n";
  for (const auto& s : services) {
    out += fmt::format("{} (policy {})\n", s.value("service", std::string("-")), s.value("policy", std::string("-")));
    std::vector<std::vector<std::string>> rows;
    for (const auto& g : s.value("generations", json::array())) {
      auto count = [&](const char* key) { return g.contains(key) ? std::to_string(g[key].get<std::uint64_t>()) : "-"; };
      rows.push_back({std::to_string(g.value("number", 0)), g.value("state", std::string("-")),
                      g.value("label", std::string("-")), std::to_string(g.value("pid", 0)), "", "", "", "",
                      count("selected"), count("migrated"), count("sticky"), count("fallback")});
      for (const auto& w : g.value("workers", json::array())) {
        const std::string queue = w.contains("queued") ? fmt::format("{}/{}", w["queued"].get<std::uint64_t>(),
                                                                     w.value("backlog", 0u))
                                                       : "-";
        rows.push_back({"", "", "", "", std::to_string(w.value("index", 0)),
                        std::to_string(w.value("cookie", std::uint64_t{0})), w.value("state", std::string("-")), queue,
                        "", "", "", ""});
      }
    }
    out += render_table({{"GEN", true},
                         {"STATE"},
                         {"LABEL"},
                         {"PID", true},
                         {"SLOT", true},
                         {"COOKIE", true},
                         {"SOCKET"},
                         {"QUEUE", true},
                         {"SELECTED", true},
                         {"MIGRATED", true},
                         {"STICKY", true},
                         {"FALLBACK", true}},
                        rows);
  }
  return out;
}

std::string render_reload(const ReloadResult& reload) {
  if (!reload.changed) return fmt::format("{}: nothing changed\n", dash(reload.file));
  std::string out = fmt::format("{} reloaded: applied {}\n", dash(reload.file),
                                reload.applied.empty() ? "nothing" : joined(reload.applied, ", "));
  if (!reload.needs_restart.empty()) {
    out += fmt::format("  needs a restart, running values kept: {}\n",
                       joined(reload.needs_restart, ", "));
  }
  return out;
}

std::string render_keys(const KeysResult& keys) {
  if (keys.op == "generate") {
    return fmt::format("{}\n  a new key, id {}; nothing holds it yet: mixlbctl keys install KEY, "
                       "then use, then remove the old one\n",
                       dash(keys.key), dash(keys.key_id));
  }
  std::size_t answered_ok = 0;
  for (const auto& m : keys.members) answered_ok += m.outcome == "ok";
  std::string out = fmt::format("{}{}: ok on {} of {} member(s) in {:.0f} ms{}\n", keys.op,
                                keys.key_id ? " of key " + *keys.key_id : std::string(), answered_ok,
                                keys.members.size(), keys.elapsed_s * 1000,
                                keys.timed_out ? "; some did not answer in time" : "");
  auto ids = [](const std::vector<std::string>& list) {
    std::vector<std::string> shown;
    for (std::size_t i = 0; i < list.size(); ++i) shown.push_back(list[i] + (i == 0 ? "*" : ""));
    return shown.empty() ? std::string("-") : joined(shown, " ");
  };
  if (keys.op == "list") {
    // Each key with the members holding it, as serf keys -list does.
    std::vector<std::string> order;
    std::map<std::string, std::pair<std::size_t, std::size_t>> held;  // id -> (members, as primary)
    for (const auto& m : keys.members) {
      for (std::size_t i = 0; i < m.keys.size(); ++i) {
        if (!held.contains(m.keys[i])) order.push_back(m.keys[i]);
        ++held[m.keys[i]].first;
        held[m.keys[i]].second += i == 0;
      }
    }
    for (const auto& id : order) {
      out += fmt::format("  key {}: held by {} of {}, primary on {}\n", id, held[id].first,
                         keys.members.size(), held[id].second);
    }
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : keys.members)
    rows.push_back({m.member, m.outcome, ids(m.keys), m.error.value_or("")});
  out += render_table({{"MEMBER"}, {"ANSWER"}, {"KEYS (PRIMARY*)"}, {"ERROR"}}, rows);
  return out;
}

std::string render_which(const WhichResult& which) {
  const WhichFlow& flow = which.flow;
  const std::string to =
      fmt::format("{}:{}/{}", host_text(flow.dst), flow.dport, dash(flow.proto));
  const std::string head = fmt::format("{} from {}:{}", to, host_text(flow.src), flow.sport);
  if (!which.vip) return head + ": not a VIP (passed to the local stack untouched)\n";

  std::string how = which.from_conntrack ? "connection table" : "Maglev";
  // An all-ports VIP, say, is named when it is not the flow's own address:port.
  if (*which.vip != to) how += "; VIP " + *which.vip;
  std::string name = which.node.value_or("");
  if (name.empty() && which.node_id != 0) name = "node id " + node_id_text(which.node_id);
  if (which.verdict == "drop") {
    std::string line = head + " -> dropped: " + dash(which.drop_reason);
    if (!name.empty()) line += " (chosen: " + name + ", " + how + ")";
    return line + "\n";
  }
  if (which.verdict == "tx" || which.verdict == "redirect") {
    const std::string via =
        which.verdict == "redirect" ? "forwarded through another interface" : "forwarded";
    return fmt::format("{} -> {} ({}, {})\n", head, dash(name), via, how);
  }
  if (which.verdict == "pass" && which.self) {
    return fmt::format("{} -> {} (this node, {})\n", head, name, how);
  }
  return fmt::format("{} -> {} ({}, {})\n", head, dash(name), dash(which.verdict), how);
}

std::string render_monitor_started(const MonitorStarted& started) {
  return fmt::format("monitoring {}: member and app-health changes, log lines at {} and above; "
                     "interrupt to stop\n",
                     dash(started.node), dash(started.level));
}

std::string render_monitor_event(const MonitorEvent& event) {
  struct Render {
    std::string operator()(const MemberChange& e) const {
      std::vector<std::string> what;
      if (!e.previous) {
        what.push_back("appeared, " + dash(e.state));
      } else if (*e.previous != e.state) {
        what.push_back(fmt::format("{} -> {}", dash(*e.previous), dash(e.state)));
      }
      if (e.weight) what.push_back(fmt::format("weight {} -> {}", dash(e.previous_weight), *e.weight));
      if (e.restarting)
        what.push_back(*e.restarting ? "restarting its sidecar" : "sidecar back from a restart");
      return fmt::format("{} member {}: {}\n", dash(e.time), dash(e.name), joined(what, ", "));
    }
    std::string operator()(const HealthChange& e) const {
      return fmt::format("{} health {}: app {}{}\n", dash(e.time), dash(e.node),
                         e.healthy ? "healthy" : "UNHEALTHY",
                         e.reason.empty() ? std::string() : " (" + e.reason + ")");
    }
    std::string operator()(const LogLine& e) const {
      return fmt::format("{} log {}: {}\n", dash(e.time), dash(e.level), e.message);
    }
    std::string operator()(const EventsDropped& e) const {
      return fmt::format("{} monitor: {} event(s) lost, this client read too slowly ({} in all)\n",
                         dash(e.time), e.count, e.total);
    }
  };
  return std::visit(Render{}, event.event);
}

}  // namespace mixlb
