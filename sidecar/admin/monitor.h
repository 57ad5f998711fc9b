#pragma once
// The plumbing of `mixlbctl monitor`, with no I/O in it.
//
// MonitorHub hands each event (results.h: MonitorEvent) to every
// subscriber's queue. It may be called on any thread — the log sink
// (log_tap.h) runs on whichever thread logs, the gossip thread included —
// and never waits for a subscriber: a queue is bounded (lines and bytes), an
// event that does not fit is dropped and counted, and the subscriber's next
// take() ends with an "events dropped" line saying how many it lost. A
// subscriber is an AdminStream, so the admin server writes its lines and
// closes it when its client goes.
//
// ChangeWatch turns two views of the cluster into the events between them:
// members appearing, changing state, weight or restart flag, or forgotten,
// and app checks changing their verdict. The daemon gives it a view when
// the tables change and once a second, so it needs no hook into gossip.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "admin/admin_protocol.h"
#include "admin/results.h"

namespace mixlb {

struct MonitorLimits {
  std::size_t lines = 1024;       // per subscriber
  std::size_t bytes = 1u << 20;   // per subscriber
};

class MonitorHub {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;

  // `clock` stamps the "events dropped" lines.
  explicit MonitorHub(MonitorLimits limits = {}, Clock clock = std::chrono::system_clock::now);
  ~MonitorHub();
  MonitorHub(const MonitorHub&) = delete;
  MonitorHub& operator=(const MonitorHub&) = delete;

  // A subscriber that gets every member and health event, and the log lines
  // whose level ranks `min_log_level` (log_level_rank) or above. It stays
  // until it is closed.
  std::shared_ptr<AdminStream> subscribe(int min_log_level);

  // Queues `event` for each subscriber that wants it. Any thread.
  void publish(const MonitorEvent& event);

  std::size_t subscribers() const;
  // Events lost by every subscriber so far, counted once per subscriber.
  std::uint64_t dropped() const;

 private:
  class Subscription;
  struct Core;
  std::shared_ptr<Core> core_;
};

// What ChangeWatch compares.
struct WatchedMember {
  std::string state;  // kMemberStates
  std::optional<std::uint32_t> weight;
  std::optional<bool> app_healthy;
  bool restarting = false;
};

struct ClusterView {
  std::map<std::string, WatchedMember> members;  // gossip's records; empty without gossip
  std::string self;                              // this node's name
  std::optional<bool> self_app_healthy;          // its own check's verdict; unset without one
  std::string self_app_reason;                   // that check's last result
};

class ChangeWatch {
 public:
  // The events from the previous view to `now`, stamped `time`; none for
  // the first view. This node's app health comes from its own check (with
  // its reason), never from what it publishes about itself.
  std::vector<MonitorEvent> update(ClusterView now, const std::string& time);

 private:
  std::optional<ClusterView> last_;
};

}  // namespace mixlb
