// The XDP program, run through BPF_PROG_TEST_RUN on the real object: each case
// is a frame, a map setup and the exact verdict and bytes that must come out.
//
// Forwarding needs bpf_fib_lookup to see real devices, routes and neighbours;
// netns_fixture.h builds them in a private network namespace. Without root or
// BPF, every case here reports skipped with the reason.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "cluster/maglev.h"
#include "cluster/node_id.h"
#include "flow_hash.h"
#include "kernel/bpf_test_run.h"
#include "kernel/ct_invalidate.h"
#include "kernel/datapath.h"
#include "lb_fixture.h"

namespace mixlb {
TEST_SUITE("datapath" * doctest::skip(cannot_run())) {

TEST_CASE("a TCP packet to an address that is not a VIP passes untouched") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  Frame f = syn_to_vip();
  f.daddr = ip4("10.100.0.2");
  check_untouched(lb, f.build());
  CHECK(lb.counters().fwd_pkts == 0);
}

TEST_CASE("a TCP packet to the VIP on an unconfigured port passes untouched") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  Frame f = syn_to_vip();
  f.dport = 22;
  check_untouched(lb, f.build());
}

TEST_CASE("UDP to the VIP's address and port passes untouched (the VIP is TCP)") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  Frame f = syn_to_vip();
  f.protocol = 17;
  f.payload = {1, 2, 3, 4};
  check_untouched(lb, f.build());
}

TEST_CASE("non-IPv4 frames pass untouched: ARP and IPv6") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  Frame arp;
  arp.ethertype = 0x0806;
  arp.payload = Bytes(28, 0x11);
  check_untouched(lb, arp.build());
  Frame v6;
  v6.ethertype = 0x86dd;
  v6.payload = Bytes(60, 0x22);
  check_untouched(lb, v6.build());
}

TEST_CASE("a SYN to the VIP whose table names this node is passed to the local stack") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kSelf);
  const Frame f = syn_to_vip();
  const Bytes in = f.build();
  auto r = lb.run(in);
  CHECK(r.verdict == XDP_PASS);
  CHECK(r.packet == in);
  const auto c = lb.counters();
  CHECK(c.local_pkts == 1);
  CHECK(c.local_bytes == in.size());
  CHECK(c.fwd_pkts == 0);
  // The SYN's decision waits in the half-open table, not the connection table.
  auto ct = lb.maps().conntrack(flow_of(f));
  REQUIRE(ct.has_value());
  CHECK_FALSE(ct->has_value());
  ct = lb.maps().half_open(flow_of(f));
  REQUIRE(ct.has_value());
  REQUIRE(ct->has_value());
  CHECK((*ct)->node_id == kSelf);
  CHECK(((*ct)->flags & MIXLB_CT_SEEN_SYN) != 0);
  CHECK(((*ct)->flags & MIXLB_CT_FROM_NON_SYN) == 0);
  CHECK((*ct)->last_seen_ns > 0);
  // Created now, in whole seconds of the same clock (`mixlbctl ct` shows the age).
  CHECK((*ct)->created_s == (*ct)->last_seen_ns / 1'000'000'000ull);
}

// CLOCK_MONOTONIC_COARSE, the clock bpf_ktime_get_coarse_ns() reads.
static std::uint64_t coarse_now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::uint64_t(ts.tv_sec) * 1'000'000'000ull + std::uint64_t(ts.tv_nsec);
}

TEST_CASE("a new flow's times come from the coarse clock, read again once the tick has moved") {
  // The program keeps each CPU's last clock reading until jiffies moves
  // (bpf/lib/clock.h). A reading may lag the clock by a tick (at most
  // 10 ms: HZ >= 100), never more; a reading kept past its tick would show
  // the second flow at the first one's time.
  constexpr std::uint64_t kTick = 10'000'000;
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kSelf);
  auto stamped = [&](std::uint16_t sport) {
    Frame f = syn_to_vip();
    f.sport = sport;
    const std::uint64_t before = coarse_now_ns();
    REQUIRE(lb.run(f.build()).verdict == XDP_PASS);
    const std::uint64_t after = coarse_now_ns();
    const auto slot = lb.maps().half_open(flow_of(f));
    REQUIRE(slot.has_value());
    REQUIRE(slot->has_value());
    const std::uint64_t seen = (*slot)->last_seen_ns;
    CHECK(seen + kTick >= before);
    CHECK(seen <= after);
    return seen;
  };
  const std::uint64_t first = stamped(41000);
  ::usleep(60'000);
  const std::uint64_t second = stamped(41001);
  CHECK(second >= first + 60'000'000 - kTick);
}

