// mixlbctl: the operator's window into a running mixlb sidecar. It sends one
// command over the admin socket and prints the result, as text for people or
// as the raw JSON result (--json) for scripts. The exit code tells a script
// what happened without parsing anything:
//   0 ok, 1 the daemon answered with an error, 2 usage, 3 daemon unreachable.
#include <charconv>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "admin/admin_protocol.h"
#include "admin/admin_server.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitDaemonError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;

constexpr std::string_view kUsage =
    "usage: mixlbctl [-s SOCKET | -n NODE] [--json] [--timeout MS] <command> [args]\n"
    "\n"
    "options:\n"
    "  -s, --socket SOCKET  admin socket of the daemon\n"
    "  -n, --node NODE      the daemon of node NODE (/run/mixlb/NODE.sock)\n"
    "                       without either: the only socket in /run/mixlb\n"
    "      --json           print the raw JSON result\n"
    "      --timeout MS     give up after MS milliseconds (default 5000)\n"
    "  -h, --help           show this text\n"
    "\n"
    "commands:\n"
    "  status               node, peers, VIPs, counters\n"
    "  stats                global counters (events, drops, route lookups) and\n"
    "                       packets per VIP and node\n"
    "  members              the cluster as gossip sees it: state, incarnation,\n"
    "                       addresses, weight, app health, VIP ports\n"
    "  drain                publish weight 0: new flows go to other nodes,\n"
    "                       established connections stay (until undrain)\n"
    "  undrain              publish the configured weight again\n"
    "  leave                leave the cluster: drain, announce the leave, serve\n"
    "                       established connections until they end (at most\n"
    "                       node.leave_timeout_ms), then remove the data path,\n"
    "                       the VIPs and the host settings, and exit\n"
    "  reload               read the configuration file again and apply what\n"
    "                       changed (what needs a restart is named)\n"
    "  which PROTO SRC SPORT VIP VPORT\n"
    "                       which node would serve this flow now, as the data\n"
    "                       path decides it (PROTO tcp or udp; a dry run, it\n"
    "                       changes nothing), e.g.\n"
    "                       which tcp 192.0.2.1 40000 10.100.0.1 80\n"
    "\n"
    "exit codes: 0 ok, 1 daemon error, 2 usage, 3 daemon unreachable\n";

// Each command and the number of arguments it takes after its name.
struct Command {
  std::string_view name;
  std::size_t args;
};
constexpr Command kCommands[] = {{"status", 0},  {"stats", 0}, {"which", 5},
                                 {"members", 0}, {"drain", 0}, {"undrain", 0},
                                 {"leave", 0}, {"reload", 0}};

struct Options {
  std::optional<std::string> socket;
  std::optional<std::string> node;
  bool json = false;
  std::chrono::milliseconds timeout{5000};
  std::string command;
  std::vector<std::string> args;
};

int usage_error(std::string_view message) {
  std::fprintf(stderr, "mixlbctl: %.*s\n%.*s", static_cast<int>(message.size()), message.data(),
               static_cast<int>(kUsage.size()), kUsage.data());
  return kExitUsage;
}

// Returns the exit code to stop with, or nullopt to go on.
std::optional<int> parse_args(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::optional<std::string_view> inline_value;
    if (arg.starts_with("--")) {
      if (const auto eq = arg.find('='); eq != std::string_view::npos) {
        inline_value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
      }
    }
    auto value = [&]() -> std::optional<std::string_view> {
      if (inline_value) return inline_value;
      if (i + 1 < argc) return std::string_view(argv[++i]);
      return std::nullopt;
    };

    if (arg == "-h" || arg == "--help") {
      std::fwrite(kUsage.data(), 1, kUsage.size(), stdout);
      return kExitOk;
    }
    if (arg == "--json") {
      options.json = true;
    } else if (arg == "-s" || arg == "--socket" || arg == "-n" || arg == "--node") {
      const auto v = value();
      if (!v || v->empty()) return usage_error(std::string(arg) + " needs a value");
      (arg == "-s" || arg == "--socket" ? options.socket : options.node) = std::string(*v);
    } else if (arg == "--timeout") {
      const auto v = value();
      long long ms = 0;
      const auto [end, ec] =
          v ? std::from_chars(v->data(), v->data() + v->size(), ms) : std::from_chars_result{};
      if (!v || ec != std::errc{} || end != v->data() + v->size() || ms <= 0) {
        return usage_error("--timeout needs a positive number of milliseconds");
      }
      options.timeout = std::chrono::milliseconds(ms);
    } else if (arg.starts_with("-") && arg.size() > 1) {
      return usage_error("unknown option " + std::string(arg));
    } else if (options.command.empty()) {
      options.command = std::string(arg);
    } else {
      options.args.emplace_back(arg);
    }
  }
  if (options.socket && options.node) return usage_error("give -s SOCKET or -n NODE, not both");
  if (options.command.empty()) return usage_error("no command given");
  const Command* command = nullptr;
  for (const Command& c : kCommands) {
    if (c.name == options.command) command = &c;
  }
  if (command == nullptr) return usage_error("unknown command '" + options.command + "'");
  if (options.args.size() > command->args) {
    return usage_error("unexpected argument " + options.args[command->args]);
  }
  if (options.args.size() < command->args) {
    return usage_error(options.command + " needs " + std::to_string(command->args) +
                       " arguments, got " + std::to_string(options.args.size()));
  }
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (const auto exit_code = parse_args(argc, argv, options)) return *exit_code;

  std::string socket;
  if (options.socket) {
    socket = *options.socket;
  } else if (options.node) {
    socket = mixlb::admin_socket_for_node(*options.node);
  } else {
    auto found = mixlb::find_admin_socket();
    if (!found) {
      std::fprintf(stderr, "mixlbctl: %s\n", found.error().message.c_str());
      return found.error().ambiguous ? kExitUsage : kExitUnreachable;
    }
    socket = std::move(*found);
  }

  nlohmann::json args = nlohmann::json::object();
  if (options.command == "which") {
    args = mixlb::make_which_args(options.args[0], options.args[1], options.args[2],
                                  options.args[3], options.args[4]);
  }
  auto reply = mixlb::admin_call(socket, options.command, args, options.timeout);
  if (!reply) {
    std::fprintf(stderr, "mixlbctl: %s\n", reply.error().c_str());
    return kExitUnreachable;
  }
  if (!reply->ok) {
    std::fprintf(stderr, "mixlbctl: mixlb: %s\n", reply->error.c_str());
    return kExitDaemonError;
  }

  std::string out;
  if (options.json) {
    out = reply->result.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  } else if (options.command == "status") {
    out = mixlb::render_status(reply->result);
  } else if (options.command == "stats") {
    out = mixlb::render_stats(reply->result);
  } else if (options.command == "members") {
    out = mixlb::render_members(reply->result);
  } else if (options.command == "drain" || options.command == "undrain") {
    out = mixlb::render_drain(reply->result);
  } else if (options.command == "leave") {
    out = mixlb::render_leave(reply->result);
  } else if (options.command == "reload") {
    out = reply->result.dump() + "\n";
  } else {
    out = mixlb::render_which(reply->result);
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return kExitOk;
}
