// Connection life-cycle benchmark, the parts one process can measure; the
// invalidation latency between nodes is measured on the integration topology
// by integration/bench-invalidate.sh (./dev bench conntrack runs both). One
// JSON object per line.
//
//   track_rate        close tracking under a burst of real closes: loopback
//                     TCP connections to a VIP in a network namespace of
//                     the benchmark's own, each accepted and closed by the
//                     server with a reset, from two threads; the real
//                     close-tracking program on a real program's maps, its
//                     ring consumed on the main thread as the sidecar does,
//                     into a targeted-mode invalidator.
//                     closes_per_s is the rate the events were consumed at
//                     (the generator's rate bounds it); lost is what the
//                     ring dropped plus what never reached the consumer.
//   track_drain       the consumer alone: closes made while it waits, then
//                     how fast it takes them from the ring (the sidecar's
//                     side of the rate; the kernel's runs in each closing
//                     thread)
//   sweep_nothing_idle, sweep_all_idle
//                     sweep_conntrack() of a full table (65,536 entries):
//                     the steady state (nothing idle: one walk), and
//                     removing every entry (a walk, a lookup and a delete
//                     each)
//   sweep_bpf_nothing_idle, sweep_bpf_all_idle
//                     the same two sweeps of the same full table done in the
//                     kernel (bpf/ct_sweep.bpf.c: bpf_for_each_map_elem, the
//                     engine a BPF timer would run), one BPF_PROG_RUN each;
//                     us is the syscall's wall time, all of it in the kernel
//   invalidate_apply  what a forwarding node pays to apply received
//                     invalidations: a full table's entries deleted in
//                     datagram-sized batches (95 IPv4 flows) by the
//                     per-flow lookup-and-delete syscalls
//                     (DatapathMaps::invalidate) and by the in-kernel
//                     program, one run per batch (kernel/ct_invalidate.h),
//                     alternating over three rounds on a refilled table;
//                     flows_per_s of each is the median, speedup their ratio
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "cluster/cluster_sync.h"
#include "cluster/node_id.h"
#include "bench_common.h"
#include "kernel/bpffs.h"
#include "kernel/bpf_object.h"
#include "kernel/close_tracker.h"
#include "kernel/ct_invalidate.h"
#include "kernel/conntrack_walk.h"
#include "kernel/datapath.h"
#include "invalidator.h"
#include "ct_sweep.skel.h"

namespace mixlb {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what) {
  std::string escaped;
  for (char c : what) escaped += (c == '"' || c == '\\') ? '\'' : c;
  std::printf("{\"bench\": \"conntrack\", \"error\": \"%s\"}\n", escaped.c_str());
  std::exit(1);
}

void sh(const std::string& cmd) {
  if (std::system((cmd + " >/dev/null 2>&1").c_str()) != 0) die("failed: " + cmd);
}