TEST_CASE("a SYN to the VIP whose table names a peer leaves by XDP_TX with both MACs from the FIB") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  const Bytes in = syn_to_vip().build();
  auto r = lb.run(in);
  CHECK(r.verdict == XDP_TX);
  CHECK(r.packet == test::with_macs(in, kPeerMac, test_net().dp0_mac));
  const auto c = lb.counters();
  CHECK(c.fwd_pkts == 1);
  CHECK(c.fwd_bytes == in.size());
  CHECK(c.local_pkts == 0);
}

TEST_CASE("a peer reached through another interface is forwarded with XDP_REDIRECT") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kFar);
  const Bytes in = syn_to_vip().build();
  auto r = lb.run(in);
  CHECK(r.verdict == XDP_REDIRECT);
  CHECK(r.packet == test::with_macs(in, kFarMac, test_net().dp1_mac));
}

TEST_CASE("an unresolved neighbour drops and counts, never delivers locally") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kGhost);
  auto r = lb.run(syn_to_vip().build());
  CHECK(r.verdict == XDP_DROP);
  const auto c = lb.counters();
  CHECK(c.drops[MIXLB_DROP_FIB_NO_NEIGH] == 1);
  CHECK(c.local_pkts == 0);
  CHECK(c.fwd_pkts == 0);
}

TEST_CASE("forwarding disabled on the ingress device drops with its own reason") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  auto r = lb.run(syn_to_vip().build(), test_net().dp2);
  CHECK(r.verdict == XDP_DROP);
  CHECK(lb.counters().drops[MIXLB_DROP_FIB_FWD_DISABLED] == 1);
}

TEST_CASE("a table naming a node missing from the node map drops as unknown_node") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kUnknown);
  auto r = lb.run(syn_to_vip().build());
  CHECK(r.verdict == XDP_DROP);
  CHECK(lb.counters().drops[MIXLB_DROP_UNKNOWN_NODE] == 1);
}

TEST_CASE("a VIP whose table is empty drops as no_backend and inserts no connection") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, MIXLB_NODE_NONE);
  const Frame f = syn_to_vip();
  auto r = lb.run(f.build());
  CHECK(r.verdict == XDP_DROP);
  CHECK(lb.counters().drops[MIXLB_DROP_NO_BACKEND] == 1);
  auto ct = lb.maps().conntrack(flow_of(f));
  REQUIRE(ct.has_value());
  CHECK_FALSE(ct->has_value());
}

TEST_CASE("an established flow keeps its node after the Maglev table changes") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  Frame f = syn_to_vip();
  const Bytes syn = f.build();
  REQUIRE(lb.run(syn).verdict == XDP_TX);

  // Every slot now names this node: new flows stay local...
  lb.vip_all("10.100.0.1", 80, kSelf);
  Frame other = syn_to_vip();
  other.sport = 40001;
  CHECK(lb.run(other.build()).verdict == XDP_PASS);

  // ...but the established flow still goes to the peer.
  f.tcp_flags = test::kAck | test::kPsh;
  f.payload = {'h', 'i'};
  const Bytes data = f.build();
  auto r = lb.run(data);
  CHECK(r.verdict == XDP_TX);
  CHECK(r.packet == test::with_macs(data, kPeerMac, test_net().dp0_mac));
  auto counters = lb.maps().counters();
  REQUIRE(counters.has_value());
  CHECK(counters->events[MIXLB_CNT_CT_HIT] == 1);  // the half-open table's
  CHECK(counters->events[MIXLB_CNT_CT_MISS] == 2);
  CHECK(counters->events[MIXLB_CNT_CT_INSERT] == 1);  // the first one's second packet
  auto ct = lb.maps().conntrack(flow_of(f));
  REQUIRE((ct.has_value() && ct->has_value()));
  CHECK((*ct)->node_id == kPeer);
}

