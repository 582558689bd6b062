//
// bench/support.hpp
//
// What every benchmark scenario shares: result checks, error reporting, the driver that runs
// coroutines on an io_context for one benchmark run, and the N of the scaling benchmarks.
//
#ifndef ASIO_FUTURES_BENCH_SUPPORT_HPP
#define ASIO_FUTURES_BENCH_SUPPORT_HPP

#include <benchmark/benchmark.h>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/promise.hpp>
#include <boost/asio/experimental/use_promise.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/version.hpp>

#include <cstdint>
#include <exception>
#include <stdexcept>

namespace asio_futures_bench {

// The handlers that asio::use_future and experimental::use_promise hand to an initiation,
// for the peers that keep one in a slot and complete it later (an operation completed by
// hand, as a future is set by hand).
#if BOOST_ASIO_VERSION >= 102600 && BOOST_ASIO_VERSION <= 103800
// WORKAROUND(Boost 1.81-1.90, Asio 1.26-1.38): Asio has no public name for them; these are
// its detail types on the versions verified.
template <class Signature>
using use_future_handler = boost::asio::detail::promise_handler<Signature, std::allocator<void>>;
template <class Signature>
using use_promise_handler =
    boost::asio::experimental::detail::promise_handler<Signature, boost::asio::any_io_executor,
                                                       std::allocator<void>>;
#else
// Elsewhere the type-erased handler stands in (one allocation more per operation).
template <class Signature>
using use_future_handler = boost::asio::any_completion_handler<Signature>;
template <class Signature>
using use_promise_handler = boost::asio::any_completion_handler<Signature>;
#endif

/// A benchmark checks every result it measures: throws std::runtime_error(what) unless `ok`.
inline void check(bool ok, const char* what) {
  if (!ok)
    throw std::runtime_error(what);
}

/// Marks the run failed with `error`'s message if there is an error; true if there was.
inline bool skip_on_error(benchmark::State& state, const std::exception_ptr& error) {
  if (!error)
    return false;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  } catch (...) {
    state.SkipWithError("unknown exception");
  }
  return true;
}

/// The sizes of the scaling benchmarks (gather_N, spawn_tasks' batches, footprint): each runs
/// at every N, and bench/report shows the cost per element against N (it should be flat).
inline constexpr std::int64_t scaling_sizes[] = {10, 1'000, 100'000, 1'000'000};

/// `->Apply(scaling_args)`: one benchmark instance per N of scaling_sizes (state.range(0)).
inline void scaling_args(benchmark::internal::Benchmark* b) {
  for (std::int64_t n : scaling_sizes)
    b->Arg(n);
}

/// Drives one benchmark run of coroutines on an io_context that the benchmark thread runs.
///
/// `run(spawn, unit)` takes the run's operation count n (the iterations Google Benchmark asks
/// for, rounded up to a whole number of `unit`s: a ping-pong does hand-offs in pairs, a gather
/// whole rounds of N), calls `spawn(n)` to start coroutines that perform n operations and count
/// each checked one in `done`, and runs the io_context once; spawning is thus amortised over
/// the run (KeepRunningBatch). A coroutine that fails stops the run (the others might wait for
/// it forever) and its exception is reported, as is a wrong count.
struct coroutine_run {
  benchmark::State& state;
  boost::asio::io_context ioc;
  std::int64_t done = 0;
  std::exception_ptr error;

  explicit coroutine_run(benchmark::State& s) : state(s) {}

  /// The completion of every spawned coroutine.
  auto on_exit() {
    return [this](std::exception_ptr e) {
      if (e && !error) {
        error = e;
        ioc.stop();
      }
    };
  }

  template <class Spawn> void run(Spawn spawn, std::int64_t unit = 1) {
    const std::int64_t n = (state.max_iterations + unit - 1) / unit * unit;
    // n >= max_iterations: the loop body runs once.
    while (state.KeepRunningBatch(n)) {
      spawn(n);
      ioc.run();
      ioc.restart();
    }
    if (!skip_on_error(state, error) && done != n)
      state.SkipWithError("wrong number of operations");
  }

  /// run() with one coroutine, `make(n)`, an `awaitable<void>` doing the n operations.
  template <class MakeCoroutine> void run_coroutine(MakeCoroutine make, std::int64_t unit = 1) {
    run([&](std::int64_t n) { boost::asio::co_spawn(ioc, make(n), on_exit()); }, unit);
  }
};

/// `n` times `co_await asio::post(ex, use_awaitable)`: one suspension and one resumption
/// through the scheduler each, the floor of every posted hand-off.
inline boost::asio::awaitable<void> post_loop(std::int64_t n, std::int64_t& done) {
  auto ex = co_await boost::asio::this_coro::executor;
  for (std::int64_t i = 0; i < n; ++i) {
    co_await boost::asio::post(ex, boost::asio::use_awaitable);
    ++done;
  }
}

/// A coroutine_run in whole rounds of N = state.range(0) operations (a gather of N futures, a
/// batch of N tasks): `make(rounds, n, done)` is the coroutine doing them.
template <class MakeCoroutine> void run_rounds_of_n(benchmark::State& state, MakeCoroutine make) {
  const std::int64_t n = state.range(0);
  coroutine_run r(state);
  r.run_coroutine([&](std::int64_t ops) { return make(ops / n, n, r.done); }, n);
}

/// Runs `make_loop(pool_executor, n, done)`, a coroutine doing n round trips between the
/// io_context (driven by the benchmark thread) and a one-thread asio::thread_pool.
template <class MakeLoop> void run_with_pool(benchmark::State& state, MakeLoop make_loop) {
  boost::asio::thread_pool pool(1);
  coroutine_run r(state);
  r.run_coroutine([&](std::int64_t n) { return make_loop(pool.get_executor(), n, r.done); });
  pool.join(); // before the io_context goes: a pool job may still hold a handle to it
}

} // namespace asio_futures_bench

#endif // ASIO_FUTURES_BENCH_SUPPORT_HPP
