#pragma once
// The XDP program's owner (XdpProgram) and its maps (DatapathMaps).
//
// XdpProgram wraps the libbpf skeleton: it sets the load-time constants and
// map sizes, loads the program, pins the maps under a directory so a
// restarted sidecar adopts them (the connection table survives a restart),
// and attaches through a BPF link that is pinned too, so traffic keeps
// flowing while the sidecar is down. A new sidecar swaps its program into the
// pinned link instead of detaching first.
//
// It knows what it made and what it adopted, because the ways out differ:
// destroying the object (a restart) leaves pins and link as they are;
// undo_own() (a start that failed) removes only what this instance created;
// detach() and unpin() (a leave) remove everything.
//
// DatapathMaps is the typed view of the maps the sidecar writes and reads:
// VIPs with their double-buffered Maglev tables, nodes, peer MACs, counters.
// It holds file descriptors only, so tests drive the same code as the daemon.
#include <cstdint>
#include <functional>
#include <expected>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "kernel/abi.h"
#include "kernel/xdp_mode.h"

struct mixlb_xdp;  // the generated skeleton

namespace mixlb {

struct DatapathSettings {
  std::uint32_t self_node_id = MIXLB_NODE_NONE;
  std::uint32_t ring_size = MIXLB_DEFAULT_RING_SIZE;
  std::uint32_t max_vips = MIXLB_DEFAULT_MAX_VIPS;
  std::uint32_t conntrack_entries = MIXLB_DEFAULT_CT_ENTRIES;
  // The half-open table's slots (bpf/lib/conntrack.h); 0: a quarter of
  // conntrack_entries, at least 1024. Rounded up to a power of two.
  std::uint32_t half_open_entries = 0;
  std::uint32_t max_nodes = MIXLB_DEFAULT_MAX_NODES;
  std::string pin_dir;  // "" = no pinning (tests)
  // A dry-run instance ("which node?"): changes no map, records its decision.
  bool dry_run = false;
  // Use this program's maps instead of creating or adopting any.
  const class XdpProgram* share_maps_with = nullptr;
};

// The half-open table's size for these settings: a power of two.
std::uint32_t half_open_entries(const DatapathSettings& settings);

// An error with the call that failed and the errno it returned.
struct DatapathError {
  std::string what;
  std::error_code code;
  std::string message() const;
};

template <typename T>
using DpResult = std::expected<T, DatapathError>;

// A failed call as a DpResult error: `what` and the errno (libbpf's -errno
// is taken as errno; 0 becomes EIO).
std::unexpected<DatapathError> datapath_failure(std::string what, int err);

// Sum over CPUs of one VIP's counters.
struct VipCounters {
  std::uint64_t local_pkts = 0, local_bytes = 0;
  std::uint64_t fwd_pkts = 0, fwd_bytes = 0;
  std::uint64_t from_peer_pkts = 0, from_peer_bytes = 0;
  std::array<std::uint64_t, MIXLB_DROP__MAX> drops{};
  std::uint64_t dropped() const;
};

// Sum over CPUs of one (VIP, node) pair's counters.
struct NodeCounters {
  std::uint64_t pkts = 0, bytes = 0;
};

// Global counters, summed over CPUs.
struct GlobalCounters {
  std::array<std::uint64_t, MIXLB_CNT__MAX> events{};
  std::array<std::uint64_t, MIXLB_DROP__MAX> drops{};
  std::array<std::uint64_t, MIXLB_FIB_RET_SLOTS> fib_rets{};
};

class DatapathMaps {
 public:
  DatapathMaps() = default;
  DatapathMaps(const mixlb_xdp& skel, std::uint32_t ring_size, std::uint32_t max_nodes);

  std::uint32_t ring_size() const { return ring_size_; }
  std::uint32_t max_nodes() const { return max_nodes_; }
  // The connection table, for a program that shares it (kernel/ct_invalidate.h).
  int conntrack_fd() const { return ct_fd_; }