// A connection (SYN, then the handshake's ACK) established through `lb` on
// the peer; then the peer is drained (or gone) and the table names this node.
// Returns the SYN; its ACK is the same frame with only ACK set.
Frame established_on_peer_then_drained(Lb& lb) {
  lb.vip_all("10.100.0.1", 80, kPeer);
  Frame f = syn_to_vip();
  REQUIRE(lb.run(f.build()).verdict == XDP_TX);
  Frame ack = f;
  ack.tcp_flags = test::kAck;
  REQUIRE(lb.run(ack.build()).verdict == XDP_TX);
  lb.vip_all("10.100.0.1", 80, kSelf);
  return f;
}

TEST_CASE("a SYN reusing a closed flow's 5-tuple is balanced afresh and its handshake replaces the entry") {
  for (std::uint8_t end : {std::uint8_t(test::kFin | test::kAck), std::uint8_t(test::kRst)}) {
    CAPTURE(int{end});
    Lb lb;
    const Frame f = established_on_peer_then_drained(lb);
    const Bytes syn = f.build();
    Frame data = f;
    data.tcp_flags = test::kAck;
    // The old connection's packets, its client's FIN or RST too, still follow it...
    Frame last = f;
    last.tcp_flags = end;
    CHECK(lb.run(last.build()).verdict == XDP_TX);
    CHECK(lb.run(data.build()).verdict == XDP_TX);
    // ...a new connection on the same 5-tuple follows the table,
    CHECK(lb.run(syn).verdict == XDP_PASS);
    // and so does the rest of it: its ACK takes the old entry's place.
    CHECK(lb.run(data.build()).verdict == XDP_PASS);
    auto ct = lb.maps().conntrack(flow_of(f));
    REQUIRE(ct.has_value());
    REQUIRE(ct->has_value());
    CHECK((*ct)->node_id == kSelf);
    CHECK(((*ct)->flags & (MIXLB_CT_SEEN_FIN | MIXLB_CT_SEEN_RST)) == 0);
    CHECK(lb.run(data.build()).verdict == XDP_PASS);
    auto half = lb.maps().half_open(flow_of(f));
    REQUIRE(half.has_value());
    CHECK_FALSE(half->has_value());
    auto counters = lb.maps().counters();
    REQUIRE(counters.has_value());
    CHECK(counters->events[MIXLB_CNT_CT_MISS] == 2);      // the two SYNs
    CHECK(counters->events[MIXLB_CNT_CT_HIT] == 5);       // each packet after a SYN once
    CHECK(counters->events[MIXLB_CNT_CT_INSERT] == 2);    // each handshake's ACK
  }
}

TEST_CASE("a SYN reusing the 5-tuple of an entry that saw no FIN or RST: its handshake follows the entry") {
  // The documented price of a SYN path without a connection-table lookup
  // (conntrack.h): a client that crashed and reuses its port while the old
  // entry is still there. Close tracking, invalidation or the sweeper remove
  // such an entry; until then it wins.
  Lb lb;
  const Frame f = established_on_peer_then_drained(lb);
  const Bytes syn = f.build();
  Frame data = f;
  data.tcp_flags = test::kAck;
  CHECK(lb.run(syn).verdict == XDP_PASS);
  CHECK(lb.run(data.build()).verdict == XDP_TX);
  auto ct = lb.maps().conntrack(flow_of(f));
  REQUIRE((ct.has_value() && ct->has_value()));
  CHECK((*ct)->node_id == kPeer);
}

TEST_CASE("a mid-stream packet without a connection entry follows Maglev and is pinned") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  Frame f = syn_to_vip();
  f.tcp_flags = test::kAck;
  REQUIRE(lb.run(f.build()).verdict == XDP_TX);
  auto ct = lb.maps().conntrack(flow_of(f));
  REQUIRE(ct.has_value());
  REQUIRE(ct->has_value());
  CHECK((*ct)->node_id == kPeer);
  CHECK(((*ct)->flags & MIXLB_CT_FROM_NON_SYN) != 0);
  lb.vip_all("10.100.0.1", 80, kSelf);
  CHECK(lb.run(f.build()).verdict == XDP_TX);
}

