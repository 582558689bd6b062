// sync — asyncio's Queue and Lock/Semaphore (asio_futures/sync.hpp) against what Asio
// offers for the same jobs, one io_context, one thread.
//
// Two jobs, each a variant group of the scenario (bench/report compares "<peer><suffix>"
// with "asio_futures<suffix>"):
//
// _queue — ns per item: a producer and a consumer coroutine pass the run's n ints through a
//   bounded buffer of capacity 64; the consumer checks that they arrive in order.
//  - asio_futures_queue: af::queue<int>(ex, 64), `co_await q.async_put(i)` /
//    `co_await q.async_get()` (no task_done: the peers have no such count).
//  - channel_queue: experimental::channel<void(error_code, int)>(ioc, 64),
//    async_send / async_receive.
//  - concurrent_channel_queue: experimental::concurrent_channel, the same (its mutex is
//    what asio_futures' queue pays too: every af primitive is thread-safe).
//
// _lock and _semaphore — ns per critical section: K = 4 coroutines each increment a shared
//   counter n / K times, one critical section at a time; the counter is checked at the end.
//  - asio_futures_lock: `co_await l.async_acquire(); ++counter; l.release();` on an af::lock.
//    With the lock contended, release() hands it to the next coroutine in line: one posted
//    completion per critical section.
//  - asio_futures_semaphore: the same with af::semaphore(ex, 1).
//  - strand_lock / strand_semaphore: the increment posted to an asio::strand and awaited
//    (a small async operation: post the increment to the strand, which then posts the
//    completion back to the coroutine's executor; two scheduler trips). The same function
//    registered under both names, so that the report pairs it with each of ours.
//  - asio_post_lock: for information, the floor: `co_await asio::post(ex)` then the increment,
//    with no exclusion at all (one scheduler trip per section; correct only because the
//    io_context has one thread).
//
// The io_context runs once per benchmark run (asio_futures_bench::coroutine_run), so spawning
// the coroutines and creating the primitive are amortised. No target of its own in
// docs/speed-targets.md: the report prints the ratios.

#include "support.hpp"

#include <asio_futures/sync.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdint>
#include <utility>

namespace {

namespace af = asio_futures;
namespace asio = boost::asio;
using boost::system::error_code;

using asio_futures_bench::check;
using asio_futures_bench::coroutine_run;

constexpr std::size_t capacity = 64;   // the bounded buffer of the _queue variant
constexpr std::int64_t contenders = 4; // K coroutines of the _lock / _semaphore variants

// --- _queue ------------------------------------------------------------------------------------

/// Spawns a producer and a consumer passing n ints through `put` / `get` (awaitable factories).
template <class Put, class Get> void run_producer_consumer(coroutine_run& r, Put put, Get get) {
  r.run([&](std::int64_t n) {
    asio::co_spawn(
        r.ioc,
        [n, put]() -> asio::awaitable<void> {
          for (std::int64_t i = 0; i < n; ++i)
            co_await put(static_cast<int>(i));
        },
        r.on_exit());
    asio::co_spawn(
        r.ioc,
        [n, get, &done = r.done]() -> asio::awaitable<void> {
          for (std::int64_t i = 0; i < n; ++i) {
            const int v = co_await get();
            check(v == static_cast<int>(i), "queue: an item out of order");
            ++done;
          }
        },
        r.on_exit());
  });
}

void asio_futures_queue(benchmark::State& state) {
  coroutine_run r(state);
  af::queue<int> q(r.ioc.get_executor(), capacity);
  run_producer_consumer(
      r, [&q](int v) { return q.async_put(v); }, [&q] { return q.async_get(); });
}

template <class Channel> void channel_queue(benchmark::State& state) {
  coroutine_run r(state);
  Channel ch(r.ioc, capacity);
  run_producer_consumer(
      r, [&ch](int v) { return ch.async_send(error_code{}, v, asio::use_awaitable); },
      [&ch] { return ch.async_receive(asio::use_awaitable); });
}

using int_channel = asio::experimental::channel<void(error_code, int)>;
using int_concurrent_channel = asio::experimental::concurrent_channel<void(error_code, int)>;

// --- _lock / _semaphore -------------------------------------------------------------------------

/// The shared state of a run's K contenders: the counter, and how many have finished (the
/// last one checks the counter).
struct contended {
  std::int64_t counter = 0;
  std::int64_t finished = 0;
  std::int64_t expected = 0;

