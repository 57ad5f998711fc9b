// The libuv transport on loopback, several instances in this one process:
// joining, metadata and user events, graceful leave, the stream bounds,
// datagrams that must be dropped, and the thread-safe API's answers before
// start and after stop. Every transport is stopped at the end and its stop()
// must report a clean loop close (uv_loop_close() == 0 on its thread).
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <ostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "error.h"
#include "sockaddr.h"
#include "transport.h"

namespace mixlb::gossip {
namespace {

using namespace std::chrono_literals;

Bytes bytes_of(std::string_view text) { return Bytes(text.begin(), text.end()); }

const Key kKey = [] {
  Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i + 1);
  return key;
}();
const Key kOtherKey = [] {
  Key key{};
  key.fill(0x5a);
  return key;
}();
constexpr const char* kCluster = "transport-test";

// Protocol timing ten times faster than the defaults, for loopback.
TransportOptions fast_options(const std::string& name, std::optional<Key> key = kKey,
                              Address at = Address::v4(127, 0, 0, 1, 0)) {
  TransportOptions o;
  o.config.name = name;
  o.config.address = at;
  o.config.probe_interval = 100ms;
  o.config.probe_timeout = 50ms;
  o.config.gossip_interval = 50ms;
  o.config.push_pull_interval = 2s;
  o.config.rejoin_interval = 1s;
  o.config.stream_timeout = 2s;
  if (key) o.keyring.emplace(kCluster, *key);
  o.leave_linger = 200ms;
  return o;
}

// Collects what a transport's handler delivers, from the transport thread.
class EventLog {
 public:
  Transport::EventHandler handler() {
    return [this](Event event) {
      std::lock_guard lock(mutex_);
      threads_.push_back(std::this_thread::get_id());
      events_.push_back(std::move(event));
      changed_.notify_all();
    };
  }

  // Waits until `pred(events)` holds; false on timeout.
  bool wait(const std::function<bool(const std::vector<Event>&)>& pred,
            std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return pred(events_); });
  }

  bool saw_member(MemberEventKind kind, const std::string& name,
                  std::chrono::milliseconds timeout = 10s) {
    return wait(
        [&](const std::vector<Event>& events) {
          for (const auto& e : events) {
            const auto* m = std::get_if<MemberEvent>(&e);
            if (m && m->kind == kind && m->member.name == name) return true;
          }
          return false;
        },
        timeout);
  }

  std::vector<Event> events() {
    std::lock_guard lock(mutex_);
    return events_;
  }
  std::vector<std::thread::id> threads() {
    std::lock_guard lock(mutex_);
    return threads_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Event> events_;
  std::vector<std::thread::id> threads_;
};

struct Node {
  EventLog log;
  std::unique_ptr<Transport> transport;

  explicit Node(TransportOptions options) {
    transport = std::make_unique<Transport>(std::move(options), log.handler());
  }
  Address start(std::vector<Address> seeds = {}) {
    REQUIRE_FALSE(transport->start(seeds));
    return transport->address();
  }
  std::size_t alive_members() {
    auto s = transport->snapshot();
    REQUIRE(s.has_value());
    std::size_t n = 0;
    for (const auto& m : s->members) n += m.state == MemberState::kAlive;
    return n;
  }
};

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

// A plain socket, for sending what no transport would.
class RawSocket {
 public:
  explicit RawSocket(int type) : fd_(::socket(AF_INET, type, 0)) { REQUIRE(fd_ >= 0); }
  ~RawSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }
  void forget() { fd_ = -1; }
  void send_to(const Address& to, const Bytes& bytes) {
    const auto at = to_sockaddr(to);
    REQUIRE(::sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&at),
                     sizeof(sockaddr_in)) == static_cast<ssize_t>(bytes.size()));
  }
  bool connect_to(const Address& to) {
    const auto at = to_sockaddr(to);
    return ::connect(fd_, reinterpret_cast<const sockaddr*>(&at), sizeof(sockaddr_in)) == 0;
  }
  // Waits for the peer to close: true when recv sees the end of the stream
  // (or a reset) within the timeout.
  bool closed_by_peer(std::chrono::milliseconds timeout) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buffer[256];
    for (;;) {
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }

 private:
  int fd_;
};

