#pragma once
// The admin socket's wire protocol, with no I/O in it, so that every rule is
// unit-tested directly and the server and mixlbctl share one definition.
//
// Newline-delimited JSON over a Unix stream socket, one reply line per
// request line:
//
//   request   {"cmd":"status","args":{...}}\n          args optional, an object
//   reply     {"ok":true,"result":<any JSON>}\n
//          or {"ok":false,"error":"<what was wrong>"}\n
//
// A request line is at most kAdminMaxLine bytes, newline excluded. A bad
// request gets an error reply and the connection carries on; the handler
// signals a bad request by throwing AdminError, whose message becomes the
// reply's error, and any other exception becomes "internal error: ...".
//
// render_status turns the daemon's status result into the text mixlbctl
// prints, so its layout is tested with a canned object.
#include <cstddef>
#include <expected>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

namespace mixlb {

// Thrown by a handler for a request it refuses (unknown command, bad
// arguments); the message is sent to the client as it is.
class AdminError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using AdminHandler =
    std::function<nlohmann::json(std::string_view cmd, const nlohmann::json& args)>;

inline constexpr std::size_t kAdminMaxLine = 64 * 1024;

struct AdminRequest {
  std::string cmd;
  nlohmann::json args = nlohmann::json::object();  // {} when absent or null
};

// Parses one request line (without its newline). The error text says what was
// wrong, ready for an error reply.
std::expected<AdminRequest, std::string> parse_admin_request(std::string_view line);

// One line each, newline included. Invalid UTF-8 in strings is replaced
// rather than thrown about, so a reply can always be sent.
std::string encode_admin_request(std::string_view cmd, const nlohmann::json& args);
std::string encode_ok_reply(const nlohmann::json& result);
std::string encode_error_reply(std::string_view message);

struct AdminReply {
  bool ok = false;
  nlohmann::json result;  // when ok
  std::string error;      // when !ok
};
// Parses a reply line (client side); the error says why it is not a reply.
std::expected<AdminReply, std::string> parse_admin_reply(std::string_view line);

struct AdminOutcome {
  std::string reply;           // the line to send back, newline included
  std::string internal_error;  // set when the handler failed unexpectedly; log it
};
// Parses `line`, calls `handler`, and turns everything that can go wrong
// into an error reply.
AdminOutcome handle_admin_line(std::string_view line, const AdminHandler& handler);

// The human form of a `status` result: a header, then aligned tables of
// nodes and VIPs, then the conntrack counters. Missing fields show as "-".
std::string render_status(const nlohmann::json& status);

}  // namespace mixlb
