// cancel_and_error — what it costs to cancel a waiting future, and to fail a future with an
// exception, next to Asio's cancellation slots and std/boost `set_exception`.
//
// Two variants; bench/report compares `<impl>_cancel` with `asio_futures_cancel` and
// `<impl>_error` with `asio_futures_error`.
//
// `_cancel`: a coroutine on one io_context driven by the benchmark thread waits for something
// pending; a function posted just before it waits cancels the wait; the coroutine resumes and
// checks that it saw a cancellation (through `as_tuple`, so no exception is thrown: the cost
// of a throw would hide the rest). Per iteration: make the waitable, wait, cancel, resume.
// Every flow makes two scheduler trips (the posted cancel, the waiter's completion).
//  - asio_futures_cancel: `f.cancel()` on a pending af::future<int>; the waiter gets
//    `cancelled_error` (an exception_ptr made per cancellation, as asyncio makes a
//    CancelledError).
//  - asio_futures_slot_cancel: the waiter's own cancellation slot (bind_cancellation_slot)
//    emits `terminal`, which cancels the future (docs/cancellation.md).
//  - channel_slot_cancel: the same slot emission on an `experimental::channel` receive:
//    Asio's in-memory waitable, completes with `operation_aborted`.
//  - timer_slot_cancel: the same on a `steady_timer::async_wait` (a timer at
//    time_point::max(), Asio's classic "event").
//  - timer_cancel: the classic `timer.cancel()`.
//  - asio_post_floor_cancel: the floor: two `co_await asio::post` (the two scheduler trips),
//    nothing to cancel.
// std::future, boost::future and boost::fibers::future cannot be cancelled.
//
// `_error`: create a future, fail it with an exception, observe the failure, one thread, as
// ready_roundtrip does with a value. The exception_ptr is made once and copied: what is
// measured is the future's cost of failing, not the exception's.
//  - asio_futures_error: `set_exception(e)`, then `exception()`.
//  - boost_future_error / boost_fiber_future_error: `set_exception(e)`, then
//    `get_exception_ptr()`.
//  - std_future_error: `set_exception(e)`, then `wait()`: std::future cannot hand out its
//    exception without rethrowing it, so its row only waits for readiness (which favours it).
//  - floor_alloc_atomics_error: ready_roundtrip's hand-written floor with an exception_ptr.
//
// Targets implied by docs/speed-targets.md (bench/report): `_cancel` <= 1.3x the two-post floor
// (the bar of await_pending_same_loop) and faster than the channel's and the timer's cancellation
// slots; `_error`, ready_roundtrip's "close to the floor": <= 2x floor_alloc_atomics_error,
// and faster than every peer (not ">= 10x std": the exception_ptr's own reference counting
// puts even the floor at ~9x std here; see bench/report).

#include "support.hpp"

#include <asio_futures/future.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/fiber/future.hpp>
#include <boost/thread/future.hpp>

#include <atomic>
#include <cstdint>
#include <exception>
#include <future>
#include <stdexcept>

