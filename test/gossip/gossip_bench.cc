// The gossip benchmark (./dev bench gossip): SWIM + Lifeguard under the
// simulated network at N = 10, 100 and 1000 members, with no loss and with
// 10 % loss, every packet sealed by the keyring. One JSON object per line:
//
//   converge_join_s       all N started within the first second, through 3
//                         seeds; time until every member sees all N alive
//   bytes_per_node_per_s  everything a member sent in a steady virtual hour
//                         after the join settled (UDP payload with the
//                         envelope and 28 bytes of IPv4/UDP headers per
//                         datagram; push-pull streams with framing and TCP/IP
//                         headers), per member and second
//   false_deaths          healthy members declared dead in that hour
//   detect_*              a member crashes (several times, one after the
//                         other): detect_first_s is the median over crashes
//                         of the first member to mark it dead; the p50/p99
//                         are over every (crash, surviving member) pair of
//                         the time until that member marked it dead
//
// Options: --nodes N, --loss L (run one configuration), --hour S (length of
// the steady phase in virtual seconds), --crashes K. MIXLB_GOSSIP_SEED sets
// the seed.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "keyring.h"
#include "sim.h"

namespace {

using namespace mixlb::gossip;
using sim::Simulation;

struct Options {
  std::vector<int> nodes{10, 100, 1000};
  std::vector<double> losses{0.0, 0.1};
  Duration hour = 3600s;
  int crashes = 5;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

std::string run(int n, double loss, const Options& options, std::uint64_t seed) {
  const auto wall_start = std::chrono::steady_clock::now();
  char label[64];
  std::snprintf(label, sizeof label, "bench n=%d loss=%.2f", n, loss);
  Simulation sim(label, seed);
  sim.use_key(generate_key());
  sim.set_loss(loss);
  const Duration probe_interval = sim.base_config().probe_interval;

  // Join.
  sim::start_cluster(sim, n, 3, 1s);
  sim.run_for(1s);
  const bool joined = sim.run_until([&] { return sim.size() == n && sim.converged(); }, 600s);
  const double converge_join = joined ? sim::seconds(sim.elapsed()) : -1;
  sim.run_for(30s);

  // Steady state.
  std::uint64_t bytes_before = 0, deaths_before = 0;
  for (int i = 0; i < n; ++i) {
    bytes_before += sim.bytes_sent(i);
    deaths_before += sim.node(i).stats().deaths_declared;
  }
  sim.run_for(options.hour);
  std::uint64_t bytes_after = 0, deaths_after = 0;
  for (int i = 0; i < n; ++i) {
    bytes_after += sim.bytes_sent(i);
    deaths_after += sim.node(i).stats().deaths_declared;
  }
  const double bytes_per_node_per_s =
      static_cast<double>(bytes_after - bytes_before) / n / sim::seconds(options.hour);

  // Crashes, one at a time; never a seed.
  std::vector<double> firsts, all;
  double worst = 0;
  int missed = 0;
  std::mt19937_64 pick(seed ^ 0x9e3779b97f4a7c15ull);
  const int crashes = std::min(options.crashes, n - 4);
  for (int c = 0; c < crashes; ++c) {
    int victim;
    do {
      victim = 3 + static_cast<int>(pick() % static_cast<std::uint64_t>(n - 3));
    } while (!sim.running(victim));
    sim::DeathWatch watch(sim, victim);
    sim.crash(victim);
    sim.run_until([&] { return watch.all_saw(); }, 180s);
    double first = 1e9;
    for (const auto& [observer, when] : watch.seen()) {
      const double s = sim::seconds(when);
      all.push_back(s);
      first = std::min(first, s);
      worst = std::max(worst, s);
    }
    int expected = 0;
    for (int i = 0; i < sim.size(); ++i) expected += (i != victim && sim.running(i)) ? 1 : 0;
    missed += expected - static_cast<int>(watch.seen().size());
    if (!watch.seen().empty()) firsts.push_back(first);
    sim.run_for(20s);
  }

  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  char line[1024];
  std::snprintf(
      line, sizeof line,
      "{\"bench\":\"gossip\",\"nodes\":%d,\"loss\":%.2f,\"probe_interval_s\":%.3f,"
      "\"detect_first_s\":%.2f,\"detect_all_p50_s\":%.2f,\"detect_all_p99_s\":%.2f,"
      "\"false_deaths\":%llu,\"bytes_per_node_per_s\":%.1f,\"converge_join_s\":%.2f,"
      "\"detect_all_max_s\":%.2f,\"detect_missed\":%d,\"crashes\":%d,\"virtual_hour_s\":%.0f,"
      "\"encrypted\":true,\"seed\":%llu,\"wall_s\":%.1f}\n",
      n, loss, sim::seconds(probe_interval), percentile(firsts, 0.5), percentile(all, 0.5),
      percentile(all, 0.99), static_cast<unsigned long long>(deaths_after - deaths_before),
      bytes_per_node_per_s, converge_join, worst, missed, crashes, sim::seconds(options.hour),
      static_cast<unsigned long long>(seed), wall);
  return line;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--nodes")) {
      options.nodes = {std::atoi(argv[i + 1])};
    } else if (!std::strcmp(argv[i], "--loss")) {
      options.losses = {std::atof(argv[i + 1])};
    } else if (!std::strcmp(argv[i], "--hour")) {
      options.hour = std::chrono::seconds(std::atoi(argv[i + 1]));
    } else if (!std::strcmp(argv[i], "--crashes")) {
      options.crashes = std::atoi(argv[i + 1]);
    } else {
      std::fprintf(stderr, "usage: gossip_bench [--nodes N] [--loss L] [--hour S] [--crashes K]\n");
      return 2;
    }
  }
  const std::uint64_t seed = sim::test_seed(20261121);
  // Simulations are independent: run them on every core, print in order.
  struct Job {
    int n;
    double loss;
    std::string line;
  };
  std::vector<Job> jobs;
  for (int n : options.nodes) {
    for (double loss : options.losses) jobs.push_back(Job{n, loss, {}});
  }
  // Largest first, so the long runs start at once.
  std::vector<std::size_t> order(jobs.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return jobs[a].n * (1 + jobs[a].loss * 10) > jobs[b].n * (1 + jobs[b].loss * 10);
  });
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t i; (i = next++) < order.size();) {
      Job& job = jobs[order[i]];
      job.line = run(job.n, job.loss, options, seed);
    }
  };
  const unsigned threads = std::max(1u, std::min<unsigned>(std::thread::hardware_concurrency(),
                                                           static_cast<unsigned>(jobs.size())));
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  for (const auto& job : jobs) std::printf("%s", job.line.c_str());
  return 0;
}
