#pragma once
// The command table: one row per admin command with its arguments, its help
// and the renderer of its result. It is the only list of commands: mixlbctl's
// usage text, its argument checks and its output, the daemon's argument
// checks and its "unknown command" error, the check that the daemon has
// exactly one handler per command (admin/handlers.h), and the command
// reference in docs/operations.md (command_reference(), checked against the
// document by a test) all read it, so adding a command is adding a row here
// and a handler in the daemon.
//
// No I/O and nothing of the daemon: mixlbctl links it (with the protocol,
// the results and the renderers) as the small mixlb_admin_client library.
#include <expected>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mixlb {

// mixlbctl's exit codes, which command_reference() and the usage explain.
inline constexpr int kExitOk = 0;
inline constexpr int kExitDaemonError = 1;  // the daemon answered with an error
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;  // no daemon answered, or it ended a stream

// How long mixlbctl waits for a reply by default.
inline constexpr int kDefaultTimeoutMs = 5000;

enum class CommandKind {
  kReply,   // one reply line
  kStream,  // an ok reply, then one JSON event per line until the client closes
};

struct CommandArg {
  std::string_view name;    // its key in the request's "args"; an option is --name
  bool positional = false;  // a word in order after the command; else an option
  std::string_view value;   // what the usage calls its value: "PROTO", "STATE"
  std::string_view help;    // a sentence
  std::span<const std::string_view> choices;  // the words it takes; empty: any text
  // A positional given as a decimal number is sent as a JSON number (the
  // daemon refuses anything else with its own message).
  bool number = false;
  // An option that may be given more than once or as a comma list; sent as
  // an array of words.
  bool repeatable = false;
  // A positional that may be left out; only the last positionals may be.
  bool optional = false;
};

struct CommandSpec {
  std::string_view name;
  CommandKind kind = CommandKind::kReply;
  std::span<const CommandArg> args;
  std::string_view summary;      // a line for the list of commands
  std::string_view description;  // sentences: what it does, what it prints
  std::string_view example;      // a command line, for the reference
  // How long mixlbctl waits for the reply unless --timeout says otherwise;
  // 0: mixlbctl's default (kDefaultTimeoutMs).
  int timeout_ms = 0;
  // The text of a result (kReply) or of a stream's first reply (kStream).
  // Throws what from_json throws for a result of another shape.
  std::string (*render)(const nlohmann::json& result) = nullptr;
  // kStream: the text of one event line.
  std::string (*render_event)(const nlohmann::json& event) = nullptr;
};

// Every command, in the order the usage lists them.
std::span<const CommandSpec> admin_commands();
const CommandSpec* find_command(std::string_view name);
// "status, stats, ...": the names, for errors.
std::string command_names();

// "which PROTO SRC SPORT VIP VPORT", "members [--status STATE]...".
std::string command_synopsis(const CommandSpec& command);
// mixlbctl's --help: the options, every command with its synopsis and
// summary, the exit codes.
std::string mixlbctl_usage();
// mixlbctl COMMAND --help: the synopsis, the description, each argument.
std::string command_help(const CommandSpec& command);

// The request's args from mixlbctl's words after the command's name
// (positionals in order; options as --name VALUE or --name=VALUE). The error
// is a usage error, ready to print.
std::expected<nlohmann::json, std::string> args_from_words(const CommandSpec& command,
                                                           std::span<const std::string> words);

// The daemon's check of a request's args against the command's row: no
// unknown key, every positional present, options as text (arrays of text
// when repeatable) holding only their choices. The error is the reply's.
std::expected<void, std::string> check_args(const CommandSpec& command, const nlohmann::json& args);

// The words of a checked option ("alive,dead" and ["alive","dead"] alike);
// empty when it was not given.
std::vector<std::string> option_words(const nlohmann::json& args, std::string_view name);

// The text of `result` (or of a stream's `event`) for people;
// "unexpected <command> result: <JSON>" when it does not read as the
// command's result type.
std::string render_result(const CommandSpec& command, const nlohmann::json& result);
std::string render_event(const CommandSpec& command, const nlohmann::json& event);

// The command reference as docs/operations.md holds it between
// `<!-- commands -->` and `<!-- end commands -->`.
std::string command_reference();

}  // namespace mixlb