TEST_CASE("a FIN or RST without a connection entry follows Maglev and leaves no entry") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  for (std::uint8_t flags : {std::uint8_t(test::kFin | test::kAck), std::uint8_t(test::kRst),
                             std::uint8_t(test::kRst | test::kAck)}) {
    CAPTURE(int{flags});
    Frame f = syn_to_vip();
    f.tcp_flags = flags;
    CHECK(lb.run(f.build()).verdict == XDP_TX);
    auto ct = lb.maps().conntrack(flow_of(f));
    REQUIRE(ct.has_value());
    CHECK_FALSE(ct->has_value());
  }
}

TEST_CASE("a mid-stream packet served here is pinned only while the local stack holds its connection") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kSelf);
  // No connection: an ACK after a close (the entry deleted) is passed to
  // the stack and leaves no entry.
  Frame stray = syn_to_vip();
  stray.tcp_flags = test::kAck;
  CHECK(lb.run(stray.build()).verdict == XDP_PASS);
  auto ct = lb.maps().conntrack(flow_of(stray));
  REQUIRE(ct.has_value());
  CHECK_FALSE(ct->has_value());

  // A live connection 10.0.0.1 -> 10.100.0.1:80 in this namespace: its
  // mid-stream packet is pinned.
  sh("ip addr add 10.100.0.1/32 dev lo 2>/dev/null || true");
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in vip{};
  vip.sin_family = AF_INET;
  vip.sin_port = htons(80);
  vip.sin_addr.s_addr = test::ip4("10.100.0.1");
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&vip), sizeof(vip)) == 0);
  REQUIRE(::listen(listener, 4) == 0);
  const int client = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in from{};
  from.sin_family = AF_INET;
  from.sin_addr.s_addr = test::ip4("10.0.0.1");
  REQUIRE(::bind(client, reinterpret_cast<sockaddr*>(&from), sizeof(from)) == 0);
  REQUIRE(::connect(client, reinterpret_cast<sockaddr*>(&vip), sizeof(vip)) == 0);
  const int server = ::accept(listener, nullptr, nullptr);
  REQUIRE(server >= 0);
  socklen_t len = sizeof(from);
  ::getsockname(client, reinterpret_cast<sockaddr*>(&from), &len);
  Frame live = syn_to_vip();
  live.saddr = test::ip4("10.0.0.1");
  live.sport = ntohs(from.sin_port);
  live.tcp_flags = test::kAck;
  CHECK(lb.run(live.build()).verdict == XDP_PASS);
  ct = lb.maps().conntrack(flow_of(live));
  REQUIRE(ct.has_value());
  REQUIRE(ct->has_value());
  CHECK(((*ct)->flags & MIXLB_CT_FROM_NON_SYN) != 0);
  ::close(server);
  ::close(client);
  ::close(listener);
  sh("ip addr del 10.100.0.1/32 dev lo");
}

TEST_CASE("a RST after a SYN ends the half-open flow: forwarded by its decision, never entered") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  Frame f = syn_to_vip();
  REQUIRE(lb.run(f.build()).verdict == XDP_TX);
  f.tcp_flags = test::kRst;
  CHECK(lb.run(f.build()).verdict == XDP_TX);
  auto ct = lb.maps().conntrack(flow_of(f));
  REQUIRE(ct.has_value());
  CHECK_FALSE(ct->has_value());
  auto half = lb.maps().half_open(flow_of(f));
  REQUIRE(half.has_value());
  CHECK_FALSE(half->has_value());
}

// A flow whose half-open slot (flow hash & slots - 1) is `f`'s.
static Frame same_half_open_slot(Lb& lb, const Frame& f) {
  const int fd = lb.prog->map_fd("mixlb_half_open");
  bpf_map_info info{};
  std::uint32_t len = sizeof(info);
  REQUIRE(bpf_obj_get_info_by_fd(fd, &info, &len) == 0);
  const std::uint32_t mask = info.max_entries - 1;
  const auto flow = flow_of(f);
  Frame other = f;
  for (other.sport = 1024;; ++other.sport) {
    const auto o = flow_of(other);
    if (other.sport != f.sport && (mixlb_flow_hash(&o) & mask) == (mixlb_flow_hash(&flow) & mask)) return other;
  }
}

