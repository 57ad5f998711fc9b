// Data path benchmark (./dev bench datapath): what one packet costs the real
// XDP program, case by case, next to a program that does nothing but return
// XDP_TX (bpf/xdp_tx.bpf.c), measured the same way in the same run on the
// same frames. One JSON object per line.
//
// Why it is shaped this way:
//   - Every run is its own BPF_PROG_TEST_RUN with repeat=1. A repeated run
//     reuses one buffer, so from the second repeat on the program would see
//     the frame it had rewritten, and a "new flow" would be an old one.
//   - The time is the kernel's. With BPF run-time statistics switched on
//     (bpf_enable_stats(BPF_STATS_RUN_TIME), held for the whole run) the
//     kernel adds each run's duration and count to the program's info;
//     ns/pkt = growth of run_time_ns / growth of run_cnt. The syscall, the
//     copies and everything in user space stay outside that window. The
//     window itself costs a sched_clock() pair, which the baseline pays too.
//   - mixlb and the baseline run in alternating batches over the same frame
//     sequence, so drift (clock, a noisy neighbour) falls on both alike.
//   - Every run's verdict and output bytes are checked, and after each case
//     the program's own counters must show exactly the connection-table
//     work the case claims (CtWork: every run a hit, a miss, an ICMP error
//     routed, or a peer's frame delivered, each without the other counts).
//     A case that fails either check prints an error line instead of
//     figures.
//   - Each case loads the real program afresh (XdpProgram, the same nodes
//     and VIPs, an empty connection table), so cases do not inherit each
//     other's table fill. "Established" cases run the flow's first packet
//     once before measuring. "New flow" cases give every run its own
//     5-tuple (client address and port walk 198.18.0.0/15, the benchmarking
//     range); the table is sized so the case's flows fill under a third of
//     it, so nothing is evicted, and the insert counter proves each run
//     inserted. Frames are chosen with the C++ flow hash (bpf/flow_hash.h)
//     so each lands on the node the case wants in a real Maglev table from
//     the sidecar's builder.
//   - Forwarding needs a FIB and resolved neighbours, so the process moves
//     itself into a private network namespace and builds the devices there,
//     as test/bpf/netns_fixture.h does (that header reports through doctest,
//     which a benchmark does not link). Nothing is pinned: the namespace,
//     its veths and every BPF object belong to this process and go with it
//     however it ends.
//   - The live-frames case (BPF_F_TEST_XDP_LIVE_FRAMES) sends real frames:
//     the kernel turns XDP_TX into a transmit on the ingress veth (dp0),
//     whose peer end runs bpf/xdp_pass.bpf.c so native XDP transmit works;
//     the peer's NAPI poll runs in the same syscall when it re-enables
//     bottom halves. pps = repeat / wall time of that one syscall
//     (steady_clock around it), median of alternating rounds. A round counts
//     only if the peer end received at least 99 % of the frames and, for
//     mixlb, its forward counter grew by exactly the repeat count. The
//     program's own share comes from the run-time statistics as above.
//
// Arguments name the cases to run (default: all), for looking at one.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <ifaddrs.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cluster/maglev.h"
#include "cluster/node_id.h"
#include "flow_hash.h"
#include "kernel/bpf_test_run.h"
#include "kernel/datapath.h"
#include "kernel/unique_fd.h"
#include "packet.h"
#include "xdp_pass.skel.h"
#include "xdp_tx.skel.h"

namespace {

using mixlb::test::Bytes;
using mixlb::test::flow_of;
using mixlb::test::Frame;
using mixlb::test::ip4;
using mixlb::test::Ip6;
using mixlb::test::ip6;
using mixlb::test::Mac;

// Runs per program per case, split into alternating batches, after a warm-up.
constexpr std::uint32_t kRounds = 10;
constexpr std::uint32_t kBatch = 8000;
constexpr std::uint32_t kWarmup = 1000;
constexpr std::uint32_t kRuns = kRounds * kBatch;
// Connection-table size, and the half-open table's (where a new flow's
// decision goes). Every case loads its own program, so a new-flow case
// starts from an empty table and fills under a third of it: no insert ever
// evicts, and no case pays for the flows of the one before.
constexpr std::uint32_t kConntrackEntries = 1u << 18;
static_assert(kWarmup + kRuns < kConntrackEntries / 3);
// Live frames: rounds per program and frames per round.
constexpr std::uint32_t kLiveRounds = 5;
constexpr std::uint32_t kLiveRepeat = 500'000;

const Mac kPeerMac{0x02, 0xaa, 0, 0, 0, 0x02};
const Mac kPeer6Mac{0x02, 0xaa, 0, 0, 0, 0x62};
const Mac kFarMac{0x02, 0xaa, 0, 0, 5, 0x02};

const std::uint32_t kSelf = mixlb::node_id_for("self");
const std::uint32_t kPeer = mixlb::node_id_for("peer");
const std::uint32_t kFar = mixlb::node_id_for("far");
const std::uint32_t kPeer6 = mixlb::node_id_for("peer6");

struct BenchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The kernel would not run the live-frames mode at all: a skip, not a failure.
struct LiveRefused : BenchError {
  using BenchError::BenchError;
};

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += (c == '\n' || c == '\t') ? ' ' : c;
  }
  return out;
}

