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
// (The sweeper's cost on a full table is in ./dev bench conntrack.)
//
// The program is the real one, loaded (not attached) with its maps pinned
// under a bpffs directory of this process's own, removed at the end. The
// connection table is filled through DatapathMaps from one thread pinned to
// each CPU: its LRU lists are per CPU, and a CPU can fill only its share.
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
#include "bench_common.h"

namespace mixlb {
namespace {

using Clock = std::chrono::steady_clock;

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

int run() {
  const auto figures = test::realistic_figures();
  const double render = bench::median_us(2000, [&] { (void)metrics::render_metrics(figures); });
  std::printf("{\"bench\": \"metrics\", \"case\": \"render\", \"nodes\": 3, \"vips\": 6, \"us\": %.1f, "
              "\"bytes\": %zu}\n",
              render, metrics::render_metrics(figures).size());

  // The rest needs the real program and a bpffs: a skip, not a failure.
  if (::geteuid() != 0) {
    std::printf("{\"bench\": \"metrics\", \"skipped\": \"not root (loading the program and "
                "pinning its maps need it)\"}\n");
    return 0;
  }
  auto pinned = bench::load_pinned("metrics-bench", [](const std::string& what) { die(what); });
  auto& prog = *pinned->program;
  const DatapathSettings& settings = pinned->settings;

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

  const double read = bench::median_us(2000, [&] {
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
    bench::fill_conntrack(prog.maps(), target, node_ids);
    filled = target;
    std::size_t entries = 0;
    const double census = bench::median_us(20, [&] {
      auto c = metrics::take_conntrack_census(ct->get());
      if (!c) die(c.error().message());
      entries = c->entries;
    });
    std::printf("{\"bench\": \"metrics\", \"case\": \"census\", \"fill\": %zu, \"entries\": %zu, "
                "\"capacity\": %u, \"us\": %.1f}\n",
                filled, entries, MIXLB_DEFAULT_CT_ENTRIES, census);
  }

  std::size_t bytes = 0;
  const double scrape = bench::median_us(20, [&] {
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

  return 0;
}

}  // namespace
}  // namespace mixlb

int main() { return mixlb::run(); }
