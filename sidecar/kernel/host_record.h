#pragma once
// What mixlb has changed on its node's host, kept in a file next to the
// instance lock (<run_dir>/<node>.host.json) so that the changes outlive the
// process that made them.
//
// A sidecar that stops for a restart leaves its data path in place: the
// pinned maps and link, the VIPs on lo, the sysctls it set, the neighbour
// entries it made for its peers. The next sidecar adopts all of that, and
// only the record can tell it which of those things mixlb made (and must
// remove one day) and which were there before (and must be left alone),
// and what each sysctl was before the first sidecar changed it. `mixlb
// leave` and `mixlb cleanup` put the host back as the record says.
//
// The file is JSON, written whole to a temporary file and renamed over the
// old one after every change, so a crash at any moment leaves either the old
// or the new record, never half of one.
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace mixlb {

struct HostRecord {
  static constexpr int kVersion = 1;

  std::string node;
  std::string interface;
  // The network namespace the changes were made in (the inode number of
  // /proc/self/ns/net): sysctls, VIPs and neighbour entries belong to it.
  std::uint64_t netns = 0;
  std::string pin_dir;              // the maps and the XDP link are pinned here
  bool created_pin_parent = false;  // mixlb made the bpffs directory above pin_dir

  struct Sysctl {
    std::string key;       // as SysctlKey::name() writes it
    std::string original;  // the value before mixlb first changed it
    friend bool operator==(const Sysctl&, const Sysctl&) = default;
  };
  std::vector<Sysctl> sysctls;
  std::vector<std::string> vips;        // "10.100.0.1/32": addresses mixlb put on lo
  std::vector<std::string> neighbours;  // peers' addresses whose entries mixlb made

  friend bool operator==(const HostRecord&, const HostRecord&) = default;

  const Sysctl* sysctl(std::string_view key) const;
  bool has_vip(std::string_view vip) const;
  bool has_neighbour(std::string_view address) const;
  // Each adds once and removes every copy; they say whether anything changed.
  bool add_sysctl(std::string key, std::string original);
  bool remove_sysctl(std::string_view key);
  bool add_vip(std::string vip);
  bool remove_vip(std::string_view vip);
  bool add_neighbour(std::string address);
  bool remove_neighbour(std::string_view address);
  // Nothing left to put back on the host (pins aside).
  bool host_clean() const { return sysctls.empty() && vips.empty() && neighbours.empty(); }
};

// <run_dir>/<node>.host.json
std::string host_record_path(std::string_view run_dir, std::string_view node);

// The inode number of this thread's network namespace (0 if it cannot be read).
std::uint64_t current_netns();

// nullopt when there is no record; the error says what is wrong with a file
// that exists but cannot be read or is not a record of this version.
std::expected<std::optional<HostRecord>, std::string> load_host_record(const std::string& path);
// Writes the record atomically, mode 0600.
std::error_code save_host_record(const std::string& path, const HostRecord& record);
// Removes the file; a missing file is not an error.
std::error_code remove_host_record(const std::string& path);

}  // namespace mixlb
