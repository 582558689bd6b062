// gather_N — wait for N pending futures at once, reported per element, at N = 10, 1 000,
// 100 000 and 1 000 000 (the benchmark's argument: "gather_N/<impl>/<N>").
//
// Per round, on one io_context driven by the benchmark thread: a coroutine creates N pending
// futures, starts waiting for all of them, and a posted function resolves them in a loop
// (in order); the coroutine resumes with the N values and checks their sum. The time of a
// round divided by N is the per-element cost: creating a future, registering the wait on it,
// resolving it, collecting its value. It should not depend on N.
//
//  - asio_futures: `co_await af::gather(futures).async_wait()` (the ranged form). Each child's
//    completion is bookkept inline by its setter; one scheduler trip per round resumes the
//    coroutine.
//  - parallel_group: Asio's own "wait for all" over the *same* pending futures:
//    `co_await experimental::make_parallel_group(futures).async_wait(wait_for_all(),
//    use_awaitable)`. The futures themselves are the group's operations, which is the fair
//    peer on Boost 1.81: `f.async_wait(deferred)` operations in a ranged group get the system
//    executor there (their completions would hop through system_context threads, see
//    docs/boost-versions.md), and a channel- or timer-based operation would add the cost of that
//    primitive (a steady_timer used as an event costs ~750 ns, see await_pending_same_loop)
//    rather than of the group. Each child completion is one scheduler trip here (a future's
//    waiter is posted), plus the group's per-operation handler and cancellation slot.
//  - boost_when_all: Boost.Thread's `boost::when_all(first, last)` over N boost::futures,
//    resolved by `set_value` in a loop, then `get()` (Boost.Thread futures cannot be
//    co_awaited; the benchmark thread blocks, as their users do). when_all waits on a thread
//    of its own, started per call.
//  - boost_fiber_get_each: Boost.Fiber has no when_all (its documentation builds one from
//    this very pattern): the benchmark thread's fiber `get()`s N fibers::futures in order
//    while a fiber it launched resolves them in a loop (the first get() suspends, the setter
//    runs, the rest are ready).
//  - std_future_get_each: std has no when_all either: the benchmark thread `get()`s N
//    std::futures in order while a pool thread resolves them in a loop (cross-thread: the
//    first get() usually sleeps, the rest are ready).
//
// Speed targets (docs/speed-targets.md): at N = 1000, asio_futures per element <= 1.5x one
// await_pending_same_loop hand-off of asio_futures (a cross-scenario bar, see bench/report),
// >= 5x faster than boost_when_all, faster than parallel_group; and (issue 8) flat in N.

#include "support.hpp"

#include <asio_futures/gather.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/future.hpp>
#include <boost/thread/future.hpp>

#include <cstdint>
#include <future>
#include <vector>

