// Tests for sidecar/sysctl: key parsing (including interface names with
// dots), reading, writing, and — on the real /proc/sys — the order in which
// HostSetup and restore_host put parameters back. Writes happen
// only to net.* parameters inside a private network namespace that the test
// makes and that vanishes with its thread, so the host is never touched;
// without the privilege to make one, those cases report skipped.
#include <doctest/doctest.h>
#include <sched.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <string>
#include <thread>

#include "kernel/host_record.h"
#include "kernel/host_setup.h"
#include "kernel/netlink.h"
#include "kernel/sysctl.h"
#include "netns_probe.h"

namespace mixlb {
namespace {

const bool kCanUnshare = test::can_unshare_netns("sysctl namespace cases");
bool can_unshare_netns() { return kCanUnshare; }

// Runs `body` on a thread that has its own network namespace, so the net.*
// parameters it sees and writes are private to it.
void in_private_netns(const std::function<void()>& body) {
  std::exception_ptr failure;
  std::thread([&] {
    try {
      REQUIRE(::unshare(CLONE_NEWNET) == 0);
      body();
    } catch (...) {
      failure = std::current_exception();
    }
  }).join();
  if (failure) std::rethrow_exception(failure);
}

SysctlKey key(std::string_view text) {
  auto parsed = SysctlKey::parse(text);
  REQUIRE(parsed.has_value());
  return *parsed;
}

std::string read(std::string_view text) {
  auto value = read_sysctl(key(text));
  REQUIRE(value.has_value());
  return *value;
}

TEST_SUITE("sysctl") {
  TEST_CASE("dotted keys map to /proc/sys paths") {
    const auto k = key("net.ipv4.conf.all.arp_ignore");
    CHECK(k.path() == "/proc/sys/net/ipv4/conf/all/arp_ignore");
    CHECK(k.name() == "net.ipv4.conf.all.arp_ignore");
    CHECK(k.components().size() == 5);
  }

  TEST_CASE("an interface name with a dot needs the slash form or interface_conf") {
    const auto slashed = key("net/ipv4/conf/eth0.100/forwarding");
    CHECK(slashed.path() == "/proc/sys/net/ipv4/conf/eth0.100/forwarding");
    CHECK(slashed.components()[3] == "eth0.100");
    CHECK(slashed.name() == "net/ipv4/conf/eth0.100/forwarding");  // dots would be ambiguous

    const auto built = SysctlKey::interface_conf("ipv4", "eth0.100", "forwarding");
    REQUIRE(built.has_value());
    CHECK(*built == slashed);
    // The dotted form splits the name, which is why the other two exist.
    CHECK(key("net.ipv4.conf.eth0.100.forwarding").components().size() == 6);

    const auto v6 = SysctlKey::interface_conf("ipv6", "lo", "disable_ipv6");
    REQUIRE(v6.has_value());
    CHECK(v6->path() == "/proc/sys/net/ipv6/conf/lo/disable_ipv6");
  }

  TEST_CASE("malformed keys are EINVAL") {
    for (const char* bad : {"", ".", "net..ipv4", ".net.ipv4", "net.ipv4.", "net/../../etc/passwd",
                            "net/./ipv4", "/net/ipv4", "net/ipv4/"}) {
      INFO("key: '", bad, "'");
      const auto parsed = SysctlKey::parse(bad);
      REQUIRE_FALSE(parsed.has_value());
      CHECK(parsed.error() == std::errc::invalid_argument);
    }
    CHECK(SysctlKey::parse(std::string_view("net.ip\0v4", 9)).error() ==
          std::errc::invalid_argument);
    CHECK(SysctlKey::interface_conf("ipv5", "eth0", "forwarding").error() ==
          std::errc::invalid_argument);
    CHECK(SysctlKey::interface_conf("ipv4", "..", "forwarding").error() ==
          std::errc::invalid_argument);
    CHECK(SysctlKey::from_components({}).error() == std::errc::invalid_argument);
  }

  TEST_CASE("reading: the value without its newline, ENOENT for no such key") {
    CHECK(read("kernel.ostype") == "Linux");
    CHECK(read_sysctl(key("kernel.no_such_parameter_here")).error() ==
          std::errc::no_such_file_or_directory);
  }

  TEST_CASE("writing a per-namespace parameter" * doctest::skip(!can_unshare_netns())) {
    in_private_netns([] {
      const auto k = key("net.ipv4.conf.all.arp_ignore");
      const std::string before = read("net.ipv4.conf.all.arp_ignore");
      const std::string other = before == "2" ? "1" : "2";
      REQUIRE_FALSE(write_sysctl(k, other));
      CHECK(read("net.ipv4.conf.all.arp_ignore") == other);
      // The kernel's verdict on a bad value comes back as the error.
      CHECK(write_sysctl(k, "banana") == std::errc::invalid_argument);
      CHECK(read("net.ipv4.conf.all.arp_ignore") == other);
      REQUIRE_FALSE(write_sysctl(k, before));
      CHECK(read("net.ipv4.conf.all.arp_ignore") == before);
      CHECK(write_sysctl(key("net.ipv4.no_such_parameter"), "1") ==
            std::errc::no_such_file_or_directory);
    });
  }

  TEST_CASE("a failed start and a leave restore the real parameters, interacting keys included" *
            doctest::skip(!can_unshare_netns())) {
    in_private_netns([] {
      // Writing conf.all.forwarding also writes conf.default.forwarding (and
      // every interface's). Restoring oldest-first would leave default wrong.
      REQUIRE_FALSE(write_sysctl(key("net.ipv4.conf.all.forwarding"), "0"));
      REQUIRE(read("net.ipv4.conf.default.forwarding") == "0");
      const std::string ignore = read("net.ipv4.conf.all.arp_ignore");
      HostPlan plan;
      plan.sysctls = {{key("net.ipv4.conf.all.forwarding"), "1"},
                      {key("net.ipv4.conf.default.forwarding"), "0"},
                      {key("net.ipv4.conf.all.arp_ignore"), ignore == "1" ? "2" : "1"}};
      ProcSysctls sysctls;
      auto nl = RtNetlink::open();
      REQUIRE(nl.has_value());
      for (const bool leave : {false, true}) {
        CAPTURE(leave);
        HostRecord record;
        HostSetup setup(sysctls, *nl, record, [] {});
        setup.apply(plan);
        REQUIRE(read("net.ipv4.conf.all.forwarding") == "1");
        REQUIRE(read("net.ipv4.conf.default.forwarding") == "0");
        CHECK(record.sysctls.size() == 3);
        if (leave)
          CHECK(restore_host(record, sysctls, *nl, [] {}).empty());
        else
          setup.undo_own();
        CHECK(record.host_clean());
        CHECK(read("net.ipv4.conf.all.forwarding") == "0");
        CHECK(read("net.ipv4.conf.default.forwarding") == "0");
        CHECK(read("net.ipv4.conf.all.arp_ignore") == ignore);
      }
      // A bad value is the kernel's refusal, and nothing stays changed.
      HostRecord record;
      HostSetup setup(sysctls, *nl, record, [] {});
      HostPlan bad;
      bad.sysctls = {{key("net.ipv4.conf.all.forwarding"), "1"},
                     {key("net.ipv4.conf.all.arp_ignore"), "banana"}};
      CHECK_THROWS_WITH_AS(setup.apply(bad),
                           "setting sysctl net.ipv4.conf.all.arp_ignore to banana: Invalid argument",
                           HostSetupError);
      CHECK(read("net.ipv4.conf.all.forwarding") == "0");
      CHECK(record.host_clean());
    });
  }

  TEST_CASE("an interface whose name has a dot" * doctest::skip(!can_unshare_netns())) {
    in_private_netns([] {
      auto nl = RtNetlink::open();
      REQUIRE(nl.has_value());
      REQUIRE_FALSE(nl->create_veth("mx.10", "mx.11"));
      const auto k = SysctlKey::interface_conf("ipv4", "mx.10", "forwarding");
      REQUIRE(k.has_value());
      CHECK(k->name() == "net/ipv4/conf/mx.10/forwarding");
      const std::string before = read_sysctl(*k).value();
      ProcSysctls sysctls;
      HostRecord record;
      HostPlan plan;
      plan.sysctls = {{*k, before == "1" ? "0" : "1"}};
      HostSetup(sysctls, *nl, record, [] {}).apply(plan);
      CHECK(read_sysctl(*k).value() != before);
      CHECK(read("net/ipv4/conf/mx.11/forwarding") == before);  // the peer is untouched
      // The record names it so that it parses back to the same key.
      CHECK(restore_host(record, sysctls, *nl, [] {}).empty());
      CHECK(read_sysctl(*k).value() == before);
    });
  }

}  // TEST_SUITE

}  // namespace
}  // namespace mixlb
