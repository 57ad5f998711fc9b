// mixlb-testnode: the application and the clients of the multi-node
// integration test.
//
//   mixlb-testnode serve --name NODE [--http-port 80] [--line-port 7000] [--udp-port 0] [--reuseport 1]
//   mixlb-testnode udp-hold --to ADDR:PORT --flows K --seconds S --interval-ms I
//   mixlb-testnode hold --connect ADDR:PORT --seconds S --interval-ms I
//   mixlb-testnode hold-many --connect ADDR:PORT --connections N --seconds S --interval-ms I
//   mixlb-testnode load --to ADDR:PORT --workers W --seconds S [--pause-ms 0]
//   mixlb-testnode udp --to ADDR:PORT --count N [--sport P] [--timeout-ms 1000]
//
// ADDR is an IPv4 address or an IPv6 address in brackets ([fd00:100::1]:80).
//
// `serve` is the app that runs on every mix node. Its answers name the node,
// so the test can tell which node served a request: an HTTP/1.0-style server
// answers any GET with the body "NODE\n" and closes first, a line server
// echoes every line as "NODE <line>\n" for as long as the connection lives,
// and a UDP server answers every datagram with one datagram "NODE <payload>".
// Every service listens on both families, one socket each (0.0.0.0 and an
// IPv6-only ::), because the VIPs sit on lo and may be IPv4 or IPv6; one
// socket per family keeps the answer independent of net.ipv6.bindv6only and
// of v4-mapped addresses.
//
// The UDP server answers *from the address the datagram was sent to*: it
// learns that address per datagram (IP_PKTINFO / IPV6_RECVPKTINFO) and sets
// it as the reply's source. With direct server return the node answers for
// the VIP, and a reply from the node's own address would not reach a client
// whose socket is connected to the VIP. A socket bound to the wildcard would
// otherwise pick the source by route, which is the node address.
//
// Its HTTP socket may come from systemd-style socket activation (LISTEN_FDS,
// as mixlb-run passes it, named "tcp-PORT"); the others it binds itself.
// With --reuseport 1 it is one generation of an app that is restarted in
// place: every socket has SO_REUSEPORT (the next instance joins the same
// groups), and SIGTERM is a graceful stop, as nginx's QUIT: the listeners
// are shut down at once, the connections being served finish, then it exits.
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
// every reply within 2 s and from the node that answered first. `hold-many`
// holds N such connections in one process (a thread each) and reports each
// one's source port and node as it opens and as it breaks, so the test can
// find every connection's ingress node (its 5-tuple in that node's
// connection table) and count breaks exactly; it prints one line per
// connection at the end. `load` is the request loop that runs through a
// sidecar's restart: W workers, each opening one new connection per HTTP GET,
// one line per request (when, how long, source port, node or why it failed)
// and a summary. All three run for --seconds at most and stop early, cleanly,
// on SIGTERM or SIGINT: the held connections close with a FIN (the client
// waits for the server's), and the report is printed.
//
// `udp` is the datagram client: one socket (bound to --sport when given, so
// the test controls the flow's 5-tuple), connected to the VIP, N requests
// one after the other, each answered within --timeout-ms. It prints one line,
// "sport P answered K/N nodes NODE...", with "-" for a request that got no
// answer, and exits 1 if any did not. The socket is connected, so the kernel
// only hands it datagrams whose source is exactly ADDR:PORT: an answer from
// the wrong source address counts as no answer.
//
// Plain POSIX sockets and one thread per connection: the test opens a few
// thousand short connections, a handful at a time, and a thread per
// connection keeps each handler a straight-line function that a bad client
// can only ever end for itself.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
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
constexpr std::size_t kMaxDatagramBytes = 2048;  // UDP payloads beyond this are ignored

const char* const kUsage =
    "usage: mixlb-testnode serve --name NODE [--http-port 80] [--line-port 7000] [--udp-port 0]\n"
    "       mixlb-testnode hold --connect ADDR:PORT --seconds S --interval-ms I\n"
    "       mixlb-testnode hold-many --connect ADDR:PORT --connections N --seconds S "
    "--interval-ms I\n"
    "       mixlb-testnode load --to ADDR:PORT --workers W --seconds S [--pause-ms 0] [--count N]\n"
    "       mixlb-testnode udp --to ADDR:PORT --count N [--sport P] [--timeout-ms 1000]\n"
    "       mixlb-testnode mcast-capture --group GROUP:PORT --via IPV4 --count N --timeout-ms T\n"
    "       mixlb-testnode mcast-send --group GROUP:PORT --via IPV4 [--forge 1]\n"
    "       mixlb-testnode synflood --from IPV4 --to IPV4:PORT --count N\n"
    "ADDR is an IPv4 address or an IPv6 address in brackets; --udp-port 0 serves no UDP.\n";

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

// An IPv4 or IPv6 socket address.
struct Endpoint {
  sockaddr_storage storage{};
  socklen_t length = 0;

  int family() const { return storage.ss_family; }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  std::uint16_t port() const {
    return ntohs(family() == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port
                                      : reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  }

  // The wildcard address of `family` with `port` (host byte order).
  static Endpoint any(int family, std::uint16_t port) {
    Endpoint e;
    if (family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&e.storage);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(port);
      a->sin6_addr = in6addr_any;
      e.length = sizeof *a;
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&e.storage);
      a->sin_family = AF_INET;
      a->sin_port = htons(port);
      a->sin_addr.s_addr = htonl(INADDR_ANY);
      e.length = sizeof *a;
    }
    return e;
  }
};

const char* family_name(int family) { return family == AF_INET6 ? "IPv6" : "IPv4"; }

