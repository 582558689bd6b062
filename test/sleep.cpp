// Tests for <asio_futures/sleep.hpp>: sleep.
//
// Timing-independent: a timer never fires early, so "not done before d elapsed" and "done
// after running the context" are the only facts checked about time; long sleeps are
// cancelled, never waited for.
#include <asio_futures/sleep.hpp>

#include "support/alloc_fault.hpp"
#include "support/checks.hpp"
#include "support/co_test.hpp"

#include <asio_futures/task.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace asio = boost::asio;
namespace af = asio_futures;
namespace aft = asio_futures_test;

using namespace std::chrono_literals;

namespace {

using aft::cancel_message;
using aft::holds;

using io_ex = asio::io_context::executor_type;

static_assert(std::is_same_v<decltype(af::sleep(std::declval<io_ex>(), 1ms)), af::future<void>>);
static_assert(
    std::is_same_v<decltype(af::sleep(std::declval<asio::io_context&>(), 1s, 1)), af::future<int>>);
static_assert(std::is_same_v<decltype(af::sleep(std::declval<io_ex>(), 1ms, std::string("x"))),
                             af::future<std::string>>);

asio::awaitable<void> await_sleep(af::future<void> s) {
  co_await s.async_wait();
}

} // namespace

BOOST_AUTO_TEST_SUITE(sleep_)

BOOST_AUTO_TEST_CASE(resolves_after_the_duration) {
  asio::io_context ioc;
  const auto start = std::chrono::steady_clock::now();
  af::future<void> s = af::sleep(ioc, 2ms);
  BOOST_TEST(!s.done());
  BOOST_TEST((s.get_executor() == asio::any_io_executor(ioc.get_executor())));
  ioc.run(); // the timer is the only work: run() returns once it fired
  BOOST_TEST_REQUIRE(s.done());
  BOOST_TEST(!s.cancelled());
  BOOST_TEST((std::chrono::steady_clock::now() - start >= 2ms)); // timers never fire early
}

CO_TEST_CASE(value_form_resolves_to_the_value) {
  auto ex = co_await asio::this_coro::executor;
  int v = co_await af::sleep(ex, 1ms, 42).async_wait();
  BOOST_TEST(v == 42);
  std::string s = co_await af::sleep(ex, 0ms, std::string("now")).async_wait();
  BOOST_TEST(s == "now");
  auto p = co_await af::sleep(ex, 1us, std::make_unique<int>(7)).async_wait();
  BOOST_TEST(*p == 7);
}

CO_TEST_CASE(void_form_in_a_coroutine) {
  auto ex = co_await asio::this_coro::executor;
  co_await af::sleep(ex, 1ms).async_wait();
}

BOOST_AUTO_TEST_CASE(zero_or_negative_duration_resolves_on_the_next_turn) {
  asio::io_context ioc;
  af::future<void> zero = af::sleep(ioc, 0s);
  af::future<int> negative = af::sleep(ioc.get_executor(), -5ms, 3);
  BOOST_TEST(!zero.done()); // like asyncio.sleep(0): it yields
  BOOST_TEST(!negative.done());
  BOOST_TEST(aft::poll_one(ioc) == 1u);
  BOOST_TEST(zero.done());
  aft::poll_one(ioc);
  BOOST_TEST(negative.result() == 3);
}

BOOST_AUTO_TEST_CASE(cancel_while_pending_cancels_the_timer) {
  asio::io_context ioc;
  af::future<void> s = af::sleep(ioc, 1h);
  BOOST_TEST(aft::has_outstanding_work(ioc)); // the pending timer
  BOOST_TEST(s.cancel("wake up"));
  BOOST_TEST(s.cancelled());
  BOOST_TEST((cancel_message(aft::thrown_by([&] { s.result(); })) ==
              std::optional<std::string>("wake up")));
  // The aborted timer wait completes on the next turn and nothing stays scheduled.
  BOOST_TEST(!aft::has_outstanding_work(ioc));
  BOOST_TEST(!s.cancel());
}

BOOST_AUTO_TEST_CASE(cancel_from_another_thread_lets_run_return) {
  asio::io_context ioc;
  af::future<void> s = af::sleep(ioc, 1h);
  af::future<int> v = af::sleep(ioc, 1h, 1);
  aft::bounded_thread canceller([&] {
    // run() has nothing but the two timers: it returns only once both are cancelled.
    s.cancel("from a thread");
    v.cancel();
  });
  aft::watchdog guard([&] { ioc.stop(); });
  ioc.run();
  BOOST_TEST(!guard.fired());
  BOOST_TEST_REQUIRE(canceller.join_for());
  BOOST_TEST(s.cancelled());
  BOOST_TEST(v.cancelled());
}

BOOST_AUTO_TEST_CASE(cancel_before_a_zero_sleep_ran) {
  asio::io_context ioc;
  af::future<void> s = af::sleep(ioc, 0s);
  s.cancel();
  ioc.run(); // the posted turn runs and finds the future cancelled
  BOOST_TEST(s.cancelled());
}

BOOST_AUTO_TEST_CASE(cancelling_the_awaiting_task_cancels_the_sleep) {
  asio::io_context ioc;
  af::future<void> s = af::sleep(ioc, 1h);
  af::task<void> t = af::create_task(ioc, await_sleep(s));
  aft::poll(ioc); // t awaits the sleep
  t.cancel("task stop");
  aft::watchdog guard([&] { ioc.stop(); });
  ioc.run(); // returns: the timer was cancelled
  BOOST_TEST(!guard.fired());
  BOOST_TEST(t.cancelled());
  BOOST_TEST(s.cancelled());
  BOOST_TEST((cancel_message(aft::thrown_by([&] { s.result(); })) ==
              std::optional<std::string>("task stop")));
}

