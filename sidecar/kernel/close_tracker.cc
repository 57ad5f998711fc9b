#include "kernel/close_tracker.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "kernel/bpf_object.h"
#include "mixlb_close.skel.h"

namespace mixlb {

DpResult<std::unique_ptr<CloseTracker>> CloseTracker::start(boost::asio::io_context& io, const XdpProgram& program,
                                                            OnClose on_close, std::chrono::milliseconds batch) {
  std::unique_ptr<CloseTracker> self(new CloseTracker(io));
  self->on_close_ = std::move(on_close);
  self->batch_ = batch;
  self->skel_ = mixlb_close__open();
  if (!self->skel_) return datapath_failure("opening the close-tracking BPF object", errno);
  auto* skel = self->skel_;
  struct stat netns {};
  if (::stat("/proc/thread-self/ns/net", &netns) != 0) return datapath_failure("close tracking: reading this network namespace", errno);
  skel->rodata->mixlb_netns_ino = static_cast<__u32>(netns.st_ino);
  for (auto [map, name] : {std::pair{skel->maps.mixlb_ct, "mixlb_ct"}, std::pair{skel->maps.mixlb_vips, "mixlb_vips"},
                           std::pair{skel->maps.mixlb_origins, "mixlb_origins"}}) {
    const int fd = program.map_fd(name);
    if (fd < 0) return datapath_failure(std::string("close tracking: the XDP program has no map ") + name, ENOENT);
    if (auto shared = share_map(map, fd, "close tracking"); !shared) return std::unexpected(shared.error());
  }
  if (int err = mixlb_close__load(skel); err != 0) {
    std::string what = "loading the close-tracking program";
    if (err == -EPERM || err == -EACCES) what += " (it needs CAP_BPF and CAP_PERFMON)";
    return datapath_failure(what, err);
  }
  self->link_ = bpf_program__attach(skel->progs.mixlb_close);
  if (!self->link_) return datapath_failure("attaching the close-tracking program to inet_sock_set_state", errno);
  self->ring_ = ring_buffer__new(bpf_map__fd(skel->maps.mixlb_closes), &CloseTracker::on_sample, self.get(), nullptr);
  if (!self->ring_) return datapath_failure("opening the close-tracking ring buffer", errno);
  // The stream descriptor owns what it is given: a duplicate of the ring's
  // epoll fd, which ring_buffer__free() closes itself.
  const int epoll = ::dup(ring_buffer__epoll_fd(self->ring_));
  if (epoll < 0) return datapath_failure("close tracking: dup of the ring's epoll fd", errno);
  self->ring_fd_.assign(epoll);
  self->wait();
  return self;
}

CloseTracker::~CloseTracker() {
  *alive_ = false;
  boost::system::error_code ec;
  ring_fd_.close(ec);
  if (ring_) ring_buffer__free(ring_);
  if (link_) bpf_link__destroy(link_);
  if (skel_) mixlb_close__destroy(skel_);
}

void CloseTracker::wait() {
  ring_fd_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                      [this, alive = alive_](const boost::system::error_code& ec) {
                        if (ec || !*alive) return;
                        if (batch_.count() == 0) return consume();
                        batch_timer_.expires_after(batch_);
                        batch_timer_.async_wait([this, alive](const boost::system::error_code& ec) {
                          if (!ec && *alive) consume();
                        });
                      });
}

void CloseTracker::consume() {
  if (const int n = ring_buffer__consume(ring_); n < 0)
    spdlog::warn("close tracking: reading the ring buffer: {}", std::error_code(-n, std::generic_category()).message());
  wait();
}

int CloseTracker::on_sample(void* ctx, void* data, std::size_t size) {
  auto* self = static_cast<CloseTracker*>(ctx);
  if (size < sizeof(mixlb_close_event)) return 0;
  mixlb_close_event event{};
  std::memcpy(&event, data, sizeof(event));
  ++self->consumed_;
  if (self->on_close_) self->on_close_(event);
  return 0;
}

CloseCounters CloseTracker::counters() const {
  CloseCounters out;
  out.consumed = consumed_;
  const int fd = bpf_map__fd(skel_->maps.mixlb_close_stats);
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return out;
  std::vector<std::uint64_t> values(static_cast<std::size_t>(cpus));
  for (std::uint32_t which : {std::uint32_t{MIXLB_CLOSE_SEEN}, std::uint32_t{MIXLB_CLOSE_DELETED},
                              std::uint32_t{MIXLB_CLOSE_RING_FULL}}) {
    if (bpf_map_lookup_elem(fd, &which, values.data()) != 0) continue;
    std::uint64_t sum = 0;
    for (auto v : values) sum += v;
    (which == MIXLB_CLOSE_SEEN ? out.seen : which == MIXLB_CLOSE_DELETED ? out.deleted : out.ring_full) = sum;
  }
  return out;
}

}  // namespace mixlb
