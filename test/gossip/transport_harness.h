#pragma once
// What the transport tests share: fast protocol options for loopback, a
// node that records what its handlers deliver, and waiting for a condition
// with a deadline. Each transport test file builds real transports on
// loopback from these.
#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "transport.h"

namespace mixlb::gossip::transport_harness {

using namespace std::chrono_literals;

inline Bytes bytes_of(std::string_view text) { return Bytes(text.begin(), text.end()); }

inline const Key kKey = [] {
  Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i + 1);
  return key;
}();
inline const Key kOtherKey = [] {
  Key key{};
  key.fill(0x5a);
  return key;
}();
inline constexpr const char* kCluster = "transport-test";

// Protocol timing ten times faster than the defaults, for loopback.
inline TransportOptions fast_options(const std::string& name, std::optional<Key> key = kKey,
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

  // Waits for a member event that `match` accepts, at index `from` or later.
  bool saw(const std::function<bool(const MemberEvent&)>& match,
           std::chrono::milliseconds timeout = 10s, std::size_t from = 0) {
    return wait(
        [&](const std::vector<Event>& events) {
          for (std::size_t i = from; i < events.size(); ++i) {
            const auto* m = std::get_if<MemberEvent>(&events[i]);
            if (m && match(*m)) return true;
          }
          return false;
        },
        timeout);
  }

  bool saw_member(MemberEventKind kind, const std::string& name,
                  std::chrono::milliseconds timeout = 10s, std::size_t from = 0) {
    return saw([&](const MemberEvent& m) { return m.kind == kind && m.member.name == name; },
               timeout, from);
  }

  std::size_t size() {
    std::lock_guard lock(mutex_);
    return events_.size();
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

// Collects the key lists a transport's keyring handler reports.
class KeyringLog {
 public:
  Transport::KeyringHandler handler() {
    return [this](KeyringChanged changed) {
      std::lock_guard lock(mutex_);
      changes_.push_back(std::move(changed.keys));
      threads_.push_back(std::this_thread::get_id());
    };
  }
  std::vector<std::vector<Key>> changes() {
    std::lock_guard lock(mutex_);
    return changes_;
  }
  std::vector<std::thread::id> threads() {
    std::lock_guard lock(mutex_);
    return threads_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::vector<Key>> changes_;
  std::vector<std::thread::id> threads_;
};

struct Node {
  EventLog log;
  KeyringLog keyrings;
  std::unique_ptr<Transport> transport;

  explicit Node(TransportOptions options) {
    transport = std::make_unique<Transport>(std::move(options), log.handler(), keyrings.handler());
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
  // What this node holds about `name` now.
  std::optional<Member> member(const std::string& name) {
    auto s = transport->snapshot();
    REQUIRE(s.has_value());
    for (const auto& m : s->members) {
      if (m.name == name) return m;
    }
    return std::nullopt;
  }
  // Runs a key request with this node as its origin and waits for its
  // answer; timed_out when none came within `timeout`.
  Transport::KeyRequestResult key_request(KeyOp op, std::optional<Key> key,
                                          std::chrono::milliseconds timeout = 20s) {
    // Shared: after a timeout here the transport thread still answers.
    auto answer = std::make_shared<std::promise<Transport::KeyRequestResult>>();
    auto future = answer->get_future();
    transport->key_request_async(op, key, [answer](Transport::KeyRequestResult result) {
      answer->set_value(std::move(result));
    });
    if (future.wait_for(timeout) != std::future_status::ready) {
      return std::unexpected(std::make_error_code(std::errc::timed_out));
    }
    return future.get();
  }
};

// Whether `events` hold a member event of this kind about `name`.
inline bool has_member_event(const std::vector<Event>& events, MemberEventKind kind,
                             const std::string& name) {
  for (const auto& e : events) {
    const auto* m = std::get_if<MemberEvent>(&e);
    if (m && m->kind == kind && m->member.name == name) return true;
  }
  return false;
}

inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

}  // namespace mixlb::gossip::transport_harness
