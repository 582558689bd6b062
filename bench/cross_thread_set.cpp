// cross_thread_set — a future awaited on an io_context thread is set on a pool thread.
//
// The benchmark thread runs the io_context; an asio::thread_pool with one thread is
// the other side. Per iteration the io side creates a future, starts awaiting it,
// and only then posts to the pool the job that sets it (so the future is always
// pending when set: the pool thread learns about it from that post). The hand-off
// therefore costs two cross-thread wake-ups, io -> pool -> io, like its peers:
//  - asio_post_roundtrip: `co_await asio::post(pool, use_awaitable)` in the same
//    awaitable type: the pool runs a work_dispatcher which dispatches back to the
//    coroutine's executor. The floor, and the speed target (docs/speed-targets.md):
//    asio_futures <= 1.25x of it.
//  - std_future_get / boost_future_get: the benchmark thread blocks in get()
//    while the pool sets the promise (no io_context involved).
//  - boost_fiber_future_get: the same with boost::fibers::future (the benchmark thread's
//    main fiber blocks; the pool thread's set_value wakes it through the fiber scheduler).
//  - asio_futures_blocking_get: the same with af::future::get() from a thread
//    that does not run the future's io_context.
//  - concurrent_channel: Asio's thread-safe channel doing the same hand-off: the io side's
//    coroutine awaits `async_receive` on an unbuffered experimental::concurrent_channel,
//    and the pool job `try_send`s the value into it.
// Timings are wall-clock (UseRealTime): the benchmark thread sleeps while waiting.

#include "support.hpp"

#include <asio_futures/future.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/fiber/future.hpp>
#include <boost/thread/future.hpp>

#include <cstdint>
#include <exception>
#include <future>
#include <utility>

namespace {

namespace af = asio_futures;
namespace asio = boost::asio;

using asio_futures_bench::check;

using pool_executor = asio::thread_pool::executor_type;

using asio_futures_bench::run_with_pool;

asio::awaitable<void> asio_futures_loop(pool_executor pool, std::int64_t n, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  for (std::int64_t i = 0; i < n; ++i) {
    af::future<int> f(ex);
    // The same as `co_await f.async_wait()`, except that the job that sets the
    // future is posted after the waiter is attached.
    int v = co_await asio::async_initiate<const asio::use_awaitable_t<>&,
                                          void(std::exception_ptr, int)>(
        [&](auto handler) {
          f.async_wait(std::move(handler));
          asio::post(pool, [f, i]() mutable { f.set_result(static_cast<int>(i)); });
        },
        asio::use_awaitable);
    check(v == static_cast<int>(i), "asio_futures: wrong result");
    ++done;
  }
}

void asio_futures_cross_thread(benchmark::State& state) {
  run_with_pool(state, asio_futures_loop);
}

asio::awaitable<void> post_roundtrip_loop(pool_executor pool, std::int64_t n, std::int64_t& done) {
  for (std::int64_t i = 0; i < n; ++i) {
    co_await asio::post(pool, asio::use_awaitable);
    ++done;
  }
}

void asio_post_roundtrip(benchmark::State& state) {
  run_with_pool(state, post_roundtrip_loop);
}

using int_channel = asio::experimental::concurrent_channel<void(boost::system::error_code, int)>;

asio::awaitable<void> channel_loop(pool_executor pool, std::int64_t n, std::int64_t& done) {
  int_channel ch(co_await asio::this_coro::executor, 0);
  for (std::int64_t i = 0; i < n; ++i) {
    // The receive is waiting before the job that sends is posted, as for asio_futures.
    int v = co_await asio::async_initiate<const asio::use_awaitable_t<>&,
                                          void(boost::system::error_code, int)>(
        [&](auto handler) {
          ch.async_receive(std::move(handler));
          asio::post(pool, [&ch, i] {
            if (!ch.try_send(boost::system::error_code{}, static_cast<int>(i)))
              std::terminate(); // the receive was waiting: cannot happen
          });
        },
        asio::use_awaitable);
    check(v == static_cast<int>(i), "concurrent_channel: wrong result");
    ++done;
  }
}

void concurrent_channel_cross_thread(benchmark::State& state) {
  run_with_pool(state, channel_loop);
}

void std_future_get(benchmark::State& state) {
  asio::thread_pool pool(1);
  int i = 0;
  for (auto _ : state) {
    std::promise<int> p;
    std::future<int> f = p.get_future();
    // The job owns the promise: it must outlive set_value's wake-up.
    asio::post(pool, [p = std::move(p), v = i++]() mutable { p.set_value(v); });
    benchmark::DoNotOptimize(f.get());
  }
  pool.join();
}

void boost_future_get(benchmark::State& state) {
  asio::thread_pool pool(1);
  int i = 0;
  for (auto _ : state) {
    boost::promise<int> p;
    boost::future<int> f = p.get_future();
    asio::post(pool, [p = std::move(p), v = i++]() mutable { p.set_value(v); });
    benchmark::DoNotOptimize(f.get());
  }
  pool.join();
}

void boost_fiber_future_get(benchmark::State& state) {
  asio::thread_pool pool(1);
  int i = 0;
  for (auto _ : state) {
    boost::fibers::promise<int> p;
    boost::fibers::future<int> f = p.get_future();
    asio::post(pool, [p = std::move(p), v = i++]() mutable { p.set_value(v); });
    benchmark::DoNotOptimize(f.get());
  }
  pool.join();
}

void asio_futures_blocking_get(benchmark::State& state) {
  asio::io_context ioc; // never run: get() blocks the benchmark thread
  asio::thread_pool pool(1);
  int i = 0;
  for (auto _ : state) {
    af::future<int> f(ioc.get_executor());
    asio::post(pool, [f, v = i++]() mutable { f.set_result(v); });
    benchmark::DoNotOptimize(f.get());
  }
  pool.join();
}

} // namespace

BENCHMARK(asio_futures_cross_thread)->Name("cross_thread_set/asio_futures")->UseRealTime();
BENCHMARK(asio_post_roundtrip)->Name("cross_thread_set/asio_post_roundtrip")->UseRealTime();
BENCHMARK(std_future_get)->Name("cross_thread_set/std_future_get")->UseRealTime();
BENCHMARK(boost_future_get)->Name("cross_thread_set/boost_future_get")->UseRealTime();
BENCHMARK(boost_fiber_future_get)->Name("cross_thread_set/boost_fiber_future_get")->UseRealTime();
BENCHMARK(concurrent_channel_cross_thread)
    ->Name("cross_thread_set/concurrent_channel")
    ->UseRealTime();
BENCHMARK(asio_futures_blocking_get)
    ->Name("cross_thread_set/asio_futures_blocking_get")
    ->UseRealTime();