sockaddr_in at(const char* ip, std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

// One generator thread: `n` connections to its own listener on the VIP,
// each accepted and reset by the server (its socket goes to CLOSE at once).
void generate(std::uint16_t port, std::size_t n) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in vip = at("10.100.0.1", port);
  if (::bind(listener, reinterpret_cast<sockaddr*>(&vip), sizeof(vip)) != 0 || ::listen(listener, 1024) != 0)
    die("listening on the VIP");
  const linger reset{1, 0};
  sockaddr_in client_at = at("10.0.0.1", 0);
  for (std::size_t i = 0; i < n; ++i) {
    const int c = ::socket(AF_INET, SOCK_STREAM, 0);
    ::setsockopt(c, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    ::bind(c, reinterpret_cast<sockaddr*>(&client_at), sizeof(client_at));  // not the VIP
    if (::connect(c, reinterpret_cast<sockaddr*>(&vip), sizeof(vip)) != 0) die("connecting to the VIP");
    const int s = ::accept(listener, nullptr, nullptr);
    if (s < 0) die("accepting");
    ::setsockopt(s, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    ::close(s);
    ::close(c);
  }
  ::close(listener);
}

void track_rate() {
  if (::unshare(CLONE_NEWNET) != 0) die("unshare(CLONE_NEWNET)");
  sh("ip link set lo up");
  sh("ip addr add 10.100.0.1/32 dev lo");
  sh("ip addr add 10.0.0.1/32 dev lo");  // the clients' address
  DatapathSettings settings;
  settings.self_node_id = node_id_for("mix1");
  settings.ring_size = 251;
  settings.max_vips = 4;
  settings.max_nodes = 4;
  settings.conntrack_entries = 4096;
  auto loaded = XdpProgram::load(settings);
  if (!loaded) die(loaded.error().message());
  ClusterSync sync((*loaded)->maps(), settings.max_vips);
  VipEntry vip;
  vip.key = make_vip_key(*Address::parse("10.100.0.1"), 0, 6);  // every port
  vip.label = vip_label(vip.key);
  const std::vector<Member> members{Member{"mix1", settings.self_node_id, *Address::parse("127.0.0.1"), 1, true},
                                    Member{"mix2", node_id_for("mix2"), *Address::parse("127.0.0.2"), 1, false},
                                    Member{"mix3", node_id_for("mix3"), *Address::parse("127.0.0.3"), 1, false}};
  const std::vector<VipEntry> vips{vip};
  if (auto r = sync.apply(members, vips); !r) die(r.error().message());

  // The consumer is the sidecar's: each close goes to a targeted-mode
  // invalidator, sealed; these closes have no recorded origin, so each is
  // sent to both peers (the mode's costliest path).
  boost::asio::io_context io;
  InvalidatorSettings is;
  is.mode = InvalidationMode::kTargeted;
  is.self_id = settings.self_node_id;
  is.self_address = *Address::parse("127.0.0.1");
  is.cluster = "bench";
  is.keys = {gossip::generate_key()};
  Invalidator invalidator(io, is, (*loaded)->maps());
  std::string what;
  if (auto ec = invalidator.start(what)) die(what + ": " + ec.message());
  std::size_t consumed = 0;
  auto tracker = CloseTracker::start(io, **loaded, [&](const mixlb_close_event& e) {
    ++consumed;
    invalidator.on_close(e);
  });
  if (!tracker) die(tracker.error().message());

  constexpr unsigned kThreads = 2;
  constexpr std::size_t kPerThread = 100000;
  const auto start = Clock::now();
  std::atomic<unsigned> done{0};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      generate(static_cast<std::uint16_t>(8000 + t), kPerThread);
      ++done;
    });
  while (done < kThreads) io.run_for(std::chrono::milliseconds(5));
  for (auto& t : threads) t.join();
  const double generated_s = std::chrono::duration<double>(Clock::now() - start).count();
  // What is still in the ring after the last close.
  const auto drain_end = Clock::now() + std::chrono::seconds(2);
  while (consumed < kThreads * kPerThread && Clock::now() < drain_end) io.run_for(std::chrono::milliseconds(5));
  const double s = std::chrono::duration<double>(Clock::now() - start).count();
  const CloseCounters c = (*tracker)->counters();
  std::printf("{\"bench\": \"conntrack\", \"case\": \"track_rate\", \"closes\": %zu, \"seen\": %llu, "
              "\"closes_per_s\": %.0f, \"lost\": %llu, \"ring_full\": %llu, \"generated_per_s\": %.0f}\n",
              consumed, static_cast<unsigned long long>(c.seen), consumed / s,
              static_cast<unsigned long long>(c.seen - consumed), static_cast<unsigned long long>(c.ring_full),
              kThreads * kPerThread / generated_s);

  // The consumer alone: closes made while it waits fill the ring (within
  // its 256 KiB), then it drains them.
  const std::size_t before = consumed;
  const std::uint64_t datagrams_before = invalidator.counters().sent_messages;
  constexpr std::size_t kBacklog = 3000;
  generate(8100, kBacklog);
  const auto drain_start = Clock::now();
  while (consumed < before + kBacklog && Clock::now() < drain_start + std::chrono::seconds(2)) io.poll();
  io.poll();  // the flush of the last batch: its datagrams
  const double drain_s = std::chrono::duration<double>(Clock::now() - drain_start).count();
  const CloseCounters after = (*tracker)->counters();
  std::printf("{\"bench\": \"conntrack\", \"case\": \"track_drain\", \"closes\": %zu, \"closes_per_s\": %.0f, "
              "\"lost\": %llu, \"invalidation_datagrams\": %llu, \"send_errors\": %llu}\n",
              consumed - before, (consumed - before) / drain_s,
              static_cast<unsigned long long>(after.seen - consumed),
              static_cast<unsigned long long>(invalidator.counters().sent_messages - datagrams_before),
              static_cast<unsigned long long>(invalidator.counters().send_errors));
}

