// The libuv wrappers on a real loop: each handle type does its one job, a
// handle closed from its own callback is freed, request callbacks outlive
// their handle with UV_ECANCELED, and every case ends with
// uv_loop_close() == 0 — the proof that no handle leaked. One case shows
// the proof can fail: a handle left open makes the close report UV_EBUSY.
// Also the stream framing and the sockaddr edge, which have no loop.
#include <arpa/inet.h>
#include <doctest/doctest.h>

#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "error.h"
#include "sockaddr.h"
#include "stream_frame.h"
#include "uv_handles.h"

namespace mixlb::gossip {
namespace {

using namespace std::chrono_literals;

uv::Loop make_loop() {
  auto loop = uv::Loop::create();
  REQUIRE(loop.has_value());
  return std::move(*loop);
}

sockaddr_storage loopback(std::uint16_t port = 0) {
  return to_sockaddr(Address::v4(127, 0, 0, 1, port));
}

const sockaddr* sa(const sockaddr_storage& s) { return reinterpret_cast<const sockaddr*>(&s); }

std::uint16_t port_of(const sockaddr_storage& s) {
  auto a = from_sockaddr(sa(s));
  REQUIRE(a.has_value());
  return a->port;
}

Bytes bytes_of(std::string_view text) { return Bytes(text.begin(), text.end()); }

TEST_CASE("a timer fires once and its loop then closes with nothing left open") {
  uv::Loop loop = make_loop();
  int fired = 0;
  {
    auto timer = uv::Timer::create(loop.get(), [&] { ++fired; });
    REQUIRE(timer.has_value());
    REQUIRE_FALSE(timer->start(1ms));
    loop.run();
    CHECK(fired == 1);
  }  // the wrapper closes the handle; its memory goes in the close callback
  loop.run();
  CHECK(loop.close() == 0);
}

TEST_CASE("a handle left open makes the loop refuse to close (the check can fail)") {
  uv::Loop loop = make_loop();
  auto timer = uv::Timer::create(loop.get(), [] {});
  REQUIRE(timer.has_value());
  CHECK(loop.close() == UV_EBUSY);
  timer->close();
  loop.run();
  CHECK(loop.close() == 0);
}

TEST_CASE("a handle destroyed from its own callback is freed in the close callback") {
  uv::Loop loop = make_loop();
  std::optional<uv::Timer> timer;
  int fired = 0;
  auto made = uv::Timer::create(loop.get(), [&] {
    ++fired;
    timer.reset();  // destroys the wrapper whose callback is running
  });
  REQUIRE(made.has_value());
  timer.emplace(std::move(*made));
  REQUIRE_FALSE(timer->start(0ms));
  loop.run();
  CHECK(fired == 1);
  CHECK_FALSE(timer.has_value());
  CHECK(loop.close() == 0);
}

TEST_CASE("a moved handle is owned once: the moved-from wrapper closes nothing") {
  uv::Loop loop = make_loop();
  auto made = uv::Timer::create(loop.get(), [] {});
  REQUIRE(made.has_value());
  uv::Timer a = std::move(*made);
  uv::Timer b = std::move(a);
  CHECK_FALSE(static_cast<bool>(a));
  CHECK(static_cast<bool>(b));
  a.close();  // a no-op
  b.close();
  b.close();  // idempotent
  loop.run();
  CHECK(loop.close() == 0);
}

TEST_CASE("async wake-ups sent from another thread reach the loop thread") {
  uv::Loop loop = make_loop();
  std::optional<uv::Async> async;
  std::thread::id woken_on;
  auto made = uv::Async::create(loop.get(), [&] {
    woken_on = std::this_thread::get_id();
    async.reset();
  });
  REQUIRE(made.has_value());
  async.emplace(std::move(*made));
  std::error_code sent;
  std::thread other([&] { sent = async->send(); });
  loop.run();  // returns once the async handle has closed
  other.join();
  CHECK_FALSE(sent);
  CHECK(woken_on == std::this_thread::get_id());
  CHECK(loop.close() == 0);
}

TEST_CASE("a UDP datagram sent to our own socket arrives whole, with its sender") {
  uv::Loop loop = make_loop();
  auto udp = uv::Udp::create(loop.get());
  REQUIRE(udp.has_value());
  const auto at = loopback();
  REQUIRE_FALSE(udp->bind(sa(at)));
  auto local = udp->local_address();
  REQUIRE(local.has_value());
  const std::uint16_t port = port_of(*local);
  CHECK(port != 0);

  Bytes received;
  std::optional<Address> sender;
  bool truncated = true;
  REQUIRE_FALSE(udp->start_receive(
      [&](uv::ByteView bytes, const sockaddr* from, bool cut) {
        received.assign(bytes.begin(), bytes.end());
        sender = from_sockaddr(from);
        truncated = cut;
        udp->close();
      },
      [](std::error_code) {}));
  const Bytes payload = bytes_of("ping");
  REQUIRE_FALSE(udp->send(sa(*local), payload));
  loop.run();
  CHECK(received == payload);
  REQUIRE(sender.has_value());
  CHECK(sender->to_string() == "127.0.0.1:" + std::to_string(port));
  CHECK_FALSE(truncated);
  CHECK(loop.close() == 0);
}

TEST_CASE("an IPv6 destination from an IPv4 socket is refused by the sockaddr edge") {
  auto to = to_sockaddr_for(*Address::parse("[::1]:7946"), AF_INET);
  REQUIRE_FALSE(to.has_value());
  CHECK(to.error() == std::errc::address_family_not_supported);
}

TEST_CASE("TCP: accept, connect, write, read to the end of the stream") {
  uv::Loop loop = make_loop();
  auto listener = uv::Tcp::create(loop.get());
  REQUIRE(listener.has_value());
  const auto at = loopback();
  REQUIRE_FALSE(listener->bind(sa(at)));
  auto local = listener->local_address();
  REQUIRE(local.has_value());

  std::optional<uv::Tcp> server;
  Bytes received;
  std::error_code end;
  REQUIRE_FALSE(listener->listen(8, [&](std::error_code error) {
    REQUIRE_FALSE(error);
    auto conn = uv::Tcp::create(loop.get());
    REQUIRE(conn.has_value());
    REQUIRE_FALSE(listener->accept(*conn));
    server.emplace(std::move(*conn));
    listener->close();
    REQUIRE_FALSE(server->read_start([&](std::expected<uv::ByteView, std::error_code> chunk) {
      if (chunk) {
        received.insert(received.end(), chunk->begin(), chunk->end());
        return;
      }
      end = chunk.error();
      server.reset();
    }));
  }));

  auto client = uv::Tcp::create(loop.get());
  REQUIRE(client.has_value());
  std::error_code connected = make_error_code(Errc::kTruncated);  // anything but success
  std::error_code written = make_error_code(Errc::kTruncated);
  REQUIRE_FALSE(client->connect(sa(*local), [&](std::error_code error) {
    connected = error;
    REQUIRE_FALSE(client->write(bytes_of("push-pull"), [&](std::error_code w) {
      written = w;
      client->close();  // the server reads the bytes, then the end of the stream
    }));
  }));
  loop.run();
  CHECK_FALSE(connected);
  CHECK_FALSE(written);
  CHECK(received == bytes_of("push-pull"));
  CHECK(end.value() == UV_EOF);
  CHECK(loop.close() == 0);
}

TEST_CASE("request callbacks outlive their handle and report UV_ECANCELED") {
  uv::Loop loop = make_loop();
  auto listener = uv::Tcp::create(loop.get());
  REQUIRE(listener.has_value());
  const auto at = loopback();
  REQUIRE_FALSE(listener->bind(sa(at)));
  REQUIRE_FALSE(listener->listen(8, [](std::error_code) {}));
  auto local = listener->local_address();
  REQUIRE(local.has_value());

  std::vector<std::error_code> outcomes;
  {
    auto client = uv::Tcp::create(loop.get());
    REQUIRE(client.has_value());
    REQUIRE_FALSE(client->connect(sa(*local), [&](std::error_code e) { outcomes.push_back(e); }));
    // Queued behind the connect, then the wrapper goes before either completes.
    REQUIRE_FALSE(
        client->write(bytes_of("lost"), [&](std::error_code e) { outcomes.push_back(e); }));
  }
  listener->close();
  loop.run();
  REQUIRE(outcomes.size() == 2);
  CHECK(outcomes[0] == std::errc::operation_canceled);
  CHECK(outcomes[1] == std::errc::operation_canceled);
  CHECK(loop.close() == 0);
}

TEST_CASE("libuv errors compare equal to std::errc and read as uv_strerror") {
  uv::Loop loop = make_loop();
  // A port that was free a moment ago: nothing listens there.
  std::uint16_t port = 0;
  {
    auto probe = uv::Tcp::create(loop.get());
    REQUIRE(probe.has_value());
    const auto at = loopback();
    REQUIRE_FALSE(probe->bind(sa(at)));
    auto local = probe->local_address();
    REQUIRE(local.has_value());
    port = port_of(*local);
  }
  auto client = uv::Tcp::create(loop.get());
  REQUIRE(client.has_value());
  std::error_code outcome;
  const auto to = loopback(port);
  REQUIRE_FALSE(client->connect(sa(to), [&](std::error_code e) {
    outcome = e;
    client->close();
  }));
  loop.run();
  CHECK(outcome == std::errc::connection_refused);
  CHECK(outcome.value() == UV_ECONNREFUSED);
  CHECK(outcome.message() == uv_strerror(UV_ECONNREFUSED));
  CHECK(loop.close() == 0);
}

// ---- the sockaddr edge

TEST_CASE("v4-mapped IPv6 senders are known by their IPv4 address") {
  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(7946);
  REQUIRE(inet_pton(AF_INET6, "::ffff:10.0.0.9", &in6.sin6_addr) == 1);
  auto a = from_sockaddr(reinterpret_cast<const sockaddr*>(&in6));
  REQUIRE(a.has_value());
  CHECK(a->to_string() == "10.0.0.9:7946");

  // And the way back, for sending from a dual-stack socket.
  auto mapped = to_sockaddr_for(*a, AF_INET6);
  REQUIRE(mapped.has_value());
  CHECK(mapped->ss_family == AF_INET6);
  auto again = from_sockaddr(reinterpret_cast<const sockaddr*>(&*mapped));
  REQUIRE(again.has_value());
  CHECK(*again == *a);

  const auto v6 = *Address::parse("[2001:db8::7]:7946");
  auto plain = to_sockaddr(v6);
  CHECK(from_sockaddr(reinterpret_cast<const sockaddr*>(&plain)) == v6);
  CHECK(is_unspecified(*Address::parse("0.0.0.0:1")));
  CHECK(is_unspecified(*Address::parse("[::]:1")));
  CHECK_FALSE(is_unspecified(v6));
}

// ---- stream framing

TEST_CASE("a framed message read back one byte at a time") {
  const Bytes message = bytes_of("sealed push-pull state");
  auto framed = frame_message(message);
  REQUIRE(framed.has_value());
  CHECK(framed->size() == kFrameHeaderSize + message.size());
  CHECK((*framed)[3] == message.size());
  FrameReader reader(1024);
  for (std::size_t i = 0; i < framed->size(); ++i) {
    auto done = reader.feed(ByteView(*framed).subspan(i, 1));
    REQUIRE(done.has_value());
    CHECK(*done == (i + 1 == framed->size()));
  }
  CHECK(reader.take() == message);
}

TEST_CASE("an empty message is a whole message") {
  auto framed = frame_message({});
  REQUIRE(framed.has_value());
  FrameReader reader(16);
  auto done = reader.feed(*framed);
  REQUIRE(done.has_value());
  CHECK(*done);
  CHECK(reader.take().empty());
}

TEST_CASE("a length over the bound is refused before any body byte arrives") {
  FrameReader reader(1000);
  const Bytes header = {0x00, 0x00, 0x03, 0xe9};  // 1001
  auto done = reader.feed(header);
  REQUIRE_FALSE(done.has_value());
  CHECK(done.error() == Errc::kTooLarge);
  CHECK(reader.received() == 0);

  FrameReader exact(1001);
  auto fine = exact.feed(header);
  REQUIRE(fine.has_value());
  CHECK_FALSE(*fine);
}

TEST_CASE("bytes after the one message of a stream are an error") {
  auto framed = frame_message(bytes_of("abc"));
  REQUIRE(framed.has_value());
  framed->push_back(0x42);
  FrameReader reader(16);
  auto done = reader.feed(*framed);
  REQUIRE_FALSE(done.has_value());
  CHECK(done.error() == Errc::kTrailingBytes);
}

}  // namespace
}  // namespace mixlb::gossip
