// `promtool check metrics` (Prometheus' own parser and linter, Debian
// package prometheus) on what the collector renders for realistic figures,
// and on what it renders when parts are missing. A control case feeds
// promtool exposition text it must refuse, so a promtool that accepts
// anything, or a harness that reads its verdict wrong, fails here.
//
// Without promtool the cases are skipped with the reason ("[cases]
// skipped: ..." on stderr, which tools/run_tests.py lists) — except under
// CI (CI=true or CI=1), where the machine is meant to have every tool and
// the cases run and fail instead.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>

#include "figures.h"
#include "metrics/collect.h"

namespace mixlb::metrics {
namespace {

std::optional<std::string> find_promtool() {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/promtool";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

const std::optional<std::string>& promtool() {
  static const std::optional<std::string> found = find_promtool();
  return found;
}

bool under_ci() {
  const char* ci = std::getenv("CI");
  const std::string value = ci ? ci : "";
  return value == "true" || value == "1";
}

// For the skip decorators: run when promtool is there, or under CI (to
// fail). The reason is printed once for all the cases.
bool can_check(const char* cases) {
  static const bool run = [cases] {
    if (promtool() || under_ci()) return true;
    std::fprintf(stderr,
                 "[%s] skipped: promtool not found on PATH (Debian package prometheus: "
                 "apt-get install -y --no-install-recommends prometheus)\n",
                 cases);
    return false;
  }();
  return run;
}

struct Verdict {
  int status = -1;     // promtool's exit status
  std::string output;  // what it printed, stdout and stderr
};

Verdict promtool_check(const std::string& exposition) {
  REQUIRE_MESSAGE(promtool(),
                  "promtool is not installed, and CI is set: install the prometheus package");
  char path[] = "/tmp/mixlb-metrics-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, exposition.data(), exposition.size()) ==
          static_cast<ssize_t>(exposition.size()));
  ::close(fd);
  const std::string command = "'" + *promtool() + "' check metrics < '" + path + "' 2>&1";
  Verdict v;
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char chunk[4096];
  while (const std::size_t n = std::fread(chunk, 1, sizeof(chunk), pipe)) v.output.append(chunk, n);
  const int status = ::pclose(pipe);
  ::unlink(path);
  v.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return v;
}

constexpr const char* kCases = "promtool check metrics";

TEST_CASE("promtool accepts the metrics of a realistic node" * doctest::skip(!can_check(kCases))) {
  const Verdict v = promtool_check(render_metrics(test::realistic_figures()));
  INFO("promtool said: " << v.output);
  CHECK(v.status == 0);
  CHECK(v.output.empty());
}

TEST_CASE("promtool accepts them with parts missing and odd label values" *
          doctest::skip(!can_check(kCases))) {
  auto figures = test::realistic_figures();
  figures.conntrack.reset();
  figures.gossip.snapshot.reset();  // gossip did not answer
  figures.xdp_mode.reset();
  figures.app_health.push_back({"odd \"name\" with \\ and\nnewline \xff", true});
  const Verdict v = promtool_check(render_metrics(figures));
  INFO("promtool said: " << v.output);
  CHECK(v.status == 0);
  CHECK(v.output.empty());

  MetricsFigures bare;  // a node before its first tables: no VIPs, gossip off
  bare.node = "mix1";
  bare.version = "0.1.0";
  const Verdict b = promtool_check(render_metrics(bare));
  INFO("promtool said: " << b.output);
  CHECK(b.status == 0);
  CHECK(b.output.empty());
}

TEST_CASE("control: promtool refuses a counter without _total and a broken line" *
          doctest::skip(!can_check(kCases))) {
  const Verdict lint = promtool_check("# HELP foo Foo.\n# TYPE foo counter\nfoo 1\n");
  CHECK(lint.status != 0);
  CHECK(lint.output.find("_total") != std::string::npos);
  const Verdict broken = promtool_check("foo{bar=\"x} 1\n");
  CHECK(broken.status != 0);
}

}  // namespace
}  // namespace mixlb::metrics
