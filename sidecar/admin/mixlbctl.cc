// mixlbctl: the operator's window into a running mixlb sidecar. It sends one
// command over the admin socket and prints the result, as text for people or
// as the raw JSON result (--json) for scripts; a stream command (monitor)
// prints its events until interrupted. The commands, their arguments, the
// usage text, the output and the exit codes all come from the command table
// (admin/commands.h): this file reads the command line and talks to the
// socket. It links the small mixlb_admin_client library, none of the
// daemon's.
#include <charconv>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "admin/admin_client.h"
#include "admin/commands.h"

namespace {

using mixlb::CommandSpec;
using mixlb::kExitDaemonError;
using mixlb::kExitOk;
using mixlb::kExitUnreachable;
using mixlb::kExitUsage;
using nlohmann::json;

struct Options {
  std::optional<std::string> socket;
  std::optional<std::string> node;
  bool json = false;
  bool help = false;
  std::optional<std::chrono::milliseconds> timeout;  // --timeout; else the command's
  std::string command;
  std::vector<std::string> words;  // after the command's name: its arguments
};

void print(std::string_view text, std::FILE* to = stdout) {
  std::fwrite(text.data(), 1, text.size(), to);
}

int usage_error(std::string_view message, const CommandSpec* command = nullptr) {
  print("mixlbctl: " + std::string(message) + "\n", stderr);
  print(command ? mixlb::command_help(*command) : mixlb::mixlbctl_usage(), stderr);
  return kExitUsage;
}

// Returns the exit code to stop with, or nullopt to go on. mixlbctl's own
// options may come before or after the command; any other word after the
// command is the command's.
std::optional<int> parse_args(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::optional<std::string_view> inline_value;
    if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      const std::string_view name = arg.substr(0, eq);
      if (name == "--socket" || name == "--node" || name == "--timeout") {
        inline_value = arg.substr(eq + 1);
        arg = name;
      }
    }
    auto value = [&]() -> std::optional<std::string_view> {
      if (inline_value) return inline_value;
      if (i + 1 < argc) return std::string_view(argv[++i]);
      return std::nullopt;
    };

    if (arg == "-h" || arg == "--help") {
      options.help = true;
    } else if (arg == "--json") {
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
    } else if (!options.command.empty()) {
      options.words.emplace_back(arg);
    } else if (arg.starts_with("-") && arg.size() > 1) {
      return usage_error("unknown option " + std::string(arg));
    } else {
      options.command = std::string(arg);
    }
  }
  if (options.help) {
    const CommandSpec* command = mixlb::find_command(options.command);
    print(command ? mixlb::command_help(*command) : mixlb::mixlbctl_usage());
    return kExitOk;
  }
  if (options.socket && options.node) return usage_error("give -s SOCKET or -n NODE, not both");
  if (options.command.empty()) return usage_error("no command given");
  return std::nullopt;
}

// --timeout, or the command's own wait, or the default.
std::chrono::milliseconds timeout_for(const CommandSpec& command, const Options& options) {
  if (options.timeout) return *options.timeout;
  return std::chrono::milliseconds(command.timeout_ms > 0 ? command.timeout_ms : mixlb::kDefaultTimeoutMs);
}

// Prints a reply: an error (the exit code says whose), or the result as
// JSON (`indent` -1 for one line, 2 for people; 0: as text, rendered). The
// text goes to `text_to`; JSON always to stdout.
int print_reply(const std::expected<mixlb::AdminReply, std::string>& reply, const CommandSpec& command,
                int indent, std::FILE* text_to) {
  if (!reply) {
    print("mixlbctl: " + reply.error() + "\n", stderr);
    return kExitUnreachable;
  }
  if (!reply->ok) {
    print("mixlbctl: mixlb: " + reply->error + "\n", stderr);
    return kExitDaemonError;
  }
  if (indent != 0) {
    print(reply->result.dump(indent, ' ', false, json::error_handler_t::replace) + "\n");
  } else {
    print(mixlb::render_result(command, reply->result), text_to);
  }
  return kExitOk;
}

// Prints a stream's first reply, then each event, until the daemon closes
// the stream. With --json the lines are the daemon's, one JSON value each.
int run_stream(const std::string& socket, const CommandSpec& command, const json& args,
               const Options& options) {
  const auto timeout = timeout_for(command, options);
  auto client = mixlb::AdminClient::connect(socket, timeout);
  if (!client) {
    print("mixlbctl: " + client.error() + "\n", stderr);
    return kExitUnreachable;
  }
  // The first reply goes to stderr as text, so stdout holds only events.
  if (const int failed = print_reply(client->call(command.name, args, timeout), command,
                                     options.json ? -1 : 0, stderr)) {
    return failed;
  }
  std::fflush(stdout);
  for (;;) {
    auto line = client->next_line();
    if (!line) {
      print("mixlbctl: " + line.error() + "\n", stderr);
      return kExitUnreachable;
    }
    if (!*line) {
      print("mixlbctl: " + socket + " ended the stream\n", stderr);
      return kExitUnreachable;
    }
    if (options.json) {
      print(**line + "\n");
    } else {
      json event;
      try {
        event = json::parse(**line);
      } catch (const json::exception&) {
        event = **line;  // shown as it came, by render_event's fallback
      }
      print(mixlb::render_event(command, event));
    }
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (const auto exit_code = parse_args(argc, argv, options)) return *exit_code;

  const CommandSpec* command = mixlb::find_command(options.command);
  if (command == nullptr) {
    return usage_error("unknown command '" + options.command + "' (known: " +
                       mixlb::command_names() + ")");
  }
  auto args = mixlb::args_from_words(*command, options.words);
  if (!args) return usage_error(args.error(), command);

  std::string socket;
  if (options.socket) {
    socket = *options.socket;
  } else if (options.node) {
    socket = mixlb::admin_socket_for_node(*options.node);
  } else {
    auto found = mixlb::find_admin_socket();
    if (!found) {
      print("mixlbctl: " + found.error().message + "\n", stderr);
      return found.error().ambiguous ? kExitUsage : kExitUnreachable;
    }
    socket = std::move(*found);
  }

  if (command->kind == mixlb::CommandKind::kStream)
    return run_stream(socket, *command, *args, options);

  return print_reply(mixlb::admin_call(socket, command->name, *args, timeout_for(*command, options)),
                     *command,
                     options.json ? 2 : 0, stdout);
}
