// The admin socket's wire protocol, rule by rule, with no I/O: request
// parsing and its limits, the errors that repeat what a client sent, the
// encoders, reply parsing, and how a handler's exception becomes a reply.
#include <doctest/doctest.h>

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <string>

#include "admin/admin_protocol.h"

namespace mixlb {
namespace {

using nlohmann::json;

std::string error_of(const std::expected<AdminRequest, std::string>& parsed) {
  REQUIRE_FALSE(parsed.has_value());
  return parsed.error();
}

TEST_SUITE("admin") {
  TEST_CASE("a request parses with and without args") {
    auto plain = parse_admin_request(R"({"cmd":"status"})");
    REQUIRE(plain.has_value());
    CHECK(plain->cmd == "status");
    CHECK(plain->args == json::object());

    auto with_args = parse_admin_request(R"( {"args":{"vip":"10.0.0.1"},"cmd":"drain"} )");
    REQUIRE(with_args.has_value());
    CHECK(with_args->cmd == "drain");
    CHECK(with_args->args == json{{"vip", "10.0.0.1"}});

    auto null_args = parse_admin_request(R"({"cmd":"status","args":null})");
    REQUIRE(null_args.has_value());
    CHECK(null_args->args == json::object());
  }

  TEST_CASE("each malformed request says what is wrong") {
    CHECK(error_of(parse_admin_request("{\"cmd\":")).starts_with("malformed request: parse error"));
    CHECK(error_of(parse_admin_request("status")).starts_with("malformed request: parse error"));
    CHECK(error_of(parse_admin_request("[1,2]")) ==
          R"(malformed request: expected a JSON object like {"cmd":"status"}, got an array)");
    CHECK(error_of(parse_admin_request("\"status\"")).ends_with("got a string"));
    CHECK(error_of(parse_admin_request("42")).ends_with("got a number"));
    CHECK(error_of(parse_admin_request("{}")) == R"(malformed request: missing "cmd")");
    CHECK(error_of(parse_admin_request(R"({"cmd":7})")) ==
          R"(malformed request: "cmd" must be a string, got a number)");
    CHECK(error_of(parse_admin_request(R"({"cmd":""})")) == R"(malformed request: "cmd" is empty)");
    CHECK(error_of(parse_admin_request(R"({"cmd":"status","args":[1]})")) ==
          R"(malformed request: "args" must be an object, got an array)");
    CHECK(error_of(parse_admin_request(R"({"cmd":"status","args":"x"})")) ==
          R"(malformed request: "args" must be an object, got a string)");
    CHECK(error_of(parse_admin_request("")).starts_with("empty request line"));
    CHECK(error_of(parse_admin_request(" \t")).starts_with("empty request line"));
    CHECK(error_of(parse_admin_request(std::string(kAdminMaxLine + 1, ' '))) ==
          "request line longer than 65536 bytes");
    // No library bookkeeping in front of the message.
    CHECK(error_of(parse_admin_request("{x")).find("[json.exception") == std::string::npos);
  }

  TEST_CASE("a number out of range is an error, not an exception") {
    // nlohmann throws out_of_range, not parse_error, for these.
    CHECK(error_of(parse_admin_request(R"({"cmd":"which","args":{"sport":1e999999}})")) ==
          R"(malformed request: number overflow parsing "1e999999")");
    CHECK(error_of(parse_admin_request(R"({"cmd":"which","args":{"sport":-1e400}})")) ==
          R"(malformed request: number overflow parsing "-1e400")");
    const std::string long_number = "1" + std::string(400, '0');
    CHECK(error_of(parse_admin_request(R"({"cmd":"x","args":{"n":)" + long_number + "}}")) ==
          "malformed request: number overflow parsing \"1" + std::string(63, '0') +
              "\u2026\" (337 more bytes)");
    // Integers too big for 64 bits become doubles, which is not an error.
    CHECK(parse_admin_request(R"({"cmd":"x","args":{"n":99999999999999999999}})").has_value());
  }

  TEST_CASE("a key repeated in any object is refused, naming the key and where") {
    CHECK(error_of(parse_admin_request(R"({"cmd":"status","cmd":"drain"})")) ==
          R"(malformed request: duplicate key "cmd")");
    CHECK(error_of(
              parse_admin_request(R"({"cmd":"which","args":{"sport":1,"vport":2,"sport":3}})")) ==
          R"(malformed request: duplicate key "sport" in "/args")");
    CHECK(error_of(parse_admin_request(
              R"({"cmd":"x","args":{"list":[{"k":1},[],{"k":2,"j":0,"k":3}]}})")) ==
          R"(malformed request: duplicate key "k" in "/args/list/2")");
    CHECK(error_of(parse_admin_request(R"({"cmd":"x","args":{"a/b~":{"k":1,"k":1}}})")) ==
          R"(malformed request: duplicate key "k" in "/args/a~1b~0")");
    // The key is quoted: escaped and cut.
    CHECK(error_of(parse_admin_request(R"({"cmd":"x","a\u0000\"":1,"a\u0000\"":2})")) ==
          R"(malformed request: duplicate key "a\x00\"")");
    const std::string key(5000, 'k');
    CHECK(error_of(parse_admin_request(R"({"cmd":"x",")" + key + R"(":1,")" + key + R"(":2})")) ==
          "malformed request: duplicate key \"" + std::string(64, 'k') +
              "\u2026\" (4936 more bytes)");
    // The same key in different objects is no repeat.
    const auto siblings = parse_admin_request(
        R"({"cmd":"x","args":{"a":{"k":1},"b":{"k":2},"c":[{"k":3},{"k":4}]}})");
    REQUIRE(siblings.has_value());
    CHECK(siblings->args["c"][1]["k"] == 4);
  }

  TEST_CASE("errors that repeat the request are short and printable") {
    auto printable = [](const std::string& text) {
      for (const unsigned char c : text) {
        if (c < 0x20 || c == 0x7F) return false;
      }
      return true;
    };
    // A NUL byte in a request.
    const std::string nul =
        error_of(parse_admin_request(std::string("{\"cmd\":\"st\0atus\"}", 17)));
    CHECK(nul.starts_with("malformed request: parse error"));
    CHECK(printable(nul));
    // A string of nearly 64 KiB that the parser gives up on at its end: the
    // token it read is cut.
    const std::string long_token = error_of(
        parse_admin_request(R"({"cmd":"x","args":{"a":")" + std::string(60000, 'z') + "\x01\"}}"));
    CHECK(long_token.size() < 400);
    CHECK(long_token.find("more bytes)") != std::string::npos);
    CHECK(printable(long_token));
    // Bytes that are not UTF-8 are shown as escapes, not passed on.
    const std::string not_utf8 = error_of(parse_admin_request("{\"cmd\":\"\xff\"}"));
    CHECK(not_utf8.find(R"(last read: "\"\xFF")") != std::string::npos);
    // What nlohmann expected still follows the quoted input.
    CHECK(error_of(parse_admin_request("{\"cmd\":\"x\",\x01}"))
              .ends_with("; expected string literal"));
    // A request line of 5 MB is refused by its length alone.
    CHECK(error_of(parse_admin_request(std::string(5 * 1024 * 1024, 'x'))) ==
          "request line longer than 65536 bytes");
  }

  TEST_CASE("a command name is a short word") {
    CHECK(parse_admin_request(R"({"cmd":"slow_refuse-2"})").has_value());
    CHECK(error_of(parse_admin_request(R"({"cmd":"status\n"})")) ==
          R"(malformed request: "cmd" must be a command name (ASCII letters, digits, '-' and '_', )"
          R"(at most 64 bytes), got "status\n")");
    CHECK(error_of(parse_admin_request(R"({"cmd":"st atus"})")).ends_with(R"(got "st atus")"));
    const std::string long_name(60000, 'a');
    CHECK(error_of(parse_admin_request(R"({"cmd":")" + long_name + R"("})"))
              .ends_with("got \"" + std::string(64, 'a') + "\u2026\" (59936 more bytes)"));
  }

  TEST_CASE("admin_failure_outcome maps each kind of exception") {
    const auto refused =
        admin_failure_outcome("drain", std::make_exception_ptr(AdminError("gossip is off")));
    CHECK(refused.reply == encode_error_reply("gossip is off"));
    CHECK(refused.internal_error.empty());

    const auto crashed =
        admin_failure_outcome("sta\ntus", std::make_exception_ptr(std::runtime_error("kaput")));
    CHECK(crashed.reply == encode_error_reply("internal error: kaput"));
    CHECK(crashed.internal_error == R"(command "sta\ntus" failed: kaput)");

    const auto weird = admin_failure_outcome("x", std::make_exception_ptr(42));
    CHECK(weird.reply == encode_error_reply("internal error: unknown exception"));
    CHECK(weird.internal_error == R"(command "x" failed with a non-standard exception)");
  }

  TEST_CASE("deeply nested input is an error, not a crash") {
    const std::string deep = std::string(20000, '[') + std::string(20000, ']');
    CHECK(error_of(parse_admin_request(deep)).ends_with("got an array"));
  }

  TEST_CASE("requests and replies round-trip as single lines") {
    const std::string request = encode_admin_request("echo", json{{"a", "x\ny"}});
    CHECK(request.back() == '\n');
    CHECK(std::count(request.begin(), request.end(), '\n') == 1);
    auto parsed = parse_admin_request(std::string_view(request).substr(0, request.size() - 1));
    REQUIRE(parsed.has_value());
    CHECK(parsed->cmd == "echo");
    CHECK(parsed->args["a"] == "x\ny");
    CHECK(encode_admin_request("status", json::object()) == "{\"cmd\":\"status\"}\n");

    auto ok = parse_admin_reply(encode_ok_reply(json{{"n", 1}}));
    REQUIRE(ok.has_value());
    CHECK(ok->ok);
    CHECK(ok->result == json{{"n", 1}});
    auto error = parse_admin_reply(encode_error_reply("no such VIP"));
    REQUIRE(error.has_value());
    CHECK_FALSE(error->ok);
    CHECK(error->error == "no such VIP");

    CHECK(parse_admin_reply("nope").error().starts_with("malformed reply: parse error"));
    CHECK(parse_admin_reply(R"({"ok":true,"result":1e999})").error() ==
          R"(malformed reply: number overflow parsing "1e999")");
    CHECK(parse_admin_reply("[]").error() == "malformed reply: not a JSON object");
    CHECK(parse_admin_reply(R"({"result":1})").error() ==
          R"(malformed reply: missing boolean "ok")");
    CHECK(parse_admin_reply(R"({"ok":false})").error() ==
          R"(malformed reply: error reply without an "error" string)");
  }
}  // TEST_SUITE

}  // namespace
}  // namespace mixlb
