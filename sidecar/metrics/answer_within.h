#pragma once
// Awaits an answer that arrives through a callback — from the gossip
// thread, say — for at most a deadline, without blocking the io_context:
//
//   const std::function<void(std::function<void(Result)>)> ask =
//       [&](auto done) { gossip.snapshot(std::move(done)); };
//   auto snapshot = co_await answer_within<Result>(executor, 1s, ask);
//
// Name `ask` as above rather than writing the lambda in the co_await
// expression: g++ 12 destroys a temporary made there to convert an
// argument of a coroutine (the lambda, converted to std::function) twice,
// so whatever the lambda captured by value is released twice (seen with
// Boost 1.74; test_answer_within.cc checks the named form).
//
// nullopt means no answer in time. The answer is posted to the executor
// before it is stored, so `done` may be called from any thread, at once or
// late; one that comes after the deadline is dropped. Boost 1.74 has no
// awaitable operators to race an operation against a timer, so the wait is
// a timer that the answer cancels.
//
// The executor must run its handlers one at a time (an io_context run by
// one thread, or a strand), as the sidecar's does.
// clang-format off
// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>
// clang-format on

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>

namespace mixlb::metrics {

template <typename T>
boost::asio::awaitable<std::optional<T>> answer_within(
    boost::asio::any_io_executor executor, std::chrono::steady_clock::duration deadline,
    std::function<void(std::function<void(T)>)> ask) {
  namespace asio = boost::asio;
  struct Wait {
    explicit Wait(const asio::any_io_executor& e) : timer(e) {}
    asio::steady_timer timer;
    std::optional<T> answer;
    bool expired = false;
  };
  auto wait = std::make_shared<Wait>(executor);
  wait->timer.expires_after(deadline);
  ask([wait, executor](T answer) {
    asio::post(executor, [wait, answer = std::move(answer)]() mutable {
      if (wait->expired || wait->answer) return;
      wait->answer = std::move(answer);
      wait->timer.cancel();
    });
  });
  boost::system::error_code ec;
  co_await wait->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  wait->expired = true;
  co_return std::move(wait->answer);
}

}  // namespace mixlb::metrics
