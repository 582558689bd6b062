// footprint — heap cost of a pending future, counted at malloc level, with N = 10, 1 000,
// 100 000 and 1 000 000 futures pending at once ("footprint/<impl>/<N>").
//
// Each iteration creates N pending futures (and keeps them alive, so nothing is recycled
// between them) inside a counting_scope (alloc_hook.hpp), then destroys them outside it. One
// future is made first, uncounted, so that one-time costs (the context's service, lazy
// statics) are not charged per future. Reported as counters, per future:
//   allocs_per_future    — allocation calls (malloc, aligned_alloc, ... and so operator new),
//   bytes_per_future     — malloc_usable_size() of those blocks: what the heap really hands
//                          out (requests are rounded up to 16 bytes, minimum 24 usable),
//   requested_per_future — the sizes asked for,
//   heap_per_future      — growth of the heap's bytes in use (mallinfo2: uordblks + hblkhd)
//                          while the N futures were made: the usable bytes plus malloc's own
//                          header per block; what N pending futures cost the process.
// The cost per future should not depend on N.
// No io_context runs on this thread, so Asio's thread-local recycling cache is not in play:
// every block is a real allocation. The counts are exact, so each N runs one repetition of a
// few iterations.
//
// Peers (each entry is what one pending future of that kind costs, both ends included):
//  - std_future: std::promise + std::future; boost_future: boost::promise + boost::future;
//  - boost_fiber_future: boost::fibers::promise + boost::fibers::future;
//  - asio_promise: Asio's experimental::promise<void(int)> of a pending operation, plus the
//    completion handler that operation holds (use_promise's handler).
// asio_futures_waiter measures, apart from the future itself, what attaching one callback
// waiter (async_wait with a plain lambda) to a pending future costs.
// Speed target (docs/speed-targets.md): a pending future<int> costs one allocation, <= 128 bytes.

#include "alloc_hook.hpp"
#include "support.hpp"

#include <asio_futures/future.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/async_result.hpp>
#include <boost/asio/experimental/promise.hpp>
#include <boost/asio/experimental/use_promise.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/fiber/future.hpp>
#include <boost/thread/future.hpp>

#include <cstdint>
#include <exception>
#include <future>
#include <optional>
#include <utility>
#include <vector>

namespace {

namespace af = asio_futures;
namespace asio = boost::asio;
using asio_futures_bench::alloc_counts;
using asio_futures_bench::counting_scope;

constexpr int kIterations = 2;

struct footprint_total {
  alloc_counts counts;
  std::int64_t heap_growth = 0;

  void add(const alloc_counts& c, std::int64_t growth) {
    counts.allocs += c.allocs;
    counts.frees += c.frees;
    counts.requested_bytes += c.requested_bytes;
    counts.usable_bytes += c.usable_bytes;
    heap_growth += growth;
  }

