// ready_roundtrip — create a future, set it, read the result, all on one thread.
//
// DESIGN.md §7 target: asio_futures >= 10x faster than std::promise/std::future
// (each set_value pays a futex syscall here) and >= 3x faster than
// boost::promise/boost::future; close to the floor of one allocation and a few
// atomics (~30 ns here). `floor_alloc_atomics` is that floor written by hand: one
// heap block, a release store and an acquire load of a state word, a reference
// count. No io_context runs: a future with no waiter schedules nothing.

#ifndef BOOST_THREAD_VERSION
#define BOOST_THREAD_VERSION 5
#endif

#include <asio_futures/future.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/io_context.hpp>
#include <boost/thread/future.hpp>

#include <atomic>
#include <future>

namespace {

namespace af = asio_futures;
namespace asio = boost::asio;

void asio_futures_roundtrip(benchmark::State& state) {
  asio::io_context ioc;
  int i = 0;
  for (auto _ : state) {
    af::future<int> f(ioc.get_executor());
    f.set_result(i++);
    benchmark::DoNotOptimize(f.result());
  }
}

void std_future_roundtrip(benchmark::State& state) {
  int i = 0;
  for (auto _ : state) {
    std::promise<int> p;
    std::future<int> f = p.get_future();
    p.set_value(i++);
    benchmark::DoNotOptimize(f.get());
  }
}

void boost_future_roundtrip(benchmark::State& state) {
  int i = 0;
  for (auto _ : state) {
    boost::promise<int> p;
    boost::future<int> f = p.get_future();
    p.set_value(i++);
    benchmark::DoNotOptimize(f.get());
  }
}

// The floor: what any shared-state future must at least do.
struct floor_state {
  std::atomic<unsigned> refs{2}; // promise side + future side
  std::atomic<unsigned> done{0};
  int value = 0;
};

void floor_alloc_atomics(benchmark::State& state) {
  int i = 0;
  for (auto _ : state) {
    auto* s = new floor_state;
    benchmark::DoNotOptimize(s);
    s->value = i++;
    s->done.store(1, std::memory_order_release);
    s->refs.fetch_sub(1, std::memory_order_acq_rel); // setter's handle dies
    if (s->done.load(std::memory_order_acquire) != 0)
      benchmark::DoNotOptimize(s->value);
    if (s->refs.fetch_sub(1, std::memory_order_acq_rel) == 1)
      delete s;
  }
}

} // namespace

BENCHMARK(asio_futures_roundtrip)->Name("ready_roundtrip/asio_futures")->UseRealTime();
BENCHMARK(std_future_roundtrip)->Name("ready_roundtrip/std_future")->UseRealTime();
BENCHMARK(boost_future_roundtrip)->Name("ready_roundtrip/boost_future")->UseRealTime();
BENCHMARK(floor_alloc_atomics)->Name("ready_roundtrip/floor_alloc_atomics")->UseRealTime();
