#include "kernel/datapath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "flow_hash.h"
#include "kernel/bpf_object.h"
#include "kernel/bpf_test_run.h"
#include "mixlb_xdp.skel.h"

namespace mixlb {
namespace {

DatapathError error_from(std::string what, int err) {
  // libbpf returns -errno; raw syscalls leave it in errno.
  if (err < 0) err = -err;
  if (err == 0) err = EIO;
  return DatapathError{std::move(what), std::error_code(err, std::generic_category())};
}

std::unexpected<DatapathError> fail(std::string what, int err) { return datapath_failure(std::move(what), err); }

constexpr const char* kLinkPinName = "xdp_link";

// Maps of earlier versions that this one no longer has; only transient
// state was in them. mixlb_ct_new: the half-open LRU, now mixlb_half_open.
constexpr const char* kRetiredMaps[] = {"mixlb_ct_new"};

// Walks every key of a hash map with BPF_MAP_GET_NEXT_KEY.
template <typename Key, typename Fn>
DpResult<void> for_each_key(int fd, const char* map_name, Fn&& fn) {
  Key key{}, next{};
  const Key* prev = nullptr;
  while (true) {
    if (bpf_map_get_next_key(fd, prev, &next) != 0) {
      if (errno == ENOENT) return {};
      return fail(std::string("iterating ") + map_name, errno);
    }
    key = next;
    fn(key);
    prev = &key;
  }
}

}  // namespace

std::string DatapathError::message() const { return what + ": " + code.message(); }

std::uint64_t VipCounters::dropped() const {
  std::uint64_t total = 0;
  for (auto d : drops) total += d;
  return total;
}

std::string_view to_string(XdpMode mode) {
  switch (mode) {
    case XdpMode::kAuto:
      return "auto";
    case XdpMode::kNative:
      return "native";
    case XdpMode::kGeneric:
      return "generic";
  }
  return "unknown";
}

std::string_view to_string(AttachMode mode) {
  return mode == AttachMode::kNative ? "native" : "generic";
}

// ---------------------------------------------------------------------------
// DatapathMaps

DatapathMaps::DatapathMaps(const mixlb_xdp& skel, std::uint32_t ring_size, std::uint32_t max_nodes)
    : vips_fd_(bpf_map__fd(skel.maps.mixlb_vips)),
      maglev_fd_(bpf_map__fd(skel.maps.mixlb_maglev)),
      ct_fd_(bpf_map__fd(skel.maps.mixlb_ct)),
      nodes_fd_(bpf_map__fd(skel.maps.mixlb_nodes)),
      peer_macs_fd_(bpf_map__fd(skel.maps.mixlb_peer_macs)),
      vip_stats_fd_(bpf_map__fd(skel.maps.mixlb_vip_stats)),
      vip_node_fd_(bpf_map__fd(skel.maps.mixlb_vip_node)),
      counters_fd_(bpf_map__fd(skel.maps.mixlb_counters)),
      drops_fd_(bpf_map__fd(skel.maps.mixlb_drops)),
      fib_rets_fd_(bpf_map__fd(skel.maps.mixlb_fib_rets)),
      settings_fd_(bpf_map__fd(skel.maps.mixlb_settings)),
      vip_filter_fd_(bpf_map__fd(skel.maps.mixlb_vip_filter)),
      peer_filter_fd_(bpf_map__fd(skel.maps.mixlb_peer_filter)),
      origins_fd_(bpf_map__fd(skel.maps.mixlb_origins)),
      half_open_fd_(bpf_map__fd(skel.maps.mixlb_half_open)),
      ct_cache_fd_(bpf_map__fd(skel.maps.mixlb_ct_cache)),
      half_open_slots_(bpf_map__max_entries(skel.maps.mixlb_half_open)),
      ring_size_(ring_size),
      max_nodes_(max_nodes) {}

DpResult<std::uint32_t> DatapathMaps::publish_vip(const mixlb_vip_key& key, std::uint32_t vip_id,
                                                  std::span<const std::uint32_t> table) {
  if (table.size() != ring_size_)
    return fail("publish_vip: table has " + std::to_string(table.size()) + " slots, ring has " +
                    std::to_string(ring_size_),
                EINVAL);
  auto current = vip(key);
  if (!current) return std::unexpected(current.error());
  mixlb_vip_value value{};
  value.vip_id = vip_id;
  value.active_half = 0;
  if (*current && (*current)->vip_id == vip_id) value.active_half = ((*current)->active_half & 1) ^ 1;

  // Fill the inactive half with one batched update.
  const std::uint32_t base = (vip_id * MIXLB_RING_HALVES + value.active_half) * ring_size_;
  std::vector<std::uint32_t> keys(ring_size_);
  for (std::uint32_t i = 0; i < ring_size_; ++i) keys[i] = base + i;
  std::uint32_t count = ring_size_;
  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = 0, .flags = 0);
  if (bpf_map_update_batch(maglev_fd_, keys.data(), table.data(), &count, &opts) != 0)
    return fail("writing Maglev table of VIP " + std::to_string(vip_id), errno);