void print_line(const std::string& line) {
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

// ---------------------------------------------------------------------------
// The namespace: dp0 towards the peers on one segment (XDP_TX), dp1 towards a
// far peer (XDP_REDIRECT), each a veth whose other end stays in the namespace.
//
//   dp0 10.0.0.1/24, fd00::1/64  -- peer 10.0.0.2, peer6 fd00::2 (permanent)
//   dp1 10.0.5.1/24              -- far 10.0.5.2 (permanent)

void sh(const std::string& cmd) {
  if (std::system((cmd + " >/dev/null 2>&1").c_str()) != 0)
    throw BenchError("command failed: " + cmd);
}

// /proc/sys/net belongs to the namespace of the process that opens it.
void sysctl(const std::string& key, const std::string& value) {
  std::string path = "/proc/sys/" + key;
  std::replace(path.begin() + 10, path.end(), '.', '/');
  std::ofstream f(path);
  f << value;
  f.flush();
  if (!f) throw BenchError("cannot write " + path);
}

Mac read_mac(const char* dev) {
  mixlb::UniqueFd fd(socket(AF_INET, SOCK_DGRAM, 0));
  ifreq req{};
  std::snprintf(req.ifr_name, sizeof(req.ifr_name), "%s", dev);
  if (!fd || ioctl(fd.get(), SIOCGIFHWADDR, &req) != 0)
    throw BenchError(std::string("no MAC for ") + dev);
  Mac mac{};
  std::memcpy(mac.data(), req.ifr_hwaddr.sa_data, 6);
  return mac;
}

struct Net {
  int dp0 = 0, dp0p = 0;
  Mac dp0_mac{}, dp1_mac{};
};

Net build_namespace() {
  if (unshare(CLONE_NEWNET) != 0)
    throw BenchError(std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno));
  sh("ip link set lo up");
  for (const char* n : {"dp0", "dp1"}) {
    sh(std::string("ip link add ") + n + " type veth peer name " + n + "p");
    sh(std::string("ip link set ") + n + " up");
    sh(std::string("ip link set ") + n + "p up");
  }
  sh("ip addr add 10.0.0.1/24 dev dp0");
  sh("ip -6 addr add fd00::1/64 dev dp0 nodad");
  sh("ip addr add 10.0.5.1/24 dev dp1");
  sh("ip neigh add 10.0.0.2 lladdr 02:aa:00:00:00:02 dev dp0 nud permanent");
  sh("ip -6 neigh add fd00::2 lladdr 02:aa:00:00:00:62 dev dp0 nud permanent");
  sh("ip neigh add 10.0.5.2 lladdr 02:aa:00:00:05:02 dev dp1 nud permanent");
  sysctl("net.ipv4.conf.all.forwarding", "1");
  sysctl("net.ipv6.conf.all.forwarding", "1");
  // bpf_fib_lookup checks IPv6 forwarding on the ingress device itself.
  sysctl("net.ipv6.conf.dp0.forwarding", "1");
  Net net;
  net.dp0 = static_cast<int>(if_nametoindex("dp0"));
  net.dp0p = static_cast<int>(if_nametoindex("dp0p"));
  net.dp0_mac = read_mac("dp0");
  net.dp1_mac = read_mac("dp1");
  return net;
}

// ---------------------------------------------------------------------------
// Frames, from test/bpf/packet.h.


// The ICMP "fragmentation needed" a router on the way back sends about a
// reply of `flow` (VIP -> client): it is addressed to the VIP and quotes the
// reply's IP header and first 8 transport bytes.
Bytes frag_needed_about(const Frame& flow) {
  Frame reply;
  reply.saddr = flow.daddr;
  reply.daddr = flow.saddr;
  reply.sport = flow.dport;
  reply.dport = flow.sport;
  reply.protocol = flow.protocol;
  reply.tcp_flags = mixlb::test::kAck;
  const Bytes quoted = reply.ip_packet();
  Frame error;
  error.dst_mac = flow.dst_mac;
  error.saddr = ip4("203.0.113.1");
  error.daddr = flow.daddr;
  error.protocol = 1;
  error.icmp_type = 3;
  error.icmp_code = 4;
  error.icmp_rest = 1400;  // next-hop MTU
  // RFC 792's quote: the IP header and the first 8 bytes of what follows.
  error.payload.assign(quoted.begin(), quoted.begin() + 20 + 8);
  return error.build();
}

// ---------------------------------------------------------------------------
// BPF run-time statistics and one test run.

