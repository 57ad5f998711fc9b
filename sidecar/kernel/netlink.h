#pragma once
// A small rtnetlink client: one NETLINK_ROUTE socket owned by RtNetlink, one
// request at a time, blocking with a receive timeout. It covers what the
// sidecar needs from the routing layer and nothing more: link index and MAC,
// the node's IPv4 addresses, VIPs as host addresses on `lo`, managed
// neighbour entries for peers (so bpf_fib_lookup finds their MACs), and veth
// pairs for tests that build their own network namespaces.
//
// It is split in two layers. The codec (namespace `netlink`) builds request
// bytes and splits replies into messages and attributes without touching a
// socket, so the encoding is unit-tested without privilege. RtNetlink sends
// those requests and turns every kernel answer into std::error_code: an
// NLMSGERR becomes the errno it carries, and the kernel's extended-ack text,
// when it sends one, is kept in last_error_detail() for log messages.
//
// A socket talks to the network namespace it was opened in; open one per
// namespace.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "kernel/address.h"

namespace mixlb {

using MacAddress = std::array<std::uint8_t, 6>;

// "02:00:00:00:00:11"; parse accepts the same form (either case).
std::string format_mac(const MacAddress& mac);
std::optional<MacAddress> parse_mac(std::string_view text);

namespace netlink {

// One request being built: nlmsghdr, the family header, then attributes, each
// padded to 4 bytes the way the kernel's nla_* helpers expect. Nested
// attributes are opened and closed explicitly so their lengths are patched in.
class Request {
 public:
  Request(std::uint16_t type, std::uint16_t flags);

  // Appends raw bytes padded to 4 (the family header, or a struct that
  // starts a nested attribute such as VETH_INFO_PEER's ifinfomsg).
  void put_bytes(const void* data, std::size_t length);
  template <typename Header>
  void put_header(const Header& header) {
    put_bytes(&header, sizeof(header));
  }

  void put_attr(std::uint16_t type, const void* data, std::size_t length);
  void put_u8(std::uint16_t type, std::uint8_t value);
  void put_u32(std::uint16_t type, std::uint32_t value);
  void put_string(std::uint16_t type, std::string_view value);   // NUL-terminated
  void put_address(std::uint16_t type, const Address& address);  // 4 or 16 bytes

  // Returns the offset of the nest header; pass it to end_nested.
  std::size_t begin_nested(std::uint16_t type);
  void end_nested(std::size_t offset);

  void set_sequence(std::uint32_t sequence);
  std::uint16_t type() const;
  std::uint16_t flags() const;
  std::span<const std::byte> bytes() const { return buffer_; }

 private:
  void set_length();
  std::vector<std::byte> buffer_;
};

// One message of a reply datagram. `payload` points into the datagram.
struct Message {
  std::uint16_t type = 0;
  std::uint16_t flags = 0;
  std::uint32_t sequence = 0;
  std::uint32_t port = 0;
  std::span<const std::byte> payload;
};

// Splits a datagram into messages; EBADMSG if a length field lies.
std::expected<std::vector<Message>, std::error_code> split_messages(
    std::span<const std::byte> datagram);

// An attribute area split by type (the NLA_F_* bits masked off). The last
// occurrence of a type wins, as in the kernel's nla_parse.
class Attributes {
 public:
  static std::expected<Attributes, std::error_code> parse(std::span<const std::byte> area);