  void finish() {
    if (++finished == contenders)
      check(counter == expected, "critical sections: wrong count");
  }
};

/// Spawns K coroutines `make(per, shared, done)`, each doing n / K critical sections.
template <class Make> void run_contenders(coroutine_run& r, Make make) {
  contended shared;
  r.run(
      [&](std::int64_t n) {
        shared = contended{0, 0, n};
        for (std::int64_t k = 0; k < contenders; ++k)
          asio::co_spawn(r.ioc, make(n / contenders, shared, r.done), r.on_exit());
      },
      contenders);
}

template <class Lockable>
asio::awaitable<void> acquire_release_loop(Lockable& l, std::int64_t per, contended& shared,
                                           std::int64_t& done) {
  for (std::int64_t i = 0; i < per; ++i) {
    co_await l.async_acquire();
    ++shared.counter;
    l.release();
    ++done;
  }
  shared.finish();
}

void asio_futures_lock(benchmark::State& state) {
  coroutine_run r(state);
  af::lock l(r.ioc.get_executor());
  run_contenders(r, [&l](std::int64_t per, contended& shared, std::int64_t& done) {
    return acquire_release_loop(l, per, shared, done);
  });
}

void asio_futures_semaphore(benchmark::State& state) {
  coroutine_run r(state);
  af::semaphore s(r.ioc.get_executor(), 1);
  run_contenders(r, [&s](std::int64_t per, contended& shared, std::int64_t& done) {
    return acquire_release_loop(s, per, shared, done);
  });
}

using strand_type = asio::strand<asio::io_context::executor_type>;

/// Runs `++counter` on `s`, then completes on the handler's executor (posted there).
template <class CompletionToken>
auto async_increment_on(const strand_type& s, std::int64_t& counter, CompletionToken&& token) {
  return asio::async_initiate<CompletionToken, void()>(
      [&s, &counter](auto handler) {
        asio::post(s, [&counter, h = std::move(handler)]() mutable {
          ++counter;
          asio::post(std::move(h)); // to h's associated executor: the coroutine's
        });
      },
      token);
}

asio::awaitable<void> strand_loop(const strand_type& s, std::int64_t per, contended& shared,
                                  std::int64_t& done) {
  for (std::int64_t i = 0; i < per; ++i) {
    co_await async_increment_on(s, shared.counter, asio::use_awaitable);
    ++done;
  }
  shared.finish();
}

void strand_increment(benchmark::State& state) {
  coroutine_run r(state);
  const strand_type s = asio::make_strand(r.ioc.get_executor());
  run_contenders(r, [&s](std::int64_t per, contended& shared, std::int64_t& done) {
    return strand_loop(s, per, shared, done);
  });
}

asio::awaitable<void> post_loop(std::int64_t per, contended& shared, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  for (std::int64_t i = 0; i < per; ++i) {
    co_await asio::post(ex, asio::use_awaitable);
    ++shared.counter;
    ++done;
  }
  shared.finish();
}

void post_increment(benchmark::State& state) {
  coroutine_run r(state);
  run_contenders(r, [](std::int64_t per, contended& shared, std::int64_t& done) {
    return post_loop(per, shared, done);
  });
}

} // namespace

BENCHMARK(asio_futures_queue)->Name("sync/asio_futures_queue")->UseRealTime();
BENCHMARK(channel_queue<int_channel>)->Name("sync/channel_queue")->UseRealTime();
BENCHMARK(channel_queue<int_concurrent_channel>)
    ->Name("sync/concurrent_channel_queue")
    ->UseRealTime();
BENCHMARK(asio_futures_lock)->Name("sync/asio_futures_lock")->UseRealTime();
BENCHMARK(asio_futures_semaphore)->Name("sync/asio_futures_semaphore")->UseRealTime();
BENCHMARK(strand_increment)->Name("sync/strand_lock")->UseRealTime();
BENCHMARK(strand_increment)->Name("sync/strand_semaphore")->UseRealTime();
BENCHMARK(post_increment)->Name("sync/asio_post_lock")->UseRealTime();