namespace {

namespace af = asio_futures;
namespace asio = boost::asio;

using asio_futures_bench::check;

/// The sum of the values 0 .. n-1 that a round collects.
std::int64_t expected_sum(std::int64_t n) {
  return n * (n - 1) / 2;
}

/// Resolves futures[i] with i, in order, on the next turn.
void resolve_later(const asio::any_io_executor& ex, const std::vector<af::future<int>>& futures) {
  asio::post(ex, [&futures] {
    for (std::size_t i = 0; i < futures.size(); ++i)
      futures[i].set_result(static_cast<int>(i));
  });
}

// --- asio_futures: gather ---------------------------------------------------------

asio::awaitable<void> gather_driver(std::int64_t rounds, std::int64_t n, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  std::vector<af::future<int>> futures;
  futures.reserve(static_cast<std::size_t>(n));
  for (std::int64_t r = 0; r < rounds; ++r) {
    for (std::int64_t i = 0; i < n; ++i)
      futures.emplace_back(ex);
    auto all = af::gather(futures); // copies the handles: we resolve through ours
    resolve_later(ex, futures);
    std::vector<int> values = co_await all.async_wait();
    std::int64_t sum = 0;
    for (int v : values)
      sum += v;
    check(sum == expected_sum(n) && std::ssize(values) == n, "asio_futures: wrong sum");
    done += n;
    futures.clear();
  }
}

void asio_futures_gather(benchmark::State& state) {
  asio_futures_bench::run_rounds_of_n(state, gather_driver);
}

// --- experimental::parallel_group over the same futures ------------------------------

asio::awaitable<void> group_driver(std::int64_t rounds, std::int64_t n, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  std::vector<af::future<int>> futures;
  futures.reserve(static_cast<std::size_t>(n));
  for (std::int64_t r = 0; r < rounds; ++r) {
    for (std::int64_t i = 0; i < n; ++i)
      futures.emplace_back(ex);
    resolve_later(ex, futures);
    auto [order, errors, values] =
        co_await asio::experimental::make_parallel_group(futures).async_wait(
            asio::experimental::wait_for_all(), asio::use_awaitable);
    std::int64_t sum = 0;
    for (std::size_t i = 0; i < values.size(); ++i) {
      check(!errors[i], "parallel_group: a future failed");
      sum += values[i];
    }
    check(sum == expected_sum(n) && std::ssize(values) == n, "parallel_group: wrong sum");
    done += n;
    futures.clear();
  }
}

void parallel_group_all(benchmark::State& state) {
  asio_futures_bench::run_rounds_of_n(state, group_driver);
}

// --- blocking peers: whole rounds on the benchmark thread -----------------------------

/// Runs whole rounds of N = state.range(0) elements: `round(n)` returns the sum it collected.
template <class Round> void run_blocking_rounds(benchmark::State& state, Round round) {
  const std::int64_t n = state.range(0);
  const std::int64_t rounds = (state.max_iterations + n - 1) / n;
  while (state.KeepRunningBatch(rounds * n)) {
    for (std::int64_t r = 0; r < rounds; ++r) {
      if (round(n) != expected_sum(n)) {
        state.SkipWithError("wrong sum");
        return;
      }
    }
  }
}

void boost_when_all(benchmark::State& state) {
  std::vector<boost::promise<int>> promises;
  std::vector<boost::future<int>> futures;
  run_blocking_rounds(state, [&](std::int64_t n) {
    promises.clear();
    futures.clear();
    promises.resize(static_cast<std::size_t>(n));
    for (auto& p : promises)
      futures.push_back(p.get_future());
    auto all = boost::when_all(futures.begin(), futures.end());
    for (std::size_t i = 0; i < promises.size(); ++i)
      promises[i].set_value(static_cast<int>(i));
    std::vector<boost::future<int>> ready = all.get();
    std::int64_t sum = 0;
    for (auto& f : ready)
      sum += f.get();
    return sum;
  });
}

/// One round of the "get each" peers: n promises; `start_setter(promises)` hands them to
/// whoever resolves them in order (it owns them: a promise must outlive its set_value's
/// wake-up), then the benchmark thread get()s each future in order. Returns the sum.
template <class Promise, class StartSetter>
std::int64_t get_each_round(std::int64_t n, StartSetter start_setter) {
  std::vector<Promise> promises(static_cast<std::size_t>(n));
  std::vector<decltype(promises[0].get_future())> futures;
  futures.reserve(promises.size());
  for (auto& p : promises)
    futures.push_back(p.get_future());
  start_setter(std::move(promises));
  std::int64_t sum = 0;
  for (auto& f : futures)
    sum += f.get();
  return sum;
}

/// Resolves promises[i] with i, in order.
template <class Promise> void resolve_in_order(std::vector<Promise>& promises) {
  for (std::size_t i = 0; i < promises.size(); ++i)
    promises[i].set_value(static_cast<int>(i));
}

void boost_fiber_get_each(benchmark::State& state) {
  namespace bf = boost::fibers;
  run_blocking_rounds(state, [](std::int64_t n) {
    return get_each_round<bf::promise<int>>(n, [](std::vector<bf::promise<int>> promises) {
      // Runs when the first get() suspends the benchmark thread's fiber; it ends before
      // that fiber runs again (set_value does not yield), so nothing outlives the round.
      bf::fiber([promises = std::move(promises)]() mutable {
        resolve_in_order(promises);
      }).detach();
    });
  });
}

void std_future_get_each(benchmark::State& state) {
  asio::thread_pool pool(1);
  run_blocking_rounds(state, [&pool](std::int64_t n) {
    return get_each_round<std::promise<int>>(n, [&pool](std::vector<std::promise<int>> promises) {
      asio::post(pool, [promises = std::move(promises)]() mutable { resolve_in_order(promises); });
    });
  });
  pool.join();
}

} // namespace

using asio_futures_bench::scaling_args;

BENCHMARK(asio_futures_gather)->Name("gather_N/asio_futures")->Apply(scaling_args)->UseRealTime();
BENCHMARK(parallel_group_all)->Name("gather_N/parallel_group")->Apply(scaling_args)->UseRealTime();
BENCHMARK(boost_when_all)->Name("gather_N/boost_when_all")->Apply(scaling_args)->UseRealTime();
BENCHMARK(boost_fiber_get_each)
    ->Name("gather_N/boost_fiber_get_each")
    ->Apply(scaling_args)
    ->UseRealTime();
BENCHMARK(std_future_get_each)
    ->Name("gather_N/std_future_get_each")
    ->Apply(scaling_args)
    ->UseRealTime();