  // Writes `table` (ring_size node ids) into the VIP's inactive half, then
  // makes it live with one update of the VIP entry (inserting the VIP if it
  // is new; its address enters the VIP filter first). Returns the half now
  // active. remove_vip takes the address out of the filter after the entry.
  DpResult<std::uint32_t> publish_vip(const mixlb_vip_key& key, std::uint32_t vip_id,
                                      std::span<const std::uint32_t> table);
  DpResult<void> remove_vip(const mixlb_vip_key& key);
  DpResult<std::optional<mixlb_vip_value>> vip(const mixlb_vip_key& key) const;
  DpResult<std::vector<std::pair<mixlb_vip_key, mixlb_vip_value>>> vips() const;
  // The live table of a VIP as the data path reads it.
  DpResult<std::vector<std::uint32_t>> live_table(const mixlb_vip_key& key) const;

  DpResult<void> set_node(std::uint32_t node_id, const mixlb_node& node);
  DpResult<void> remove_node(std::uint32_t node_id);
  DpResult<std::optional<mixlb_node>> node(std::uint32_t node_id) const;
  DpResult<std::vector<std::uint32_t>> node_ids() const;

  DpResult<void> set_peer_mac(const mixlb_mac& mac, std::uint32_t node_id);
  DpResult<void> remove_peer_mac(const mixlb_mac& mac);
  DpResult<std::vector<std::pair<mixlb_mac, std::uint32_t>>> peer_macs() const;

  // Deletes every connection of a VIP; returns how many there were.
  DpResult<std::size_t> purge_conntrack(std::uint32_t vip_id);
  // Deletes every connection pinned to a node; returns how many there were.
  DpResult<std::size_t> purge_conntrack_to_node(std::uint32_t node_id);

  DpResult<VipCounters> vip_counters(std::uint32_t vip_id) const;
  // Zeroes the VIP's counters and its (VIP, node) row.
  DpResult<void> reset_vip_counters(std::uint32_t vip_id);
  DpResult<NodeCounters> node_counters(std::uint32_t vip_id, std::uint32_t stats_slot) const;
  DpResult<void> reset_node_counters(std::uint32_t vip_id, std::uint32_t stats_slot);
  DpResult<GlobalCounters> counters() const;

  // Tells the program whether any VIP is "all ports" (port 0).
  DpResult<void> set_any_port_vips(bool any);

  DpResult<std::optional<mixlb_ct_value>> conntrack(const mixlb_flow_key& key) const;
  DpResult<void> conntrack_insert(const mixlb_flow_key& key, const mixlb_ct_value& value);
  // An invalidation from `node`: deletes the flow's entry only while it
  // still points at `node` (a 5-tuple that a newer SYN balanced elsewhere is
  // left alone). True when an entry was deleted.
  DpResult<bool> invalidate(const mixlb_flow_key& key, std::uint32_t node);
  // The peer that balanced a flow served here (mixlb_origins), if recorded.
  DpResult<std::optional<std::uint32_t>> origin(const mixlb_flow_key& key) const;
  // A half-open flow's decision (its SYN or first datagram), if its slot
  // holds it (and passes its check).
  DpResult<std::optional<mixlb_ct_value>> half_open(const mixlb_flow_key& key) const;
  // Whether any CPU's connection-table cache holds a copy for the flow (of its
  // entry, or a peer copy: bpf/lib/conntrack.h), whatever its tick.
  DpResult<bool> cached(const mixlb_flow_key& key) const;

 private:
  DpResult<void> sync_peer_filter();
  // Rewrites the VIP-address filter from the VIP map, plus `extra`.
  DpResult<void> sync_vip_filter(const mixlb_vip_key* extra);

  DpResult<std::size_t> purge_conntrack_if(const std::function<bool(const mixlb_ct_value&)>& doomed);
  DpResult<void> purge_half_open_if(const std::function<bool(const mixlb_ct_value&)>& doomed);
  // Empties the flow's slot of the per-CPU connection-table cache.
  DpResult<void> forget_cached(const mixlb_flow_key& key);