  // A new VIP's address enters the filter before its entry goes live.
  if (!*current) {
    if (auto r = sync_vip_filter(&key); !r) return std::unexpected(r.error());
  }
  // The switch: one update of the VIP entry.
  if (bpf_map_update_elem(vips_fd_, &key, &value, BPF_ANY) != 0)
    return fail("updating VIP " + std::to_string(vip_id), errno);
  return value.active_half;
}

DpResult<void> DatapathMaps::remove_vip(const mixlb_vip_key& key) {
  if (bpf_map_delete_elem(vips_fd_, &key) != 0 && errno != ENOENT)
    return fail("removing VIP", errno);
  return sync_vip_filter(nullptr);
}

DpResult<std::optional<mixlb_vip_value>> DatapathMaps::vip(const mixlb_vip_key& key) const {
  mixlb_vip_value value{};
  if (bpf_map_lookup_elem(vips_fd_, &key, &value) == 0) return value;
  if (errno == ENOENT) return std::optional<mixlb_vip_value>{};
  return fail("looking up VIP", errno);
}

DpResult<std::vector<std::pair<mixlb_vip_key, mixlb_vip_value>>> DatapathMaps::vips() const {
  std::vector<mixlb_vip_key> keys;
  auto walked = for_each_key<mixlb_vip_key>(vips_fd_, "mixlb_vips",
                                            [&](const mixlb_vip_key& k) { keys.push_back(k); });
  if (!walked) return std::unexpected(walked.error());
  std::vector<std::pair<mixlb_vip_key, mixlb_vip_value>> out;
  for (const auto& k : keys) {
    auto v = vip(k);
    if (!v) return std::unexpected(v.error());
    if (*v) out.emplace_back(k, **v);
  }
  return out;
}

DpResult<std::vector<std::uint32_t>> DatapathMaps::live_table(const mixlb_vip_key& key) const {
  auto v = vip(key);
  if (!v) return std::unexpected(v.error());
  if (!*v) return fail("live_table: no such VIP", ENOENT);
  const std::uint32_t base = ((*v)->vip_id * MIXLB_RING_HALVES + ((*v)->active_half & 1)) * ring_size_;
  std::vector<std::uint32_t> values(ring_size_);
  // Diagnostics and tests only, so one lookup per slot is fine.
  for (std::uint32_t i = 0; i < ring_size_; ++i) {
    const std::uint32_t index = base + i;
    if (bpf_map_lookup_elem(maglev_fd_, &index, &values[i]) != 0)
      return fail("reading Maglev slot", errno);
  }
  return values;
}

DpResult<void> DatapathMaps::set_node(std::uint32_t node_id, const mixlb_node& node) {
  if (bpf_map_update_elem(nodes_fd_, &node_id, &node, BPF_ANY) != 0)
    return fail("writing node " + std::to_string(node_id), errno);
  return {};
}

DpResult<void> DatapathMaps::remove_node(std::uint32_t node_id) {
  if (bpf_map_delete_elem(nodes_fd_, &node_id) != 0 && errno != ENOENT)
    return fail("removing node " + std::to_string(node_id), errno);
  return {};
}

DpResult<std::optional<mixlb_node>> DatapathMaps::node(std::uint32_t node_id) const {
  mixlb_node value{};
  if (bpf_map_lookup_elem(nodes_fd_, &node_id, &value) == 0) return value;
  if (errno == ENOENT) return std::optional<mixlb_node>{};
  return fail("looking up node " + std::to_string(node_id), errno);
}

DpResult<std::vector<std::uint32_t>> DatapathMaps::node_ids() const {
  std::vector<std::uint32_t> ids;
  auto walked =
      for_each_key<std::uint32_t>(nodes_fd_, "mixlb_nodes", [&](std::uint32_t k) { ids.push_back(k); });
  if (!walked) return std::unexpected(walked.error());
  return ids;
}

// The filter bit of a MAC: its bytes as the first words of a zeroed key.
static std::uint32_t mac_filter_bit(const mixlb_mac& mac) {
  std::uint32_t words[4] = {};
  std::memcpy(words, mac.addr, sizeof(mac.addr));
  return mixlb_filter_bit(words);
}