// "IPV4:PORT" or "[IPV6]:PORT"; `flag` names the option in the error.
Endpoint parse_endpoint(const std::string& text, std::string_view flag) {
  const std::string wanted =
      "--" + std::string(flag) + " wants IPV4:PORT or [IPV6]:PORT, got '" + text + "'";
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) usage_error(wanted);
  auto port = parse_number<std::uint16_t>(std::string_view(text).substr(colon + 1));
  if (!port || *port == 0) usage_error(wanted);
  Endpoint e;
  if (text.front() == '[') {
    if (text[colon - 1] != ']') usage_error(wanted);
    std::string host = text.substr(1, colon - 2);
    auto* a = reinterpret_cast<sockaddr_in6*>(&e.storage);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(*port);
    if (::inet_pton(AF_INET6, host.c_str(), &a->sin6_addr) != 1) usage_error(wanted);
    e.length = sizeof *a;
  } else {
    std::string host = text.substr(0, colon);
    auto* a = reinterpret_cast<sockaddr_in*>(&e.storage);
    a->sin_family = AF_INET;
    a->sin_port = htons(*port);
    if (::inet_pton(AF_INET, host.c_str(), &a->sin_addr) != 1) usage_error(wanted);
    e.length = sizeof *a;
  }
  return e;
}

// ---------------------------------------------------------------- serve

// A socket of `family` and `type` bound to the wildcard address and `port`;
// an IPv6 one is IPv6-only, since the IPv4 socket serves IPv4. An empty Fd
// when the kernel has no IPv6 (the IPv4 services still run).
Fd bind_any(int family, int type, std::uint16_t port, bool reuseport = false) {
  const std::string where = std::string(family == AF_INET6 ? "[::]:" : "0.0.0.0:") +
                            std::to_string(port) + (type == SOCK_DGRAM ? "/udp" : "/tcp");
  Fd fd(::socket(family, type | SOCK_CLOEXEC, 0));
  if (!fd) {
    if (family == AF_INET6 && errno == EAFNOSUPPORT) {
      std::fprintf(stderr, "mixlb-testnode: no IPv6 here; not serving %s\n", where.c_str());
      return {};
    }
    throw std::system_error(errno, std::system_category(), "socket for " + where);
  }
  int one = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
    throw std::system_error(errno, std::system_category(), "SO_REUSEADDR");
  }
  if (reuseport && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    throw std::system_error(errno, std::system_category(), "SO_REUSEPORT");
  }
  if (family == AF_INET6 &&
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) {
    throw std::system_error(errno, std::system_category(), "IPV6_V6ONLY");
  }
  if (type == SOCK_DGRAM) {
    // Report each datagram's destination address, to answer from it.
    int rc = family == AF_INET6
                 ? ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one)
                 : ::setsockopt(fd.get(), IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    if (rc < 0) throw std::system_error(errno, std::system_category(), "PKTINFO for " + where);
  }
  Endpoint addr = Endpoint::any(family, port);
  if (::bind(fd.get(), addr.get(), addr.length) < 0) {
    throw std::system_error(errno, std::system_category(), "bind " + where);
  }
  if (type == SOCK_STREAM && ::listen(fd.get(), 1024) < 0) {
    throw std::system_error(errno, std::system_category(), "listen on " + where);
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

using ConnectionHandler = void (*)(Fd, const std::string&);

// A graceful stop (serve --reuseport, SIGTERM) shuts the listeners down and
// waits for the connections being served.
std::atomic<bool> g_stopping{false};
std::atomic<int> g_serving{0};

void serve_counted(ConnectionHandler handler, Fd conn, std::string node) {
  handler(std::move(conn), node);
  g_serving.fetch_sub(1);
}

void accept_loop(Fd listener, std::string node, ConnectionHandler handler, std::string what) {
  for (;;) {
    int fd = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (g_stopping.load()) return;  // shut down: the kernel moved or reset what was queued
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      // Out of descriptors or memory: report, back off, keep serving.
      std::fprintf(stderr, "mixlb-testnode: %s accept: %s\n", what.c_str(),
                   errno_text(errno).c_str());
      std::this_thread::sleep_for(milliseconds(100));
      continue;
    }
    try {
      g_serving.fetch_add(1);
      std::thread(serve_counted, handler, Fd(fd), node).detach();
    } catch (const std::system_error& e) {
      g_serving.fetch_sub(1);
      // The Fd moved into the failed thread's arguments is closed with them.
      std::fprintf(stderr, "mixlb-testnode: %s: cannot start a thread: %s\n", what.c_str(),
                   e.what());
    }
  }
}

