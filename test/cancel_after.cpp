// Tests for <asio_futures/cancel_after.hpp>: af::cancel_after / af::cancel_at on futures,
// tasks, gather, use_future and plain Asio operations; on Asio >= 1.32 (Boost 1.86) also
// Asio's own asio::cancel_after on asio_futures operations.
//
// Deadlines are real timers: an expiry case uses a deadline of a millisecond (or one in the
// past) on a future nobody sets, a completion case a deadline of an hour; no case asserts
// how long anything took.
#include <asio_futures/cancel_after.hpp>

#include <asio_futures/future.hpp>
#include <asio_futures/gather.hpp>
#include <asio_futures/task.hpp>
#include <asio_futures/use_future.hpp>

#include "support/checks.hpp"
#include "support/co_test.hpp"
#include "support/tracking.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/system_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/version.hpp>
#if BOOST_ASIO_VERSION >= 102800
#include <boost/asio/bind_immediate_executor.hpp>
#endif
#if BOOST_ASIO_VERSION >= 103200
#include <boost/asio/cancel_after.hpp>
#endif
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace asio = boost::asio;
namespace af = asio_futures;
namespace aft = asio_futures_test;

using namespace std::chrono_literals;

namespace {

/// The outcome a callback handler received, and how often it was called.
struct received {
  int calls = 0;
  std::exception_ptr error;
  int value = 0;
  auto handler() {
    return [this](std::exception_ptr e, int v) {
      ++calls;
      error = std::move(e);
      value = v;
    };
  }
};

/// Awaits `op`; the exception it ended with, or nullptr.
template <class T> asio::awaitable<std::exception_ptr> failure_of(asio::awaitable<T> op) {
  try {
    co_await std::move(op);
  } catch (...) {
    co_return std::current_exception();
  }
  co_return nullptr;
}

/// A task body that waits an hour on a timer and records that the wait was aborted.
asio::awaitable<int> wait_an_hour(std::atomic<bool>& aborted) {
  asio::steady_timer timer(co_await asio::this_coro::executor, 1h);
  try {
    co_await timer.async_wait(asio::use_awaitable);
  } catch (const boost::system::system_error& e) {
    aborted = e.code() == asio::error::operation_aborted;
    throw;
  }
  co_return 1;
}

} // namespace

BOOST_AUTO_TEST_SUITE(cancel_after_)

CO_TEST_CASE(expiry_with_terminal_cancels_the_awaited_future) {
  af::future<int> f(co_await asio::this_coro::executor);
  const std::exception_ptr e =
      co_await failure_of(f.async_wait(af::cancel_after(1ms, asio::use_awaitable)));
  BOOST_TEST(aft::holds<af::cancelled_error>(e));
  BOOST_TEST(f.cancelled()); // terminal cancels what is awaited (asyncio's rule)
}

CO_TEST_CASE(expiry_with_partial_detaches_only_the_waiter) {
  auto ex = co_await asio::this_coro::executor;
  af::future<int> f(ex);
  const std::exception_ptr e = co_await failure_of(
      f.async_wait(af::cancel_after(1ms, asio::cancellation_type::partial, asio::use_awaitable)));
  BOOST_TEST(aft::holds<af::cancelled_error>(e));
  BOOST_TEST(!f.done()); // the future itself is untouched
  f.set_result(5);
  BOOST_TEST(co_await f.async_wait() == 5);
}

BOOST_AUTO_TEST_CASE(completion_before_the_deadline_delivers_and_stops_the_timer) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  received r;
  f.async_wait(af::cancel_after(1h, r.handler()));
  BOOST_TEST(aft::poll(ioc) == 0); // nothing ready; the hour-long timer is pending
  f.set_result(7);
  BOOST_TEST(aft::run_until(ioc, [&] { return r.calls == 1; }));
  BOOST_TEST(!r.error);
  BOOST_TEST(r.value == 7);
  // The aborted timer wait ran too: no outstanding work (an hour-long timer) is left.
  BOOST_TEST(!aft::has_outstanding_work(ioc));
  BOOST_TEST(r.calls == 1);
}

BOOST_AUTO_TEST_CASE(a_done_future_completes_once_and_leaves_no_timer) {
  asio::io_context ioc;
  const auto f = af::make_ready_future(ioc.get_executor(), 3);
  received r;
  f.async_wait(af::cancel_after(1h, r.handler()));
  BOOST_TEST(r.calls == 0); // never inside the initiating call
  aft::poll(ioc);
  BOOST_TEST(r.calls == 1);
  BOOST_TEST(r.value == 3);
  BOOST_TEST(!aft::has_outstanding_work(ioc));
}

