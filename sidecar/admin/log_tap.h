#pragma once
// The daemon's log lines for `mixlbctl monitor`: LogTap sends each line of
// the default spdlog logger, as a LogLine event, to a MonitorHub.
//
// spdlog does not guard a logger's list of sinks against threads that log
// meanwhile, so the tap's sink is added to a logger once, when the first
// LogTap is made (the daemon makes it before it starts any thread), and
// never removed; a LogTap only switches, under the sink's own lock, whether
// lines go to its hub. The sink reads the message as logged, before any
// pattern, so the log's format (text or JSON) does not matter.
#include <memory>

#include "admin/monitor.h"

namespace mixlb {

class LogTap {
 public:
  // Sends the default logger's lines to `hub` until destroyed.
  explicit LogTap(std::shared_ptr<MonitorHub> hub);
  ~LogTap();
  LogTap(const LogTap&) = delete;
  LogTap& operator=(const LogTap&) = delete;

 private:
  std::shared_ptr<MonitorHub> hub_;
};

}  // namespace mixlb
