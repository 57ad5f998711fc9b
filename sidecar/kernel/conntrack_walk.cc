#include "kernel/conntrack_walk.h"

#include <bpf/bpf.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace mixlb {
namespace {

std::unexpected<DatapathError> fail(std::string what, int err) {
  // libbpf returns -errno; the raw calls leave it in errno.
  if (err < 0) err = -err;
  if (err == 0) err = EIO;
  return std::unexpected(DatapathError{std::move(what), std::error_code(err, std::generic_category())});
}

}  // namespace

std::uint64_t coarse_now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

DpResult<bpf_map_info> conntrack_info(int fd, const std::string& what) {
  bpf_map_info info{};
  __u32 length = sizeof(info);
  if (const int rc = bpf_obj_get_info_by_fd(fd, &info, &length); rc != 0)
    return fail("reading the map information of " + what, rc);
  if (info.type != BPF_MAP_TYPE_LRU_HASH || info.key_size != sizeof(mixlb_flow_key) ||
      info.value_size != sizeof(mixlb_ct_value)) {
    return std::unexpected(DatapathError{
        what + " is not a connection table (type " + std::to_string(info.type) + ", key " +
            std::to_string(info.key_size) + " bytes, value " + std::to_string(info.value_size) +
            " bytes)",
        std::make_error_code(std::errc::invalid_argument)});
  }
  return info;
}

DpResult<UniqueFd> open_pinned_conntrack(const std::string& pin_dir) {
  const std::string path = pin_dir + "/mixlb_ct";
  UniqueFd fd(bpf_obj_get(path.c_str()));
  if (!fd) {
    const int err = errno;
    return fail("opening the connection table pinned at " + path +
                    (err == EPERM || err == EACCES ? " (needs root or CAP_BPF)" : ""),
                err);
  }
  auto info = conntrack_info(fd.get(), path);
  if (!info) return std::unexpected(info.error());
  return fd;
}

DpResult<void> walk_conntrack(int fd, std::uint32_t batch,
                              const std::function<void(const mixlb_flow_key&, const mixlb_ct_value&)>& visit) {
  batch = std::max<std::uint32_t>(batch, 1);
  std::vector<mixlb_flow_key> keys(batch);
  std::vector<mixlb_ct_value> values(batch);
  // The kernel's position in the hash table between calls: opaque, at most
  // a key's size.
  alignas(8) unsigned char position[sizeof(mixlb_flow_key)] = {};
  alignas(8) unsigned char next[sizeof(mixlb_flow_key)] = {};
  bool first = true;
  const bpf_map_batch_opts opts{.sz = sizeof(bpf_map_batch_opts), .elem_flags = 0, .flags = 0};
  for (;;) {
    __u32 count = batch;
    const int rc = bpf_map_lookup_batch(fd, first ? nullptr : position, next, keys.data(),
                                        values.data(), &count, &opts);
    const int err = rc == 0 ? 0 : errno;
    // The entries of the last call arrive together with ENOENT.
    for (__u32 i = 0; i < count; ++i) visit(keys[i], values[i]);
    if (rc != 0 && err == ENOENT) return {};
    if (rc != 0 && err == ENOSPC && count == 0) {
      // One hash bucket holds more entries than a batch: read it again with
      // room for all of them.
      batch *= 2;
      keys.resize(batch);
      values.resize(batch);
      continue;
    }
    if (rc != 0) return fail("walking the connection table", err);
    std::memcpy(position, next, sizeof(position));
    first = false;
  }
}

}  // namespace mixlb