// Answers every datagram with "NODE <payload>", from the address it was sent
// to. One thread per socket: a datagram is one recvmsg and one sendmsg.
void udp_loop(Fd sock, std::string node, int family) {
  std::string reply;
  char payload[kMaxDatagramBytes];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(in_pktinfo))];
  for (;;) {
    sockaddr_storage peer{};
    iovec iov{payload, sizeof payload};
    msghdr msg{};
    msg.msg_name = &peer;
    msg.msg_namelen = sizeof peer;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(sock.get(), &msg, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "mixlb-testnode: udp %s recvmsg: %s\n", family_name(family),
                   errno_text(errno).c_str());
      std::this_thread::sleep_for(milliseconds(100));
      continue;
    }
    if (msg.msg_flags & MSG_TRUNC) continue;  // not a test request; no answer

    // The destination address becomes the reply's source; the interface is
    // left to the route (the VIP sits on lo, the reply leaves by the uplink).
    alignas(cmsghdr) char reply_control[sizeof control];
    msghdr out{};
    out.msg_name = &peer;
    out.msg_namelen = msg.msg_namelen;
    out.msg_control = reply_control;
    bool have_destination = false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        in_pktinfo got;
        std::memcpy(&got, CMSG_DATA(c), sizeof got);
        in_pktinfo info{};
        info.ipi_spec_dst = got.ipi_addr;
        out.msg_controllen = CMSG_SPACE(sizeof info);
        cmsghdr* o = CMSG_FIRSTHDR(&out);
        o->cmsg_level = IPPROTO_IP;
        o->cmsg_type = IP_PKTINFO;
        o->cmsg_len = CMSG_LEN(sizeof info);
        std::memcpy(CMSG_DATA(o), &info, sizeof info);
        have_destination = true;
      } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
        in6_pktinfo got;
        std::memcpy(&got, CMSG_DATA(c), sizeof got);
        in6_pktinfo info{};
        info.ipi6_addr = got.ipi6_addr;
        out.msg_controllen = CMSG_SPACE(sizeof info);
        cmsghdr* o = CMSG_FIRSTHDR(&out);
        o->cmsg_level = IPPROTO_IPV6;
        o->cmsg_type = IPV6_PKTINFO;
        o->cmsg_len = CMSG_LEN(sizeof info);
        std::memcpy(CMSG_DATA(o), &info, sizeof info);
        have_destination = true;
      }
    }
    if (!have_destination) {
      // Without it the reply's source would be the node address: the
      // client would not take it. Say so rather than answer wrongly.
      std::fprintf(stderr, "mixlb-testnode: udp %s: a datagram without its destination address\n",
                   family_name(family));
      continue;
    }
    reply.assign(node);
    reply += ' ';
    reply.append(payload, static_cast<std::size_t>(n));
    iovec reply_iov{reply.data(), reply.size()};
    out.msg_iov = &reply_iov;
    out.msg_iovlen = 1;
    while (::sendmsg(sock.get(), &out, 0) < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "mixlb-testnode: udp %s sendmsg: %s\n", family_name(family),
                   errno_text(errno).c_str());
      break;
    }
  }
}

// Sockets passed by systemd-style socket activation (mixlb-run): LISTEN_PID
// names this process, LISTEN_FDS counts them from fd 3, LISTEN_FDNAMES names
// them "tcp-PORT" / "udp-PORT". Returns the one for (type, port, family), or
// an empty Fd to bind one here.
Fd inherited_socket(int type, std::uint16_t port, int family) {
  const char* pid = std::getenv("LISTEN_PID");
  const char* fds = std::getenv("LISTEN_FDS");
  const char* names = std::getenv("LISTEN_FDNAMES");
  if (!pid || !fds || !names || std::to_string(::getpid()) != pid) return {};
  const std::string want = std::string(type == SOCK_DGRAM ? "udp-" : "tcp-") + std::to_string(port);
  std::string_view rest = names;
  const int count = std::atoi(fds);
  for (int i = 0; i < count; ++i) {
    const auto colon = rest.find(':');
    const std::string_view name = rest.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
    if (name != want) continue;
    sockaddr_storage at{};
    socklen_t len = sizeof at;
    if (::getsockname(3 + i, reinterpret_cast<sockaddr*>(&at), &len) == 0 && at.ss_family == family) {
      ::fcntl(3 + i, F_SETFD, FD_CLOEXEC);
      return Fd(3 + i);
    }
  }
  return {};
}

int run_serve(Flags flags) {
  // As the first process of a container it has no default action for
  // SIGTERM (the kernel ignores it for PID 1), and `podman stop` would wait
  // its timeout, then SIGKILL: end at once, as the app does anywhere else.
  std::string node = flags.require("name");
  auto http_port = flags.number<std::uint16_t>("http-port", 80, 1, 65535);
  auto line_port = flags.number<std::uint16_t>("line-port", 7000, 1, 65535);
  auto udp_port = flags.number<std::uint16_t>("udp-port", 0, 0, 65535);
  const bool reuseport = flags.number<unsigned>("reuseport", 0, 0, 1) == 1;
  flags.finish();
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  if (reuseport) {
    // One instance of a generation of the app: SIGTERM is a graceful stop,
    // taken by the main thread below once the services run.
    ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  } else {
    struct sigaction quit {};
    quit.sa_handler = [](int) { ::_exit(0); };
    ::sigaction(SIGTERM, &quit, nullptr);
    ::sigaction(SIGINT, &quit, nullptr);
  }
  if (node.empty() || node.find_first_of(" \r\n") != std::string::npos) {
    usage_error("--name must be one word");
  }

  // Bind everything before serving anything: a port in use is a start-up
  // error, not a half-running app.
  struct Service {
    Fd fd;
    int family;
    ConnectionHandler handler;  // nullptr: UDP
    std::string what;
  };
  std::vector<Service> services;
  for (int family : {AF_INET, AF_INET6}) {
    const std::string suffix = family == AF_INET6 ? " (IPv6)" : " (IPv4)";
    if (Fd given = inherited_socket(SOCK_STREAM, http_port, family)) {
      services.push_back({std::move(given), family, &serve_http, "http" + suffix + ", handed over"});
    } else if (Fd fd = bind_any(family, SOCK_STREAM, http_port, reuseport)) {
      services.push_back({std::move(fd), family, &serve_http, "http" + suffix});
    }
    if (Fd fd = bind_any(family, SOCK_STREAM, line_port, reuseport)) {
      services.push_back({std::move(fd), family, &serve_lines, "lines" + suffix});
    }
    if (udp_port == 0) continue;
    if (Fd fd = bind_any(family, SOCK_DGRAM, udp_port, reuseport)) {
      services.push_back({std::move(fd), family, nullptr, "udp" + suffix});
    }
  }
  std::fprintf(stderr, "mixlb-testnode: %s serving http on :%u, lines on :%u, udp on %s\n",
               node.c_str(), http_port, line_port,
               udp_port == 0 ? "no port" : (":" + std::to_string(udp_port)).c_str());

  std::vector<std::thread> threads;
  std::vector<int> listeners;
  for (auto& s : services) {
    if (s.handler != nullptr) {
      listeners.push_back(s.fd.get());
      threads.emplace_back(accept_loop, std::move(s.fd), node, s.handler, s.what);
    } else {
      threads.emplace_back(udp_loop, std::move(s.fd), node, s.family);
    }
  }
  if (!reuseport) {
    for (auto& t : threads) t.join();  // the loops run until the process is killed
    return 0;
  }
  // The graceful stop of an app handing over to its next generation: shut
  // the listeners down (the kernel moves their queued connections to the
  // group's live sockets, or resets them when nothing moves them), finish
  // the connections being served (5 s at most), then exit. UDP sockets go
  // with the process.
  int signal = 0;
  ::sigwait(&stop_signals, &signal);
  g_stopping.store(true);
  for (int fd : listeners) ::shutdown(fd, SHUT_RDWR);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (g_serving.load() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(10));
  std::fprintf(stderr, "mixlb-testnode: %s stopped (%d connection(s) still open)\n", node.c_str(),
               g_serving.load());
  ::_exit(0);
}

