// Tests for the admin socket: the protocol rules one by one (no I/O), the
// handler glue through handle_admin_line (no socket), the renderers against
// canned results, and a real AdminServer on a temporary path with its
// io_context on a thread of its own, driven by raw socket clients and by the
// blocking client mixlbctl uses. Other users are played through the
// server's credential reader, so the rules about uids run as any user.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "admin/admin_protocol.h"
#include "admin/admin_server.h"
#include "common/quote.h"

namespace mixlb {
namespace {

namespace asio = boost::asio;
using nlohmann::json;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------
// Fixtures.

const json kStatus = json::parse(R"({
  "node":"mix1","node_id":305419896,"interface":"veth1","ifindex":4,"xdp_mode":"native",
  "address":"10.0.0.11","mac":"02:00:00:00:00:11","maglev_table_size":65537,
  "nodes":[{"name":"mix1","id":305419896,"address":"10.0.0.11","weight":1,"mac":"02:00:00:00:00:11","self":true,"neighbour":"self"},
           {"name":"mix2","id":1234,"address":"fd00::12","weight":12,"mac":"02:00:00:00:00:12","self":false,"neighbour":"reachable"},
           {"name":"mix3","id":99,"address":"10.0.0.13","weight":0,"mac":"-","self":false,"neighbour":"none"}],
  "vips":[{"vip":"10.100.0.1:80/tcp","vip_id":0,"backends":["mix1","mix2"],"weights":{"mix1":1,"mix2":12,"mix3":0},
           "counters":{"local_pkts":1,"local_bytes":74,"fwd_pkts":2,"fwd_bytes":148,"from_peer_pkts":3,"from_peer_bytes":222,
                       "drops":{"no_backend":0,"unknown_node":0,"table_lookup":0,"fib_no_neigh":0,"fib_fwd_disabled":0,"fib_other":0,"redirect":0}},
           "per_node":[{"name":"mix1","self":true,"pkts":1,"bytes":74},{"name":"mix2","self":false,"pkts":2,"bytes":148},
                       {"name":"mix3","self":false,"pkts":0,"bytes":0}]},
          {"vip":"[fd00:100::1]:*/udp","vip_id":1,"backends":["mix2"],"weights":{"mix2":12},
           "counters":{"local_pkts":0,"local_bytes":0,"fwd_pkts":40,"fwd_bytes":52000,"from_peer_pkts":0,"from_peer_bytes":0,
                       "drops":{"fib_no_neigh":0}},
           "per_node":[{"name":"mix2","self":false,"pkts":40,"bytes":52000}]}],
  "counters":{"events":{"ct_hit":10,"ct_miss":3,"ct_insert":3,"ct_insert_fail":0,"ct_non_syn_miss":1,"icmp_error":0,"from_peer":3},
              "drops":{"no_backend":0,"unknown_node":0,"table_lookup":0,"fib_no_neigh":2,"fib_fwd_disabled":0,"fib_frag_needed":0,"fib_other":0,"redirect":1},
              "fib":{"success":42,"no_neigh":2}},
  "conntrack":{"hit":10,"miss":3,"insert":3,"insert_fail":0}})");

// Waits `ms` milliseconds on the handler's io_context, as a handler waiting
// for an answer posted back from another thread would.
asio::awaitable<void> pause_for(std::chrono::milliseconds ms) {
  asio::steady_timer timer(co_await asio::this_coro::executor, ms);
  co_await timer.async_wait(asio::use_awaitable);
}

asio::awaitable<json> test_handler(std::string cmd, json args) {
  if (cmd == "status") co_return kStatus;
  if (cmd == "echo") co_return args;
  if (cmd == "slow") {
    const int ms = args.value("ms", 50);
    co_await pause_for(std::chrono::milliseconds(ms));
    co_return json{{"slept_ms", ms}};
  }
  if (cmd == "slow_refuse") {
    co_await pause_for(20ms);
    throw AdminError("refused after waiting");
  }
  if (cmd == "slow_crash") {
    co_await pause_for(20ms);
    throw std::runtime_error("kaput after waiting");
  }
  if (cmd == "refuse") throw AdminError("refused: " + args.value("why", std::string("no reason")));
  if (cmd == "crash") throw std::runtime_error("kaput");
  if (cmd == "weird") throw 42;
  throw AdminError("unknown command " + quote_input(cmd));
}

// Handlers parked by the "hang" command until the test lets them go: a
// handler that does not finish on its own, and a test that still ends with
// an io_context that drains. Touched on the io_context's thread only.
struct Parking {
  std::vector<asio::steady_timer*> parked;

  AdminHandler handler() {
    return [this](std::string cmd, json args) -> asio::awaitable<json> {
      if (cmd != "hang") co_return co_await test_handler(std::move(cmd), std::move(args));
      asio::steady_timer timer(co_await asio::this_coro::executor,
                               asio::steady_timer::time_point::max());
      parked.push_back(&timer);
      boost::system::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      co_return json{{"released", true}};
    };
  }
  void release() {
    for (auto* timer : parked) timer->cancel();
    parked.clear();
  }
};

// A credential reader that plays the given uids, one per accepted
// connection in order; the server accepts in the order clients connect.
class FakePeers {
 public:
  void push(uid_t uid) {
    std::lock_guard lock(mutex_);
    uids_.push_back(uid);
  }
  std::expected<PeerCredentials, std::string> next() {
    std::lock_guard lock(mutex_);
    if (uids_.empty()) return std::unexpected("the test queued no peer for this connection");
    const uid_t uid = uids_.front();
    uids_.pop_front();
    return PeerCredentials{4242, uid, uid};
  }