struct RunStats {
  std::uint64_t time_ns = 0, count = 0;
};

RunStats run_stats(int prog_fd) {
  bpf_prog_info info{};
  std::uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0)
    throw BenchError(std::string("bpf_obj_get_info_by_fd: ") + std::strerror(errno));
  return {info.run_time_ns, info.run_cnt};
}

const char* verdict_name(std::uint32_t v) {
  switch (v) {
    case XDP_PASS:
      return "pass";
    case XDP_TX:
      return "tx";
    case XDP_REDIRECT:
      return "redirect";
    case XDP_DROP:
      return "drop";
    case XDP_ABORTED:
      return "aborted";
    default:
      return "unknown";
  }
}

// What a case claims the connection table does on every run of mixlb.
// What the connection table must show for a case: untouched, a hit on every
// run, a miss and an insert on every run, (an ICMP error about a known
// flow) read without being counted as a hit or miss, or (a frame a peer
// forwarded) untouched while the peer counter counts every run.
enum class CtWork { kNone, kHit, kNew, kIcmp, kFromPeer };

struct Case {
  std::string name;
  std::vector<Bytes> frames;  // one frame for every run, or one frame for all
  std::uint32_t verdict = XDP_PASS;
  std::optional<Mac> new_dst;  // forwarded: the MACs the output must carry
  Mac new_src{};
  CtWork ct = CtWork::kNone;
  std::uint32_t vip_id = 0;
  // Established cases: the flow's first two packets (SYN and ACK, or two
  // datagrams), run once before anything is measured, and the node they
  // must pin the flow to.
  std::optional<Bytes> first_packet;
  Bytes second_packet;
  mixlb_flow_key flow{};
  std::uint32_t node = MIXLB_NODE_NONE;

  const Bytes& frame(std::uint32_t run) const {
    return frames.size() == 1 ? frames[0] : frames[run];
  }
  Bytes expected(const Bytes& in) const {
    return new_dst ? mixlb::test::with_macs(in, *new_dst, new_src) : in;
  }
};

// The trivial programs, loaded once: XDP_TX (the baseline) and XDP_PASS (the
// veth peer end of the live-frames case).
struct Baselines {
  xdp_tx* tx = xdp_tx__open_and_load();
  xdp_pass* pass = xdp_pass__open_and_load();
  Baselines() {
    if (!tx || !pass) throw BenchError("loading bpf/xdp_tx.o and bpf/xdp_pass.o failed");
  }
  ~Baselines() {
    xdp_tx__destroy(tx);
    xdp_pass__destroy(pass);
  }
  Baselines(const Baselines&) = delete;
  Baselines& operator=(const Baselines&) = delete;
  int tx_fd() const { return bpf_program__fd(tx->progs.xdp_tx); }
  int pass_fd() const { return bpf_program__fd(pass->progs.xdp_pass); }
};

// Runs frames [first, first + n) through one program, checking each verdict
// (and, for mixlb, each output byte). Returns the growth of the program's
// run-time statistics.
RunStats run_batch(int prog_fd, const Case& c, std::uint32_t first, std::uint32_t n, int ifindex,
                   std::uint32_t want_verdict, bool check_bytes) {
  const RunStats before = run_stats(prog_fd);
  for (std::uint32_t i = first; i < first + n; ++i) {
    const Bytes& in = c.frame(i);
    auto r = mixlb::xdp_test_run(prog_fd, in, ifindex);
    if (!r) throw BenchError("run " + std::to_string(i) + ": " + r.error().message());
    if (r->verdict != want_verdict)
      throw BenchError("run " + std::to_string(i) + ": verdict " + verdict_name(r->verdict) +
                       ", expected " + verdict_name(want_verdict));
    if (check_bytes && r->packet != c.expected(in))
      throw BenchError("run " + std::to_string(i) + ": output frame differs from the expected one");
  }
  const RunStats after = run_stats(prog_fd);
  if (after.count - before.count != n)
    throw BenchError("run_cnt grew by " + std::to_string(after.count - before.count) + " for " +
                     std::to_string(n) + " runs (is another user running this program?)");
  return {after.time_ns - before.time_ns, after.count - before.count};
}

std::uint64_t drops_total(const mixlb::GlobalCounters& g) {
  std::uint64_t n = 0;
  for (auto d : g.drops) n += d;
  return n;
}

mixlb::GlobalCounters global_counters(mixlb::DatapathMaps& maps) {
  auto c = maps.counters();
  if (!c) throw BenchError(c.error().message());
  return *c;
}

// ---------------------------------------------------------------------------
// The cluster the cases run against: this node, a peer on dp0 known by IPv4,
// one known by IPv6, and a far peer behind dp1. Three VIPs with real Maglev
// tables from the sidecar's builder.

struct Vip {
  mixlb_vip_key key{};
  std::uint32_t id = 0;
  std::vector<std::uint32_t> table;