const SweepRules kDefaultRules{.udp_idle_ns = 120'000'000'000ull,
                              .tcp_closing_idle_ns = 30'000'000'000ull,
                              .tcp_idle_ns = 3'600'000'000'000ull};

// The in-kernel sweep (bpf/ct_sweep.bpf.c) on the program's own table.
class BpfSweep {
 public:
  explicit BpfSweep(int ct_fd) : skel_(ct_sweep__open()) {
    if (!skel_) die("opening ct_sweep.bpf.o");
    if (auto shared = share_map(skel_->maps.mixlb_ct, ct_fd, "ct_sweep.bpf.o"); !shared)
      die(shared.error().message());
    if (int err = ct_sweep__load(skel_); err != 0) die("loading ct_sweep.bpf.o: " + std::string(std::strerror(-err)));
  }
  ~BpfSweep() { ct_sweep__destroy(skel_); }
  BpfSweep(const BpfSweep&) = delete;
  BpfSweep& operator=(const BpfSweep&) = delete;

  struct Run {
    std::uint64_t walked = 0, removed = 0;
    double us = 0;
  };
  Run run(const SweepRules& rules) {
    skel_->bss->udp_idle_ns = rules.udp_idle_ns;
    skel_->bss->tcp_closing_idle_ns = rules.tcp_closing_idle_ns;
    skel_->bss->tcp_idle_ns = rules.tcp_idle_ns;
    skel_->bss->now_ns = coarse_now_ns();
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    const auto start = Clock::now();
    if (bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.ct_sweep), &opts) != 0)
      die("running ct_sweep: " + std::string(std::strerror(errno)));
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
    return {skel_->bss->walked, skel_->bss->removed, us};
  }

 private:
  ct_sweep* skel_;
};

// The sidecar's sweep and the kernel's, each on a full table: nothing idle
// (the steady state), then every entry idle (the table refilled between).
void sweep_cost() {
  auto pinned = bench::load_pinned("conntrack-bench", [](const std::string& what) { die(what); });
  const DatapathSettings& settings = pinned->settings;
  const std::vector<std::uint32_t> nodes{node_id_for("mix1"), node_id_for("mix2"), node_id_for("mix3")};
  bench::fill_conntrack(pinned->program->maps(), MIXLB_DEFAULT_CT_ENTRIES, nodes);
  auto ct = open_pinned_conntrack(settings.pin_dir);
  if (!ct) die(ct.error().message());
  const SweepRules& defaults = kDefaultRules;
  std::size_t walked = 0;
  const double keep = bench::median_us(5, [&] {
    auto r = sweep_conntrack(ct->get(), defaults);
    if (!r || r->removed() != 0) die("a sweep of fresh entries removed some or failed");
    walked = r->walked;
  });
  std::printf("{\"bench\": \"conntrack\", \"case\": \"sweep_nothing_idle\", \"entries\": %zu, \"us\": %.1f, "
              "\"entries_per_s\": %.0f}\n",
              walked, keep, walked / (keep / 1e6));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // past the coarse clock's tick
  const auto start = Clock::now();
  auto all = sweep_conntrack(ct->get(), SweepRules{.tcp_idle_ns = 1});
  const double took = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
  if (!all) die(all.error().message());
  std::printf("{\"bench\": \"conntrack\", \"case\": \"sweep_all_idle\", \"entries\": %zu, \"removed\": %zu, "
              "\"us\": %.1f, \"removed_per_s\": %.0f}\n",
              all->walked, all->removed(), took, all->removed() / (took / 1e6));

  bench::fill_conntrack(pinned->program->maps(), MIXLB_DEFAULT_CT_ENTRIES, nodes);
  BpfSweep bpf_sweep(ct->get());
  BpfSweep::Run kept;
  const double bpf_keep = bench::median_us(5, [&] {
    kept = bpf_sweep.run(defaults);
    if (kept.removed != 0) die("the in-kernel sweep of fresh entries removed some");
  });
  std::printf("{\"bench\": \"conntrack\", \"case\": \"sweep_bpf_nothing_idle\", \"entries\": %llu, \"us\": %.1f, "
              "\"entries_per_s\": %.0f}\n",
              static_cast<unsigned long long>(kept.walked), bpf_keep, kept.walked / (bpf_keep / 1e6));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const BpfSweep::Run gone = bpf_sweep.run(SweepRules{.tcp_idle_ns = 1});
  if (gone.removed != gone.walked) die("the in-kernel sweep of an idle table left entries");
  std::printf("{\"bench\": \"conntrack\", \"case\": \"sweep_bpf_all_idle\", \"entries\": %llu, \"removed\": %llu, "
              "\"us\": %.1f, \"removed_per_s\": %.0f}\n",
              static_cast<unsigned long long>(gone.walked), static_cast<unsigned long long>(gone.removed), gone.us,
              gone.removed / (gone.us / 1e6));
}

