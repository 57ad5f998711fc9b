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
// render_status, render_stats and render_which turn the daemon's results
// into the text mixlbctl prints, so their layouts are tested with canned
// objects.
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
// A VIP's backends show their weight when it is not 1 ("mix2:3"), and
// serving nodes drained to weight 0 follow them as "name:0".
std::string render_status(const nlohmann::json& status);

// The human form of a `stats` (or `status`) result: the global counters
// (events, drops by reason, bpf_fib_lookup results; non-zero ones only for
// drops and results), then one row per (VIP, node): packets and bytes this
// node served itself ("local") or forwarded to that node ("forwarded").
std::string render_stats(const nlohmann::json& stats);

// The arguments of a `which` request from mixlbctl's command line. Ports that
// are decimal numbers become JSON numbers; anything else is passed on as a
// string, for the daemon to refuse with its own message.
nlohmann::json make_which_args(std::string_view proto, std::string_view src, std::string_view sport,
                               std::string_view vip, std::string_view vport);

// The human form of a `members` result: one row per member known to
// gossip (state, incarnation, addresses, weight, app health, whether this
// node's tables hold it, its VIP ports), the reason a live member is left
// out, then this node's gossip counters.
std::string render_members(const nlohmann::json& members);

// A `drain` / `undrain` result in one line.
std::string render_drain(const nlohmann::json& drain);

// A `which` result in one line, e.g.
//   10.100.0.1:80/tcp from 192.0.2.1:40000 -> mix2 (forwarded, Maglev)
std::string render_which(const nlohmann::json& which);

}  // namespace mixlb
