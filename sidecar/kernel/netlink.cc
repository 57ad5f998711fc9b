#include "kernel/netlink.h"

#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace mixlb {

namespace {

std::error_code errno_code(int value) { return {value, std::system_category()}; }
std::error_code last_errno() { return errno_code(errno); }

constexpr std::size_t align4(std::size_t n) { return (n + 3) & ~std::size_t{3}; }

template <typename T>
T load(std::span<const std::byte> bytes, std::size_t offset = 0) {
  T value{};
  std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

std::size_t address_length(const Address& address) { return address.is_v4() ? 4 : 16; }

std::optional<Address> address_from(int family, std::span<const std::byte> bytes) {
  Address address;
  if (family == AF_INET && bytes.size() == 4) {
    address.family = AF_INET;
    std::memcpy(address.words.data(), bytes.data(), 4);
    return address;
  }
  if (family == AF_INET6 && bytes.size() == 16) {
    address.family = AF_INET6;
    std::memcpy(address.words.data(), bytes.data(), 16);
    return address;
  }
  return std::nullopt;
}

}  // namespace

std::string format_mac(const MacAddress& mac) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text;
  text.reserve(17);
  for (std::size_t i = 0; i < mac.size(); ++i) {
    if (i != 0) text.push_back(':');
    text.push_back(kHex[mac[i] >> 4]);
    text.push_back(kHex[mac[i] & 0xf]);
  }
  return text;
}

