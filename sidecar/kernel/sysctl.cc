#include "kernel/sysctl.h"
#include "kernel/unique_fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace mixlb {

namespace {

constexpr std::string_view kProcSys = "/proc/sys/";

std::error_code errno_code(int value) { return {value, std::system_category()}; }

bool valid_component(std::string_view part) {
  return !part.empty() && part != "." && part != ".." &&
         part.find_first_of(std::string_view("/\0", 2)) == std::string_view::npos;
}

std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = text.find(separator, start);
    parts.emplace_back(text.substr(start, end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return parts;
}

// Multi-valued parameters read back with tabs ("4096\t131072\t6291456")
// but may be written with spaces; compare them word by word.
std::string normalize(std::string_view value) {
  std::string out;
  bool gap = false;
  for (char c : value) {
    if (c == ' ' || c == '\t' || c == '\n') {
      gap = !out.empty();
      continue;
    }
    if (gap) out.push_back(' ');
    gap = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace

bool same_sysctl_value(std::string_view a, std::string_view b) { return normalize(a) == normalize(b); }

std::expected<SysctlKey, std::error_code> SysctlKey::parse(std::string_view text) {
  const char separator = text.find('/') != std::string_view::npos ? '/' : '.';
  return from_components(split(text, separator));
}

std::expected<SysctlKey, std::error_code> SysctlKey::from_components(
    std::vector<std::string> components) {
  if (components.empty()) return std::unexpected(errno_code(EINVAL));
  for (const auto& part : components) {
    if (!valid_component(part)) return std::unexpected(errno_code(EINVAL));
  }
  SysctlKey key;
  key.components_ = std::move(components);
  return key;
}

std::expected<SysctlKey, std::error_code> SysctlKey::interface_conf(std::string_view family,
                                                                    std::string_view interface,
                                                                    std::string_view name) {
  if (family != "ipv4" && family != "ipv6") return std::unexpected(errno_code(EINVAL));
  return from_components(
      {"net", std::string(family), "conf", std::string(interface), std::string(name)});
}

std::string SysctlKey::path() const {
  std::string path(kProcSys);
  for (std::size_t i = 0; i < components_.size(); ++i) {
    if (i != 0) path.push_back('/');
    path += components_[i];
  }
  return path;
}

std::string SysctlKey::name() const {
  const bool dotted_part = std::any_of(components_.begin(), components_.end(), [](const auto& p) {
    return p.find('.') != std::string::npos;
  });
  const char separator = dotted_part ? '/' : '.';
  std::string name;
  for (std::size_t i = 0; i < components_.size(); ++i) {
    if (i != 0) name.push_back(separator);
    name += components_[i];
  }
  return name;
}

std::expected<std::string, std::error_code> read_sysctl(const SysctlKey& key) {
  const UniqueFd fd(::open(key.path().c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return std::unexpected(errno_code(errno));
  std::string value;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(errno_code(errno));
    }
    if (n == 0) break;
    value.append(buffer, static_cast<std::size_t>(n));
  }
  while (!value.empty() && value.back() == '\n') value.pop_back();
  return value;
}

std::error_code write_sysctl(const SysctlKey& key, std::string_view value) {
  const UniqueFd fd(::open(key.path().c_str(), O_WRONLY | O_CLOEXEC));
  if (fd.get() < 0) return errno_code(errno);
  for (;;) {
    const ssize_t n = ::write(fd.get(), value.data(), value.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_code(errno);
    }
    // /proc/sys takes a value in one write; a short one left it half-set.
    if (static_cast<std::size_t>(n) != value.size()) return errno_code(EIO);
    return {};
  }
}

}  // namespace mixlb