static DpResult<void> write_filter(int fd, const std::vector<std::uint32_t>& bits, const char* what) {
  mixlb_filter filter{};
  for (auto bit : bits) filter.words[(bit / 64) % MIXLB_FILTER_WORDS] |= std::uint64_t{1} << (bit % 64);
  const std::uint32_t zero = 0;
  if (bpf_map_update_elem(fd, &zero, &filter, BPF_ANY) != 0) return fail(what, errno);
  return {};
}

// Rewrites the peer filter from the peer-MAC map. A new MAC's bit is set
// after its entry exists, a removed MAC's bit cleared after its entry is
// gone, so the filter never hides a peer.
DpResult<void> DatapathMaps::sync_peer_filter() {
  auto macs = peer_macs();
  if (!macs) return std::unexpected(macs.error());
  std::vector<std::uint32_t> bits;
  for (const auto& [mac, id] : *macs) bits.push_back(mac_filter_bit(mac));
  return write_filter(peer_filter_fd_, bits, "writing the peer filter");
}

DpResult<void> DatapathMaps::set_peer_mac(const mixlb_mac& mac, std::uint32_t node_id) {
  if (bpf_map_update_elem(peer_macs_fd_, &mac, &node_id, BPF_ANY) != 0)
    return fail("writing peer MAC", errno);
  return sync_peer_filter();
}

DpResult<void> DatapathMaps::remove_peer_mac(const mixlb_mac& mac) {
  if (bpf_map_delete_elem(peer_macs_fd_, &mac) != 0 && errno != ENOENT)
    return fail("removing peer MAC", errno);
  return sync_peer_filter();
}

DpResult<void> DatapathMaps::sync_vip_filter(const mixlb_vip_key* extra) {
  auto all = vips();
  if (!all) return std::unexpected(all.error());
  std::vector<std::uint32_t> bits;
  for (const auto& [key, value] : *all) bits.push_back(mixlb_filter_bit(key.addr));
  if (extra) bits.push_back(mixlb_filter_bit(extra->addr));
  return write_filter(vip_filter_fd_, bits, "writing the VIP filter");
}

DpResult<std::size_t> DatapathMaps::purge_conntrack(std::uint32_t vip_id) {
  return purge_conntrack_if([vip_id](const mixlb_ct_value& v) { return v.vip_id == vip_id; });
}

DpResult<std::size_t> DatapathMaps::purge_conntrack_to_node(std::uint32_t node_id) {
  return purge_conntrack_if([node_id](const mixlb_ct_value& v) { return v.node_id == node_id; });
}

// Both tables: a half-open flow of a removed VIP or a forgotten node must
// not be promoted after its purge. The count is the connection table's.
DpResult<std::size_t> DatapathMaps::purge_conntrack_if(
    const std::function<bool(const mixlb_ct_value&)>& is_doomed) {
  if (auto half = purge_half_open_if(is_doomed); !half) return std::unexpected(half.error());
  std::vector<mixlb_flow_key> doomed;
  auto walked = for_each_key<mixlb_flow_key>(ct_fd_, "mixlb_ct", [&](const mixlb_flow_key& k) {
    mixlb_ct_value v{};
    if (bpf_map_lookup_elem(ct_fd_, &k, &v) == 0 && is_doomed(v)) doomed.push_back(k);
  });
  if (!walked) return std::unexpected(walked.error());
  for (const auto& k : doomed) {
    if (bpf_map_delete_elem(ct_fd_, &k) != 0 && errno != ENOENT) return fail("purging a connection", errno);
    if (auto forgot = forget_cached(k); !forgot) return std::unexpected(forgot.error());
  }
  return doomed.size();
}

// Every CPU's cache slot of the flow is emptied, whichever flow it holds:
// the program only misses the cache there once more (conntrack.h).
DpResult<void> DatapathMaps::forget_cached(const mixlb_flow_key& key) {
  const std::uint32_t index = mixlb_ct_cache_slot(&key);
  const std::vector<unsigned char> empty(percpu_stride(sizeof(mixlb_ct_cached)) * possible_cpus(), 0);
  if (bpf_map_update_elem(ct_cache_fd_, &index, empty.data(), BPF_ANY) != 0)
    return fail("emptying a connection-table cache slot", errno);
  return {};
}