  std::optional<std::span<const std::byte>> get(std::uint16_t type) const;
  std::optional<std::uint32_t> u32(std::uint16_t type) const;
  std::optional<std::string> string(std::uint16_t type) const;  // up to the first NUL
  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::uint16_t type;
    std::span<const std::byte> payload;
  };
  std::vector<Entry> entries_;
};

// An NLMSG_ERROR payload: the positive errno (0 for an ACK) and the
// extended-ack message, if the kernel attached one.
struct ErrorReply {
  int error = 0;
  std::string detail;
};
std::expected<ErrorReply, std::error_code> decode_error(const Message& message);

// The requests RtNetlink sends, built without I/O so tests can check the bytes.
// Every request but a dump carries NLM_F_ACK, single-object gets included, so
// each ends with an ACK or an error; a dump ends with NLMSG_DONE instead.
Request encode_get_link(std::string_view name);
Request encode_get_link(int ifindex);
Request encode_set_link_flags(int ifindex, std::uint32_t flags, std::uint32_t change);
Request encode_new_veth(std::string_view name, std::string_view peer_name, int peer_netns_fd);
Request encode_del_link(int ifindex);
Request encode_dump_addresses(int family);
// RTM_NEWADDR (create, fail if present) or RTM_DELADDR.
Request encode_address(std::uint16_t type, int ifindex, const Address& address, int prefix_len);
// RTM_NEWNEIGH/RTM_DELNEIGH/RTM_GETNEIGH for `address` on `ifindex`.
// `nlm_flags` are added to NLM_F_REQUEST (and NLM_F_ACK);
// `ext_flags` goes into NDA_FLAGS_EXT when non-zero.
Request encode_neighbour(std::uint16_t type, std::uint16_t nlm_flags, int ifindex,
                         const Address& address, std::uint16_t state, std::uint8_t flags,
                         std::uint32_t ext_flags);

}  // namespace netlink

struct InterfaceAddress {
  Address address;
  int prefix_len = 0;
  bool secondary = false;  // IFA_F_SECONDARY: not the subnet's primary address
  friend bool operator==(const InterfaceAddress&, const InterfaceAddress&) = default;
};

// What add_address did: the daemon removes only addresses it added.
enum class AddressChange { kAdded, kAlreadyPresent };

struct Neighbour {
  Address address;
  int ifindex = 0;
  std::uint16_t state = 0;      // NUD_* bits
  std::uint8_t flags = 0;       // NTF_* bits
  std::uint32_t ext_flags = 0;  // NTF_EXT_* bits from NDA_FLAGS_EXT
  std::optional<MacAddress> mac;

  // The entry holds a usable link-layer address (NUD_VALID).
  bool resolved() const;
  bool managed() const;
  std::string state_name() const;
};

// "reachable", "stale", "incomplete", "failed", "permanent", "noarp",
// "delay", "probe", "none"; several bits are joined with '+'.
std::string neighbour_state_name(std::uint16_t nud_state);

// What add_managed_neighbour did.
struct NeighbourSetup {
  // The kernel keeps the entry resolved by itself (NTF_EXT_MANAGED, kernel
  // 5.16+). When false the caller must call kick_neighbour while the entry
  // is unresolved.
  bool managed = false;
  // This call created the entry or took over a dynamic one, so the caller
  // deletes it on shutdown. False for an entry that was already managed or
  // that the operator made static (permanent/noarp), which is left untouched.
  bool created = false;
};

// What the daemon asks of the routing layer, as an interface: the daemon's
// parts (host setup, the neighbour keeper, the uplink watch) take an Rtnl&,
// so their start, stop and failure paths are unit-tested with a fake that
// needs no privilege. RtNetlink is the real one; every method is described
// there.
class Rtnl {
 public:
  virtual ~Rtnl() = default;
  virtual std::expected<int, std::error_code> link_index(std::string_view name) = 0;
  virtual std::expected<MacAddress, std::error_code> link_mac(int ifindex) = 0;
  virtual std::expected<std::vector<InterfaceAddress>, std::error_code> ipv4_addresses(
      int ifindex) = 0;
  virtual std::expected<AddressChange, std::error_code> add_address(int ifindex,
                                                                    const Address& address,
                                                                    int prefix_len) = 0;
  virtual std::error_code delete_address(int ifindex, const Address& address, int prefix_len) = 0;
  virtual std::expected<NeighbourSetup, std::error_code> add_managed_neighbour(
      int ifindex, const Address& peer) = 0;
  virtual std::error_code kick_neighbour(int ifindex, const Address& peer) = 0;
  virtual std::error_code delete_neighbour(int ifindex, const Address& peer) = 0;
  virtual std::expected<Neighbour, std::error_code> get_neighbour(int ifindex,
                                                                  const Address& peer) = 0;
};

