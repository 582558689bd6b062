// run_in_executor — a coroutine on an io_context hands a small function to a thread
// pool and awaits its result, over and over: io_context -> pool -> back to the awaiting
// coroutine (two cross-thread wake-ups per iteration).
//
// The benchmark thread runs the io_context; an asio::thread_pool with one thread runs the
// function (`work`, an addition: what is measured is the hand-off).
//  - asio_futures: `int v = co_await af::run_in_executor(pool, work, i).async_wait();`
//    (the future's executor is the pool's; the awaiter resumes on the coroutine's).
//  - asio_futures_loop: the same with `run_in_executor(ex, pool, work, i)` (the future's
//    executor is the coroutine's io_context).
//  - asio_post_roundtrip: the hand-written equivalent in the same awaitable type: an
//    `async_initiate` whose initiation posts to the pool a function that computes
//    `work(i)` and posts the handler, with the value, back to the handler's associated
//    executor (held with outstanding_work.tracked meanwhile, as any Asio operation
//    does). The speed target (docs/speed-targets.md): asio_futures <= 1.2x of it.
//  - co_spawn_pool: Asio's own spawn-and-await across executors, in the same awaitable
//    type: `co_await asio::co_spawn(pool, work_coroutine(i), use_awaitable)`.
//  - asio_use_future_get: Asio's own bridge to std::future, from the benchmark thread:
//    `asio::post(pool, asio::use_future(fn)).get()` (no io_context involved).
//  - std_async_get: `std::async(std::launch::async, work, i).get()` from the benchmark
//    thread (libstdc++ starts a thread per call; no io_context involved).
//  - boost_async_get: the same with `boost::async(boost::launch::async, work, i).get()`
//    (Boost.Thread also starts a thread per call).
// Timings are wall-clock (UseRealTime): the benchmark thread sleeps while waiting.

#include "support.hpp"

#include <asio_futures/thread.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/thread/future.hpp>

#include <cstdint>
#include <future>
#include <stdexcept>

namespace {

namespace af = asio_futures;
namespace asio = boost::asio;

using pool_executor = asio::thread_pool::executor_type;

int work(int x) {
  return x + 1;
}

using asio_futures_bench::check;

using asio_futures_bench::run_with_pool;

asio::awaitable<void> asio_futures_loop(pool_executor pool, std::int64_t n, std::int64_t& done) {
  for (std::int64_t i = 0; i < n; ++i) {
    const int x = static_cast<int>(i);
    const int v = co_await af::run_in_executor(pool, &work, x).async_wait();
    check(v == x + 1, "asio_futures: wrong result");
    ++done;
  }
}

void asio_futures_offload(benchmark::State& state) {
  run_with_pool(state, asio_futures_loop);
}

asio::awaitable<void> asio_futures_with_loop(pool_executor pool, std::int64_t n,
                                             std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  for (std::int64_t i = 0; i < n; ++i) {
    const int x = static_cast<int>(i);
    const int v = co_await af::run_in_executor(ex, pool, &work, x).async_wait();
    check(v == x + 1, "asio_futures_loop: wrong result");
    ++done;
  }
}

void asio_futures_offload_loop(benchmark::State& state) {
  run_with_pool(state, asio_futures_with_loop);
}

/// The hand-written round trip: post the call to the pool, post the result back.
struct initiate_offload {
  pool_executor pool;

  template <class Handler> void operator()(Handler handler, int x) const {
    auto back = asio::prefer(asio::get_associated_executor(handler),
                             asio::execution::outstanding_work.tracked);
    asio::post(pool, [h = std::move(handler), back = std::move(back), x]() mutable {
      const int r = work(x);
      asio::post(back, [h = std::move(h), r]() mutable { std::move(h)(r); });
    });
  }
};

asio::awaitable<void> post_roundtrip_loop(pool_executor pool, std::int64_t n, std::int64_t& done) {
  for (std::int64_t i = 0; i < n; ++i) {
    const int x = static_cast<int>(i);
    const int v = co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(int)>(
        initiate_offload{pool}, asio::use_awaitable, x);
    check(v == x + 1, "asio_post_roundtrip: wrong result");
    ++done;
  }
}

void asio_post_roundtrip(benchmark::State& state) {
  run_with_pool(state, post_roundtrip_loop);
}

/// Body of co_spawn_pool: what run_in_executor runs, as a coroutine.
asio::awaitable<int> work_coroutine(int x) {
  co_return work(x);
}

asio::awaitable<void> co_spawn_pool_loop(pool_executor pool, std::int64_t n, std::int64_t& done) {
  for (std::int64_t i = 0; i < n; ++i) {
    const int x = static_cast<int>(i);
    const int v = co_await asio::co_spawn(pool, work_coroutine(x), asio::use_awaitable);
    check(v == x + 1, "co_spawn_pool: wrong result");
    ++done;
  }
}

void co_spawn_pool(benchmark::State& state) {
  run_with_pool(state, co_spawn_pool_loop);
}

void asio_use_future_get(benchmark::State& state) {
  asio::thread_pool pool(1);
  int i = 0;
  for (auto _ : state) {
    std::future<int> f = asio::post(pool, asio::use_future([x = i] { return work(x); }));
    if (f.get() != i + 1) {
      state.SkipWithError("asio_use_future_get: wrong result");
      break;
    }
    ++i;
  }
  pool.join();
}

/// `launch(x)` starts work(x) on a thread of its own and returns its future; get() it.
template <class Launch> void async_get(benchmark::State& state, Launch launch, const char* what) {
  int i = 0;
  for (auto _ : state) {
    const int v = launch(i).get();
    if (v != i + 1) {
      state.SkipWithError(what);
      break;
    }
    ++i;
  }
}

void std_async_get(benchmark::State& state) {
  async_get(
      state, [](int x) { return std::async(std::launch::async, &work, x); },
      "std_async_get: wrong result");
}

void boost_async_get(benchmark::State& state) {
  async_get(
      state, [](int x) { return boost::async(boost::launch::async, &work, x); },
      "boost_async_get: wrong result");
}

} // namespace

BENCHMARK(asio_futures_offload)->Name("run_in_executor/asio_futures")->UseRealTime();
BENCHMARK(asio_futures_offload_loop)->Name("run_in_executor/asio_futures_loop")->UseRealTime();
BENCHMARK(asio_post_roundtrip)->Name("run_in_executor/asio_post_roundtrip")->UseRealTime();
BENCHMARK(co_spawn_pool)->Name("run_in_executor/co_spawn_pool")->UseRealTime();
BENCHMARK(asio_use_future_get)->Name("run_in_executor/asio_use_future_get")->UseRealTime();
BENCHMARK(std_async_get)->Name("run_in_executor/std_async_get")->UseRealTime();
BENCHMARK(boost_async_get)->Name("run_in_executor/boost_async_get")->UseRealTime();