BOOST_AUTO_TEST_CASE(cancel_at_a_past_time_point_cancels_at_once) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  received r;
  f.async_wait(af::cancel_at(std::chrono::steady_clock::now() - 1s, r.handler()));
  BOOST_TEST(aft::run_until(ioc, [&] { return r.calls == 1; }));
  BOOST_TEST(aft::holds<af::cancelled_error>(r.error));
  BOOST_TEST(f.cancelled());
}

BOOST_AUTO_TEST_CASE(cancel_at_takes_any_clock) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  received r;
  f.async_wait(af::cancel_at(std::chrono::system_clock::now() + 1ms, asio::cancellation_type::total,
                             r.handler()));
  BOOST_TEST(aft::run_until(ioc, [&] { return r.calls == 1; }));
  BOOST_TEST(aft::holds<af::cancelled_error>(r.error));
  BOOST_TEST(!f.done()); // total, like partial, detaches the waiter only
}

CO_TEST_CASE(expiry_cancels_a_task_and_its_coroutine) {
  auto ex = co_await asio::this_coro::executor;
  std::atomic<bool> aborted{false};
  auto t = af::create_task(ex, wait_an_hour(aborted));
  const std::exception_ptr e =
      co_await failure_of(t.async_wait(af::cancel_after(1ms, asio::use_awaitable)));
  BOOST_TEST(aft::holds<af::cancelled_error>(e));
  while (!t.done())
    co_await aft::yield_once();
  BOOST_TEST(t.cancelled());
  BOOST_TEST(aborted.load()); // the coroutine's own timer wait was aborted
}

CO_TEST_CASE(expiry_cancels_every_child_of_a_gather) {
  auto ex = co_await asio::this_coro::executor;
  af::future<int> a(ex);
  af::future<int> b(ex);
  auto all = af::gather(a, b);
  const std::exception_ptr e =
      co_await failure_of(all.async_wait(af::cancel_after(1ms, asio::use_awaitable)));
  BOOST_TEST(aft::holds<af::cancelled_error>(e));
  BOOST_TEST(a.cancelled());
  BOOST_TEST(b.cancelled());
}

CO_TEST_CASE(adapts_use_future_on_an_asio_operation) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex, 1h);
  af::future<void> f = timer.async_wait(af::cancel_after(1ms, af::use_future));
  const std::exception_ptr e = co_await failure_of(f.async_wait());
  BOOST_TEST(aft::holds<af::cancelled_error>(e)); // operation_aborted, as a system_error
}

BOOST_AUTO_TEST_CASE(adapts_deferred_and_as_tuple) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  auto op = f.async_wait(af::cancel_after(1ms, asio::deferred));
  std::optional<std::exception_ptr> got;
  std::move(op)(
      asio::as_tuple([&](std::tuple<std::exception_ptr, int> t) { got = std::get<0>(t); }));
  BOOST_TEST(aft::run_until(ioc, [&] { return got.has_value(); }));
  BOOST_TEST(aft::holds<af::cancelled_error>(*got));
}

BOOST_AUTO_TEST_CASE(partial_form_adapts_the_default_token) {
  // `af::cancel_after(d)` stands for the operation's default completion token adapted:
  // asio::deferred on every Asio this library supports.
  asio::io_context ioc;
  const af::future<int> f(ioc);
  auto op = f.async_wait(af::cancel_after(1ms));
  received r;
  std::move(op)(r.handler());
  BOOST_TEST(aft::run_until(ioc, [&] { return r.calls == 1; }));
  BOOST_TEST(aft::holds<af::cancelled_error>(r.error));
}

BOOST_AUTO_TEST_CASE(the_adapted_tokens_cancellation_slot_is_forwarded) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  asio::cancellation_signal signal;
  received r;
  f.async_wait(af::cancel_after(1h, asio::bind_cancellation_slot(signal.slot(), r.handler())));
  aft::poll(ioc);
  signal.emit(asio::cancellation_type::terminal);
  BOOST_TEST(aft::run_until(ioc, [&] { return r.calls == 1; }));
  BOOST_TEST(aft::holds<af::cancelled_error>(r.error));
  BOOST_TEST(f.cancelled());
  BOOST_TEST(!aft::has_outstanding_work(ioc)); // and the timer was stopped
}

