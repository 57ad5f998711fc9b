#include "admin/admin_protocol.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <exception>
#include <iterator>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "common/quote.h"

namespace mixlb {

namespace {

using nlohmann::json;

std::string dump_line(const json& value) {
  std::string line = value.dump(-1, ' ', false, json::error_handler_t::replace);
  line.push_back('\n');
  return line;
}

std::string_view type_name(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::string:
      return "a string";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::binary:
      return "binary data";
    case json::value_t::discarded:
      return "nothing";
    default:
      return "a number";
  }
}

// nlohmann's messages start with "[json.exception.parse_error.101] "; the
// client does not need the library's bookkeeping.
std::string_view strip_exception_id(std::string_view what) {
  if (!what.empty() && what.front() == '[') {
    if (const auto end = what.find("] "); end != std::string_view::npos)
      what.remove_prefix(end + 2);
  }
  return what;
}

// The library's message for a JSON error, with the client's input in it cut
// and escaped. nlohmann ends some messages with the input it stopped at in
// single quotes, raw ("...; last read: '<input>'", "number overflow parsing
// '<input>'"), the first sometimes followed by "; expected <token kind>";
// that input can be a whole 64 KiB line with quotes, control characters and
// bytes that are not UTF-8 in it.
std::string json_error_text(const nlohmann::json::exception& e) {
  std::string_view what = strip_exception_id(e.what());
  // The token kinds nlohmann can name after "; expected ": a fixed list, so
  // a suffix is recognised only when it is one of them, never from input.
  // clang-format off
  static constexpr std::string_view kExpected[] = {
      "<uninitialized>", "true literal", "false literal", "null literal", "string literal",
      "number literal", "'['", "'{'", "']'", "'}'", "':'", "','", "<parse error>", "end of input",
      "'[', '{', or a literal", "unknown token"};
  // clang-format on
  std::string_view expected;
  if (const auto at = what.rfind("; expected "); at != std::string_view::npos) {
    const std::string_view kind = what.substr(at + 11);
    if (std::find(std::begin(kExpected), std::end(kExpected), kind) != std::end(kExpected)) {
      expected = what.substr(at);
      what = what.substr(0, at);
    }
  }
  for (const std::string_view opener : {"; last read: '", "number overflow parsing '"}) {
    const auto at = what.find(opener);
    if (at == std::string_view::npos || !what.ends_with('\'')) continue;
    const std::size_t input = at + opener.size();
    if (input > what.size() - 1) continue;
    return fmt::format("{}{}{}", what.substr(0, input - 1),
                       quote_input(what.substr(input, what.size() - 1 - input)), expected);
  }
  return fmt::format("{}{}", what, expected);
}

// Thrown from the parser callback to stop at the first repeated key.
struct DuplicateKey {
  std::string message;
};

// A JSON Pointer (RFC 6901) step for an object key.
std::string pointer_step(std::string_view key) {
  std::string step = "/";
  for (const char c : key) {
    if (c == '~') {
      step += "~0";
    } else if (c == '/') {
      step += "~1";
    } else {
      step.push_back(c);
    }
  }
  return step;
}

// Parses `text`, refusing an object that repeats a key, at any depth: the
// library keeps the last value without a word. The callback sees every
// container open and close and every key, so it keeps, per open container,
// the keys seen (objects) or the element count (arrays), which also gives
// the JSON Pointer of the object with the repeated key.
json parse_unique_keys(std::string_view text) {
  struct Open {
    bool object = false;
    std::set<std::string, std::less<>> keys;
    std::string key;           // the key whose value is being read
    std::size_t elements = 0;  // arrays: elements started so far
  };
  std::vector<Open> open;
  auto pointer = [&] {
    std::string path;
    for (std::size_t i = 0; i + 1 < open.size(); ++i) {
      path +=
          open[i].object ? pointer_step(open[i].key) : "/" + std::to_string(open[i].elements - 1);
    }
    return path;
  };
  auto element_starts = [&] {
    if (!open.empty() && !open.back().object) ++open.back().elements;
  };
  const json::parser_callback_t callback = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        element_starts();
        open.push_back({event == json::parse_event_t::object_start, {}, {}, 0});
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        open.pop_back();
        break;
      case json::parse_event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        if (!open.back().keys.insert(key).second) {
          const std::string where = pointer();
          throw DuplicateKey{where.empty() ? fmt::format("duplicate key {}", quote_input(key))
                                           : fmt::format("duplicate key {} in {}", quote_input(key),
                                                         quote_input(where))};
        }
        open.back().key = key;
        break;
      }
      case json::parse_event_t::value:
        element_starts();
        break;
    }
    return true;
  };
  return json::parse(text, callback);
}

