// spawn_tasks — from a driver coroutine on one io_context, start a coroutine whose
// body is trivial (`co_return i;`) and get its result, over and over.
//
// One at a time (per iteration: start one coroutine, wait for its result):
//  - asio_futures: `auto t = af::create_task(ex, body(i)); co_await t.async_wait();`
//    (the task runs on a strand of its own).
//  - co_spawn_use_awaitable: `co_await asio::co_spawn(ex, body(i), use_awaitable)`:
//    the baseline. Speed target (docs/speed-targets.md): asio_futures <= 1.5x of it.
//  - co_spawn_callback: `asio::co_spawn(ex, body(i), callback)`, a detached-style
//    spawn whose completion handler counts the result and spawns the next one (the
//    chain of callbacks is the driver: no coroutine is resumed to learn the result).
//
//  - boost_fiber_async: `boost::fibers::async(body_fn, i).get()` from the benchmark thread's
//    fiber: Boost.Fiber's spawn-and-await (a stackful fiber, its own scheduler, no Asio).
//
// In batches of N (N = 10, 1 000, 100 000, 1 000 000; "spawn_tasks/<impl>_batch/<N>"): N
// coroutines are started back to back, then their results are collected (one iteration =
// one coroutine of a batch); the cost per coroutine should not depend on N:
//  - asio_futures_batch: the driver creates N tasks, then awaits each.
//  - co_spawn_detached_batch: the driver co_spawns N coroutines with a callback that
//    counts completions; the last one wakes the driver (a steady_timer used as an event,
//    once per batch, so amortised).
//  - boost_fiber_async_batch: N `fibers::async` then N `get()`; every fiber has a stack of
//    its own (16 KiB here) alive until it runs, so this peer stops at N = 100 000.
// bench/report compares `<peer>_batch` with `asio_futures_batch` at the same N.
//
// Every benchmark run spawns one driver and runs the io_context once
// (asio_futures_bench::coroutine_run); the per-operation time is the run's wall-clock time
// divided by the number of coroutines started. Results are checked (sum of values, count).

#include "support.hpp"

#include <asio_futures/task.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/fixedsize_stack.hpp>
#include <boost/fiber/future.hpp>

#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

namespace {

namespace af = asio_futures;
namespace asio = boost::asio;

using asio_futures_bench::check;
using asio_futures_bench::coroutine_run;

/// The spawned coroutine: as cheap as a coroutine gets.
asio::awaitable<int> body(int i) {
  co_return i;
}

// --- one at a time ------------------------------------------------------------

asio::awaitable<void> asio_futures_driver(std::int64_t n, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  for (std::int64_t i = 0; i < n; ++i) {
    auto t = af::create_task(ex, body(static_cast<int>(i)));
    int v = co_await t.async_wait();
    check(v == static_cast<int>(i), "asio_futures: wrong result");
    ++done;
  }
}

void asio_futures_spawn(benchmark::State& state) {
  coroutine_run r(state);
  r.run_coroutine([&](std::int64_t n) { return asio_futures_driver(n, r.done); });
}

asio::awaitable<void> use_awaitable_driver(std::int64_t n, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  for (std::int64_t i = 0; i < n; ++i) {
    int v = co_await asio::co_spawn(ex, body(static_cast<int>(i)), asio::use_awaitable);
    check(v == static_cast<int>(i), "co_spawn_use_awaitable: wrong result");
    ++done;
  }
}

void co_spawn_use_awaitable(benchmark::State& state) {
  coroutine_run r(state);
  r.run_coroutine([&](std::int64_t n) { return use_awaitable_driver(n, r.done); });
}

/// co_spawn with a plain completion handler: each completion checks the result and
/// starts the next spawn, until n are done.
struct callback_chain {
  coroutine_run& r;
  asio::any_io_executor ex;
  std::int64_t n;
  std::int64_t i = 0;

