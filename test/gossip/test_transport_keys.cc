// Key requests through the libuv transport, on loopback: three transports
// rotate the cluster key from one of them (list, install, use, remove) with
// every member answering, each keyring handler reporting every change and
// keys() following it; a fourth transport that has only the old key then
// cannot join. And key_request_async's answers: exactly once, on the right
// thread, before start, refused by the core, with the result, when stop()
// comes first, and after stop. Every transport stops with a clean loop close.
#include <doctest/doctest.h>

#include <chrono>
#include <mutex>
#include <ostream>  // doctest prints std::error_code through it
#include <string>
#include <thread>
#include <vector>

#include "error.h"
#include "transport.h"
#include "transport_harness.h"

namespace mixlb::gossip {
namespace {

using namespace std::chrono_literals;
using namespace transport_harness;

// The loopback options, with key requests that re-ask and give up quickly.
TransportOptions keyed(const std::string& name, const Key& key = kKey) {
  TransportOptions o = fast_options(name, key);
  o.config.key_request_retry = 100ms;
  o.config.key_request_timeout = 2s;
  return o;
}

std::uint64_t refused(const TransportSnapshot& s) {
  return s.core.drops[static_cast<std::size_t>(DropReason::kNoKeyAuthenticates)];
}

TEST_CASE(
    "three transports rotate the cluster key from one of them; a fourth with only the old key "
    "cannot join afterwards") {
  const Key new_key = generate_key();
  Node a(keyed("a")), b(keyed("b")), c(keyed("c"));
  const Address seed = a.start();
  b.start({seed});
  c.start({seed});
  const std::vector<Node*> nodes{&a, &b, &c};
  for (Node* n : nodes) REQUIRE(eventually([&] { return n->alive_members() == 3; }));
  CHECK(a.transport->keys() == std::vector<Key>{kKey});

  const auto listed = b.key_request(KeyOp::kList, std::nullopt);
  REQUIRE(listed.has_value());
  CHECK(listed->ok());
  REQUIRE(listed->answers.size() == 3);
  for (const auto& answer : listed->answers) CHECK(answer.keys == std::vector<KeyId>{key_id(kKey)});

  for (const auto& [op, key] : {std::pair{KeyOp::kInstall, new_key},
                                std::pair{KeyOp::kUse, new_key}, std::pair{KeyOp::kRemove, kKey}}) {
    CAPTURE(to_string(op));
    const auto result = b.key_request(op, key);
    REQUIRE(result.has_value());
    CHECK(result->ok());
    CHECK_FALSE(result->timed_out);
    CHECK(result->answers.size() == 3);
    MESSAGE(to_string(op)
            << ": every member answered within "
            << std::chrono::duration_cast<std::chrono::microseconds>(result->elapsed).count()
            << " µs");
    // An operator's steps are seconds apart. Back to back within a
    // millisecond, the second envelope of a `use` answer (sealed under the
    // old key too, swim.h) can land after the origin removed that key, and
    // counts as a drop below; let each step's last datagrams arrive first.
    std::this_thread::sleep_for(100ms);
  }

  const std::vector<std::vector<Key>> expected{{kKey, new_key}, {new_key, kKey}, {new_key}};
  for (Node* n : nodes) {
    // A member answers the origin, then reports its keyring change (the
    // answer leaves in the same drain, before the event is handed over), so
    // the last change may land just after the origin has every answer.
    CHECK(eventually([&] { return n->transport->keys() == std::vector<Key>{new_key}; }, 2s));
    CHECK(eventually([&] { return n->keyrings.changes() == expected; }, 2s));
    for (auto id : n->keyrings.threads()) CHECK(id != std::this_thread::get_id());
  }
  // Still one cluster, talking under the new key alone, and nothing dropped.
  std::this_thread::sleep_for(500ms);
  for (Node* n : nodes) {
    CHECK(n->alive_members() == 3);
    auto s = n->transport->snapshot();
    REQUIRE(s.has_value());
    CHECK(refused(*s) == 0);
  }

  // A member that was away for all of it, with the old key only.
  Node d(keyed("d", kKey));
  d.start({seed});
  CHECK(d.log.wait([&](const std::vector<Event>& events) {
    for (const auto& e : events) {
      const auto* r = std::get_if<SyncResult>(&e);
      if (r && r->peer == seed && r->purpose == SyncPurpose::kJoin) return bool(r->error);
    }
    return false;
  }));
  std::this_thread::sleep_for(500ms);
  CHECK(d.alive_members() == 1);
  CHECK_FALSE(a.member("d").has_value());
  auto s = a.transport->snapshot();
  REQUIRE(s.has_value());
  CHECK(refused(*s) >= 1);

  CHECK_FALSE(d.transport->stop());
  for (Node* n : {&c, &b, &a}) CHECK_FALSE(n->transport->stop());
}

// What one key_request_async() call got.
class KeyAnswers {
 public:
  std::function<void(Transport::KeyRequestResult)> record() {
    return [this](Transport::KeyRequestResult result) {
      std::lock_guard lock(mutex_);
      ++calls_;
      thread_ = std::this_thread::get_id();
      result_ = std::move(result);
    };
  }
  int calls() {
    std::lock_guard lock(mutex_);
    return calls_;
  }
  std::thread::id thread() {
    std::lock_guard lock(mutex_);
    return thread_;
  }
  Transport::KeyRequestResult result() {
    std::lock_guard lock(mutex_);
    return result_;
  }

