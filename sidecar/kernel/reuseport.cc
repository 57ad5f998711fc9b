#include "kernel/reuseport.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/socket.h>

#include <cerrno>
#include <filesystem>
#include <vector>

#include "kernel/bpf_object.h"
#include "mixlb_reuseport.skel.h"

namespace mixlb {

namespace {
constexpr const char* kPinSubdir = "reuseport";
constexpr const char* kProgPinName = "mixlb_reuseport_prog";
}  // namespace

DpResult<std::unique_ptr<ReuseportSelector>> ReuseportSelector::load(const std::string& pin_dir,
                                                                     std::uint32_t flows) {
  std::unique_ptr<ReuseportSelector> self(new ReuseportSelector());
  self->skel_ = mixlb_reuseport__open();
  if (!self->skel_) return datapath_failure("opening the reuseport selector's BPF object", errno);
  auto* skel = self->skel_;
  if (int err = bpf_map__set_max_entries(skel->maps.mixlb_rp_flows, flows ? flows : MIXLB_RP_DEFAULT_FLOWS);
      err != 0)
    return datapath_failure("sizing the reuseport flow table", err);
  if (!pin_dir.empty()) {
    self->pin_dir_ = pin_dir + "/" + kPinSubdir;
    auto pinned = check_pinned_maps(skel->obj, self->pin_dir_);
    if (!pinned) return std::unexpected(pinned.error());
    std::error_code ec;
    std::filesystem::create_directories(self->pin_dir_, ec);
    if (ec) return std::unexpected(DatapathError{"creating pin directory " + self->pin_dir_, ec});
    if (auto set = set_pin_paths(skel->obj, self->pin_dir_); !set) return std::unexpected(set.error());
  }
  if (int err = mixlb_reuseport__load(skel); err != 0) {
    std::string what = "loading the reuseport selector";
    if (err == -EPERM || err == -EACCES) what += " (it needs root, or CAP_BPF and CAP_NET_ADMIN)";
    return datapath_failure(what, err);
  }
  if (!self->pin_dir_.empty()) {
    // The program is pinned beside its maps, for `bpftool` and for a
    // sidecar that must attach it again without loading (the groups hold
    // it by reference; the pin only names it).
    const std::string path = self->pin_dir_ + "/" + kProgPinName;
    ::unlink(path.c_str());
    if (int err = bpf_program__pin(skel->progs.mixlb_reuseport, path.c_str()); err != 0)
      return datapath_failure("pinning the reuseport selector at " + path, err);
  }
  return self;
}

ReuseportSelector::~ReuseportSelector() {
  if (skel_) mixlb_reuseport__destroy(skel_);
}

int ReuseportSelector::program_fd() const { return bpf_program__fd(skel_->progs.mixlb_reuseport); }

DpResult<void> ReuseportSelector::attach(int socket_fd) const {
  const int prog = program_fd();
  if (::setsockopt(socket_fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog, sizeof(prog)) != 0)
    return datapath_failure("attaching the reuseport selector to the socket's group (SO_ATTACH_REUSEPORT_EBPF)",
                            errno);
  return {};
}

DpResult<std::uint64_t> ReuseportSelector::put_socket(std::uint32_t index, int socket_fd) const {
  std::uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (::getsockopt(socket_fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) != 0)
    return datapath_failure("reading the socket's cookie (SO_COOKIE)", errno);
  const std::uint64_t fd = static_cast<std::uint64_t>(socket_fd);
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.mixlb_rp_socks), &index, &fd, BPF_ANY) != 0) {
    const int err = errno;
    std::string what = "putting the socket into the reuseport sockarray";
    if (err == EINVAL) what += " (a TCP socket must listen, a UDP one be bound, both with SO_REUSEPORT)";
    return datapath_failure(what, err);
  }
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.mixlb_rp_cookies), &index, &cookie, BPF_ANY) != 0)
    return datapath_failure("recording the socket's cookie", errno);
  return cookie;
}

DpResult<void> ReuseportSelector::remove_socket(std::uint32_t index) const {
  if (bpf_map_delete_elem(bpf_map__fd(skel_->maps.mixlb_rp_socks), &index) != 0 && errno != ENOENT)
    return datapath_failure("removing a socket from the reuseport sockarray", errno);
  const std::uint64_t none = 0;
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.mixlb_rp_cookies), &index, &none, BPF_ANY) != 0)
    return datapath_failure("clearing a socket's cookie", errno);
  return {};
}

