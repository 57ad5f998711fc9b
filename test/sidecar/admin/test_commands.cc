// The command table is the admin surface's one list of commands: mixlbctl's
// usage and help, its argument parsing, the daemon's argument checks and
// the command reference in docs/operations.md must all agree with it.
//
// When a command, an argument or a help text changes, regenerate the
// document's reference with
//   MIXLB_UPDATE_DOCS=1 build/test/unit_tests -ts=admin -tc='*operations.md*'
// and read the diff.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "admin/commands.h"
#include "admin/results.h"
#include "generated_doc.h"

namespace mixlb {
namespace {

using nlohmann::json;

const CommandSpec& command(std::string_view name) {
  const CommandSpec* spec = find_command(name);
  REQUIRE_MESSAGE(spec != nullptr, "no command " << name);
  return *spec;
}

std::vector<std::string> split(std::string_view text) {
  std::vector<std::string> words;
  std::istringstream in{std::string(text)};
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

// The request's args for mixlbctl's `words` after the command's name.
json args_of(std::string_view name, std::string_view words) {
  const auto args = args_from_words(command(name), split(words));
  REQUIRE_MESSAGE(args.has_value(), args.error());
  return *args;
}

// The usage error for `words`.
std::string refusal_of(std::string_view name, std::string_view words) {
  const auto args = args_from_words(command(name), split(words));
  REQUIRE_FALSE_MESSAGE(args.has_value(), args->dump());
  return args.error();
}

// The daemon's error for `args`.
std::string check_error(std::string_view name, const json& args) {
  const auto checked = check_args(command(name), args);
  REQUIRE_FALSE(checked.has_value());
  return checked.error();
}

std::size_t longest_line(std::string_view text) {
  std::size_t longest = 0;
  std::istringstream in{std::string(text)};
  for (std::string line; std::getline(in, line);) longest = std::max(longest, line.size());
  return longest;
}

// `text` without backquotes, its blanks folded to single spaces, trimmed.
std::string collapsed(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '`') continue;
    if (c == ' ' || c == '\n') {
      if (!out.empty() && out.back() != ' ') out += ' ';
      continue;
    }
    out += c;
  }
  if (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

TEST_SUITE("admin") {
  TEST_CASE("docs/operations.md holds the command reference the table generates") {
    GeneratedDoc("docs/operations.md")
        .check("<!-- commands -->\n", "<!-- end commands -->", command_reference(),
               "the command reference");
  }

  TEST_CASE("the command reference is well-formed markdown: every row has its table's cells") {
    const std::string reference = command_reference();
    std::istringstream in(reference);
    std::size_t cells = 0;  // of the table being read; 0 between tables
    std::size_t rows = 0;
    for (std::string line; std::getline(in, line);) {
      CAPTURE(line);
      if (line.empty()) {
        cells = 0;
        continue;
      }
      REQUIRE(line.starts_with("| "));
      REQUIRE(line.ends_with(" |"));
      // An unescaped '|' in a help text would split its cell.
      const auto bars = static_cast<std::size_t>(std::count(line.begin(), line.end(), '|'));
      if (cells == 0) cells = bars;
      CHECK(bars == cells);
      ++rows;
    }
    // Three tables (options, commands, exit codes), each with its two
    // header lines.
    CHECK(rows == 6 + 5 + admin_commands().size() + 4);
    for (const CommandSpec& c : admin_commands()) {
      CAPTURE(c.name);
      CHECK(reference.find("| `" + command_synopsis(c) + "` | ") != std::string::npos);
      CHECK(reference.find(" Example: `" + std::string(c.example) + "`.") != std::string::npos);
    }
  }

  TEST_CASE("a positional's choices are checked on both sides; an optional one may be left out") {
    CHECK(args_of("keys", "list") == json{{"op", "list"}});
    CHECK(args_of("keys", "install abc") == json{{"op", "install"}, {"key", "abc"}});
    CHECK(command_synopsis(command("keys")) == "keys OP [KEY]");
    CHECK(refusal_of("keys", "rotate") == "OP: \"rotate\" is not one of list, install, use, remove, generate");
    CHECK(refusal_of("keys", "") == "keys needs 1 argument (OP [KEY]), got 0");
    CHECK(check_args(command("keys"), json{{"op", "rotate"}}).error() ==
          "keys: OP: \"rotate\" is not one of list, install, use, remove, generate");
    CHECK(check_args(command("keys"), json{{"op", 3}}).error() == "keys: \"op\" must be a string");
    CHECK(check_args(command("keys"), json{{"op", "list"}}).has_value());
    CHECK(check_args(command("keys"), json::object()).error() == "keys: missing argument \"op\"");
  }

  TEST_CASE("every command has a unique name, a summary, a description and a renderer") {
    std::set<std::string_view> names;
    for (const CommandSpec& c : admin_commands()) {
      CAPTURE(c.name);
      CHECK(names.insert(c.name).second);
      CHECK(find_command(c.name) == &c);
      CHECK_FALSE(c.summary.empty());
      CHECK_FALSE(c.description.empty());
      CHECK(static_cast<bool>(c.render));
      // A stream renders its events too; a one-reply command has none.
      CHECK((c.render_event != nullptr) == (c.kind == CommandKind::kStream));
      std::set<std::string_view> args;
      bool options_seen = false, optional_seen = false;
      for (const CommandArg& arg : c.args) {
        CAPTURE(arg.name);
        CHECK(args.insert(arg.name).second);
        CHECK_FALSE(arg.value.empty());
        CHECK_FALSE(arg.help.empty());
        // Positionals come first in the synopsis and in the words.
        if (!arg.positional) options_seen = true;
        CHECK_FALSE((arg.positional && options_seen));
        CHECK_FALSE((arg.positional && arg.repeatable));
        // Only the last positionals may be left out; options always may.
        if (arg.positional && arg.optional) optional_seen = true;
        CHECK_FALSE((arg.positional && !arg.optional && optional_seen));
        CHECK_FALSE((!arg.positional && arg.optional));
        CHECK_FALSE((!arg.positional && arg.number));
      }
    }
    CHECK(find_command("frobnicate") == nullptr);
    CHECK(find_command("") == nullptr);
    CHECK(command_names() ==
          "status, stats, vips, ct, members, drain, undrain, leave, reload, which, monitor, keys, sockets");
  }

  TEST_CASE("every example is a command line that parses and passes the daemon's check") {
    for (const CommandSpec& c : admin_commands()) {
      CAPTURE(c.example);
      const std::vector<std::string> words = split(c.example);
      REQUIRE(words.size() >= 2);
      CHECK(words.front() == "mixlbctl");
      // mixlbctl's own options, then the command, then its words.
      std::size_t at = 1;
      while (at < words.size() && words[at].starts_with("-")) {
        const std::string& option = words[at++];
        if (option != "--json") ++at;  // -n NODE, -s SOCKET, --timeout MS
      }
      REQUIRE(at < words.size());
      CHECK(words[at] == c.name);
      const std::vector<std::string> rest(words.begin() + static_cast<long>(at) + 1, words.end());
      const auto args = args_from_words(c, rest);
      REQUIRE_MESSAGE(args.has_value(), args.error());
      const auto checked = check_args(c, *args);
      CHECK_MESSAGE(checked.has_value(), (checked ? "" : checked.error()));
    }
  }

  TEST_CASE("the usage names every command with its synopsis and summary, and the exit codes") {
    const std::string usage = mixlbctl_usage();
    CHECK(usage.starts_with(
        "usage: mixlbctl [-s SOCKET | -n NODE] [--json] [--timeout MS] <command> [args]\n"));
    // Each command's row, in the table's order, then its summary on that row
    // and the lines below it that are indented further (a long synopsis
    // puts the summary on the line below).
    std::vector<std::string> lines;
    std::istringstream in(usage);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    const auto first = std::find(lines.begin(), lines.end(), "commands:");
    REQUIRE(first != lines.end());
    auto at = first + 1;
    for (const CommandSpec& c : admin_commands()) {
      CAPTURE(c.name);
      REQUIRE(at != lines.end());
      const std::string synopsis = "  " + command_synopsis(c);
      REQUIRE(at->starts_with(synopsis));
      std::string text = at->substr(synopsis.size());
      for (++at; at != lines.end() && at->starts_with("   "); ++at) text += " " + *at;
      CHECK(collapsed(text) == collapsed(c.summary));
    }
    REQUIRE(at != lines.end());
    CHECK(at->empty());
    for (const int code : {kExitOk, kExitDaemonError, kExitUsage, kExitUnreachable}) {
      CHECK(usage.find("\n  " + std::to_string(code) + "  ") != std::string::npos);
    }
    CHECK(usage.find('`') == std::string::npos);  // markdown is for the document
    CHECK(longest_line(usage) <= 78);
  }

  TEST_CASE("a command's help gives its synopsis, description, arguments and example") {
    CHECK(command_synopsis(command("status")) == "status");
    CHECK(command_synopsis(command("which")) == "which PROTO SRC SPORT VIP VPORT");
    CHECK(command_synopsis(command("members")) == "members [--status STATE]...");
    CHECK(command_synopsis(command("monitor")) == "monitor [--level LEVEL]");
    for (const CommandSpec& c : admin_commands()) {
      CAPTURE(c.name);
      const std::string help = command_help(c);
      // The usage line, wrapped between arguments when it is long, reads as
      // the synopsis once its line breaks are undone.
      const std::string usage = help.substr(0, help.find("\n\n"));
      CHECK(collapsed(usage) == "usage: mixlbctl [options] " + command_synopsis(c));
      CHECK(help.ends_with("\nexample: " + std::string(c.example) + "\n"));
      for (const CommandArg& arg : c.args) {
        CHECK(help.find(arg.positional ? "\n  " + std::string(arg.value)
                                       : "\n  --" + std::string(arg.name) + " " +
                                             std::string(arg.value)) != std::string::npos);
      }
      CHECK(help.find('`') == std::string::npos);
      CHECK(longest_line(help) <= 78);
    }
    CHECK(command_help(command("ct")).starts_with(
        "usage: mixlbctl [options] ct [--vip VIP] [--node NAME] [--client ADDR]\n"
        "                          [--limit N]\n\n"));
    const std::string members = command_help(command("members"));
    CHECK(collapsed(members).find("One of: alive, suspect, dead, left.") != std::string::npos);
  }

  TEST_CASE("args_from_words: positionals in order, decimal numbers as numbers") {
    CHECK(args_of("status", "") == json::object());
    CHECK(args_of("which", "tcp 192.0.2.1 40000 10.100.0.1 80") ==
          json{{"proto", "tcp"},
               {"src", "192.0.2.1"},
               {"sport", 40000},
               {"vip", "10.100.0.1"},
               {"vport", 80}});
    // What is not a decimal number goes as text, for the daemon to refuse
    // with its own message.
    const json odd = args_of("which", "udp fd00::9 http fd00::1 53x");
    CHECK(odd["sport"] == "http");
    CHECK(odd["vport"] == "53x");
    CHECK(args_of("which", "tcp a 1 b 99999999999999999999")["vport"] == "99999999999999999999");
    const std::string empty_port[] = {"tcp", "a", "", "b", "1"};
    CHECK(args_from_words(command("which"), empty_port).value()["sport"] == "");
  }

  TEST_CASE("args_from_words: options as --name VALUE or --name=VALUE, lists as commas or repeats") {
    CHECK(args_of("members", "") == json::object());
    CHECK(args_of("members", "--status alive") == json{{"status", {"alive"}}});
    CHECK(args_of("members", "--status=dead") == json{{"status", {"dead"}}});
    CHECK(args_of("members", "--status suspect,dead") == json{{"status", {"suspect", "dead"}}});
    CHECK(args_of("members", "--status alive --status=left,dead") ==
          json{{"status", {"alive", "left", "dead"}}});
    CHECK(args_of("monitor", "--level debug") == json{{"level", "debug"}});
    CHECK(args_of("monitor", "--level=error") == json{{"level", "error"}});
  }

  TEST_CASE("args_from_words refuses what the table does not allow, saying what") {
    CHECK(refusal_of("members", "--frob x") == "members has no option --frob");
    CHECK(refusal_of("status", "--status alive") == "status has no option --status");
    CHECK(refusal_of("which", "--proto tcp") == "which has no option --proto");  // a positional
    CHECK(refusal_of("members", "-x") == "unknown option -x");
    CHECK(refusal_of("status", "extra") == "unexpected argument extra");
    CHECK(refusal_of("which", "tcp 192.0.2.1 40000") ==
          "which needs 5 arguments (PROTO SRC SPORT VIP VPORT), got 3");
    CHECK(refusal_of("which", "tcp a 1 b 2 c") == "unexpected argument c");
    CHECK(refusal_of("members", "--status bogus") ==
          R"(--status: "bogus" is not one of alive, suspect, dead, left)");
    CHECK(refusal_of("members", "--status alive,bogus") ==
          R"(--status: "bogus" is not one of alive, suspect, dead, left)");
    CHECK(refusal_of("monitor", "--level loud") ==
          R"(--level: "loud" is not one of trace, debug, info, warn, error, critical)");
    CHECK(refusal_of("members", "--status") == "--status needs a value");
    CHECK(refusal_of("members", "--status=") == "--status needs a value");
    CHECK(refusal_of("members", "--status alive,") == "--status needs a value");
    CHECK(refusal_of("monitor", "--level info --level debug") == "--level given twice");
    // A word that is not printable is quoted.
    const std::string control[] = {"--status", "al\nive"};
    CHECK(args_from_words(command("members"), control).error() ==
          R"(--status: "al\nive" is not one of alive, suspect, dead, left)");
  }

  TEST_CASE("check_args accepts what mixlbctl sends and the same in other shapes") {
    CHECK(check_args(command("status"), json::object()).has_value());
    CHECK(check_args(command("members"), json{{"status", {"alive", "dead"}}}).has_value());
    CHECK(check_args(command("members"), json{{"status", "alive,dead"}}).has_value());
    CHECK(check_args(command("members"), json{{"status", "left"}}).has_value());
    CHECK(check_args(command("monitor"), json{{"level", "warn"}}).has_value());
    // Positionals are the handler's to judge: any JSON value passes here.
    CHECK(check_args(command("which"), json{{"proto", "tcp"},
                                            {"src", "192.0.2.1"},
                                            {"sport", "http"},
                                            {"vip", 7},
                                            {"vport", 80}})
              .has_value());
  }

  TEST_CASE("check_args refuses unknown keys, missing positionals and bad options") {
    CHECK(check_error("status", json{{"verbose", true}}) == "status takes no arguments");
    CHECK(check_error("members", json{{"state", "alive"}}) ==
          R"(members: unknown argument "state" (members takes status))");
    CHECK(check_error("which", json{{"proto", "tcp"}, {"sport", 1}, {"port", 2}}) ==
          R"(which: unknown argument "port" (which takes proto, src, sport, vip, vport))");
    CHECK(check_error("which", json{{"proto", "tcp"}, {"src", "a"}, {"sport", 1}, {"vip", "b"}}) ==
          R"(which: missing argument "vport")");
    CHECK(check_error("members", json{{"status", 5}}) ==
          R"(members: "status" must be a string or an array of strings)");
    CHECK(check_error("members", json{{"status", {"alive", 5}}}) ==
          R"(members: "status" must be a string or an array of strings)");
    CHECK(check_error("monitor", json{{"level", {"info"}}}) == R"(monitor: "level" must be a string)");
    CHECK(check_error("members", json{{"status", {"alive", "zombie"}}}) ==
          R"(members: --status: "zombie" is not one of alive, suspect, dead, left)");
    CHECK(check_error("members", json{{"status", ""}}) == "members: --status needs a value");
    CHECK(check_error("status", json::array()) == "status: args must be an object");
    // A key is quoted however odd it is.
    CHECK(check_error("members", json{{"st\"atus", 1}}) ==
          R"(members: unknown argument "st\"atus" (members takes status))");
  }

  TEST_CASE("option_words reads a checked option in either shape") {
    CHECK(option_words(json::object(), "status").empty());
    CHECK(option_words(json{{"status", "alive,dead"}}, "status") ==
          std::vector<std::string>{"alive", "dead"});
    CHECK(option_words(json{{"status", {"alive", "left,dead"}}}, "status") ==
          std::vector<std::string>{"alive", "left", "dead"});
    CHECK(option_words(json{{"level", "info"}}, "level") == std::vector<std::string>{"info"});
  }
}  // TEST_SUITE

}  // namespace
}  // namespace mixlb