// The half-open table is an array: a doomed slot is emptied (family 0).
DpResult<void> DatapathMaps::purge_half_open_if(const std::function<bool(const mixlb_ct_value&)>& is_doomed) {
  constexpr std::uint32_t kBatch = 4096;
  std::vector<std::uint32_t> keys(kBatch);
  std::vector<mixlb_half_open> slots(kBatch);
  const mixlb_half_open empty{};
  for (std::uint32_t first = 0; first < half_open_slots_; first += kBatch) {
    std::uint32_t in = first, out = 0, count = std::min(kBatch, half_open_slots_ - first);
    if (bpf_map_lookup_batch(half_open_fd_, first == 0 ? nullptr : &in, &out, keys.data(), slots.data(), &count,
                             nullptr) != 0 &&
        errno != ENOENT)
      return fail("walking mixlb_half_open", errno);
    for (std::uint32_t i = 0; i < count; ++i) {
      if (slots[i].flow.family == 0 || !is_doomed(slots[i].decision)) continue;
      if (bpf_map_update_elem(half_open_fd_, &keys[i], &empty, BPF_ANY) != 0)
        return fail("emptying a half-open slot", errno);
    }
  }
  return {};
}

DpResult<std::vector<std::pair<mixlb_mac, std::uint32_t>>> DatapathMaps::peer_macs() const {
  std::vector<mixlb_mac> keys;
  auto walked = for_each_key<mixlb_mac>(peer_macs_fd_, "mixlb_peer_macs",
                                        [&](const mixlb_mac& k) { keys.push_back(k); });
  if (!walked) return std::unexpected(walked.error());
  std::vector<std::pair<mixlb_mac, std::uint32_t>> out;
  for (const auto& k : keys) {
    std::uint32_t id = 0;
    if (bpf_map_lookup_elem(peer_macs_fd_, &k, &id) == 0) out.emplace_back(k, id);
  }
  return out;
}

DpResult<VipCounters> DatapathMaps::vip_counters(std::uint32_t vip_id) const {
  const std::size_t stride = percpu_stride(sizeof(mixlb_vip_stats));
  std::vector<unsigned char> buf(stride * possible_cpus());
  if (bpf_map_lookup_elem(vip_stats_fd_, &vip_id, buf.data()) != 0)
    return fail("reading counters of VIP " + std::to_string(vip_id), errno);
  VipCounters sum;
  for (int cpu = 0; cpu < possible_cpus(); ++cpu) {
    mixlb_vip_stats s;
    std::memcpy(&s, buf.data() + cpu * stride, sizeof(s));
    sum.local_pkts += s.local_pkts;
    sum.local_bytes += s.local_bytes;
    sum.fwd_pkts += s.fwd_pkts;
    sum.fwd_bytes += s.fwd_bytes;
    sum.from_peer_pkts += s.from_peer_pkts;
    sum.from_peer_bytes += s.from_peer_bytes;
    for (std::size_t r = 0; r < sum.drops.size(); ++r) sum.drops[r] += s.drop_pkts[r];
  }
  return sum;
}

DpResult<void> DatapathMaps::reset_vip_counters(std::uint32_t vip_id) {
  std::vector<unsigned char> zero(percpu_stride(sizeof(mixlb_vip_stats)) * possible_cpus(), 0);
  if (bpf_map_update_elem(vip_stats_fd_, &vip_id, zero.data(), BPF_ANY) != 0)
    return fail("resetting counters of VIP " + std::to_string(vip_id), errno);
  for (std::uint32_t slot = 0; slot < max_nodes_; ++slot)
    if (auto r = reset_node_counters(vip_id, slot); !r) return r;
  return {};
}

DpResult<NodeCounters> DatapathMaps::node_counters(std::uint32_t vip_id, std::uint32_t stats_slot) const {
  const std::uint32_t key = vip_id * max_nodes_ + stats_slot;
  std::vector<mixlb_backend_stats> per_cpu(possible_cpus());
  if (bpf_map_lookup_elem(vip_node_fd_, &key, per_cpu.data()) != 0)
    return fail("reading (VIP, node) counters", errno);
  NodeCounters sum;
  for (const auto& c : per_cpu) {
    sum.pkts += c.pkts;
    sum.bytes += c.bytes;
  }
  return sum;
}

DpResult<void> DatapathMaps::reset_node_counters(std::uint32_t vip_id, std::uint32_t stats_slot) {
  const std::uint32_t key = vip_id * max_nodes_ + stats_slot;
  std::vector<mixlb_backend_stats> zero(possible_cpus());
  if (bpf_map_update_elem(vip_node_fd_, &key, zero.data(), BPF_ANY) != 0)
    return fail("resetting (VIP, node) counters", errno);
  return {};
}