  void spawn_next() {
    asio::co_spawn(ex, body(static_cast<int>(i)), [this](std::exception_ptr e, int v) {
      if (e || v != static_cast<int>(i)) {
        r.error = e ? e : std::make_exception_ptr(std::runtime_error("callback: wrong result"));
        r.ioc.stop();
        return;
      }
      ++r.done;
      if (++i < n)
        spawn_next();
    });
  }
};

asio::awaitable<void> callback_driver(coroutine_run& r, std::int64_t n,
                                      std::optional<callback_chain>& chain) {
  chain.emplace(callback_chain{r, co_await asio::this_coro::executor, n});
  chain->spawn_next();
}

void co_spawn_callback(benchmark::State& state) {
  coroutine_run r(state);
  std::optional<callback_chain> chain;
  r.run_coroutine([&](std::int64_t n) { return callback_driver(r, n, chain); });
}

int body_fn(int i) {
  return i;
}

void boost_fiber_async(benchmark::State& state) {
  int i = 0;
  for (auto _ : state) {
    const int v = boost::fibers::async(&body_fn, i).get();
    if (v != i++) {
      state.SkipWithError("boost_fiber_async: wrong result");
      break;
    }
  }
}

// --- in batches -----------------------------------------------------------------

/// The sum of a batch's results 0 .. n-1.
std::int64_t batch_sum(std::int64_t n) {
  return n * (n - 1) / 2;
}

asio::awaitable<void> asio_futures_batch_driver(std::int64_t batches, std::int64_t n,
                                                std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  std::vector<af::task<int>> tasks;
  tasks.reserve(static_cast<std::size_t>(n));
  for (std::int64_t b = 0; b < batches; ++b) {
    for (std::int64_t j = 0; j < n; ++j)
      tasks.push_back(af::create_task(ex, body(static_cast<int>(j))));
    std::int64_t sum = 0;
    for (auto& t : tasks)
      sum += co_await t.async_wait();
    check(sum == batch_sum(n), "asio_futures_batch: wrong sum");
    done += n;
    tasks.clear();
  }
}

void asio_futures_batch(benchmark::State& state) {
  asio_futures_bench::run_rounds_of_n(state, asio_futures_batch_driver);
}

asio::awaitable<void> detached_batch_driver(std::int64_t batches, std::int64_t n,
                                            std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer all_done(ex, asio::steady_timer::time_point::max());
  for (std::int64_t b = 0; b < batches; ++b) {
    std::int64_t completed = 0;
    std::int64_t sum = 0;
    std::exception_ptr error;
    for (std::int64_t j = 0; j < n; ++j)
      asio::co_spawn(ex, body(static_cast<int>(j)), [&](std::exception_ptr e, int v) {
        if (e && !error)
          error = e;
        sum += v;
        if (++completed == n)
          all_done.cancel();
      });
    if (completed != n)
      co_await all_done.async_wait(asio::as_tuple(asio::use_awaitable));
    if (error)
      std::rethrow_exception(error);
    check(completed == n, "co_spawn_detached_batch: missing completions");
    check(sum == batch_sum(n), "co_spawn_detached_batch: wrong sum");
    done += n;
  }
}

void co_spawn_detached_batch(benchmark::State& state) {
  asio_futures_bench::run_rounds_of_n(state, detached_batch_driver);
}

void boost_fiber_async_batch(benchmark::State& state) {
  namespace bf = boost::fibers;
  const std::int64_t n = state.range(0);
  const std::int64_t batches = (state.max_iterations + n - 1) / n;
  std::vector<bf::future<int>> futures;
  futures.reserve(static_cast<std::size_t>(n));
  while (state.KeepRunningBatch(batches * n)) {
    for (std::int64_t b = 0; b < batches; ++b) {
      for (std::int64_t j = 0; j < n; ++j)
        futures.push_back(bf::async(bf::launch::post, std::allocator_arg,
                                    bf::fixedsize_stack(16 * 1024), &body_fn, static_cast<int>(j)));
      std::int64_t sum = 0;
      for (auto& f : futures)
        sum += f.get();
      futures.clear();
      if (sum != batch_sum(n)) {
        state.SkipWithError("boost_fiber_async_batch: wrong sum");
        return;
      }
    }
  }
}

} // namespace

BENCHMARK(asio_futures_spawn)->Name("spawn_tasks/asio_futures")->UseRealTime();
BENCHMARK(co_spawn_use_awaitable)->Name("spawn_tasks/co_spawn_use_awaitable")->UseRealTime();
BENCHMARK(co_spawn_callback)->Name("spawn_tasks/co_spawn_callback")->UseRealTime();
BENCHMARK(boost_fiber_async)->Name("spawn_tasks/boost_fiber_async")->UseRealTime();

using asio_futures_bench::scaling_args;

BENCHMARK(asio_futures_batch)
    ->Name("spawn_tasks/asio_futures_batch")
    ->Apply(scaling_args)
    ->UseRealTime();
BENCHMARK(co_spawn_detached_batch)
    ->Name("spawn_tasks/co_spawn_detached_batch")
    ->Apply(scaling_args)
    ->UseRealTime();
// N stacks are alive at once: not at N = 1 000 000.
BENCHMARK(boost_fiber_async_batch)
    ->Name("spawn_tasks/boost_fiber_async_batch")
    ->Arg(10)
    ->Arg(1'000)
    ->Arg(100'000)
    ->UseRealTime();