std::optional<MacAddress> parse_mac(std::string_view text) {
  if (text.size() != 17) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  MacAddress mac{};
  for (std::size_t i = 0; i < mac.size(); ++i) {
    const std::size_t at = i * 3;
    if (i != 0 && text[at - 1] != ':') return std::nullopt;
    const int high = nibble(text[at]);
    const int low = nibble(text[at + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    mac[i] = static_cast<std::uint8_t>(high << 4 | low);
  }
  return mac;
}

// ---------------------------------------------------------------------------
// Codec.

namespace netlink {

Request::Request(std::uint16_t type, std::uint16_t flags) : buffer_(NLMSG_HDRLEN) {
  nlmsghdr header{};
  header.nlmsg_type = type;
  header.nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | flags);
  std::memcpy(buffer_.data(), &header, sizeof(header));
  set_length();
}

void Request::put_bytes(const void* data, std::size_t length) {
  const std::size_t at = buffer_.size();
  buffer_.resize(at + align4(length));
  if (length != 0) std::memcpy(buffer_.data() + at, data, length);
  set_length();
}

void Request::put_attr(std::uint16_t type, const void* data, std::size_t length) {
  nlattr attr{};
  attr.nla_type = type;
  attr.nla_len = static_cast<std::uint16_t>(NLA_HDRLEN + length);
  const std::size_t at = buffer_.size();
  buffer_.resize(at + NLA_HDRLEN + align4(length));
  std::memcpy(buffer_.data() + at, &attr, sizeof(attr));
  if (length != 0) std::memcpy(buffer_.data() + at + NLA_HDRLEN, data, length);
  set_length();
}

void Request::put_u8(std::uint16_t type, std::uint8_t value) { put_attr(type, &value, 1); }

void Request::put_u32(std::uint16_t type, std::uint32_t value) {
  put_attr(type, &value, sizeof(value));
}

void Request::put_string(std::uint16_t type, std::string_view value) {
  std::string terminated(value);
  put_attr(type, terminated.c_str(), terminated.size() + 1);
}

void Request::put_address(std::uint16_t type, const Address& address) {
  put_attr(type, address.words.data(), address_length(address));
}

std::size_t Request::begin_nested(std::uint16_t type) {
  const std::size_t at = buffer_.size();
  put_attr(type, nullptr, 0);
  return at;
}

void Request::end_nested(std::size_t offset) {
  nlattr attr = load<nlattr>(buffer_, offset);
  attr.nla_len = static_cast<std::uint16_t>(buffer_.size() - offset);
  std::memcpy(buffer_.data() + offset, &attr, sizeof(attr));
}

void Request::set_sequence(std::uint32_t sequence) {
  nlmsghdr header = load<nlmsghdr>(buffer_);
  header.nlmsg_seq = sequence;
  std::memcpy(buffer_.data(), &header, sizeof(header));
}

std::uint16_t Request::type() const { return load<nlmsghdr>(buffer_).nlmsg_type; }
std::uint16_t Request::flags() const { return load<nlmsghdr>(buffer_).nlmsg_flags; }

void Request::set_length() {
  nlmsghdr header = load<nlmsghdr>(buffer_);
  header.nlmsg_len = static_cast<std::uint32_t>(buffer_.size());
  std::memcpy(buffer_.data(), &header, sizeof(header));
}

std::expected<std::vector<Message>, std::error_code> split_messages(
    std::span<const std::byte> datagram) {
  std::vector<Message> messages;
  std::size_t at = 0;
  while (at < datagram.size()) {
    if (datagram.size() - at < sizeof(nlmsghdr)) return std::unexpected(errno_code(EBADMSG));
    const auto header = load<nlmsghdr>(datagram, at);
    if (header.nlmsg_len < sizeof(nlmsghdr) || header.nlmsg_len > datagram.size() - at) {
      return std::unexpected(errno_code(EBADMSG));
    }
    Message message;
    message.type = header.nlmsg_type;
    message.flags = header.nlmsg_flags;
    message.sequence = header.nlmsg_seq;
    message.port = header.nlmsg_pid;
    message.payload = datagram.subspan(at + NLMSG_HDRLEN, header.nlmsg_len - NLMSG_HDRLEN);
    messages.push_back(message);
    at += std::min<std::size_t>(align4(header.nlmsg_len), datagram.size() - at);
  }
  return messages;
}

std::expected<Attributes, std::error_code> Attributes::parse(std::span<const std::byte> area) {
  Attributes attributes;
  std::size_t at = 0;
  while (at < area.size()) {
    if (area.size() - at < sizeof(nlattr)) return std::unexpected(errno_code(EBADMSG));
    const auto attr = load<nlattr>(area, at);
    if (attr.nla_len < NLA_HDRLEN || attr.nla_len > area.size() - at) {
      return std::unexpected(errno_code(EBADMSG));
    }
    attributes.entries_.push_back({static_cast<std::uint16_t>(attr.nla_type & NLA_TYPE_MASK),
                                   area.subspan(at + NLA_HDRLEN, attr.nla_len - NLA_HDRLEN)});
    at += std::min<std::size_t>(align4(attr.nla_len), area.size() - at);
  }
  return attributes;
}

std::optional<std::span<const std::byte>> Attributes::get(std::uint16_t type) const {
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    if (it->type == type) return it->payload;
  }
  return std::nullopt;
}

std::optional<std::uint32_t> Attributes::u32(std::uint16_t type) const {
  const auto payload = get(type);
  if (!payload || payload->size() != sizeof(std::uint32_t)) return std::nullopt;
  return load<std::uint32_t>(*payload);
}

std::optional<std::string> Attributes::string(std::uint16_t type) const {
  const auto payload = get(type);
  if (!payload) return std::nullopt;
  std::string text(reinterpret_cast<const char*>(payload->data()), payload->size());
  if (const auto nul = text.find('\0'); nul != std::string::npos) text.resize(nul);
  return text;
}

std::expected<ErrorReply, std::error_code> decode_error(const Message& message) {
  if (message.type != NLMSG_ERROR || message.payload.size() < sizeof(nlmsgerr)) {
    return std::unexpected(errno_code(EBADMSG));
  }
  const auto error = load<nlmsgerr>(message.payload);
  ErrorReply reply;
  reply.error = -error.error;
  if (!(message.flags & NLM_F_ACK_TLVS)) return reply;
  // Without NLM_F_CAPPED the kernel echoes the whole request before the TLVs.
  std::size_t tlv_offset = sizeof(nlmsgerr);
  if (!(message.flags & NLM_F_CAPPED)) {
    if (error.msg.nlmsg_len < NLMSG_HDRLEN) return std::unexpected(errno_code(EBADMSG));
    tlv_offset += align4(error.msg.nlmsg_len - NLMSG_HDRLEN);
  }
  if (tlv_offset > message.payload.size()) return std::unexpected(errno_code(EBADMSG));
  auto tlvs = Attributes::parse(message.payload.subspan(tlv_offset));
  if (!tlvs) return std::unexpected(tlvs.error());
  reply.detail = tlvs->string(NLMSGERR_ATTR_MSG).value_or("");
  return reply;
}

namespace {

ifinfomsg link_header(int ifindex) {
  ifinfomsg header{};
  header.ifi_family = AF_UNSPEC;
  header.ifi_index = ifindex;
  return header;
}

}  // namespace

// A single-object get is answered without an ACK unless one is asked for;
// asking makes every request end the same way.
Request encode_get_link(std::string_view name) {
  Request request(RTM_GETLINK, NLM_F_ACK);
  request.put_header(link_header(0));
  request.put_string(IFLA_IFNAME, name);
  return request;
}

Request encode_get_link(int ifindex) {
  Request request(RTM_GETLINK, NLM_F_ACK);
  request.put_header(link_header(ifindex));
  return request;
}

Request encode_set_link_flags(int ifindex, std::uint32_t flags, std::uint32_t change) {
  Request request(RTM_NEWLINK, NLM_F_ACK);
  ifinfomsg header = link_header(ifindex);
  header.ifi_flags = flags;
  header.ifi_change = change;
  request.put_header(header);
  return request;
}

Request encode_new_veth(std::string_view name, std::string_view peer_name, int peer_netns_fd) {
  Request request(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
  request.put_header(link_header(0));
  request.put_string(IFLA_IFNAME, name);
  const std::size_t linkinfo = request.begin_nested(IFLA_LINKINFO);
  request.put_string(IFLA_INFO_KIND, "veth");
  const std::size_t data = request.begin_nested(IFLA_INFO_DATA);
  const std::size_t peer = request.begin_nested(VETH_INFO_PEER);
  request.put_header(link_header(0));
  request.put_string(IFLA_IFNAME, peer_name);
  if (peer_netns_fd >= 0)
    request.put_u32(IFLA_NET_NS_FD, static_cast<std::uint32_t>(peer_netns_fd));
  request.end_nested(peer);
  request.end_nested(data);
  request.end_nested(linkinfo);
  return request;
}

Request encode_del_link(int ifindex) {
  Request request(RTM_DELLINK, NLM_F_ACK);
  request.put_header(link_header(ifindex));
  return request;
}

Request encode_dump_addresses(int family) {
  Request request(RTM_GETADDR, NLM_F_DUMP);
  ifaddrmsg header{};
  header.ifa_family = static_cast<std::uint8_t>(family);
  request.put_header(header);
  return request;
}

Request encode_address(std::uint16_t type, int ifindex, const Address& address, int prefix_len) {
  const std::uint16_t flags =
      type == RTM_NEWADDR ? NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL : NLM_F_ACK;
  Request request(type, flags);
  ifaddrmsg header{};
  header.ifa_family = static_cast<std::uint8_t>(address.family);
  header.ifa_prefixlen = static_cast<std::uint8_t>(prefix_len);
  // A VIP is a host address: no duplicate address detection delaying it.
  header.ifa_flags = address.is_v6() ? IFA_F_NODAD : 0;
  header.ifa_scope = RT_SCOPE_UNIVERSE;
  header.ifa_index = static_cast<std::uint32_t>(ifindex);
  request.put_header(header);
  request.put_address(IFA_LOCAL, address);
  request.put_address(IFA_ADDRESS, address);
  return request;
}

Request encode_neighbour(std::uint16_t type, std::uint16_t nlm_flags, int ifindex,
                         const Address& address, std::uint16_t state, std::uint8_t flags,
                         std::uint32_t ext_flags) {
  const bool dump = (nlm_flags & NLM_F_DUMP) == NLM_F_DUMP;
  Request request(type, static_cast<std::uint16_t>(nlm_flags | (dump ? 0 : NLM_F_ACK)));
  ndmsg header{};
  header.ndm_family = static_cast<std::uint8_t>(address.family);
  header.ndm_ifindex = ifindex;
  header.ndm_state = state;
  header.ndm_flags = flags;
  request.put_header(header);
  request.put_address(NDA_DST, address);
  if (ext_flags != 0) request.put_u32(NDA_FLAGS_EXT, ext_flags);
  return request;
}

}  // namespace netlink

// ---------------------------------------------------------------------------
// Neighbour helpers.

// The kernel's NUD_VALID, which is not part of the UAPI headers: the states
// in which an entry has a link-layer address to use.
constexpr std::uint16_t kNudValid =
    NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE | NUD_PROBE | NUD_STALE | NUD_DELAY;

bool Neighbour::resolved() const { return (state & kNudValid) != 0 && mac.has_value(); }
bool Neighbour::managed() const { return (ext_flags & NTF_EXT_MANAGED) != 0; }
std::string Neighbour::state_name() const { return neighbour_state_name(state); }

std::string neighbour_state_name(std::uint16_t nud_state) {
  static constexpr std::pair<std::uint16_t, const char*> kNames[] = {
      {NUD_INCOMPLETE, "incomplete"}, {NUD_REACHABLE, "reachable"}, {NUD_STALE, "stale"},
      {NUD_DELAY, "delay"},           {NUD_PROBE, "probe"},         {NUD_FAILED, "failed"},
      {NUD_NOARP, "noarp"},           {NUD_PERMANENT, "permanent"},
  };
  std::string name;
  for (const auto& [bit, text] : kNames) {
    if (!(nud_state & bit)) continue;
    if (!name.empty()) name.push_back('+');
    name += text;
  }
  return name.empty() ? "none" : name;
}

// ---------------------------------------------------------------------------
// The socket.

std::expected<RtNetlink, std::error_code> RtNetlink::open(std::chrono::milliseconds timeout) {
  const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return std::unexpected(last_errno());
  RtNetlink nl(fd);  // owns fd from here on

  // The request is not echoed back in errors (CAP_ACK), and the kernel's
  // error text comes along (EXT_ACK). Kernels without them still work.
  const int one = 1;
  ::setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  ::setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));

  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(micros / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(micros % 1000000);
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
    return std::unexpected(last_errno());
  }

  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;  // nl_pid 0: the kernel picks our port id
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof(local)) < 0) {
    return std::unexpected(last_errno());
  }
  return nl;
}