namespace {

// Sums a per-CPU array of u64 counters into `out`.
template <std::size_t N>
DpResult<void> sum_u64_array(int fd, std::array<std::uint64_t, N>& out, const char* what) {
  std::vector<std::uint64_t> per_cpu(possible_cpus());
  for (std::uint32_t i = 0; i < N; ++i) {
    if (bpf_map_lookup_elem(fd, &i, per_cpu.data()) != 0) return fail(what, errno);
    for (auto v : per_cpu) out[i] += v;
  }
  return {};
}

}  // namespace

DpResult<GlobalCounters> DatapathMaps::counters() const {
  GlobalCounters out;
  if (auto r = sum_u64_array(counters_fd_, out.events, "reading global counters"); !r)
    return std::unexpected(r.error());
  if (auto r = sum_u64_array(drops_fd_, out.drops, "reading drop counters"); !r)
    return std::unexpected(r.error());
  if (auto r = sum_u64_array(fib_rets_fd_, out.fib_rets, "reading fib-result counters"); !r)
    return std::unexpected(r.error());
  return out;
}

DpResult<void> DatapathMaps::set_any_port_vips(bool any) {
  const std::uint32_t key = 0;
  mixlb_settings settings{};
  settings.any_port_vips = any ? 1 : 0;
  if (bpf_map_update_elem(settings_fd_, &key, &settings, BPF_ANY) != 0)
    return fail("writing settings", errno);
  return {};
}

DpResult<std::optional<mixlb_ct_value>> DatapathMaps::conntrack(const mixlb_flow_key& key) const {
  mixlb_ct_value value{};
  if (bpf_map_lookup_elem(ct_fd_, &key, &value) == 0) return value;
  if (errno == ENOENT) return std::optional<mixlb_ct_value>{};
  return fail("looking up connection", errno);
}

DpResult<void> DatapathMaps::conntrack_insert(const mixlb_flow_key& key, const mixlb_ct_value& value) {
  if (bpf_map_update_elem(ct_fd_, &key, &value, BPF_ANY) != 0)
    return fail("inserting connection", errno);
  return {};
}

// A lookup, then a delete: a SYN that re-balances the 5-tuple between the
// two could lose its fresh entry, which its next packet takes the Maglev
// answer for again (conntrack.h: non-SYN miss). Rare, and never worse.
// One syscall for the common case (the entry points at the sender): taken
// out with its value, and put back only when it points elsewhere (a reused
// 5-tuple that a newer SYN balanced to another node) -- unless a packet
// made a new entry in the meantime, which then stays.
DpResult<bool> DatapathMaps::invalidate(const mixlb_flow_key& key, std::uint32_t node) {
  mixlb_ct_value value{};
  if (bpf_map_lookup_and_delete_elem(ct_fd_, &key, &value) != 0) {
    if (errno == ENOENT) return false;
    return fail("taking out a connection", errno);
  }
  if (value.node_id == node) return true;
  if (bpf_map_update_elem(ct_fd_, &key, &value, BPF_NOEXIST) != 0 && errno != EEXIST)
    return fail("putting back a connection of another node", errno);
  return false;
}

DpResult<std::optional<mixlb_ct_value>> DatapathMaps::half_open(const mixlb_flow_key& key) const {
  const std::uint32_t hash = mixlb_flow_hash(&key);
  const std::uint32_t index = hash & (half_open_slots_ - 1);
  mixlb_half_open slot{};
  if (bpf_map_lookup_elem(half_open_fd_, &index, &slot) != 0) return fail("looking up a half-open slot", errno);
  if (std::memcmp(&slot.flow, &key, sizeof(key)) != 0 || slot.check != mixlb_half_open_check(hash, &slot.decision))
    return std::optional<mixlb_ct_value>{};
  return slot.decision;
}

DpResult<bool> DatapathMaps::cached(const mixlb_flow_key& key) const {
  const std::uint32_t index = mixlb_ct_cache_slot(&key);
  const std::size_t stride = percpu_stride(sizeof(mixlb_ct_cached));
  std::vector<unsigned char> buf(stride * possible_cpus());
  if (bpf_map_lookup_elem(ct_cache_fd_, &index, buf.data()) != 0)
    return fail("looking up a connection-table cache slot", errno);
  for (int cpu = 0; cpu < possible_cpus(); ++cpu) {
    mixlb_ct_cached slot;
    std::memcpy(&slot, buf.data() + cpu * stride, sizeof(slot));
    if (slot.flow.family != 0 && std::memcmp(&slot.flow, &key, sizeof(key)) == 0) return true;
  }
  return false;
}

