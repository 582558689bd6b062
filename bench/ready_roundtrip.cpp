// ready_roundtrip — create a future, set it, read the result, all on one thread.
//
// Speed target (docs/speed-targets.md): asio_futures >= 10x faster than std::promise/std::future
// (each set_value pays a futex syscall here) and >= 3x faster than
// boost::promise/boost::future; close to the floor of one allocation and a few
// atomics (~30 ns here). `floor_alloc_atomics` is that floor written by hand: one
// heap block, a release store and an acquire load of a state word, a reference
// count. No io_context runs: a future with no waiter schedules nothing.
//
// More peers doing the same job:
//  - boost_fiber_future: boost::fibers::promise/future (Boost.Fiber), on the main fiber.
//  - asio_use_future: Asio's bridge to std::future: an operation completed inline through an
//    `asio::use_future` handler, then `get()` (a std::promise underneath, plus the handler).
//  - asio_promise: `experimental::promise<void(int)>` from `use_promise`, completed inline,
//    its value read by attaching a waiter, which Asio posts even for a completed promise
//    (it has no synchronous accessor), so each iteration also polls the io_context once.

#include "support.hpp"

#include <asio_futures/future.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/async_result.hpp>
#include <boost/asio/experimental/promise.hpp>
#include <boost/asio/experimental/use_promise.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/fiber/future.hpp>
#include <boost/thread/future.hpp>

#include <atomic>
#include <future>
#include <optional>

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

void boost_fiber_future_roundtrip(benchmark::State& state) {
  int i = 0;
  for (auto _ : state) {
    boost::fibers::promise<int> p;
    boost::fibers::future<int> f = p.get_future();
    p.set_value(i++);
    benchmark::DoNotOptimize(f.get());
  }
}

/// An operation that completes when its handler, kept in `slot`, is called.
template <class Handler> struct initiate_into_slot {
  template <class H> void operator()(H&& h, std::optional<Handler>* slot) const {
    slot->emplace(std::forward<H>(h));
  }
};

void asio_use_future_roundtrip(benchmark::State& state) {
  using handler = asio_futures_bench::use_future_handler<void(int)>;
  std::optional<handler> slot;
  int i = 0;
  for (auto _ : state) {
    std::future<int> f = asio::async_initiate<const asio::use_future_t<>&, void(int)>(
        initiate_into_slot<handler>{}, asio::use_future, &slot);
    (*slot)(i++);
    slot.reset();
    benchmark::DoNotOptimize(f.get());
  }
}

void asio_promise_roundtrip(benchmark::State& state) {
  asio::io_context ioc;
  using handler = asio_futures_bench::use_promise_handler<void(int)>;
  // An initiation with an executor: use_promise takes the promise's executor from it.
  struct initiate {
    using executor_type = asio::any_io_executor;
    executor_type ex;
    executor_type get_executor() const noexcept { return ex; }
    void operator()(handler h, std::optional<handler>* slot) const { slot->emplace(std::move(h)); }
  };
  std::optional<handler> slot;
  int i = 0;
  int got = -1;
  for (auto _ : state) {
    auto p = asio::async_initiate<const asio::experimental::use_promise_t<>&, void(int)>(
        initiate{ioc.get_executor()}, asio::experimental::use_promise, &slot);
    (*slot)(i);
    slot.reset();
    p([&got](int v) { got = v; });
    ioc.poll();
    ioc.restart();
    if (got != i++) {
      state.SkipWithError("asio_promise: wrong result");
      break;
    }
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
BENCHMARK(boost_fiber_future_roundtrip)->Name("ready_roundtrip/boost_fiber_future")->UseRealTime();
BENCHMARK(asio_use_future_roundtrip)->Name("ready_roundtrip/asio_use_future")->UseRealTime();
BENCHMARK(asio_promise_roundtrip)->Name("ready_roundtrip/asio_promise")->UseRealTime();
BENCHMARK(floor_alloc_atomics)->Name("ready_roundtrip/floor_alloc_atomics")->UseRealTime();