  std::uint32_t owner(const mixlb_flow_key& k) const {
    return table[mixlb_flow_hash(&k) % table.size()];
  }
};

Vip make_vip(std::uint32_t id, const char* addr, std::uint16_t port, std::uint8_t proto,
             const std::vector<mixlb::MaglevBackend>& members) {
  Vip v;
  v.id = id;
  if (std::strchr(addr, ':')) {
    const Ip6 a = ip6(addr);
    std::memcpy(v.key.addr, a.data(), 16);
    v.key.family = MIXLB_AF_INET6;
  } else {
    v.key.addr[0] = ip4(addr);
    v.key.family = MIXLB_AF_INET;
  }
  v.key.port = htons(port);
  v.key.proto = proto;
  v.table = mixlb::build_maglev_table(members, MIXLB_DEFAULT_RING_SIZE);
  return v;
}

struct Cluster {
  Vip tcp4, udp4, tcp6;
};

Cluster make_cluster() {
  const std::vector<mixlb::MaglevBackend> v4{
      {"self", kSelf, 1}, {"peer", kPeer, 1}, {"far", kFar, 1}};
  const std::vector<mixlb::MaglevBackend> v6{{"self", kSelf, 1}, {"peer6", kPeer6, 1}};
  return {make_vip(0, "10.100.0.1", 80, 6, v4), make_vip(1, "10.100.0.1", 53, 17, v4),
          make_vip(2, "2001:db8::100", 80, 6, v6)};
}

void set_node(mixlb::DatapathMaps& maps, std::uint32_t id, const char* addr, std::uint32_t slot) {
  mixlb_node n{};
  if (std::strchr(addr, ':')) {
    const Ip6 a = ip6(addr);
    std::memcpy(n.addr, a.data(), 16);
    n.family = MIXLB_AF_INET6;
  } else {
    n.addr[0] = ip4(addr);
    n.family = MIXLB_AF_INET;
  }
  n.stats_slot = slot;
  if (auto r = maps.set_node(id, n); !r) throw BenchError(r.error().message());
}

// Client `i` of a new-flow sequence: address and port inside 198.18.0.0/15.
std::uint32_t client_addr(std::uint32_t i) {
  return htonl((198u << 24 | 18u << 16) + 1 + i / 50000);
}
std::uint16_t client_port(std::uint32_t i) { return static_cast<std::uint16_t>(10000 + i % 50000); }
Ip6 client_addr6(std::uint32_t i) {
  Ip6 a = ip6("2001:db8:c::");
  const std::uint32_t n = htonl(1 + i / 50000);
  std::memcpy(a.data() + 12, &n, 4);
  return a;
}

// A freshly loaded mixlb with the cluster's nodes and VIPs and an empty
// connection table, so every case starts from the same state.
std::unique_ptr<mixlb::XdpProgram> load_mixlb(const Cluster& cluster) {
  mixlb::DatapathSettings s;
  s.self_node_id = kSelf;
  s.max_vips = 4;
  s.max_nodes = 16;
  s.conntrack_entries = kConntrackEntries;
  s.half_open_entries = kConntrackEntries;
  auto loaded = mixlb::XdpProgram::load(s);
  if (!loaded) throw BenchError(loaded.error().message());
  auto& maps = (*loaded)->maps();
  set_node(maps, kSelf, "10.0.0.1", MIXLB_SELF_STATS_SLOT);
  set_node(maps, kPeer, "10.0.0.2", 1);
  set_node(maps, kFar, "10.0.5.2", 2);
  set_node(maps, kPeer6, "fd00::2", 3);
  for (const Vip* v : {&cluster.tcp4, &cluster.udp4, &cluster.tcp6})
    if (auto r = maps.publish_vip(v->key, v->id, v->table); !r)
      throw BenchError(r.error().message());
  return std::move(*loaded);
}

// Runs an established case's first two packets, which must pin the flow:
// the first one's decision waits in the half-open table until the second.
void open_flow(mixlb::XdpProgram& lb, const Case& c, int ifindex) {
  if (!c.first_packet) return;
  for (const Bytes* frame : {&*c.first_packet, &c.second_packet}) {
    auto r = mixlb::xdp_test_run(lb.prog_fd(), *frame, ifindex);
    if (!r) throw BenchError("opening the flow: " + r.error().message());
    if (r->verdict != c.verdict)
      throw BenchError(std::string("opening the flow: verdict ") + verdict_name(r->verdict) +
                       ", expected " + verdict_name(c.verdict));
  }
  auto ct = lb.maps().conntrack(c.flow);
  if (!ct || !*ct || (*ct)->node_id != c.node)
    throw BenchError("the flow's first two packets did not pin it");
}

