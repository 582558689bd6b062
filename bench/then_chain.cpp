// then_chain — a chain of 100 `then` continuations, reported per link.
//
// Per round: make a pending root future, attach 100 continuations one after the other (each
// `x -> x + 1` on the previous link's future), resolve the root, wait for the last link and
// check its value.
//
//  - asio_futures: `f = f.then([](int x) { return x + 1; })` on an io_context driven by the
//    benchmark thread; each link's continuation is a done-callback posted to the io_context
//    when the previous link resolves (callbacks never run inline), so a link
//    costs a future, a callback node and one scheduler trip.
//  - boost_future_then_sync: Boost.Thread's `f = f.then(boost::launch::sync, [](auto x) {
//    return x.get() + 1; })`: continuations run inline in the thread that resolves the
//    previous future (no scheduler), each with its own shared state, mutex and condition.
//  - asio_post_chain: the raw-Asio floor of a posted continuation: 100 handlers, each posted
//    by the previous one with the value + 1 (no future, no node: only the scheduler trips
//    that posting every callback makes every link pay).
// std::future and boost::fibers::future have no continuations.
//
// Target (issue 4): asio_futures >= 5x faster than boost_future_then_sync.

#include <asio_futures/future.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/thread/future.hpp>

#include <cstdint>

namespace {

namespace af = asio_futures;
namespace asio = boost::asio;

constexpr int kLinks = 100;

void asio_futures_then(benchmark::State& state) {
  asio::io_context ioc;
  const std::int64_t rounds = (state.max_iterations + kLinks - 1) / kLinks;
  while (state.KeepRunningBatch(rounds * kLinks)) {
    for (std::int64_t r = 0; r < rounds; ++r) {
      af::future<int> root(ioc.get_executor());
      af::future<int> f = root;
      for (int i = 0; i < kLinks; ++i)
        f = f.then([](int x) { return x + 1; });
      root.set_result(0);
      ioc.restart();
      ioc.run(); // runs the 100 continuations, one posted after the other
      if (f.result() != kLinks) {
        state.SkipWithError("asio_futures: wrong result");
        return;
      }
    }
  }
}

void boost_future_then_sync(benchmark::State& state) {
  const std::int64_t rounds = (state.max_iterations + kLinks - 1) / kLinks;
  while (state.KeepRunningBatch(rounds * kLinks)) {
    for (std::int64_t r = 0; r < rounds; ++r) {
      boost::promise<int> root;
      boost::future<int> f = root.get_future();
      for (int i = 0; i < kLinks; ++i)
        f = f.then(boost::launch::sync, [](boost::future<int> x) { return x.get() + 1; });
      root.set_value(0);
      if (f.get() != kLinks) {
        state.SkipWithError("boost_future_then_sync: wrong result");
        return;
      }
    }
  }
}

/// Link number `value` of the floor: posts the next link (value + 1) until none is `left`.
struct post_link {
  asio::io_context& ioc;
  int& result;
  int value;
  int left;
  void operator()() const {
    if (left == 0)
      result = value;
    else
      asio::post(ioc, post_link{ioc, result, value + 1, left - 1});
  }
};

void asio_post_chain(benchmark::State& state) {
  asio::io_context ioc;
  const std::int64_t rounds = (state.max_iterations + kLinks - 1) / kLinks;
  while (state.KeepRunningBatch(rounds * kLinks)) {
    for (std::int64_t r = 0; r < rounds; ++r) {
      int result = -1;
      asio::post(ioc, post_link{ioc, result, 1, kLinks - 1}); // kLinks handlers in all
      ioc.restart();
      ioc.run();
      if (result != kLinks) {
        state.SkipWithError("asio_post_chain: wrong result");
        return;
      }
    }
  }
}

} // namespace

BENCHMARK(asio_futures_then)->Name("then_chain/asio_futures")->UseRealTime();
BENCHMARK(boost_future_then_sync)->Name("then_chain/boost_future_then_sync")->UseRealTime();
BENCHMARK(asio_post_chain)->Name("then_chain/asio_post_chain")->UseRealTime();
