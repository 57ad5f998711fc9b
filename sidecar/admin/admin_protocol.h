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
// A stream command (CommandKind::kStream in commands.h: `monitor`) is asked
// the same way and answered by its ok reply, then one JSON line per event
// until the client closes the connection; the connection is the stream's
// from then on, and what the client sends on it is ignored:
//
//   request   {"cmd":"monitor","args":{"level":"info"}}\n
//   reply     {"ok":true,"result":{"stream":"monitor",...}}\n
//   events    {"event":"member",...}\n {"event":"log",...}\n ...
//
// A client that never asks for a stream sees one reply per request, as
// before streams existed.
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
#include <cstddef>
#include <exception>
#include <expected>
#include <functional>
#include <memory>
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

// Where a stream answer's event lines come from. The server calls
// on_ready once, then take() whenever it has been woken or has written what
// it took, and close() when the client has gone or the server stops. The
// callback given to on_ready may be called on any thread; it only says that
// take() has lines.
class AdminStream {
 public:
  virtual ~AdminStream() = default;
  virtual void on_ready(std::function<void()> wake) = 0;
  // The lines waiting, each with its newline; empty when none are.
  virtual std::string take() = 0;
  virtual void close() = 0;
};

struct AdminOutcome {
  std::string reply;           // the line to send back, newline included
  std::string internal_error;  // set when the handler failed unexpectedly; log it
  std::shared_ptr<AdminStream> stream;  // a stream answer: its lines follow the reply
};
// The outcome for a handler that failed with `error` while serving `cmd`:
// an AdminError's message is the reply's error as it is; anything else
// becomes "internal error: <what>" with a line for the log naming the
// command. Call it with std::current_exception() from a catch (...).
AdminOutcome admin_failure_outcome(std::string_view cmd, std::exception_ptr error);

}  // namespace mixlb
