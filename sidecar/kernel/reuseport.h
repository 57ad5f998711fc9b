#pragma once
// The reuseport selector's owner (bpf/mixlb_reuseport.bpf.c): loads the
// program and its maps, pins them, attaches the program to a socket's
// SO_REUSEPORT group, and writes what the program reads: sockets at their
// indices (with their cookies), worker tables, services.
//
// Pinned, like the XDP program's maps, so a restarted sidecar adopts the
// same maps: the program stays attached to the app's groups (a group holds
// it as long as one of its sockets lives) and keeps reading them while no
// sidecar runs, so the app's flows go on being placed. Which index holds
// which socket is the caller's business (sidecar/reuseport/); this type
// only does the writes, each one map update, so a generation switch is the
// single write of its service.
//
// Attaching needs the program fd and a socket of the group; the kernel then
// runs the program for the whole group, also for sockets that join later.
// A group that lost all its sockets is gone with its program: the next
// registration attaches again (attach() on every registered socket is
// cheap and idempotent).
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernel/abi.h"
#include "kernel/datapath.h"  // DpResult

struct mixlb_reuseport;

namespace mixlb {

struct ReuseportStats {
  std::uint64_t selected = 0, migrated = 0, sticky = 0, fallback = 0;
};

// The writes that manage the selector: ReuseportSelector's, or a test's
// recording fake (the registry, sidecar/reuseport/registry.h, takes either).
class SelectorMaps {
 public:
  virtual ~SelectorMaps() = default;
  virtual DpResult<void> attach(int socket_fd) const = 0;
  virtual DpResult<std::uint64_t> put_socket(std::uint32_t index, int socket_fd) const = 0;
  virtual DpResult<void> remove_socket(std::uint32_t index) const = 0;
  virtual DpResult<std::optional<std::uint64_t>> socket_at(std::uint32_t index) const = 0;
  virtual DpResult<void> set_table(std::uint32_t table, const mixlb_rp_table& workers) const = 0;
  virtual DpResult<void> set_service(const mixlb_rp_key& key, const mixlb_rp_service& service) const = 0;
  virtual DpResult<void> remove_service(const mixlb_rp_key& key) const = 0;
  virtual DpResult<void> reset_stats(std::uint32_t table) const = 0;
};

class ReuseportSelector : public SelectorMaps {
 public:
  // Loads the program; with a pin directory, adopts the maps pinned there
  // (pin_dir/reuseport/) or creates and pins them. `flows`: the UDP flow
  // table's size (0: MIXLB_RP_DEFAULT_FLOWS).
  static DpResult<std::unique_ptr<ReuseportSelector>> load(const std::string& pin_dir, std::uint32_t flows = 0);
  ~ReuseportSelector() override;
  ReuseportSelector(const ReuseportSelector&) = delete;
  ReuseportSelector& operator=(const ReuseportSelector&) = delete;

  // Runs the program for `socket_fd`'s group (SO_ATTACH_REUSEPORT_EBPF).
  DpResult<void> attach(int socket_fd) const override;

  // Puts the socket at `index` (a listening TCP or bound UDP socket with
  // SO_REUSEPORT) and records its cookie there. Returns the cookie.
  DpResult<std::uint64_t> put_socket(std::uint32_t index, int socket_fd) const override;
  // Empties `index` (the kernel empties it by itself when the socket closes;
  // its cookie stays until this call or the next put_socket).
  DpResult<void> remove_socket(std::uint32_t index) const override;
  // The cookie of the socket the kernel holds at `index`, if any.
  DpResult<std::optional<std::uint64_t>> socket_at(std::uint32_t index) const override;

  DpResult<void> set_table(std::uint32_t table, const mixlb_rp_table& workers) const override;
  DpResult<void> set_service(const mixlb_rp_key& key, const mixlb_rp_service& service) const override;
  DpResult<void> remove_service(const mixlb_rp_key& key) const override;
  DpResult<std::optional<mixlb_rp_service>> service(const mixlb_rp_key& key) const;

  // Sum over CPUs of one table's counters; reset_stats zeroes them (a
  // table id is reused by a later generation, which must start from 0).
  DpResult<ReuseportStats> stats(std::uint32_t table) const;
  DpResult<void> reset_stats(std::uint32_t table) const override;

  // UDP flows by the table that placed them: one walk of the flow table
  // (its cost grows with the table: read it once per view, not per table).
  DpResult<std::map<std::uint32_t, std::size_t>> flows_by_table() const;
  // Those of one table.
  DpResult<std::size_t> flows_of(std::uint32_t table) const;

  int program_fd() const;
  // Removes the pins (the sidecar leaves for good; attached groups keep
  // the program until their sockets close).
  void unpin();

 private:
  ReuseportSelector() = default;
  mixlb_reuseport* skel_ = nullptr;
  std::string pin_dir_;
};

}  // namespace mixlb