void run_case(const Cluster& cluster, const Baselines& baselines, const Case& c, int ifindex) {
  const auto lb_prog = load_mixlb(cluster);
  const int lb_fd = lb_prog->prog_fd(), base_fd = baselines.tx_fd();
  open_flow(*lb_prog, c, ifindex);
  auto& maps = lb_prog->maps();
  if (c.ct == CtWork::kFromPeer) {
    mixlb_mac mac{};
    std::memcpy(mac.addr, kPeerMac.data(), sizeof(mac.addr));
    if (auto r = maps.set_peer_mac(mac, kPeer); !r) throw BenchError(r.error().message());
  }
  const auto g0 = global_counters(maps);

  run_batch(lb_fd, c, 0, kWarmup, ifindex, c.verdict, true);
  run_batch(base_fd, c, 0, kWarmup, ifindex, XDP_TX, false);
  RunStats lb, base;
  for (std::uint32_t r = 0; r < kRounds; ++r) {
    const std::uint32_t first = kWarmup + r * kBatch;
    // Alternate which program goes first, so neither always runs on caches
    // the other warmed.
    for (int k = 0; k < 2; ++k) {
      const bool is_lb = (k == 0) == (r % 2 == 0);
      const RunStats s = is_lb ? run_batch(lb_fd, c, first, kBatch, ifindex, c.verdict, true)
                               : run_batch(base_fd, c, first, kBatch, ifindex, XDP_TX, false);
      RunStats& sum = is_lb ? lb : base;
      sum.time_ns += s.time_ns;
      sum.count += s.count;
    }
  }

  // The program's own counters must show the work the case is named for.
  const auto g1 = global_counters(maps);
  const std::uint64_t runs = kWarmup + kRuns;
  auto grew = [&](mixlb_counter k) { return g1.events[k] - g0.events[k]; };
  if (drops_total(g1) != drops_total(g0)) throw BenchError("the program counted drops");
  switch (c.ct) {
    case CtWork::kNone:
      if (grew(MIXLB_CNT_CT_HIT) + grew(MIXLB_CNT_CT_MISS) != 0)
        throw BenchError("the connection table was consulted for a packet that is not a VIP's");
      break;
    case CtWork::kHit:
      if (grew(MIXLB_CNT_CT_HIT) != runs || grew(MIXLB_CNT_CT_MISS) != 0)
        throw BenchError("expected a connection-table hit on every run, got " +
                         std::to_string(grew(MIXLB_CNT_CT_HIT)) + " hits and " +
                         std::to_string(grew(MIXLB_CNT_CT_MISS)) + " misses");
      break;
    case CtWork::kIcmp:
      if (grew(MIXLB_CNT_ICMP_ERROR) != runs || grew(MIXLB_CNT_CT_HIT) + grew(MIXLB_CNT_CT_MISS) != 0)
        throw BenchError("expected an ICMP error routed on every run and no connection-table counts, got " +
                         std::to_string(grew(MIXLB_CNT_ICMP_ERROR)) + " routed");
      break;
    case CtWork::kFromPeer:
      if (grew(MIXLB_CNT_FROM_PEER) != runs || grew(MIXLB_CNT_CT_HIT) + grew(MIXLB_CNT_CT_MISS) != 0)
        throw BenchError("expected every run delivered as a peer's and no connection-table counts, got " +
                         std::to_string(grew(MIXLB_CNT_FROM_PEER)) + " from a peer");
      break;
    case CtWork::kNew:
      // A new flow's decision goes into the half-open table, not the
      // connection table (bpf/lib/conntrack.h).
      if (grew(MIXLB_CNT_CT_MISS) != runs || grew(MIXLB_CNT_CT_INSERT) != 0 ||
          grew(MIXLB_CNT_CT_INSERT_FAIL) != 0)
        throw BenchError("expected a miss and no connection-table insert on every run, got " +
                         std::to_string(grew(MIXLB_CNT_CT_MISS)) + " misses and " +
                         std::to_string(grew(MIXLB_CNT_CT_INSERT)) + " inserts");
      break;
  }

  const double ns = static_cast<double>(lb.time_ns) / static_cast<double>(lb.count);
  const double base_ns = static_cast<double>(base.time_ns) / static_cast<double>(base.count);
  char line[512];
  std::snprintf(
      line, sizeof(line),
      "{\"bench\":\"datapath\",\"case\":\"%s\",\"ns_per_pkt\":%.1f,\"baseline_ns_per_pkt\":%.1f,"
      "\"ratio\":%.2f,\"verdict\":\"%s\",\"runs\":%llu,\"mode\":\"test_run\"}",
      c.name.c_str(), ns, base_ns, ns / base_ns, verdict_name(c.verdict),
      static_cast<unsigned long long>(lb.count));
  print_line(line);
}

// `count` frames of distinct flows whose Maglev owner is `node`; `make(i)`
// builds the frame of candidate i. `next` carries on where the last call
// stopped, so no two cases share a flow.
template <typename Make>
std::vector<Bytes> frames_owned_by(const Vip& vip, std::uint32_t node, std::uint32_t count,
                                   std::uint32_t& next, Make make) {
  std::vector<Bytes> out;
  out.reserve(count);
  while (out.size() < count) {
    const auto f = make(next++);
    if (vip.owner(flow_of(f)) == node) out.push_back(f.build());
  }
  return out;
}