// A command name is a word: it is echoed in errors and logs and is never
// anything else, so anything else is refused before a handler sees it.
bool is_command_name(std::string_view cmd) {
  return !cmd.empty() && cmd.size() <= kAdminMaxCommand &&
         std::all_of(cmd.begin(), cmd.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
         });
}

}  // namespace

std::expected<AdminRequest, std::string> parse_admin_request(std::string_view line) {
  if (line.size() > kAdminMaxLine) {
    return std::unexpected(fmt::format("request line longer than {} bytes", kAdminMaxLine));
  }
  if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
    return std::unexpected("empty request line; send {\"cmd\":\"<command>\"}");
  }
  json request;
  try {
    request = parse_unique_keys(line);
  } catch (const DuplicateKey& e) {
    return std::unexpected("malformed request: " + e.message);
  } catch (const json::exception& e) {
    // parse_error for bad syntax, but also out_of_range for a number that
    // does not fit a double (1e999999): every one is the client's mistake.
    return std::unexpected("malformed request: " + json_error_text(e));
  }
  if (!request.is_object()) {
    return std::unexpected(
        fmt::format("malformed request: expected a JSON object like {{\"cmd\":\"status\"}}, got {}",
                    type_name(request)));
  }
  const auto cmd = request.find("cmd");
  if (cmd == request.end()) return std::unexpected("malformed request: missing \"cmd\"");
  if (!cmd->is_string()) {
    return std::unexpected(
        fmt::format("malformed request: \"cmd\" must be a string, got {}", type_name(*cmd)));
  }
  AdminRequest parsed;
  parsed.cmd = cmd->get<std::string>();
  if (parsed.cmd.empty()) return std::unexpected("malformed request: \"cmd\" is empty");
  if (!is_command_name(parsed.cmd)) {
    return std::unexpected(fmt::format(
        "malformed request: \"cmd\" must be a command name (ASCII letters, digits, '-' and '_', "
        "at most {} bytes), got {}",
        kAdminMaxCommand, quote_input(parsed.cmd)));
  }
  if (const auto args = request.find("args"); args != request.end() && !args->is_null()) {
    if (!args->is_object()) {
      return std::unexpected(
          fmt::format("malformed request: \"args\" must be an object, got {}", type_name(*args)));
    }
    parsed.args = std::move(*args);
  }
  return parsed;
}

std::string encode_admin_request(std::string_view cmd, const json& args) {
  json request = {{"cmd", cmd}};
  if (!args.is_null() && !(args.is_object() && args.empty())) request["args"] = args;
  return dump_line(request);
}

std::string encode_ok_reply(const json& result) {
  return dump_line(json{{"ok", true}, {"result", result}});
}

std::string encode_error_reply(std::string_view message) {
  return dump_line(json{{"ok", false}, {"error", message}});
}

std::expected<AdminReply, std::string> parse_admin_reply(std::string_view line) {
  json reply;
  try {
    reply = json::parse(line);
  } catch (const json::exception& e) {
    return std::unexpected("malformed reply: " + json_error_text(e));
  }
  if (!reply.is_object()) return std::unexpected("malformed reply: not a JSON object");
  const auto ok = reply.find("ok");
  if (ok == reply.end() || !ok->is_boolean()) {
    return std::unexpected("malformed reply: missing boolean \"ok\"");
  }
  AdminReply parsed;
  parsed.ok = ok->get<bool>();
  if (parsed.ok) {
    if (const auto result = reply.find("result"); result != reply.end()) {
      parsed.result = std::move(*result);
    }
    return parsed;
  }
  const auto error = reply.find("error");
  if (error == reply.end() || !error->is_string()) {
    return std::unexpected("malformed reply: error reply without an \"error\" string");
  }
  parsed.error = error->get<std::string>();
  return parsed;
}