// ---------------------------------------------------------------- stopping

// SIGINT and SIGTERM end `hold`, `hold-many` and `load` early but cleanly:
// the connections close with a FIN and the report is printed, so the test can
// run a client for as long as a scenario lasts and stop it when the scenario
// is over. The signals are blocked in every thread and taken by one thread
// with sigwait, which wakes the sleepers through a condition variable (a
// signal handler could not). Built once, before any other thread, and never
// destroyed: the sigwait thread lives until the process ends.
class StopSignal {
 public:
  static StopSignal& instance() {
    static auto* stop = new StopSignal;
    return *stop;
  }

  // Sleeps until `deadline`; true when a stop came (before or meanwhile).
  bool wait_until(Clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    return cv_.wait_until(lock, deadline, [this] { return stopped_; });
  }

  bool stopped() {
    std::lock_guard lock(mutex_);
    return stopped_;
  }

 private:
  StopSignal() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &set, nullptr);  // threads started later inherit it
    std::thread([this, set] {
      int signal = 0;
      ::sigwait(&set, &signal);
      {
        std::lock_guard lock(mutex_);
        stopped_ = true;
      }
      cv_.notify_all();
    }).detach();
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopped_ = false;
};

std::int64_t epoch_ms() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------- hold

int ms_until(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

std::uint16_t local_port(int fd) {
  Endpoint local;
  local.length = sizeof local.storage;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local.storage), &local.length) < 0) return 0;
  return local.port();
}

// Connects within kConnectDeadline; the socket stays non-blocking. `sport`
// gets the source port the kernel chose, also when the connection fails.
Fd connect_to(const Endpoint& addr, std::string& error, std::uint16_t* sport = nullptr) {
  Fd fd(::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    error = "socket: " + errno_text(errno);
    return {};
  }
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd.get(), addr.get(), addr.length) < 0 && errno != EINPROGRESS) {
    error = "connect: " + errno_text(errno);
    return {};
  }
  if (sport != nullptr) *sport = local_port(fd.get());
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