// Both ways of applying invalidations, each on a full table of entries that
// point at the sender (every one is deleted), in batches the size of an
// invalidation datagram's.
void invalidate_cost() {
  auto pinned = bench::load_pinned("conntrack-inval", [](const std::string& what) { die(what); });
  DatapathMaps& maps = pinned->program->maps();
  const std::uint32_t sender = node_id_for("mix2");
  auto kernel = CtInvalidateProgram::load(maps.conntrack_fd());
  if (!kernel) die(kernel.error().message());
  constexpr std::size_t kTotal = 60000;  // within the table (65,536) on every CPU's share
  constexpr std::size_t kBatch = 95;     // IPv4 flows in one 1,400-byte datagram
  std::vector<mixlb_flow_key> keys;
  keys.reserve(kTotal);
  for (std::size_t i = 0; i < kTotal; ++i) keys.push_back(bench::conntrack_key(i));
  auto per_flow = [&] {
    std::size_t deleted = 0;
    for (const mixlb_flow_key& k : keys) {
      auto d = maps.invalidate(k, sender);
      if (!d) die(d.error().message());
      deleted += *d ? 1 : 0;
    }
    return deleted;
  };
  auto in_kernel = [&] {
    std::size_t deleted = 0;
    for (std::size_t at = 0; at < keys.size(); at += kBatch) {
      auto d = (*kernel)->apply(std::span(keys).subspan(at, std::min(kBatch, keys.size() - at)), sender);
      if (!d) die(d.error().message());
      deleted += *d;
    }
    return deleted;
  };
  std::vector<double> per_flow_s, in_kernel_s;
  for (int round = 0; round < 6; ++round) {
    const bool kernel_turn = round % 2 == 1;
    bench::fill_conntrack(maps, kTotal, {sender});
    const auto start = Clock::now();
    const std::size_t deleted = kernel_turn ? in_kernel() : per_flow();
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    if (deleted != kTotal) die("an apply deleted " + std::to_string(deleted) + " of " + std::to_string(kTotal));
    (kernel_turn ? in_kernel_s : per_flow_s).push_back(s);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double a = kTotal / median(per_flow_s), b = kTotal / median(in_kernel_s);
  std::printf("{\"bench\": \"conntrack\", \"case\": \"invalidate_apply\", \"flows\": %zu, \"batch\": %zu, "
              "\"per_flow_per_s\": %.0f, \"in_kernel_per_s\": %.0f, \"speedup\": %.2f}\n",
              kTotal, kBatch, a, b, b / a);
}

int run() {
  if (::geteuid() != 0) {
    std::printf("{\"bench\": \"conntrack\", \"skipped\": \"not root (loading the programs needs it)\"}\n");
    return 0;
  }
  sweep_cost();  // first: it pins under the host's bpffs, before the namespace changes
  invalidate_cost();
  track_rate();
  return 0;
}

}  // namespace
}  // namespace mixlb

int main() { return mixlb::run(); }
