// The admin socket end to end: the handler glue through handle_admin_line
// (no socket), then a real AdminServer on a temporary path with its
// io_context on a thread of its own, driven by raw socket clients and by the
// blocking client mixlbctl uses, for one-reply commands and for streams.
// Other users are played through the server's credential reader, so the
// rules about uids run as any user.
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

#include "admin/admin_client.h"
#include "admin/admin_protocol.h"
#include "admin/admin_server.h"
#include "admin/monitor.h"
#include "canned.h"
#include "common/quote.h"

namespace mixlb {
namespace {

namespace asio = boost::asio;
using canned::kStatus;
using nlohmann::json;
using namespace std::chrono_literals;

// Waits `ms` milliseconds on the handler's io_context, as a handler waiting
// for an answer posted back from another thread would.
asio::awaitable<void> pause_for(std::chrono::milliseconds ms) {
  asio::steady_timer timer(co_await asio::this_coro::executor, ms);
  co_await timer.async_wait(asio::use_awaitable);
}

asio::awaitable<AdminAnswer> test_handler(std::string cmd, json args) {
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
    return [this](std::string cmd, json args) -> asio::awaitable<AdminAnswer> {
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
  // Whether the server closes the connection with nothing more to say.
  bool hung_up(std::chrono::milliseconds timeout = 3s) { return !line(timeout) && closed_; }

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

// Polls `done` until it holds; false after `timeout`.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout = 2s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// test_handler, and "monitor": a stream of what `hub` publishes.
AdminHandler monitor_handler(std::shared_ptr<MonitorHub> hub) {
  return [hub](std::string cmd, json args) -> asio::awaitable<AdminAnswer> {
    if (cmd != "monitor") co_return co_await test_handler(std::move(cmd), std::move(args));
    co_return AdminAnswer(json{{"stream", "monitor"}}, hub->subscribe(0));
  };
}

TEST_SUITE("admin") {
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
    const AdminHandler eager = [](std::string, json) -> asio::awaitable<AdminAnswer> {
      throw std::logic_error("no coroutine");
    };
    CHECK(json::parse(handle_admin_line(R"({"cmd":"x"})", eager).reply)["error"] ==
          "internal error: no coroutine");
    CHECK(json::parse(handle_admin_line(R"({"cmd":"x"})", AdminHandler()).reply)["error"] ==
          "internal error: bad_function_call");
  }

  TEST_CASE("a result with invalid UTF-8 still makes a reply") {
    const AdminHandler handler = [](std::string, json) -> asio::awaitable<AdminAnswer> {
      co_return json{{"name", std::string("bad\xff")}};
    };
    const auto outcome = handle_admin_line(R"({"cmd":"x"})", handler);
    const json reply = json::parse(outcome.reply);
    CHECK(reply["ok"] == true);
    CHECK(reply["result"]["name"] == "bad\xEF\xBF\xBD");  // U+FFFD
  }

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
    CHECK(client.hung_up());
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
      CHECK(client.hung_up());
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
    CHECK(client.hung_up());
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
    CHECK(idle.hung_up(2s));
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
      CHECK(client->hung_up(2s));
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
    CHECK(third_user.hung_up());

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
    CHECK(client.hung_up());
    CHECK(server.connections() == 0);
  }

  TEST_CASE("a peer whose credentials cannot be read is refused") {
    TempDir dir;
    const auto peers = std::make_shared<FakePeers>();  // none queued: every read fails
    RunningServer server(dir / "a.sock", playing(peers));
    Client client(dir / "a.sock");
    CHECK(client.reply() ==
          json{{"ok", false}, {"error", "the test queued no peer for this connection"}});
    CHECK(client.hung_up());
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
    CHECK(client.hung_up());
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
    const AdminHandler handler = [started](std::string, json) -> asio::awaitable<AdminAnswer> {
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
    CHECK(client.hung_up());
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
    CHECK(extra.hung_up());

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
    CHECK(client.hung_up());
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

  TEST_CASE("a daemon that hangs up before reading the request is heard: its error line, not EPIPE") {
    TempDir dir;
    const std::string path = dir / "a.sock";
    const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listener >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    REQUIRE(::listen(listener, 4) == 0);

    // As the server refuses a connection: one error line, then close,
    // before the client has sent anything.
    auto refused = AdminClient::connect(path, 1s);
    REQUIRE(refused.has_value());
    int accepted = ::accept(listener, nullptr, nullptr);
    REQUIRE(accepted >= 0);
    const std::string refusal = encode_error_reply("too many admin connections (limit 1)");
    REQUIRE(::send(accepted, refusal.data(), refusal.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(refusal.size()));
    ::close(accepted);
    const auto reply = refused->call("status", json::object(), 1s);
    REQUIRE(reply.has_value());
    CHECK_FALSE(reply->ok);
    CHECK(reply->error == "too many admin connections (limit 1)");

    // Without a line, the send's own error.
    auto silent = AdminClient::connect(path, 1s);
    REQUIRE(silent.has_value());
    accepted = ::accept(listener, nullptr, nullptr);
    REQUIRE(accepted >= 0);
    ::close(accepted);
    const auto broken = silent->call("status", json::object(), 1s);
    REQUIRE_FALSE(broken.has_value());
    CHECK(broken.error() == "cannot send to " + path + ": Broken pipe");
    ::close(listener);
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

  // ---------------------------------------------------------------------------
  // Streams.

  TEST_CASE("handle_admin_line gives a stream's first reply and closes the stream") {
    const auto hub = std::make_shared<MonitorHub>();
    const auto outcome = handle_admin_line(R"({"cmd":"monitor"})", monitor_handler(hub));
    CHECK(json::parse(outcome.reply) == json{{"ok", true}, {"result", {{"stream", "monitor"}}}});
    CHECK(outcome.stream == nullptr);
    CHECK(hub->subscribers() == 0);
  }

  TEST_CASE("a stream sends its reply, then each event in order, until the client hangs up") {
    TempDir dir;
    const auto hub = std::make_shared<MonitorHub>();
    RunningServer server(dir / "a.sock", {}, monitor_handler(hub));
    {
      Client client(dir / "a.sock");
      client.send(R"({"cmd":"monitor"})"
                  "\n");
      CHECK(client.reply() == json{{"ok", true}, {"result", {{"stream", "monitor"}}}});
      REQUIRE(hub->subscribers() == 1);
      const MonitorEvent first{LogLine{"t0", "info", "first"}};
      hub->publish(first);
      CHECK(client.reply() == json(first));
      // A burst arrives whole and in order.
      for (int i = 0; i < 100; ++i) hub->publish(MonitorEvent{LogLine{"t", "info", std::to_string(i)}});
      for (int i = 0; i < 100; ++i) CHECK(client.reply()["message"] == std::to_string(i));
      // What the client sends on a stream is not a request: no reply to it.
      client.send(R"({"cmd":"status"})"
                  "\n");
      CHECK_FALSE(client.line(200ms).has_value());
      CHECK_FALSE(client.closed());
      hub->publish(MonitorEvent{LogLine{"t", "info", "after"}});
      CHECK(client.reply()["message"] == "after");
    }
    // The client hung up: its connection and its subscription are gone.
    CHECK(server.wait_for_connections(0));
    CHECK(eventually([&] { return hub->subscribers() == 0; }));
    CHECK(admin_request(dir / "a.sock", "status", json::object(), 2s).has_value());
    CHECK(server.shutdown());
  }

  TEST_CASE("stop ends a stream: the blocking client sees the end, and the subscriber is gone") {
    TempDir dir;
    const auto hub = std::make_shared<MonitorHub>();
    RunningServer server(dir / "a.sock", {}, monitor_handler(hub));
    auto client = AdminClient::connect(dir / "a.sock", 2s);
    REQUIRE(client.has_value());
    const auto reply = client->call("monitor", json::object(), 2s);
    REQUIRE(reply.has_value());
    CHECK(reply->ok);
    CHECK(reply->result == json{{"stream", "monitor"}});

    const MonitorEvent event{MemberChange{"t", "mix2", "suspect", "alive", {}, {}, {}}};
    hub->publish(event);
    const auto line = client->next_line();
    REQUIRE(line.has_value());
    REQUIRE(line->has_value());
    CHECK(json::parse(**line) == json(event));

    CHECK(server.shutdown());
    const auto end = client->next_line();
    REQUIRE(end.has_value());
    CHECK_FALSE(end->has_value());
    CHECK(hub->subscribers() == 0);
  }

  TEST_CASE("a stream client that stops reading is closed and holds nothing up") {
    TempDir dir;
    const auto hub = std::make_shared<MonitorHub>();
    AdminServerOptions options;
    options.idle_timeout = 300ms;
    RunningServer server(dir / "a.sock", options, monitor_handler(hub));
    Client reader_who_stops(dir / "a.sock");
    reader_who_stops.send(R"({"cmd":"monitor"})"
                          "\n");
    CHECK(reader_who_stops.reply()["ok"] == true);
    // Far more than the socket buffers hold: the server's write stalls,
    // the hub's queue fills and drops, and the idle time closes the stream.
    // Each burst is twice the queue's byte bound, so it drops whatever the
    // server has written meanwhile (a loaded machine may close the stream
    // after one burst).
    const std::string text(1000, 'x');
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (hub->subscribers() != 0 && std::chrono::steady_clock::now() < deadline) {
      for (int i = 0; i < 2 * 1024; ++i) hub->publish(MonitorEvent{LogLine{"t", "info", text}});
      std::this_thread::sleep_for(10ms);
    }
    CHECK(hub->subscribers() == 0);
    CHECK(hub->dropped() > 0);
    CHECK(server.wait_for_connections(0));
    CHECK(admin_request(dir / "a.sock", "status", json::object(), 2s).has_value());
  }

}  // TEST_SUITE

}  // namespace
}  // namespace mixlb