RtNetlink::RtNetlink(int fd) : fd_(fd), receive_buffer_(64 * 1024) {}

RtNetlink::RtNetlink(RtNetlink&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      sequence_(other.sequence_),
      detail_(std::move(other.detail_)),
      receive_buffer_(std::move(other.receive_buffer_)) {}

RtNetlink& RtNetlink::operator=(RtNetlink&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    sequence_ = other.sequence_;
    detail_ = std::move(other.detail_);
    receive_buffer_ = std::move(other.receive_buffer_);
  }
  return *this;
}

RtNetlink::~RtNetlink() {
  if (fd_ >= 0) ::close(fd_);
}

std::error_code RtNetlink::transact(netlink::Request& request, const Visitor& visit) {
  detail_.clear();
  if (fd_ < 0) return errno_code(EBADF);
  const std::uint32_t sequence = ++sequence_;
  request.set_sequence(sequence);

  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  const auto bytes = request.bytes();
  for (;;) {
    const ssize_t sent = ::sendto(fd_, bytes.data(), bytes.size(), 0,
                                  reinterpret_cast<const sockaddr*>(&kernel), sizeof(kernel));
    if (sent >= 0) break;
    if (errno != EINTR) return last_errno();
  }

  std::error_code visit_error;
  for (;;) {
    const ssize_t received = ::recv(fd_, receive_buffer_.data(), receive_buffer_.size(), MSG_TRUNC);
    if (received < 0) {
      if (errno == EINTR) continue;
      // SO_RCVTIMEO expired: the kernel never answered.
      if (errno == EAGAIN || errno == EWOULDBLOCK) return errno_code(ETIMEDOUT);
      return last_errno();
    }
    if (static_cast<std::size_t>(received) > receive_buffer_.size()) return errno_code(EMSGSIZE);

    auto messages = netlink::split_messages(
        std::span<const std::byte>(receive_buffer_.data(), static_cast<std::size_t>(received)));
    if (!messages) return messages.error();
    for (const auto& message : *messages) {
      // A reply to an earlier request that timed out: not ours any more.
      if (message.sequence != sequence) continue;
      if (message.type == NLMSG_ERROR) {
        auto error = netlink::decode_error(message);
        if (!error) return error.error();
        if (error->error != 0) {
          detail_ = std::move(error->detail);
          return errno_code(error->error);
        }
        return visit_error;  // the ACK ends a request
      }
      if (message.type == NLMSG_DONE) {
        // A dump's end; it carries the dump's error, if any.
        if (message.payload.size() >= sizeof(int)) {
          const int error = load<int>(message.payload);
          if (error < 0) return errno_code(-error);
        }
        return visit_error;
      }
      if (message.type == NLMSG_NOOP) continue;
      if (message.type == NLMSG_OVERRUN) return errno_code(EOVERFLOW);
      if (visit && !visit_error) visit_error = visit(message);
    }
  }
}