 private:
  std::mutex mutex_;
  std::deque<uid_t> uids_;
};

AdminServerOptions playing(const std::shared_ptr<FakePeers>& peers,
                           AdminServerOptions options = {}) {
  options.peer_credentials = [peers](int) { return peers->next(); };
  return options;
}

// Every peer is root: for tests of other rules, whoever runs them.
AdminServerOptions as_root(AdminServerOptions options = {}) {
  options.peer_credentials = [](int) -> std::expected<PeerCredentials, std::string> {
    return PeerCredentials{4242, 0, 0};
  };
  return options;
}

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/mixlb-admin-XXXXXX";
    const char* made = ::mkdtemp(pattern);
    REQUIRE(made != nullptr);
    path_ = made;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string operator/(std::string_view name) const { return path_ + "/" + std::string(name); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// An AdminServer with its io_context running on a thread.
class RunningServer {
 public:
  explicit RunningServer(const std::string& path, AdminServerOptions options = {},
                         AdminHandler handler = test_handler)
      : server_(io_, path, std::move(handler), std::move(options)) {
    server_.start();
    thread_ = std::thread([this] {
      io_.run();
      drained_.set_value();
    });
  }
  RunningServer(const RunningServer&) = delete;
  RunningServer& operator=(const RunningServer&) = delete;
  ~RunningServer() {
    if (thread_.joinable()) shutdown();
  }

  // Runs `f` on the io_context's thread and waits for it.
  template <typename F>
  auto on_io(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    boost::asio::post(io_, [&task] { task(); });
    return result.get();
  }

  std::size_t connections() {
    return on_io([this] { return server_.connections(); });
  }

  // Polls until the server holds `count` connections; false after `timeout`.
  bool wait_for_connections(std::size_t count, std::chrono::milliseconds timeout = 2s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (connections() != count) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(10ms);
    }
    return true;
  }

  void stop() {
    on_io([this] { server_.stop(); });
  }

  // Stops the server on its own thread and waits for the io_context to run
  // out of work, which it does only if stop() left nothing pending.
  bool shutdown() {
    boost::asio::post(io_, [this] { server_.stop(); });
    const bool drained = drained_.get_future().wait_for(5s) == std::future_status::ready;
    if (!drained) io_.stop();
    thread_.join();
    return drained;
  }

 private:
  boost::asio::io_context io_;
  AdminServer server_;
  std::promise<void> drained_;
  std::thread thread_;
};

// A raw client: what a script with socat would do.
class Client {
 public:
  explicit Client(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }

  void send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      REQUIRE(n > 0);
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  // The next line, or nullopt when the server closed the connection (EOF or
  // reset) or `timeout` passed; closed() says which.
  std::optional<std::string> line(std::chrono::milliseconds timeout = 3s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (const auto nl = pending_.find('\n'); nl != std::string::npos) {
        std::string out = pending_.substr(0, nl);
        pending_.erase(0, nl + 1);
        return out;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd pfd{fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&pfd, 1, static_cast<int>(left.count())) == 0) {
        closed_ = false;
        return std::nullopt;
      }
      char buffer[4096];
      const ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
      if (n <= 0) {
        closed_ = true;
        return std::nullopt;
      }
      pending_.append(buffer, static_cast<std::size_t>(n));
    }
  }
  bool closed() const { return closed_; }

  json reply(std::chrono::milliseconds timeout = 3s) {
    const auto text = line(timeout);
    REQUIRE(text.has_value());
    return json::parse(*text);
  }

 private:
  int fd_ = -1;
  std::string pending_;
  bool closed_ = false;
};

// A socket file with nobody behind it, as a crashed daemon leaves.
void make_stale_socket(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  ::close(fd);
}

std::string error_of(const std::expected<AdminRequest, std::string>& parsed) {
  REQUIRE_FALSE(parsed.has_value());
  return parsed.error();
}