BOOST_AUTO_TEST_CASE(completion_and_expiry_run_on_the_handlers_executor) {
  asio::io_context ioc;
  aft::executor_stats stats;
  const aft::tracking_executor<asio::io_context::executor_type> tracked(ioc.get_executor(), stats);
  const af::future<int> f(ioc);
  received r;
  f.async_wait(af::cancel_after(1ms, asio::bind_executor(tracked, r.handler())));
  BOOST_TEST(aft::run_until(ioc, [&] { return r.calls == 1; }));
  BOOST_TEST(aft::holds<af::cancelled_error>(r.error));
  // Both the timer's handler (the expiry) and the completion went through it.
  BOOST_TEST(stats.runs.load() >= 2u);
}

BOOST_AUTO_TEST_CASE(destroying_the_context_with_the_wait_pending_frees_everything) {
  // Under LeakSanitizer this fails if the handler, the timer or the operation leaks.
  aft::instance_counters counters;
  {
    asio::io_context ioc;
    const af::future<int> f(ioc);
    aft::counted token(counters, 1);
    f.async_wait(af::cancel_after(1h, [token](std::exception_ptr, int) {}));
    aft::poll(ioc);
    BOOST_TEST(counters.live.load() >= 2); // ours and the handler's copy
  }
  BOOST_TEST(counters.live.load() == 0);
}

BOOST_AUTO_TEST_CASE(a_refused_initiation_propagates_and_frees_the_handler) {
  aft::instance_counters counters;
  {
    asio::io_context ioc;
    aft::closable_context closed;
    const af::future<int> seen(closed); // the library knows the context before it shuts down
    closed.shutdown();
    const af::future<int> f(ioc);
    aft::counted token(counters, 1);
    auto handler = asio::bind_executor(closed.get_executor(), [token](std::exception_ptr, int) {});
    BOOST_CHECK_THROW(f.async_wait(af::cancel_after(1h, std::move(handler))),
                      af::invalid_state_error);
    aft::poll(ioc);
  }
  BOOST_TEST(counters.live.load() == 0);
}

BOOST_AUTO_TEST_CASE(handler_allocator_memory_is_released_before_the_upcall) {
  // Asio's rule: storage from the handler's allocator (the operation's and the timer wait's)
  // is freed before the handler runs, in both the completion and the expiry case.
  for (const bool expire : {false, true}) {
    asio::io_context ioc;
    const af::future<int> f(ioc);
    aft::allocator_stats stats;
    int calls = 0;
    bool balanced_at_upcall = false;
    f.async_wait(af::cancel_after(
        expire ? std::chrono::steady_clock::duration(1ms) : std::chrono::hours(1),
        asio::bind_allocator(aft::tracking_allocator<void>(stats), [&](std::exception_ptr, int) {
          ++calls;
          balanced_at_upcall = stats.balanced();
        })));
    BOOST_TEST(stats.allocations.load() > 0u);
    if (!expire)
      f.set_result(1);
    BOOST_TEST(aft::run_until(ioc, [&] { return calls == 1; }));
    BOOST_TEST(balanced_at_upcall);
    BOOST_TEST(f.cancelled() == expire);
  }
}

BOOST_AUTO_TEST_CASE(the_timer_runs_where_the_handler_runs) {
  // The future lives on a context nobody runs; the handler is bound to another. Its deadline
  // and its completion only need the handler's context.
  asio::io_context future_ctx;
  asio::io_context handler_ctx;
  const af::future<int> f(future_ctx);
  received r;
  f.async_wait(af::cancel_after(1ms, asio::bind_executor(handler_ctx, r.handler())));
  BOOST_TEST(aft::run_until(handler_ctx, [&] { return r.calls == 1; }));
  BOOST_TEST(aft::holds<af::cancelled_error>(r.error));
  BOOST_TEST(!aft::has_outstanding_work(handler_ctx));
}

BOOST_AUTO_TEST_CASE(either_context_may_be_destroyed_first) {
  aft::instance_counters counters;
  for (const bool future_ctx_first : {true, false}) {
    {
      auto future_ctx = std::make_unique<asio::io_context>();
      auto handler_ctx = std::make_unique<asio::io_context>();
      const af::future<int> f(*future_ctx);
      aft::counted token(counters, 1);
      int calls = 0;
      f.async_wait(af::cancel_after(
          1h, asio::bind_executor(*handler_ctx,
                                  [&calls, token](std::exception_ptr, int) { ++calls; })));
      aft::poll(*handler_ctx);
      if (future_ctx_first) {
        future_ctx.reset();
        f.set_result(5); // the waiter lives on the handler's context: it still completes
        BOOST_TEST(aft::run_until(*handler_ctx, [&] { return calls == 1; }));
      } else {
        handler_ctx.reset(); // destroys the waiter, the timer and the handler uninvoked
        BOOST_TEST(calls == 0);
      }
    }
    BOOST_TEST(counters.live.load() == 0);
  }
}