std::expected<int, std::error_code> RtNetlink::link_index(std::string_view name) {
  if (name.empty() || name.size() >= IFNAMSIZ || name.find('\0') != std::string_view::npos) {
    return std::unexpected(errno_code(EINVAL));
  }
  auto request = netlink::encode_get_link(name);
  int index = 0;
  const auto ec = transact(request, [&](const netlink::Message& message) -> std::error_code {
    if (message.type != RTM_NEWLINK || message.payload.size() < sizeof(ifinfomsg)) {
      return errno_code(EBADMSG);
    }
    index = load<ifinfomsg>(message.payload).ifi_index;
    return {};
  });
  if (ec) return std::unexpected(ec);
  if (index <= 0) return std::unexpected(errno_code(EBADMSG));
  return index;
}

std::expected<MacAddress, std::error_code> RtNetlink::link_mac(int ifindex) {
  auto request = netlink::encode_get_link(ifindex);
  std::optional<MacAddress> mac;
  const auto ec = transact(request, [&](const netlink::Message& message) -> std::error_code {
    if (message.type != RTM_NEWLINK || message.payload.size() < sizeof(ifinfomsg)) {
      return errno_code(EBADMSG);
    }
    auto attributes =
        netlink::Attributes::parse(message.payload.subspan(NLMSG_ALIGN(sizeof(ifinfomsg))));
    if (!attributes) return attributes.error();
    const auto address = attributes->get(IFLA_ADDRESS);
    if (address && address->size() == 6) {
      mac.emplace();
      std::memcpy(mac->data(), address->data(), 6);
    }
    return {};
  });
  if (ec) return std::unexpected(ec);
  if (!mac) return std::unexpected(errno_code(ENODATA));
  return *mac;
}

