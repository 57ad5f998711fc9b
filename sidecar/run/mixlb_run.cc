// mixlb-run: starts an app with its listening sockets already made and
// registered with the mixlb sidecar's reuseport selector, passed to it the
// way systemd's socket activation passes them (sd_listen_fds(3)):
//
//   mixlb-run --socket PATH [--label LABEL] [--ready yes|no]
//             --listen tcp:ADDR:PORT [--listen udp:ADDR:PORT]... -- PROGRAM [ARGS...]
//
// An app that already takes its sockets from systemd needs no change to get
// flows from the selector, and one that does not can learn it with any
// sd_listen_fds implementation. The sockets are registered before the app
// runs, so a TCP client that comes meanwhile waits in the listen queue
// (4096 deep) instead of being refused.
//
// It registers, then execs the program, so the program keeps mixlb-run's
// pid: LISTEN_PID names it, and the sidecar's generation has the pid of the
// process that really holds the sockets. The sidecar keeps no copy of them,
// so when the app exits they are closed.
//
// It links nothing of the daemon: the request is the plain-C client
// (client/mixlb_sockets.h) an app could use itself. Every failure before
// the exec is one line "mixlb-run: ..." and exit status 1; a usage error
// exits 2.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include "client/mixlb_sockets.h"
#include "kernel/unique_fd.h"

namespace mixlb {
namespace {

constexpr int kFailed = 1;
constexpr int kUsageError = 2;
constexpr int kListenBacklog = 4096;
// The first fd of socket activation; 0, 1 and 2 stay the standard streams.
constexpr int kFirstListenFd = 3;
constexpr std::string_view kSocketVariable = "MIXLB_SOCKETS_SOCKET";

constexpr std::string_view kUsage =
    "usage: mixlb-run [--socket PATH] [--label LABEL] [--ready yes|no]\n"
    "                 --listen tcp:ADDR:PORT [--listen udp:ADDR:PORT]... -- PROGRAM [ARGS...]\n"
    "\n"
    "Creates each socket (SO_REUSEPORT, SO_REUSEADDR; TCP listening), registers them\n"
    "all with the mixlb sidecar's handoff socket, then runs PROGRAM with them at fds\n"
    "3, 4, ... in --listen order, as systemd socket activation passes them\n"
    "(LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES=tcp-PORT:udp-PORT...).\n"
    "\n"
    "  --socket PATH   the sidecar's handoff socket (default: $MIXLB_SOCKETS_SOCKET)\n"
    "  --label LABEL   the generation's label (default: the sidecar names it pid:<pid>)\n"
    "  --ready yes|no  give the new sockets new flows at once (default: yes)\n"
    "  --listen SPEC   tcp:ADDR:PORT or udp:ADDR:PORT; ADDR is IPv4 or [IPv6]\n";

struct Listen {
  std::string spec;  // as given, for messages
  int type = SOCK_STREAM;
  sockaddr_storage address{};
  socklen_t length = 0;
  std::uint16_t port = 0;

