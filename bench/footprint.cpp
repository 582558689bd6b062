// footprint — heap cost of a pending future, counted at malloc level.
//
// Each iteration creates kFutures pending futures (and keeps them alive, so
// nothing is recycled between them) inside a counting_scope (alloc_hook.hpp),
// then destroys them outside it. One future is made first, uncounted, so that
// one-time costs (the context's service, lazy statics) are not charged per future. Reported as
// counters, per future:
//   allocs_per_future  — allocation calls (malloc, aligned_alloc, ... and so
//                        operator new),
//   bytes_per_future   — malloc_usable_size() of those blocks: what the heap
//                        really hands out (requests are rounded up to 16 bytes,
//                        minimum 24 usable),
//   requested_per_future — the sizes asked for.
// No io_context runs on this thread, so Asio's thread-local recycling cache is
// not in play: every block is a real allocation.
//
// Peers: std::promise + std::future, boost::promise + boost::future (the pair is
// what one pending std/boost future costs). asio_futures_waiter measures, apart
// from the future itself, what attaching one callback waiter (async_wait with a
// plain lambda) to a pending future costs.
// DESIGN.md §7 target: a pending future<int> costs one allocation, <= 128 bytes.

#ifndef BOOST_THREAD_VERSION
#define BOOST_THREAD_VERSION 5
#endif

#include "alloc_hook.hpp"

#include <asio_futures/future.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/io_context.hpp>
#include <boost/thread/future.hpp>

#include <exception>
#include <future>
#include <utility>
#include <vector>

namespace {

namespace af = asio_futures;
namespace asio = boost::asio;
using asio_futures_bench::alloc_counts;
using asio_futures_bench::counting_scope;

constexpr int kFutures = 1000;
constexpr int kIterations = 20;

void report(benchmark::State& state, const alloc_counts& total) {
  const double n = static_cast<double>(state.iterations()) * kFutures;
  state.counters["allocs_per_future"] = static_cast<double>(total.allocs) / n;
  state.counters["bytes_per_future"] = static_cast<double>(total.usable_bytes) / n;
  state.counters["requested_per_future"] = static_cast<double>(total.requested_bytes) / n;
}

void add(alloc_counts& total, const alloc_counts& c) {
  total.allocs += c.allocs;
  total.frees += c.frees;
  total.requested_bytes += c.requested_bytes;
  total.usable_bytes += c.usable_bytes;
}

/// Counts what `make()` allocates, kFutures times per iteration.
bool hook_available(benchmark::State& state) {
  if (!asio_futures_bench::alloc_hook_active)
    state.SkipWithError("malloc hooks are off under sanitizers");
  return asio_futures_bench::alloc_hook_active;
}

template <class Make> void measure(benchmark::State& state, Make make) {
  if (!hook_available(state))
    return;
  std::vector<decltype(make())> keep;
  keep.reserve(kFutures); // outside the count
  // One-time costs (a context's service, lazily created statics) are not per future.
  (void)make();
  alloc_counts total;
  for (auto _ : state) {
    {
      counting_scope scope;
      for (int i = 0; i < kFutures; ++i)
        keep.push_back(make());
      add(total, scope.counts());
    }
    keep.clear();
  }
  report(state, total);
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

void asio_futures_waiter_footprint(benchmark::State& state) {
  if (!hook_available(state))
    return;
  asio::io_context ioc;
  std::vector<af::future<int>> futures;
  futures.reserve(kFutures);
  alloc_counts total;
  int completed = 0;
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
    for (int i = 0; i < kFutures; ++i)
      futures.emplace_back(ioc.get_executor());
    {
      counting_scope scope;
      for (auto& f : futures)
        f.async_wait([&completed](std::exception_ptr, int) { ++completed; });
      add(total, scope.counts());
    }
    for (auto& f : futures)
      f.set_result(1);
    ioc.run();
    ioc.restart();
    futures.clear();
  }
  if (completed != state.iterations() * kFutures)
    state.SkipWithError("not every waiter completed");
  report(state, total);
}

} // namespace

BENCHMARK(asio_futures_footprint)->Name("footprint/asio_futures")->Iterations(kIterations);
BENCHMARK(std_future_footprint)->Name("footprint/std_future")->Iterations(kIterations);
BENCHMARK(boost_future_footprint)->Name("footprint/boost_future")->Iterations(kIterations);
BENCHMARK(asio_futures_waiter_footprint)
    ->Name("footprint/asio_futures_waiter")
    ->Iterations(kIterations);