std::error_code RtNetlink::set_link_up(int ifindex, bool up) {
  auto request = netlink::encode_set_link_flags(ifindex, up ? IFF_UP : 0, IFF_UP);
  return transact(request);
}

std::error_code RtNetlink::create_veth(std::string_view name, std::string_view peer_name,
                                       int peer_netns_fd) {
  for (const auto n : {name, peer_name}) {
    if (n.empty() || n.size() >= IFNAMSIZ) return errno_code(EINVAL);
  }
  auto request = netlink::encode_new_veth(name, peer_name, peer_netns_fd);
  return transact(request);
}

std::error_code RtNetlink::delete_link(int ifindex) {
  auto request = netlink::encode_del_link(ifindex);
  return transact(request);
}

std::expected<std::vector<InterfaceAddress>, std::error_code> RtNetlink::ipv4_addresses(
    int ifindex) {
  auto request = netlink::encode_dump_addresses(AF_INET);
  std::vector<InterfaceAddress> addresses;
  const auto ec = transact(request, [&](const netlink::Message& message) -> std::error_code {
    if (message.type != RTM_NEWADDR || message.payload.size() < sizeof(ifaddrmsg)) {
      return errno_code(EBADMSG);
    }
    const auto header = load<ifaddrmsg>(message.payload);
    if (header.ifa_family != AF_INET || static_cast<int>(header.ifa_index) != ifindex) return {};
    auto attributes =
        netlink::Attributes::parse(message.payload.subspan(NLMSG_ALIGN(sizeof(ifaddrmsg))));
    if (!attributes) return attributes.error();
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS differs from it
    // only on point-to-point links, where it is the peer's.
    auto bytes = attributes->get(IFA_LOCAL);
    if (!bytes) bytes = attributes->get(IFA_ADDRESS);
    if (!bytes) return {};
    const auto address = address_from(AF_INET, *bytes);
    if (!address) return errno_code(EBADMSG);
    std::uint32_t flags = header.ifa_flags;
    if (const auto extended = attributes->u32(IFA_FLAGS)) flags = *extended;
    addresses.push_back({*address, header.ifa_prefixlen, (flags & IFA_F_SECONDARY) != 0});
    return {};
  });
  if (ec) return std::unexpected(ec);
  return addresses;
}

