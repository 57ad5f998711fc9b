#pragma once
// Close tracking (bpf/mixlb_close.bpf.c): a tracing program on
// inet_sock_set_state deletes this node's connection-table entry of every
// local TCP socket of a VIP that closes, and hands its key to the sidecar
// through a ring buffer; CloseTracker loads and attaches it on the XDP
// program's own maps and consumes the ring on the io_context's thread.
//
// The program is attached by a link this object owns, not pinned: while no
// sidecar runs, nothing consumes the ring, and closes are left to the
// sweeper. Loading needs CAP_BPF and CAP_PERFMON (tracing), and a kernel
// with BTF and tp_btf; without them the sidecar runs on, without it.
// clang-format off
#include <utility>
// clang-format on

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "kernel/abi.h"
#include "kernel/datapath.h"

struct mixlb_close;
struct bpf_link;
struct ring_buffer;

namespace mixlb {

struct CloseCounters {
  std::uint64_t seen = 0;       // sockets of a VIP that closed
  std::uint64_t deleted = 0;    // ... whose entry here was deleted
  std::uint64_t ring_full = 0;  // ... whose event was lost to a full ring
  std::uint64_t consumed = 0;   // events this object handed on
};

class CloseTracker {
 public:
  using OnClose = std::function<void(const mixlb_close_event&)>;

  // Loads the program on `program`'s mixlb_ct, mixlb_vips and mixlb_origins, attaches it,
  // and calls `on_close` on `io`'s thread for every event, in batches: the
  // events of `batch` after the one that woke it (zero: those the ring holds
  // when it wakes). While events wait unread the kernel wakes no one (its
  // ring buffer notifies only a consumer that has caught up), so a window
  // costs one wake-up however many closes it gathers.
  static DpResult<std::unique_ptr<CloseTracker>> start(boost::asio::io_context& io, const XdpProgram& program,
                                                       OnClose on_close,
                                                       std::chrono::milliseconds batch = {});
  ~CloseTracker();  // detaches, and hands on nothing more
  CloseTracker(const CloseTracker&) = delete;
  CloseTracker& operator=(const CloseTracker&) = delete;

  CloseCounters counters() const;

 private:
  explicit CloseTracker(boost::asio::io_context& io) : ring_fd_(io), batch_timer_(io) {}
  void wait();
  void consume();
  static int on_sample(void* self, void* data, std::size_t size);

  mixlb_close* skel_ = nullptr;
  bpf_link* link_ = nullptr;
  ring_buffer* ring_ = nullptr;
  boost::asio::posix::stream_descriptor ring_fd_;
  boost::asio::steady_timer batch_timer_;
  std::chrono::milliseconds batch_{};
  OnClose on_close_;
  std::uint64_t consumed_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mixlb