CO_TEST_CASE(cancelling_an_await_of_a_sleep_through_a_task) {
  auto ex = co_await asio::this_coro::executor;
  af::task<void> t = af::create_task(ex, await_sleep(af::sleep(ex, 1h)));
  co_await aft::yield_n(2);
  t.cancel();
  try {
    co_await t.async_wait();
    BOOST_ERROR("the task was not cancelled");
  } catch (const af::cancelled_error&) {
  }
}

BOOST_AUTO_TEST_CASE(destroying_the_context_with_a_pending_sleep_cancels_it_without_leaks) {
  af::future<void> s;
  af::future<std::string> v;
  {
    asio::io_context ioc;
    s = af::sleep(ioc, 1h);
    v = af::sleep(ioc, 0s, std::string(64, 'v')); // posted, never run
  }
  BOOST_TEST(s.cancelled());
  BOOST_TEST(v.cancelled());
  BOOST_TEST(!s.cancel()); // nothing left to touch the dead context
  s = {};
  v = {}; // the states die after their context: nothing of it is touched (ASan)
}

BOOST_AUTO_TEST_CASE(a_sleep_resolves_itself_set_result_throws) {
  asio::io_context ioc;
  af::future<void> s = af::sleep(ioc, 1h);
  af::future<int> v = af::sleep(ioc, 1h, 1);
  BOOST_CHECK_THROW(s.set_result(), af::invalid_state_error);
  BOOST_CHECK_THROW(v.try_set_result(2), af::invalid_state_error);
  BOOST_CHECK_THROW(v.set_exception(std::runtime_error("no")), af::invalid_state_error);
  BOOST_TEST(!s.done());
  s.cancel();
  v.cancel();
  BOOST_TEST(!aft::has_outstanding_work(ioc));
}

BOOST_AUTO_TEST_CASE(sleep_on_a_shut_down_context_throws) {
  aft::closable_context ioc;
  { af::future<int> touch(ioc); } // the context's service knows about the shutdown
  ioc.shutdown();
  BOOST_CHECK_THROW(af::sleep(ioc, 1ms), af::invalid_state_error);
}

BOOST_AUTO_TEST_CASE(empty_executor_throws_invalid_argument) {
  BOOST_CHECK_THROW(af::sleep(asio::any_io_executor(), 1ms), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(strand_and_thread_pool_executors) {
  asio::thread_pool pool(2);
  auto strand = asio::make_strand(pool);
  af::future<int> a = af::sleep(strand, 1ms, 1);
  af::future<int> b = af::sleep(pool, 1ms, 2);
  af::future<void> c = af::sleep(pool.get_executor(), 1h);
  BOOST_TEST(a.get() == 1);
  BOOST_TEST(b.get() == 2);
  c.cancel();
  pool.join(); // returns: the cancelled timer keeps no work
  BOOST_TEST(c.cancelled());
}

BOOST_AUTO_TEST_CASE(stress_cancel_races_with_expiry_on_a_multi_threaded_context) {
  constexpr int rounds = 2000;
  asio::io_context ioc;
  std::vector<af::future<int>> sleeps;
  for (int r = 0; r < rounds; ++r)
    sleeps.push_back(af::sleep(ioc, std::chrono::microseconds(r % 50), r));
  std::atomic<bool> go{false};
  {
    aft::context_threads runners(ioc, 2);
    aft::bounded_thread canceller([&] {
      while (!go.load())
        std::this_thread::yield();
      for (int r = rounds - 1; r >= 0; --r)
        sleeps[r].cancel();
    });
    go = true;
    BOOST_TEST_REQUIRE(canceller.join_for());
    for (auto& s : sleeps)
      BOOST_TEST_REQUIRE(s.wait_for(aft::default_timeout));
  }
  for (int r = 0; r < rounds; ++r)
    if (!sleeps[r].cancelled())
      BOOST_TEST(sleeps[r].result() == r);
  // Every timer completed or was aborted: the context has nothing left.
  BOOST_TEST(!aft::has_outstanding_work(ioc));
}

BOOST_AUTO_TEST_CASE(an_allocation_failure_while_starting_a_sleep_reaches_the_caller) {
  // Every allocation sleep() makes fails in turn, on a fresh thread (whose Asio recycling
  // cache is empty, so the timer's operation is allocated too): each call throws bad_alloc
  // or returns a future; none hangs (the failed wait's handler once re-locked the mutex that
  // starting the wait held).
  asio::io_context ioc;
  const auto ex = ioc.get_executor();
  (void)af::sleep(ex, 0ms); // the context's services exist before the loop
  aft::poll(ioc);
  int failures = 0;
  for (std::size_t k = 1; k < 100; ++k) {
    bool fired = false;
    bool threw = false;
    af::future<void> f;
    aft::bounded_thread starter([&] {
      aft::allocation_fault fault(k);
      try {
        f = af::sleep(ex, std::chrono::hours(1));
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      fired = fault.fired();
    });
    BOOST_TEST_REQUIRE(starter.join_for()); // a hang fails here
    if (!fired)
      break; // k is beyond the allocations sleep() makes
    ++failures;
    BOOST_TEST(threw != f.valid());
    if (f.valid()) {
      BOOST_TEST(f.cancel());
      BOOST_TEST(aft::run_until(ioc, [&] { return f.done(); }));
    }
  }
  BOOST_TEST(failures >= 2); // the state and the timer's operation at least
}

BOOST_AUTO_TEST_SUITE_END()
