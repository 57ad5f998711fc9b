#include "kernel/instance_lock.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <system_error>

namespace mixlb {
namespace {

std::string errno_text(int error) { return std::error_code(error, std::system_category()).message(); }

// mkdir -p, mode 0700 for what it creates.
int make_dirs(const std::string& dir) {
  for (std::size_t at = dir.find('/', 1);; at = dir.find('/', at + 1)) {
    const std::string prefix = dir.substr(0, at);
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) return errno;
    if (at == std::string::npos) return 0;
  }
}

pid_t read_pid(int fd) {
  char buffer[32] = {};
  const ssize_t n = ::pread(fd, buffer, sizeof(buffer) - 1, 0);
  if (n <= 0) return 0;
  pid_t pid = 0;
  std::from_chars(buffer, buffer + n, pid);
  return pid;
}

}  // namespace

std::string instance_lock_path(std::string_view run_dir, std::string_view node) {
  return fmt::format("{}/{}.lock", run_dir, node);
}

std::expected<InstanceLock, LockRefused> InstanceLock::acquire(const std::string& run_dir,
                                                               std::string_view node) {
  const std::string path = instance_lock_path(run_dir, node);
  if (int err = make_dirs(run_dir); err != 0)
    return std::unexpected(LockRefused{fmt::format("cannot create {}: {}", run_dir, errno_text(err))});
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd)
    return std::unexpected(LockRefused{fmt::format("cannot open {}: {}", path, errno_text(errno))});
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK)
      return std::unexpected(LockRefused{fmt::format("cannot lock {}: {}", path, errno_text(err))});
    const pid_t holder = read_pid(fd.get());
    const std::string who = holder != 0 ? fmt::format("pid {}", holder) : std::string("pid unknown");
    return std::unexpected(LockRefused{
        fmt::format("another mixlb for node {} is running ({}; lock {})", node, who, path), holder});
  }
  const std::string pid = fmt::format("{}\n", ::getpid());
  if (::ftruncate(fd.get(), 0) != 0 ||
      ::pwrite(fd.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
    return std::unexpected(LockRefused{fmt::format("cannot write {}: {}", path, errno_text(errno))});
  return InstanceLock(std::move(fd), path);
}

}  // namespace mixlb
