#pragma once
// Kernel parameters under /proc/sys: keys, reading and writing, and the
// SysctlOps seam HostSetup changes them through (it records the previous
// values, so a leave puts the node's settings back as it found them).
//
// Keys are written the way sysctl(8) writes them, "net.ipv4.conf.all.arp_ignore".
// A dotted key cannot name an interface whose own name has a dot
// ("eth0.100"), so, as in sysctl(8), a key containing a slash is split at
// slashes only ("net/ipv4/conf/eth0.100/forwarding"), and
// SysctlKey::interface_conf builds such keys from their parts.
//
// net.* parameters belong to a network namespace: the one of the calling
// thread, because /proc/sys/net resolves against it when the file is opened.
#include <cstddef>
#include <expected>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace mixlb {

class SysctlKey {
 public:
  // EINVAL for an empty key, an empty component, "." or "..", or a NUL.
  static std::expected<SysctlKey, std::error_code> parse(std::string_view text);
  static std::expected<SysctlKey, std::error_code> from_components(
      std::vector<std::string> components);
  // net.<family>.conf.<interface>.<name>; family is "ipv4" or "ipv6".
  static std::expected<SysctlKey, std::error_code> interface_conf(std::string_view family,
                                                                  std::string_view interface,
                                                                  std::string_view name);

  // "/proc/sys/net/ipv4/conf/eth0.100/forwarding".
  std::string path() const;
  // The key for messages: dotted, or slash-separated when a component has a dot.
  std::string name() const;
  const std::vector<std::string>& components() const { return components_; }

  friend bool operator==(const SysctlKey&, const SysctlKey&) = default;

 private:
  std::vector<std::string> components_;
};

// The value without its trailing newline.
std::expected<std::string, std::error_code> read_sysctl(const SysctlKey& key);
// Writes `value` in one write(2), as /proc/sys requires; the kernel's verdict
// on the value (EINVAL, ERANGE, ...) comes back as the error.
std::error_code write_sysctl(const SysctlKey& key, std::string_view value);

// Reading and writing parameters, as an interface: HostSetup takes one, so
// its start, stop and failure paths are unit-tested with a fake.
class SysctlOps {
 public:
  virtual ~SysctlOps() = default;
  virtual std::expected<std::string, std::error_code> read(const SysctlKey& key) = 0;
  virtual std::error_code write(const SysctlKey& key, std::string_view value) = 0;
};

// The real parameters under /proc/sys, through read_sysctl and write_sysctl.
class ProcSysctls final : public SysctlOps {
 public:
  std::expected<std::string, std::error_code> read(const SysctlKey& key) override {
    return read_sysctl(key);
  }
  std::error_code write(const SysctlKey& key, std::string_view value) override {
    return write_sysctl(key, value);
  }
};

// Two values of a parameter are the same setting: multi-valued parameters
// read back with tabs ("4096\t131072\t6291456") but may be written with
// spaces, so they are compared word by word.
bool same_sysctl_value(std::string_view a, std::string_view b);

}  // namespace mixlb
