// gather_N — wait for N = 1000 pending futures at once, reported per element.
//
// Per round, on one io_context driven by the benchmark thread: a coroutine creates N pending
// futures, starts waiting for all of them, and a posted function resolves them in a loop
// (in order); the coroutine resumes with the N values and checks their sum. The time of a
// round divided by N is the per-element cost: creating a future, registering the wait on it,
// resolving it, collecting its value.
//
//  - asio_futures: `co_await af::gather(futures).async_wait()` (the ranged form). Each child's
//    completion is bookkept inline by its setter; one scheduler trip per round resumes the
//    coroutine.
//  - parallel_group: Asio's own "wait for all" over the *same* pending futures:
//    `co_await experimental::make_parallel_group(futures).async_wait(wait_for_all(),
//    use_awaitable)`. The futures themselves are the group's operations, which is the fair
//    peer on Boost 1.81: `f.async_wait(deferred)` operations in a ranged group get the system
//    executor there (their completions would hop through system_context threads, see
//    docs/boost-1.81.md), and a channel- or timer-based operation would add the cost of that
//    primitive (a steady_timer used as an event costs ~750 ns, see await_pending_same_loop)
//    rather than of the group. Each child completion is one scheduler trip here (a future's
//    waiter is posted), plus the group's per-operation handler and cancellation slot.
//  - boost_when_all: Boost.Thread's `boost::when_all(first, last)` over N boost::futures,
//    resolved by `set_value` in a loop, then `get()` (Boost.Thread futures cannot be
//    co_awaited; the benchmark thread blocks, as their users do). when_all waits on a thread
//    of its own, started per call.
//
// DESIGN targets (issue 4): asio_futures per element <= 1.5x one await_pending_same_loop
// hand-off of asio_futures (a cross-scenario bar, see bench/report), >= 5x faster than
// boost_when_all, faster than parallel_group.

#ifndef BOOST_THREAD_VERSION
#define BOOST_THREAD_VERSION 5
#endif

#include "support.hpp"

#include <asio_futures/gather.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/thread/future.hpp>

#include <cstdint>
#include <exception>
#include <stdexcept>
#include <vector>

namespace {

namespace af = asio_futures;
namespace asio = boost::asio;

constexpr int kN = 1000;
constexpr std::int64_t kSum = std::int64_t{kN} * (kN - 1) / 2;

using asio_futures_bench::check;

/// Drives one benchmark run of whole rounds of kN elements: `spawn(rounds)` starts the
/// coroutine, which counts the elements it collected in `done`.
struct gather_run {
  benchmark::State& state;
  asio::io_context ioc;
  std::int64_t done = 0;
  std::exception_ptr error;

  explicit gather_run(benchmark::State& s) : state(s) {}

  auto on_exit() {
    return [this](std::exception_ptr e) { error = e; };
  }

  template <class Spawn> void run(Spawn spawn) {
    const std::int64_t rounds = (state.max_iterations + kN - 1) / kN;
    while (state.KeepRunningBatch(rounds * kN)) {
      spawn(rounds);
      ioc.run();
    }
    if (!asio_futures_bench::skip_on_error(state, error) && done != rounds * kN)
      state.SkipWithError("wrong number of elements");
  }
};

/// Resolves futures[i] with i, in order, on the next turn.
void resolve_later(const asio::any_io_executor& ex, const std::vector<af::future<int>>& futures) {
  asio::post(ex, [&futures] {
    for (int i = 0; i < kN; ++i)
      futures[static_cast<std::size_t>(i)].set_result(i);
  });
}

// --- asio_futures: gather ---------------------------------------------------------

asio::awaitable<void> gather_driver(std::int64_t rounds, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  std::vector<af::future<int>> futures;
  futures.reserve(kN);
  for (std::int64_t r = 0; r < rounds; ++r) {
    for (int i = 0; i < kN; ++i)
      futures.emplace_back(ex);
    auto all = af::gather(futures); // copies the handles: we resolve through ours
    resolve_later(ex, futures);
    std::vector<int> values = co_await all.async_wait();
    std::int64_t sum = 0;
    for (int v : values)
      sum += v;
    check(sum == kSum && values.size() == kN, "asio_futures: wrong sum");
    done += kN;
    futures.clear();
  }
}

void asio_futures_gather(benchmark::State& state) {
  gather_run r(state);
  r.run([&](std::int64_t rounds) {
    asio::co_spawn(r.ioc, gather_driver(rounds, r.done), r.on_exit());
  });
}

// --- experimental::parallel_group over the same futures ------------------------------

asio::awaitable<void> group_driver(std::int64_t rounds, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  std::vector<af::future<int>> futures;
  futures.reserve(kN);
  for (std::int64_t r = 0; r < rounds; ++r) {
    for (int i = 0; i < kN; ++i)
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
    check(sum == kSum && values.size() == kN, "parallel_group: wrong sum");
    done += kN;
    futures.clear();
  }
}

void parallel_group_all(benchmark::State& state) {
  gather_run r(state);
  r.run([&](std::int64_t rounds) {
    asio::co_spawn(r.ioc, group_driver(rounds, r.done), r.on_exit());
  });
}

// --- boost::when_all -------------------------------------------------------------------

void boost_when_all(benchmark::State& state) {
  const std::int64_t rounds = (state.max_iterations + kN - 1) / kN;
  std::vector<boost::promise<int>> promises;
  std::vector<boost::future<int>> futures;
  while (state.KeepRunningBatch(rounds * kN)) {
    for (std::int64_t r = 0; r < rounds; ++r) {
      promises.clear();
      futures.clear();
      promises.resize(kN);
      for (auto& p : promises)
        futures.push_back(p.get_future());
      auto all = boost::when_all(futures.begin(), futures.end());
      for (int i = 0; i < kN; ++i)
        promises[static_cast<std::size_t>(i)].set_value(i);
      std::vector<boost::future<int>> ready = all.get();
      std::int64_t sum = 0;
      for (auto& f : ready)
        sum += f.get();
      if (sum != kSum) {
        state.SkipWithError("boost_when_all: wrong sum");
        return;
      }
    }
  }
}

} // namespace

BENCHMARK(asio_futures_gather)->Name("gather_N/asio_futures")->UseRealTime();
BENCHMARK(parallel_group_all)->Name("gather_N/parallel_group")->UseRealTime();
BENCHMARK(boost_when_all)->Name("gather_N/boost_when_all")->UseRealTime();
