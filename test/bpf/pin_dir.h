#pragma once
// A pin directory on bpffs for one test, removed whatever the test's
// outcome. A machine without a bpffs on /sys/fs/bpf gets one, as the
// sidecar does it.
#include <unistd.h>

#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "kernel/bpffs.h"

namespace mixlb::test {

struct PinDir {
  std::string path = "/sys/fs/bpf/mixlb-test-" + std::to_string(::getpid());
  PinDir() {
    auto ready = ensure_bpffs(path);
    REQUIRE_MESSAGE(ready.has_value(), (ready ? "" : ready.error()));
  }
  ~PinDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  PinDir(const PinDir&) = delete;
  PinDir& operator=(const PinDir&) = delete;
};

}  // namespace mixlb::test