TEST_SUITE("admin") {
  // ---------------------------------------------------------------------------
  // Protocol.

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

  TEST_CASE("handle_admin_line turns every failure into an error reply") {
    auto reply_of = [](std::string_view line) {
      const auto outcome = handle_admin_line(line, test_handler);
      REQUIRE(outcome.reply.back() == '\n');
      REQUIRE(std::count(outcome.reply.begin(), outcome.reply.end(), '\n') == 1);
      return std::pair{json::parse(outcome.reply), outcome.internal_error};
    };

    auto [status, status_log] = reply_of(R"({"cmd":"status"})");
    CHECK(status == json{{"ok", true}, {"result", kStatus}});
    CHECK(status_log.empty());

    auto [unknown, unknown_log] = reply_of(R"({"cmd":"frobnicate"})");
    CHECK(unknown == json{{"ok", false}, {"error", R"(unknown command "frobnicate")"}});
    CHECK(unknown_log.empty());

    auto [refused, refused_log] = reply_of(R"({"cmd":"refuse","args":{"why":"two\nlines"}})");
    CHECK(refused["error"] == "refused: two\nlines");
    CHECK(refused_log.empty());

    auto [crashed, crashed_log] = reply_of(R"({"cmd":"crash"})");
    CHECK(crashed == json{{"ok", false}, {"error", "internal error: kaput"}});
    CHECK(crashed_log == R"(command "crash" failed: kaput)");

    auto [weird, weird_log] = reply_of(R"({"cmd":"weird"})");
    CHECK(weird["error"] == "internal error: unknown exception");
    CHECK_FALSE(weird_log.empty());

    auto [malformed, malformed_log] = reply_of("{oops");
    CHECK(malformed["ok"] == false);
    CHECK(malformed["error"].get<std::string>().starts_with("malformed request"));
    CHECK(malformed_log.empty());
  }

  TEST_CASE("handle_admin_line waits for a handler that awaits a timer, and for what it throws") {
    const auto start = std::chrono::steady_clock::now();
    const auto slow = handle_admin_line(R"({"cmd":"slow","args":{"ms":100}})", test_handler);
    CHECK(std::chrono::steady_clock::now() - start >= 100ms);
    CHECK(json::parse(slow.reply) == json{{"ok", true}, {"result", {{"slept_ms", 100}}}});

    const auto refused = handle_admin_line(R"({"cmd":"slow_refuse"})", test_handler);
    CHECK(json::parse(refused.reply)["error"] == "refused after waiting");
    CHECK(refused.internal_error.empty());

    const auto crashed = handle_admin_line(R"({"cmd":"slow_crash"})", test_handler);
    CHECK(json::parse(crashed.reply)["error"] == "internal error: kaput after waiting");
    CHECK(crashed.internal_error == R"(command "slow_crash" failed: kaput after waiting)");

    // A handler that throws before it returns its coroutine at all.
    const AdminHandler eager = [](std::string, json) -> asio::awaitable<json> {
      throw std::logic_error("no coroutine");
    };
    CHECK(json::parse(handle_admin_line(R"({"cmd":"x"})", eager).reply)["error"] ==
          "internal error: no coroutine");
    CHECK(json::parse(handle_admin_line(R"({"cmd":"x"})", AdminHandler()).reply)["error"] ==
          "internal error: bad_function_call");
  }

  TEST_CASE("a result with invalid UTF-8 still makes a reply") {
    const AdminHandler handler = [](std::string, json) -> asio::awaitable<json> {
      co_return json{{"name", std::string("bad\xff")}};
    };
    const auto outcome = handle_admin_line(R"({"cmd":"x"})", handler);
    const json reply = json::parse(outcome.reply);
    CHECK(reply["ok"] == true);
    CHECK(reply["result"]["name"] == "bad\xEF\xBF\xBD");  // U+FFFD
  }

  TEST_CASE("render_status lays out the canned status") {
    const std::string expected =
        "mixlb node mix1 (id 305419896)\n"
        "  interface  veth1 (ifindex 4), xdp native\n"
        "  address    10.0.0.11, mac 02:00:00:00:00:11\n"
        "  maglev     65537 slots per VIP\n"
        "\n"
        "nodes\n"
        "  NAME         ID  ADDRESS    WEIGHT  MAC                NEIGHBOUR\n"
        "  mix1  305419896  10.0.0.11       1  02:00:00:00:00:11  self\n"
        "  mix2       1234  fd00::12       12  02:00:00:00:00:12  reachable\n"
        "  mix3         99  10.0.0.13       0  -                  none\n"
        "\n"
        "vips\n"
        "  VIP                  BACKENDS             LOCAL PKTS  LOCAL BYTES  FWD PKTS  FWD BYTES  "
        "PEER PKTS  PEER BYTES  DROPPED\n"
        "  10.100.0.1:80/tcp    mix1,mix2:12,mix3:0           1           74         2        148  "
        "        3         222        0\n"
        "  [fd00:100::1]:*/udp  mix2:12                       0            0        40      52000  "
        "        0           0        0\n"
        "\n"
        "conntrack\n"
        "  hit 10  miss 3  insert 3  insert_fail 0\n";
    CHECK(render_status(kStatus) == expected);
  }

  TEST_CASE("render_status names the metrics endpoint, or says it is off") {
    json status = kStatus;
    status["metrics"] = "127.0.0.1:9650";
    CHECK(render_status(status).find("  maglev     65537 slots per VIP\n"
                                     "  metrics    http://127.0.0.1:9650/metrics\n") != std::string::npos);
    status["metrics"] = "[::1]:9650";
    CHECK(render_status(status).find("  metrics    http://[::1]:9650/metrics\n") != std::string::npos);
    status["metrics"] = "off";
    CHECK(render_status(status).find("  metrics    off\n") != std::string::npos);
    // A daemon from before the endpoint says nothing about it.
    CHECK(render_status(kStatus).find("metrics") == std::string::npos);
  }

  TEST_CASE("render_status shows the app check: healthy, unhealthy, or not checked") {
    json status = kStatus;
    status["health"] = {{"kind", "http"}, {"target", "10.100.0.1:80"}, {"healthy", false}, {"last", "HTTP 503"}};
    CHECK(render_status(status).find("  app        http 10.100.0.1:80: UNHEALTHY (last probe: HTTP 503)\n") !=
          std::string::npos);
    status["health"]["healthy"] = true;
    status["health"]["last"] = "ok";
    CHECK(render_status(status).find("  app        http 10.100.0.1:80: healthy (last probe: ok)\n") !=
          std::string::npos);
    status["health"] = {{"kind", "none"}};
    CHECK(render_status(status).find("  app        not checked\n") != std::string::npos);
  }

  TEST_CASE("render_status shows the life cycle: a lost uplink, a leave, an adopted data path, departed nodes") {
    json status = kStatus;
    CHECK(render_status(status).find("UPLINK") == std::string::npos);
    status["uplink"] = "missing";
    CHECK(render_status(status).find(", xdp native, UPLINK MISSING: nothing is balanced here\n") !=
          std::string::npos);
    status["uplink"] = "detached";
    CHECK(render_status(status).find(", PROGRAM DETACHED: attaching it again\n") != std::string::npos);
    status["phase"] = "leaving";
    status["leave"] = "2 connection(s) on VIPs, last VIP packet 0.1 s ago";
    CHECK(render_status(status).find("  LEAVING    2 connection(s) on VIPs, last VIP packet 0.1 s ago\n") !=
          std::string::npos);
    status["instance"] = {{"pid", 42}, {"on_stop", "restart"}, {"adopted_maps", true}, {"adopted_link", false}};
    CHECK(render_status(status).find("  instance   pid 42, on SIGTERM: restart (adopted the data path of an "
                                     "earlier mixlb: maps yes, link no)\n") != std::string::npos);
    status["instance"]["adopted_maps"] = false;
    CHECK(render_status(status).find("  instance   pid 42, on SIGTERM: restart\n") != std::string::npos);
    status["nodes"][1]["departed"] = true;
    CHECK(render_status(status).find("mix2 (departed)") != std::string::npos);
  }

  TEST_CASE("render_status shows gossip: address, cluster, encryption, members, drain, sync errors") {
    json status = kStatus;
    status["gossip"] = {{"enabled", true},         {"address", "10.0.0.11:7946"},
                        {"cluster", "prod"},       {"encrypted", true},
                        {"joined", true},          {"members_alive", 3},
                        {"drained", false},        {"last_sync_error", ""}};
    CHECK(render_status(status).find("  gossip     10.0.0.11:7946, cluster 'prod', encrypted, 3 member(s) "
                                     "alive\n\nnodes\n") != std::string::npos);
    status["gossip"]["encrypted"] = false;
    status["gossip"]["drained"] = true;
    status["gossip"]["joined"] = false;
    status["gossip"]["last_sync_error"] = "allocating a VIP id: No space left on device";
    const std::string text = render_status(status);
    CHECK(text.find("cluster 'prod', NOT ENCRYPTED, 3 member(s) alive, joining, DRAINED\n") != std::string::npos);
    CHECK(text.find("  tables     NOT UPDATED: allocating a VIP id: No space left on device\n") !=
          std::string::npos);
    status["gossip"] = {{"enabled", false}};
    CHECK(render_status(status).find("  gossip     off: the peer list is the member set\n") != std::string::npos);
  }

  TEST_CASE("render_members lays out members, the reason one is left out, and the counters") {
    const json members = {
        {"node", "mix1"},
        {"cluster", "prod"},
        {"gossip_address", "10.0.0.11:7946"},
        {"members",
         {{{"name", "mix1"}, {"self", true}, {"state", "alive"}, {"incarnation", 3},
           {"gossip_address", "10.0.0.11:7946"}, {"address", "10.0.0.11"}, {"weight", 1},
           {"app_healthy", true}, {"in_tables", true}, {"vips", {"10.100.0.1:80/tcp", "10.100.0.1:53/udp"}}},
          {{"name", "mix2"}, {"self", false}, {"state", "suspect"}, {"incarnation", 12},
           {"gossip_address", "10.0.0.12:7946"}, {"address", "10.0.0.12"}, {"weight", 0},
           {"app_healthy", false}, {"in_tables", true}, {"vips", json::array()}},
          {{"name", "mix3"}, {"self", false}, {"state", "alive"}, {"incarnation", 1},
           {"gossip_address", "10.0.0.13:7946"}, {"in_tables", false},
           {"problem", "metadata: version: 2 is not the version this node reads (1) at offset 1"}}}},
        {"gossip",
         {{"probes", 50}, {"probes_failed", 2}, {"suspicions_raised", 1}, {"deaths_declared", 0},
          {"refutations", 0}, {"health_score", 0}, {"bytes_sent", 1000}, {"bytes_received", 900},
          {"drops", 1}, {"last_drop", "10.0.0.9:7946: no installed key authenticates the packet"}}}};
    const std::string expected =
        "mixlb cluster 'prod' seen from mix1 (gossip 10.0.0.11:7946)\n"
        "  NAME         STATE    INC  GOSSIP          ADDRESS    WEIGHT  APP      TABLES  VIPS\n"
        "  mix1 (self)  alive      3  10.0.0.11:7946  10.0.0.11       1  ok       yes     "
        "10.100.0.1:80/tcp,10.100.0.1:53/udp\n"
        "  mix2         suspect   12  10.0.0.12:7946  10.0.0.12       0  FAILING  yes     -\n"
        "  mix3         alive      1  10.0.0.13:7946  -               -  -        no      -\n"
        "  mix3: metadata: version: 2 is not the version this node reads (1) at offset 1\n"
        "\n"
        "gossip  probes 50 (failed 2), suspicions raised 1, deaths declared 0, refutations 0, local "
        "health 0\n"
        "        sent 1000 B, received 900 B, dropped 1 message(s) (last: 10.0.0.9:7946: no installed "
        "key authenticates the packet)\n";
    CHECK(render_members(members) == expected);
    json stuck = members;
    stuck["gossip"] = {{"error", "the gossip thread did not answer: timed out"}};
    CHECK(render_members(stuck).ends_with("\ngossip  the gossip thread did not answer: timed out\n"));
    CHECK(render_members(json::array()).starts_with("unexpected members result: []"));

    // A member that died keeps its flows for a while; one restarting its
    // sidecar gets no new flows.
    json life = members;
    life["members"][1]["state"] = "dead";
    life["members"][1]["in_tables"] = false;
    life["members"][1]["departed"] = true;
    life["members"][1]["flows_kept_s"] = 41.6;
    life["members"][0]["restarting"] = true;
    const std::string text = render_members(life);
    INFO(text);
    CHECK(text.find("  mix2         dead    12  10.0.0.12:7946  10.0.0.12       0  FAILING         "
                    "flows only, 42 s left  -\n") != std::string::npos);
    CHECK(text.find("  mix1 (self)  alive    3  10.0.0.11:7946  10.0.0.11       1  ok, restarting  yes ") !=
          std::string::npos);
  }

  TEST_CASE("render_leave says what the leave will do") {
    CHECK(render_leave({{"node", "mix3"}, {"leaving", true}, {"timeout_ms", 30000}}) ==
          "mix3 is leaving: no new flows from now on; established connections are served until "
          "they end (at most 30000 ms), then mixlb removes the data path and exits\n");
    CHECK(render_leave({{"node", "mix3"}, {"leaving", true}, {"state", "1 connection(s) on VIPs"}}) ==
          "mix3 is already leaving: 1 connection(s) on VIPs\n");
  }

  TEST_CASE("render_drain says what a drain and an undrain did") {
    CHECK(render_drain({{"node", "mix2"}, {"drained", true}, {"weight", 0}}) ==
          "mix2 drained: weight 0 is published, new flows go to other nodes; established "
          "connections stay\n");
    CHECK(render_drain({{"node", "mix2"}, {"drained", false}, {"weight", 3}}) ==
          "mix2 serving again with weight 3\n");
  }

  TEST_CASE("render_status lists each non-zero drop reason under its VIP") {
    json status = kStatus;
    auto& drops = status["vips"][0]["counters"]["drops"];
    drops["fib_no_neigh"] = 5;
    drops["redirect"] = 2;
    json second = status["vips"][0];
    second["vip"] = "[fd00::1]:443/tcp";
    second["counters"]["drops"] = json{{"no_backend", 0}};
    status["vips"].push_back(second);

    const std::string text = render_status(status);
    const auto first_row = text.find("  10.100.0.1:80/tcp");
    const auto fib = text.find("    dropped fib_no_neigh: 5\n");
    const auto redirect = text.find("    dropped redirect: 2\n");
    const auto second_row = text.find("  [fd00::1]:443/tcp");
    REQUIRE(first_row != std::string::npos);
    REQUIRE(fib != std::string::npos);
    REQUIRE(redirect != std::string::npos);
    REQUIRE(second_row != std::string::npos);
    CHECK(first_row < fib);
    CHECK(fib < second_row);
    CHECK(redirect < second_row);
    CHECK(text.find("dropped no_backend") == std::string::npos);
    // The total is the sum of the reasons, right-aligned under DROPPED.
    const auto row_end = text.find('\n', first_row);
    CHECK(text.substr(row_end - 2, 2) == " 7");
  }

  TEST_CASE("render_status shows bare backend names when the daemon sends no weights") {
    json status = kStatus;
    status["vips"][0].erase("weights");
    status["vips"][0]["backends"] = json{"mix1", "mix2", "mix3"};
    CHECK(render_status(status).find("  10.100.0.1:80/tcp    mix1,mix2,mix3 ") !=
          std::string::npos);
  }

  TEST_CASE("render_stats lays out the global counters and the (VIP, node) table") {
    const std::string expected =
        "mixlb node mix1 (id 305419896)\n"
        "\n"
        "counters\n"
        "  events  ct_hit 10  ct_insert 3  ct_insert_fail 0  ct_miss 3  ct_non_syn_miss 1  "
        "from_peer 3  icmp_error 0\n"
        "  drops   fib_no_neigh 2  redirect 1\n"
        "  fib     no_neigh 2  success 42\n"
        "\n"
        "per VIP and node\n"
        "  VIP                  NODE  WEIGHT  ROLE       PKTS  BYTES\n"
        "  10.100.0.1:80/tcp    mix1       1  local         1     74\n"
        "  10.100.0.1:80/tcp    mix2      12  forwarded     2    148\n"
        "  10.100.0.1:80/tcp    mix3       0  forwarded     0      0\n"
        "  [fd00:100::1]:*/udp  mix2      12  forwarded    40  52000\n";
    CHECK(render_stats(kStatus) == expected);
  }

  TEST_CASE("render_stats copes with nothing counted and missing fields") {
    json quiet = kStatus;
    quiet["counters"]["drops"] = json{{"no_backend", 0}, {"redirect", 0}};
    quiet["counters"]["fib"] = json::object();
    quiet["vips"][1].erase("per_node");  // not published yet
    const std::string text = render_stats(quiet);
    CHECK(text.find("  drops   none\n") != std::string::npos);
    CHECK(text.find("  fib     none\n") != std::string::npos);
    CHECK(text.find("  [fd00:100::1]:*/udp  -          -  -             -      -\n") !=
          std::string::npos);

    const std::string bare = render_stats(json{{"node", "mix9"}});
    CHECK(bare.starts_with("mixlb node mix9 (id -)\n"));
    CHECK(bare.find("  events  -\n") != std::string::npos);
    CHECK(bare.find("per VIP and node\n  none\n") != std::string::npos);
    CHECK(render_stats(json(5)).starts_with("unexpected stats result"));
  }

  TEST_CASE("make_which_args turns decimal ports into numbers and leaves the rest") {
    CHECK(make_which_args("tcp", "192.0.2.1", "40000", "10.100.0.1", "80") ==
          json{{"proto", "tcp"},
               {"src", "192.0.2.1"},
               {"sport", 40000},
               {"vip", "10.100.0.1"},
               {"vport", 80}});
    const json odd = make_which_args("udp", "fd00::9", "http", "fd00::1", "53x");
    CHECK(odd["sport"] == "http");
    CHECK(odd["vport"] == "53x");
    CHECK(make_which_args("tcp", "a", "", "b", "99999999999999999999")["sport"] == "");
    CHECK(make_which_args("tcp", "a", "1", "b", "99999999999999999999")["vport"] ==
          "99999999999999999999");
    CHECK(make_which_args("tcp", "a", "-5", "b", "0")["sport"] == -5);
  }

  TEST_CASE("render_which says where a flow goes in one line") {
    const json base = json::parse(R"({
      "flow":{"proto":"tcp","src":"192.0.2.1","sport":40000,"dst":"10.100.0.1","dport":80},
      "vip":"10.100.0.1:80/tcp","node":"mix2","node_id":1234,"self":false,"verdict":"tx",
      "from_conntrack":false})");
    CHECK(render_which(base) ==
          "10.100.0.1:80/tcp from 192.0.2.1:40000 -> mix2 (forwarded, Maglev)\n");

    json local = base;
    local["node"] = "mix1";
    local["self"] = true;
    local["verdict"] = "pass";
    local["from_conntrack"] = true;
    CHECK(render_which(local) ==
          "10.100.0.1:80/tcp from 192.0.2.1:40000 -> mix1 (this node, connection table)\n");

    json redirected = base;
    redirected["verdict"] = "redirect";
    CHECK(render_which(redirected) ==
          "10.100.0.1:80/tcp from 192.0.2.1:40000 -> mix2 (forwarded through another interface, "
          "Maglev)\n");

    json dropped = base;
    dropped["verdict"] = "drop";
    dropped["drop_reason"] = "fib_no_neigh";
    CHECK(render_which(dropped) ==
          "10.100.0.1:80/tcp from 192.0.2.1:40000 -> dropped: fib_no_neigh (chosen: mix2, "
          "Maglev)\n");
    dropped["node"] = nullptr;
    dropped["node_id"] = 0;
    dropped["drop_reason"] = "no_backend";
    CHECK(render_which(dropped) ==
          "10.100.0.1:80/tcp from 192.0.2.1:40000 -> dropped: no_backend\n");

    json stale = base;  // a connection entry naming a node that left
    stale["node"] = nullptr;
    stale["node_id"] = 77;
    stale["from_conntrack"] = true;
    CHECK(render_which(stale) ==
          "10.100.0.1:80/tcp from 192.0.2.1:40000 -> node id 77 (forwarded, connection table)\n");

    json v6 = base;
    v6["flow"] = {{"proto", "udp"},
                  {"src", "2001:db8::1"},
                  {"sport", 5353},
                  {"dst", "fd00:100::1"},
                  {"dport", 53}};
    v6["vip"] = "[fd00:100::1]:*/udp";
    CHECK(render_which(v6) ==
          "[fd00:100::1]:53/udp from [2001:db8::1]:5353 -> mix2 (forwarded, Maglev; VIP "
          "[fd00:100::1]:*/udp)\n");

    json not_vip = base;
    not_vip["vip"] = nullptr;
    not_vip["node"] = nullptr;
    not_vip["verdict"] = "pass";
    CHECK(render_which(not_vip) ==
          "10.100.0.1:80/tcp from 192.0.2.1:40000: not a VIP (passed to the local stack "
          "untouched)\n");
    CHECK(render_which(json::array()).starts_with("unexpected which result"));
  }

  TEST_CASE("render_status copes with missing fields") {
    const std::string text = render_status(json{{"node", "mix9"}});
    CHECK(text.starts_with("mixlb node mix9 (id -)\n"));
    CHECK(text.find("nodes\n  none\n") != std::string::npos);
    CHECK(text.find("vips\n  none\n") != std::string::npos);
    CHECK(text.find("conntrack\n  -\n") != std::string::npos);
    CHECK(render_status(json::array()).starts_with("unexpected status result"));
  }

  // ---------------------------------------------------------------------------
  // Server and client.

  TEST_CASE("status round trip through admin_request") {
    TempDir dir;
    RunningServer server(dir / "mix1.sock");
    const auto result = admin_request(dir / "mix1.sock", "status", json::object(), 2s);
    REQUIRE(result.has_value());
    CHECK(*result == kStatus);

    const auto unknown = admin_request(dir / "mix1.sock", "frobnicate", json::object(), 2s);
    REQUIRE_FALSE(unknown.has_value());
    CHECK(unknown.error() == R"(unknown command "frobnicate")");

    const auto call = admin_call(dir / "mix1.sock", "echo", json{{"k", 1}}, 2s);
    REQUIRE(call.has_value());
    CHECK(call->ok);
    CHECK(call->result == json{{"k", 1}});
    CHECK(server.shutdown());
  }

  TEST_CASE("a malformed line gets an error and the same connection carries on") {
    TempDir dir;
    RunningServer server(dir / "a.sock");
    Client client(dir / "a.sock");
    client.send("{not json\n");
    const json bad = client.reply();
    CHECK(bad["ok"] == false);
    CHECK(bad["error"].get<std::string>().starts_with("malformed request: parse error"));
    client.send("[]\n");
    CHECK(client.reply()["error"].get<std::string>().find("expected a JSON object") !=
          std::string::npos);
    client.send("\n");
    CHECK(client.reply()["error"].get<std::string>().starts_with("empty request line"));
    client.send("{\"cmd\":\"status\"}\r\n");
    CHECK(client.reply() == json{{"ok", true}, {"result", kStatus}});
  }

  TEST_CASE("pipelined requests are answered in order; a last unterminated one too") {
    TempDir dir;
    RunningServer server(dir / "a.sock");
    Client client(dir / "a.sock");
    client.send(R"({"cmd":"echo","args":{"n":1}})"
                "\n"
                R"({"cmd":"echo","args":{"n":2}})"
                "\n"
                R"({"cmd":"echo","args":{"n":3}})");
    client.shutdown_write();
    CHECK(client.reply()["result"]["n"] == 1);
    CHECK(client.reply()["result"]["n"] == 2);
    CHECK(client.reply()["result"]["n"] == 3);
    CHECK_FALSE(client.line().has_value());
    CHECK(client.closed());
  }

  TEST_CASE("a line of exactly 64 KiB is served; a longer one is refused and closed") {
    TempDir dir;
    RunningServer server(dir / "a.sock");
    {
      Client client(dir / "a.sock");
      std::string request = R"({"cmd":"status"})";
      request.append(kAdminMaxLine - request.size(), ' ');
      REQUIRE(request.size() == kAdminMaxLine);
      client.send(request + "\n");
      CHECK(client.reply()["ok"] == true);
    }
    {
      Client client(dir / "a.sock");
      client.send(std::string(kAdminMaxLine + 100, 'x'));
      const json reply = client.reply();
      CHECK(reply["ok"] == false);
      CHECK(reply["error"] == "request line longer than 65536 bytes; closing the connection");
      CHECK_FALSE(client.line().has_value());
      CHECK(client.closed());
    }
    // The daemon is unharmed.
    CHECK(admin_request(dir / "a.sock", "status", json::object(), 2s).has_value());
  }

  TEST_CASE("a client still sending a huge line gets the error reply, not a reset") {
    TempDir dir;
    RunningServer server(dir / "a.sock");
    Client client(dir / "a.sock");
    // Far more than the limit and than the socket buffers: a server that
    // closed without reading the rest would reset the connection and the
    // reply would be lost, or this send would fail.
    client.send(std::string(8 * kAdminMaxLine, 'x'));
    client.shutdown_write();
    const json reply = client.reply();
    CHECK(reply["ok"] == false);
    CHECK(reply["error"] == "request line longer than 65536 bytes; closing the connection");
    CHECK_FALSE(client.line().has_value());
    CHECK(client.closed());
  }

  TEST_CASE("handler exceptions become error replies and the server keeps serving") {
    TempDir dir;
    RunningServer server(dir / "a.sock");
    Client client(dir / "a.sock");
    client.send(R"({"cmd":"refuse","args":{"why":"VIP unknown"}})"
                "\n");
    CHECK(client.reply() == json{{"ok", false}, {"error", "refused: VIP unknown"}});
    client.send(R"({"cmd":"crash"})"
                "\n");
    CHECK(client.reply() == json{{"ok", false}, {"error", "internal error: kaput"}});
    client.send(R"({"cmd":"weird"})"
                "\n");
    CHECK(client.reply()["error"] == "internal error: unknown exception");
    client.send(R"({"cmd":"status"})"
                "\n");
    CHECK(client.reply()["ok"] == true);
  }

  TEST_CASE("the socket is 0600 in a 0700 directory made for it, and stop removes it") {
    TempDir dir;
    const std::string path = dir / "run/mixlb/mix1.sock";
    {
      RunningServer server(path);
      struct stat st {};
      REQUIRE(::lstat(path.c_str(), &st) == 0);
      CHECK(S_ISSOCK(st.st_mode));
      CHECK((st.st_mode & 07777) == 0600);
      for (const auto& made : {dir / "run", dir / "run/mixlb"}) {
        REQUIRE(::stat(made.c_str(), &st) == 0);
        INFO(made);
        CHECK((st.st_mode & 07777) == 0700);
      }
      CHECK(server.shutdown());
      CHECK(::lstat(path.c_str(), &st) != 0);
    }
  }

  TEST_CASE("a stale socket file is replaced") {
    TempDir dir;
    const std::string path = dir / "mix1.sock";
    make_stale_socket(path);
    const auto refused = admin_request(path, "status", json::object(), 1s);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error() ==
          "cannot connect to " + path + ": Connection refused — is mixlb running?");

    RunningServer server(path);
    CHECK(admin_request(path, "status", json::object(), 2s).has_value());
  }

  TEST_CASE("a second server on a live path refuses to start and leaves the first alone") {
    TempDir dir;
    const std::string path = dir / "mix1.sock";
    RunningServer first(path);
    boost::asio::io_context io;
    AdminServer second(io, path, test_handler);
    CHECK_THROWS_WITH_AS(second.start(), ("another mixlb is already serving " + path).c_str(),
                         std::runtime_error);
    second.stop();  // must not remove the first one's file
    const auto reply = admin_request(path, "status", json::object(), 2s);
    CHECK(reply.has_value());
  }

  TEST_CASE("a path that is not a socket is never replaced") {
    TempDir dir;
    const std::string path = dir / "mix1.sock";
    std::ofstream(path) << "keep me";
    boost::asio::io_context io;
    AdminServer server(io, path, test_handler);
    CHECK_THROWS_WITH_AS(server.start(),
                         (path + " exists and is not a socket; refusing to replace it").c_str(),
                         std::runtime_error);
    std::ifstream in(path);
    std::string content;
    std::getline(in, content);
    CHECK(content == "keep me");
  }

  TEST_CASE("stop leaves a socket file that is no longer its own") {
    TempDir dir;
    const std::string path = dir / "mix1.sock";
    boost::asio::io_context io;
    AdminServer server(io, path, test_handler);
    server.start();
    REQUIRE(::unlink(path.c_str()) == 0);
    make_stale_socket(path);  // someone else's file now
    server.stop();
    struct stat st {};
    CHECK(::lstat(path.c_str(), &st) == 0);
  }

  TEST_CASE("a stopped server starts again on the same path") {
    TempDir dir;
    const std::string path = dir / "a.sock";
    boost::asio::io_context io;
    AdminServer server(io, path, test_handler);
    auto work = boost::asio::make_work_guard(io);
    std::thread runner([&] { io.run(); });
    // Runs `f` on the io_context's thread, as the daemon would, and waits.
    auto on_io = [&](const std::function<void()>& f) {
      std::promise<void> done;
      boost::asio::post(io, [&] {
        try {
          f();
          done.set_value();
        } catch (...) {
          done.set_exception(std::current_exception());
        }
      });
      done.get_future().get();
    };
    on_io([&] { server.start(); });
    CHECK(admin_request(path, "status", json::object(), 2s).has_value());
    on_io([&] {
      server.stop();
      server.start();
    });
    CHECK(admin_request(path, "status", json::object(), 2s).has_value());
    on_io([&] { server.stop(); });
    struct stat st {};
    CHECK(::lstat(path.c_str(), &st) != 0);
    CHECK(admin_request(path, "status", json::object(), 1s).error().find("No such file") !=
          std::string::npos);
    work.reset();
    runner.join();  // returns only once every accept loop has ended
  }

  TEST_CASE("an idle connection is closed; an active one is not") {
    TempDir dir;
    AdminServerOptions options;
    options.idle_timeout = 300ms;
    RunningServer server(dir / "a.sock", options);

    Client active(dir / "a.sock");
    Client idle(dir / "a.sock");
    // Once it has talked, a connection gets the idle timeout, not the
    // (here longer) first-request timeout.
    idle.send(R"({"cmd":"status"})"
              "\n");
    CHECK(idle.reply()["ok"] == true);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 6; ++i) {
      std::this_thread::sleep_for(100ms);
      active.send(R"({"cmd":"status"})"
                  "\n");
      CHECK(active.reply()["ok"] == true);
    }
    CHECK_FALSE(idle.line(2s).has_value());
    CHECK(idle.closed());
    CHECK(std::chrono::steady_clock::now() - start < 2s);
    active.send(R"({"cmd":"status"})"
                "\n");
    CHECK(active.reply()["ok"] == true);
  }

  TEST_CASE("silent connections cannot lock mixlbctl out") {
    TempDir dir;
    AdminServerOptions options;
    options.first_request_timeout = 300ms;
    RunningServer server(dir / "a.sock", as_root(options));

    // Every slot taken by a client that says nothing, or half a request.
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::unique_ptr<Client>> silent;
    for (std::size_t i = 0; i < options.max_connections; ++i) {
      silent.push_back(std::make_unique<Client>(dir / "a.sock"));
    }
    silent.back()->send(R"({"cmd":"sta)");
    REQUIRE(server.wait_for_connections(options.max_connections));
    CHECK(admin_request(dir / "a.sock", "status", json::object(), 2s).error() ==
          "too many admin connections (limit 64); try again later");

    // Within the first-request timeout they are all gone, and mixlbctl is
    // served again.
    for (const auto& client : silent) {
      CHECK_FALSE(client->line(2s).has_value());
      CHECK(client->closed());
    }
    CHECK(admin_request(dir / "a.sock", "status", json::object(), 2s).has_value());
    CHECK(std::chrono::steady_clock::now() - start < 1500ms);
    CHECK(server.wait_for_connections(0));
  }

  TEST_CASE("a connection that has talked outlives the first-request timeout") {
    TempDir dir;
    AdminServerOptions options;
    options.first_request_timeout = 200ms;
    options.idle_timeout = 5s;
    RunningServer server(dir / "a.sock", options);
    Client client(dir / "a.sock");
    client.send(R"({"cmd":"status"})"
                "\n");
    CHECK(client.reply()["ok"] == true);
    std::this_thread::sleep_for(600ms);
    client.send(R"({"cmd":"status"})"
                "\n");
    CHECK(client.reply()["ok"] == true);
  }

  TEST_CASE("the last slot is kept for root") {
    TempDir dir;
    const auto peers = std::make_shared<FakePeers>();
    AdminServerOptions options;
    options.max_connections = 3;
    options.allowed_uids = {0, 1000};
    RunningServer server(dir / "a.sock", playing(peers, options));

    const json too_many = {{"ok", false},
                           {"error", "too many admin connections (limit 3); try again later"}};
    std::vector<std::unique_ptr<Client>> held;
    for (int i = 0; i < 2; ++i) {
      peers->push(1000);
      held.push_back(std::make_unique<Client>(dir / "a.sock"));
      held.back()->send(R"({"cmd":"status"})"
                        "\n");
      REQUIRE(held.back()->reply()["ok"] == true);
    }
    peers->push(1000);
    Client third_user(dir / "a.sock");
    CHECK(third_user.reply() == too_many);
    CHECK_FALSE(third_user.line().has_value());
    CHECK(third_user.closed());

    peers->push(0);
    Client root(dir / "a.sock");
    root.send(R"({"cmd":"status"})"
              "\n");
    CHECK(root.reply()["ok"] == true);

    peers->push(0);
    Client second_root(dir / "a.sock");
    CHECK(second_root.reply() == too_many);
  }

  TEST_CASE("a peer whose uid is not allowed gets an error line and is closed") {
    TempDir dir;
    const uid_t self = ::geteuid();
    const uid_t stranger = self + 1;
    AdminServerOptions options;
    options.allowed_uids = {stranger};  // not this process: its own connection is the stranger
    RunningServer server(dir / "a.sock", options);
    Client client(dir / "a.sock");
    CHECK(client.reply() ==
          json{{"ok", false},
               {"error", fmt::format("uid {} may not use this admin socket (allowed: {})", self,
                                     stranger)}});
    CHECK_FALSE(client.line().has_value());
    CHECK(client.closed());
    CHECK(server.connections() == 0);
  }

  TEST_CASE("a peer whose credentials cannot be read is refused") {
    TempDir dir;
    const auto peers = std::make_shared<FakePeers>();  // none queued: every read fails
    RunningServer server(dir / "a.sock", playing(peers));
    Client client(dir / "a.sock");
    CHECK(client.reply() ==
          json{{"ok", false}, {"error", "the test queued no peer for this connection"}});
    CHECK_FALSE(client.line().has_value());
    CHECK(client.closed());
  }

  TEST_CASE("read_peer_credentials reads who is at the other end") {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    const auto peer = read_peer_credentials(fds[0]);
    ::close(fds[0]);
    ::close(fds[1]);
    REQUIRE(peer.has_value());
    CHECK(peer->pid == ::getpid());
    CHECK(peer->uid == ::geteuid());
    CHECK(peer->gid == ::getegid());

    const auto closed = read_peer_credentials(fds[0]);
    REQUIRE_FALSE(closed.has_value());
    CHECK(closed.error() ==
          "cannot read the peer's credentials (SO_PEERCRED): Bad file descriptor");
    CHECK(default_admin_uids().front() == 0);
    CHECK(default_admin_uids().back() == ::geteuid());
  }

  TEST_CASE("a request with an out-of-range number gets an error and the connection carries on") {
    TempDir dir;
    RunningServer server(dir / "a.sock");
    Client client(dir / "a.sock");
    client.send(R"({"cmd":"which","args":{"sport":1e999999}})"
                "\n");
    CHECK(
        client.reply() ==
        json{{"ok", false}, {"error", R"(malformed request: number overflow parsing "1e999999")"}});
    client.send(R"({"cmd":"status","cmd":"drain"})"
                "\n");
    CHECK(client.reply() ==
          json{{"ok", false}, {"error", R"(malformed request: duplicate key "cmd")"}});
    client.send(R"({"cmd":"status"})"
                "\n");
    CHECK(client.reply()["ok"] == true);
  }

  TEST_CASE("a handler that awaits a timer holds up no other client") {
    TempDir dir;
    RunningServer server(dir / "a.sock");
    Client waiting(dir / "a.sock");
    Client other(dir / "a.sock");
    waiting.send(R"({"cmd":"slow","args":{"ms":600}})"
                 "\n");
    other.send(R"({"cmd":"status"})"
               "\n");
    CHECK(other.reply()["ok"] == true);
    CHECK_FALSE(waiting.line(0ms).has_value());  // still waiting, connection open
    CHECK_FALSE(waiting.closed());
    CHECK(waiting.reply() == json{{"ok", true}, {"result", {{"slept_ms", 600}}}});
    CHECK(server.shutdown());
  }

  TEST_CASE("what a handler throws after awaiting becomes an error reply") {
    TempDir dir;
    RunningServer server(dir / "a.sock");
    Client client(dir / "a.sock");
    client.send(R"({"cmd":"slow_refuse"})"
                "\n"
                R"({"cmd":"slow_crash"})"
                "\n"
                R"({"cmd":"slow","args":{"ms":10}})"
                "\n");
    CHECK(client.reply() == json{{"ok", false}, {"error", "refused after waiting"}});
    CHECK(client.reply() == json{{"ok", false}, {"error", "internal error: kaput after waiting"}});
    CHECK(client.reply()["result"]["slept_ms"] == 10);
  }

  TEST_CASE("a handler that never finishes costs its client an error, not a slot") {
    TempDir dir;
    Parking parking;
    AdminServerOptions options;
    options.idle_timeout = 300ms;
    options.max_connections = 1;
    RunningServer server(dir / "a.sock", as_root(options), parking.handler());

    const auto start = std::chrono::steady_clock::now();
    Client client(dir / "a.sock");
    client.send(R"({"cmd":"hang"})"
                "\n");
    CHECK(
        client.reply() ==
        json{{"ok", false},
             {"error", R"(command "hang" did not finish within 300 ms; closing the connection)"}});
    CHECK(std::chrono::steady_clock::now() - start < 2s);
    CHECK_FALSE(client.line().has_value());
    CHECK(client.closed());
    // The only slot is free again while the handler is still parked.
    CHECK(server.wait_for_connections(0));
    CHECK(admin_request(dir / "a.sock", "status", json::object(), 2s).has_value());
    CHECK(server.on_io([&] { return parking.parked.size(); }) == 1);

    // Let it go: its late answer finds no session, and nothing is left.
    server.on_io([&] { parking.release(); });
    CHECK(server.shutdown());
  }

  TEST_CASE("stop while a handler is running ends the connection at once") {
    TempDir dir;
    auto started = std::make_shared<std::atomic<bool>>(false);
    const AdminHandler handler = [started](std::string, json) -> asio::awaitable<json> {
      *started = true;
      co_await pause_for(1s);
      co_return json{{"late", true}};
    };
    RunningServer server(dir / "a.sock", {}, handler);
    Client client(dir / "a.sock");
    client.send(R"({"cmd":"x"})"
                "\n");
    for (int i = 0; i < 200 && !*started; ++i) std::this_thread::sleep_for(10ms);
    REQUIRE(*started);
    // The session does not wait for the handler to notice it was closed.
    server.stop();
    CHECK(server.wait_for_connections(0, 500ms));
    CHECK_FALSE(client.line().has_value());
    CHECK(client.closed());
    CHECK(server.shutdown());  // once the handler's timer has fired
  }

  TEST_CASE("connections beyond the limit get an error line and are closed") {
    TempDir dir;
    AdminServerOptions options;
    options.max_connections = 3;
    RunningServer server(dir / "a.sock", as_root(options));

    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < 3; ++i) {
      clients.push_back(std::make_unique<Client>(dir / "a.sock"));
      clients.back()->send(R"({"cmd":"status"})"
                           "\n");
      REQUIRE(clients.back()->reply()["ok"] == true);  // accepted and counted
    }
    Client extra(dir / "a.sock");
    const json refusal = extra.reply();
    CHECK(refusal ==
          json{{"ok", false}, {"error", "too many admin connections (limit 3); try again later"}});
    CHECK_FALSE(extra.line().has_value());
    CHECK(extra.closed());

    // Once one leaves, a newcomer is served again.
    clients.pop_back();
    bool served = false;
    for (int attempt = 0; attempt < 100 && !served; ++attempt) {
      Client again(dir / "a.sock");
      again.send(R"({"cmd":"status"})"
                 "\n");
      const auto line = again.line();
      served = line && json::parse(*line)["ok"] == true;
      if (!served) std::this_thread::sleep_for(20ms);
    }
    CHECK(served);
    CHECK(server.shutdown());
  }

  TEST_CASE("stop closes open connections and leaves the io_context with no work") {
    TempDir dir;
    RunningServer server(dir / "a.sock");
    Client client(dir / "a.sock");
    client.send(R"({"cmd":"status"})"
                "\n");
    CHECK(client.reply()["ok"] == true);
    CHECK(server.shutdown());
    CHECK_FALSE(client.line().has_value());
    CHECK(client.closed());
  }

  TEST_CASE("client errors say what happened") {
    TempDir dir;
    const std::string missing = dir / "mix1.sock";
    const auto absent = admin_request(missing, "status", json::object(), 1s);
    REQUIRE_FALSE(absent.has_value());
    CHECK(absent.error() ==
          "cannot connect to " + missing + ": No such file or directory — is mixlb running?");

    const auto too_long = admin_request(std::string(200, 'x'), "status", json::object(), 1s);
    REQUIRE_FALSE(too_long.has_value());
    CHECK(too_long.error().ends_with("path is empty or too long"));

    // Something listens but never answers.
    const std::string mute = dir / "mute.sock";
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, mute.c_str(), sizeof(address.sun_path) - 1);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    REQUIRE(::listen(fd, 4) == 0);
    const auto start = std::chrono::steady_clock::now();
    const auto silent = admin_request(mute, "status", json::object(), 200ms);
    REQUIRE_FALSE(silent.has_value());
    CHECK(silent.error() == "no reply from " + mute + " within 200 ms — is mixlb stuck?");
    CHECK(std::chrono::steady_clock::now() - start < 2s);
    ::close(fd);
  }

  TEST_CASE("the default socket: by node, or the only one in the run directory") {
    CHECK(admin_socket_for_node("mix1") == "/run/mixlb/mix1.sock");
    CHECK(admin_socket_for_node("mix1", "/tmp/x") == "/tmp/x/mix1.sock");

    TempDir dir;
    const auto none_dir = find_admin_socket(dir / "nope");
    REQUIRE_FALSE(none_dir.has_value());
    CHECK_FALSE(none_dir.error().ambiguous);
    CHECK(none_dir.error().message.find("does not exist") != std::string::npos);

    std::ofstream(dir / "decoy.sock") << "not a socket";
    std::ofstream(dir / "notes.txt") << "";
    const auto empty = find_admin_socket(dir.path());
    REQUIRE_FALSE(empty.has_value());
    CHECK_FALSE(empty.error().ambiguous);
    CHECK(empty.error().message ==
          "no mixlb admin socket in " + dir.path() + " — is mixlb running?");

    make_stale_socket(dir / "mix2.sock");
    CHECK(find_admin_socket(dir.path()) == dir / "mix2.sock");

    make_stale_socket(dir / "mix1.sock");
    const auto two = find_admin_socket(dir.path());
    REQUIRE_FALSE(two.has_value());
    CHECK(two.error().ambiguous);
    CHECK(two.error().message ==
          "several mixlb instances in " + dir.path() +
              " (mix1.sock, mix2.sock); choose one with -n NODE or -s SOCKET");
  }

}  // TEST_SUITE

}  // namespace
}  // namespace mixlb
