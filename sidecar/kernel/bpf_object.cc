#include "kernel/bpf_object.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

namespace mixlb {

std::size_t percpu_stride(std::size_t value_size) { return (value_size + 7) & ~std::size_t{7}; }

int possible_cpus() {
  static const int n = libbpf_num_possible_cpus();
  return n;
}

std::vector<bpf_map*> shared_maps(const bpf_object* obj) {
  std::vector<bpf_map*> out;
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, obj) {
    if (!bpf_map__is_internal(map)) out.push_back(map);
  }
  return out;
}

bpf_map* find_map(const bpf_object* obj, std::string_view name) {
  for (bpf_map* map : shared_maps(obj))
    if (name == bpf_map__name(map)) return map;
  return nullptr;
}

DpResult<bool> check_pinned_maps(const bpf_object* obj, const std::string& pin_dir) {
  bool any = false;
  for (const bpf_map* map : shared_maps(obj)) {
    const std::string path = pin_dir + "/" + bpf_map__name(map);
    if (::access(path.c_str(), F_OK) != 0) {
      if (errno == ENOENT) continue;
      return datapath_failure("checking " + path, errno);
    }
    const int fd = bpf_obj_get(path.c_str());
    if (fd < 0) {
      const int err = errno;
      return datapath_failure("opening pinned map " + path + (err == EPERM || err == EACCES ? " (needs root or CAP_BPF)" : ""), err);
    }
    bpf_map_info info{};
    std::uint32_t len = sizeof(info);
    const int rc = bpf_obj_get_info_by_fd(fd, &info, &len);
    const int err = errno;
    ::close(fd);
    if (rc != 0) return datapath_failure("reading pinned map " + path, err);
    auto differs = [&](const char* what, std::uint32_t pinned, std::uint32_t wanted) -> DpResult<void> {
      if (pinned == wanted) return {};
      return datapath_failure(fmt::format("the map pinned at {} has {} {}, this configuration makes it {}: restore the "
                              "earlier size, or remove the pins with `mixlb cleanup` (the connection "
                              "table goes with them)",
                              path, what, pinned, wanted),
                  EEXIST);
    };
    for (auto r : {differs("type", info.type, bpf_map__type(map)),
                   differs("key size", info.key_size, bpf_map__key_size(map)),
                   differs("value size", info.value_size, bpf_map__value_size(map)),
                   differs("max_entries", info.max_entries, bpf_map__max_entries(map)),
                   differs("flags", info.map_flags, bpf_map__map_flags(map))}) {
      if (!r) return std::unexpected(r.error());
    }
    any = true;
  }
  return any;
}

DpResult<void> share_map(bpf_map* map, int fd, std::string_view who) {
  const std::string name = bpf_map__name(map);
  bpf_map_info info{};
  __u32 length = sizeof(info);
  if (int err = bpf_obj_get_info_by_fd(fd, &info, &length); err != 0)
    return datapath_failure(fmt::format("{}: reading map {}", who, name), err);
  if (int err = bpf_map__set_max_entries(map, info.max_entries); err != 0)
    return datapath_failure(fmt::format("{}: sizing map {}", who, name), err);
  if (int err = bpf_map__reuse_fd(map, fd); err != 0)
    return datapath_failure(fmt::format("{}: sharing map {}", who, name), err);
  return {};
}

DpResult<void> set_pin_paths(bpf_object* obj, const std::string& pin_dir) {
  for (bpf_map* map : shared_maps(obj)) {
    const std::string path = pin_dir + "/" + bpf_map__name(map);
    if (int err = bpf_map__set_pin_path(map, path.c_str()); err != 0)
      return datapath_failure("setting pin path " + path, err);
  }
  return {};
}

}  // namespace mixlb