TEST_CASE("a new flow whose half-open slot a newer one took: its ACK gets the Maglev answer of the moment") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  const Frame a = syn_to_vip();
  const Frame b = same_half_open_slot(lb, a);
  REQUIRE(lb.run(a.build()).verdict == XDP_TX);  // A's decision: the peer
  lb.vip_all("10.100.0.1", 80, kSelf);           // the table changes within A's handshake
  REQUIRE(lb.run(b.build()).verdict == XDP_PASS);  // B takes the slot
  auto half = lb.maps().half_open(flow_of(a));
  REQUIRE(half.has_value());
  CHECK_FALSE(half->has_value());
  Frame ack_a = a, ack_b = b;
  ack_a.tcp_flags = ack_b.tcp_flags = test::kAck;
  // A lost its decision: its ACK is placed by the table it meets.
  CHECK(lb.run(ack_a.build()).verdict == XDP_PASS);
  CHECK(lb.run(ack_b.build()).verdict == XDP_PASS);
  auto counters = lb.maps().counters();
  REQUIRE(counters.has_value());
  CHECK(counters->events[MIXLB_CNT_CT_MISS] == 3);  // both SYNs and A's ACK
  CHECK(counters->events[MIXLB_CNT_CT_HIT] == 1);   // B's ACK found its decision
  CHECK(counters->events[MIXLB_CNT_CT_INSERT] == 1);  // and promoted it
}

TEST_CASE("a half-open slot whose check fails (two writers at once) reads as empty") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  const Frame f = syn_to_vip();
  REQUIRE(lb.run(f.build()).verdict == XDP_TX);
  const auto flow = flow_of(f);
  const int fd = lb.prog->map_fd("mixlb_half_open");
  bpf_map_info info{};
  std::uint32_t len = sizeof(info);
  REQUIRE(bpf_obj_get_info_by_fd(fd, &info, &len) == 0);
  const std::uint32_t index = mixlb_flow_hash(&flow) & (info.max_entries - 1);
  mixlb_half_open slot{};
  REQUIRE(bpf_map_lookup_elem(fd, &index, &slot) == 0);
  CHECK(slot.check == mixlb_half_open_check(mixlb_flow_hash(&flow), &slot.decision));
  // The flow's key with another write's decision: what a torn slot looks like.
  slot.decision.node_id = kGhost;
  REQUIRE(bpf_map_update_elem(fd, &index, &slot, BPF_ANY) == 0);
  auto half = lb.maps().half_open(flow);
  REQUIRE(half.has_value());
  CHECK_FALSE(half->has_value());
  lb.vip_all("10.100.0.1", 80, kSelf);
  Frame ack = f;
  ack.tcp_flags = test::kAck;
  // Not to the ghost node the torn slot names: the table's answer.
  CHECK(lb.run(ack.build()).verdict == XDP_PASS);
  auto counters = lb.maps().counters();
  REQUIRE(counters.has_value());
  CHECK(counters->events[MIXLB_CNT_CT_MISS] == 2);
  CHECK(counters->events[MIXLB_CNT_CT_HIT] == 0);
}

TEST_CASE("FIN and RST seen on a flow are recorded in its connection entry") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kSelf);
  Frame f = syn_to_vip();
  lb.run(f.build());
  f.tcp_flags = test::kAck;  // the handshake's ACK enters the flow
  lb.run(f.build());
  f.tcp_flags = test::kFin | test::kAck;
  lb.run(f.build());
  auto ct = lb.maps().conntrack(flow_of(f));
  REQUIRE(ct.has_value());
  REQUIRE(ct->has_value());
  CHECK(((*ct)->flags & MIXLB_CT_SEEN_FIN) != 0);
  CHECK(((*ct)->flags & MIXLB_CT_SEEN_RST) == 0);
  f.tcp_flags = test::kRst;
  lb.run(f.build());
  ct = lb.maps().conntrack(flow_of(f));
  CHECK(((*ct)->flags & MIXLB_CT_SEEN_RST) != 0);
}