BOOST_AUTO_TEST_CASE(a_duration_too_long_to_represent_means_never) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  received r;
  f.async_wait(af::cancel_after(std::chrono::seconds::max(), r.handler()));
  f.async_wait(af::cancel_at(
      std::chrono::time_point<std::chrono::system_clock, std::chrono::hours>::max(), r.handler()));
  aft::poll(ioc);
  BOOST_TEST(r.calls == 0); // not expired at once (no overflow into the past)
  f.set_result(2);
  BOOST_TEST(aft::run_until(ioc, [&] { return r.calls == 2; }));
  BOOST_TEST(r.value == 2);
}

BOOST_AUTO_TEST_CASE(an_initiation_that_takes_the_handler_then_throws) {
  // The adapter's storage stays valid until its own cleanup is done, whatever the other
  // threads running the context do meanwhile (a plain heap allocator: no recycling cache
  // hides a use after free from ASan).
  asio::io_context ioc;
  auto strand = asio::make_strand(ioc);
  aft::allocator_stats stats;
  std::atomic<int> calls{0};
  {
    aft::context_threads threads(ioc, 2);
    for (int i = 0; i < 200; ++i) {
      auto handler = asio::bind_allocator(
          aft::tracking_allocator<void>(stats),
          asio::bind_executor(strand, [&](boost::system::error_code) { ++calls; }));
      const auto throwing = [](auto h) {
        auto taken = std::move(h);
        throw std::runtime_error("refused");
      };
      auto token = af::cancel_after(0ms, std::move(handler));
      BOOST_CHECK_THROW(
          (asio::async_initiate<decltype(token), void(boost::system::error_code)>(throwing, token)),
          std::runtime_error);
    }
  }
  BOOST_TEST(calls.load() == 0); // a handler whose operation never started is never called
  BOOST_TEST(stats.balanced());
}