AdminOutcome admin_failure_outcome(std::string_view cmd, std::exception_ptr error) {
  if (!error) error = std::make_exception_ptr(std::logic_error("failed without an exception"));
  try {
    std::rethrow_exception(error);
  } catch (const AdminError& e) {
    return {encode_error_reply(e.what()), {}};
  } catch (const std::exception& e) {
    return {encode_error_reply(fmt::format("internal error: {}", e.what())),
            fmt::format("command {} failed: {}", quote_input(cmd), e.what())};
  } catch (...) {
    return {encode_error_reply("internal error: unknown exception"),
            fmt::format("command {} failed with a non-standard exception", quote_input(cmd))};
  }
}

// ---------------------------------------------------------------------------
// Status rendering.

namespace {

std::string text_of(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
    case json::value_t::discarded:
      return "-";
    case json::value_t::string:
      return value.get<std::string>();
    case json::value_t::boolean:
      return value.get<bool>() ? "yes" : "no";
    case json::value_t::array: {
      std::string joined;
      for (const auto& item : value) {
        if (!joined.empty()) joined.push_back(',');
        joined += text_of(item);
      }
      return joined.empty() ? "-" : joined;
    }
    default:
      return value.dump(-1, ' ', false, json::error_handler_t::replace);
  }
}

std::string field(const json& object, std::string_view key) {
  if (!object.is_object()) return "-";
  const auto it = object.find(key);
  return it == object.end() ? "-" : text_of(*it);
}

const json& member(const json& object, std::string_view key) {
  static const json kNull;
  if (!object.is_object()) return kNull;
  const auto it = object.find(key);
  return it == object.end() ? kNull : *it;
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

// A count that arrives signed or unsigned depending on who built the JSON;
// nullopt for anything that is not a non-negative integer.
std::optional<std::uint64_t> count_of(const json& value) {
  if (value.is_number_unsigned()) return value.get<std::uint64_t>();
  if (value.is_number_integer() && value.get<std::int64_t>() >= 0) {
    return static_cast<std::uint64_t>(value.get<std::int64_t>());
  }
  return std::nullopt;
}

// "mix1,mix2:3,mix3:0": the table's backends, with their weight when it is
// not 1, then the serving nodes drained to 0. Without weights, the names.
std::string backends_text(const json& vip) {
  const json& backends = member(vip, "backends");
  const json& weights = member(vip, "weights");
  if (!weights.is_object()) return field(vip, "backends");
  std::vector<std::string> items;
  if (backends.is_array()) {
    for (const auto& backend : backends) {
      std::string item = text_of(backend);
      const json& weight = backend.is_string() ? member(weights, item) : json();
      if (!weight.is_null() && weight != 1) item += ":" + text_of(weight);
      items.push_back(std::move(item));
    }
  }
  for (const auto& [name, weight] : weights.items()) {
    if (weight == 0) items.push_back(name + ":0");
  }
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ",") + item;
  return out.empty() ? "-" : out;
}

// "name count  name count", the entries of a counter object in key order;
// with skip_zero, the zero ones are left out. "none" when nothing is left.
std::string counter_line(const json& counters, bool skip_zero) {
  if (!counters.is_object()) return "-";
  std::string out;
  for (const auto& [name, value] : counters.items()) {
    if (skip_zero && count_of(value) == std::uint64_t{0}) continue;
    if (!out.empty()) out += "  ";
    out += name + " " + text_of(value);
  }
  return out.empty() ? "none" : out;
}

// An address as it stands before ":port": IPv6 in brackets.
std::string host_text(const json& address) {
  std::string text = text_of(address);
  if (text.find(':') != std::string::npos) text = "[" + text + "]";
  return text;
}

}  // namespace