TEST_CASE("a frame from a known peer's MAC is delivered locally, never balanced again") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  lb.peer_mac(kPeerMac, kPeer);
  Frame f = syn_to_vip();
  f.src_mac = kPeerMac;
  const Bytes in = f.build();
  auto r = lb.run(in);
  CHECK(r.verdict == XDP_PASS);
  CHECK(r.packet == in);
  const auto c = lb.counters();
  CHECK(c.from_peer_pkts == 1);
  CHECK(c.from_peer_bytes == in.size());
  CHECK(c.fwd_pkts == 0);
  auto ct = lb.maps().conntrack(flow_of(f));
  REQUIRE(ct.has_value());
  CHECK_FALSE(ct->has_value());
}

TEST_CASE("a peer's SYN records the peer as the flow's origin; its other packets and the router's do not") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  lb.peer_mac(kPeerMac, kPeer);
  Frame syn = syn_to_vip();
  syn.src_mac = kPeerMac;
  lb.run(syn.build());
  auto origin = lb.maps().origin(flow_of(syn));
  REQUIRE(origin.has_value());
  REQUIRE(origin->has_value());
  CHECK(**origin == kPeer);

  Frame data = syn_to_vip();  // another flow, first seen mid-stream from the peer
  data.src_mac = kPeerMac;
  data.sport = static_cast<std::uint16_t>(syn.sport + 1);
  data.tcp_flags = test::kAck;
  lb.run(data.build());
  origin = lb.maps().origin(flow_of(data));
  REQUIRE(origin.has_value());
  CHECK_FALSE(origin->has_value());

  Frame direct = syn_to_vip();  // the router's SYN: balanced here, no origin
  direct.sport = static_cast<std::uint16_t>(syn.sport + 2);
  lb.run(direct.build());
  origin = lb.maps().origin(flow_of(direct));
  REQUIRE(origin.has_value());
  CHECK_FALSE(origin->has_value());
}

TEST_CASE("an invalidation deletes an entry only while it points at the sender") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  Frame f = syn_to_vip();
  lb.run(f.build());
  f.tcp_flags = test::kAck;
  lb.run(f.build());
  auto ct = lb.maps().conntrack(flow_of(f));
  REQUIRE((ct.has_value() && ct->has_value()));
  REQUIRE((*ct)->node_id == kPeer);
  auto wrong = lb.maps().invalidate(flow_of(f), kSelf);  // another node's word
  REQUIRE(wrong.has_value());
  CHECK_FALSE(*wrong);
  ct = lb.maps().conntrack(flow_of(f));
  CHECK((ct.has_value() && ct->has_value()));
  auto right = lb.maps().invalidate(flow_of(f), kPeer);
  REQUIRE(right.has_value());
  CHECK(*right);
  ct = lb.maps().conntrack(flow_of(f));
  REQUIRE(ct.has_value());
  CHECK_FALSE(ct->has_value());
  auto again = lb.maps().invalidate(flow_of(f), kPeer);  // nothing left to delete
  REQUIRE(again.has_value());
  CHECK_FALSE(*again);
}

TEST_CASE("the in-kernel invalidation deletes a batch's entries that point at the sender, and only those") {
  Lb lb;
  auto program = CtInvalidateProgram::load(lb.maps().conntrack_fd());
  REQUIRE_MESSAGE(program.has_value(), (program ? "" : program.error().message()));
  // 160 flows, two runs' worth: 130 point at the peer, 20 at this node, 10
  // have no entry.
  std::vector<mixlb_flow_key> flows;
  for (std::uint16_t p = 0; p < 160; ++p) {
    Frame f = syn_to_vip();
    f.sport = static_cast<std::uint16_t>(30000 + p);
    flows.push_back(flow_of(f));
  }
  const std::span<const mixlb_flow_key> all(flows);
  for (std::size_t i = 0; i < 150; ++i) {
    const mixlb_ct_value v{.last_seen_ns = 1, .node_id = i < 130 ? kPeer : kSelf};
    REQUIRE(lb.maps().conntrack_insert(flows[i], v).has_value());
  }
  auto present = [&](std::size_t i) {
    auto ct = lb.maps().conntrack(flows[i]);
    REQUIRE(ct.has_value());
    return ct->has_value();
  };
  for (std::size_t i = 0; i < 150; ++i) REQUIRE(present(i));  // none pushed out by the LRU

  auto deleted = (*program)->apply(all, kPeer);
  REQUIRE_MESSAGE(deleted.has_value(), (deleted ? "" : deleted.error().message()));
  CHECK(*deleted == 130);
  for (std::size_t i = 0; i < 130; ++i) CHECK_FALSE(present(i));
  for (std::size_t i = 130; i < 150; ++i) CHECK(present(i));
  // Nothing left that points at the peer; the rest by their own node.
  CHECK((*program)->apply(all, kPeer).value_or(99) == 0);
  CHECK((*program)->apply(all.subspan(130), kSelf).value_or(99) == 20);
  for (std::size_t i = 130; i < 150; ++i) CHECK_FALSE(present(i));
  CHECK((*program)->apply({}, kSelf).value_or(99) == 0);
}

