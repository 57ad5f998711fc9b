#include "admin/log_tap.h"

#include <spdlog/details/null_mutex.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace mixlb {

namespace {

// The words of kLogLevels for spdlog's levels; nullptr for "off".
const char* level_word(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace: return "trace";
    case spdlog::level::debug: return "debug";
    case spdlog::level::info: return "info";
    case spdlog::level::warn: return "warn";
    case spdlog::level::err: return "error";
    case spdlog::level::critical: return "critical";
    default: return nullptr;
  }
}

// One per process. It takes no lock of spdlog's (null_mutex): its own lock
// guards only the list of hubs, and a hub is called outside it, so a hub
// that logs cannot deadlock the sink.
class TapSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 public:
  void attach(std::shared_ptr<MonitorHub> hub) {
    const std::lock_guard lock(mutex_);
    hubs_.push_back(std::move(hub));
  }
  void detach(const MonitorHub* hub) {
    const std::lock_guard lock(mutex_);
    std::erase_if(hubs_, [&](const auto& h) { return h.get() == hub; });
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const char* level = level_word(msg.level);
    if (level == nullptr) return;
    std::vector<std::shared_ptr<MonitorHub>> hubs;
    {
      const std::lock_guard lock(mutex_);
      if (hubs_.empty()) return;
      hubs = hubs_;
    }
    const MonitorEvent event{
        LogLine{event_time(msg.time), level, std::string(msg.payload.data(), msg.payload.size())}};
    for (const auto& hub : hubs) hub->publish(event);
  }
  void flush_() override {}

 private:
  std::mutex mutex_;
  std::vector<std::shared_ptr<MonitorHub>> hubs_;
};

const std::shared_ptr<TapSink>& tap_sink() {
  static const auto sink = std::make_shared<TapSink>();
  return sink;
}

}  // namespace

LogTap::LogTap(std::shared_ptr<MonitorHub> hub) : hub_(std::move(hub)) {
  auto& sinks = spdlog::default_logger()->sinks();
  if (std::find(sinks.begin(), sinks.end(), tap_sink()) == sinks.end()) sinks.push_back(tap_sink());
  tap_sink()->attach(hub_);
}

LogTap::~LogTap() { tap_sink()->detach(hub_.get()); }

}  // namespace mixlb
