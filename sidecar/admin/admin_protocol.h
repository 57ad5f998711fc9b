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
// A request line is at most kAdminMaxLine bytes, newline excluded; a
// command name is a short word; no object in a request may repeat a key
// (the JSON library would silently keep the last one, and a request would
// not mean what it seems to). A bad request gets an error reply and the
// connection carries on. The handler (see admin_server.h) signals a bad
// request by throwing AdminError, whose message becomes the reply's error;
// any other exception becomes "internal error: ...". Wherever an error
// repeats what the client sent, it goes through quote_input, so a reply
// stays short and printable whatever the request held.
//
// render_status, render_stats and render_which turn the daemon's results
// into the text mixlbctl prints, so their layouts are tested with canned
// objects.
#include <cstddef>
#include <exception>
#include <expected>
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

inline constexpr std::size_t kAdminMaxLine = 64 * 1024;
// The longest command name; names are ASCII letters, digits, '-' and '_'.
inline constexpr std::size_t kAdminMaxCommand = 64;

struct AdminRequest {
  std::string cmd;
  nlohmann::json args = nlohmann::json::object();  // {} when absent or null
};

// Parses one request line (without its newline). The error text says what was
// wrong and where, ready for an error reply.
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
// The outcome for a handler that failed with `error` while serving `cmd`:
// an AdminError's message is the reply's error as it is; anything else
// becomes "internal error: <what>" with a line for the log naming the
// command. Call it with std::current_exception() from a catch (...).
AdminOutcome admin_failure_outcome(std::string_view cmd, std::exception_ptr error);

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

// A `leave` result in one line.
std::string render_leave(const nlohmann::json& leave);

// A `drain` / `undrain` result in one line.
std::string render_drain(const nlohmann::json& drain);

// A `which` result in one line, e.g.
//   10.100.0.1:80/tcp from 192.0.2.1:40000 -> mix2 (forwarded, Maglev)
std::string render_which(const nlohmann::json& which);

}  // namespace mixlb