std::expected<AddressChange, std::error_code> RtNetlink::add_address(int ifindex,
                                                                     const Address& address,
                                                                     int prefix_len) {
  const int max_prefix = address.is_v4() ? 32 : 128;
  if ((!address.is_v4() && !address.is_v6()) || prefix_len < 0 || prefix_len > max_prefix) {
    return std::unexpected(errno_code(EINVAL));
  }
  auto request = netlink::encode_address(RTM_NEWADDR, ifindex, address, prefix_len);
  const auto ec = transact(request);
  if (ec == std::errc::file_exists) return AddressChange::kAlreadyPresent;
  if (ec) return std::unexpected(ec);
  return AddressChange::kAdded;
}

std::error_code RtNetlink::delete_address(int ifindex, const Address& address, int prefix_len) {
  if (!address.is_v4() && !address.is_v6()) return errno_code(EINVAL);
  auto request = netlink::encode_address(RTM_DELADDR, ifindex, address, prefix_len);
  return transact(request);
}

std::error_code RtNetlink::send_neighbour(std::uint16_t nlm_flags, int ifindex, const Address& peer,
                                          std::uint8_t flags, std::uint32_t ext_flags) {
  auto request =
      netlink::encode_neighbour(RTM_NEWNEIGH, nlm_flags, ifindex, peer, NUD_NONE, flags, ext_flags);
  return transact(request);
}