 private:
  std::mutex mutex_;
  int calls_ = 0;
  std::thread::id thread_;
  Transport::KeyRequestResult result_ = std::unexpected(std::error_code());
};

TEST_CASE(
    "key_request_async answers exactly once: before start, refused by the core, with the result, "
    "with kLeft when stop() comes first, and after stop") {
  const auto here = std::this_thread::get_id();
  // Suspicions that outlast the test, so a silent member stays one the
  // origin waits for.
  auto options = keyed("a");
  options.config.suspicion_mult = 50;
  Node a(std::move(options));

  KeyAnswers before_start;
  a.transport->key_request_async(KeyOp::kList, std::nullopt, before_start.record());
  CHECK(before_start.calls() == 1);
  CHECK(before_start.thread() == here);
  CHECK(before_start.result().error() == std::errc::not_connected);
  CHECK(a.transport->keys() == std::vector<Key>{kKey});

  const Address seed = a.start();
  // A use of a key this node lacks would cut it off: refused by the core,
  // on the transport thread, and nothing changes.
  const auto refusal = a.key_request(KeyOp::kUse, kOtherKey);
  CHECK(refusal.error() == Errc::kKeyNotInstalled);
  CHECK(a.key_request(KeyOp::kList, kKey).error() == Errc::kBadValue);
  const auto alone = a.key_request(KeyOp::kList, std::nullopt);
  REQUIRE(alone.has_value());
  CHECK(alone->ok());
  CHECK(alone->answers.size() == 1);
  CHECK(a.keyrings.changes().empty());

  // b joins and goes quiet: a still counts it as a member that owes an
  // answer, so the install below is pending when a stops.
  Node b(keyed("b"));
  b.start({seed});
  REQUIRE(eventually([&] { return a.alive_members() == 2; }));
  CHECK_FALSE(b.transport->stop(StopMode::kQuiet));
  KeyAnswers pending;
  a.transport->key_request_async(KeyOp::kInstall, kOtherKey, pending.record());
  // a applied it to itself at once.
  CHECK(eventually([&] { return a.transport->keys().size() == 2; }, 2s));
  CHECK(pending.calls() == 0);
  // One request at a time: another one meanwhile is refused.
  CHECK(a.key_request(KeyOp::kList, std::nullopt).error() == Errc::kBusy);
  CHECK_FALSE(a.transport->stop());
  CHECK(pending.calls() == 1);
  CHECK(pending.thread() != here);
  CHECK(pending.result().error() == Errc::kLeft);

  KeyAnswers after_stop;
  a.transport->key_request_async(KeyOp::kList, std::nullopt, after_stop.record());
  CHECK(after_stop.calls() == 1);
  CHECK(after_stop.thread() == here);
  CHECK(after_stop.result().error() == Errc::kLeft);
  // The last keys the transport thread reported.
  CHECK(a.transport->keys() == std::vector<Key>{kKey, kOtherKey});
  std::this_thread::sleep_for(100ms);
  CHECK(pending.calls() == 1);
  CHECK(before_start.calls() == 1);
}

}  // namespace
}  // namespace mixlb::gossip
