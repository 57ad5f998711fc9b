#include "admin/admin_protocol.h"

#include <fmt/format.h>

#include <algorithm>
#include <exception>
#include <iterator>
#include <set>
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

}  // namespace mixlb