// The first packet of a flow owned by `node`: `f` with the next client port
// whose Maglev owner is `node`.
Frame flow_owned_by(const Vip& vip, std::uint32_t node, std::uint32_t& next, Frame f) {
  do {
    f.sport = client_port(next++);
  } while (vip.owner(flow_of(f)) != node);
  return f;
}

std::vector<Case> make_cases(const Cluster& cluster, const Net& net) {
  std::vector<Case> cases;
  std::uint32_t next = 0;
  const Bytes data(32, 0x5a);
  const std::uint32_t n = kWarmup + kRuns;

  auto v4 = [&](std::uint8_t protocol = 6) {
    Frame f;
    f.dst_mac = net.dp0_mac;
    f.protocol = protocol;
    if (protocol == 17) {
      f.dport = 53;
      f.payload = data;
    }
    return f;
  };
  auto v6 = [&] {
    Frame f = v4();
    f.ethertype = 0x86dd;
    f.daddr6 = ip6("2001:db8::100");
    return f;
  };
  // TCP data after the handshake.
  auto data_of = [&](Frame f) {
    f.tcp_flags = mixlb::test::kAck | mixlb::test::kPsh;
    f.payload = data;
    return f;
  };
  // An established case: `first` opens the flow, `frame` is measured.
  auto established = [&](std::string name, const Frame& first, const Bytes& frame,
                         std::uint32_t node, std::uint32_t vip_id) {
    Case c{.name = std::move(name), .frames = {frame}, .ct = CtWork::kHit, .vip_id = vip_id};
    c.first_packet = first.build();
    Frame second = first;
    if (first.protocol == 6) second.tcp_flags = mixlb::test::kAck;
    c.second_packet = second.build();
    c.flow = flow_of(first);
    c.node = node;
    return c;
  };
  auto forwarded = [&](Case c, const Mac& dst) {
    c.verdict = XDP_TX;
    c.new_dst = dst;
    c.new_src = net.dp0_mac;
    return c;
  };

  {  // TCP to an address that is no VIP: parse, VIP lookup, pass.
    Frame f = data_of(v4());
    f.daddr = ip4("10.100.0.9");
    cases.push_back(Case{.name = "non_vip_pass", .frames = {f.build()}});
  }
  {  // An established flow this node serves.
    const Frame syn = flow_owned_by(cluster.tcp4, kSelf, next, v4());
    cases.push_back(
        established("vip_local_pass", syn, data_of(syn).build(), kSelf, cluster.tcp4.id));
  }
  {  // Data of a flow a peer balanced to this node (its source MAC is the
     // peer's): what the serving node pays for every forwarded packet.
    Frame f = data_of(flow_owned_by(cluster.tcp4, kSelf, next, v4()));
    f.src_mac = kPeerMac;
    cases.push_back(Case{.name = "from_peer_pass_v4", .frames = {f.build()}, .ct = CtWork::kFromPeer});
  }
  {  // A SYN of a new flow for every run, forwarded to the peer.
    auto frames = frames_owned_by(cluster.tcp4, kPeer, n, next, [&](std::uint32_t i) {
      Frame f = v4();
      f.saddr = client_addr(i);
      f.sport = client_port(i);
      return f;
    });
    cases.push_back(forwarded(
        Case{.name = "syn_new_flow_v4", .frames = std::move(frames), .ct = CtWork::kNew},
        kPeerMac));
  }
  const Frame est4 = flow_owned_by(cluster.tcp4, kPeer, next, v4());
  cases.push_back(forwarded(
      established("established_forward_v4", est4, data_of(est4).build(), kPeer, cluster.tcp4.id),
      kPeerMac));
  {  // The same to a far peer: bpf_fib_lookup names another device.
    const Frame syn = flow_owned_by(cluster.tcp4, kFar, next, v4());
    Case c =
        established("established_redirect_v4", syn, data_of(syn).build(), kFar, cluster.tcp4.id);
    c.verdict = XDP_REDIRECT;
    c.new_dst = kFarMac;
    c.new_src = net.dp1_mac;
    cases.push_back(c);
  }
  {
    auto frames = frames_owned_by(cluster.tcp6, kPeer6, n, next, [&](std::uint32_t i) {
      Frame f = v6();
      f.saddr6 = client_addr6(i);
      f.sport = client_port(i);
      return f;
    });
    cases.push_back(forwarded(
        Case{.name = "syn_new_flow_v6", .frames = std::move(frames), .ct = CtWork::kNew},
        kPeer6Mac));
  }
  {
    const Frame syn = flow_owned_by(cluster.tcp6, kPeer6, next, v6());
    cases.push_back(forwarded(
        established("established_forward_v6", syn, data_of(syn).build(), kPeer6, cluster.tcp6.id),
        kPeer6Mac));
  }
  {
    auto frames = frames_owned_by(cluster.udp4, kPeer, n, next, [&](std::uint32_t i) {
      Frame f = v4(17);
      f.saddr = client_addr(i);
      f.sport = client_port(i);
      return f;
    });
    cases.push_back(forwarded(
        Case{.name = "udp_new_flow_v4", .frames = std::move(frames), .ct = CtWork::kNew},
        kPeerMac));
  }
  {  // Every datagram of a UDP flow is alike: the first one opens it.
    const Frame first = flow_owned_by(cluster.udp4, kPeer, next, v4(17));
    cases.push_back(forwarded(
        established("udp_established_v4", first, first.build(), kPeer, cluster.udp4.id), kPeerMac));
  }
  // An ICMP error about the established v4 flow goes to that flow's node.
  {
    Case icmp = established("icmp_frag_needed_v4", est4, frag_needed_about(est4), kPeer, cluster.tcp4.id);
    icmp.ct = CtWork::kIcmp;
    cases.push_back(forwarded(std::move(icmp), kPeerMac));
  }
  return cases;
}