// Closes our side first and waits (within kReplyDeadline) for the server's
// FIN, so that once the client has exited the server has seen every held
// connection end. False if the server's FIN did not come.
bool close_gracefully(Fd fd) {
  ::shutdown(fd.get(), SHUT_WR);
  const auto deadline = Clock::now() + kReplyDeadline;
  char buf[4096];
  for (;;) {
    pollfd pfd{fd.get(), POLLIN, 0};
    int ready = ::poll(&pfd, 1, ms_until(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    return n == 0;
  }
}

// What became of one held connection.
struct HoldResult {
  std::uint16_t sport = 0;
  std::string node;  // the node of the first answer; empty before it
  unsigned round_trips = 0;
  milliseconds slowest{0};
  std::string error;             // empty: it worked until the end (time or a stop)
  std::int64_t broke_at_ms = 0;  // epoch ms of the failure
};

// One connection, one numbered line every `interval` until `end` or a stop;
// every reply within kReplyDeadline, echoing the line, from the node that
// answered first. `on_open` runs once, after the first good round trip.
HoldResult hold_connection(const Endpoint& addr, milliseconds interval, Clock::time_point end,
                           const std::function<void(const HoldResult&)>& on_open) {
  HoldResult r;
  Fd fd = connect_to(addr, r.error, &r.sport);
  if (fd) {
    std::string pending;
    for (auto next = Clock::now(); next < end; next += interval) {
      if (StopSignal::instance().wait_until(next)) break;
      std::string payload = "seq " + std::to_string(r.round_trips + 1);
      if (!send_all(fd.get(), payload + "\n")) {
        r.error = "send: " + errno_text(errno);
        break;
      }
      auto sent = Clock::now();
      auto reply = read_line(fd.get(), pending, sent + kReplyDeadline, r.error);
      if (!reply) break;
      r.slowest =
          std::max(r.slowest, std::chrono::duration_cast<milliseconds>(Clock::now() - sent));
      auto space = reply->find(' ');
      if (space == std::string::npos || reply->substr(space + 1) != payload) {
        r.error = "reply '" + *reply + "' does not echo '" + payload + "'";
        break;
      }
      std::string from = reply->substr(0, space);
      if (r.node.empty()) {
        r.node = from;
      } else if (from != r.node) {
        r.error = "round trip " + std::to_string(r.round_trips + 1) + " answered by " + from +
                  ", the connection started on " + r.node;
        break;
      }
      if (++r.round_trips == 1 && on_open) on_open(r);
    }
    if (r.error.empty() && r.round_trips > 0 && !close_gracefully(std::move(fd))) {
      r.error = "the server did not close within " + std::to_string(kReplyDeadline.count()) +
                " ms of the client's FIN";
    }
  }
  if (r.error.empty() && r.round_trips == 0) r.error = "stopped before the first round trip";
  if (!r.error.empty()) r.broke_at_ms = epoch_ms();
  return r;
}

int run_hold(Flags flags) {
  Endpoint addr = parse_endpoint(flags.require("connect"), "connect");
  auto seconds = flags.number<unsigned>("seconds", std::nullopt, 1, 3600);
  auto interval = milliseconds(flags.number<unsigned>("interval-ms", std::nullopt, 1, 60000));
  flags.finish();

  HoldResult r = hold_connection(addr, interval, Clock::now() + std::chrono::seconds(seconds), {});
  std::printf("node %s round_trips %u slowest_ms %lld\n", r.node.empty() ? "-" : r.node.c_str(),
              r.round_trips, static_cast<long long>(r.slowest.count()));
  if (!r.error.empty()) {
    std::fprintf(stderr, "mixlb-testnode hold: after %u round trips: %s\n", r.round_trips,
                 r.error.c_str());
    return 1;
  }
  return 0;
}

// N connections at once, one thread each. Reports as it goes, flushed, so
// the test can act on them while they are held:
//   open I sport P node NODE                  (after the first round trip)
//   broken I sport P node NODE at EPOCH_MS after R round trips: REASON
// and when all have ended (time or SIGTERM), one line per connection and a
// summary:
//   conn I sport P node NODE round_trips R slowest_ms M ok|broken
//   held N ok K broken B stopped_by signal|time|breaks
int run_hold_many(Flags flags) {
  Endpoint addr = parse_endpoint(flags.require("connect"), "connect");
  auto count = flags.number<unsigned>("connections", std::nullopt, 1, 1000);
  auto seconds = flags.number<unsigned>("seconds", std::nullopt, 1, 3600);
  auto interval = milliseconds(flags.number<unsigned>("interval-ms", std::nullopt, 1, 60000));
  flags.finish();

  const auto end = Clock::now() + std::chrono::seconds(seconds);
  std::mutex out;
  std::vector<HoldResult> results(count);
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < count; ++i) {
    threads.emplace_back([&, i] {
      auto opened = [&](const HoldResult& r) {
        std::lock_guard lock(out);
        std::printf("open %u sport %u node %s\n", i, unsigned{r.sport}, r.node.c_str());
        std::fflush(stdout);
      };
      HoldResult r = hold_connection(addr, interval, end, opened);
      std::lock_guard lock(out);
      if (!r.error.empty()) {
        std::printf("broken %u sport %u node %s at %lld after %u round trips: %s\n", i,
                    unsigned{r.sport}, r.node.empty() ? "-" : r.node.c_str(),
                    static_cast<long long>(r.broke_at_ms), r.round_trips, r.error.c_str());
        std::fflush(stdout);
      }
      results[i] = std::move(r);
    });
  }
  for (auto& t : threads) t.join();

  unsigned broken = 0;
  for (unsigned i = 0; i < count; ++i) {
    const auto& r = results[i];
    broken += !r.error.empty();
    std::printf("conn %u sport %u node %s round_trips %u slowest_ms %lld %s\n", i,
                unsigned{r.sport}, r.node.empty() ? "-" : r.node.c_str(), r.round_trips,
                static_cast<long long>(r.slowest.count()), r.error.empty() ? "ok" : "broken");
  }
  const char* stopped_by = StopSignal::instance().stopped() ? "signal"
                           : Clock::now() >= end            ? "time"
                                                            : "breaks";
  std::printf("held %u ok %u broken %u stopped_by %s\n", count, count - broken, broken, stopped_by);
  return broken == 0 ? 0 : 1;
}

// ---------------------------------------------------------------- load

// One HTTP GET on a new connection; the node that answered, or why not.
struct GetResult {
  std::uint16_t sport = 0;
  std::string node;
  std::string error;
};

GetResult http_get(const Endpoint& to) {
  GetResult r;
  Fd fd = connect_to(to, r.error, &r.sport);
  if (!fd) return r;
  if (!send_all(fd.get(), "GET / HTTP/1.0\r\nHost: mixlb\r\n\r\n")) {
    r.error = "send: " + errno_text(errno);
    return r;
  }
  // The server closes first (no Content-Length): the answer ends at its FIN.
  const auto deadline = Clock::now() + kReplyDeadline;
  std::string answer;
  char buf[4096];
  for (;;) {
    pollfd pfd{fd.get(), POLLIN, 0};
    int ready = ::poll(&pfd, 1, ms_until(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      r.error = ready == 0 ? "no complete answer within " + std::to_string(kReplyDeadline.count()) +
                                 " ms (got " + std::to_string(answer.size()) + " bytes)"
                           : "poll: " + errno_text(errno);
      return r;
    }
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) {
      r.error =
          "recv: " + errno_text(errno) + " (after " + std::to_string(answer.size()) + " bytes)";
      return r;
    }
    if (n == 0) break;
    answer.append(buf, static_cast<std::size_t>(n));
    if (answer.size() > kMaxRequestBytes) {
      r.error = "answer longer than " + std::to_string(kMaxRequestBytes) + " bytes";
      return r;
    }
  }
  auto head_end = answer.find("\r\n\r\n");
  // Its own servers answer HTTP/1.0, a real one (nginx) HTTP/1.1.
  if (!(answer.starts_with("HTTP/1.0 200 ") || answer.starts_with("HTTP/1.1 200 ")) || head_end == std::string::npos) {
    r.error = "answer '" + answer.substr(0, std::min<std::size_t>(answer.find('\r'), 60)) +
              "' is not a 200";
    return r;
  }
  std::string body = answer.substr(head_end + 4);
  if (body.ends_with('\n')) body.pop_back();
  if (body.empty() || body.find_first_of(" \r\n") != std::string::npos) {
    r.error = "body '" + body.substr(0, 60) + "' is not a node name";
    return r;
  }
  r.node = std::move(body);
  return r;
}

// W workers, each a loop of GETs on new connections (with --pause-ms between
// its requests) for S seconds or until SIGTERM. One line per request,
//   req EPOCH_MS LATENCY_MS SPORT NODE
//   req EPOCH_MS LATENCY_MS SPORT - REASON
// (EPOCH_MS: when it started), and a summary:
//   load requests N ok K failed F slowest_ms M over_1s C stopped_by signal|time|count served NODE=K...
// --count N ends it after N requests (0: no limit).
// A request slower than 1 s has usually had a SYN retransmitted.
int run_load(Flags flags) {
  Endpoint to = parse_endpoint(flags.require("to"), "to");
  auto workers = flags.number<unsigned>("workers", std::nullopt, 1, 64);
  auto seconds = flags.number<unsigned>("seconds", std::nullopt, 1, 3600);
  auto pause = milliseconds(flags.number<unsigned>("pause-ms", 0, 0, 10000));
  const auto count = flags.number<unsigned>("count", 0, 0, 10000000);
  flags.finish();

  const auto end = Clock::now() + std::chrono::seconds(seconds);
  std::atomic<unsigned> started_requests{0};
  std::mutex out;
  unsigned total = 0;
  unsigned failed = 0;
  unsigned over_1s = 0;
  milliseconds slowest{0};
  std::map<std::string, unsigned> served;
  std::vector<std::thread> threads;
  for (unsigned w = 0; w < workers; ++w) {
    threads.emplace_back([&] {
      auto& stop = StopSignal::instance();
      while (Clock::now() < end && !stop.stopped()) {
        if (count != 0 && started_requests.fetch_add(1) >= count) break;
        const auto started = Clock::now();
        const auto started_ms = epoch_ms();
        GetResult r = http_get(to);
        const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
        {
          std::lock_guard lock(out);
          ++total;
          slowest = std::max(slowest, took);
          over_1s += took >= std::chrono::seconds(1);
          if (r.error.empty()) {
            ++served[r.node];
            std::printf("req %lld %lld %u %s\n", static_cast<long long>(started_ms),
                        static_cast<long long>(took.count()), unsigned{r.sport}, r.node.c_str());
          } else {
            ++failed;
            std::printf("req %lld %lld %u - %s\n", static_cast<long long>(started_ms),
                        static_cast<long long>(took.count()), unsigned{r.sport}, r.error.c_str());
          }
        }
        if (pause.count() > 0 && stop.wait_until(std::min(Clock::now() + pause, end))) break;
      }
    });
  }
  for (auto& t : threads) t.join();

  std::printf("load requests %u ok %u failed %u slowest_ms %lld over_1s %u stopped_by %s served",
              total, total - failed, failed, static_cast<long long>(slowest.count()), over_1s,
              StopSignal::instance().stopped()        ? "signal"
              : count != 0 && total >= count ? "count"
                                              : "time");
  for (const auto& [node, n] : served) std::printf(" %s=%u", node.c_str(), n);
  std::printf("\n");
  return failed == 0 && total > 0 ? 0 : 1;
}

// ---------------------------------------------------------------- udp

// Waits up to `timeout` for the answer to `payload`; answers to earlier
// requests that arrive late are skipped. Returns the answering node.
std::optional<std::string> await_answer(int fd, const std::string& payload, milliseconds timeout,
                                        std::string& error) {
  const auto deadline = Clock::now() + timeout;
  char buf[kMaxDatagramBytes];
  for (;;) {
    pollfd pfd{fd, POLLIN, 0};
    int ready = ::poll(&pfd, 1, ms_until(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      error = ready == 0 ? "no answer within " + std::to_string(timeout.count()) + " ms"
                         : "poll: " + errno_text(errno);
      return std::nullopt;
    }
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      // ECONNREFUSED: an ICMP port unreachable came back for the VIP.
      error = "recv: " + errno_text(errno);
      return std::nullopt;
    }
    std::string_view reply(buf, static_cast<std::size_t>(n));
    auto space = reply.find(' ');
    if (space == std::string_view::npos || space == 0) {
      error = "answer '" + std::string(reply.substr(0, 80)) + "' is not 'NODE <payload>'";
      return std::nullopt;
    }
    if (reply.substr(space + 1) != payload) continue;  // a late answer to an earlier request
    return std::string(reply.substr(0, space));
  }
}

int run_udp(Flags flags) {
  Endpoint to = parse_endpoint(flags.require("to"), "to");
  auto count = flags.number<unsigned>("count", std::nullopt, 1, 100000);
  auto sport = flags.number<std::uint16_t>("sport", 0, 0, 65535);
  auto timeout = milliseconds(flags.number<unsigned>("timeout-ms", 1000, 1, 60000));
  flags.finish();

  Fd fd(::socket(to.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) throw std::system_error(errno, std::system_category(), "socket");
  if (sport != 0) {
    Endpoint local = Endpoint::any(to.family(), sport);
    if (::bind(fd.get(), local.get(), local.length) < 0) {
      throw std::system_error(errno, std::system_category(),
                              "bind to source port " + std::to_string(sport));
    }
  }
  // Connected: the kernel only passes up datagrams from exactly `to`.
  if (::connect(fd.get(), to.get(), to.length) < 0) {
    throw std::system_error(errno, std::system_category(), "connect");
  }
  const unsigned local = local_port(fd.get());

  std::string nodes;
  std::string first_error;
  unsigned answered = 0;
  for (unsigned i = 1; i <= count; ++i) {
    // Unique per process, so a stray answer to another client cannot match.
    const std::string payload = "req " + std::to_string(::getpid()) + "-" + std::to_string(i);
    std::string error;
    std::optional<std::string> node;
    if (::send(fd.get(), payload.data(), payload.size(), 0) < 0) {
      error = "send: " + errno_text(errno);
    } else {
      node = await_answer(fd.get(), payload, timeout, error);
    }
    nodes += ' ';
    if (node) {
      nodes += *node;
      ++answered;
    } else {
      nodes += '-';
      if (first_error.empty()) first_error = "request " + std::to_string(i) + ": " + error;
    }
  }

  std::printf("sport %u answered %u/%u nodes%s\n", local, answered, count, nodes.c_str());
  if (answered != count) {
    std::fprintf(stderr, "mixlb-testnode udp: %u of %u requests unanswered (%s)\n",
                 count - answered, count, first_error.c_str());
    return 1;
  }
  return 0;
}

// ---------------------------------------------------------------- udp-hold
//
// Long-lived UDP flows across restarts of the app: K sockets, each its own
// flow (its own source port, connected to the VIP), each sending one request
// every --interval-ms for --seconds (or until SIGTERM). Per flow it prints
// "flow sport P answered A/N names X[,Y...]": the names of the app
// instances that answered, in the order they first did; a flow that stayed on
// its socket has one name. Then "flows K answered A/N moved M".
int run_udp_hold(Flags flags) {
  Endpoint to = parse_endpoint(flags.require("to"), "to");
  auto flows = flags.number<unsigned>("flows", std::nullopt, 1, 1000);
  auto seconds = flags.number<unsigned>("seconds", std::nullopt, 1, 3600);
  auto interval = milliseconds(flags.number<unsigned>("interval-ms", 100, 1, 60000));
  flags.finish();
  struct Flow {
    Fd fd;
    unsigned port = 0, sent = 0, answered = 0;
    std::vector<std::string> names;
  };
  std::vector<Flow> all(flows);
  for (auto& f : all) {
    f.fd = Fd(::socket(to.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!f.fd) throw std::system_error(errno, std::system_category(), "socket");
    if (::connect(f.fd.get(), to.get(), to.length) < 0) throw std::system_error(errno, std::system_category(), "connect");
    f.port = local_port(f.fd.get());
  }
  auto& stop = StopSignal::instance();
  const auto end = Clock::now() + std::chrono::seconds(seconds);
  for (unsigned round = 1; Clock::now() < end && !stop.stopped(); ++round) {
    const auto next = Clock::now() + interval;
    for (std::size_t i = 0; i < all.size(); ++i) {
      Flow& f = all[i];
      const std::string payload = "req " + std::to_string(::getpid()) + "-" + std::to_string(i) + "-" + std::to_string(round);
      ++f.sent;
      std::string error;
      if (::send(f.fd.get(), payload.data(), payload.size(), 0) < 0) continue;
      if (auto node = await_answer(f.fd.get(), payload, milliseconds(1000), error)) {
        ++f.answered;
        if (std::find(f.names.begin(), f.names.end(), *node) == f.names.end()) f.names.push_back(*node);
      }
    }
    stop.wait_until(next);
  }
  unsigned sent = 0, answered = 0, moved = 0;
  for (const auto& f : all) {
    std::string names;
    for (const auto& n : f.names) names += (names.empty() ? "" : ",") + n;
    std::printf("flow sport %u answered %u/%u names %s\n", f.port, f.answered, f.sent, names.empty() ? "-" : names.c_str());
    sent += f.sent;
    answered += f.answered;
    if (f.names.size() > 1) ++moved;
  }
  std::printf("flows %u answered %u/%u moved %u\n", flows, answered, sent, moved);
  return 0;
}

// ---------------------------------------------------------------- mcast-capture / mcast-send
//
// What a host on the segment without the cluster's key can do with the
// multicast invalidations: capture them (one hex line per datagram on
// stdout, up to --count within --timeout-ms), and send lines of hex from
// stdin to the group again, as they were or (--forge 1) with one byte of
// their ciphertext changed.

int group_socket(const Endpoint& group, const std::string& via, bool join) {
  if (group.family() != AF_INET) usage_error("--group must be an IPv4 group");
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  in_addr local{};
  if (::inet_pton(AF_INET, via.c_str(), &local) != 1) usage_error("--via must be an IPv4 address");
  if (join) {
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, group.get(), group.length) != 0)
      throw std::runtime_error(std::string("bind to the group: ") + std::strerror(errno));
    ip_mreq m{};
    m.imr_multiaddr = reinterpret_cast<const sockaddr_in*>(group.get())->sin_addr;
    m.imr_interface = local;
    if (::setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof(m)) != 0)
      throw std::runtime_error(std::string("joining the group: ") + std::strerror(errno));
  } else if (::setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &local, sizeof(local)) != 0) {
    throw std::runtime_error(std::string("IP_MULTICAST_IF: ") + std::strerror(errno));
  }
  return fd;
}

