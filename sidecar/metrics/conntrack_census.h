#pragma once
// A count of the connection table for /metrics: how full it is, and per
// (VIP, node) how many flows it holds, by what their last packets said.
//
// The table is an LRU hash, and the kernel keeps no element count for it
// that user space can read, so the only way to know how full it is, is to
// walk it. The walk reads keys and values in batches (BPF_MAP_LOOKUP_BATCH,
// a few thousand entries per system call, kernel 5.6 and later; mixlb needs
// 5.9 for its XDP link already), so a full table of 65,536 entries costs 16
// calls and 4 MiB copied, not 65,536 lookups. It runs concurrently with the
// data path, which may insert and evict meanwhile: the figures are a
// census, not a snapshot, and may be off by the flows that moved during the
// walk. It only reads, so it may run on any thread.
//
// What "active" means. With direct server return the data path sees only
// the client's half of a connection, and an LRU entry is never removed when
// its connection ends, so the table cannot say how many connections are
// established, as ipvsadm's ActiveConn does. It can say what the client
// last did: a TCP flow whose client sent FIN or RST is closing; a flow with
// a packet within the active window is active; any other one is idle (an
// entry the LRU will evict when the table needs the room). These are the
// three states of mixlb_conntrack_flows.
//
// Its cost is the kernel's: the batched walk still locks each hash bucket
// and copies each bucket out on its own, 0.4 to 1.5 µs per entry on the
// 2-CPU VM of test/bench/metrics_bench.cc (quiet to busy) — 28 to 95 ms
// for a full table of 65,536 entries, growing linearly with the entries.
// ConntrackWalker therefore runs it on a thread of its own, and the
// io_context's thread only awaits the result.
//
// The census opens the map pinned under the data path's pin directory
// (open_pinned_conntrack, kernel/conntrack_walk.h), checked to have the
// connection table's type and sizes, because DatapathMaps does not hand out
// its file descriptor.
// clang-format off
// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>
// clang-format on

#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "kernel/abi.h"
#include "kernel/conntrack_walk.h"
#include "kernel/datapath.h"
#include "kernel/unique_fd.h"
#include "metrics/answer_within.h"

namespace mixlb::metrics {

enum class FlowState : std::uint8_t { kActive, kClosing, kIdle };
std::string_view to_string(FlowState state);
inline constexpr FlowState kFlowStates[] = {FlowState::kActive, FlowState::kClosing,
                                            FlowState::kIdle};

struct ConntrackCensusOptions {
  // A flow with a packet this recent is active. The data path refreshes an
  // entry's time at most every MIXLB_CT_TOUCH_NS (100 ms), well below this.
  std::chrono::seconds active_window{60};
  // Entries per system call; grown when a hash bucket holds more.
  std::uint32_t batch = 4096;
  // How long take() waits for the taker's thread before it gives up (the
  // walk goes on; a full table of a million entries takes about a second).
  std::chrono::milliseconds deadline{4000};
};

struct ConntrackCensus {
  struct Key {
    std::uint32_t vip_id = 0;
    std::uint32_t node_id = 0;
    FlowState state = FlowState::kActive;
    friend auto operator<=>(const Key&, const Key&) = default;
  };
  std::size_t entries = 0;
  std::size_t capacity = 0;  // the map's max_entries
  std::map<Key, std::size_t> flows;
  std::chrono::nanoseconds took{0};  // how long the walk took
};

// What a flow's entry says about it at `now_ns` (CLOCK_MONOTONIC_COARSE, the
// clock of bpf_ktime_get_coarse_ns).
FlowState classify_flow(const mixlb_flow_key& key, const mixlb_ct_value& value,
                        std::uint64_t now_ns, std::chrono::nanoseconds active_window);

// Walks the connection table behind `ct_fd` once.
DpResult<ConntrackCensus> take_conntrack_census(int ct_fd,
                                                const ConntrackCensusOptions& options = {});

// Walks one table on a thread of its own, so that a walk of a large table
// never holds the io_context's thread: the censuses of /metrics and the
// listings of `mixlbctl ct`.
//
// The walk is a plain function posted to that thread, and its result comes
// back through answer_within(): no coroutine runs on the walker's thread.
// (With g++ 12 and Boost 1.74, awaiting co_spawn() of a lambda coroutine
// with use_awaitable destroys the lambda's captures twice; a shared_ptr
// captured that way is released one time too many.)
class ConntrackWalker {
 public:
  explicit ConntrackWalker(UniqueFd ct, ConntrackCensusOptions options = {});
  // Waits for a walk under way; walks queued behind it are dropped, and the
  // calls awaiting them end at their deadline.
  ~ConntrackWalker();
  ConntrackWalker(const ConntrackWalker&) = delete;
  ConntrackWalker& operator=(const ConntrackWalker&) = delete;

  // One census, taken on the walker's thread; the caller resumes on its own
  // executor (which must run one handler at a time, see answer_within.h).
  // Concurrent calls queue on that one thread. An error when the census
  // did not come back within options.deadline.
  boost::asio::awaitable<DpResult<ConntrackCensus>> take();

  // Any walk: `walk(fd)` on the walker's thread, as take() runs the census;
  // `what` names it in the error of a walk that did not come back in time.
  template <class R>
  boost::asio::awaitable<DpResult<R>> run(std::function<DpResult<R>(int fd)> walk, std::string what);

 private:
  struct Table {
    UniqueFd fd;
    ConntrackCensusOptions options;
  };
  std::shared_ptr<const Table> table_;
  boost::asio::thread_pool thread_{1};
};

// g++ 12 can inline Asio's frame allocator into a coroutine's ramp but not
// its matching operator delete, then reports the pair as mismatched (see
// admin_server.cc); the pair is Asio's own.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

template <class R>
boost::asio::awaitable<DpResult<R>> ConntrackWalker::run(std::function<DpResult<R>(int fd)> walk,
                                                         std::string what) {
  // The walk holds the table (and its fd) by a shared pointer, so a walk
  // finishing after the walker is gone still reads an open descriptor.
  // `ask` is named, not a lambda in the co_await expression: see
  // answer_within.h for what g++ 12 does to such a temporary.
  using Result = DpResult<R>;
  const std::function<void(std::function<void(Result)>)> ask =
      [table = table_, thread = thread_.get_executor(), walk = std::move(walk)](std::function<void(Result)> done) {
        boost::asio::post(thread, [table, walk, done = std::move(done)] { done(walk(table->fd.get())); });
      };
  const boost::asio::any_io_executor executor = co_await boost::asio::this_coro::executor;
  auto result = co_await answer_within<Result>(executor, table_->options.deadline, ask);
  if (result) co_return std::move(*result);
  co_return std::unexpected(DatapathError{
      what + " did not finish within " + std::to_string(table_->options.deadline.count()) + " ms",
      std::make_error_code(std::errc::timed_out)});
}

#pragma GCC diagnostic pop

}  // namespace mixlb::metrics
