// mixlb-testnode: the application and the long-lived client of the
// multi-node integration test.
//
//   mixlb-testnode serve --name NODE [--http-port 80] [--line-port 7000]
//   mixlb-testnode hold --connect ADDR:PORT --seconds S --interval-ms I
//
// `serve` is the app that runs on every mix node. Its answers name the node,
// so the test can tell which node served a request: an HTTP/1.0-style server
// answers any GET with the body "NODE\n" and closes first, and a line server
// echoes every line as "NODE <line>\n" for as long as the connection lives.
// Both bind 0.0.0.0 because the VIP sits on lo.
//
// The HTTP reply has no Content-Length: its body ends where the connection
// does, as HTTP/1.0 allows. So the client cannot finish before the server's
// FIN has arrived, always closes second, and keeps no TIME_WAIT; the test can
// then reuse a fixed source port (curl --local-port) at once. With a
// Content-Length, curl may close as soon as it has the body, before the FIN
// lands, and the port sits in TIME_WAIT on the client.
//
// `hold` is the client that proves a connection survives while the router
// reshuffles ECMP paths: one connection, one numbered line every interval,
// every reply within 2 s and from the node that answered first.
//
// Plain POSIX sockets and one thread per connection: the test opens a few
// hundred short connections, and a thread per connection keeps each handler
// a straight-line function that a bad client can only ever end for itself.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t kMaxRequestBytes = 16 * 1024;  // HTTP head limit
constexpr std::size_t kMaxLineBytes = 64 * 1024;     // line-server line limit
constexpr int kIdleTimeoutSeconds = 30;              // a silent client is dropped
constexpr milliseconds kReplyDeadline{2000};         // hold: per round trip
constexpr milliseconds kConnectDeadline{2000};

const char* const kUsage =
    "usage: mixlb-testnode serve --name NODE [--http-port 80] [--line-port 7000]\n"
    "       mixlb-testnode hold --connect ADDR:PORT --seconds S --interval-ms I\n";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "mixlb-testnode: %s\n%s", message.c_str(), kUsage);
  std::exit(2);
}

std::string errno_text(int err) { return std::system_category().message(err); }

// A file descriptor that closes itself.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.release();
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

template <typename T>
std::optional<T> parse_number(std::string_view text) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Command-line flags as "--key value" pairs after the subcommand.
class Flags {
 public:
  Flags(int argc, char** argv, int first) {
    for (int i = first; i < argc; i += 2) {
      std::string_view key = argv[i];
      if (!key.starts_with("--")) usage_error("unexpected argument '" + std::string(key) + "'");
      if (i + 1 >= argc) usage_error("missing value for " + std::string(key));
      pairs_.emplace_back(key.substr(2), argv[i + 1]);
    }
  }

  std::optional<std::string> get(std::string_view key) {
    for (auto& [k, v] : pairs_) {
      if (k == key) {
        k.clear();  // consumed
        return v;
      }
    }
    return std::nullopt;
  }

  std::string require(std::string_view key) {
    auto value = get(key);
    if (!value) usage_error("--" + std::string(key) + " is required");
    return *value;
  }

  template <typename T>
  T number(std::string_view key, std::optional<T> fallback, T min, T max) {
    auto text = get(key);
    if (!text) {
      if (!fallback) usage_error("--" + std::string(key) + " is required");
      return *fallback;
    }
    auto value = parse_number<T>(*text);
    if (!value || *value < min || *value > max) {
      usage_error("--" + std::string(key) + ": '" + *text + "' is not a number in [" +
                  std::to_string(min) + ", " + std::to_string(max) + "]");
    }
    return *value;
  }

  // Every flag must have been consumed; a typo is an error, not a default.
  void finish() const {
    for (const auto& [k, v] : pairs_) {
      if (!k.empty()) usage_error("unknown flag --" + k);
    }
  }

 private:
  std::vector<std::pair<std::string, std::string>> pairs_;
};

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// ---------------------------------------------------------------- serve

