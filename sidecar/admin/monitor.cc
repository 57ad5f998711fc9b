#include "admin/monitor.h"

#include <algorithm>
#include <utility>

namespace mixlb {

struct MonitorHub::Core {
  MonitorLimits limits;
  Clock clock;
  mutable std::mutex mutex;
  std::vector<std::shared_ptr<Subscription>> subscribers;
  std::uint64_t dropped = 0;

  void remove(const Subscription* subscription) {
    const std::lock_guard lock(mutex);
    std::erase_if(subscribers, [&](const auto& s) { return s.get() == subscription; });
  }
};

// One subscriber's queue. Its lock is taken inside the hub's, never the
// other way round, and no callback runs under either.
class MonitorHub::Subscription final : public AdminStream {
 public:
  Subscription(std::weak_ptr<Core> core, int min_log_level)
      : core_(std::move(core)), min_log_level_(min_log_level) {}

  void on_ready(std::function<void()> wake) override {
    std::unique_lock lock(mutex_);
    wake_ = std::move(wake);
    const bool ready = !lines_.empty() || lost_ != 0;
    notified_ = ready;
    const auto call = ready ? wake_ : nullptr;
    lock.unlock();
    if (call) call();
  }

  std::string take() override {
    const std::lock_guard lock(mutex_);
    std::string out = std::exchange(lines_, {});
    queued_ = 0;
    if (lost_ != 0) {
      const MonitorEvent notice{EventsDropped{event_time(first_lost_), lost_, total_lost_}};
      out += nlohmann::json(notice).dump() + "\n";
      lost_ = 0;
    }
    notified_ = false;
    return out;
  }

  void close() override {
    if (const auto core = core_.lock()) core->remove(this);
  }

  // Queues `line` (the hub holds its own lock); returns the wake to call
  // once the hub has let go of it, if this line is the first since take().
  // Counts a line that does not fit in the hub's `dropped`.
  std::function<void()> push(const std::string& line, std::optional<int> log_level, Core& core) {
    const std::lock_guard lock(mutex_);
    if (log_level && *log_level < min_log_level_) return nullptr;
    if (queued_ + 1 > core.limits.lines || lines_.size() + line.size() > core.limits.bytes) {
      if (lost_ == 0) first_lost_ = core.clock();
      ++lost_;
      ++total_lost_;
      ++core.dropped;
    } else {
      lines_ += line;
      ++queued_;
    }
    if (notified_ || !wake_) return nullptr;
    notified_ = true;
    return wake_;
  }

 private:
  std::weak_ptr<Core> core_;
  const int min_log_level_;
  std::mutex mutex_;
  std::function<void()> wake_;
  bool notified_ = false;  // woken since the last take()
  std::string lines_;
  std::size_t queued_ = 0;
  std::uint64_t lost_ = 0;  // since the last take()
  std::uint64_t total_lost_ = 0;
  std::chrono::system_clock::time_point first_lost_{};
};

MonitorHub::MonitorHub(MonitorLimits limits, Clock clock) : core_(std::make_shared<Core>()) {
  core_->limits = limits;
  core_->clock = std::move(clock);
}

MonitorHub::~MonitorHub() = default;

std::shared_ptr<AdminStream> MonitorHub::subscribe(int min_log_level) {
  auto subscription = std::make_shared<Subscription>(core_, min_log_level);
  const std::lock_guard lock(core_->mutex);
  core_->subscribers.push_back(subscription);
  return subscription;
}

void MonitorHub::publish(const MonitorEvent& event) {
  std::optional<int> log_level;
  if (const auto* line = std::get_if<LogLine>(&event.event)) {
    log_level = log_level_rank(line->level).value_or(0);
  }
  std::vector<std::function<void()>> wakes;
  {
    const std::lock_guard lock(core_->mutex);
    if (core_->subscribers.empty()) return;
    const std::string line =
        nlohmann::json(event).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    for (const auto& subscriber : core_->subscribers) {
      if (auto wake = subscriber->push(line, log_level, *core_)) wakes.push_back(std::move(wake));
    }
  }
  for (const auto& wake : wakes) wake();
}

std::size_t MonitorHub::subscribers() const {
  const std::lock_guard lock(core_->mutex);
  return core_->subscribers.size();
}

std::uint64_t MonitorHub::dropped() const {
  const std::lock_guard lock(core_->mutex);
  return core_->dropped;
}

std::vector<MonitorEvent> ChangeWatch::update(ClusterView now, const std::string& time) {
  std::vector<MonitorEvent> events;
  if (!last_) {
    last_ = std::move(now);
    return events;
  }
  const ClusterView& last = *last_;
  for (const auto& [name, member] : now.members) {
    const auto was = last.members.find(name);
    if (was == last.members.end()) {
      events.push_back({MemberChange{time, name, member.state, std::nullopt, {}, {}, {}}});
      continue;
    }
    MemberChange change{time, name, member.state, was->second.state, {}, {}, {}};
    bool changed = was->second.state != member.state;
    if (member.weight && member.weight != was->second.weight) {
      change.weight = member.weight;
      change.previous_weight = was->second.weight;
      changed = true;
    }
    if (member.restarting != was->second.restarting) {
      change.restarting = member.restarting;
      changed = true;
    }
    if (changed) events.push_back({std::move(change)});
    if (name != now.self && member.app_healthy && was->second.app_healthy &&
        *member.app_healthy != *was->second.app_healthy) {
      events.push_back({HealthChange{time, name, *member.app_healthy, {}}});
    }
  }
  for (const auto& [name, member] : last.members) {
    if (!now.members.contains(name))
      events.push_back({MemberChange{time, name, "forgotten", member.state, {}, {}, {}}});
  }
  if (now.self_app_healthy && last.self_app_healthy &&
      *now.self_app_healthy != *last.self_app_healthy) {
    events.push_back({HealthChange{time, now.self, *now.self_app_healthy, now.self_app_reason}});
  }
  last_ = std::move(now);
  return events;
}

}  // namespace mixlb
