#include "cluster/neighbour_keeper.h"

#include "common/log_failure.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace mixlb {

namespace asio = boost::asio;

NeighbourKeeper::NeighbourKeeper(asio::io_context& io, Rtnl& netlink, ClusterSync& sync,
                                 HostRecord& record, Persist persist, int ifindex,
                                 std::chrono::milliseconds refresh)
    : io_(io),
      netlink_(netlink),
      sync_(sync),
      record_(record),
      persist_(std::move(persist)),
      ifindex_(ifindex),
      refresh_(refresh),
      timer_(io) {}

NeighbourKeeper::~NeighbourKeeper() { stop(); }

// A new member: ask the kernel to keep its neighbour entry resolved.
void NeighbourKeeper::add_peer(const Member& member) {
  PeerState peer;
  peer.member = member;
  const std::string address = member.address.to_string();
  auto setup = netlink_.add_managed_neighbour(ifindex_, member.address);
  if (!setup) {
    spdlog::warn("neighbour entry for {} ({}): {}; will keep asking the kernel to resolve it",
                 member.name, address, setup.error().message());
  } else {
    peer.managed_neighbour = setup->managed;
    // An entry a predecessor made is ours as well: the record says so.
    peer.created_neighbour = setup->created || record_.has_neighbour(address);
    if (peer.created_neighbour && record_.add_neighbour(address)) persist_();
  }
  peers_.push_back(std::move(peer));
}

// A member gone for good: its MAC leaves the peer-MAC map, and its entry goes
// if mixlb made it.
void NeighbourKeeper::forget_peer(PeerState& p) {
  if (auto r = sync_.forget_peer_mac(p.member.id); !r) spdlog::warn("{}", r.error().message());
  p.mac.reset();
  if (!p.created_neighbour) return;
  const std::string address = p.member.address.to_string();
  if (auto ec = netlink_.delete_neighbour(ifindex_, p.member.address);
      ec && ec != std::errc::no_such_file_or_directory) {
    spdlog::warn("deleting neighbour {}: {}", address, ec.message());
    return;  // still there: the record keeps it for a cleanup
  }
  p.created_neighbour = false;
  if (record_.remove_neighbour(address)) persist_();
}

bool NeighbourKeeper::sync(std::span<const Member> members, const MacAddress& self_mac) {
  bool added = false;
  auto listed = [&](const PeerState& p) {
    return std::find_if(members.begin(), members.end(), [&](const Member& m) {
             return m.name == p.member.name && m.address == p.member.address;
           }) != members.end();
  };
  for (auto it = peers_.begin(); it != peers_.end();) {
    if (it->member.self || listed(*it)) {
      ++it;
      continue;
    }
    forget_peer(*it);
    it = peers_.erase(it);
  }
  for (const auto& m : members) {
    auto it = std::find_if(peers_.begin(), peers_.end(),
                           [&](const PeerState& p) { return p.member.name == m.name; });
    if (it != peers_.end()) {
      it->member = m;
      continue;
    }
    if (m.self) {
      PeerState self;
      self.member = m;
      self.mac = self_mac;
      self.neighbour = "self";
      peers_.insert(peers_.begin(), std::move(self));
      continue;
    }
    add_peer(m);
    added = true;
  }
  // A new member's MAC belongs in the peer-MAC map before packets it
  // forwards arrive, not at the next periodic refresh: unrecognised, they
  // would be balanced again here.
  if (added) refresh();
  return added;
}

// Reads each peer's neighbour entry: a resolved MAC goes to ClusterSync; an
// unresolved entry the kernel does not manage gets a resolution kick.
void NeighbourKeeper::refresh() {
  for (auto& p : peers_) {
    if (p.member.self) continue;
    auto n = netlink_.get_neighbour(ifindex_, p.member.address);
    if (!n) {
      p.neighbour = "none";
      if (auto ec = netlink_.kick_neighbour(ifindex_, p.member.address))
        spdlog::debug("kicking neighbour {}: {}", p.member.address.to_string(), ec.message());
      continue;
    }
    p.neighbour = n->state_name();
    if (!n->resolved() || !n->mac) {
      if (!n->managed()) {
        if (auto ec = netlink_.kick_neighbour(ifindex_, p.member.address))
          spdlog::debug("kicking neighbour {}: {}", p.member.address.to_string(), ec.message());
      }
      continue;
    }
    if (p.mac == n->mac) continue;
    if (auto r = sync_.set_peer_mac(p.member.id, *n->mac); !r) {
      spdlog::warn("{}", r.error().message());
      continue;
    }
    spdlog::info("peer {} ({}) is at {}", p.member.name, p.member.address.to_string(),
                 format_mac(*n->mac));
    p.mac = n->mac;
  }
}

void NeighbourKeeper::start() {
  if (*running_) return;
  // A fresh flag per run: a loop from an earlier run, still parked on its
  // cancelled wait, sees its own flag down and ends without touching this.
  running_ = std::make_shared<bool>(true);
  asio::co_spawn(
      io_,
      [this, running = running_]() -> asio::awaitable<void> {
        for (;;) {
          timer_.expires_after(refresh_);
          boost::system::error_code ec;
          co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
          if (ec || !*running) co_return;
          refresh();
        }
      },
      log_failure("neighbour keeper"));
}

void NeighbourKeeper::stop() {
  *running_ = false;
  timer_.cancel();
}

}  // namespace mixlb
