// Gossip members in separate processes (gossip_node) on loopback: a cluster
// forms through one seed, a member killed with SIGKILL is declared dead by
// every other within the suspicion timeout (and no one else is), a member
// that stops leaves instead of dying, and a process with the wrong key
// cannot join. The nodes pick free ports themselves (port 0) and print
// them, so parallel runs do not collide; each node's stdin is a pipe from
// this test, so a test that dies takes its nodes with it.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "config.h"
#include "keyring.h"

extern char** environ;

namespace mixlb::gossip {
namespace {

using namespace std::chrono_literals;
using Ms = std::chrono::milliseconds;

constexpr int kProbeMs = 200;
const char* const kKeyHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const char* const kWrongKeyHex = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

std::string node_binary() {
  const char* path = std::getenv("GOSSIP_NODE");
  REQUIRE_MESSAGE(path != nullptr, "GOSSIP_NODE must name the gossip_node binary (meson sets it)");
  return path;
}

// One gossip_node process: its stdout read line by line on a thread of its
// own, its stdin ours to write commands to and to close.
class NodeProcess {
 public:
  NodeProcess(std::string name, const std::vector<std::string>& seeds,
              const char* key_hex = kKeyHex)
      : name_(std::move(name)) {
    int in[2], out[2];
    REQUIRE(::pipe2(in, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    std::vector<std::string> args = {
        node_binary(),  "--name", name_, "--key", key_hex, "--probe-ms", std::to_string(kProbeMs),
        "--lifetime-s", "60"};
    for (const auto& seed : seeds) {
      args.push_back("--seed");
      args.push_back(seed);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    const int rc = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    REQUIRE_MESSAGE(rc == 0, "cannot start " << args[0] << ": " << std::strerror(rc));
    reader_ = std::thread([this, fd = out[0]] { read_lines(fd); });
  }

  ~NodeProcess() {
    close_stdin();
    if (pid_ > 0 && !wait_exit(5s)) {
      ::kill(pid_, SIGKILL);
      wait_exit(5s);
    }
    if (reader_.joinable()) reader_.join();
  }

  const std::string& name() const { return name_; }

  // The "listening ADDR" line's address.
  std::string address() {
    std::string line;
    REQUIRE_MESSAGE(
        wait_line([&](const std::string& l) { return l.rfind("listening ", 0) == 0; }, 5s, &line),
        name_ << " did not start");
    return line.substr(std::strlen("listening "));
  }

  // Waits for a line that satisfies `match`; true, and the line, when one came.
  bool wait_line(const std::function<bool(const std::string&)>& match, Ms timeout,
                 std::string* found = nullptr) {
    std::unique_lock lock(mutex_);
    bool hit = false;
    changed_.wait_for(lock, timeout, [&] {
      for (const auto& line : lines_) {
        if (match(line)) {
          if (found) *found = line;
          hit = true;
          return true;
        }
      }
      return eof_;
    });
    return hit;
  }

  bool has_line(const std::string& prefix) {
    std::lock_guard lock(mutex_);
    for (const auto& line : lines_) {
      if (line.rfind(prefix, 0) == 0) return true;
    }
    return false;
  }

  std::vector<std::string> lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }

  void send(const std::string& command) {
    const std::string line = command + "\n";
    REQUIRE(::write(stdin_, line.data(), line.size()) == static_cast<ssize_t>(line.size()));
  }

  void close_stdin() {
    if (stdin_ >= 0) ::close(stdin_);
    stdin_ = -1;
  }

  void kill_hard() {
    REQUIRE(::kill(pid_, SIGKILL) == 0);
    REQUIRE(wait_exit(5s));
    CHECK(WIFSIGNALED(status_));
  }

  // Waits for the process to end; its status in status().
  bool wait_exit(Ms timeout) {
    if (pid_ <= 0) return true;
    const auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const pid_t r = ::waitpid(pid_, &status_, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return true;
      }
      if (std::chrono::steady_clock::now() >= end) return false;
      std::this_thread::sleep_for(10ms);
    }
  }
  int status() const { return status_; }

 private:
  void read_lines(int fd) {
    std::string pending;
    char buffer[4096];
    for (;;) {
      const ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n <= 0) break;
      pending.append(buffer, static_cast<std::size_t>(n));
      std::lock_guard lock(mutex_);
      for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
        lines_.push_back(pending.substr(0, nl));
        pending.erase(0, nl + 1);
      }
      changed_.notify_all();
    }
    ::close(fd);
    std::lock_guard lock(mutex_);
    eof_ = true;
    changed_.notify_all();
  }