std::string render_status(const json& status) {
  if (!status.is_object()) {
    return "unexpected status result: " +
           status.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }
  std::string out;
  out += fmt::format("mixlb node {} (id {})\n", field(status, "node"), field(status, "node_id"));
  const std::string uplink = field(status, "uplink");
  out += fmt::format("  interface  {} (ifindex {}), xdp {}{}\n", field(status, "interface"),
                     field(status, "ifindex"), field(status, "xdp_mode"),
                     uplink == "missing"    ? ", UPLINK MISSING: nothing is balanced here"
                     : uplink == "detached" ? ", PROGRAM DETACHED: attaching it again"
                                            : "");
  if (field(status, "phase") == "leaving")
    out += fmt::format("  LEAVING    {}\n", field(status, "leave"));
  if (const json& instance = member(status, "instance"); instance.is_object()) {
    const bool adopted = member(instance, "adopted_maps") == true || member(instance, "adopted_link") == true;
    out += fmt::format("  instance   pid {}, on SIGTERM: {}{}\n", field(instance, "pid"),
                       field(instance, "on_stop"),
                       adopted ? fmt::format(" (adopted the data path of an earlier mixlb: maps {}, "
                                             "link {})",
                                             member(instance, "adopted_maps") == true ? "yes" : "no",
                                             member(instance, "adopted_link") == true ? "yes" : "no")
                               : "");
  }
  out += fmt::format("  address    {}, mac {}\n", field(status, "address"), field(status, "mac"));
  out += fmt::format("  maglev     {} slots per VIP\n", field(status, "maglev_table_size"));
  if (const std::string metrics = field(status, "metrics"); metrics != "-")
    out += fmt::format("  metrics    {}\n", metrics == "off" ? metrics : "http://" + metrics + "/metrics");
  const json& health = member(status, "health");
  if (health.is_object() && field(health, "kind") != "none" && field(health, "kind") != "-") {
    const bool healthy = member(health, "healthy").is_boolean() && member(health, "healthy").get<bool>();
    out += fmt::format("  app        {} {}: {} (last probe: {})\n", field(health, "kind"),
                       field(health, "target"), healthy ? "healthy" : "UNHEALTHY", field(health, "last"));
  } else if (health.is_object()) {
    out += "  app        not checked\n";
  }

  const json& gossip = member(status, "gossip");
  if (member(gossip, "enabled") == true) {
    out += fmt::format("  gossip     {}, cluster '{}', {}, {} member(s) alive{}{}\n",
                       field(gossip, "address"), field(gossip, "cluster"),
                       member(gossip, "encrypted") == true ? "encrypted" : "NOT ENCRYPTED",
                       field(gossip, "members_alive"),
                       member(gossip, "joined") == true ? "" : ", joining",
                       member(gossip, "drained") == true ? ", DRAINED" : "");
    if (const std::string error = field(gossip, "last_sync_error"); error != "-" && !error.empty())
      out += "  tables     NOT UPDATED: " + error + "\n";
  } else if (member(gossip, "enabled") == false) {
    out += "  gossip     off: the peer list is the member set\n";
  }

  const json& nodes = member(status, "nodes");
  out += "\nnodes\n";
  if (!nodes.is_array() || nodes.empty()) {
    out += "  none\n";
  } else {
    std::vector<std::vector<std::string>> rows;
    for (const auto& node : nodes) {
      rows.push_back({field(node, "name") + (member(node, "departed") == true ? " (departed)" : ""),
                      field(node, "id"), field(node, "address"), field(node, "weight"),
                      field(node, "mac"), field(node, "neighbour")});
    }
    out += render_table(
        {{"NAME"}, {"ID", true}, {"ADDRESS"}, {"WEIGHT", true}, {"MAC"}, {"NEIGHBOUR"}}, rows);
  }

  const json& vips = member(status, "vips");
  out += "\nvips\n";
  if (!vips.is_array() || vips.empty()) {
    out += "  none\n";
  } else {
    std::vector<std::vector<std::string>> rows;
    std::vector<std::vector<std::string>> drop_lines;  // per VIP, the non-zero reasons
    for (const auto& vip : vips) {
      const json& counters = member(vip, "counters");
      const json& drops = member(counters, "drops");
      std::string dropped = "-";
      std::vector<std::string> reasons;
      if (drops.is_object()) {
        std::uint64_t total = 0;
        for (const auto& [reason, count] : drops.items()) {
          const auto n = count_of(count);
          if (!n) continue;
          total += *n;
          if (*n != 0) reasons.push_back(fmt::format("dropped {}: {}", reason, *n));
        }
        dropped = std::to_string(total);
      }
      rows.push_back({field(vip, "vip"), backends_text(vip), field(counters, "local_pkts"),
                      field(counters, "local_bytes"), field(counters, "fwd_pkts"),
                      field(counters, "fwd_bytes"), field(counters, "from_peer_pkts"),
                      field(counters, "from_peer_bytes"), dropped});
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

  const json& conntrack = member(status, "conntrack");
  out += "\nconntrack\n";
  if (!conntrack.is_object() || conntrack.empty()) {
    out += "  -\n";
  } else {
    out += fmt::format("  hit {}  miss {}  insert {}  insert_fail {}\n", field(conntrack, "hit"),
                       field(conntrack, "miss"), field(conntrack, "insert"),
                       field(conntrack, "insert_fail"));
  }
  return out;
}

std::string render_members(const json& members) {
  if (!members.is_object()) {
    return "unexpected members result: " +
           members.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }
  std::string out = fmt::format("mixlb cluster '{}' seen from {} (gossip {})\n",
                                field(members, "cluster"), field(members, "node"),
                                field(members, "gossip_address"));
  const json& list = member(members, "members");
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> problems;
  if (list.is_array()) {
    for (const auto& m : list) {
      std::string vips;
      if (const json& v = member(m, "vips"); v.is_array()) {
        for (const auto& label : v) vips += (vips.empty() ? "" : ",") + text_of(label);
      }
      const json& healthy = member(m, "app_healthy");
      std::string app = healthy.is_boolean() ? (healthy.get<bool>() ? "ok" : "FAILING") : "-";
      if (member(m, "restarting") == true) app += ", restarting";
      const json& in_tables = member(m, "in_tables");
      // A departed member is in no table but still gets its established flows.
      std::string tables = in_tables == true ? "yes" : "no";
      if (member(m, "departed") == true)
        tables = fmt::format("flows only, {:.0f} s left",
                             member(m, "flows_kept_s").is_number() ? member(m, "flows_kept_s").get<double>() : 0.0);
      std::string name = field(m, "name");
      if (member(m, "self") == true) name += " (self)";
      rows.push_back({name, field(m, "state"), field(m, "incarnation"), field(m, "gossip_address"),
                      field(m, "address"), field(m, "weight"), app, tables,
                      vips.empty() ? "-" : vips});
      if (member(m, "problem").is_string())
        problems.push_back(fmt::format("  {}: {}\n", field(m, "name"), field(m, "problem")));
    }
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
  const json& g = member(members, "gossip");
  if (g.is_object() && g.contains("error")) {
    out += "\ngossip  " + field(g, "error") + "\n";
  } else if (g.is_object()) {
    out += fmt::format(
        "\ngossip  probes {} (failed {}), suspicions raised {}, deaths declared {}, refutations "
        "{}, local health {}\n        sent {} B, received {} B, dropped {} message(s){}\n",
        field(g, "probes"), field(g, "probes_failed"), field(g, "suspicions_raised"),
        field(g, "deaths_declared"), field(g, "refutations"), field(g, "health_score"),
        field(g, "bytes_sent"), field(g, "bytes_received"), field(g, "drops"),
        field(g, "last_drop").empty() || field(g, "last_drop") == "-"
            ? std::string()
            : " (last: " + field(g, "last_drop") + ")");
  }
  return out;
}

std::string render_leave(const json& leave) {
  if (!leave.is_object()) {
    return "unexpected leave result: " + leave.dump(-1, ' ', false, json::error_handler_t::replace) +
           "\n";
  }
  if (leave.contains("state"))
    return fmt::format("{} is already leaving: {}\n", field(leave, "node"), field(leave, "state"));
  return fmt::format("{} is leaving: no new flows from now on; established connections are served "
                     "until they end (at most {} ms), then mixlb removes the data path and exits\n",
                     field(leave, "node"), field(leave, "timeout_ms"));
}

std::string render_drain(const json& drain) {
  if (!drain.is_object()) {
    return "unexpected drain result: " + drain.dump(-1, ' ', false, json::error_handler_t::replace) +
           "\n";
  }
  if (member(drain, "drained") == true) {
    return fmt::format("{} drained: weight 0 is published, new flows go to other nodes; "
                       "established connections stay\n",
                       field(drain, "node"));
  }
  return fmt::format("{} serving again with weight {}\n", field(drain, "node"), field(drain, "weight"));
}

std::string render_stats(const json& stats) {
  if (!stats.is_object()) {
    return "unexpected stats result: " +
           stats.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }
  std::string out =
      fmt::format("mixlb node {} (id {})\n", field(stats, "node"), field(stats, "node_id"));
  const json& counters = member(stats, "counters");
  out += "\ncounters\n";
  out += "  events  " + counter_line(member(counters, "events"), false) + "\n";
  out += "  drops   " + counter_line(member(counters, "drops"), true) + "\n";
  out += "  fib     " + counter_line(member(counters, "fib"), true) + "\n";

  out += "\nper VIP and node\n";
  const json& vips = member(stats, "vips");
  std::vector<std::vector<std::string>> rows;
  if (vips.is_array()) {
    for (const auto& vip : vips) {
      const json& per_node = member(vip, "per_node");
      if (!per_node.is_array() || per_node.empty()) {
        rows.push_back({field(vip, "vip"), "-", "-", "-", "-", "-"});
        continue;
      }
      for (const auto& node : per_node) {
        const std::string name = field(node, "name");
        const bool self = member(node, "self") == true;
        rows.push_back({field(vip, "vip"), name, field(member(vip, "weights"), name),
                        self ? "local" : "forwarded", field(node, "pkts"), field(node, "bytes")});
      }
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

json make_which_args(std::string_view proto, std::string_view src, std::string_view sport,
                     std::string_view vip, std::string_view vport) {
  auto port = [](std::string_view text) -> json {
    std::int64_t value = 0;
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (!text.empty() && ec == std::errc() && ptr == end) return value;
    return std::string(text);
  };
  return json{
      {"proto", proto}, {"src", src}, {"sport", port(sport)}, {"vip", vip}, {"vport", port(vport)}};
}

std::string render_which(const json& which) {
  if (!which.is_object()) {
    return "unexpected which result: " +
           which.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }
  const json& flow = member(which, "flow");
  const std::string to = fmt::format("{}:{}/{}", host_text(member(flow, "dst")),
                                     field(flow, "dport"), field(flow, "proto"));
  const std::string head =
      fmt::format("{} from {}:{}", to, host_text(member(flow, "src")), field(flow, "sport"));
  const json& vip = member(which, "vip");
  if (!vip.is_string()) return head + ": not a VIP (passed to the local stack untouched)\n";

  std::string how = member(which, "from_conntrack") == true ? "connection table" : "Maglev";
  // An all-ports VIP, say, is named when it is not the flow's own address:port.
  if (vip.get<std::string>() != to) how += "; VIP " + vip.get<std::string>();
  const json& node = member(which, "node");
  std::string name = node.is_string() ? node.get<std::string>() : std::string();
  if (name.empty() && count_of(member(which, "node_id")).value_or(0) != 0) {
    name = "node id " + field(which, "node_id");
  }
  const std::string verdict = field(which, "verdict");
  if (verdict == "drop") {
    std::string line = head + " -> dropped: " + field(which, "drop_reason");
    if (!name.empty()) line += " (chosen: " + name + ", " + how + ")";
    return line + "\n";
  }
  if (verdict == "tx" || verdict == "redirect") {
    const std::string via =
        verdict == "redirect" ? "forwarded through another interface" : "forwarded";
    return fmt::format("{} -> {} ({}, {})\n", head, name.empty() ? "-" : name, via, how);
  }
  if (verdict == "pass" && member(which, "self") == true) {
    return fmt::format("{} -> {} (this node, {})\n", head, name, how);
  }
  return fmt::format("{} -> {} ({}, {})\n", head, name.empty() ? "-" : name, verdict, how);
}

}  // namespace mixlb
