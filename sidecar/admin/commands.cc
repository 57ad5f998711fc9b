#include "admin/commands.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <exception>
#include <iterator>
#include <optional>

#include "admin/render.h"
#include "admin/results.h"
#include "common/quote.h"

namespace mixlb {

namespace {

using nlohmann::json;

// The renderer of a result type, for the table's function pointers.
template <typename Result, std::string (*Render)(const Result&)>
std::string typed(const json& value) {
  return Render(value.get<Result>());
}

// clang-format off
constexpr CommandArg kWhichArgs[] = {
    {.name = "proto", .positional = true, .value = "PROTO", .help = "`tcp` or `udp`."},
    {.name = "src", .positional = true, .value = "SRC", .help = "The client's address."},
    {.name = "sport", .positional = true, .value = "SPORT", .help = "The client's port.",
     .number = true},
    {.name = "vip", .positional = true, .value = "VIP", .help = "The address the flow is for."},
    {.name = "vport", .positional = true, .value = "VPORT", .help = "The port the flow is for.",
     .number = true},
};

constexpr CommandArg kMembersArgs[] = {
    {.name = "status", .value = "STATE",
     .help = "Only the members in this state; repeat it or give a comma list for several.",
     .choices = kMemberStates, .repeatable = true},
};

constexpr CommandArg kCtArgs[] = {
    {.name = "vip", .value = "VIP",
     .help = "Only flows to this VIP: `ADDR`, `ADDR:PORT`, `[IPv6]:PORT`, with `/tcp` or `/udp` "
             "optionally after it."},
    {.name = "node", .value = "NAME", .help = "Only flows served by this node."},
    {.name = "client", .value = "ADDR", .help = "Only flows from this client address."},
    {.name = "limit", .value = "N",
     .help = "Show at most N entries, the most recent first (default 50; 0 only counts)."},
};

constexpr CommandArg kMonitorArgs[] = {
    {.name = "level", .value = "LEVEL",
     .help = "Log lines at this level or above (default `info`). Lines below the daemon's "
             "`node.log_level` are never logged, so never shown.",
     .choices = kLogLevels},
};

constexpr CommandArg kKeysArgs[] = {
    {.name = "op", .positional = true, .value = "OP",
     .help = "`list` the keys every member holds; `install` KEY on every member; `use` KEY "
             "as every member's primary; `remove` KEY from every member; `generate` a new key "
             "(nothing is changed).",
     .choices = kKeyOps},
    {.name = "key", .positional = true, .value = "KEY",
     .help = "The key, 64 hex digits (install, use, remove).", .optional = true},
};

constexpr CommandArg kSocketsArgs[] = {
    {.name = "action", .positional = true, .value = "ACTION",
     .help = "`list` (the default) the services, generations and sockets; `adopt` the listening "
             "sockets of process `--pid` as a new generation; `switch` SERVICE to GENERATION "
             "(new flows go to it); `drain` GENERATION of SERVICE (the selector forgets it).",
     .choices = kSocketActions, .optional = true},
    {.name = "service", .positional = true, .value = "SERVICE",
     .help = "For `switch` and `drain`: `tcp/80`, or the full name `sockets` lists "
             "(`tcp 0.0.0.0:80`) when the short one is ambiguous.",
     .optional = true},
    {.name = "generation", .positional = true, .value = "GENERATION",
     .help = "For `switch` and `drain`: the generation's number.", .number = true, .optional = true},
    {.name = "pid", .value = "PID", .help = "For `adopt`: the process whose sockets to take."},
    {.name = "ready", .value = "ANSWER",
     .help = "For `adopt`: switch new flows to the adopted generation at once (`yes`, the "
             "default) or wait for `switch` (`no`).",
     .choices = kYesNo},
};

constexpr CommandSpec kCommands[] = {
    {.name = "status",
     .summary = "node, peers, VIPs, counters",
     .description =
         "The node: its interface and XDP mode (`generic` when the driver refused native mode: "
         "slower, never silent), a lost uplink or detached program, a leave under way, an adopted "
         "data path, each service check and its verdict, the gossip state. Then the members in the tables "
         "with their addresses, weights, MACs and neighbour state; per VIP the backends of its "
         "Maglev table (`mix2:3` when a weight is not 1, serving nodes drained to 0 last as "
         "`mix3:0`), packets and bytes served here, forwarded to peers and received from peers, "
         "and drops by reason; the connection-table counters.",
     .example = "mixlbctl -n mix1 status",
     .render = typed<StatusResult, render_status>},
    {.name = "stats",
     .summary = "global counters and packets per VIP and node",
     .description =
         "The data path's global counters (connection-table events, drops by reason, the "
         "results of `bpf_fib_lookup`; the non-zero ones for the last two), then one row per VIP "
         "and node: the packets and bytes this node served itself (`local`) or forwarded to that "
         "node (`forwarded`), with the node's weight.",
     .example = "mixlbctl stats",
     .render = typed<StatsResult, render_stats>},
    {.name = "vips",
     .summary = "VIPs with their backends, packets, bytes and rates (like ipvsadm -L --rate)",
     .description =
         "Per VIP the packets and bytes this node balanced (served itself or forwarded), their "
         "rates and the drops; under it one row per backend with its weight and what this node "
         "sent it (served, for itself), then what peers balanced to this node. Rates are over the "
         "daemon's last one-second sample (`-` until it has two). Active connections are not "
         "shown: with direct server return the data path sees only the client's half of a "
         "connection, and its connection table (an LRU) keeps an entry after its connection "
         "ended, so the maps hold no count of established connections.",
     .example = "mixlbctl vips",
     .render = typed<VipsResult, render_vips>},
    {.name = "ct",
     .args = kCtArgs,
     .summary = "the connection table: which node each flow is pinned to",
     .description =
         "Walks this node's connection table (off the daemon's main thread): how many entries it "
         "holds of how many it can, how many match the filters, and the most recent of those: "
         "client, VIP, serving node, state (active, closing after a FIN or RST, or idle for over "
         "60 s), the TCP flags seen, the entry's age and how long since its last packet (to "
         "within 0.1 s). A full table of 65,536 entries takes tens of milliseconds to walk.",
     .example = "mixlbctl ct --vip 10.100.0.1:80/tcp --node mix2",
     .timeout_ms = 10000,
     .render = typed<CtResult, render_ct>},
    {.name = "members",
     .args = kMembersArgs,
     .summary = "the cluster as gossip sees it",
     .description =
         "One row per member gossip knows: state, incarnation, gossip address, data-path "
         "address, weight, app health, whether this node's tables hold it (or its flows only, "
         "while departed) and its VIP ports; the reason an alive member is left out; this node's "
         "gossip counters. `--status` keeps the members in the given states; the daemon filters, "
         "so `--json` gets the same members. Refused when gossip is off.",
     .example = "mixlbctl members --status suspect,dead",
     .render = typed<MembersResult, render_members>},
    {.name = "drain",
     .summary = "publish weight 0: new flows go to other nodes",
     .description =
         "Publishes weight 0: every node takes this one out of its tables for new flows; "
         "established connections stay, until `undrain`. Refused when gossip is off or while "
         "leaving.",
     .example = "mixlbctl -n mix2 drain",
     .render = typed<DrainResult, render_drain>},
    {.name = "undrain",
     .summary = "publish the configured weight again",
     .description = "Publishes `node.weight` again after a drain.",
     .example = "mixlbctl -n mix2 undrain",
     .render = typed<DrainResult, render_drain>},
    {.name = "leave",
     .summary = "leave the cluster, then remove everything and exit",
     .description =
         "Drains, announces the leave, serves established connections until they end (at most "
         "`node.leave_timeout_ms`), then removes the data path, the VIPs and the host settings "
         "and exits. A second `leave` says what the first is waiting for.",
     .example = "mixlbctl -n mix3 leave",
     .render = typed<LeaveResult, render_leave>},
    {.name = "reload",
     .summary = "read the configuration again and apply what changed",
     .description =
         "Reads the configuration file again (with the command line's flags on top), validates "
         "the whole and applies what may change while running; what needs a restart keeps its "
         "running value and is named. A file that does not validate changes nothing, and the "
         "error says where.",
     .example = "mixlbctl reload",
     .render = typed<ReloadResult, render_reload>},
    {.name = "which",
     .args = kWhichArgs,
     .summary = "which node would serve this flow now",
     .description =
         "Which node this flow's packets would go to if they arrived here now, as the data path "
         "decides it: a packet of the flow runs through a dry-run copy of the XDP program on the "
         "live maps. It changes nothing.",
     .example = "mixlbctl which tcp 192.0.2.1 40000 10.100.0.1 80",
     .render = typed<WhichResult, render_which>},
    {.name = "monitor",
     .kind = CommandKind::kStream,
     .args = kMonitorArgs,
     .summary = "stream member changes, app health and log lines until interrupted",
     .description =
         "Prints one line per event until interrupted: a member appearing, changing its state, "
         "weight or restart flag, or forgotten; an app check changing its verdict (this node's "
         "with the probe's result); the daemon's log lines. A table change shows at once, another "
         "member change (a suspicion) within a second, and each also shows as a log line. A "
         "client that reads too slowly loses events and never holds the daemon up: each client "
         "has a queue of 1024 lines, and a line says how many were lost. With `--json` each "
         "event is its JSON line. When the daemon stops, so does the stream (exit 3).",
     .example = "mixlbctl monitor --level debug",
     .render = typed<MonitorStarted, render_monitor_started>,
     .render_event = typed<MonitorEvent, render_monitor_event>},
    {.name = "keys",
     .args = kKeysArgs,
     .summary = "list, install, use or remove a gossip key on every member; generate one",
     .description =
         "Changes the gossip keyring of every member at once, through the encrypted channel, "
         "as `serf keys` does. A rotation is `generate`, `install` the new key, `use` it (every "
         "member seals with it from then on), `remove` the old one; each step says what every "
         "member answered and the keys it holds after it (`*` marks the primary), and every "
         "node rewrites its keyring file (atomically, mode 0600) so a restart keeps the keys "
         "in use. A member that does not answer within the request's timeout (10 s) is shown "
         "as `no answer`: repeat the step when it is back, or it stays on the old keys. `use` is "
         "refused by a member that lacks the key, `remove` of a member's primary, `install` "
         "beyond 16 keys. A node that only holds a removed key can no longer join. Refused "
         "without gossip or without a keyring (`gossip.insecure`).",
     .example = "mixlbctl -n mix1 keys list",
     .timeout_ms = 15000,
     .render = typed<KeysResult, render_keys>},
    {.name = "sockets",
     .args = kSocketsArgs,
     .summary = "the app's sockets on VIP ports: generations, switch, drain, adopt",
     .description =
         "The reuseport selector's view: per service (a VIP port's SO_REUSEPORT group) its "
         "generations (app instances) with their state (`active` gets every new flow, "
         "`starting` waits for a switch, `draining` keeps what it has), pid and counters "
         "(`selected` new flows, `migrated` connections of its closing listeners' queues moved "
         "to it, `sticky` UDP datagrams that followed their flow to it, `fallback` flows the "
         "kernel placed because the chosen socket was gone), and per socket its slot, cookie, "
         "state and accept queue. `adopt --pid PID` takes a running process's sockets (needs "
         "CAP_SYS_PTRACE); `switch` is one map write; `drain` takes a generation out of the "
         "selector. Refused when `sockets.enabled` is false. See [App restarts without failed "
         "connections](#app-restarts-without-failed-connections).",
     .example = "mixlbctl sockets adopt --pid 4242",
     .render = render_sockets},
};

struct GlobalOption {
  std::string_view flags;
  std::string_view help;
};
constexpr GlobalOption kGlobalOptions[] = {
    {"-s, --socket SOCKET", "the daemon's admin socket"},
    {"-n, --node NODE", "the daemon of node NODE (/run/mixlb/NODE.sock); without -s or -n, the "
                        "only socket in /run/mixlb"},
    {"--json", "print the raw JSON result (for a stream, each event's JSON line)"},
    {"--timeout MS", "give up after MS milliseconds (default 5000, `keys` 15000; for a stream, "
                     "the wait for its first reply)"},
    {"-h, --help", "this text; after a command, that command's help"},
};

struct ExitCode {
  int code;
  std::string_view meaning;
};
constexpr ExitCode kExitCodes[] = {
    {kExitOk, "ok"},
    {kExitDaemonError, "the daemon answered with an error (a bad argument, gossip off for "
                       "`members`, `drain` and `undrain`, a file that does not validate for "
                       "`reload`)"},
    {kExitUsage, "usage: an unknown command or option, a missing argument, several daemons "
                 "and neither -s nor -n"},
    {kExitUnreachable, "the daemon could not be reached, did not answer in time, or ended a "
                       "stream"},
};
// clang-format on

const CommandArg* find_arg(const CommandSpec& command, std::string_view name) {
  const auto it = std::find_if(command.args.begin(), command.args.end(),
                               [&](const CommandArg& a) { return a.name == name; });
  return it == command.args.end() ? nullptr : &*it;
}

std::vector<std::string> split_commas(std::string_view text) {
  std::vector<std::string> words;
  for (;;) {
    const auto comma = text.find(',');
    words.emplace_back(text.substr(0, comma));
    if (comma == std::string_view::npos) return words;
    text.remove_prefix(comma + 1);
  }
}

// The first word of an option's value that it does not take, said as an
// error: an empty one, or one that is not among its choices.
std::optional<std::string> choice_problem(const CommandArg& arg,
                                          const std::vector<std::string>& words) {
  for (const auto& word : words) {
    const std::string name = arg.positional ? std::string(arg.value) : "--" + std::string(arg.name);
    if (word.empty()) return fmt::format("{} needs a value", name);
    if (arg.choices.empty()) continue;
    if (std::find(arg.choices.begin(), arg.choices.end(), word) != arg.choices.end()) continue;
    return fmt::format("{}: {} is not one of {}", name, quote_input(word),
                       fmt::join(arg.choices, ", "));
  }
  return std::nullopt;
}

// A decimal number as a JSON number; anything else as the text it is.
json word_value(const CommandArg& arg, std::string_view word) {
  if (!arg.number) return std::string(word);
  std::int64_t value = 0;
  const char* end = word.data() + word.size();
  const auto [ptr, ec] = std::from_chars(word.data(), end, value);
  if (!word.empty() && ec == std::errc() && ptr == end) return value;
  return std::string(word);
}

std::string positional_names(const CommandSpec& command) {
  std::vector<std::string> names;
  for (const auto& arg : command.args)
    if (arg.positional) names.push_back(arg.optional ? fmt::format("[{}]", arg.value) : std::string(arg.value));
  return fmt::format("{}", fmt::join(names, " "));
}

// `text` broken into lines of at most `width` characters, each after `indent`.
std::string wrap(std::string_view text, std::size_t indent, std::size_t width) {
  std::string out;
  std::size_t column = 0;
  while (!text.empty()) {
    const auto space = text.find(' ');
    const std::string_view word = text.substr(0, space);
    if (column != 0 && column + 1 + word.size() > width) {
      out += "\n";
      column = 0;
    }
    if (column == 0) {
      out.append(indent, ' ');
      column = indent;
    } else {
      out += ' ';
      ++column;
    }
    out += word;
    column += word.size();
    if (space == std::string_view::npos) break;
    text.remove_prefix(space + 1);
  }
  return out + "\n";
}

// The help text without markdown's backquotes, for a terminal.
std::string plain(std::string_view text) {
  std::string out(text);
  std::erase(out, '`');
  return out;
}

// "name  text", the text wrapped at column `at`; a name too wide for that
// has the text on the lines below.
std::string listed(std::string_view name, std::string_view text, std::size_t at) {
  std::string body = wrap(plain(text), at, 78);
  const std::string head = "  " + std::string(name);
  if (head.size() + 1 < at) return head + body.substr(head.size());
  return head + "\n" + body;
}

}  // namespace

std::span<const CommandSpec> admin_commands() { return kCommands; }

const CommandSpec* find_command(std::string_view name) {
  const auto it = std::find_if(std::begin(kCommands), std::end(kCommands),
                               [&](const CommandSpec& c) { return c.name == name; });
  return it == std::end(kCommands) ? nullptr : &*it;
}

std::string command_names() {
  std::vector<std::string_view> names;
  for (const auto& c : kCommands) names.push_back(c.name);
  return fmt::format("{}", fmt::join(names, ", "));
}

namespace {

// The command's name, then one part per argument ("VIP", "[--node NAME]").
std::vector<std::string> synopsis_parts(const CommandSpec& command) {
  std::vector<std::string> parts{std::string(command.name)};
  for (const auto& arg : command.args) {
    if (arg.positional) {
      parts.push_back(arg.optional ? fmt::format("[{}]", arg.value) : std::string(arg.value));
    } else {
      parts.push_back(fmt::format("[--{} {}]{}", arg.name, arg.value, arg.repeatable ? "..." : ""));
    }
  }
  return parts;
}

}  // namespace

std::string command_synopsis(const CommandSpec& command) {
  return fmt::format("{}", fmt::join(synopsis_parts(command), " "));
}

std::string mixlbctl_usage() {
  std::string out =
      "usage: mixlbctl [-s SOCKET | -n NODE] [--json] [--timeout MS] <command> [args]\n"
      "\noptions:\n";
  for (const auto& option : kGlobalOptions) out += listed(option.flags, option.help, 23);
  out += "\ncommands:\n";
  for (const auto& command : kCommands) out += listed(command_synopsis(command), command.summary, 23);
  out += "\n'mixlbctl COMMAND --help' describes a command.\n\nexit codes:\n";
  for (const auto& exit : kExitCodes) out += listed(std::to_string(exit.code), exit.meaning, 5);
  return out;
}

std::string command_help(const CommandSpec& command) {
  // The usage line, wrapped between arguments, never inside one.
  const std::string head = "usage: mixlbctl [options]";
  std::string out, line = head;
  for (const auto& part : synopsis_parts(command)) {
    if (line.size() + 1 + part.size() > 78) {
      out += line + "\n";
      line = std::string(head.size(), ' ');
    }
    line += " " + part;
  }
  out += line + "\n\n";
  out += wrap(plain(command.description), 0, 78);
  if (!command.args.empty()) out += "\n";
  for (const auto& arg : command.args) {
    std::string text(arg.help);
    if (!arg.choices.empty()) text += fmt::format(" One of: {}.", fmt::join(arg.choices, ", "));
    out += listed(arg.positional ? std::string(arg.value)
                                 : fmt::format("--{} {}", arg.name, arg.value),
                  text, 23);
  }
  return out + "\nexample: " + std::string(command.example) + "\n";
}

std::expected<json, std::string> args_from_words(const CommandSpec& command,
                                                 std::span<const std::string> words) {
  json args = json::object();
  std::vector<const CommandArg*> positionals;
  for (const auto& arg : command.args)
    if (arg.positional) positionals.push_back(&arg);
  std::size_t next = 0;
  for (std::size_t i = 0; i < words.size(); ++i) {
    std::string_view word = words[i];
    if (word.starts_with("--")) {
      std::optional<std::string_view> value;
      if (const auto eq = word.find('='); eq != std::string_view::npos) {
        value = word.substr(eq + 1);
        word = word.substr(0, eq);
      }
      const CommandArg* arg = find_arg(command, word.substr(2));
      if (arg == nullptr || arg->positional) {
        return std::unexpected(fmt::format("{} has no option {}", command.name, word));
      }
      if (!value && i + 1 < words.size()) value = words[++i];
      if (!value) return std::unexpected(fmt::format("{} needs a value", word));
      const auto given = arg->repeatable ? split_commas(*value) : std::vector{std::string(*value)};
      if (auto problem = choice_problem(*arg, given)) return std::unexpected(*problem);
      const std::string key(arg->name);
      if (!arg->repeatable) {
        if (args.contains(key)) return std::unexpected(fmt::format("{} given twice", word));
        args[key] = given.front();
        continue;
      }
      for (const auto& w : given) args[key].push_back(w);
    } else if (word.size() > 1 && word.starts_with('-')) {
      return std::unexpected("unknown option " + std::string(word));
    } else if (next < positionals.size()) {
      const CommandArg& arg = *positionals[next++];
      if (!arg.choices.empty()) {
        if (auto problem = choice_problem(arg, {std::string(word)})) return std::unexpected(*problem);
      }
      args[std::string(arg.name)] = word_value(arg, word);
    } else {
      return std::unexpected("unexpected argument " + std::string(word));
    }
  }
  const auto required = static_cast<std::size_t>(std::count_if(
      positionals.begin(), positionals.end(), [](const CommandArg* a) { return !a->optional; }));
  if (next < required) {
    return std::unexpected(fmt::format("{} needs {} argument{} ({}), got {}", command.name,
                                       required, required == 1 ? "" : "s",
                                       positional_names(command), next));
  }
  return args;
}

std::expected<void, std::string> check_args(const CommandSpec& command, const json& args) {
  if (!args.is_object()) return std::unexpected(fmt::format("{}: args must be an object", command.name));
  for (const auto& [key, value] : args.items()) {
    const CommandArg* arg = find_arg(command, key);
    if (arg == nullptr && command.args.empty())
      return std::unexpected(fmt::format("{} takes no arguments", command.name));
    if (arg == nullptr) {
      std::vector<std::string_view> names;
      for (const auto& a : command.args) names.push_back(a.name);
      return std::unexpected(fmt::format("{}: unknown argument {} ({} takes {})", command.name,
                                         quote_input(key), command.name, fmt::join(names, ", ")));
    }
    if (arg->positional) {
      // A word of its choices; anything else its handler judges.
      if (arg->choices.empty()) continue;
      if (!value.is_string())
        return std::unexpected(fmt::format("{}: {} must be a string", command.name, quote_input(key)));
      if (auto problem = choice_problem(*arg, {value.get<std::string>()}))
        return std::unexpected(fmt::format("{}: {}", command.name, *problem));
      continue;
    }
    const bool text = value.is_string();
    const bool texts = arg->repeatable && value.is_array() &&
                       std::all_of(value.begin(), value.end(), [](const json& w) { return w.is_string(); });
    if (!text && !texts) {
      return std::unexpected(fmt::format("{}: {} must be {}", command.name, quote_input(key),
                                         arg->repeatable ? "a string or an array of strings"
                                                         : "a string"));
    }
    if (auto problem = choice_problem(*arg, option_words(args, key)))
      return std::unexpected(fmt::format("{}: {}", command.name, *problem));
  }
  for (const auto& arg : command.args) {
    if (arg.positional && !arg.optional && !args.contains(std::string(arg.name)))
      return std::unexpected(fmt::format("{}: missing argument \"{}\"", command.name, arg.name));
  }
  return {};
}

std::vector<std::string> option_words(const json& args, std::string_view name) {
  std::vector<std::string> words;
  const auto it = args.find(name);
  if (it == args.end()) return words;
  auto add = [&](const json& value) {
    if (!value.is_string()) return;
    for (auto& w : split_commas(value.get_ref<const std::string&>())) words.push_back(std::move(w));
  };
  if (it->is_array()) {
    for (const auto& value : *it) add(value);
  } else {
    add(*it);
  }
  return words;
}

std::string render_result(const CommandSpec& command, const json& result) {
  try {
    return command.render(result);
  } catch (const std::exception&) {
    return fmt::format("unexpected {} result: {}\n", command.name,
                       result.dump(-1, ' ', false, json::error_handler_t::replace));
  }
}

std::string render_event(const CommandSpec& command, const json& event) {
  try {
    return command.render_event(event);
  } catch (const std::exception&) {
    return fmt::format("unexpected {} event: {}\n", command.name,
                       event.dump(-1, ' ', false, json::error_handler_t::replace));
  }
}

std::string command_reference() {
  std::string out = "| option | meaning |\n| --- | --- |\n";
  for (const auto& option : kGlobalOptions)
    out += fmt::format("| `{}` | {} |\n", option.flags, option.help);
  out += "\n| command | what it does |\n| --- | --- |\n";
  for (const auto& command : kCommands) {
    std::string text(command.description);
    for (const auto& arg : command.args) {
      text += fmt::format(" `{}`: {}",
                          arg.positional ? std::string(arg.value)
                                         : fmt::format("--{} {}", arg.name, arg.value),
                          arg.help);
      if (!arg.choices.empty())
        text += fmt::format(" One of `{}`.", fmt::join(arg.choices, "`, `"));
    }
    text += fmt::format(" Example: `{}`.", command.example);
    out += fmt::format("| `{}` | {} |\n", command_synopsis(command), text);
  }
  out += "\n| exit code | meaning |\n| --- | --- |\n";
  for (const auto& exit : kExitCodes) out += fmt::format("| {} | {} |\n", exit.code, exit.meaning);
  return out;
}

}  // namespace mixlb