// ---------------------------------------------------------------------------
// Live frames.

struct LiveFigures {
  double pps = 0;
  double prog_ns = 0;  // the program's own time per frame (run-time statistics)
};

LiveFigures live_round(int prog_fd, const Bytes& frame, int ifindex) {
  xdp_md ctx{};
  ctx.data_end = static_cast<std::uint32_t>(frame.size());
  ctx.ingress_ifindex = static_cast<std::uint32_t>(ifindex);
  LIBBPF_OPTS(bpf_test_run_opts, opts);
  opts.data_in = frame.data();
  opts.data_size_in = static_cast<std::uint32_t>(frame.size());
  opts.ctx_in = &ctx;
  opts.ctx_size_in = sizeof(ctx);
  opts.repeat = kLiveRepeat;
  opts.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
  const RunStats before = run_stats(prog_fd);
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = bpf_prog_test_run_opts(prog_fd, &opts);
  const auto t1 = std::chrono::steady_clock::now();
  const int err = errno;
  if (rc != 0)
    throw LiveRefused(std::string("BPF_F_TEST_XDP_LIVE_FRAMES refused: ") + std::strerror(err));
  const RunStats after = run_stats(prog_fd);
  if (after.count - before.count != kLiveRepeat)
    throw BenchError("run_cnt grew by " + std::to_string(after.count - before.count) +
                     ", not by the repeat count");
  const double secs = std::chrono::duration<double>(t1 - t0).count();
  return {kLiveRepeat / secs, static_cast<double>(after.time_ns - before.time_ns) / kLiveRepeat};
}

// Frames the peer end of the veth saw (its XDP program runs on each). The
// counter is 32 bits wide here; callers subtract modulo 2^32.
std::uint32_t rx_packets(const char* dev) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) throw BenchError("getifaddrs failed");
  std::uint32_t n = 0;
  for (ifaddrs* a = list; a; a = a->ifa_next)
    if (a->ifa_addr && a->ifa_addr->sa_family == AF_PACKET && a->ifa_data &&
        std::strcmp(a->ifa_name, dev) == 0)
      n = static_cast<const rtnl_link_stats*>(a->ifa_data)->rx_packets;
  freeifaddrs(list);
  return n;
}

// XDP_PASS on the veth's peer end for as long as it lives: native XDP
// transmit on a veth needs a program on the receiving end.
class PeerPass {
 public:
  PeerPass(int ifindex, int prog_fd) : ifindex_(ifindex) {
    if (int err = bpf_xdp_attach(ifindex, prog_fd, XDP_FLAGS_DRV_MODE, nullptr); err != 0)
      throw LiveRefused(std::string("native XDP on the veth peer refused: ") + std::strerror(-err));
  }
  ~PeerPass() { bpf_xdp_detach(ifindex_, XDP_FLAGS_DRV_MODE, nullptr); }
  PeerPass(const PeerPass&) = delete;
  PeerPass& operator=(const PeerPass&) = delete;

 private:
  int ifindex_;
};

