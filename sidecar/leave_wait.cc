#include "leave_wait.h"

#include <fmt/format.h>

namespace mixlb {

LeaveWait::LeaveWait(Clock::time_point start, Clock::duration timeout, Clock::duration quiet)
    : deadline_(start + timeout),
      quiet_(quiet),
      quiet_since_(start),
      last_packet_(start),
      last_sample_(start) {}

LeaveWait::Verdict LeaveWait::sample(Clock::time_point now, std::optional<std::size_t> connections,
                                     std::uint64_t packets) {
  if (packets_ && packets != *packets_) last_packet_ = now;
  if (!packets_ || packets != *packets_ || !connections || *connections != 0) quiet_since_ = now;
  packets_ = packets;
  connections_ = connections;
  last_sample_ = now;
  if (now - quiet_since_ >= quiet_) return Verdict::kQuiet;
  if (now >= deadline_) return Verdict::kTimedOut;
  return Verdict::kWait;
}

std::string LeaveWait::state() const {
  return fmt::format("{} connection(s) on VIPs, last VIP packet {:.1f} s ago",
                     connections_ ? std::to_string(*connections_) : std::string("?"),
                     std::chrono::duration<double>(last_sample_ - last_packet_).count());
}

}  // namespace mixlb