DpResult<std::optional<std::uint32_t>> DatapathMaps::origin(const mixlb_flow_key& key) const {
  std::uint32_t node = 0;
  if (bpf_map_lookup_elem(origins_fd_, &key, &node) == 0) return node;
  if (errno == ENOENT) return std::optional<std::uint32_t>{};
  return fail("looking up a flow's origin", errno);
}

// ---------------------------------------------------------------------------
// XdpProgram

std::uint32_t half_open_entries(const DatapathSettings& settings) {
  const std::uint32_t wanted = settings.half_open_entries != 0
                                   ? settings.half_open_entries
                                   : std::max<std::uint32_t>(1024, settings.conntrack_entries / 4);
  return std::bit_ceil(wanted);
}

DpResult<std::unique_ptr<XdpProgram>> XdpProgram::load(const DatapathSettings& settings) {
  if (settings.ring_size < 3) return fail("ring size must be at least 3", EINVAL);
  const std::uint64_t slots =
      std::uint64_t{settings.max_vips} * MIXLB_RING_HALVES * settings.ring_size;
  if (slots > UINT32_MAX) return fail("max_vips * 2 * ring size exceeds 2^32 slots", EINVAL);
  const std::uint64_t node_cells = std::uint64_t{settings.max_vips} * settings.max_nodes;
  if (node_cells > UINT32_MAX) return fail("max_vips * max_nodes exceeds 2^32 counters", EINVAL);

  std::unique_ptr<XdpProgram> self(new XdpProgram());
  self->settings_ = settings;
  self->skel_ = mixlb_xdp__open();
  if (!self->skel_) return fail("opening the embedded BPF object", errno);
  auto* skel = self->skel_;
  skel->rodata->mixlb_self_node_id = settings.self_node_id;
  skel->rodata->mixlb_ring_size = settings.ring_size;
  skel->rodata->mixlb_max_nodes = settings.max_nodes;
  skel->rodata->mixlb_half_open_mask = half_open_entries(settings) - 1;
  skel->rodata->mixlb_dry_run = settings.dry_run ? 1 : 0;

  struct Size {
    bpf_map* map;
    std::uint32_t entries;
  };
  for (const Size& s : {Size{skel->maps.mixlb_vips, settings.max_vips},
                        Size{skel->maps.mixlb_vip_stats, settings.max_vips},
                        Size{skel->maps.mixlb_vip_node, static_cast<std::uint32_t>(node_cells)},
                        Size{skel->maps.mixlb_maglev, static_cast<std::uint32_t>(slots)},
                        Size{skel->maps.mixlb_ct, settings.conntrack_entries},
                        Size{skel->maps.mixlb_origins, settings.conntrack_entries},
                        Size{skel->maps.mixlb_half_open, half_open_entries(settings)},
                        Size{skel->maps.mixlb_nodes, settings.max_nodes},
                        Size{skel->maps.mixlb_fib_cache, settings.max_nodes},
                        Size{skel->maps.mixlb_peer_macs, settings.max_nodes}}) {
    if (int err = bpf_map__set_max_entries(s.map, s.entries); err != 0)
      return fail(std::string("sizing map ") + bpf_map__name(s.map), err);
  }

  if (settings.share_maps_with) {
    const bpf_object* theirs = settings.share_maps_with->skel_->obj;
    for (bpf_map* map : shared_maps(skel->obj)) {
      const bpf_map* other = find_map(theirs, bpf_map__name(map));
      if (!other) return fail(std::string("sharing map ") + bpf_map__name(map) + ": the other program lacks it", ENOENT);
      if (int err = bpf_map__reuse_fd(map, bpf_map__fd(other)); err != 0)
        return fail(std::string("sharing map ") + bpf_map__name(map), err);
    }
  } else if (!settings.pin_dir.empty()) {
    // Pinned maps of an earlier run must fit what this run would create;
    // otherwise say which map and how, before anything is created.
    auto pinned = check_pinned_maps(skel->obj, settings.pin_dir);
    if (!pinned) return std::unexpected(pinned.error());
    std::error_code ec;
    const auto parent = std::filesystem::path(settings.pin_dir).parent_path();
    self->created_pin_parent_ = !parent.empty() && !std::filesystem::exists(parent);
    self->created_pin_dir_ = !std::filesystem::exists(settings.pin_dir);
    std::filesystem::create_directories(settings.pin_dir, ec);
    if (ec) return std::unexpected(DatapathError{"creating pin directory " + settings.pin_dir, ec});
    if (auto set = set_pin_paths(skel->obj, settings.pin_dir); !set) return std::unexpected(set.error());
    self->adopted_maps_ = *pinned;
    // Pins of maps an earlier version had and this one replaced: the
    // program still running keeps its own reference until it is replaced.
    for (const char* retired : kRetiredMaps) std::filesystem::remove(settings.pin_dir + "/" + retired, ec);
  }

  if (int err = mixlb_xdp__load(skel); err != 0) {
    std::string what = "loading the XDP program";
    if (err == -EPERM || err == -EACCES)
      what += " (the kernel refused: mixlb needs root, or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN)";
    return fail(what, err);
  }
  self->maps_ = DatapathMaps(*skel, settings.ring_size, settings.max_nodes);
  return self;
}