void run_live(const Cluster& cluster, const Baselines& baselines, const Net& net, const Case& est) {
  const char* name = "live_forward_v4";
  const Bytes& frame = est.frames[0];
  const auto lb_prog = load_mixlb(cluster);
  open_flow(*lb_prog, est, net.dp0);
  auto fwd = [&] {
    auto c = lb_prog->maps().vip_counters(est.vip_id);
    if (!c) throw BenchError(c.error().message());
    return c->fwd_pkts;
  };
  std::vector<LiveFigures> lb, base;
  try {
    const PeerPass pass(net.dp0p, baselines.pass_fd());
    for (std::uint32_t r = 0; r < kLiveRounds; ++r) {
      for (int k = 0; k < 2; ++k) {
        const bool is_lb = (k == 0) == (r % 2 == 0);
        const std::uint64_t fwd0 = fwd();
        const std::uint32_t rx0 = rx_packets("dp0p");
        const LiveFigures f =
            live_round(is_lb ? lb_prog->prog_fd() : baselines.tx_fd(), frame, net.dp0);
        const std::uint32_t arrived = rx_packets("dp0p") - rx0;
        if (is_lb && fwd() - fwd0 != kLiveRepeat)
          throw BenchError("mixlb forwarded " + std::to_string(fwd() - fwd0) + " of " +
                           std::to_string(kLiveRepeat));
        // A frame the veth could not queue is dropped, not delivered: a
        // round that lost frames would look faster than it was.
        if (arrived < kLiveRepeat * 99 / 100)
          throw BenchError("the veth peer received " + std::to_string(arrived) + " of " +
                           std::to_string(kLiveRepeat) + " frames");
        (is_lb ? lb : base).push_back(f);
      }
    }
  } catch (const LiveRefused& e) {
    print_line(std::string("{\"bench\":\"datapath\",\"case\":\"") + name +
               "\",\"mode\":\"live_frames\",\"skipped\":\"" + json_escape(e.what()) + "\"}");
    return;
  }

  // The median round of each, by packet rate.
  auto median = [](std::vector<LiveFigures> v) {
    std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.pps < b.pps; });
    return v[v.size() / 2];
  };
  const LiveFigures m = median(lb), b = median(base);
  char line[512];
  std::snprintf(
      line, sizeof(line),
      "{\"bench\":\"datapath\",\"case\":\"%s\",\"pps\":%.0f,\"baseline_pps\":%.0f,\"ratio\":%.2f,"
      "\"prog_ns_per_pkt\":%.1f,\"baseline_prog_ns_per_pkt\":%.1f,\"repeat\":%u,\"rounds\":%u,"
      "\"mode\":\"live_frames\"}",
      name, m.pps, b.pps, m.pps / b.pps, m.prog_ns, b.prog_ns, kLiveRepeat, kLiveRounds);
  print_line(line);
}

// Pins the process to one CPU: per-CPU counters and the LRU's per-CPU free
// lists then behave as on a NIC queue served by one core, and the figures do
// not depend on migrations.
void pin_to_cpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  const int cpu = sched_getcpu();
  CPU_SET(cpu < 0 ? 0 : cpu, &set);
  sched_setaffinity(0, sizeof(set), &set);
}

// `only`: names of the cases to run (none: all of them).
int run(const std::vector<std::string>& only) {
  auto wanted = [&](const std::string& name) {
    return only.empty() || std::find(only.begin(), only.end(), name) != only.end();
  };
  if (geteuid() != 0) {
    print_line(
        "{\"bench\":\"datapath\",\"skipped\":\"not root (BPF_PROG_TEST_RUN and a network namespace "
        "need it)\"}");
    return 0;
  }
  if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_XDP, nullptr) != 1) {
    print_line("{\"bench\":\"datapath\",\"skipped\":\"kernel refuses XDP programs\"}");
    return 0;
  }
  // Held open for the whole run: the kernel keeps statistics while it is.
  mixlb::UniqueFd stats(bpf_enable_stats(BPF_STATS_RUN_TIME));
  if (!stats)
    throw BenchError(std::string("bpf_enable_stats(BPF_STATS_RUN_TIME): ") + std::strerror(errno));

  pin_to_cpu();
  const Net net = build_namespace();

  const Baselines baselines;
  const Cluster cluster = make_cluster();
  const std::vector<Case> cases = make_cases(cluster, net);
  int failed = 0;
  for (const Case& c : cases) {
    if (!wanted(c.name)) continue;
    try {
      run_case(cluster, baselines, c, net.dp0);
    } catch (const BenchError& e) {
      print_line("{\"bench\":\"datapath\",\"case\":\"" + c.name + "\",\"error\":\"" +
                 json_escape(e.what()) + "\"}");
      ++failed;
    }
  }
  const auto est = std::find_if(cases.begin(), cases.end(),
                                [](const Case& c) { return c.name == "established_forward_v4"; });
  if (!wanted("live_forward_v4")) return failed == 0 ? 0 : 1;
  try {
    run_live(cluster, baselines, net, *est);
  } catch (const BenchError& e) {
    print_line(std::string("{\"bench\":\"datapath\",\"case\":\"live_forward_v4\",\"error\":\"") +
               json_escape(e.what()) + "\"}");
    ++failed;
  }
  return failed == 0 ? 0 : 1;
}

}  // namespace

// Arguments: the cases to run, by name (default: all).
int main(int argc, char** argv) {
  try {
    return run(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    print_line(std::string("{\"bench\":\"datapath\",\"error\":\"") + json_escape(e.what()) + "\"}");
    return 1;
  }
}
