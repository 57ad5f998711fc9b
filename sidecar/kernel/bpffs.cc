#include "kernel/bpffs.h"

#include <fmt/format.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/stat.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

namespace mixlb {
namespace {

std::string errno_text(int error) { return std::error_code(error, std::system_category()).message(); }

bool below(const std::string& path, std::string_view root) {
  return path == root || (path.size() > root.size() && path.starts_with(root) && path[root.size()] == '/');
}

// The deepest existing directory on the way to `path`.
std::string existing_ancestor(std::string path) {
  struct stat st {};
  while (!path.empty() && ::stat(path.c_str(), &st) != 0) {
    const auto slash = path.rfind('/');
    path = slash == 0 ? "/" : slash == std::string::npos ? "" : path.substr(0, slash);
  }
  return path.empty() ? "." : path;
}

}  // namespace

bool on_bpffs(const std::string& path) {
  struct statfs fs {};
  return ::statfs(path.c_str(), &fs) == 0 && static_cast<unsigned long>(fs.f_type) == BPF_FS_MAGIC;
}

std::expected<BpffsReady, std::string> ensure_bpffs(const std::string& pin_dir) {
  BpffsReady ready;
  const std::string dir = std::filesystem::path(pin_dir).lexically_normal().string();
  if (below(dir, kBpffsRoot) && !on_bpffs(kBpffsRoot)) {
    if (::mount("bpf", kBpffsRoot, "bpf", 0, "mode=0700") != 0) {
      const int err = errno;
      const char* why = err == EPERM || err == EACCES
                            ? " (mounting needs root or CAP_SYS_ADMIN)"
                            : err == EROFS ? " (/sys is read-only here: mount the host's /sys/fs/bpf into the container)"
                                           : "";
      return std::unexpected(fmt::format(
          "no bpffs is mounted on {} and mounting one failed: {}{}; mount it first "
          "(mount -t bpf bpf {}) or set node.bpffs_dir to a directory on a bpffs",
          kBpffsRoot, errno_text(err), why, kBpffsRoot));
    }
    ready.mounted = true;
  }
  const std::string ancestor = existing_ancestor(dir);
  if (!on_bpffs(ancestor))
    return std::unexpected(fmt::format(
        "bpffs_dir {} is not on a bpffs ({} is on another filesystem); pins need one: mount a bpffs "
        "there (mount -t bpf bpf DIR) or choose a directory below {}",
        pin_dir, ancestor, kBpffsRoot));
  return ready;
}

}  // namespace mixlb