XdpProgram::~XdpProgram() {
  if (link_fd_ >= 0) close(link_fd_);  // a pinned link stays attached
  if (skel_) mixlb_xdp__destroy(skel_);
}

std::unexpected<DatapathError> datapath_failure(std::string what, int err) {
  return std::unexpected(error_from(std::move(what), err));
}

int XdpProgram::prog_fd() const { return bpf_program__fd(skel_->progs.mixlb_xdp); }

int XdpProgram::map_fd(std::string_view name) const {
  const bpf_map* map = find_map(skel_->obj, name);
  return map ? bpf_map__fd(map) : -1;
}

std::optional<AttachMode> query_xdp_mode(int ifindex) {
  LIBBPF_OPTS(bpf_xdp_query_opts, opts);
  if (bpf_xdp_query(ifindex, 0, &opts) != 0) return std::nullopt;
  switch (opts.attach_mode) {
    case XDP_ATTACHED_DRV:
    case XDP_ATTACHED_HW:
      return AttachMode::kNative;
    case XDP_ATTACHED_SKB:
      return AttachMode::kGeneric;
    case XDP_ATTACHED_MULTI:
      return opts.drv_prog_id ? AttachMode::kNative : AttachMode::kGeneric;
    default:
      return std::nullopt;
  }
}

DpResult<AttachMode> XdpProgram::attach_new(int ifindex, AttachMode mode) {
  LIBBPF_OPTS(bpf_link_create_opts, opts);
  opts.flags = mode == AttachMode::kNative ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
  const int fd = bpf_link_create(prog_fd(), ifindex, BPF_XDP, &opts);
  if (fd < 0) {
    const int err = errno;
    std::string what = std::string("attaching XDP in ") + std::string(to_string(mode)) + " mode";
    if (err == EBUSY || err == EEXIST) what += " (another XDP program is attached to the interface)";
    return fail(what, err);
  }
  link_fd_ = fd;
  return mode;
}

DpResult<AttachMode> XdpProgram::attach(int ifindex, XdpMode mode) {
  // Attaching again after the link lost its interface: the old link is
  // bound to nothing, so it is dropped (its pin goes below) for a new one.
  if (link_fd_ >= 0) {
    if (link_state() == LinkState::kAttached && ifindex == ifindex_) return *mode_;
    close(link_fd_);
    link_fd_ = -1;
    adopted_link_ = false;
    mode_.reset();
  }
  const std::string link_pin =
      settings_.pin_dir.empty() ? std::string() : settings_.pin_dir + "/" + kLinkPinName;

  // Adopt a link pinned by an earlier run: swap the new program in, so the
  // interface never runs without a balancer.
  if (!link_pin.empty()) {
    const int old = bpf_obj_get(link_pin.c_str());
    if (old >= 0) {
      bpf_link_info info{};
      std::uint32_t len = sizeof(info);
      const bool same_if = bpf_obj_get_info_by_fd(old, &info, &len) == 0 &&
                           info.type == BPF_LINK_TYPE_XDP &&
                           static_cast<int>(info.xdp.ifindex) == ifindex;
      const auto old_mode = query_xdp_mode(ifindex);
      const bool mode_ok = old_mode && !(mode == XdpMode::kNative && *old_mode != AttachMode::kNative) &&
                           !(mode == XdpMode::kGeneric && *old_mode != AttachMode::kGeneric);
      if (same_if && mode_ok && bpf_link_update(old, prog_fd(), nullptr) == 0) {
        link_fd_ = old;
        ifindex_ = ifindex;
        mode_ = *old_mode;
        adopted_link_ = true;
        spdlog::info("adopted the pinned XDP link on ifindex {} ({} mode)", ifindex, to_string(*mode_));
        return *mode_;
      }
      spdlog::warn("pinned XDP link {} does not fit (interface or mode changed); replacing it", link_pin);
      unlink(link_pin.c_str());
      close(old);
    }
  }

  DpResult<AttachMode> attached = fail("attaching XDP", EINVAL);
  switch (mode) {
    case XdpMode::kNative:
      attached = attach_new(ifindex, AttachMode::kNative);
      break;
    case XdpMode::kGeneric:
      attached = attach_new(ifindex, AttachMode::kGeneric);
      break;
    case XdpMode::kAuto:
      attached = attach_new(ifindex, AttachMode::kNative);
      if (!attached) {
        spdlog::warn("native XDP refused ({}); falling back to generic mode, which is slower",
                     attached.error().message());
        attached = attach_new(ifindex, AttachMode::kGeneric);
      }
      break;
  }
  if (!attached) return attached;
  ifindex_ = ifindex;
  mode_ = *attached;
  if (!link_pin.empty() && bpf_obj_pin(link_fd_, link_pin.c_str()) != 0) {
    const int err = errno;
    detach();
    return fail("pinning the XDP link at " + link_pin, err);
  }
  return attached;
}

