// The libuv transport on loopback, several instances in this one process:
// joining, metadata and user events, graceful leave and quiet stop (and the
// restart that follows it), binding before start, the stream bounds,
// datagrams that must be dropped, snapshots blocking and not, and the
// thread-safe API's answers before start and after stop. Every transport is
// stopped at the end and its stop() must report a clean loop close
// (uv_loop_close() == 0 on its thread).
#include <doctest/doctest.h>
#include <netdb.h>
#include <netinet/in.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
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
#include "transport_harness.h"

namespace mixlb::gossip {
namespace {

using namespace std::chrono_literals;
using namespace transport_harness;

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

// Waits for a kUpdated about `name` carrying `metadata`; its incarnation,
// or nullopt when none came.
std::optional<std::uint32_t> updated_with(EventLog& log, const std::string& name,
                                          const Bytes& metadata) {
  std::optional<std::uint32_t> incarnation;
  log.saw([&](const MemberEvent& m) {
    if (m.kind != MemberEventKind::kUpdated || m.member.name != name ||
        m.member.metadata != metadata) {
      return false;
    }
    incarnation = m.member.incarnation;
    return true;
  });
  return incarnation;
}

TEST_CASE(
    "a quiet stop gossips the metadata queued before it and announces no leave: the other "
    "member sees it suspect, then dead, never left; restarted, it is alive again") {
  Node a(fast_options("a")), b(fast_options("b"));
  const Address a_at = a.start();
  const Address b_at = b.start({a_at});
  REQUIRE(eventually([&] { return a.alive_members() == 2 && b.alive_members() == 2; }));

  // What the sidecar does before it restarts: say so, then go quiet.
  const Bytes restarting = bytes_of("restarting");
  CHECK_FALSE(a.transport->set_metadata(restarting));
  CHECK_FALSE(a.transport->stop(StopMode::kQuiet));
  CHECK_FALSE(a.transport->running());
  // Idempotent whatever the mode: a second call announces nothing either.
  CHECK_FALSE(a.transport->stop(StopMode::kLeave));

  const auto quiet_incarnation = updated_with(b.log, "a", restarting);
  REQUIRE(quiet_incarnation.has_value());
  CHECK(b.log.saw_member(MemberEventKind::kSuspect, "a"));
  CHECK(b.log.saw_member(MemberEventKind::kDead, "a"));
  CHECK_FALSE(has_member_event(b.log.events(), MemberEventKind::kLeft, "a"));

  // The successor process: a new transport under the same name and address.
  // b holds a dead at the old incarnation; the join's push-pull tells the
  // new core so, and it refutes with a higher one.
  const std::size_t before_restart = b.log.size();
  auto options = fast_options("a", kKey, a_at);
  options.config.metadata = bytes_of("back");
  Node successor(std::move(options));
  CHECK(successor.start({b_at}) == a_at);
  CHECK(b.log.saw_member(MemberEventKind::kJoined, "a", 10s, before_restart));
  CHECK(eventually([&] {
    const auto m = b.member("a");
    return m && m->state == MemberState::kAlive && m->address == a_at &&
           m->metadata == bytes_of("back") && m->incarnation > *quiet_incarnation;
  }));
  CHECK(eventually([&] { return successor.alive_members() == 2; }));
  CHECK_FALSE(has_member_event(b.log.events(), MemberEventKind::kLeft, "a"));

  CHECK_FALSE(successor.transport->stop());
  CHECK_FALSE(b.transport->stop());
}

TEST_CASE(
    "a member restarted while the others still suspect it refutes the suspicion: never dead, "
    "never left") {
  Node a(fast_options("a"));
  // A suspicion that lasts seconds, so the restart comes well within it.
  auto patient = fast_options("b");
  patient.config.suspicion_mult = 30;
  Node b(std::move(patient));
  const Address a_at = a.start();
  const Address b_at = b.start({a_at});
  REQUIRE(eventually([&] { return a.alive_members() == 2 && b.alive_members() == 2; }));

  CHECK_FALSE(a.transport->set_metadata(bytes_of("restarting")));
  CHECK_FALSE(a.transport->stop(StopMode::kQuiet));
  const auto quiet_incarnation = updated_with(b.log, "a", bytes_of("restarting"));
  REQUIRE(quiet_incarnation.has_value());
  REQUIRE(b.log.saw_member(MemberEventKind::kSuspect, "a"));

  const std::size_t before_restart = b.log.size();
  Node successor(fast_options("a", kKey, a_at));
  successor.start({b_at});
  CHECK(b.log.saw(
      [&](const MemberEvent& m) {
        return m.kind == MemberEventKind::kAlive && m.member.name == "a" &&
               m.member.incarnation > *quiet_incarnation;
      },
      10s, before_restart));
  const auto events = b.log.events();
  CHECK_FALSE(has_member_event(events, MemberEventKind::kDead, "a"));
  CHECK_FALSE(has_member_event(events, MemberEventKind::kLeft, "a"));

  CHECK_FALSE(successor.transport->stop());
  CHECK_FALSE(b.transport->stop());
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

// One snapshot_async() answer as the test saw it.
struct Answer {
  int calls = 0;
  std::thread::id thread;
  Transport::SnapshotResult result = std::unexpected(std::error_code());
};

// Asks for a snapshot and records the answer (or answers) it gets.
class AnswerLog {
 public:
  // The request's index in this log.
  std::size_t ask(const Transport& transport) {
    std::size_t index;
    {
      std::lock_guard lock(mutex_);
      index = answers_.size();
      answers_.emplace_back();
    }
    transport.snapshot_async([this, index](Transport::SnapshotResult result) {
      std::lock_guard lock(mutex_);
      Answer& answer = answers_[index];
      ++answer.calls;
      answer.thread = std::this_thread::get_id();
      answer.result = std::move(result);
      changed_.notify_all();
    });
    return index;
  }
  // Waits for the request's first answer; a copy of it (calls 0 on timeout).
  Answer wait(std::size_t index, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return answers_[index].calls > 0; });
    return answers_[index];
  }
  Answer at(std::size_t index) {
    std::lock_guard lock(mutex_);
    return answers_[index];
  }
  std::vector<Answer> answers() {
    std::lock_guard lock(mutex_);
    return {answers_.begin(), answers_.end()};
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Answer> answers_;  // stable while answers come in
};

TEST_CASE(
    "snapshot_async answers on the transport thread when running, and at once on the "
    "caller's thread when it cannot ask") {
  const auto here = std::this_thread::get_id();
  AnswerLog log;
  Node a(fast_options("a"));

  // Before start, and bound only: not_connected, before snapshot_async returns.
  auto refused = log.ask(*a.transport);
  CHECK(log.at(refused).calls == 1);
  CHECK(log.at(refused).thread == here);
  CHECK(log.at(refused).result.error() == std::errc::not_connected);
  REQUIRE_FALSE(a.transport->bind());
  refused = log.ask(*a.transport);
  CHECK(log.at(refused).calls == 1);
  CHECK(log.at(refused).result.error() == std::errc::not_connected);

  a.start();
  const auto taken = log.wait(log.ask(*a.transport));
  REQUIRE(taken.calls == 1);
  CHECK(taken.thread != here);
  REQUIRE(taken.result.has_value());
  CHECK(taken.result->self.name == "a");
  CHECK(taken.result->address == a.transport->address());

  // A callback that throws is logged; the next request is answered.
  std::atomic<int> thrown{0};
  a.transport->snapshot_async([&](Transport::SnapshotResult) {
    ++thrown;
    throw std::runtime_error("callback failure");
  });
  const auto after_throw = log.wait(log.ask(*a.transport));
  CHECK(after_throw.result.has_value());
  CHECK(thrown == 1);

  CHECK_FALSE(a.transport->stop());
  refused = log.ask(*a.transport);
  CHECK(log.at(refused).calls == 1);
  CHECK(log.at(refused).thread == here);
  CHECK(log.at(refused).result.error() == Errc::kLeft);
  for (const auto& answer : log.answers()) CHECK(answer.calls == 1);
}

TEST_CASE("snapshot_async from the event handler is answered after the handler has returned") {
  // Atomics, not a mutex: an answer given inside the handler must show as
  // a failure here, not as a deadlock.
  std::atomic<bool> in_handler{false};
  std::atomic<bool> asked{false};
  std::atomic<int> answered{0};  // 1: after the handler returned, 2: inside it
  std::atomic<bool> got_snapshot{false};
  std::unique_ptr<Transport> b;
  b = std::make_unique<Transport>(fast_options("b"), [&](Event) {
    if (asked.exchange(true)) return;
    in_handler = true;
    b->snapshot_async([&](Transport::SnapshotResult result) {
      got_snapshot = result.has_value();
      answered = in_handler ? 2 : 1;
    });
    in_handler = false;
  });
  Node a(fast_options("a"));
  const Address seed = a.start();
  REQUIRE_FALSE(b->start(std::vector<Address>{seed}));
  CHECK(eventually([&] { return answered != 0; }));
  CHECK(answered == 1);
  CHECK(got_snapshot);
  CHECK_FALSE(b->stop());
  CHECK_FALSE(a.transport->stop());
}

TEST_CASE("snapshot_async answers every request exactly once while stop() runs concurrently") {
  // Each round: a thread keeps asking while the main thread stops the
  // transport; the asking goes on past the stop. A request the main thread
  // queued just before stop() must be answered with a snapshot.
  constexpr int kRounds = 500;
  std::size_t snapshots = 0;
  std::size_t refused = 0;
  for (int round = 0; round < kRounds; ++round) {
    CAPTURE(round);
    auto options = fast_options("a");
    options.leave_linger = round % 2 == 0 ? Duration::zero() : Duration(5ms);
    Transport a(std::move(options), {});
    REQUIRE_FALSE(a.start(std::vector<Address>{}));

    AnswerLog log;
    bool stopping_seen = false;
    std::thread asker([&] {
      const auto asker_thread = std::this_thread::get_id();
      // Refused at once, on this thread: stop() has begun. A few more then.
      for (int after = 0; after < 16;) {
        const std::size_t index = log.ask(a);
        const auto answer = log.at(index);
        if (answer.calls > 0 && answer.thread == asker_thread) stopping_seen = true;
        if (stopping_seen) ++after;
        // Paced, so that a round is not thousands of snapshots long.
        if (index < 64) {
          std::this_thread::yield();
        } else {
          std::this_thread::sleep_for(50us);
        }
      }
    });
    const std::size_t first = log.ask(a);
    REQUIRE(log.wait(first).calls == 1);
    const std::size_t last_before_stop = log.ask(a);
    CHECK_FALSE(a.stop(round % 4 < 2 ? StopMode::kLeave : StopMode::kQuiet));
    asker.join();

    const auto answers = log.answers();
    const auto& before_stop = answers[last_before_stop];
    CHECK(before_stop.calls == 1);
    CHECK(before_stop.result.has_value());
    std::size_t not_once = 0;
    std::size_t other_errors = 0;
    for (const auto& answer : answers) {
      not_once += answer.calls != 1;
      if (answer.calls == 0) continue;
      if (answer.result) {
        ++snapshots;
      } else {
        ++refused;
        other_errors += answer.result.error() != Errc::kLeft;
      }
    }
    CHECK(not_once == 0);
    CHECK(other_errors == 0);
  }
  MESSAGE(snapshots << " snapshots, " << refused << " refusals in " << kRounds << " rounds");
  CHECK(snapshots > 0);
  CHECK(refused > 0);
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

TEST_CASE(
    "bind and start report a port that is taken, for UDP and for TCP, and can then be "
    "retried") {
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
    CHECK(a.bind() == std::errc::address_in_use);
    CHECK(a.start(std::vector<Address>{}) == std::errc::address_in_use);
    CHECK_FALSE(a.running());
    ::close(holder.fd());
    holder.forget();
    CHECK_FALSE(a.start(std::vector<Address>{}));  // the keyring is still there
    CHECK(a.address() == taken);
    CHECK_FALSE(a.stop());
  }
}

// Whether a plain socket of this type can bind `at` (SO_REUSEADDR off).
bool can_bind(int type, const Address& at) {
  RawSocket socket(type);
  const auto address = to_sockaddr(at);
  return ::bind(socket.fd(), reinterpret_cast<const sockaddr*>(&address), sizeof(sockaddr_in)) == 0;
}

// What spdlog logs at error level while this lives: the default logger is
// swapped for one that keeps its lines, and put back at the end.
class ErrorLog {
 public:
  ErrorLog() : previous_(spdlog::default_logger()) {
    auto logger = std::make_shared<spdlog::logger>("test-errors", sink_);
    logger->set_level(spdlog::level::err);
    spdlog::set_default_logger(std::move(logger));
  }
  ErrorLog(const ErrorLog&) = delete;
  ErrorLog& operator=(const ErrorLog&) = delete;
  ~ErrorLog() { spdlog::set_default_logger(previous_); }
  std::vector<std::string> lines() const { return sink_->last_formatted(); }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_ =
      std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(16);
  std::shared_ptr<spdlog::logger> previous_;
};

TEST_CASE(
    "a bound transport holds its port, refuses requests, and is stopped or destroyed with "
    "every handle released") {
  Transport a(fast_options("a"), {});
  REQUIRE_FALSE(a.bind());
  const Address at = a.address();
  CHECK(at.port != 0);
  CHECK_FALSE(a.running());
  CHECK_FALSE(can_bind(SOCK_DGRAM, at));
  CHECK_FALSE(can_bind(SOCK_STREAM, at));
  CHECK(a.bind() == std::errc::already_connected);
  CHECK(a.address() == at);
  CHECK(a.set_metadata(bytes_of("x")) == std::errc::not_connected);
  CHECK(a.send_user_event(bytes_of("x")) == std::errc::not_connected);
  CHECK(a.snapshot().error() == std::errc::not_connected);

  CHECK_FALSE(a.stop(StopMode::kQuiet));  // uv_loop_close() == 0
  CHECK_FALSE(a.stop());
  CHECK(can_bind(SOCK_DGRAM, at));
  CHECK(can_bind(SOCK_STREAM, at));
  CHECK(a.bind() == Errc::kLeft);
  CHECK(a.start(std::vector<Address>{}) == Errc::kLeft);

  // Destroyed without stop(): the destructor's stop() would log an error
  // had the loop not closed cleanly (and the loop's own destructor, had a
  // handle been left open).
  Address released;
  {
    ErrorLog errors;
    {
      Transport b(fast_options("b"), {});
      REQUIRE_FALSE(b.bind());
      released = b.address();
      CHECK_FALSE(can_bind(SOCK_STREAM, released));
    }
    for (const auto& line : errors.lines()) FAIL_CHECK("logged: " << line);
  }
  CHECK(can_bind(SOCK_DGRAM, released));
  CHECK(can_bind(SOCK_STREAM, released));
}

TEST_CASE(
    "start() after bind() runs on the bound port, and serves the join a peer sent in "
    "between") {
  Node a(fast_options("a"));
  REQUIRE_FALSE(a.transport->bind());
  const Address at = a.transport->address();
  // b's join reaches a's listener before a runs: its push-pull waits in the
  // backlog (stream_timeout is 2 s) and is answered once a has started.
  Node b(fast_options("b"));
  b.start({at});
  std::this_thread::sleep_for(200ms);
  CHECK(a.start() == at);
  CHECK(b.log.wait([&](const std::vector<Event>& events) {
    for (const auto& e : events) {
      const auto* r = std::get_if<SyncResult>(&e);
      if (r && r->peer == at && r->purpose == SyncPurpose::kJoin) return !r->error;
    }
    return false;
  }));
  CHECK(eventually([&] { return a.alive_members() == 2 && b.alive_members() == 2; }));
  CHECK_FALSE(b.transport->stop());
  CHECK_FALSE(a.transport->stop());
}

// The position of the first event of type T in `events` that `match`
// accepts, or events.size().
template <class T>
std::size_t first_of(const std::vector<Event>& events, const std::function<bool(const T&)>& match) {
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto* e = std::get_if<T>(&events[i]);
    if (e && match(*e)) return i;
  }
  return events.size();
}

TEST_CASE("a seed given by name is resolved by the system resolver before the join through it") {
  Node a(fast_options("a"));
  const Address at = a.start();
  Node b(fast_options("b"));
  const std::vector<SeedName> names{{"localhost", at.port}, {"no-such-seed.invalid", at.port}};
  REQUIRE_FALSE(b.transport->start({}, names));
  CHECK(eventually([&] { return a.alive_members() == 2 && b.alive_members() == 2; }));

  std::vector<Event> events;
  REQUIRE(b.log.wait([&](const std::vector<Event>& e) {
    events = e;
    return first_of<SyncResult>(e, [](const SyncResult& r) { return r.purpose == SyncPurpose::kJoin; }) <
           e.size();
  }));
  const std::size_t resolved =
      first_of<SeedsResolved>(events, [](const SeedsResolved& r) { return r.first; });
  const std::size_t joined =
      first_of<SyncResult>(events, [](const SyncResult& r) { return r.purpose == SyncPurpose::kJoin; });
  REQUIRE(resolved < events.size());
  CHECK(resolved < joined);  // the first tables can count the joins it started
  const auto& r = std::get<SeedsResolved>(events[resolved]);
  CHECK(r.joins == 1);
  CHECK(r.changed);
  REQUIRE(r.lookups.size() == 2);
  CHECK(r.lookups[0].name == names[0]);
  CHECK_FALSE(r.lookups[0].error);
  CHECK(r.lookups[0].addresses == std::vector<Address>{Address::v4(127, 0, 0, 1, at.port)});
  CHECK(r.lookups[1].error);  // reported, and the other name still counted
  CHECK(r.lookups[1].addresses.empty());
  MESSAGE("no-such-seed.invalid: " << r.lookups[1].error.message());
  CHECK_FALSE(std::get<SyncResult>(events[joined]).error);
}

TEST_CASE(
    "seed names are looked up off the loop at every re-join round; a new address is joined, a "
    "failed lookup keeps the last ones") {
  Node a(fast_options("a"));
  const Address at = a.start();

  std::mutex mutex;
  std::optional<std::vector<Address>> answer;  // nullopt: the name does not resolve
  std::vector<std::thread::id> lookup_threads;
  auto options = fast_options("b");
  options.lookup = [&](const SeedName& name, Address::Family family)
      -> std::expected<std::vector<Address>, std::error_code> {
    CHECK(name.host == "peers.mixlb.test");
    CHECK(family == Address::Family::kV4);
    std::lock_guard lock(mutex);
    lookup_threads.push_back(std::this_thread::get_id());
    if (!answer) return std::unexpected(std::error_code(EAI_NONAME, resolver_category()));
    return *answer;
  };
  Node b(std::move(options));
  const std::vector<SeedName> names{{"peers.mixlb.test", at.port}};
  REQUIRE_FALSE(b.transport->start({}, names));
  auto rounds = [&] {
    std::lock_guard lock(mutex);
    return lookup_threads.size();
  };
  // Not resolvable yet: a lookup per re-join round (1 s), and b stays alone.
  CHECK(eventually([&] { return rounds() >= 3; }, 5s));
  CHECK(b.alive_members() == 1);

  {
    std::lock_guard lock(mutex);
    answer = std::vector<Address>{at};
  }
  CHECK(eventually([&] { return a.alive_members() == 2 && b.alive_members() == 2; }, 5s));
  CHECK(b.log.wait([&](const std::vector<Event>& e) {
    return first_of<SeedsResolved>(e, [&](const SeedsResolved& r) {
             return !r.first && r.changed && r.lookups.size() == 1 &&
                    r.lookups[0].addresses == std::vector<Address>{at};
           }) < e.size();
  }));

  // The record goes away; b keeps a's address as a seed and says so.
  const std::size_t before = rounds();
  {
    std::lock_guard lock(mutex);
    answer.reset();
  }
  CHECK(eventually([&] { return rounds() >= before + 2; }, 5s));
  CHECK(b.log.wait([&](const std::vector<Event>& e) {
    return first_of<SeedsResolved>(e, [](const SeedsResolved& r) {
             return !r.first && !r.changed && r.lookups.size() == 1 && r.lookups[0].error;
           }) < e.size();
  }));

  // Every lookup ran on a worker, never on the transport thread.
  std::lock_guard lock(mutex);
  for (auto id : lookup_threads) {
    for (auto loop : b.log.threads()) CHECK(id != loop);
  }
}

TEST_CASE("stop waits for a lookup already running and releases every handle") {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> entered{false};
  auto options = fast_options("slow-resolver");
  options.lookup = [&](const SeedName&, Address::Family)
      -> std::expected<std::vector<Address>, std::error_code> {
    entered = true;
    released.wait();
    return std::vector<Address>{Address::v4(127, 0, 0, 1, 9)};
  };
  Node b(std::move(options));
  REQUIRE_FALSE(b.transport->start({}, std::vector<SeedName>{{"slow.mixlb.test", 9}}));
  REQUIRE(eventually([&] { return entered.load(); }, 5s));
  // Released well after the 200 ms linger: a stop that did not wait for
  // the lookup would return before.
  std::atomic<bool> was_released{false};
  std::thread releaser([&] {
    std::this_thread::sleep_for(1s);
    was_released = true;
    release.set_value();
  });
  CHECK_FALSE(b.transport->stop(StopMode::kQuiet));  // uv_loop_close() == 0: nothing left behind
  CHECK(was_released.load());
  releaser.join();
  // The late answer was dropped: no resolution reported.
  CHECK(first_of<SeedsResolved>(b.log.events(), [](const SeedsResolved&) { return true; }) ==
        b.log.events().size());
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