  std::string name_;
  pid_t pid_ = -1;
  int status_ = 0;
  int stdin_ = -1;
  std::thread reader_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;
  bool eof_ = false;
};

auto starts_with(std::string prefix) {
  return
      [prefix = std::move(prefix)](const std::string& line) { return line.rfind(prefix, 0) == 0; };
}

// The longest a crash can take to be declared dead by a member, from
// gossip_node's parameters: the member may probe everyone else first (one
// round), the failed probe takes an interval, then the suspicion timer runs
// at its longest (no confirmation), then the verdict is gossiped.
Ms detection_bound(std::size_t members) {
  Config config;
  config.probe_interval = Ms(kProbeMs);
  const auto max_suspicion =
      suspicion_min_timeout(config, members) * config.suspicion_max_timeout_mult;
  const auto round = config.probe_interval * static_cast<long>(members - 1);
  const auto gossip = 1s;
  return std::chrono::duration_cast<Ms>(round + config.probe_interval + max_suspicion + gossip);
}

TEST_CASE(
    "four processes form a cluster; one killed with SIGKILL is declared dead by the "
    "others within the suspicion timeout, and one that stops is seen leaving") {
  std::vector<std::unique_ptr<NodeProcess>> nodes;
  nodes.push_back(std::make_unique<NodeProcess>("node-0", std::vector<std::string>{}));
  const std::string seed = nodes[0]->address();
  for (int i = 1; i < 4; ++i) {
    nodes.push_back(
        std::make_unique<NodeProcess>("node-" + std::to_string(i), std::vector<std::string>{seed}));
  }
  for (auto& observer : nodes) {
    for (auto& other : nodes) {
      if (other == observer) continue;
      CHECK_MESSAGE(observer->wait_line(starts_with("member joined " + other->name() + " "), 10s),
                    observer->name() << " never saw " << other->name() << " join");
    }
  }

  NodeProcess& victim = *nodes[2];
  const auto killed_at = std::chrono::steady_clock::now();
  victim.kill_hard();
  const Ms bound = detection_bound(nodes.size());
  MESSAGE("detection bound: " << bound.count() << " ms");
  for (auto& observer : nodes) {
    if (observer.get() == &victim) continue;
    CHECK_MESSAGE(observer->wait_line(starts_with("member dead node-2 "), bound + 1s),
                  observer->name() << " did not declare node-2 dead");
    const auto took = std::chrono::duration_cast<Ms>(std::chrono::steady_clock::now() - killed_at);
    MESSAGE(observer->name() << " saw node-2 dead after at most " << took.count() << " ms");
    CHECK(took <= bound);
  }

  // node-3 stops: a leave, not a death.
  NodeProcess& leaver = *nodes[3];
  leaver.close_stdin();
  REQUIRE(leaver.wait_exit(5s));
  CHECK(WIFEXITED(leaver.status()));
  CHECK(WEXITSTATUS(leaver.status()) == 0);
  CHECK(leaver.has_line("stopped ok"));
  for (int i : {0, 1}) {
    CHECK(nodes[i]->wait_line(starts_with("member left node-3 "), 5s));
  }

  // No survivor was ever declared dead, nor the victim said to have left.
  for (auto& observer : nodes) {
    for (const auto& line : observer->lines()) {
      if (line.rfind("member dead ", 0) == 0) CHECK(line.rfind("member dead node-2 ", 0) == 0);
      CHECK(line.rfind("member left node-2 ", 0) != 0);
    }
  }

  // The rest stop cleanly: leave, every handle closed, uv_loop_close() == 0.
  for (int i : {0, 1}) {
    nodes[i]->close_stdin();
    REQUIRE(nodes[i]->wait_exit(5s));
    CHECK(WEXITSTATUS(nodes[i]->status()) == 0);
    CHECK(nodes[i]->has_line("stopped ok"));
  }
}

TEST_CASE("a process with the wrong key cannot join a cluster") {
  NodeProcess a("node-a", {});
  const std::string seed = a.address();
  NodeProcess b("node-b", {seed});
  REQUIRE(a.wait_line(starts_with("member joined node-b "), 10s));

  NodeProcess intruder("intruder", {seed}, kWrongKeyHex);
  // Its join's push-pull is refused: the seed closes the stream unanswered.
  std::string sync;
  REQUIRE(intruder.wait_line(starts_with("sync join " + seed + " "), 5s, &sync));
  CHECK(sync != "sync join " + seed + " ok");
  // The seed counted a stream no key opens.
  a.send("stats");
  std::string stats;
  REQUIRE(a.wait_line(starts_with("stats "), 5s, &stats));
  CHECK(stats.find("streams_in_failed=0") == std::string::npos);

  // Over a few rejoins and probe rounds, no one learns of anyone across the key.
  std::this_thread::sleep_for(2500ms);
  intruder.send("members");
  std::string members;
  REQUIRE(intruder.wait_line(starts_with("members "), 5s, &members));
  CHECK(members == "members intruder:alive:0");
  CHECK_FALSE(intruder.has_line("member joined "));
  CHECK_FALSE(a.has_line("member joined intruder "));
  CHECK_FALSE(b.has_line("member joined intruder "));
  CHECK(intruder.has_line("sync rejoin " + seed + " "));  // it kept trying
}

}  // namespace
}  // namespace mixlb::gossip