XdpProgram::LinkState XdpProgram::link_state() const {
  if (link_fd_ < 0) return LinkState::kNone;
  bpf_link_info info{};
  std::uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(link_fd_, &info, &len) != 0) return LinkState::kDetached;
  return info.xdp.ifindex == 0 ? LinkState::kDetached : LinkState::kAttached;
}

void XdpProgram::undo_own() {
  if (link_fd_ >= 0 && !adopted_link_) detach();
  if (settings_.pin_dir.empty() || settings_.share_maps_with || adopted_maps_) return;
  for (bpf_map* map : shared_maps(skel_->obj)) bpf_map__unpin(map, nullptr);
  std::error_code ec;
  if (created_pin_dir_) std::filesystem::remove(settings_.pin_dir, ec);
  if (created_pin_parent_)
    std::filesystem::remove(std::filesystem::path(settings_.pin_dir).parent_path(), ec);
}

void XdpProgram::detach() {
  if (!settings_.pin_dir.empty()) unlink((settings_.pin_dir + "/" + kLinkPinName).c_str());
  if (link_fd_ >= 0) {
    bpf_link_detach(link_fd_);
    close(link_fd_);
    link_fd_ = -1;
  }
  mode_.reset();
}

DpResult<std::size_t> remove_pins(const std::string& pin_dir, bool parent_too) {
  std::error_code ec;
  std::size_t removed = 0;
  if (!std::filesystem::exists(pin_dir, ec)) return removed;
  for (const auto& entry : std::filesystem::directory_iterator(pin_dir, ec)) {
    std::error_code type_ec;
    if (entry.is_directory(type_ec)) {  // another object's pins (the reuseport selector's)
      auto inner = remove_pins(entry.path().string(), false);
      if (!inner) return inner;
      removed += *inner;
      continue;
    }
    if (::unlink(entry.path().c_str()) != 0 && errno != ENOENT)
      return fail("removing pin " + entry.path().string(), errno);
    ++removed;
  }
  if (ec) return std::unexpected(DatapathError{"listing " + pin_dir, ec});
  if (::rmdir(pin_dir.c_str()) != 0 && errno != ENOENT) return fail("removing " + pin_dir, errno);
  if (parent_too) ::rmdir(std::filesystem::path(pin_dir).parent_path().c_str());  // only if empty
  return removed;
}

DpResult<mixlb_decision> XdpProgram::decide(std::span<const std::uint8_t> frame, int ifindex) {
  if (!settings_.dry_run) return fail("decide() needs a dry-run instance", EINVAL);
  skel_->bss->mixlb_last_decision = mixlb_decision{};
  auto run = xdp_test_run(prog_fd(), frame, ifindex);
  if (!run) return std::unexpected(run.error());
  return skel_->bss->mixlb_last_decision;
}

void XdpProgram::unpin() {
  if (settings_.pin_dir.empty() || settings_.share_maps_with) return;
  for (bpf_map* map : shared_maps(skel_->obj)) bpf_map__unpin(map, nullptr);
  std::error_code ec;
  std::filesystem::remove(settings_.pin_dir, ec);
  if (ec) spdlog::warn("could not remove {}: {}", settings_.pin_dir, ec.message());
  // The bpffs directory above it goes too if this program made it and no
  // other instance pins there any more.
  if (created_pin_parent_) std::filesystem::remove(std::filesystem::path(settings_.pin_dir).parent_path(), ec);
}

}  // namespace mixlb