  void report(benchmark::State& state) const {
    const double n = static_cast<double>(state.iterations()) * static_cast<double>(state.range(0));
    state.counters["allocs_per_future"] = static_cast<double>(counts.allocs) / n;
    state.counters["bytes_per_future"] = static_cast<double>(counts.usable_bytes) / n;
    state.counters["requested_per_future"] = static_cast<double>(counts.requested_bytes) / n;
    state.counters["heap_per_future"] = static_cast<double>(heap_growth) / n;
  }
};

/// Counts what `body()` allocates on this thread, into `total`.
template <class Body> void count(footprint_total& total, Body body) {
  const std::int64_t before = asio_futures_bench::heap_in_use();
  counting_scope scope;
  body();
  total.add(scope.counts(), asio_futures_bench::heap_in_use() - before);
}

bool hook_available(benchmark::State& state) {
  if (!asio_futures_bench::alloc_hook_active)
    state.SkipWithError("malloc hooks are off under sanitizers");
  return asio_futures_bench::alloc_hook_active;
}

/// Counts what `make()` allocates, N = state.range(0) times per iteration; `flush()` runs
/// after each iteration's futures are destroyed, uncounted.
template <class Make, class Flush> void measure(benchmark::State& state, Make make, Flush flush) {
  if (!hook_available(state))
    return;
  const std::int64_t n = state.range(0);
  std::vector<decltype(make())> keep;
  keep.reserve(static_cast<std::size_t>(n)); // outside the count
  // One-time costs (a context's service, lazily created statics) are not per future.
  (void)make();
  flush();
  footprint_total total;
  for (auto _ : state) {
    count(total, [&] {
      for (std::int64_t i = 0; i < n; ++i)
        keep.push_back(make());
    });
    keep.clear();
    flush();
  }
  total.report(state);
}

template <class Make> void measure(benchmark::State& state, Make make) {
  measure(state, make, [] {});
}

void asio_futures_footprint(benchmark::State& state) {
  asio::io_context ioc;
  measure(state, [&] { return af::future<int>(ioc.get_executor()); });
}

void std_future_footprint(benchmark::State& state) {
  measure(state, [] {
    std::promise<int> p;
    std::future<int> f = p.get_future();
    return std::make_pair(std::move(p), std::move(f));
  });
}

void boost_future_footprint(benchmark::State& state) {
  measure(state, [] {
    boost::promise<int> p;
    boost::future<int> f = p.get_future();
    return std::make_pair(std::move(p), std::move(f));
  });
}

void boost_fiber_future_footprint(benchmark::State& state) {
  measure(state, [] {
    boost::fibers::promise<int> p;
    boost::fibers::future<int> f = p.get_future();
    return std::make_pair(std::move(p), std::move(f));
  });
}

using int_promise = asio::experimental::promise<void(int), asio::any_io_executor>;
using int_promise_handler = asio_futures_bench::use_promise_handler<void(int)>;

/// An operation that never completes by itself: its handler goes to `*slot`.
struct initiate_pending {
  using executor_type = asio::any_io_executor;
  executor_type ex;
  executor_type get_executor() const noexcept { return ex; }
  void operator()(int_promise_handler h, std::optional<int_promise_handler>* slot) const {
    slot->emplace(std::move(h));
  }
};

void asio_promise_footprint(benchmark::State& state) {
  asio::io_context ioc;
  measure(
      state,
      [&] {
        std::optional<int_promise_handler> slot;
        int_promise p = asio::async_initiate<const asio::experimental::use_promise_t<>&, void(int)>(
            initiate_pending{ioc.get_executor()}, asio::experimental::use_promise, &slot);
        return std::make_pair(std::move(p), std::move(*slot));
      },
      // A promise destroyed pending posts its cancellation to its executor: run those.
      [&] {
        ioc.poll();
        ioc.restart();
      });
}

void asio_futures_waiter_footprint(benchmark::State& state) {
  if (!hook_available(state))
    return;
  const std::int64_t n = state.range(0);
  asio::io_context ioc;
  std::vector<af::future<int>> futures;
  futures.reserve(static_cast<std::size_t>(n));
  footprint_total total;
  std::int64_t completed = 0;
  {
    // One-time costs (a context's service, lazily created statics) are not per waiter.
    af::future<int> warm_up(ioc.get_executor());
    warm_up.async_wait([&completed](std::exception_ptr, int) { ++completed; });
    warm_up.set_result(0);
    ioc.run();
    ioc.restart();
    completed = 0;
  }
  for (auto _ : state) {
    for (std::int64_t i = 0; i < n; ++i)
      futures.emplace_back(ioc.get_executor());
    count(total, [&] {
      for (auto& f : futures)
        f.async_wait([&completed](std::exception_ptr, int) { ++completed; });
    });
    for (auto& f : futures)
      f.set_result(1);
    ioc.run();
    ioc.restart();
    futures.clear();
  }
  if (completed != state.iterations() * n)
    state.SkipWithError("not every waiter completed");
  total.report(state);
}

/// Every footprint benchmark: each N, a fixed number of iterations, one repetition (the
/// counts do not vary).
void footprint_args(benchmark::internal::Benchmark* b) {
  asio_futures_bench::scaling_args(b);
  b->Iterations(kIterations)->Repetitions(1);
}

} // namespace

BENCHMARK(asio_futures_footprint)->Name("footprint/asio_futures")->Apply(footprint_args);
BENCHMARK(std_future_footprint)->Name("footprint/std_future")->Apply(footprint_args);
BENCHMARK(boost_future_footprint)->Name("footprint/boost_future")->Apply(footprint_args);
BENCHMARK(boost_fiber_future_footprint)
    ->Name("footprint/boost_fiber_future")
    ->Apply(footprint_args);
BENCHMARK(asio_promise_footprint)->Name("footprint/asio_promise")->Apply(footprint_args);
BENCHMARK(asio_futures_waiter_footprint)
    ->Name("footprint/asio_futures_waiter")
    ->Apply(footprint_args);