class RtNetlink final : public Rtnl {
 public:
  static constexpr std::chrono::milliseconds kDefaultTimeout{5000};

  // Opens a NETLINK_ROUTE socket in the calling thread's network namespace.
  // A request whose answer takes longer than `timeout` fails with ETIMEDOUT
  // (a late answer is recognised by its sequence number and dropped).
  static std::expected<RtNetlink, std::error_code> open(
      std::chrono::milliseconds timeout = kDefaultTimeout);

  RtNetlink(RtNetlink&& other) noexcept;
  RtNetlink& operator=(RtNetlink&& other) noexcept;
  RtNetlink(const RtNetlink&) = delete;
  RtNetlink& operator=(const RtNetlink&) = delete;
  ~RtNetlink();

  // Links. A missing link is ENODEV.
  std::expected<int, std::error_code> link_index(std::string_view name) override;
  // ENODATA if the link has no 6-byte hardware address.
  std::expected<MacAddress, std::error_code> link_mac(int ifindex) override;
  std::error_code set_link_up(int ifindex, bool up = true);
  // Creates a veth pair; with peer_netns_fd >= 0 the peer is created in that
  // namespace (an fd of /proc/<tid>/ns/net).
  std::error_code create_veth(std::string_view name, std::string_view peer_name,
                              int peer_netns_fd = -1);
  std::error_code delete_link(int ifindex);

  // Addresses. ipv4_addresses lists the link's addresses, primaries first as
  // the kernel keeps them (empty for an unknown ifindex).
  std::expected<std::vector<InterfaceAddress>, std::error_code> ipv4_addresses(int ifindex) override;
  std::expected<AddressChange, std::error_code> add_address(int ifindex, const Address& address,
                                                            int prefix_len) override;
  // EADDRNOTAVAIL when the address is not there.
  std::error_code delete_address(int ifindex, const Address& address, int prefix_len) override;

  // Neighbours. Creates a managed entry for `peer` (what
  // `ip neigh add PEER dev DEV managed` does): state NUD_NONE plus
  // NTF_EXT_MANAGED, and the kernel starts resolving it at once. Where the
  // kernel refuses or ignores the flag it falls back to one NTF_USE kick and
  // reports managed = false.
  std::expected<NeighbourSetup, std::error_code> add_managed_neighbour(
      int ifindex, const Address& peer) override;
  // Asks the kernel to resolve `peer` now (NTF_USE), creating the entry if
  // needed. Meant for unresolved entries: on an existing entry NTF_USE also
  // clears NUD_PERMANENT, so never kick a static entry.
  std::error_code kick_neighbour(int ifindex, const Address& peer) override;
  // ENOENT when there is no entry.
  std::error_code delete_neighbour(int ifindex, const Address& peer) override;
  std::expected<Neighbour, std::error_code> get_neighbour(int ifindex,
                                                          const Address& peer) override;

  // The kernel's extended-ack text for the last failed request ("" if none).
  const std::string& last_error_detail() const { return detail_; }

 private:
  explicit RtNetlink(int fd);
  using Visitor = std::function<std::error_code(const netlink::Message&)>;
  // Sends `request` and reads until its ACK, error or NLMSG_DONE, handing
  // every other message with the request's sequence number to `visit`.
  std::error_code transact(netlink::Request& request, const Visitor& visit = {});
  std::error_code send_neighbour(std::uint16_t nlm_flags, int ifindex, const Address& peer,
                                 std::uint8_t flags, std::uint32_t ext_flags);

  int fd_ = -1;
  std::uint32_t sequence_ = 0;
  std::string detail_;
  std::vector<std::byte> receive_buffer_;
};

}  // namespace mixlb