BOOST_AUTO_TEST_CASE(an_early_deadline_is_not_lost_while_the_operation_starts) {
  // Waits initiated on the main thread, with an expired deadline, while two other threads
  // run the context and the handlers' strand: each wait is cancelled, none is missed.
  constexpr int n = 2000;
  asio::io_context ioc;
  auto strand = asio::make_strand(ioc);
  std::vector<af::future<int>> futures;
  for (int i = 0; i < n; ++i)
    futures.emplace_back(ioc);
  std::atomic<int> cancelled{0};
  std::atomic<int> calls{0};
  {
    aft::context_threads threads(ioc, 2);
    for (auto& f : futures)
      f.async_wait(
          af::cancel_after(0ms, asio::bind_executor(strand, [&](std::exception_ptr e, int) {
                             cancelled += aft::holds<af::cancelled_error>(e) ? 1 : 0;
                             ++calls;
                           })));
    const auto deadline = std::chrono::steady_clock::now() + aft::default_timeout;
    while (calls.load() < n && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
  }
  BOOST_TEST(calls.load() == n);
  BOOST_TEST(cancelled.load() == n);
}

#if BOOST_ASIO_VERSION >= 102800
BOOST_AUTO_TEST_CASE(a_done_future_with_an_inline_immediate_executor_completes_inside_the_call) {
  asio::io_context ioc;
  const auto f = af::make_ready_future(ioc.get_executor(), 4);
  received r;
  f.async_wait(
      af::cancel_after(1h, asio::bind_immediate_executor(asio::system_executor(), r.handler())));
  BOOST_TEST(r.calls == 1); // no timer was armed, nothing to wait for
  BOOST_TEST(r.value == 4);
  BOOST_TEST(!aft::has_outstanding_work(ioc));
}
#endif

BOOST_AUTO_TEST_CASE(nested_inside_other_token_adapters) {
  // Compiles on every Asio. The deadline's slot must reach the operation, so cancel_after is
  // the outermost adapter that touches the cancellation slot. Before Asio 1.32 an adapter
  // around it hides the operation's executor: with a handler that has none either, the wait
  // is refused rather than its timer run (and its completion delivered) on another thread.
  asio::io_context ioc;
  const af::future<int> f(ioc);
  std::optional<std::exception_ptr> got;
  const auto outer = [&] {
    f.async_wait(asio::as_tuple(af::cancel_after(
        1h, [&](std::tuple<std::exception_ptr, int> t) { got = std::get<0>(t); })));
  };
#if BOOST_ASIO_VERSION >= 103200
  outer();
#else
  BOOST_CHECK_THROW(outer(), std::invalid_argument);
  got = nullptr;
#endif
  received r;
  f.async_wait(asio::as_tuple(
      af::cancel_after(1h, asio::bind_executor(ioc, [&](std::tuple<std::exception_ptr, int> t) {
                         r.handler()(std::get<0>(t), std::get<1>(t));
                       }))));
  f.async_wait(af::cancel_after(1h, asio::as_tuple([&](std::tuple<std::exception_ptr, int> t) {
                                  r.handler()(std::get<0>(t), std::get<1>(t));
                                })));
  f.set_result(3);
  BOOST_TEST(aft::run_until(ioc, [&] { return got.has_value() && r.calls == 2; }));
  BOOST_TEST(!*got);
  BOOST_TEST(r.value == 3);
  BOOST_TEST(!aft::has_outstanding_work(ioc));
}

BOOST_AUTO_TEST_CASE(deadline_racing_a_setter_on_another_thread_completes_once) {
  // Many waits with a zero deadline while another thread sets their futures: each handler
  // runs exactly once, with the value or a cancellation, never both.
  constexpr int n = 200;
  asio::io_context ioc;
  std::vector<af::future<int>> futures;
  for (int i = 0; i < n; ++i)
    futures.emplace_back(ioc);
  std::atomic<int> calls{0};
  std::atomic<int> values{0};
  for (auto& f : futures)
    f.async_wait(af::cancel_after(0ms, [&](std::exception_ptr e, int v) {
      ++calls;
      if (!e && v == 1)
        ++values;
    }));
  aft::bounded_thread setter([&] {
    for (auto& f : futures)
      f.try_set_result(1);
  });
  BOOST_TEST(aft::run_until(ioc, [&] { return calls.load() == n; }));
  BOOST_TEST(setter.join_for());
  aft::poll(ioc);
  BOOST_TEST(calls.load() == n);
  int set = 0;
  for (auto& f : futures)
    set += f.cancelled() ? 0 : 1;
  BOOST_TEST(values.load() == set); // a waiter saw a value exactly when its future has one
}

#if BOOST_ASIO_VERSION >= 103200
// Asio 1.32 (Boost 1.86) has its own asio::cancel_after: it works on our operations too.

CO_TEST_CASE(asio_cancel_after_cancels_a_future) {
  af::future<int> f(co_await asio::this_coro::executor);
  const std::exception_ptr e =
      co_await failure_of(f.async_wait(asio::cancel_after(1ms, asio::use_awaitable)));
  BOOST_TEST(aft::holds<af::cancelled_error>(e));
  BOOST_TEST(f.cancelled());
}

CO_TEST_CASE(asio_cancel_after_cancels_a_task) {
  std::atomic<bool> aborted{false};
  auto t = af::create_task(co_await asio::this_coro::executor, wait_an_hour(aborted));
  const std::exception_ptr e =
      co_await failure_of(t.async_wait(asio::cancel_after(1ms, asio::use_awaitable)));
  BOOST_TEST(aft::holds<af::cancelled_error>(e));
  while (!t.done())
    co_await aft::yield_once();
  BOOST_TEST(t.cancelled());
  BOOST_TEST(aborted.load());
}

CO_TEST_CASE(asio_cancel_after_cancels_a_gather) {
  auto ex = co_await asio::this_coro::executor;
  af::future<int> a(ex);
  af::future<void> b(ex);
  const std::exception_ptr e = co_await failure_of(
      af::gather(a, b).async_wait(asio::cancel_after(1ms, asio::use_awaitable)));
  BOOST_TEST(aft::holds<af::cancelled_error>(e));
  BOOST_TEST(a.cancelled());
  BOOST_TEST(b.cancelled());
}

CO_TEST_CASE(asio_cancel_after_adapts_use_future) {
  asio::steady_timer timer(co_await asio::this_coro::executor, 1h);
  af::future<void> f = timer.async_wait(asio::cancel_after(1ms, af::use_future));
  const std::exception_ptr e = co_await failure_of(f.async_wait());
  BOOST_TEST(aft::holds<af::cancelled_error>(e));
}

CO_TEST_CASE(asio_cancel_after_on_a_direct_await) {
  auto ex = co_await asio::this_coro::executor;
  af::future<int> f(ex);
  f.set_result(9);
  BOOST_TEST(co_await f.async_wait(asio::cancel_after(1h, asio::use_awaitable)) == 9);
}
#endif

BOOST_AUTO_TEST_SUITE_END()
