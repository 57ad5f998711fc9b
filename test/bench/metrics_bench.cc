// Scrape cost benchmark: what one /metrics scrape costs the sidecar's
// io_context thread, part by part, for a 3-node, 6-VIP node. One JSON
// object per line; each figure is the median of its runs, in microseconds.
//
//   render      render_metrics() of the figures (families, escaping,
//               sorting, the text), no system call
//   read        read_datapath(): the global, per-VIP and per-(VIP, node)
//               per-CPU counters of the real program, through ClusterSync
//   census      take_conntrack_census() of the pinned connection table, at
//               the fills given (entries; the table holds 65,536)
//   scrape      read + census + render, as the daemon's handler does them
//   sweep_*     sweep_conntrack() of the full table: finding nothing idle
//               (the sweeper's steady state), and removing every entry
//
// The program is the real one, loaded (not attached) with its maps pinned
// under a bpffs directory of this process's own, removed at the end. The
// connection table is filled through DatapathMaps from one thread pinned to
// each CPU: its LRU lists are per CPU, and a CPU can fill only its share.
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <arpa/inet.h>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "../sidecar/metrics/figures.h"
#include "cluster/cluster_sync.h"
#include "cluster/node_id.h"
#include "kernel/bpffs.h"
#include "kernel/conntrack_walk.h"
#include "kernel/datapath.h"
#include "metrics/collect.h"
#include "metrics/conntrack_census.h"

namespace mixlb {
namespace {

using Clock = std::chrono::steady_clock;

// The median duration of `runs` calls of `f`, in microseconds.
double median_us(int runs, const std::function<void()>& f) {
  std::vector<double> us;
  us.reserve(runs);
  for (int i = 0; i < runs; ++i) {
    const auto start = Clock::now();
    f();
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  std::nth_element(us.begin(), us.begin() + runs / 2, us.end());
  return us[runs / 2];
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += (c == '\n' || c == '\t') ? ' ' : c;
  }
  return out;
}

[[noreturn]] void die(const std::string& what) {
  std::printf("{\"bench\": \"metrics\", \"error\": \"%s\"}\n", json_escape(what).c_str());
  std::exit(1);
}

// Fills the table up to `total` entries, an equal share from each CPU.
void fill(DatapathMaps& maps, std::size_t total, const std::vector<std::uint32_t>& nodes) {
  const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> threads;
  for (unsigned cpu = 0; cpu < cpus; ++cpu) {
    threads.emplace_back([&, cpu] {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
      const std::uint64_t now = coarse_now_ns();
      for (std::size_t i = cpu; i < total; i += cpus) {
        mixlb_flow_key k{};
        k.src[0] = htonl(0xc6120000u + static_cast<std::uint32_t>(i));  // 198.18.0.0/15
        k.dst[0] = htonl(0x0a640001u + static_cast<std::uint32_t>(i % 6));
        k.sport = htons(static_cast<std::uint16_t>(1024 + i % 60000));
        k.dport = htons(80);
        k.proto = 6;
        k.family = MIXLB_AF_INET;
        mixlb_ct_value v{};
        v.last_seen_ns = now;
        v.vip_id = static_cast<std::uint16_t>(i % 6);
        v.node_id = nodes[i % nodes.size()];
        v.flags = MIXLB_CT_SEEN_SYN;
        if (!maps.conntrack_insert(k, v)) return;
      }
    });
  }
  for (auto& t : threads) t.join();
}

int run() {
  const auto figures = test::realistic_figures();
  const double render = median_us(2000, [&] { (void)metrics::render_metrics(figures); });
  std::printf("{\"bench\": \"metrics\", \"case\": \"render\", \"nodes\": 3, \"vips\": 6, \"us\": %.1f, "
              "\"bytes\": %zu}\n",
              render, metrics::render_metrics(figures).size());

  // The rest needs the real program and a bpffs: a skip, not a failure.
  if (::geteuid() != 0) {
    std::printf("{\"bench\": \"metrics\", \"skipped\": \"not root (loading the program and "
                "pinning its maps need it)\"}\n");
    return 0;
  }
  const std::string root = "/sys/fs/bpf/mixlb-metrics-bench-" + std::to_string(::getpid());
  DatapathSettings settings;
  settings.self_node_id = node_id_for("mix1");
  settings.ring_size = 251;
  settings.max_vips = 16;
  settings.max_nodes = 16;
  settings.conntrack_entries = MIXLB_DEFAULT_CT_ENTRIES;
  settings.pin_dir = root + "/mix1";
  if (auto ready = ensure_bpffs(settings.pin_dir); !ready) die(ready.error());
  auto loaded = XdpProgram::load(settings);
  if (!loaded) die(loaded.error().message());
  auto& prog = **loaded;
  struct Cleanup {
    std::string root;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(root, ec);
    }
  } cleanup{root};