  // The fd's name in LISTEN_FDNAMES, which separates names with ':' and so
  // cannot carry the address.
  std::string name() const {
    return (type == SOCK_STREAM ? "tcp-" : "udp-") + std::to_string(port);
  }
};

struct Options {
  std::string socket;
  std::string label;
  bool ready = true;
  std::vector<Listen> listens;
  std::vector<char*> program;  // argv for execvp, null-terminated
  bool help = false;
};

std::string errno_text(int error) { return std::strerror(error); }

std::expected<std::uint16_t, std::string> parse_port(std::string_view text, std::string_view spec) {
  unsigned long port = 0;
  if (text.empty() || text.size() > 5 ||
      text.find_first_not_of("0123456789") != std::string_view::npos ||
      (port = std::stoul(std::string(text))) == 0 || port > 65535) {
    return std::unexpected("--listen " + std::string(spec) +
                           ": the port must be a number from 1 to 65535");
  }
  return static_cast<std::uint16_t>(port);
}

// tcp:ADDR:PORT or udp:ADDR:PORT, ADDR IPv4 or [IPv6].
std::expected<Listen, std::string> parse_listen(std::string_view spec) {
  Listen listen;
  listen.spec = std::string(spec);
  const auto fail = [&](std::string_view why) {
    return std::unexpected("--listen " + listen.spec + ": " + std::string(why));
  };
  if (spec.starts_with("tcp:")) {
    listen.type = SOCK_STREAM;
  } else if (spec.starts_with("udp:")) {
    listen.type = SOCK_DGRAM;
  } else {
    return fail("say tcp:ADDR:PORT or udp:ADDR:PORT");
  }
  std::string_view rest = spec.substr(4);
  std::string host;
  std::string_view port;
  bool v6 = false;
  if (rest.starts_with('[')) {
    const auto close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      return fail("an IPv6 address goes in brackets followed by the port, as [::1]:8080");
    }
    host = std::string(rest.substr(1, close - 1));
    port = rest.substr(close + 2);
    v6 = true;
  } else {
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) return fail("no port: say ADDR:PORT");
    host = std::string(rest.substr(0, colon));
    port = rest.substr(colon + 1);
  }
  auto number = parse_port(port, spec);
  if (!number) return std::unexpected(number.error());
  listen.port = *number;
  if (v6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&listen.address);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(listen.port);
    if (::inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) != 1)
      return fail("not an IPv6 address in the brackets");
    listen.length = sizeof(sockaddr_in6);
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&listen.address);
    in4->sin_family = AF_INET;
    in4->sin_port = htons(listen.port);
    if (::inet_pton(AF_INET, host.c_str(), &in4->sin_addr) != 1) {
      return fail("not an IPv4 address (an IPv6 one goes in brackets: [::]:PORT)");
    }
    listen.length = sizeof(sockaddr_in);
  }
  return listen;
}

std::expected<Options, std::string> parse_args(int argc, char** argv) {
  Options options;
  int i = 1;
  for (; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg == "-h" || arg == "--help") {
      options.help = true;
      return options;
    }
    if (!arg.starts_with('-')) break;  // PROGRAM, when no "--" came first
    // --name VALUE or --name=VALUE; every option takes a value.
    const auto equals = arg.find('=');
    const std::string_view name = arg.substr(0, equals);
    if (name != "--socket" && name != "--label" && name != "--ready" && name != "--listen") {
      return std::unexpected("unknown option '" + std::string(arg) + "'");
    }
    std::string value;
    if (equals != std::string_view::npos) {
      value = std::string(arg.substr(equals + 1));
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return std::unexpected(std::string(name) + " needs a value");
    }
    if (name == "--socket") {
      options.socket = value;
    } else if (name == "--label") {
      options.label = value;
    } else if (name == "--ready") {
      if (value != "yes" && value != "no")
        return std::unexpected("--ready takes yes or no, not '" + value + "'");
      options.ready = value == "yes";
    } else {
      auto listen = parse_listen(value);
      if (!listen) return std::unexpected(listen.error());
      options.listens.push_back(std::move(*listen));
    }
  }
  for (; i < argc; ++i) options.program.push_back(argv[i]);
  options.program.push_back(nullptr);

  if (options.listens.empty())
    return std::unexpected(std::string("no --listen: which sockets should the program get?"));
  if (options.program.size() == 1)
    return std::unexpected(std::string("no PROGRAM to run (after --)"));
  if (options.listens.size() > MIXLB_SOCKETS_MAX_FDS) {
    return std::unexpected("too many --listen: the sidecar takes at most " +
                           std::to_string(MIXLB_SOCKETS_MAX_FDS) + " sockets in one registration");
  }
  if (options.socket.empty()) {
    const char* from_env = std::getenv(std::string(kSocketVariable).c_str());
    if (from_env == nullptr || *from_env == 0) {
      return std::unexpected("no --socket, and " + std::string(kSocketVariable) + " is not set");
    }
    options.socket = from_env;
  }
  return options;
}

