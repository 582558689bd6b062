// contention — 10 000 futures set from 2 threads while they are awaited, reported per future.
//
// An io_context runs on the benchmark thread; an asio::thread_pool with 2 threads sets. Per
// round the io side makes 10 000 pending futures and waits for them, and two jobs posted to
// the pool set them meanwhile, one the even and one the odd indices, so both setters hand
// completions to the one io_context at once (its queue is what they contend on; on this
// 2-core machine the 3 threads also contend for the cores). The round ends when every value
// has been collected and both setters are done (so no setter still touches a round's futures
// when the next begins); each round's sum is checked.
//  - asio_futures: one coroutine `co_await`s the futures in order while the setters run (the
//    asyncio picture), so registering a waiter races with setting the same future; a future
//    found done still resumes the coroutine through the scheduler.
//  - asio_futures_callbacks: a callback waiter (`async_wait` with a plain handler) attached
//    to every future before the setters start; each set_result posts its waiter.
//  - asio_post: the same hand-off with raw Asio: each setter posts one handler carrying the
//    value to the io_context per element (the floor).
//  - concurrent_channel: Asio's thread-safe channel (buffered for the whole round, so
//    `try_send` never fails); one coroutine receives the 10 000 values.
//  - std_future_get / boost_future_get: the benchmark thread `get()`s 10 000 std::futures /
//    boost::futures in order while the setters run (no io_context: the blocking consumer).
//
// Targets implied by docs/speed-targets.md (bench/report): asio_futures <= 1.25x asio_post (the bar
// of cross_thread_set, here under contention); faster than concurrent_channel (as
// await_pending_same_loop asks against the channel), std and boost futures.

#include "support.hpp"

#include <asio_futures/future.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/thread/future.hpp>

#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <vector>

namespace {

namespace af = asio_futures;
namespace asio = boost::asio;

constexpr std::int64_t kN = 10'000;
constexpr std::int64_t kSum = kN * (kN - 1) / 2;
constexpr int kSetters = 2;

using asio_futures_bench::check;
using asio_futures_bench::coroutine_run;

/// One round's bookkeeping on the io side: what is still outstanding (kN values and the
/// setters' "done"), the sum collected, and the future the driver awaits.
struct round_state {
  std::int64_t outstanding = kN + kSetters;
  std::int64_t sum = 0;
  af::future<void> finished;

  explicit round_state(const asio::any_io_executor& ex) : finished(ex) {}