std::uint64_t drops(const TransportSnapshot& s, DropReason reason) {
  return s.core.drops[static_cast<std::size_t>(reason)];
}

TEST_CASE(
    "three transports join on loopback, events arrive on the transport thread, and each "
    "stops with every handle released") {
  Node a(fast_options("a")), b(fast_options("b")), c(fast_options("c"));
  const Address seed = a.start();
  CHECK(seed.port != 0);
  b.start({seed});
  c.start({seed});
  for (Node* n : {&a, &b, &c}) {
    CHECK(eventually([&] { return n->alive_members() == 3; }));
  }
  CHECK(a.log.saw_member(MemberEventKind::kJoined, "b"));
  CHECK(a.log.saw_member(MemberEventKind::kJoined, "c"));
  // The join's own push-pull reports success.
  CHECK(b.log.wait([](const std::vector<Event>& events) {
    for (const auto& e : events) {
      const auto* r = std::get_if<SyncResult>(&e);
      if (r && r->purpose == SyncPurpose::kJoin && !r->error) return true;
    }
    return false;
  }));
  for (auto id : a.log.threads()) CHECK(id != std::this_thread::get_id());

  // Probing and gossip run over UDP (within a few probe intervals).
  CHECK(eventually([&] {
    auto s = a.transport->snapshot();
    return s && s->core.probes >= 3 && s->transport.udp_sent > 0 && s->transport.udp_received > 0;
  }));
  auto snap = a.transport->snapshot();
  REQUIRE(snap.has_value());
  CHECK(snap->address == seed);
  CHECK(snap->self.name == "a");
  CHECK(snap->transport.streams_served >= 2);  // b's and c's joins
  CHECK(snap->transport.udp_send_errors == 0);
  CHECK(snap->core.probes_failed == 0);

  for (Node* n : {&c, &b, &a}) {
    CHECK_FALSE(n->transport->stop());  // uv_loop_close() == 0 on the transport thread
    CHECK_FALSE(n->transport->running());
    CHECK_FALSE(n->transport->stop());  // idempotent
  }
}

TEST_CASE("metadata and user events cross from one transport to the other") {
  Node a(fast_options("a")), b(fast_options("b"));
  const Address seed = a.start();
  b.start({seed});
  REQUIRE(eventually([&] { return a.alive_members() == 2 && b.alive_members() == 2; }));

  CHECK_FALSE(b.transport->set_metadata(bytes_of("vip=10.0.0.1 weight=100")));
  CHECK(a.log.wait([](const std::vector<Event>& events) {
    for (const auto& e : events) {
      const auto* m = std::get_if<MemberEvent>(&e);
      if (m && m->kind == MemberEventKind::kUpdated && m->member.name == "b" &&
          m->member.metadata == bytes_of("vip=10.0.0.1 weight=100")) {
        return true;
      }
    }
    return false;
  }));

  CHECK_FALSE(a.transport->send_user_event(bytes_of("invalidate flow 42")));
  CHECK(b.log.wait([](const std::vector<Event>& events) {
    for (const auto& e : events) {
      const auto* u = std::get_if<UserEventDelivery>(&e);
      if (u && u->origin == "a" && u->payload == bytes_of("invalidate flow 42")) return true;
    }
    return false;
  }));

  // The bounds are checked on the caller's side.
  CHECK(b.transport->set_metadata(Bytes(513, 'x')) == Errc::kTooLarge);
  CHECK(a.transport->send_user_event(Bytes(257, 'x')) == Errc::kTooLarge);

  CHECK_FALSE(b.transport->stop());
  CHECK_FALSE(a.transport->stop());
}

TEST_CASE("a transport that stops leaves: the others see it left, not dead") {
  Node a(fast_options("a")), b(fast_options("b"));
  const Address seed = a.start();
  b.start({seed});
  REQUIRE(eventually([&] { return a.alive_members() == 2; }));
  CHECK_FALSE(b.transport->stop());
  CHECK(a.log.saw_member(MemberEventKind::kLeft, "b", 5s));
  // Give a dead verdict the time it would need; none may come.
  std::this_thread::sleep_for(1s);
  for (const auto& e : a.log.events()) {
    const auto* m = std::get_if<MemberEvent>(&e);
    if (m && m->member.name == "b") CHECK(m->kind != MemberEventKind::kDead);
  }
  CHECK_FALSE(a.transport->stop());
}

