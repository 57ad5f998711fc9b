#pragma once
// What the benchmarks of the connection table share: the real program
// loaded with its maps pinned under a bpffs directory of the process's own
// (removed at the end), a way to fill its table, and a median timer.
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <arpa/inet.h>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cluster/node_id.h"
#include "kernel/bpffs.h"
#include "kernel/conntrack_walk.h"
#include "kernel/datapath.h"

namespace mixlb::bench {

// The median duration of `runs` calls of `f`, in microseconds.
inline double median_us(int runs, const std::function<void()>& f) {
  std::vector<double> us;
  us.reserve(runs);
  for (int i = 0; i < runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
  }
  std::nth_element(us.begin(), us.begin() + runs / 2, us.end());
  return us[runs / 2];
}

// The program of node mix1 with a full-size table (16 VIPs and nodes),
// its maps pinned under /sys/fs/bpf/mixlb-<name>-<pid>/mix1.
struct PinnedProgram {
  std::string root;
  DatapathSettings settings;
  std::unique_ptr<XdpProgram> program;
  ~PinnedProgram() {
    program.reset();
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
  }
};

// `die` reports a failure and does not return.
inline std::unique_ptr<PinnedProgram> load_pinned(const std::string& name,
                                                  const std::function<void(const std::string&)>& die) {
  auto p = std::make_unique<PinnedProgram>();
  p->root = "/sys/fs/bpf/mixlb-" + name + "-" + std::to_string(::getpid());
  p->settings.self_node_id = node_id_for("mix1");
  p->settings.ring_size = 251;
  p->settings.max_vips = 16;
  p->settings.max_nodes = 16;
  p->settings.conntrack_entries = MIXLB_DEFAULT_CT_ENTRIES;
  p->settings.pin_dir = p->root + "/mix1";
  if (auto ready = ensure_bpffs(p->settings.pin_dir); !ready) die(ready.error());
  auto loaded = XdpProgram::load(p->settings);
  if (!loaded) die(loaded.error().message());
  p->program = std::move(*loaded);
  return p;
}

// Fills a connection table: `total` TCP entries of 198.18.0.0/15 clients
// to six VIPs, fresh, spread over `nodes`, an equal share inserted from a
// thread pinned to each CPU (the table's LRU lists are per CPU, and a CPU
// can fill only its share).

// The key of fill_conntrack's entry i.
inline mixlb_flow_key conntrack_key(std::size_t i) {
  mixlb_flow_key k{};
  k.src[0] = htonl(0xc6120000u + static_cast<std::uint32_t>(i));  // 198.18.0.0/15
  k.dst[0] = htonl(0x0a640001u + static_cast<std::uint32_t>(i % 6));
  k.sport = htons(static_cast<std::uint16_t>(1024 + i % 60000));
  k.dport = htons(80);
  k.proto = 6;
  k.family = MIXLB_AF_INET;
  return k;
}

inline void fill_conntrack(DatapathMaps& maps, std::size_t total, const std::vector<std::uint32_t>& nodes) {
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
        const mixlb_flow_key k = conntrack_key(i);
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

}  // namespace mixlb::bench