// Whether execvp could run `program`, found as execvp finds it; checked
// before anything is registered, so a typo does not leave the sidecar a
// generation whose sockets close at once.
std::expected<void, std::string> check_program(const char* program) {
  const std::string name = program;
  if (name.find('/') != std::string::npos) {
    if (::access(program, X_OK) != 0) {
      const int error = errno;
      return std::unexpected("cannot run " + name + ": " + errno_text(error));
    }
    return {};
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/bin:/usr/bin";
  for (;;) {
    const auto colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    if (dir.empty()) dir = ".";
    if (::access((dir + "/" + name).c_str(), X_OK) == 0) return {};
    if (colon == std::string_view::npos) break;
    dirs.remove_prefix(colon + 1);
  }
  return std::unexpected(name + ": command not found in PATH");
}

std::expected<UniqueFd, std::string> open_socket(const Listen& listen) {
  const auto fail = [&](std::string_view what) {
    const int error = errno;
    return std::unexpected("cannot " + std::string(what) + " " + listen.spec + ": " +
                           errno_text(error));
  };
  // Close-on-exec until it is moved to its place for the program.
  UniqueFd fd(::socket(listen.address.ss_family, listen.type | SOCK_CLOEXEC, 0));
  if (!fd) return fail("create a socket for");
  const int one = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    return fail("set SO_REUSEADDR and SO_REUSEPORT on");
  }
  // [::] means IPv6 only: an IPv4 listener on the same port is a service of
  // its own for the selector, and the app asks for it with its own --listen.
  if (listen.address.ss_family == AF_INET6 &&
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) {
    return fail("set IPV6_V6ONLY on");
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&listen.address), listen.length) != 0)
    return fail("bind");
  if (listen.type == SOCK_STREAM && ::listen(fd.get(), kListenBacklog) != 0)
    return fail("listen on");
  return fd;
}

// Moves the sockets to 3, 4, ... in order, open across exec. Each is first
// copied above every target, so that placing one cannot close another
// still waiting for its place.
std::expected<void, std::string> place_sockets(const std::vector<UniqueFd>& sockets) {
  const int count = static_cast<int>(sockets.size());
  std::vector<UniqueFd> above;
  for (const UniqueFd& fd : sockets) {
    above.emplace_back(::fcntl(fd.get(), F_DUPFD_CLOEXEC, kFirstListenFd + count));
    if (!above.back()) {
      const int error = errno;
      return std::unexpected("cannot copy a socket's fd: " + errno_text(error));
    }
  }
  for (int i = 0; i < count; ++i) {
    // dup2 clears FD_CLOEXEC on the copy it makes.
    if (::dup2(above[static_cast<std::size_t>(i)].get(), kFirstListenFd + i) < 0) {
      const int error = errno;
      return std::unexpected("cannot move a socket to fd " + std::to_string(kFirstListenFd + i) +
                             ": " + errno_text(error));
    }
  }
  // The originals and the copies above are close-on-exec; only 3.. remain.
  return {};
}

std::expected<void, std::string> set_listen_environment(const Options& options) {
  std::string names;
  for (const Listen& listen : options.listens) names += (names.empty() ? "" : ":") + listen.name();
  if (::setenv("LISTEN_FDS", std::to_string(options.listens.size()).c_str(), 1) != 0 ||
      ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1) != 0 ||
      ::setenv("LISTEN_FDNAMES", names.c_str(), 1) != 0) {
    const int error = errno;
    return std::unexpected("cannot set the LISTEN_* environment: " + errno_text(error));
  }
  return {};
}

int fail(const std::string& message) {
  std::fprintf(stderr, "mixlb-run: %s\n", message.c_str());
  return kFailed;
}

int run(int argc, char** argv) {
  auto options = parse_args(argc, argv);
  if (!options) {
    std::fprintf(stderr, "mixlb-run: %s\n(mixlb-run --help tells how to use it)\n",
                 options.error().c_str());
    return kUsageError;
  }
  if (options->help) {
    std::fputs(kUsage.data(), stdout);
    return 0;
  }
  if (auto found = check_program(options->program[0]); !found) return fail(found.error());

  std::vector<UniqueFd> sockets;
  std::vector<int> fds;
  for (const Listen& listen : options->listens) {
    auto fd = open_socket(listen);
    if (!fd) return fail(fd.error());
    fds.push_back(fd->get());
    sockets.push_back(std::move(*fd));
  }

  char refusal[1024];
  if (mixlb_register_sockets(options->socket.c_str(), fds.data(), fds.size(),
                             options->label.empty() ? nullptr : options->label.c_str(),
                             options->ready ? 1 : 0, refusal, sizeof(refusal)) != 0) {
    return fail("cannot register the sockets with " + options->socket + ": " + refusal);
  }
  if (auto placed = place_sockets(sockets); !placed) return fail(placed.error());
  if (auto set = set_listen_environment(*options); !set) return fail(set.error());

  ::execvp(options->program[0], options->program.data());
  const int error = errno;
  return fail("cannot run " + std::string(options->program[0]) + ": " + errno_text(error));
}

}  // namespace
}  // namespace mixlb

int main(int argc, char** argv) { return mixlb::run(argc, argv); }