int run_mcast_capture(Flags flags) {
  const Endpoint group = parse_endpoint(flags.require("group"), "group");
  const std::string via = flags.require("via");
  const auto count = flags.number<unsigned>("count", std::nullopt, 1, 100000);
  const auto timeout = milliseconds(flags.number<unsigned>("timeout-ms", std::nullopt, 1, 600000));
  flags.finish();
  const int fd = group_socket(group, via, true);
  const auto deadline = Clock::now() + timeout;
  unsigned got = 0;
  std::vector<std::uint8_t> buf(65536);
  while (got < count) {
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, ms_until(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) break;
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) continue;
    for (ssize_t i = 0; i < n; ++i) std::printf("%02x", buf[static_cast<std::size_t>(i)]);
    std::printf("\n");
    ++got;
  }
  std::fflush(stdout);
  std::fprintf(stderr, "mcast-capture: %u datagram(s)\n", got);
  return got > 0 ? 0 : 1;
}

int run_mcast_send(Flags flags) {
  const Endpoint group = parse_endpoint(flags.require("group"), "group");
  const std::string via = flags.require("via");
  const bool forge = flags.number<unsigned>("forge", 0, 0, 1) == 1;
  flags.finish();
  const int fd = group_socket(group, via, false);
  char line[140000];
  unsigned sent = 0;
  while (std::fgets(line, sizeof(line), stdin)) {
    std::vector<std::uint8_t> bytes;
    for (std::size_t i = 0; line[i] && line[i + 1] && line[i] != '\n'; i += 2) {
      unsigned b = 0;
      if (std::sscanf(line + i, "%2x", &b) != 1) break;
      bytes.push_back(static_cast<std::uint8_t>(b));
    }
    if (bytes.empty()) continue;
    if (forge) bytes[bytes.size() / 2] ^= 0x01;
    if (::sendto(fd, bytes.data(), bytes.size(), 0, group.get(), group.length) ==
        static_cast<ssize_t>(bytes.size()))
      ++sent;
  }
  std::printf("mcast-send: %u datagram(s)%s\n", sent, forge ? " (forged)" : "");
  return sent > 0 ? 0 : 1;
}