std::expected<NeighbourSetup, std::error_code> RtNetlink::add_managed_neighbour(
    int ifindex, const Address& peer) {
  if (!peer.is_v4() && !peer.is_v6()) return std::unexpected(errno_code(EINVAL));

  // The kernel says whether the flag took: pre-5.16 kernels drop the unknown
  // NDA_FLAGS_EXT silently, so the entry is read back instead of trusted.
  auto confirm = [&](bool created) -> std::expected<NeighbourSetup, std::error_code> {
    auto entry = get_neighbour(ifindex, peer);
    if (!entry) return std::unexpected(entry.error());
    if (entry->managed()) return NeighbourSetup{true, created};
    if (const auto ec = kick_neighbour(ifindex, peer)) return std::unexpected(ec);
    return NeighbourSetup{false, created};
  };

  auto ec = send_neighbour(NLM_F_CREATE | NLM_F_EXCL, ifindex, peer, 0, NTF_EXT_MANAGED);
  if (!ec) return confirm(true);

  if (ec == std::errc::file_exists) {
    auto existing = get_neighbour(ifindex, peer);
    if (!existing) return std::unexpected(existing.error());
    // The operator's static entry stays as it is: NTF_EXT_MANAGED on an
    // existing entry would clear NUD_PERMANENT.
    if (existing->state & (NUD_PERMANENT | NUD_NOARP)) return NeighbourSetup{false, false};
    if (existing->managed()) return NeighbourSetup{true, false};
    // A dynamic cache entry: take it over.
    ec = send_neighbour(NLM_F_CREATE | NLM_F_REPLACE, ifindex, peer, 0, NTF_EXT_MANAGED);
    if (!ec) return confirm(true);
  }

  // A kernel that knows NDA_FLAGS_EXT but rejects the flag: kick instead.
  if (ec == std::errc::invalid_argument || ec == std::errc::operation_not_supported) {
    const std::string refused = detail_;
    if (const auto kick = kick_neighbour(ifindex, peer)) return std::unexpected(kick);
    detail_ = refused;
    return NeighbourSetup{false, true};
  }
  return std::unexpected(ec);
}

std::error_code RtNetlink::kick_neighbour(int ifindex, const Address& peer) {
  if (!peer.is_v4() && !peer.is_v6()) return errno_code(EINVAL);
  return send_neighbour(NLM_F_CREATE, ifindex, peer, NTF_USE, 0);
}

std::error_code RtNetlink::delete_neighbour(int ifindex, const Address& peer) {
  if (!peer.is_v4() && !peer.is_v6()) return errno_code(EINVAL);
  auto request = netlink::encode_neighbour(RTM_DELNEIGH, 0, ifindex, peer, 0, 0, 0);
  return transact(request);
}

std::expected<Neighbour, std::error_code> RtNetlink::get_neighbour(int ifindex,
                                                                   const Address& peer) {
  if (!peer.is_v4() && !peer.is_v6()) return std::unexpected(errno_code(EINVAL));
  auto request = netlink::encode_neighbour(RTM_GETNEIGH, 0, ifindex, peer, 0, 0, 0);
  std::optional<Neighbour> found;
  const auto ec = transact(request, [&](const netlink::Message& message) -> std::error_code {
    if (message.type != RTM_NEWNEIGH || message.payload.size() < sizeof(ndmsg)) {
      return errno_code(EBADMSG);
    }
    const auto header = load<ndmsg>(message.payload);
    auto attributes =
        netlink::Attributes::parse(message.payload.subspan(NLMSG_ALIGN(sizeof(ndmsg))));
    if (!attributes) return attributes.error();
    Neighbour entry;
    entry.ifindex = header.ndm_ifindex;
    entry.state = header.ndm_state;
    entry.flags = header.ndm_flags;
    entry.ext_flags = attributes->u32(NDA_FLAGS_EXT).value_or(0);
    if (const auto dst = attributes->get(NDA_DST)) {
      if (auto address = address_from(header.ndm_family, *dst)) entry.address = *address;
    }
    if (const auto lladdr = attributes->get(NDA_LLADDR); lladdr && lladdr->size() == 6) {
      entry.mac.emplace();
      std::memcpy(entry.mac->data(), lladdr->data(), 6);
    }
    found = entry;
    return {};
  });
  if (ec) return std::unexpected(ec);
  if (!found) return std::unexpected(errno_code(ENOENT));
  return *found;
}

}  // namespace mixlb
