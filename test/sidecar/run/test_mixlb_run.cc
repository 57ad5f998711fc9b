// mixlb-run as an operator runs it: the built binary (MIXLB_RUN_PATH, from
// test/meson.build) against a HandoffServer whose callback records what it
// was given (handoff_harness.h), with a shell as the PROGRAM that prints
// the socket-activation environment and what its fds 3 and 4 are. The
// sockets are on 127.0.0.1, on a port found free first.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "../reuseport/handoff_harness.h"
#include "../reuseport/loopback.h"
#include "kernel/unique_fd.h"

extern char** environ;

namespace mixlb {
namespace {

using test::RunningHandoff;

struct Ran {
  int status = -1;  // the exit status; -1 when it did not exit
  std::string out;
  std::string err;
  pid_t pid = 0;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Runs mixlb-run with `args`, its environment this process's with `env`
// laid over it (an empty value removes the variable), its output captured.
Ran run_mixlb_run(const test::ScratchDir& dir, const std::vector<std::string>& args,
                  const std::map<std::string, std::string>& env = {}) {
  std::vector<std::string> environment;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    if (!env.contains(entry.substr(0, entry.find('=')))) environment.push_back(entry);
  }
  for (const auto& [name, value] : env) {
    if (!value.empty()) environment.push_back(name + "=" + value);
  }
  std::vector<char*> envp;
  for (auto& entry : environment) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings{MIXLB_RUN_PATH};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);

  const std::string out = dir.file("out"), err = dir.file("err");
  posix_spawn_file_actions_t actions;
  REQUIRE(::posix_spawn_file_actions_init(&actions) == 0);
  ::posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ::posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  ::posix_spawn_file_actions_destroy(&actions);
  REQUIRE(spawned == 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return Ran{WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err), pid};
}

// A port free for TCP and UDP on 127.0.0.1 a moment ago.
std::uint16_t free_port() {
  for (int attempt = 0; attempt < 20; ++attempt) {
    const UniqueFd tcp = test::loopback_socket(SOCK_STREAM, 0, false, false);
    sockaddr_in at{};
    socklen_t len = sizeof(at);
    REQUIRE(::getsockname(tcp.get(), reinterpret_cast<sockaddr*>(&at), &len) == 0);
    const UniqueFd udp(::socket(AF_INET, SOCK_DGRAM, 0));
    if (::bind(udp.get(), reinterpret_cast<sockaddr*>(&at), len) == 0) return ntohs(at.sin_port);
  }
  FAIL("no port free for both TCP and UDP");
  return 0;
}

// The PROGRAM: what socket activation gave it, one fact a line: the
// variables, and what fds 3 and 4 of the shell (mixlb-run's pid) are.
const std::vector<std::string> kShowActivation{
    "/bin/sh", "-c",
    "echo \"$LISTEN_FDS $LISTEN_FDNAMES\"; echo \"listen_pid $LISTEN_PID shell $$\"; "
    "for fd in 3 4; do [ ! -e /proc/$$/fd/$fd ] || readlink /proc/$$/fd/$fd; done"};

std::vector<std::string> with_program(std::vector<std::string> args) {
  args.push_back("--");
  args.insert(args.end(), kShowActivation.begin(), kShowActivation.end());
  return args;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST_SUITE("mixlb-run") {
  TEST_CASE("mixlb-run registers its sockets and execs the program with them at fds 3 and 4") {
    RunningHandoff server;
    const std::uint16_t port = free_port();
    const std::string tcp = "tcp:127.0.0.1:" + std::to_string(port);
    const std::string udp = "udp:127.0.0.1:" + std::to_string(port);
    const Ran ran =
        run_mixlb_run(server.dir(), with_program({"--socket", server.path(), "--label", "web-v2",
                                                  "--listen", tcp, "--listen", udp}));
    INFO("stdout: " << ran.out << "\nstderr: " << ran.err);
    REQUIRE(ran.status == 0);
    CHECK(ran.err.empty());

    const auto out = lines(ran.out);
    REQUIRE(out.size() == 4);
    CHECK(out[0] == "2 tcp-" + std::to_string(port) + ":udp-" + std::to_string(port));
    // It exec'd: the shell has mixlb-run's pid, which LISTEN_PID names.
    const std::string pid = std::to_string(ran.pid);
    CHECK(out[1] == "listen_pid " + pid + " shell " + pid);
    CHECK(out[2].starts_with("socket:["));
    CHECK(out[3].starts_with("socket:["));

    const auto seen = server.seen();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].pid == ran.pid);
    CHECK(seen[0].label == "web-v2");
    CHECK(seen[0].ready);
    REQUIRE(seen[0].fds.size() == 2);
    CHECK(seen[0].fds[0].service == "tcp 127.0.0.1:" + std::to_string(port));
    CHECK(seen[0].fds[0].listening);
    CHECK(seen[0].fds[0].reuseport);
    CHECK(seen[0].fds[1].service == "udp 127.0.0.1:" + std::to_string(port));
    CHECK(seen[0].fds[1].reuseport);
  }