TEST_CASE("the API before start and after stop, and stop from the event handler") {
  Node a(fast_options("a"));
  CHECK(a.transport->set_metadata(bytes_of("x")) == std::errc::not_connected);
  CHECK(a.transport->snapshot().error() == std::errc::not_connected);

  // stop() from the transport thread would join itself: it refuses.
  std::error_code from_handler;
  std::mutex mutex;
  bool called = false;
  auto options = fast_options("b");
  Transport b(std::move(options), [&](Event) {
    std::lock_guard lock(mutex);
    if (!called) from_handler = b.stop();
    called = true;
  });
  const Address seed = a.start();
  REQUIRE_FALSE(b.start(std::vector<Address>{seed}));
  REQUIRE(eventually([&] {
    std::lock_guard lock(mutex);
    return called;
  }));
  {
    std::lock_guard lock(mutex);
    CHECK(from_handler == std::errc::resource_deadlock_would_occur);
  }
  CHECK(b.start(std::vector<Address>{}) == std::errc::already_connected);

  CHECK_FALSE(a.transport->stop());
  CHECK(a.transport->set_metadata(bytes_of("x")) == Errc::kLeft);
  CHECK(a.transport->send_user_event(bytes_of("x")) == Errc::kLeft);
  CHECK(a.transport->snapshot().error() == Errc::kLeft);
  CHECK(a.transport->start(std::vector<Address>{}) == Errc::kLeft);
  CHECK_FALSE(b.stop());
}

TEST_CASE("datagrams that do not open or decode are counted and dropped; the node carries on") {
  Node sealed(fast_options("sealed"));
  Node plain(fast_options("plain", std::nullopt));
  const Address sealed_at = sealed.start();
  const Address plain_at = plain.start();

  RawSocket raw(SOCK_DGRAM);
  // Plaintext at a node with a keyring.
  raw.send_to(sealed_at, Bytes{1, 3, 0, 4, 0, 0, 0, 1});
  // Sealed with a key the node does not have.
  Keyring intruder(kCluster, kOtherKey);
  raw.send_to(sealed_at, intruder.seal(Bytes{1, 3, 0, 4, 0, 0, 0, 1}));
  // Garbage at a plaintext node.
  raw.send_to(plain_at, Bytes{1, 77, 0, 0});
  raw.send_to(plain_at, Bytes{});

  CHECK(eventually([&] {
    auto s = sealed.transport->snapshot();
    return s && drops(*s, DropReason::kNotEncrypted) == 1 &&
           drops(*s, DropReason::kNoKeyAuthenticates) == 1;
  }));
  CHECK(eventually([&] {
    auto s = plain.transport->snapshot();
    return s && drops(*s, DropReason::kMalformed) == 2;
  }));
  auto s = plain.transport->snapshot();
  REQUIRE(s.has_value());
  CHECK(s->core.last_drop.find("127.0.0.1:") == 0);
  CHECK(s->transport.udp_received == 2);
  CHECK(s->members.size() == 1);  // nothing was added by the garbage

  CHECK_FALSE(sealed.transport->stop());
  CHECK_FALSE(plain.transport->stop());
}

TEST_CASE("push-pull streams are bounded: connections, message size, and time") {
  auto options = fast_options("a");
  options.max_inbound_streams = 2;
  options.max_stream_message = 1024;
  options.stream_timeout = 300ms;
  Node a(std::move(options));
  const Address at = a.start();

  RawSocket idle(SOCK_STREAM), big(SOCK_STREAM), extra(SOCK_STREAM);
  REQUIRE(idle.connect_to(at));
  REQUIRE(eventually([&] { return a.transport->snapshot()->transport.streams_accepted == 1; }));
  REQUIRE(big.connect_to(at));
  REQUIRE(eventually([&] { return a.transport->snapshot()->transport.streams_accepted == 2; }));
  // Over the bound: accepted by the kernel, closed by the transport at once.
  REQUIRE(extra.connect_to(at));
  CHECK(extra.closed_by_peer(2s));
  CHECK(a.transport->snapshot()->transport.streams_refused == 1);

  // A length over max_stream_message: closed without reading the body.
  const Bytes header = {0x00, 0x10, 0x00, 0x00};  // 1 MiB
  REQUIRE(::send(big.fd(), header.data(), header.size(), 0) == 4);
  CHECK(big.closed_by_peer(2s));

  // Silence: closed when stream_timeout has passed.
  const auto before = std::chrono::steady_clock::now();
  CHECK(idle.closed_by_peer(3s));
  CHECK(std::chrono::steady_clock::now() - before < 2s);

  auto s = a.transport->snapshot();
  REQUIRE(s.has_value());
  CHECK(s->transport.streams_in_failed == 2);
  CHECK(s->transport.streams_served == 0);
  CHECK_FALSE(a.transport->stop());
}