Fd listen_on(std::uint16_t port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw std::system_error(errno, std::system_category(), "socket");
  int one = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
    throw std::system_error(errno, std::system_category(), "SO_REUSEADDR");
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    throw std::system_error(errno, std::system_category(), "bind 0.0.0.0:" + std::to_string(port));
  }
  if (::listen(fd.get(), 1024) < 0) {
    throw std::system_error(errno, std::system_category(), "listen");
  }
  return fd;
}

void set_idle_timeout(int fd) {
  timeval tv{};
  tv.tv_sec = kIdleTimeoutSeconds;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// Reads the request head, answers, and closes first.
void serve_http(Fd conn, const std::string& node) {
  set_idle_timeout(conn.get());
  std::string request;
  char buf[4096];
  while (request.find("\r\n\r\n") == std::string::npos &&
         request.find("\n\n") == std::string::npos) {
    ssize_t n = ::recv(conn.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // client went away or idled out: nothing to answer
    request.append(buf, static_cast<std::size_t>(n));
    if (request.size() > kMaxRequestBytes) break;
  }
  std::string body;
  std::string status;
  if (request.starts_with("GET ") && request.size() <= kMaxRequestBytes) {
    status = "200 OK";
    body = node + "\n";
  } else {
    status = "400 Bad Request";
    body = "bad request\n";
  }
  std::string reply =
      "HTTP/1.0 " + status + "\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n" + body;
  send_all(conn.get(), reply);
  // Closing with unread bytes queued would turn the FIN into a RST; a GET has
  // no body, so drain whatever is left without blocking before closing.
  while (::recv(conn.get(), buf, sizeof buf, MSG_DONTWAIT) > 0) {
  }
}

// Echoes every line as "NODE <line>\n" until the client closes.
void serve_lines(Fd conn, const std::string& node) {
  set_idle_timeout(conn.get());
  std::string pending;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(conn.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    pending.append(buf, static_cast<std::size_t>(n));
    std::string replies;
    std::size_t start = 0;
    for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line(pending.data() + start, nl - start);
      if (line.ends_with('\r')) line.remove_suffix(1);
      replies += node;
      replies += ' ';
      replies += line;
      replies += '\n';
    }
    pending.erase(0, start);
    if (pending.size() > kMaxLineBytes) return;  // not a line protocol client
    if (!replies.empty() && !send_all(conn.get(), replies)) return;
  }
}

template <typename Handler>
void accept_loop(Fd listener, const std::string& node, Handler handler, const char* what) {
  for (;;) {
    int fd = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      // Out of descriptors or memory: report, back off, keep serving.
      std::fprintf(stderr, "mixlb-testnode: %s accept: %s\n", what, errno_text(errno).c_str());
      std::this_thread::sleep_for(milliseconds(100));
      continue;
    }
    try {
      std::thread(handler, Fd(fd), node).detach();
    } catch (const std::system_error& e) {
      // The Fd moved into the failed thread's arguments is closed with them.
      std::fprintf(stderr, "mixlb-testnode: %s: cannot start a thread: %s\n", what, e.what());
    }
  }
}

int run_serve(Flags flags) {
  std::string node = flags.require("name");
  auto http_port = flags.number<std::uint16_t>("http-port", 80, 1, 65535);
  auto line_port = flags.number<std::uint16_t>("line-port", 7000, 1, 65535);
  flags.finish();
  if (node.empty() || node.find_first_of(" \r\n") != std::string::npos) {
    usage_error("--name must be one word");
  }

  Fd http = listen_on(http_port);
  Fd lines = listen_on(line_port);
  std::fprintf(stderr, "mixlb-testnode: %s serving http on :%u, lines on :%u\n", node.c_str(),
               http_port, line_port);
  std::thread http_thread(accept_loop<decltype(&serve_http)>, std::move(http), node, &serve_http,
                          "http");
  accept_loop(std::move(lines), node, &serve_lines, "lines");
  http_thread.join();  // not reached: the accept loops run until the process is killed
  return 0;
}

// ---------------------------------------------------------------- hold

sockaddr_in parse_endpoint(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) usage_error("--connect wants ADDR:PORT, got '" + text + "'");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  std::string host = text.substr(0, colon);
  auto port = parse_number<std::uint16_t>(std::string_view(text).substr(colon + 1));
  if (!port || *port == 0 || ::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    usage_error("--connect wants IPV4:PORT, got '" + text + "'");
  }
  addr.sin_port = htons(*port);
  return addr;
}