// ---------------------------------------------------------------- synflood
//
// N SYNs from --from (each from another source port, none with a socket
// behind it) to --to, through a raw socket, as fast as it can send: what
// fills a connection table with flows that never become connections.

std::uint16_t inet_checksum(const std::uint8_t* data, std::size_t len, std::uint32_t sum = 0) {
  for (std::size_t i = 0; i + 1 < len; i += 2) sum += std::uint32_t(data[i]) << 8 | data[i + 1];
  if (len & 1) sum += std::uint32_t(data[len - 1]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

int run_synflood(Flags flags) {
  in_addr from{};
  if (::inet_pton(AF_INET, flags.require("from").c_str(), &from) != 1) usage_error("--from must be an IPv4 address");
  const Endpoint to = parse_endpoint(flags.require("to"), "to");
  if (to.family() != AF_INET) usage_error("--to must be IPv4");
  const auto count = flags.number<unsigned>("count", std::nullopt, 1, 100000000);
  flags.finish();
  const int fd = ::socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  if (fd < 0) throw std::runtime_error(std::string("raw socket: ") + std::strerror(errno));
  const auto* dst = reinterpret_cast<const sockaddr_in*>(to.get());
  std::uint8_t pkt[40] = {};
  pkt[0] = 0x45;
  pkt[3] = 40;  // total length
  pkt[8] = 64;  // TTL
  pkt[9] = IPPROTO_TCP;
  std::memcpy(pkt + 12, &from, 4);
  std::memcpy(pkt + 16, &dst->sin_addr, 4);
  std::memcpy(pkt + 22, &dst->sin_port, 2);
  pkt[32] = 5 << 4;  // data offset
  pkt[33] = 0x02;    // SYN
  pkt[34] = 0xff;    // window
  std::mt19937 rng(static_cast<unsigned>(::getpid()));
  unsigned sent = 0;
  const auto start = Clock::now();
  for (unsigned i = 0; i < count; ++i) {
    const std::uint16_t sport = static_cast<std::uint16_t>(1024 + rng() % 64000);
    const std::uint32_t seq = static_cast<std::uint32_t>(rng());
    pkt[20] = static_cast<std::uint8_t>(sport >> 8);
    pkt[21] = static_cast<std::uint8_t>(sport);
    for (int b = 0; b < 4; ++b) pkt[24 + b] = static_cast<std::uint8_t>(seq >> (24 - 8 * b));
    pkt[36] = pkt[37] = 0;
    // The pseudo-header: addresses, protocol, TCP length.
    std::uint32_t sum = 0;
    for (int k = 12; k < 20; k += 2) sum += std::uint32_t(pkt[k]) << 8 | pkt[k + 1];
    sum += IPPROTO_TCP + 20;
    const std::uint16_t tcp_sum = inet_checksum(pkt + 20, 20, sum);
    pkt[36] = static_cast<std::uint8_t>(tcp_sum >> 8);
    pkt[37] = static_cast<std::uint8_t>(tcp_sum);
    if (::sendto(fd, pkt, sizeof(pkt), 0, to.get(), to.length) == sizeof(pkt)) ++sent;
  }
  const double s = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("synflood sent %u of %u in %.2f s\n", sent, count, s);
  return sent == count ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  if (argc < 2) usage_error("missing subcommand");
  std::string_view command = argv[1];
  try {
    if (command == "serve") return run_serve(Flags(argc, argv, 2));
    if (command == "hold" || command == "hold-many" || command == "load" || command == "udp-hold") {
      StopSignal::instance();  // before any thread: they must inherit the blocked signals
      if (command == "hold") return run_hold(Flags(argc, argv, 2));
      if (command == "hold-many") return run_hold_many(Flags(argc, argv, 2));
      if (command == "udp-hold") return run_udp_hold(Flags(argc, argv, 2));
      return run_load(Flags(argc, argv, 2));
    }
    if (command == "udp") return run_udp(Flags(argc, argv, 2));
    if (command == "mcast-capture") return run_mcast_capture(Flags(argc, argv, 2));
    if (command == "mcast-send") return run_mcast_send(Flags(argc, argv, 2));
    if (command == "synflood") return run_synflood(Flags(argc, argv, 2));
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
