// Coroutine test helpers: CO_TEST_CASE, run_until and io_context stepping.
//
// CO_TEST_CASE(name) is cobalt's idea on plain Asio: the body is an
// asio::awaitable<void>, spawned on a fresh io_context that is run for bounded time. An
// exception escaping the body fails the case; so does a body that has not finished when
// the time bound expires (the io_context is then destroyed, which destroys the suspended
// coroutine frame, so a hang fails the case instead of blocking the whole run).
//
// The time bound is a hang guard, never a timing assertion: a correct test finishes in
// microseconds, a broken one fails after `default_timeout`.
#ifndef ASIO_FUTURES_TEST_SUPPORT_CO_TEST_HPP
#define ASIO_FUTURES_TEST_SUPPORT_CO_TEST_HPP

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

namespace asio_futures_test {

namespace asio = boost::asio;

/// Hang guard for everything that waits; a correct test never gets close to it.
inline constexpr std::chrono::seconds default_timeout{10};

/// Describes an exception_ptr for a failure message.
inline std::string describe(const std::exception_ptr& e) {
  if (!e)
    return "no exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return std::string("exception: ") + ex.what();
  } catch (...) {
    return "non-std exception";
  }
}

/// Runs `ioc` (one handler at a time) until `pred()` holds or `timeout` has passed.
/// Returns `pred()`. Restarts the context if it ran out of work, so work arriving from
/// another thread (a future set by a foreign thread) is still picked up.
template <class Pred>
bool run_until(asio::io_context& ioc, Pred&& pred,
               std::chrono::steady_clock::duration timeout = default_timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return pred();
    if (ioc.stopped())
      ioc.restart();
    if (ioc.run_one_until(deadline) == 0 && ioc.stopped()) {
      // No work at all: nothing local can make progress, but another thread may still
      // post. Yield instead of spinning hot; this is not a synchronisation sleep.
      std::this_thread::yield();
    }
  }
  return true;
}

/// Runs every handler that is ready now (restarting a stopped context first).
/// Returns the number of handlers run.
inline std::size_t poll(asio::io_context& ioc) {
  ioc.restart();
  return ioc.poll();
}

/// Runs at most one ready handler (restarting a stopped context first).
inline std::size_t poll_one(asio::io_context& ioc) {
  ioc.restart();
  return ioc.poll_one();
}

/// Runs ready handlers, then reports whether the context still has outstanding work
/// (i.e. whether `ioc.run()` would block instead of returning). Asio's poll() stops a
/// context that starts without outstanding work, which is what this observes.
inline bool has_outstanding_work(asio::io_context& ioc) {
  poll(ioc);
  ioc.restart();
  ioc.poll();
  const bool work = !ioc.stopped();
  ioc.restart();
  return work;
}

/// Yields the current coroutine once: resumes on the next turn of its executor.
inline asio::awaitable<void> yield_once() {
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
}

/// Yields the current coroutine `n` times (lets other handlers run in between).
inline asio::awaitable<void> yield_n(int n) {
  for (int i = 0; i < n; ++i)
    co_await yield_once();
}

/// Runs `body` as a coroutine on a fresh io_context for at most `timeout`.
inline void run_co_test(asio::awaitable<void> (*body)(),
                        std::chrono::steady_clock::duration timeout = default_timeout) {
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
    // Leaving the scope destroys the context and with it an unfinished coroutine frame.
  }
  if (!finished) {
    BOOST_ERROR("coroutine test body did not finish in time (hang)");
    return;
  }
  if (error)
    BOOST_ERROR("coroutine test body threw: " << describe(error));
}

/// A thread whose completion is awaited for bounded time: `join_for` joins it and
/// rethrows what it threw; on a hang it detaches it (so the case fails instead of
/// blocking) and returns false.
class bounded_thread {
public:
  template <class F> explicit bounded_thread(F f) {
    std::packaged_task<void()> task(std::move(f));
    done_ = task.get_future();
    thread_ = std::thread(std::move(task));
  }
  bounded_thread(const bounded_thread&) = delete;
  bounded_thread& operator=(const bounded_thread&) = delete;
  ~bounded_thread() {
    if (thread_.joinable()) {
      if (done_.wait_for(default_timeout) == std::future_status::ready)
        thread_.join();
      else
        thread_.detach();
    }
  }

  /// True when the thread finished in time (rethrowing its exception, if any).
  bool join_for(std::chrono::steady_clock::duration timeout = default_timeout) {
    if (done_.wait_for(timeout) != std::future_status::ready) {
      thread_.detach();
      return false;
    }
    thread_.join();
    done_.get();
    return true;
  }

private:
  std::future<void> done_;
  std::thread thread_;
};

} // namespace asio_futures_test

/// Defines a Boost.Test case whose body is an `asio::awaitable<void>` run on a fresh
/// io_context (see the file comment). Use `co_await asio::this_coro::executor` for the
/// executor.
#define CO_TEST_CASE(name)                                                                         \
  static ::boost::asio::awaitable<void> name##_co_body();                                          \
  BOOST_AUTO_TEST_CASE(name) {                                                                     \
    ::asio_futures_test::run_co_test(&name##_co_body);                                             \
  }                                                                                                \
  static ::boost::asio::awaitable<void> name##_co_body()

#endif // ASIO_FUTURES_TEST_SUPPORT_CO_TEST_HPP