TEST_CASE("the slot the program picks is the C++ flow hash modulo the ring") {
  Lb lb;
  // Alternate slots between this node and the peer, so the verdict tells
  // which slot the program read.
  std::vector<std::uint32_t> table(kRing);
  for (std::uint32_t i = 0; i < kRing; ++i) table[i] = i % 2 ? kPeer : kSelf;
  REQUIRE(lb.maps().publish_vip(vip_key("10.100.0.1", 80), 0, table).has_value());
  int local = 0, forwarded = 0;
  for (std::uint16_t port = 20000; port < 20064; ++port) {
    Frame f = syn_to_vip();
    f.sport = port;
    const mixlb_flow_key key = flow_of(f);
    const std::uint32_t slot = mixlb_flow_hash(&key) % kRing;
    const std::uint32_t want = slot % 2 ? XDP_TX : XDP_PASS;
    CHECK(lb.run(f.build()).verdict == want);
    (want == XDP_TX ? forwarded : local)++;
  }
  CHECK(local > 0);
  CHECK(forwarded > 0);
}

TEST_CASE("a Maglev table from the builder spreads flows over all three nodes") {
  Lb lb(MIXLB_DEFAULT_RING_SIZE);
  const std::vector<MaglevBackend> backends{{"self", kSelf, 1}, {"peer", kPeer, 1}, {"far", kFar, 1}};
  const auto table = build_maglev_table(backends, MIXLB_DEFAULT_RING_SIZE);
  REQUIRE(lb.maps().publish_vip(vip_key("10.100.0.1", 80), 0, table).has_value());
  int pass = 0, tx = 0, redirect = 0;
  for (std::uint16_t port = 30000; port < 30300; ++port) {
    Frame f = syn_to_vip();
    f.sport = port;
    const auto v = lb.run(f.build()).verdict;
    pass += v == XDP_PASS;
    tx += v == XDP_TX;
    redirect += v == XDP_REDIRECT;
  }
  CHECK(pass + tx + redirect == 300);
  CHECK(pass > 60);
  CHECK(tx > 60);
  CHECK(redirect > 60);
}

TEST_CASE("publishing a table flips the VIP's active half and the live table is the new one") {
  Lb lb;
  CHECK(lb.vip_all("10.100.0.1", 80, kSelf) == 0);
  CHECK(lb.vip_all("10.100.0.1", 80, kPeer) == 1);
  auto live = lb.maps().live_table(vip_key("10.100.0.1", 80));
  REQUIRE(live.has_value());
  CHECK(std::count(live->begin(), live->end(), kPeer) == kRing);
  CHECK(lb.vip_all("10.100.0.1", 80, kSelf) == 0);
  CHECK(lb.run(syn_to_vip().build()).verdict == XDP_PASS);
}

TEST_CASE("a table of the wrong size is refused and the live table stays") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kSelf);
  std::vector<std::uint32_t> wrong(kRing - 1, kPeer);
  CHECK_FALSE(lb.maps().publish_vip(vip_key("10.100.0.1", 80), 0, wrong).has_value());
  CHECK(lb.run(syn_to_vip().build()).verdict == XDP_PASS);
}