int ms_until(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

// Connects within kConnectDeadline; the socket stays non-blocking.
Fd connect_to(const sockaddr_in& addr, std::string& error) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    error = "socket: " + errno_text(errno);
    return {};
  }
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0 &&
      errno != EINPROGRESS) {
    error = "connect: " + errno_text(errno);
    return {};
  }
  pollfd pfd{fd.get(), POLLOUT, 0};
  int ready = ::poll(&pfd, 1, static_cast<int>(kConnectDeadline.count()));
  if (ready == 0) {
    error = "connect: no answer within " + std::to_string(kConnectDeadline.count()) + " ms";
    return {};
  }
  int so_error = 0;
  socklen_t len = sizeof so_error;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len);
  if (ready < 0 || so_error != 0) {
    error = "connect: " + errno_text(ready < 0 ? errno : so_error);
    return {};
  }
  return fd;
}

// Reads one '\n'-terminated line (without it) before `deadline`.
std::optional<std::string> read_line(int fd, std::string& pending, Clock::time_point deadline,
                                     std::string& error) {
  for (;;) {
    auto nl = pending.find('\n');
    if (nl != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      return line;
    }
    pollfd pfd{fd, POLLIN, 0};
    int ready = ::poll(&pfd, 1, ms_until(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      error = ready == 0 ? "no reply within " + std::to_string(kReplyDeadline.count()) + " ms"
                         : "poll: " + errno_text(errno);
      return std::nullopt;
    }
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      error = n == 0 ? "connection closed by the server" : "recv: " + errno_text(errno);
      return std::nullopt;
    }
    pending.append(buf, static_cast<std::size_t>(n));
  }
}

int run_hold(Flags flags) {
  sockaddr_in addr = parse_endpoint(flags.require("connect"));
  auto seconds = flags.number<unsigned>("seconds", std::nullopt, 1, 3600);
  auto interval = milliseconds(flags.number<unsigned>("interval-ms", std::nullopt, 1, 60000));
  flags.finish();

  std::string error;
  Fd fd = connect_to(addr, error);
  std::string node;
  unsigned round_trips = 0;
  milliseconds slowest{0};
  if (fd) {
    std::string pending;
    const auto start = Clock::now();
    const auto end = start + std::chrono::seconds(seconds);
    for (auto next = start; next < end; next += interval) {
      std::this_thread::sleep_until(next);
      std::string payload = "seq " + std::to_string(round_trips + 1);
      if (!send_all(fd.get(), payload + "\n")) {
        error = "send: " + errno_text(errno);
        break;
      }
      auto sent = Clock::now();
      auto reply = read_line(fd.get(), pending, sent + kReplyDeadline, error);
      if (!reply) break;
      slowest = std::max(slowest, std::chrono::duration_cast<milliseconds>(Clock::now() - sent));
      auto space = reply->find(' ');
      if (space == std::string::npos || reply->substr(space + 1) != payload) {
        error = "reply '" + *reply + "' does not echo '" + payload + "'";
        break;
      }
      std::string from = reply->substr(0, space);
      if (node.empty()) {
        node = from;
      } else if (from != node) {
        error = "round trip " + std::to_string(round_trips + 1) + " answered by " + from +
                ", the connection started on " + node;
        break;
      }
      ++round_trips;
    }
  }

  std::printf("node %s round_trips %u slowest_ms %lld\n", node.empty() ? "-" : node.c_str(),
              round_trips, static_cast<long long>(slowest.count()));
  if (!error.empty()) {
    std::fprintf(stderr, "mixlb-testnode hold: after %u round trips: %s\n", round_trips,
                 error.c_str());
    return 1;
  }
  return round_trips > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  if (argc < 2) usage_error("missing subcommand");
  std::string_view command = argv[1];
  try {
    if (command == "serve") return run_serve(Flags(argc, argv, 2));
    if (command == "hold") return run_hold(Flags(argc, argv, 2));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mixlb-testnode: %s\n", e.what());
    return 1;
  }
  if (command == "-h" || command == "--help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  usage_error("unknown subcommand '" + std::string(command) + "'");
}