TEST_CASE("a stopped transport releases open connections and pending stream requests") {
  auto options = fast_options("a");
  options.stream_timeout = 10s;
  Node a(std::move(options));
  const Address at = a.start();
  RawSocket idle(SOCK_STREAM);
  REQUIRE(idle.connect_to(at));
  REQUIRE(eventually([&] { return a.transport->snapshot()->transport.streams_accepted == 1; }));

  // b's join goes to a listener that never answers (idle backlog, no accept):
  // its stream request is still pending when b stops.
  RawSocket silent(SOCK_STREAM);
  const auto any = to_sockaddr(Address::v4(127, 0, 0, 1, 0));
  REQUIRE(::bind(silent.fd(), reinterpret_cast<const sockaddr*>(&any), sizeof(sockaddr_in)) == 0);
  REQUIRE(::listen(silent.fd(), 1) == 0);
  sockaddr_storage bound{};
  socklen_t length = sizeof bound;
  REQUIRE(::getsockname(silent.fd(), reinterpret_cast<sockaddr*>(&bound), &length) == 0);
  const Address silent_at = *from_sockaddr(reinterpret_cast<const sockaddr*>(&bound));
  Node b(fast_options("b"));
  b.start({silent_at});
  std::this_thread::sleep_for(100ms);

  CHECK_FALSE(a.transport->stop());
  CHECK_FALSE(b.transport->stop());
  CHECK(idle.closed_by_peer(1s));
}

TEST_CASE("a join through an address where nothing listens fails back to the core") {
  // A free port: bound, read, released.
  Address nowhere;
  {
    RawSocket probe(SOCK_STREAM);
    const auto any = to_sockaddr(Address::v4(127, 0, 0, 1, 0));
    REQUIRE(::bind(probe.fd(), reinterpret_cast<const sockaddr*>(&any), sizeof(sockaddr_in)) == 0);
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    REQUIRE(::getsockname(probe.fd(), reinterpret_cast<sockaddr*>(&bound), &length) == 0);
    nowhere = *from_sockaddr(reinterpret_cast<const sockaddr*>(&bound));
  }

  Node a(fast_options("a"));
  a.start({nowhere});
  CHECK(a.log.wait([&](const std::vector<Event>& events) {
    for (const auto& e : events) {
      const auto* r = std::get_if<SyncResult>(&e);
      if (r && r->peer == nowhere && r->purpose == SyncPurpose::kJoin &&
          r->error == std::errc::connection_refused) {
        return true;
      }
    }
    return false;
  }));
  CHECK(a.transport->snapshot()->transport.streams_out_failed >= 1);
  CHECK_FALSE(a.transport->stop());
}

// Whether this machine can bind [::1]; the IPv6 case is skipped (and says
// so) where it cannot.
bool no_ipv6_loopback() {
  const int fd = ::socket(AF_INET6, SOCK_DGRAM, 0);
  bool ok = false;
  if (fd >= 0) {
    const auto at = to_sockaddr(*Address::parse("[::1]:0"));
    ok = ::bind(fd, reinterpret_cast<const sockaddr*>(&at), sizeof(sockaddr_in6)) == 0;
    ::close(fd);
  }
  if (!ok) std::fprintf(stderr, "[transport] skipped: IPv6 loopback (::1) cannot be bound here\n");
  return !ok;
}

TEST_CASE("two transports join over IPv6 loopback" * doctest::skip(no_ipv6_loopback())) {
  const Address v6 = *Address::parse("[::1]:0");
  Node a(fast_options("a", kKey, v6)), b(fast_options("b", kKey, v6));
  const Address seed = a.start();
  CHECK(seed.family == Address::Family::kV6);
  b.start({seed});
  CHECK(eventually([&] { return a.alive_members() == 2 && b.alive_members() == 2; }));
  auto s = a.transport->snapshot();
  REQUIRE(s.has_value());
  for (const auto& m : s->members) CHECK(m.address.to_string().rfind("[::1]:", 0) == 0);
  CHECK_FALSE(b.transport->stop());
  CHECK_FALSE(a.transport->stop());
}