  int vips_fd_ = -1, maglev_fd_ = -1, ct_fd_ = -1, nodes_fd_ = -1, peer_macs_fd_ = -1,
      vip_stats_fd_ = -1, vip_node_fd_ = -1, counters_fd_ = -1, drops_fd_ = -1, fib_rets_fd_ = -1,
      settings_fd_ = -1, vip_filter_fd_ = -1, peer_filter_fd_ = -1, origins_fd_ = -1, half_open_fd_ = -1,
      ct_cache_fd_ = -1;
  std::uint32_t half_open_slots_ = 0;  // a power of two (the map's size, read once at load)
  std::uint32_t ring_size_ = MIXLB_DEFAULT_RING_SIZE;
  std::uint32_t max_nodes_ = MIXLB_DEFAULT_MAX_NODES;
};

enum class AttachMode { kNative, kGeneric };
std::string_view to_string(AttachMode mode);

class XdpProgram {
 public:
  // Opens the embedded object, applies the settings and loads it (maps are
  // reused from pin_dir when pinned there already).
  static DpResult<std::unique_ptr<XdpProgram>> load(const DatapathSettings& settings);
  ~XdpProgram();
  XdpProgram(const XdpProgram&) = delete;
  XdpProgram& operator=(const XdpProgram&) = delete;

  int prog_fd() const;
  // The fd of one of the program's maps ("mixlb_ct", "mixlb_vips"), for a
  // program that shares it (close tracking); -1 when there is none.
  int map_fd(std::string_view name) const;
  DatapathMaps& maps() { return maps_; }
  const DatapathSettings& settings() const { return settings_; }
  // True when load() found pinned maps and adopted them.
  bool adopted_maps() const { return adopted_maps_; }
  // True when load() made the bpffs directory above pin_dir.
  bool created_pin_parent() const { return created_pin_parent_; }

  // Attaches to ifindex through a BPF link (pinned when pin_dir is set). A
  // pinned link from an earlier run on the same interface gets this program
  // swapped in. kAuto tries native first and falls back to generic.
  DpResult<AttachMode> attach(int ifindex, XdpMode mode);
  std::optional<AttachMode> attached_mode() const { return mode_; }
  // True when attach() swapped this program into a link an earlier run
  // pinned (rather than creating the link).
  bool adopted_link() const { return adopted_link_; }
  // Detaches (unpins and closes the link).
  void detach();
  // Removes the pinned maps and the pin directory.
  void unpin();
  // For a start that failed: detaches a link this instance created and
  // removes maps and directories it created; an adopted link keeps running
  // (with this program swapped in, on the adopted maps) and adopted maps
  // stay pinned.
  void undo_own();

  // Whether the link still runs the program on the interface it was attached
  // to: kDetached when the interface went away or someone detached the link
  // (the kernel keeps the link object, bound to nothing).
  enum class LinkState { kAttached, kDetached, kNone };
  LinkState link_state() const;
  int ifindex() const { return ifindex_; }

  // Dry-run instances only: runs the program on `frame` as if it arrived on
  // `ifindex` and returns what it decided. Changes no map.
  DpResult<mixlb_decision> decide(std::span<const std::uint8_t> frame, int ifindex);

 private:
  XdpProgram() = default;
  DpResult<AttachMode> attach_new(int ifindex, AttachMode mode);

  mixlb_xdp* skel_ = nullptr;
  DatapathMaps maps_;
  DatapathSettings settings_;
  bool adopted_maps_ = false;
  bool adopted_link_ = false;
  bool created_pin_parent_ = false;
  bool created_pin_dir_ = false;
  int link_fd_ = -1;
  int ifindex_ = 0;
  std::optional<AttachMode> mode_;
};

// Removes everything pinned in pin_dir (maps and the XDP link: a link whose
// pin goes and that no process holds detaches), then the directory, and its
// parent when `parent_too` and it is empty. Returns how many pins it removed.
DpResult<std::size_t> remove_pins(const std::string& pin_dir, bool parent_too);

// The attach mode of whatever XDP program is on ifindex now (nullopt: none).
std::optional<AttachMode> query_xdp_mode(int ifindex);

}  // namespace mixlb
