// Tests for sidecar/netlink: the request encoding and reply decoding byte by
// byte (no privilege needed), then real round trips with the kernel inside
// private network namespaces that each test makes and that vanish with the
// thread that made them. Without the privilege to make a namespace those
// cases report skipped, never passed.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "kernel/netlink.h"
#include "netns_probe.h"

namespace mixlb {
namespace {

// ---------------------------------------------------------------------------
// Privilege probe, computed once at static initialisation (before the test
// cases below register, so their skip decorators can use it).

const bool kCanUnshare = test::can_unshare_netns("netlink kernel round trips");
bool can_unshare_netns() { return kCanUnshare; }

// Only asked where namespaces work, so a missing privilege is reported once,
// under the round trips, and not again as an IPv6 problem.
const bool kIpv6Works = kCanUnshare && test::ipv6_works("netlink IPv6 round trip");
bool ipv6_works() { return kIpv6Works; }

// Runs `body` on a thread of its own that has moved into a fresh network
// namespace with `lo` up. The namespace, and every link, address and
// neighbour made in it, disappears when the thread ends, pass or fail.
void in_private_netns(const std::function<void(RtNetlink&)>& body) {
  std::exception_ptr failure;
  std::thread([&] {
    try {
      REQUIRE(::unshare(CLONE_NEWNET) == 0);
      auto nl = RtNetlink::open();
      REQUIRE(nl.has_value());
      const auto lo = nl->link_index("lo");
      REQUIRE(lo.has_value());
      REQUIRE_FALSE(nl->set_link_up(*lo));
      body(*nl);
    } catch (...) {
      failure = std::current_exception();
    }
  }).join();
  if (failure) std::rethrow_exception(failure);
}

Address addr(const char* text) {
  auto parsed = Address::parse(text);
  REQUIRE(parsed.has_value());
  return *parsed;
}

// Host-order fields, as netlink carries them.
struct Bytes {
  std::vector<std::byte> data;
  Bytes& u8(std::uint8_t v) {
    data.push_back(static_cast<std::byte>(v));
    return *this;
  }
  Bytes& u16(std::uint16_t v) { return raw(&v, 2); }
  Bytes& u32(std::uint32_t v) { return raw(&v, 4); }
  Bytes& raw(const void* p, std::size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    data.insert(data.end(), b, b + n);
    return *this;
  }
};

std::vector<std::byte> to_vector(std::span<const std::byte> s) { return {s.begin(), s.end()}; }

// ---------------------------------------------------------------------------
// Codec.

TEST_SUITE("netlink") {
  TEST_CASE("RTM_NEWADDR for a /32 VIP on lo, byte by byte") {
    auto request = netlink::encode_address(RTM_NEWADDR, 1, addr("10.100.0.1"), 32);
    request.set_sequence(7);
    Bytes expected;
    expected.u32(40)
        .u16(RTM_NEWADDR)
        .u16(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
        .u32(7)
        .u32(0);
    expected.u8(AF_INET).u8(32).u8(0).u8(RT_SCOPE_UNIVERSE).u32(1);  // ifaddrmsg
    expected.u16(8).u16(IFA_LOCAL).u8(10).u8(100).u8(0).u8(1);
    expected.u16(8).u16(IFA_ADDRESS).u8(10).u8(100).u8(0).u8(1);
    CHECK(to_vector(request.bytes()) == expected.data);
  }

  TEST_CASE("RTM_DELADDR asks for an ACK but neither creates nor excludes") {
    const auto request = netlink::encode_address(RTM_DELADDR, 3, addr("10.100.0.1"), 32);
    CHECK(request.type() == RTM_DELADDR);
    CHECK(request.flags() == (NLM_F_REQUEST | NLM_F_ACK));
  }

  TEST_CASE("IPv6 address requests carry 16 bytes and skip DAD") {
    const auto request = netlink::encode_address(RTM_NEWADDR, 1, addr("fd00::1"), 128);
    const auto bytes = request.bytes();
    REQUIRE(bytes.size() == 16 + 8 + 2 * (4 + 16));
    ifaddrmsg header{};
    std::memcpy(&header, bytes.data() + 16, sizeof(header));
    CHECK(header.ifa_family == AF_INET6);
    CHECK(header.ifa_prefixlen == 128);
    CHECK(header.ifa_flags == IFA_F_NODAD);
    auto attributes = netlink::Attributes::parse(bytes.subspan(16 + sizeof(ifaddrmsg)));
    REQUIRE(attributes.has_value());
    const auto local = attributes->get(IFA_LOCAL);
    REQUIRE(local.has_value());
    CHECK(local->size() == 16);
    CHECK(std::memcmp(local->data(), addr("fd00::1").words.data(), 16) == 0);
  }

  TEST_CASE("a managed neighbour is NUD_NONE plus NTF_EXT_MANAGED in NDA_FLAGS_EXT") {
    const auto request = netlink::encode_neighbour(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_EXCL, 4,
                                                   addr("10.0.0.12"), NUD_NONE, 0, NTF_EXT_MANAGED);
    Bytes expected;
    expected.u32(44)
        .u16(RTM_NEWNEIGH)
        .u16(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
        .u32(0)
        .u32(0);
    expected.u8(AF_INET).u8(0).u16(0).u32(4).u16(NUD_NONE).u8(0).u8(0);  // ndmsg
    expected.u16(8).u16(NDA_DST).u8(10).u8(0).u8(0).u8(12);
    expected.u16(8).u16(NDA_FLAGS_EXT).u32(NTF_EXT_MANAGED);
    CHECK(to_vector(request.bytes()) == expected.data);
  }

  TEST_CASE("single-object gets ask for an ACK; dumps do not") {
    const auto request = netlink::encode_neighbour(RTM_GETNEIGH, 0, 4, addr("10.0.0.12"), 0, 0, 0);
    CHECK(request.flags() == (NLM_F_REQUEST | NLM_F_ACK));
    CHECK(netlink::encode_get_link("lo").flags() == (NLM_F_REQUEST | NLM_F_ACK));
    CHECK(netlink::encode_get_link(1).flags() == (NLM_F_REQUEST | NLM_F_ACK));
    CHECK(netlink::encode_dump_addresses(AF_INET).flags() == (NLM_F_REQUEST | NLM_F_DUMP));
    // No NDA_FLAGS_EXT when there are no extended flags.
    CHECK(request.bytes().size() == 16 + sizeof(ndmsg) + 8);
  }

  TEST_CASE("a veth request nests link info, veth data and the peer's ifinfomsg") {
    const auto request = netlink::encode_new_veth("mxa0", "mxb0", 7);
    const auto bytes = request.bytes();
    auto messages = netlink::split_messages(bytes);
    REQUIRE(messages.has_value());
    REQUIRE(messages->size() == 1);
    const auto& message = messages->front();
    CHECK(message.type == RTM_NEWLINK);
    CHECK(message.flags == (NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL));
    CHECK(message.payload.size() == bytes.size() - 16);

    auto top = netlink::Attributes::parse(message.payload.subspan(sizeof(ifinfomsg)));
    REQUIRE(top.has_value());
    CHECK(top->string(IFLA_IFNAME) == "mxa0");
    const auto linkinfo_area = top->get(IFLA_LINKINFO);
    REQUIRE(linkinfo_area.has_value());
    auto linkinfo = netlink::Attributes::parse(*linkinfo_area);
    REQUIRE(linkinfo.has_value());
    CHECK(linkinfo->string(IFLA_INFO_KIND) == "veth");
    auto data = netlink::Attributes::parse(*linkinfo->get(IFLA_INFO_DATA));
    REQUIRE(data.has_value());
    const auto peer_area = data->get(VETH_INFO_PEER);
    REQUIRE(peer_area.has_value());
    REQUIRE(peer_area->size() >= sizeof(ifinfomsg));
    auto peer = netlink::Attributes::parse(peer_area->subspan(sizeof(ifinfomsg)));
    REQUIRE(peer.has_value());
    CHECK(peer->string(IFLA_IFNAME) == "mxb0");
    CHECK(peer->u32(IFLA_NET_NS_FD) == 7u);
    // The nests close exactly where the message ends.
    CHECK(linkinfo_area->data() + linkinfo_area->size() == bytes.data() + bytes.size());
  }

  TEST_CASE("split_messages and Attributes::parse reject lengths that lie") {
    Bytes short_header;
    short_header.u32(16).u16(NLMSG_DONE);  // 6 bytes of a 16-byte header
    CHECK(netlink::split_messages(short_header.data).error() == std::errc::bad_message);

    Bytes too_long;
    too_long.u32(64).u16(NLMSG_DONE).u16(0).u32(0).u32(0);  // claims 64, has 16
    CHECK(netlink::split_messages(too_long.data).error() == std::errc::bad_message);

    Bytes bad_attr;
    bad_attr.u16(12).u16(IFA_LOCAL).u32(0);  // claims 12, has 8
    CHECK(netlink::Attributes::parse(bad_attr.data).error() == std::errc::bad_message);

    Bytes tiny_attr;
    tiny_attr.u16(2).u16(IFA_LOCAL);  // shorter than its own header
    CHECK(netlink::Attributes::parse(tiny_attr.data).error() == std::errc::bad_message);

    Bytes two;  // two messages, the first padded to 4 bytes
    two.u32(20).u16(RTM_NEWLINK).u16(0).u32(1).u32(0).u8(1).u8(0).u8(0).u8(0);
    two.u32(16).u16(NLMSG_DONE).u16(0).u32(1).u32(0);
    auto messages = netlink::split_messages(two.data);
    REQUIRE(messages.has_value());
    REQUIRE(messages->size() == 2);
    CHECK((*messages)[0].payload.size() == 4);
    CHECK((*messages)[1].type == NLMSG_DONE);
  }

  TEST_CASE("attribute types lose their NLA_F_ bits and the last duplicate wins") {
    Bytes area;
    area.u16(8).u16(IFLA_LINKINFO | NLA_F_NESTED).u32(0);
    area.u16(8).u16(IFLA_MTU).u32(1500);
    area.u16(8).u16(IFLA_MTU).u32(9000);
    auto attributes = netlink::Attributes::parse(area.data);
    REQUIRE(attributes.has_value());
    CHECK(attributes->get(IFLA_LINKINFO).has_value());
    CHECK(attributes->u32(IFLA_MTU) == 9000u);
    CHECK_FALSE(attributes->u32(IFLA_LINK).has_value());
  }

  // An NLMSG_ERROR as the kernel sends it with CAP_ACK and EXT_ACK set.
  Bytes error_message(int error, std::uint16_t flags, const char* text, std::size_t echoed = 0) {
    Bytes tlv;
    if (text != nullptr) {
      const std::size_t length = std::strlen(text) + 1;
      tlv.u16(static_cast<std::uint16_t>(4 + length)).u16(NLMSGERR_ATTR_MSG).raw(text, length);
      while (tlv.data.size() % 4 != 0) tlv.u8(0);
    }
    Bytes body;
    body.u32(static_cast<std::uint32_t>(error));
    body.u32(static_cast<std::uint32_t>(16 + echoed)).u16(RTM_NEWADDR).u16(0).u32(9).u32(0);
    for (std::size_t i = 0; i < echoed; ++i) body.u8(0xee);
    body.data.insert(body.data.end(), tlv.data.begin(), tlv.data.end());
    Bytes message;
    message.u32(static_cast<std::uint32_t>(16 + body.data.size()))
        .u16(NLMSG_ERROR)
        .u16(flags)
        .u32(9)
        .u32(0);
    message.data.insert(message.data.end(), body.data.begin(), body.data.end());
    return message;
  }

  TEST_CASE("NLMSG_ERROR becomes an errno and the extack text") {
    SUBCASE("capped, with a message") {
      const auto bytes =
          error_message(-EEXIST, NLM_F_CAPPED | NLM_F_ACK_TLVS, "Address already assigned").data;
      auto messages = netlink::split_messages(bytes);
      REQUIRE(messages.has_value());
      auto error = netlink::decode_error(messages->front());
      REQUIRE(error.has_value());
      CHECK(error->error == EEXIST);
      CHECK(error->detail == "Address already assigned");
      CHECK(std::error_code(error->error, std::system_category()) == std::errc::file_exists);
    }
    SUBCASE("uncapped: the echoed request is skipped before the TLVs") {
      const auto bytes = error_message(-ENODEV, NLM_F_ACK_TLVS, "Unknown device", 24).data;
      auto messages = netlink::split_messages(bytes);
      REQUIRE(messages.has_value());
      auto error = netlink::decode_error(messages->front());
      REQUIRE(error.has_value());
      CHECK(error->error == ENODEV);
      CHECK(error->detail == "Unknown device");
    }
    SUBCASE("an ACK is error 0") {
      const auto bytes = error_message(0, NLM_F_CAPPED, nullptr).data;
      auto messages = netlink::split_messages(bytes);
      REQUIRE(messages.has_value());
      auto error = netlink::decode_error(messages->front());
      REQUIRE(error.has_value());
      CHECK(error->error == 0);
      CHECK(error->detail.empty());
    }
    SUBCASE("a truncated error is a bad message, not an ACK") {
      netlink::Message message;
      message.type = NLMSG_ERROR;
      const std::byte two[2] = {};
      message.payload = two;
      CHECK(netlink::decode_error(message).error() == std::errc::bad_message);
    }
  }

  TEST_CASE("neighbour states and MACs print the way ip(8) does") {
    CHECK(neighbour_state_name(NUD_REACHABLE) == "reachable");
    CHECK(neighbour_state_name(NUD_NONE) == "none");
    CHECK(neighbour_state_name(NUD_FAILED) == "failed");
    CHECK(neighbour_state_name(NUD_PERMANENT) == "permanent");
    CHECK(neighbour_state_name(NUD_STALE | NUD_PROBE) == "stale+probe");

    Neighbour entry;
    entry.state = NUD_REACHABLE;
    CHECK_FALSE(entry.resolved());  // no MAC yet
    entry.mac = MacAddress{2, 0, 0, 0, 0, 0x12};
    CHECK(entry.resolved());
    entry.state = NUD_INCOMPLETE;
    CHECK_FALSE(entry.resolved());
    CHECK_FALSE(entry.managed());
    entry.ext_flags = NTF_EXT_MANAGED;
    CHECK(entry.managed());

    const MacAddress mac{0x02, 0x00, 0xab, 0xCD, 0x00, 0x11};
    CHECK(format_mac(mac) == "02:00:ab:cd:00:11");
    CHECK(parse_mac("02:00:AB:cd:00:11") == mac);
    CHECK_FALSE(parse_mac("02:00:ab:cd:00").has_value());
    CHECK_FALSE(parse_mac("02-00-ab-cd-00-11").has_value());
    CHECK_FALSE(parse_mac("02:00:ab:cd:00:1g").has_value());
  }

  // ---------------------------------------------------------------------------
  // Kernel round trips.

  TEST_CASE("lo: index 1, an all-zero MAC, 127.0.0.1/8" * doctest::skip(!can_unshare_netns())) {
    in_private_netns([](RtNetlink& nl) {
      const auto lo = nl.link_index("lo");
      REQUIRE(lo.has_value());
      CHECK(*lo == 1);
      const auto mac = nl.link_mac(*lo);
      REQUIRE(mac.has_value());
      CHECK(format_mac(*mac) == "00:00:00:00:00:00");
      const auto addresses = nl.ipv4_addresses(*lo);
      REQUIRE(addresses.has_value());
      REQUIRE(addresses->size() == 1);
      CHECK(addresses->front().address == addr("127.0.0.1"));
      CHECK(addresses->front().prefix_len == 8);
      CHECK_FALSE(addresses->front().secondary);
      CHECK(nl.ipv4_addresses(999).value().empty());
    });
  }

  TEST_CASE("a VIP on lo: added, already present, deleted" * doctest::skip(!can_unshare_netns())) {
    in_private_netns([](RtNetlink& nl) {
      const int lo = nl.link_index("lo").value();
      const Address vip = addr("10.100.0.1");

      auto first = nl.add_address(lo, vip, 32);
      REQUIRE(first.has_value());
      CHECK(*first == AddressChange::kAdded);
      auto second = nl.add_address(lo, vip, 32);
      REQUIRE(second.has_value());
      CHECK(*second == AddressChange::kAlreadyPresent);

      auto listed = nl.ipv4_addresses(lo).value();
      CHECK(std::find(listed.begin(), listed.end(), InterfaceAddress{vip, 32, false}) !=
            listed.end());

      CHECK_FALSE(nl.delete_address(lo, vip, 32));
      listed = nl.ipv4_addresses(lo).value();
      CHECK(std::none_of(listed.begin(), listed.end(),
                         [&](const InterfaceAddress& a) { return a.address == vip; }));
      CHECK(nl.delete_address(lo, vip, 32) == std::errc::address_not_available);

      CHECK(nl.add_address(lo, vip, 33).error() == std::errc::invalid_argument);
      CHECK(nl.add_address(lo, Address{}, 32).error() == std::errc::invalid_argument);
      CHECK(nl.add_address(4242, vip, 32).error() == std::errc::no_such_device);
    });
  }

  TEST_CASE("an IPv6 VIP on lo" * doctest::skip(!ipv6_works())) {
    in_private_netns([](RtNetlink& nl) {
      const int lo = nl.link_index("lo").value();
      const Address vip = addr("fd00:100::1");
      auto added = nl.add_address(lo, vip, 128);
      INFO("error: ", added ? std::string() : added.error().message(), " ", nl.last_error_detail());
      REQUIRE(added.has_value());
      CHECK(*added == AddressChange::kAdded);
      CHECK(nl.add_address(lo, vip, 128).value() == AddressChange::kAlreadyPresent);
      CHECK_FALSE(nl.delete_address(lo, vip, 128));
      CHECK(nl.delete_address(lo, vip, 128));  // gone: an error now
    });
  }

  TEST_CASE("unknown links and absent entries are errors with the kernel's errno" *
            doctest::skip(!can_unshare_netns())) {
    in_private_netns([](RtNetlink& nl) {
      CHECK(nl.link_index("mxnope0").error() == std::errc::no_such_device);
      CHECK(nl.link_index("").error() == std::errc::invalid_argument);
      CHECK(nl.link_index("a-name-longer-than-ifnamsiz").error() == std::errc::invalid_argument);
      CHECK(nl.link_mac(4242).error() == std::errc::no_such_device);
      CHECK(nl.set_link_up(4242) == std::errc::no_such_device);

      const int lo = nl.link_index("lo").value();
      const auto missing = nl.get_neighbour(lo, addr("10.9.9.9"));
      REQUIRE_FALSE(missing.has_value());
      CHECK(missing.error() == std::errc::no_such_file_or_directory);
      // The kernel explains itself through the extended ACK.
      CHECK(nl.last_error_detail().find("not found") != std::string::npos);
      CHECK(nl.delete_neighbour(lo, addr("10.9.9.9")) == std::errc::no_such_file_or_directory);
      // A request that works clears the previous explanation.
      CHECK(nl.link_index("lo").has_value());
      CHECK(nl.last_error_detail().empty());
    });
  }

  // Two namespaces joined by a veth pair: `near` (this thread's) holds mxa0 =
  // 10.77.0.1/24, `far` holds mxb0 = 10.77.0.2/24. The far side answers ARP, so
  // neighbours on mxa0 really resolve.
  struct VethPair {
    RtNetlink& near;
    RtNetlink far;
    int near_index = 0;
    int far_index = 0;
  };

  void with_veth_pair(const std::function<void(VethPair&)>& body) {
    in_private_netns([&](RtNetlink& outer) {
      (void)outer;
      // This thread's current namespace becomes the far one; a second unshare
      // makes the near one, and the fd keeps the far one alive meanwhile.
      auto far = RtNetlink::open();
      REQUIRE(far.has_value());
      const int far_fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
      REQUIRE(far_fd >= 0);
      struct CloseFd {
        int fd;
        ~CloseFd() { ::close(fd); }
      } close_far{far_fd};
      REQUIRE(::unshare(CLONE_NEWNET) == 0);
      auto near = RtNetlink::open();
      REQUIRE(near.has_value());
      REQUIRE_FALSE(near->set_link_up(near->link_index("lo").value()));

      REQUIRE_FALSE(near->create_veth("mxa0", "mxb0", far_fd));
      CHECK(near->create_veth("mxa0", "mxc0", -1) == std::errc::file_exists);
      VethPair pair{*near, std::move(*far)};
      pair.near_index = near->link_index("mxa0").value();
      pair.far_index = pair.far.link_index("mxb0").value();
      CHECK(near->link_index("mxb0").error() == std::errc::no_such_device);  // it is over there

      REQUIRE(near->add_address(pair.near_index, addr("10.77.0.1"), 24).has_value());
      REQUIRE(pair.far.add_address(pair.far_index, addr("10.77.0.2"), 24).has_value());
      REQUIRE_FALSE(near->set_link_up(pair.near_index));
      REQUIRE_FALSE(pair.far.set_link_up(pair.far_index));
      body(pair);
    });
  }

  // Polls until the entry is resolved (or 5 s pass) and returns its last state.
  Neighbour wait_resolved(RtNetlink & nl, int ifindex, const Address& peer) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      auto entry = nl.get_neighbour(ifindex, peer);
      REQUIRE(entry.has_value());
      if (entry->resolved() || std::chrono::steady_clock::now() > deadline) return *entry;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  TEST_CASE("veth links: index, distinct MACs, addresses" * doctest::skip(!can_unshare_netns())) {
    with_veth_pair([](VethPair& pair) {
      const auto near_mac = pair.near.link_mac(pair.near_index);
      const auto far_mac = pair.far.link_mac(pair.far_index);
      REQUIRE(near_mac.has_value());
      REQUIRE(far_mac.has_value());
      CHECK(*near_mac != MacAddress{});
      CHECK(*near_mac != *far_mac);
      const auto addresses = pair.near.ipv4_addresses(pair.near_index).value();
      REQUIRE(addresses.size() == 1);
      CHECK(addresses.front() == InterfaceAddress{addr("10.77.0.1"), 24, false});
      // A second address in the same subnet is a secondary.
      REQUIRE(pair.near.add_address(pair.near_index, addr("10.77.0.5"), 24).has_value());
      const auto both = pair.near.ipv4_addresses(pair.near_index).value();
      REQUIRE(both.size() == 2);
      CHECK(both[1] == InterfaceAddress{addr("10.77.0.5"), 24, true});

      CHECK_FALSE(pair.near.delete_link(pair.near_index));
      CHECK(pair.near.link_index("mxa0").error() == std::errc::no_such_device);
    });
  }

  TEST_CASE("a managed neighbour resolves by itself, reads back, and is deleted" *
            doctest::skip(!can_unshare_netns())) {
    with_veth_pair([](VethPair& pair) {
      const Address peer = addr("10.77.0.2");
      const MacAddress far_mac = pair.far.link_mac(pair.far_index).value();

      const auto setup = pair.near.add_managed_neighbour(pair.near_index, peer);
      REQUIRE(setup.has_value());
      CHECK(setup->managed);  // this kernel is 5.16 or newer
      CHECK(setup->created);

      const Neighbour entry = wait_resolved(pair.near, pair.near_index, peer);
      INFO("state: ", entry.state_name());
      CHECK(entry.resolved());
      CHECK(entry.managed());
      CHECK(entry.state_name() == "reachable");
      CHECK(entry.address == peer);
      CHECK(entry.ifindex == pair.near_index);
      REQUIRE(entry.mac.has_value());
      CHECK(*entry.mac == far_mac);

      // Adding it again leaves the existing managed entry alone (and to its owner).
      const auto again = pair.near.add_managed_neighbour(pair.near_index, peer);
      REQUIRE(again.has_value());
      CHECK(again->managed);
      CHECK_FALSE(again->created);

      CHECK_FALSE(pair.near.delete_neighbour(pair.near_index, peer));
      CHECK(pair.near.get_neighbour(pair.near_index, peer).error() ==
            std::errc::no_such_file_or_directory);
      CHECK(pair.near.delete_neighbour(pair.near_index, peer) ==
            std::errc::no_such_file_or_directory);
    });
  }

  TEST_CASE("a kick resolves an unmanaged entry, and a managed add takes it over" *
            doctest::skip(!can_unshare_netns())) {
    with_veth_pair([](VethPair& pair) {
      const Address peer = addr("10.77.0.2");
      REQUIRE_FALSE(pair.near.kick_neighbour(pair.near_index, peer));
      const Neighbour kicked = wait_resolved(pair.near, pair.near_index, peer);
      INFO("state: ", kicked.state_name());
      CHECK(kicked.resolved());
      CHECK_FALSE(kicked.managed());
      CHECK(kicked.mac == pair.far.link_mac(pair.far_index).value());

      const auto setup = pair.near.add_managed_neighbour(pair.near_index, peer);
      REQUIRE(setup.has_value());
      CHECK(setup->managed);
      CHECK(setup->created);  // a dynamic entry is ours to remove afterwards
      CHECK(pair.near.get_neighbour(pair.near_index, peer)->managed());
    });
  }

  TEST_CASE("a peer that never answers stays unresolved, managed or not" *
            doctest::skip(!can_unshare_netns())) {
    with_veth_pair([](VethPair& pair) {
      const Address silent = addr("10.77.0.3");
      REQUIRE_FALSE(pair.near.kick_neighbour(pair.near_index, silent));
      auto entry = pair.near.get_neighbour(pair.near_index, silent);
      REQUIRE(entry.has_value());
      CHECK_FALSE(entry->resolved());
      CHECK((entry->state & (NUD_INCOMPLETE | NUD_FAILED)) != 0);

      const auto setup = pair.near.add_managed_neighbour(pair.near_index, silent);
      REQUIRE(setup.has_value());
      CHECK(setup->managed);
      entry = pair.near.get_neighbour(pair.near_index, silent);
      REQUIRE(entry.has_value());
      CHECK(entry->managed());
      CHECK_FALSE(entry->resolved());
      CHECK_FALSE(entry->mac.has_value());
      CHECK_FALSE(pair.near.delete_neighbour(pair.near_index, silent));
    });
  }

}  // TEST_SUITE

}  // namespace
}  // namespace mixlb