  ClusterSync sync(prog.maps(), settings.max_vips);
  std::vector<Member> members;
  const char* names[] = {"mix1", "mix2", "mix3"};
  for (int i = 0; i < 3; ++i) {
    members.push_back(Member{names[i], node_id_for(names[i]),
                             *Address::parse("10.0.0." + std::to_string(11 + i)), 1, i == 0});
  }
  std::vector<VipEntry> vips;
  for (const char* address : {"10.100.0.1", "10.100.0.2", "fd00:100::1"}) {
    for (const std::uint16_t port : {80, 443}) {
      VipEntry v;
      v.key = make_vip_key(*Address::parse(address), port, 6);
      v.label = vip_label(v.key);
      vips.push_back(v);
    }
  }
  if (auto r = sync.apply(members, vips); !r) die(r.error().message());
  std::vector<PeerState> peers;
  std::vector<std::uint32_t> node_ids;
  for (const auto& m : members) {
    peers.push_back(PeerState{m, std::nullopt, "self", false, false});
    node_ids.push_back(m.id);
  }

  const double read = median_us(2000, [&] {
    if (!metrics::read_datapath(prog.maps(), sync, vips, peers)) die("read_datapath failed");
  });
  std::printf("{\"bench\": \"metrics\", \"case\": \"read\", \"nodes\": 3, \"vips\": 6, \"cpus\": %u, "
              "\"us\": %.1f}\n",
              std::thread::hardware_concurrency(), read);

  auto ct = open_pinned_conntrack(settings.pin_dir);
  if (!ct) die(ct.error().message());
  std::size_t filled = 0;
  for (const std::size_t target : {std::size_t{0}, std::size_t{1000}, std::size_t{16384},
                                   std::size_t{MIXLB_DEFAULT_CT_ENTRIES}}) {
    fill(prog.maps(), target, node_ids);
    filled = target;
    std::size_t entries = 0;
    const double census = median_us(20, [&] {
      auto c = metrics::take_conntrack_census(ct->get());
      if (!c) die(c.error().message());
      entries = c->entries;
    });
    std::printf("{\"bench\": \"metrics\", \"case\": \"census\", \"fill\": %zu, \"entries\": %zu, "
                "\"capacity\": %u, \"us\": %.1f}\n",
                filled, entries, MIXLB_DEFAULT_CT_ENTRIES, census);
  }

  std::size_t bytes = 0;
  const double scrape = median_us(20, [&] {
    metrics::MetricsFigures f = figures;
    auto d = metrics::read_datapath(prog.maps(), sync, vips, peers);
    auto c = metrics::take_conntrack_census(ct->get());
    if (!d || !c) die("scrape failed");
    f.datapath = std::move(*d);
    f.conntrack = std::move(*c);
    bytes = metrics::render_metrics(f).size();
  });
  std::printf("{\"bench\": \"metrics\", \"case\": \"scrape\", \"nodes\": 3, \"vips\": 6, "
              "\"conntrack_fill\": %zu, \"us\": %.1f, \"bytes\": %zu}\n",
              filled, scrape, bytes);

  // The sweeper on the full table: a sweep that finds nothing to remove
  // (the steady state: one walk), then one that removes every entry (a walk,
  // a lookup and a delete each).
  const SweepRules defaults{.udp_idle_ns = 120'000'000'000ull,
                            .tcp_closing_idle_ns = 30'000'000'000ull,
                            .tcp_idle_ns = 3'600'000'000'000ull};
  std::size_t walked = 0;
  const double keep = median_us(5, [&] {
    auto r = sweep_conntrack(ct->get(), defaults);
    if (!r || r->removed() != 0) die("a sweep of fresh entries removed some or failed");
    walked = r->walked;
  });
  std::printf("{\"bench\": \"metrics\", \"case\": \"sweep_nothing_idle\", \"entries\": %zu, \"us\": %.1f, "
              "\"entries_per_s\": %.0f}\n",
              walked, keep, walked / (keep / 1e6));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // past the coarse clock's tick
  const auto start = Clock::now();
  auto all = sweep_conntrack(ct->get(), SweepRules{.tcp_idle_ns = 1});
  const double took = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
  if (!all) die(all.error().message());
  std::printf("{\"bench\": \"metrics\", \"case\": \"sweep_all_idle\", \"entries\": %zu, \"removed\": %zu, "
              "\"us\": %.1f, \"removed_per_s\": %.0f}\n",
              all->walked, all->removed(), took, all->removed() / (took / 1e6));
  return 0;
}

}  // namespace
}  // namespace mixlb

int main() { return mixlb::run(); }