TEST_CASE(
    "a dual-stack member that an IPv4-only socket cannot reach costs send errors, not "
    "the transport" *
    doctest::skip(no_ipv6_loopback())) {
  Node a(fast_options("a"));
  auto options = fast_options("b", kKey, *Address::parse("[::1]:0"));
  options.bind = *Address::parse("[::]:0");  // dual-stack: reaches a over IPv4 too
  Node b(std::move(options));
  const Address seed = a.start();
  b.start({seed});
  // b joins through a (its push-pull and datagrams reach a's IPv4 socket),
  // but a cannot send to b's IPv6 address from its IPv4 socket.
  CHECK(a.log.saw_member(MemberEventKind::kJoined, "b"));
  CHECK(eventually([&] {
    auto s = a.transport->snapshot();
    return s && s->transport.udp_send_errors > 0;
  }));
  auto s = a.transport->snapshot();
  REQUIRE(s.has_value());
  CHECK(s->transport.last_error.find("udp send to [::1]:") == 0);
  CHECK(s->transport.last_error.find(
            std::make_error_code(std::errc::address_family_not_supported).message()) !=
        std::string::npos);
  CHECK(a.transport->running());
  CHECK_FALSE(b.transport->stop());
  CHECK_FALSE(a.transport->stop());
}

TEST_CASE("an event handler that throws is logged; the transport goes on") {
  std::atomic<int> thrown{0};
  Transport a(fast_options("a"), [&](Event) {
    ++thrown;
    throw std::runtime_error("handler failure");
  });
  Node b(fast_options("b"));
  REQUIRE_FALSE(a.start(std::vector<Address>{}));
  b.start({a.address()});
  CHECK(eventually([&] { return b.alive_members() == 2; }));
  CHECK(eventually([&] {
    auto s = a.snapshot();
    return s && s->members.size() == 2 && s->core.probes > 2;
  }));
  CHECK(thrown > 0);
  CHECK_FALSE(b.transport->stop());
  CHECK_FALSE(a.stop());
}

TEST_CASE("start reports a port that is taken, for UDP and for TCP, and can then be retried") {
  for (int type : {SOCK_DGRAM, SOCK_STREAM}) {
    CAPTURE(type);
    RawSocket holder(type);
    const auto any = to_sockaddr(Address::v4(127, 0, 0, 1, 0));
    REQUIRE(::bind(holder.fd(), reinterpret_cast<const sockaddr*>(&any), sizeof(sockaddr_in)) == 0);
    if (type == SOCK_STREAM) REQUIRE(::listen(holder.fd(), 1) == 0);
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    REQUIRE(::getsockname(holder.fd(), reinterpret_cast<sockaddr*>(&bound), &length) == 0);
    const Address taken = *from_sockaddr(reinterpret_cast<const sockaddr*>(&bound));

    auto options = fast_options("a", kKey, taken);
    Transport a(std::move(options), {});
    CHECK(a.start(std::vector<Address>{}) == std::errc::address_in_use);
    CHECK_FALSE(a.running());
    ::close(holder.fd());
    holder.forget();
    CHECK_FALSE(a.start(std::vector<Address>{}));  // the keyring is still there
    CHECK(a.address() == taken);
    CHECK_FALSE(a.stop());
  }
}

TEST_CASE("a bad configuration is refused when the transport is made") {
  auto unspecified = fast_options("a");
  unspecified.config.address = Address::v4(0, 0, 0, 0, 0);
  CHECK_THROWS_AS(Transport(std::move(unspecified), {}), std::invalid_argument);
  auto nameless = fast_options("");
  CHECK_THROWS_AS(Transport(std::move(nameless), {}), std::invalid_argument);
  auto no_streams = fast_options("a");
  no_streams.max_inbound_streams = 0;
  CHECK_THROWS_AS(Transport(std::move(no_streams), {}), std::invalid_argument);
}

}  // namespace
}  // namespace mixlb::gossip
