// The dissemination queue: fewest transmissions first and newest first among
// equals, replacement by key, retirement at the limit, and packets filled to
// their budget and never past it.
#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it
#include <string>
#include <vector>

#include "broadcast_queue.h"

namespace mixlb::gossip {
namespace {

Bytes message(char tag, std::size_t size) { return Bytes(size, static_cast<std::uint8_t>(tag)); }

std::string order_of(BroadcastQueue& q) {
  std::string out;
  q.for_each([&](const std::string& key, ByteView) { out += key; });
  return out;
}

TEST_CASE("newest first, then fewest transmissions first") {
  BroadcastQueue q;
  q.push("a", message('a', 10));
  q.push("b", message('b', 10));
  q.push("c", message('c', 10));
  CHECK(order_of(q) == "cba");
  Bytes out;
  CHECK(q.fill(out, 10, 5) == 10);  // sends c once
  CHECK(out == message('c', 10));
  CHECK(order_of(q) == "bac");
  CHECK(q.transmits("c") == 1);
}

TEST_CASE("a newer message under the same key replaces the older one") {
  BroadcastQueue q;
  q.push("node-1", message('x', 10));
  Bytes out;
  q.fill(out, 100, 5);
  q.push("node-1", message('y', 12));
  CHECK(q.size() == 1);
  CHECK(q.transmits("node-1") == 0);
  out.clear();
  q.fill(out, 100, 5);
  CHECK(out == message('y', 12));
}

TEST_CASE("messages retire after `limit` transmissions") {
  BroadcastQueue q;
  q.push("a", message('a', 10));
  for (int i = 0; i < 3; ++i) {
    Bytes out;
    CHECK(q.fill(out, 100, 3) == 10);
  }
  CHECK(q.empty());
  CHECK(q.transmits("a") == -1);
  Bytes out;
  CHECK(q.fill(out, 100, 3) == 0);
}

TEST_CASE("a packet is filled to its budget, skipping what does not fit") {
  BroadcastQueue q;
  q.push("big", message('B', 60));
  q.push("small1", message('s', 20));
  q.push("small2", message('t', 20));
  Bytes out;
  // 50 bytes: small2 (20, newest) and small1 (20) fit; big does not.
  CHECK(q.fill(out, 50, 5) == 40);
  CHECK(out.size() == 40);
  CHECK(q.transmits("big") == 0);
  CHECK(q.transmits("small1") == 1);
  out.clear();
  CHECK(q.fill(out, 10, 5) == 0);  // nothing is that small
  CHECK(out.empty());
}

TEST_CASE("a second fill of the same packet does not repeat a message") {
  BroadcastQueue q;
  q.push("a", message('a', 10));
  q.push("b", message('b', 10));
  Bytes out;
  CHECK(q.fill(out, 10, 5, 7) == 10);   // b, under its share
  CHECK(q.fill(out, 100, 5, 7) == 10);  // the rest of the room: a only, not b again
  CHECK(out.size() == 20);
  CHECK(q.transmits("a") == 1);
  CHECK(q.transmits("b") == 1);
  CHECK(q.fill(out, 100, 5, 8) == 20);  // the next packet carries both
}

TEST_CASE("a fill with `since` skips what packets since then carried (a gossip round's extra packets)") {
  BroadcastQueue q;
  q.push("a", message('a', 10));
  q.push("b", message('b', 10));
  q.push("c", message('c', 10));
  Bytes out;
  CHECK(q.fill(out, 10, 5, 7) == 10);  // the round's first packet: c
  CHECK(q.fill(out, 10, 5, 8) == 10);  // its second: b
  // Extra packets of the round, which began at packet 7: a, then nothing,
  // though c and b are still queued with fewer transmissions than the limit.
  CHECK(q.fill(out, 100, 5, 9, 7) == 10);
  CHECK(q.fill(out, 100, 5, 10, 7) == 0);
  CHECK(q.transmits("a") == 1);
  CHECK(q.transmits("b") == 1);
  CHECK(q.transmits("c") == 1);
  CHECK(q.fill(out, 100, 5, 11, 11) == 30);  // the next round carries all three
}

TEST_CASE("erase and clear") {
  BroadcastQueue q;
  q.push("a", message('a', 1));
  q.push("b", message('b', 1));
  q.erase("a");
  CHECK(order_of(q) == "b");
  q.clear();
  CHECK(q.empty());
}

}  // namespace
}  // namespace mixlb::gossip