  /// On the io thread: one value or one setter's end is in.
  void arrive() {
    if (--outstanding == 0)
      finished.set_result();
  }
};

/// Posts to `pool` the kSetters jobs of a round: setter k calls `set(i)` for the indices
/// i = k, k + kSetters, ... < kN, then reports its end to `round` on the io side.
template <class Set>
void start_setters(asio::thread_pool& pool, const asio::any_io_executor& io, round_state& round,
                   Set set) {
  for (int k = 0; k < kSetters; ++k)
    asio::post(pool, [k, set, io, &round] {
      for (std::int64_t i = k; i < kN; i += kSetters)
        set(i);
      asio::post(io, [&round] { round.arrive(); });
    });
}

/// Runs whole rounds of kN on the io_context: `make(pool, rounds, done)` is the driver.
template <class MakeDriver> void run_rounds(benchmark::State& state, MakeDriver make) {
  asio::thread_pool pool(kSetters);
  coroutine_run r(state);
  r.run_coroutine([&](std::int64_t n) { return make(pool, n / kN, r.done); }, kN);
  pool.join();
}

// --- asio_futures and asio_futures_callbacks ------------------------------------------------

/// Rounds of kN futures set by the pool's setters. With `callbacks`, a callback waiter is
/// attached to every future before the setters start; without, the coroutine awaits the
/// futures in order while they are being set.
asio::awaitable<void> futures_driver(asio::thread_pool& pool, std::int64_t rounds,
                                     std::int64_t& done, bool callbacks) {
  auto ex = co_await asio::this_coro::executor;
  std::vector<af::future<int>> futures;
  futures.reserve(kN);
  for (std::int64_t r = 0; r < rounds; ++r) {
    round_state round(ex);
    for (std::int64_t i = 0; i < kN; ++i) {
      futures.emplace_back(ex);
      if (callbacks)
        futures.back().async_wait([&round](std::exception_ptr e, int v) {
          if (!e)
            round.sum += v;
          round.arrive();
        });
    }
    start_setters(pool, ex, round,
                  [&futures](std::int64_t i) { futures[i].set_result(static_cast<int>(i)); });
    if (!callbacks) {
      for (auto& f : futures) {
        round.sum += co_await f.async_wait();
        round.arrive();
      }
    }
    co_await round.finished.async_wait();
    check(round.sum == kSum, "asio_futures: wrong sum");
    done += kN;
    futures.clear();
  }
}

asio::awaitable<void> coroutine_driver(asio::thread_pool& pool, std::int64_t rounds,
                                       std::int64_t& done) {
  return futures_driver(pool, rounds, done, false);
}

asio::awaitable<void> callbacks_driver(asio::thread_pool& pool, std::int64_t rounds,
                                       std::int64_t& done) {
  return futures_driver(pool, rounds, done, true);
}

// --- asio_post: the floor -----------------------------------------------------------------

asio::awaitable<void> post_driver(asio::thread_pool& pool, std::int64_t rounds,
                                  std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  for (std::int64_t r = 0; r < rounds; ++r) {
    round_state round(ex);
    start_setters(pool, ex, round, [ex, &round](std::int64_t i) {
      asio::post(ex, [&round, v = static_cast<int>(i)] {
        round.sum += v;
        round.arrive();
      });
    });
    co_await round.finished.async_wait();
    check(round.sum == kSum, "asio_post: wrong sum");
    done += kN;
  }
}

// --- concurrent_channel ---------------------------------------------------------------------

using int_channel = asio::experimental::concurrent_channel<void(boost::system::error_code, int)>;

asio::awaitable<void> channel_driver(asio::thread_pool& pool, std::int64_t rounds,
                                     std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  int_channel ch(ex, kN);
  for (std::int64_t r = 0; r < rounds; ++r) {
    round_state round(ex);
    start_setters(pool, ex, round, [&ch](std::int64_t i) {
      if (!ch.try_send(boost::system::error_code{}, static_cast<int>(i)))
        std::terminate(); // a buffer of kN: cannot be full
    });
    for (std::int64_t i = 0; i < kN; ++i) {
      round.sum += co_await ch.async_receive(asio::use_awaitable);
      round.arrive();
    }
    co_await round.finished.async_wait();
    check(round.sum == kSum, "concurrent_channel: wrong sum");
    done += kN;
  }
}

// --- blocking consumers ------------------------------------------------------------------------

/// Rounds on the benchmark thread: `Promise`s set by the pool's setters, `get()` in order.
template <class Promise> void blocking_rounds(benchmark::State& state, const char* what) {
  asio::thread_pool pool(kSetters);
  const std::int64_t rounds = (state.max_iterations + kN - 1) / kN;
  using future_type = decltype(std::declval<Promise&>().get_future());
  std::vector<future_type> futures;
  futures.reserve(kN);
  while (state.KeepRunningBatch(rounds * kN)) {
    for (std::int64_t r = 0; r < rounds; ++r) {
      // Each setter owns its promises: a promise must outlive its set_value's wake-up.
      std::vector<Promise> promises[kSetters];
      for (std::int64_t i = 0; i < kN; ++i)
        futures.push_back(promises[i % kSetters].emplace_back().get_future());
      for (auto& mine : promises)
        asio::post(pool, [k = &mine - promises, mine = std::move(mine)]() mutable {
          std::int64_t i = k;
          for (auto& p : mine) {
            p.set_value(static_cast<int>(i));
            i += kSetters;
          }
        });
      std::int64_t sum = 0;
      for (auto& f : futures)
        sum += f.get();
      futures.clear();
      if (sum != kSum) {
        state.SkipWithError(what);
        return;
      }
    }
  }
  pool.join();
}

void std_future_get(benchmark::State& state) {
  blocking_rounds<std::promise<int>>(state, "std_future_get: wrong sum");
}

void boost_future_get(benchmark::State& state) {
  blocking_rounds<boost::promise<int>>(state, "boost_future_get: wrong sum");
}

} // namespace

BENCHMARK_CAPTURE(run_rounds, asio_futures, coroutine_driver)
    ->Name("contention/asio_futures")
    ->UseRealTime();
BENCHMARK_CAPTURE(run_rounds, asio_futures_callbacks, callbacks_driver)
    ->Name("contention/asio_futures_callbacks")
    ->UseRealTime();
BENCHMARK_CAPTURE(run_rounds, asio_post, post_driver)->Name("contention/asio_post")->UseRealTime();
BENCHMARK_CAPTURE(run_rounds, concurrent_channel, channel_driver)
    ->Name("contention/concurrent_channel")
    ->UseRealTime();
BENCHMARK(std_future_get)->Name("contention/std_future_get")->UseRealTime();
BENCHMARK(boost_future_get)->Name("contention/boost_future_get")->UseRealTime();