  TEST_CASE("mixlb-run takes the socket from MIXLB_SOCKETS_SOCKET and passes --ready no") {
    RunningHandoff server;
    const std::uint16_t port = free_port();
    const Ran ran = run_mixlb_run(
        server.dir(),
        with_program({"--ready=no", "--listen=tcp:127.0.0.1:" + std::to_string(port)}),
        {{"MIXLB_SOCKETS_SOCKET", server.path()}});
    INFO("stdout: " << ran.out << "\nstderr: " << ran.err);
    REQUIRE(ran.status == 0);
    CHECK(lines(ran.out).at(0) == "1 tcp-" + std::to_string(port));
    const auto seen = server.seen();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].label.empty());
    CHECK_FALSE(seen[0].ready);
  }

  TEST_CASE(
      "a refused registration: exit 1 with the sidecar's reason, and the program does not run") {
    RunningHandoff server;
    server.refuse_with("socket 1 (tcp 127.0.0.1:1): not a VIP port this node serves");
    const std::uint16_t port = free_port();
    const Ran ran =
        run_mixlb_run(server.dir(), with_program({"--socket", server.path(), "--listen",
                                                  "tcp:127.0.0.1:" + std::to_string(port)}));
    CHECK(ran.status == 1);
    CHECK(
        ran.err ==
        "mixlb-run: cannot register the sockets with " + server.path() +
            ": the sidecar refused: socket 1 (tcp 127.0.0.1:1): not a VIP port this node serves\n");
    CHECK(ran.out.empty());
  }

  TEST_CASE("failures before the exec: one line and exit 1") {
    RunningHandoff server;
    const std::uint16_t port = free_port();
    // Taken without SO_REUSEPORT, so mixlb-run cannot join it.
    const UniqueFd taken = test::loopback_socket(SOCK_STREAM, port, false);
    Ran ran = run_mixlb_run(server.dir(), with_program({"--socket", server.path(), "--listen",
                                                        "tcp:127.0.0.1:" + std::to_string(port)}));
    CHECK(ran.status == 1);
    CHECK(ran.err == "mixlb-run: cannot bind tcp:127.0.0.1:" + std::to_string(port) +
                         ": Address already in use\n");

    ran = run_mixlb_run(server.dir(), {"--socket", server.path(), "--listen",
                                       "udp:127.0.0.1:" + std::to_string(free_port()), "--",
                                       "/nonexistent/program"});
    CHECK(ran.status == 1);
    CHECK(ran.err == "mixlb-run: cannot run /nonexistent/program: No such file or directory\n");
    CHECK(server.seen().empty());
  }

  TEST_CASE("usage errors exit 2") {
    test::ScratchDir dir;
    struct Case {
      std::vector<std::string> args;
      std::string error;
    };
    const std::vector<Case> cases{
        {{"--socket", "/x", "--", "true"}, "no --listen: which sockets should the program get?"},
        {{"--socket", "/x", "--listen", "tcp:127.0.0.1:80"}, "no PROGRAM to run (after --)"},
        {{"--listen", "tcp:127.0.0.1:80", "--", "true"},
         "no --socket, and MIXLB_SOCKETS_SOCKET is not set"},
        {{"--socket", "/x", "--listen", "sctp:127.0.0.1:80", "--", "true"},
         "--listen sctp:127.0.0.1:80: say tcp:ADDR:PORT or udp:ADDR:PORT"},
        {{"--socket", "/x", "--listen", "tcp:::1:80", "--", "true"},
         "--listen tcp:::1:80: not an IPv4 address (an IPv6 one goes in brackets: [::]:PORT)"},
        {{"--socket", "/x", "--listen", "tcp:[::1]80", "--", "true"},
         "--listen tcp:[::1]80: an IPv6 address goes in brackets followed by the port, as "
         "[::1]:8080"},
        {{"--socket", "/x", "--listen", "udp:127.0.0.1:0", "--", "true"},
         "--listen udp:127.0.0.1:0: the port must be a number from 1 to 65535"},
        {{"--socket", "/x", "--ready", "maybe"}, "--ready takes yes or no, not 'maybe'"},
        {{"--sockets", "/x"}, "unknown option '--sockets'"},
        {{"--socket"}, "--socket needs a value"},
    };
    for (const Case& c : cases) {
      // Without MIXLB_SOCKETS_SOCKET, whatever the test's environment has.
      const Ran ran = run_mixlb_run(dir, c.args, {{"MIXLB_SOCKETS_SOCKET", ""}});
      CHECK(ran.status == 2);
      CHECK(ran.err == "mixlb-run: " + c.error + "\n(mixlb-run --help tells how to use it)\n");
    }
  }
}

}  // namespace
}  // namespace mixlb