DpResult<std::optional<std::uint64_t>> ReuseportSelector::socket_at(std::uint32_t index) const {
  std::uint64_t cookie = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.mixlb_rp_socks), &index, &cookie) != 0) {
    if (errno == ENOENT) return std::nullopt;
    return datapath_failure("reading the reuseport sockarray", errno);
  }
  return cookie;
}

DpResult<void> ReuseportSelector::set_table(std::uint32_t table, const mixlb_rp_table& workers) const {
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.mixlb_rp_tables), &table, &workers, BPF_ANY) != 0)
    return datapath_failure("writing a reuseport worker table", errno);
  return {};
}

DpResult<void> ReuseportSelector::set_service(const mixlb_rp_key& key, const mixlb_rp_service& service) const {
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.mixlb_rp_services), &key, &service, BPF_ANY) != 0)
    return datapath_failure("writing a reuseport service", errno);
  return {};
}

DpResult<void> ReuseportSelector::remove_service(const mixlb_rp_key& key) const {
  if (bpf_map_delete_elem(bpf_map__fd(skel_->maps.mixlb_rp_services), &key) != 0 && errno != ENOENT)
    return datapath_failure("removing a reuseport service", errno);
  return {};
}

DpResult<std::optional<mixlb_rp_service>> ReuseportSelector::service(const mixlb_rp_key& key) const {
  mixlb_rp_service out{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.mixlb_rp_services), &key, &out) != 0) {
    if (errno == ENOENT) return std::nullopt;
    return datapath_failure("reading a reuseport service", errno);
  }
  return out;
}

DpResult<ReuseportStats> ReuseportSelector::stats(std::uint32_t table) const {
  const std::size_t stride = percpu_stride(sizeof(mixlb_rp_stats));
  std::vector<unsigned char> values(stride * possible_cpus());
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.mixlb_rp_stats), &table, values.data()) != 0)
    return datapath_failure("reading the reuseport counters", errno);
  ReuseportStats out;
  for (int cpu = 0; cpu < possible_cpus(); ++cpu) {
    const auto* v = reinterpret_cast<const mixlb_rp_stats*>(values.data() + stride * cpu);
    out.selected += v->selected;
    out.migrated += v->migrated;
    out.sticky += v->sticky;
    out.fallback += v->fallback;
  }
  return out;
}

DpResult<void> ReuseportSelector::reset_stats(std::uint32_t table) const {
  std::vector<unsigned char> zero(percpu_stride(sizeof(mixlb_rp_stats)) * possible_cpus(), 0);
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.mixlb_rp_stats), &table, zero.data(), BPF_ANY) != 0)
    return datapath_failure("zeroing the reuseport counters", errno);
  return {};
}

DpResult<std::map<std::uint32_t, std::size_t>> ReuseportSelector::flows_by_table() const {
  const int fd = bpf_map__fd(skel_->maps.mixlb_rp_flows);
  mixlb_rp_flow_key key{}, next{};
  const mixlb_rp_flow_key* prev = nullptr;
  std::map<std::uint32_t, std::size_t> out;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    mixlb_rp_flow flow{};
    if (bpf_map_lookup_elem(fd, &next, &flow) == 0) ++out[flow.table];
    key = next;
    prev = &key;
  }
  if (errno != ENOENT) return datapath_failure("walking the reuseport flow table", errno);
  return out;
}

DpResult<std::size_t> ReuseportSelector::flows_of(std::uint32_t table) const {
  auto all = flows_by_table();
  if (!all) return std::unexpected(all.error());
  auto it = all->find(table);
  return it == all->end() ? 0 : it->second;
}

void ReuseportSelector::unpin() {
  if (pin_dir_.empty()) return;
  for (bpf_map* map : shared_maps(skel_->obj)) bpf_map__unpin(map, nullptr);
  bpf_program__unpin(skel_->progs.mixlb_reuseport, (pin_dir_ + "/" + kProgPinName).c_str());
  std::error_code ec;
  std::filesystem::remove(pin_dir_, ec);
}

}  // namespace mixlb