namespace {

namespace af = asio_futures;
namespace asio = boost::asio;
using boost::system::error_code;

using asio_futures_bench::check;
using asio_futures_bench::coroutine_run;

constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

/// Emits `terminal` on `signal` on the next turn of `ex`.
void emit_later(const asio::any_io_executor& ex, asio::cancellation_signal& signal) {
  asio::post(ex, [&signal] { signal.emit(asio::cancellation_type::terminal); });
}

// --- _cancel ---------------------------------------------------------------------------

asio::awaitable<void> future_cancel_driver(std::int64_t n, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  for (std::int64_t i = 0; i < n; ++i) {
    af::future<int> f(ex);
    asio::post(ex, [f] { f.cancel(); });
    auto [e, v] = co_await f.async_wait(tuple_awaitable);
    check(e && f.cancelled(), "asio_futures_cancel: not cancelled");
    ++done;
  }
}

asio::awaitable<void> future_slot_driver(std::int64_t n, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  asio::cancellation_signal signal;
  for (std::int64_t i = 0; i < n; ++i) {
    af::future<int> f(ex);
    emit_later(ex, signal);
    auto [e, v] =
        co_await f.async_wait(asio::bind_cancellation_slot(signal.slot(), tuple_awaitable));
    check(e && f.cancelled(), "asio_futures_slot_cancel: not cancelled");
    ++done;
  }
}

asio::awaitable<void> channel_slot_driver(std::int64_t n, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  asio::cancellation_signal signal;
  for (std::int64_t i = 0; i < n; ++i) {
    asio::experimental::channel<void(error_code, int)> ch(ex, 0);
    emit_later(ex, signal);
    auto [ec, v] =
        co_await ch.async_receive(asio::bind_cancellation_slot(signal.slot(), tuple_awaitable));
    check(ec == asio::experimental::error::channel_cancelled ||
              ec == asio::error::operation_aborted,
          "channel_slot_cancel: not cancelled");
    ++done;
  }
}

asio::awaitable<void> timer_slot_driver(std::int64_t n, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  asio::cancellation_signal signal;
  for (std::int64_t i = 0; i < n; ++i) {
    asio::steady_timer t(ex, asio::steady_timer::time_point::max());
    emit_later(ex, signal);
    auto [ec] = co_await t.async_wait(asio::bind_cancellation_slot(signal.slot(), tuple_awaitable));
    check(ec == asio::error::operation_aborted, "timer_slot_cancel: not cancelled");
    ++done;
  }
}

asio::awaitable<void> timer_cancel_driver(std::int64_t n, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  for (std::int64_t i = 0; i < n; ++i) {
    asio::steady_timer t(ex, asio::steady_timer::time_point::max());
    asio::post(ex, [&t] { t.cancel(); });
    auto [ec] = co_await t.async_wait(tuple_awaitable);
    check(ec == asio::error::operation_aborted, "timer_cancel: not cancelled");
    ++done;
  }
}

asio::awaitable<void> post_floor_driver(std::int64_t n, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  for (std::int64_t i = 0; i < n; ++i) {
    co_await asio::post(ex, asio::use_awaitable);
    co_await asio::post(ex, asio::use_awaitable);
    ++done;
  }
}

/// A benchmark running `Driver` once per benchmark run.
template <asio::awaitable<void> (*Driver)(std::int64_t, std::int64_t&)>
void cancel_bench(benchmark::State& state) {
  coroutine_run r(state);
  r.run_coroutine([&](std::int64_t n) { return Driver(n, r.done); });
}

// --- _error ----------------------------------------------------------------------------

std::exception_ptr the_error() {
  static const std::exception_ptr e = std::make_exception_ptr(std::runtime_error("failed"));
  return e;
}

void asio_futures_error(benchmark::State& state) {
  asio::io_context ioc;
  const std::exception_ptr e = the_error();
  for (auto _ : state) {
    af::future<int> f(ioc.get_executor());
    f.set_exception(e);
    if (f.exception() != e) {
      state.SkipWithError("asio_futures_error: wrong exception");
      break;
    }
  }
}

void std_future_error(benchmark::State& state) {
  const std::exception_ptr e = the_error();
  for (auto _ : state) {
    std::promise<int> p;
    std::future<int> f = p.get_future();
    p.set_exception(e);
    f.wait();
    benchmark::DoNotOptimize(f);
  }
}

template <class Promise, class ExceptionPtr>
void error_via_exception_ptr(benchmark::State& state, const ExceptionPtr e, const char* what) {
  for (auto _ : state) {
    Promise p;
    auto f = p.get_future();
    p.set_exception(e);
    if (f.get_exception_ptr() != e) {
      state.SkipWithError(what);
      break;
    }
  }
}

void boost_future_error(benchmark::State& state) {
  // Boost.Thread stores a boost::exception_ptr: given a std::exception_ptr, its
  // set_exception(E) template would wrap it in a new exception object (an allocation and a
  // copy per call), so it gets its own kind, made once like the others'.
  static const boost::exception_ptr e = boost::copy_exception(std::runtime_error("failed"));
  error_via_exception_ptr<boost::promise<int>>(state, e, "boost_future_error: wrong exception");
}

void boost_fiber_future_error(benchmark::State& state) {
  error_via_exception_ptr<boost::fibers::promise<int>>(state, the_error(),
                                                       "boost_fiber_future_error: wrong exception");
}

// ready_roundtrip's floor, failing: one heap block, a state word, a reference count.
struct floor_state {
  std::atomic<unsigned> refs{2}; // promise side + future side
  std::atomic<unsigned> done{0};
  std::exception_ptr error;
};

void floor_alloc_atomics_error(benchmark::State& state) {
  const std::exception_ptr e = the_error();
  for (auto _ : state) {
    auto* s = new floor_state;
    benchmark::DoNotOptimize(s);
    s->error = e;
    s->done.store(1, std::memory_order_release);
    s->refs.fetch_sub(1, std::memory_order_acq_rel); // setter's handle dies
    if (s->done.load(std::memory_order_acquire) != 0 && s->error != e) {
      state.SkipWithError("floor_alloc_atomics_error: wrong exception");
      break;
    }
    if (s->refs.fetch_sub(1, std::memory_order_acq_rel) == 1)
      delete s;
  }
}

} // namespace

BENCHMARK(cancel_bench<future_cancel_driver>)
    ->Name("cancel_and_error/asio_futures_cancel")
    ->UseRealTime();
BENCHMARK(cancel_bench<future_slot_driver>)
    ->Name("cancel_and_error/asio_futures_slot_cancel")
    ->UseRealTime();
BENCHMARK(cancel_bench<channel_slot_driver>)
    ->Name("cancel_and_error/channel_slot_cancel")
    ->UseRealTime();
BENCHMARK(cancel_bench<timer_slot_driver>)
    ->Name("cancel_and_error/timer_slot_cancel")
    ->UseRealTime();
BENCHMARK(cancel_bench<timer_cancel_driver>)->Name("cancel_and_error/timer_cancel")->UseRealTime();
BENCHMARK(cancel_bench<post_floor_driver>)
    ->Name("cancel_and_error/asio_post_floor_cancel")
    ->UseRealTime();

BENCHMARK(asio_futures_error)->Name("cancel_and_error/asio_futures_error")->UseRealTime();
BENCHMARK(std_future_error)->Name("cancel_and_error/std_future_error")->UseRealTime();
BENCHMARK(boost_future_error)->Name("cancel_and_error/boost_future_error")->UseRealTime();
BENCHMARK(boost_fiber_future_error)
    ->Name("cancel_and_error/boost_fiber_future_error")
    ->UseRealTime();
BENCHMARK(floor_alloc_atomics_error)
    ->Name("cancel_and_error/floor_alloc_atomics_error")
    ->UseRealTime();
