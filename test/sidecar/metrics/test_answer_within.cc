// answer_within: an answer from another thread arrives on the io_context's
// thread; no answer, or a late one, gives nullopt at the deadline and
// nothing afterwards; the io_context is never blocked while it waits.
// clang-format off
// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>
// clang-format on

#include <doctest/doctest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <thread>

#include "common/log_failure.h"
#include "metrics/answer_within.h"

namespace mixlb::metrics {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Outcome {
  bool finished = false;
  std::optional<int> answer;
  Clock::duration waited{};
};

// Awaits answer_within with `ask` on `io` and records what came back.
void await_answer(asio::io_context& io, Outcome& out, Clock::duration deadline,
                  std::function<void(std::function<void(int)>)> ask) {
  asio::co_spawn(
      io,
      [&out, &io, deadline, ask]() -> asio::awaitable<void> {
        const auto started = Clock::now();
        out.answer = co_await answer_within<int>(io.get_executor(), deadline, ask);
        out.waited = Clock::now() - started;
        out.finished = true;
      },
      log_failure("answer_within test"));
}

TEST_CASE("an answer from another thread arrives on the io_context's thread, before the deadline") {
  asio::io_context io;
  Outcome out;
  std::thread answerer;
  await_answer(io, out, 5s, [&](std::function<void(int)> done) {
    answerer = std::thread([done] {
      std::this_thread::sleep_for(20ms);
      done(42);
    });
  });
  // A timer on the same io_context keeps firing while the answer is awaited.
  asio::steady_timer tick(io, 5ms);
  int ticks = 0;
  std::function<void(const boost::system::error_code&)> on_tick =
      [&](const boost::system::error_code&) {
        if (out.finished) return;
        ++ticks;
        tick.expires_after(5ms);
        tick.async_wait(on_tick);
      };
  tick.async_wait(on_tick);
  io.run_for(3s);
  answerer.join();
  REQUIRE(out.finished);
  CHECK(out.answer == 42);
  CHECK(out.waited < 1s);
  CHECK(ticks >= 2);
}

TEST_CASE("no answer: nullopt at the deadline") {
  asio::io_context io;
  Outcome out;
  std::function<void(int)> kept;  // held, never called
  await_answer(io, out, 50ms, [&](std::function<void(int)> done) { kept = std::move(done); });
  io.run_for(3s);
  REQUIRE(out.finished);
  CHECK_FALSE(out.answer.has_value());
  CHECK(out.waited >= 50ms);
  CHECK(out.waited < 1s);
}

TEST_CASE("an answer given at once, while asking, is not missed") {
  asio::io_context io;
  Outcome out;
  await_answer(io, out, 5s, [](std::function<void(int)> done) { done(7); });
  io.run_for(3s);
  REQUIRE(out.finished);
  CHECK(out.answer == 7);
  CHECK(out.waited < 1s);
}

TEST_CASE("a late answer is dropped; the waiter has long moved on") {
  asio::io_context io;
  Outcome out;
  std::function<void(int)> kept;
  await_answer(io, out, 20ms, [&](std::function<void(int)> done) { kept = std::move(done); });
  io.run_for(3s);
  REQUIRE(out.finished);
  CHECK_FALSE(out.answer.has_value());
  io.restart();
  kept(99);  // after the deadline: posted, then ignored
  CHECK(io.run_for(100ms) == 1);
  CHECK_FALSE(out.answer.has_value());
}

TEST_CASE("what `ask` captures by value is released once, when the answer has come") {
  asio::io_context io;
  auto held = std::make_shared<int>(7);
  std::optional<int> answer;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        // Named, as answer_within.h asks: not a temporary of the co_await.
        const std::function<void(std::function<void(int)>)> ask =
            [held](std::function<void(int)> done) { done(*held); };
        const asio::any_io_executor executor = io.get_executor();
        answer = co_await answer_within<int>(executor, 5s, ask);
      },
      log_failure("answer_within test"));
  io.run_for(3s);
  CHECK(answer == 7);
  CHECK(held.use_count() == 1);
}

}  // namespace
}  // namespace mixlb::metrics
