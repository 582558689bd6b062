// Running a Redis test: `co_run(body)` runs the coroutine `body()` on a fresh io_context for
// bounded time; an exception or a hang fails the case. `run_until` and `describe` come from
// the core's test support.
#ifndef ASIO_FUTURES_TEST_REDIS_SUPPORT_REDIS_TEST_HPP
#define ASIO_FUTURES_TEST_REDIS_SUPPORT_REDIS_TEST_HPP

#include "support/co_test.hpp"
#include "support/redis_server.hpp"

#include <asio_futures/error.hpp>
#include <asio_futures/future.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <exception>
#include <functional>

namespace asio_futures_test {

/// Hang guard of a Redis case (restarts and visibility timeouts take a few hundred ms).
inline constexpr std::chrono::seconds redis_timeout{30};

/// Runs `body()` (returning `asio::awaitable<void>`) on a fresh io_context for at most
/// `timeout`, then lets the closing connections finish their posted work.
template <class Body>
void co_run(Body body, std::chrono::steady_clock::duration timeout = redis_timeout) {
  bool finished = false;
  std::exception_ptr error;
  {
    asio::io_context ioc;
    asio::co_spawn(ioc, body(), [&](std::exception_ptr e) {
      finished = true;
      error = std::move(e);
    });
    run_until(
        ioc, [&] { return finished; }, timeout);
    poll(ioc); // the closes the body's objects posted on their way out
  }
  if (!finished)
    BOOST_ERROR("redis test body did not finish in time (hang)");
  else if (error)
    BOOST_ERROR("redis test body threw: " << describe(error));
}

/// Waits (in a coroutine) until `pred()` holds, checking every `step`, for at most
/// `timeout`; returns `pred()`. For conditions observed in Redis or across connections,
/// where no event tells us.
template <class Pred>
asio::awaitable<bool> eventually(Pred pred,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10),
                                 std::chrono::milliseconds step = std::chrono::milliseconds(5)) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline)
      co_return pred();
    t.expires_after(step);
    co_await t.async_wait(asio::use_awaitable);
  }
  co_return true;
}

/// The exception a future failed with (nullptr if it succeeded); awaits it first.
template <class T> asio::awaitable<std::exception_ptr> outcome_of(asio_futures::future<T> f) {
  try {
    co_await f.async_wait(asio::use_awaitable);
  } catch (...) {
    co_return std::current_exception();
  }
  co_return nullptr;
}

} // namespace asio_futures_test

#endif // ASIO_FUTURES_TEST_REDIS_SUPPORT_REDIS_TEST_HPP
