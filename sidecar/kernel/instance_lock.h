#pragma once
// One sidecar per node. Two processes with the same node name would share
// the pins, the XDP link, the VIPs and the sysctls, and the second one's
// start or stop would pull the data path out from under the first. The
// lock is an flock(2) on <run_dir>/<node>.lock, taken before anything
// touches the kernel or the host; it holds the owner's pid so a refused
// start can name it. The kernel drops the lock when its owner exits, however
// it exits, so a crash never leaves a stale lock behind (the file stays;
// its content is only informative).
#include <expected>
#include <string>
#include <string_view>
#include <sys/types.h>

#include "kernel/unique_fd.h"

namespace mixlb {

struct LockRefused {
  std::string message;  // "another mixlb for node mix1 is running (pid 4242; lock /run/mixlb/mix1.lock)"
  pid_t holder = 0;     // 0 when the file names none
};

class InstanceLock {
 public:
  // Creates run_dir (0700) if missing, then takes the lock without waiting.
  static std::expected<InstanceLock, LockRefused> acquire(const std::string& run_dir,
                                                          std::string_view node);

  InstanceLock(InstanceLock&&) = default;
  InstanceLock& operator=(InstanceLock&&) = default;

  const std::string& path() const { return path_; }

 private:
  InstanceLock(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  UniqueFd fd_;
  std::string path_;
};

// <run_dir>/<node>.lock
std::string instance_lock_path(std::string_view run_dir, std::string_view node);

}  // namespace mixlb