TEST_CASE("two ports of one VIP address are balanced by their own tables") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kSelf, 0);
  lb.vip_all("10.100.0.1", 443, kPeer, 1);
  Frame http = syn_to_vip();
  Frame https = syn_to_vip();
  https.dport = 443;
  CHECK(lb.run(http.build()).verdict == XDP_PASS);
  CHECK(lb.run(https.build()).verdict == XDP_TX);
  CHECK(lb.counters(0).local_pkts == 1);
  CHECK(lb.counters(1).fwd_pkts == 1);
  CHECK(lb.counters(0).fwd_pkts == 0);
}

TEST_CASE("a removed VIP is no longer balanced") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  REQUIRE(lb.maps().remove_vip(vip_key("10.100.0.1", 80)).has_value());
  check_untouched(lb, syn_to_vip().build());
}

TEST_CASE("IPv4 with options is balanced, and the options come out unchanged") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  for (std::size_t option_bytes : {4u, 8u, 40u}) {
    CAPTURE(option_bytes);
    Frame f = syn_to_vip();
    f.ip_options = Bytes(option_bytes, 0x01);  // NOPs
    const Bytes in = f.build();
    auto r = lb.run(in);
    CHECK(r.verdict == XDP_TX);
    CHECK(r.packet == test::with_macs(in, kPeerMac, test_net().dp0_mac));
  }
}

TEST_CASE("a frame holding only an Ethernet header passes untouched") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  const Bytes full = syn_to_vip().build();
  check_untouched(lb, Bytes(full.begin(), full.begin() + 14));
}

TEST_CASE("frames shorter than an Ethernet header never reach the program") {
  Lb lb;
  const Bytes full = syn_to_vip().build();
  auto r = xdp_test_run(lb.prog->prog_fd(), Bytes(full.begin(), full.begin() + 10), test_net().dp0);
  CHECK_FALSE(r.has_value());
}

TEST_CASE("truncated IPv4 and TCP headers pass untouched") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  const Bytes full = syn_to_vip().build();
  for (std::size_t len : {15u, 20u, 33u, 34u, 40u, 53u}) {
    CAPTURE(len);
    check_untouched(lb, Bytes(full.begin(), full.begin() + len));
  }
  CHECK(lb.counters().fwd_pkts == 0);
}

TEST_CASE("options that run past the end of the frame pass untouched") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  Frame f = syn_to_vip();
  f.ip_options = Bytes(40, 0x01);
  const Bytes full = f.build();
  check_untouched(lb, Bytes(full.begin(), full.begin() + 14 + 60 + 10));
}

TEST_CASE("IPv4 headers that lie about their lengths pass untouched") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  Frame short_ihl = syn_to_vip();
  short_ihl.ihl = 4;
  check_untouched(lb, short_ihl.build());
  Frame short_total = syn_to_vip();
  short_total.tot_len = 30;
  check_untouched(lb, short_total.build());
  Frame v6_in_v4 = syn_to_vip();
  Bytes bytes = v6_in_v4.build();
  bytes[14] = 0x65;  // version 6 in an IPv4 ethertype frame
  check_untouched(lb, bytes);
}

TEST_CASE("IPv4 fragments pass untouched: first, middle and last") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  for (std::uint16_t frag : {std::uint16_t{0x2000}, std::uint16_t{0x2010}, std::uint16_t{0x0010}}) {
    CAPTURE(frag);
    Frame f = syn_to_vip();
    f.frag_off = frag;
    check_untouched(lb, f.build());
  }
}

TEST_CASE("counters of passed-through and forwarded traffic add up over many packets") {
  Lb lb;
  lb.vip_all("10.100.0.1", 80, kPeer);
  std::uint64_t bytes = 0;
  for (int i = 0; i < 20; ++i) {
    Frame f = syn_to_vip();
    f.sport = static_cast<std::uint16_t>(50000 + i);
    f.payload = Bytes(static_cast<std::size_t>(i), 0x33);
    const Bytes in = f.build();
    bytes += in.size();
    REQUIRE(lb.run(in).verdict == XDP_TX);
  }
  const auto c = lb.counters();
  CHECK(c.fwd_pkts == 20);
  CHECK(c.fwd_bytes == bytes);
  CHECK(c.dropped() == 0);
}

}  // TEST_SUITE

}  // namespace mixlb
