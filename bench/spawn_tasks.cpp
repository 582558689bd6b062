// spawn_tasks — from a driver coroutine on one io_context, start a coroutine whose
// body is trivial (`co_return i;`) and get its result, over and over.
//
// One at a time (per iteration: start one coroutine, wait for its result):
//  - asio_futures: `auto t = af::create_task(ex, body(i)); co_await t.async_wait();`
//    (the task runs on a strand of its own, DESIGN.md §3).
//  - co_spawn_use_awaitable: `co_await asio::co_spawn(ex, body(i), use_awaitable)`:
//    the baseline. DESIGN.md §7 target: asio_futures <= 1.5x of it.
//  - co_spawn_callback: `asio::co_spawn(ex, body(i), callback)`, a detached-style
//    spawn whose completion handler counts the result and spawns the next one (the
//    chain of callbacks is the driver: no coroutine is resumed to learn the result).
//
// In batches of kBatch: kBatch coroutines are started back to back, then their results
// are collected (one iteration = one coroutine of a batch):
//  - asio_futures_batch_1000: the driver creates kBatch tasks, then awaits each.
//  - co_spawn_detached_batch_1000: the driver co_spawns kBatch coroutines with a
//    callback that counts completions; the last one wakes the driver (a steady_timer
//    used as an event, once per batch, so amortised).
// bench/report compares `<peer>_batch_1000` with `asio_futures_batch_1000`.
//
// Every benchmark run spawns one driver and runs the io_context once
// (KeepRunningBatch); the per-operation time is the run's wall-clock time divided
// by the number of coroutines started. Results are checked (sum of values, count).

#include "support.hpp"

#include <asio_futures/task.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <vector>

namespace {

namespace af = asio_futures;
namespace asio = boost::asio;

constexpr int kBatch = 1000;

using asio_futures_bench::check;

/// The spawned coroutine: as cheap as a coroutine gets.
asio::awaitable<int> body(int i) {
  co_return i;
}

/// Drives one benchmark run: `spawn(n)` starts whatever performs `n` spawns on `ioc`
/// and counts each checked result in `done`.
struct spawn_run {
  benchmark::State& state;
  asio::io_context ioc;
  std::int64_t done = 0;
  std::exception_ptr error;

  explicit spawn_run(benchmark::State& s) : state(s) {}

  auto on_exit() {
    return [this](std::exception_ptr e) {
      if (e && !error) {
        error = e;
        ioc.stop();
      }
    };
  }

  /// `n` rounded up to a multiple of `multiple` (a batch variant spawns whole batches).
  template <class Spawn> void run(Spawn spawn, std::int64_t multiple = 1) {
    const std::int64_t n = (state.max_iterations + multiple - 1) / multiple * multiple;
    while (state.KeepRunningBatch(n)) {
      spawn(n);
      ioc.run();
    }
    if (!asio_futures_bench::skip_on_error(state, error) && done != n)
      state.SkipWithError("wrong number of spawns");
  }
};

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
  spawn_run r(state);
  r.run(
      [&](std::int64_t n) { asio::co_spawn(r.ioc, asio_futures_driver(n, r.done), r.on_exit()); });
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
  spawn_run r(state);
  r.run(
      [&](std::int64_t n) { asio::co_spawn(r.ioc, use_awaitable_driver(n, r.done), r.on_exit()); });
}

/// co_spawn with a plain completion handler: each completion checks the result and
/// starts the next spawn, until n are done.
struct callback_chain {
  spawn_run& r;
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

asio::awaitable<void> callback_driver(spawn_run& r, std::int64_t n,
                                      std::optional<callback_chain>& chain) {
  chain.emplace(callback_chain{r, co_await asio::this_coro::executor, n});
  chain->spawn_next();
}

void co_spawn_callback(benchmark::State& state) {
  spawn_run r(state);
  std::optional<callback_chain> chain;
  r.run([&](std::int64_t n) { asio::co_spawn(r.ioc, callback_driver(r, n, chain), r.on_exit()); });
}

// --- in batches -----------------------------------------------------------------

asio::awaitable<void> asio_futures_batch_driver(std::int64_t n, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  std::vector<af::task<int>> tasks;
  tasks.reserve(kBatch);
  for (std::int64_t round = 0; round < n / kBatch; ++round) {
    for (int j = 0; j < kBatch; ++j)
      tasks.push_back(af::create_task(ex, body(j)));
    std::int64_t sum = 0;
    for (auto& t : tasks)
      sum += co_await t.async_wait();
    check(sum == std::int64_t{kBatch} * (kBatch - 1) / 2, "asio_futures_batch: wrong sum");
    done += kBatch;
    tasks.clear();
  }
}

void asio_futures_batch(benchmark::State& state) {
  spawn_run r(state);
  r.run(
      [&](std::int64_t n) {
        asio::co_spawn(r.ioc, asio_futures_batch_driver(n, r.done), r.on_exit());
      },
      kBatch);
}

asio::awaitable<void> detached_batch_driver(std::int64_t n, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer all_done(ex, asio::steady_timer::time_point::max());
  for (std::int64_t round = 0; round < n / kBatch; ++round) {
    int completed = 0;
    std::int64_t sum = 0;
    std::exception_ptr error;
    for (int j = 0; j < kBatch; ++j)
      asio::co_spawn(ex, body(j), [&](std::exception_ptr e, int v) {
        if (e && !error)
          error = e;
        sum += v;
        if (++completed == kBatch)
          all_done.cancel();
      });
    if (completed != kBatch)
      co_await all_done.async_wait(asio::as_tuple(asio::use_awaitable));
    if (error)
      std::rethrow_exception(error);
    check(completed == kBatch, "co_spawn_detached_batch: missing completions");
    check(sum == std::int64_t{kBatch} * (kBatch - 1) / 2, "co_spawn_detached_batch: wrong sum");
    done += kBatch;
  }
}

void co_spawn_detached_batch(benchmark::State& state) {
  spawn_run r(state);
  r.run(
      [&](std::int64_t n) { asio::co_spawn(r.ioc, detached_batch_driver(n, r.done), r.on_exit()); },
      kBatch);
}

} // namespace

BENCHMARK(asio_futures_spawn)->Name("spawn_tasks/asio_futures")->UseRealTime();
BENCHMARK(co_spawn_use_awaitable)->Name("spawn_tasks/co_spawn_use_awaitable")->UseRealTime();
BENCHMARK(co_spawn_callback)->Name("spawn_tasks/co_spawn_callback")->UseRealTime();
BENCHMARK(asio_futures_batch)->Name("spawn_tasks/asio_futures_batch_1000")->UseRealTime();
BENCHMARK(co_spawn_detached_batch)->Name("spawn_tasks/co_spawn_detached_batch_1000")->UseRealTime();
