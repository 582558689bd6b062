// wait_for — the cost of awaiting a future under a deadline that does not expire.
//
// Per iteration, a driver coroutine on one io_context makes a fresh af::future<int>, posts
// its setter (so the future is resolved "soon after", on the next turn), and awaits it
// under a 10 s deadline that never fires:
//  - asio_futures: `co_await af::wait_for(f, 10s).async_wait()` — the future form: one
//    combinator state (the result future), a node on the inner, a steady_timer started and
//    cancelled.
//  - awaitable_operators: Asio's idiom, `co_await (f.async_wait() || timer.async_wait())`
//    with `experimental::awaitable_operators` and a steady_timer(ex, 10s) made per
//    iteration (two child coroutines and a parallel group).
//  - bare_await: `co_await f.async_wait()` with no deadline: the floor.
//  - asio_futures_awaitable_form: `co_await af::wait_for(value_of(f), 10s)`, the awaitable
//    form, which runs its argument as a child task (for information).
//
// Where the time goes: arming a steady_timer that becomes the earliest of its context costs
// a timerfd_settime system call, and once a context has a reactor (any timer or socket) its
// scheduler calls epoll_wait once per pass over its queue. Every run's context has a reactor
// (a timer is constructed on it), as in any program with a timer or a socket, so bare_await
// pays the epoll_wait too (without a reactor it is ~250 ns here). In the plain variants every
// new deadline is the earliest of the context. The `_earlier_timer` variants run the same
// loop while a 5 s timer is pending (as in a server with other timeouts): the 10 s deadlines
// never re-arm the timerfd. (5 s, not less: a benchmark run on a busy machine may take more
// than a second, and a timer that fired mid-run would turn the rest of it into the plain
// variant.) bench/report compares them with asio_futures_earlier_timer.
//
// Every impl pays the future's creation and the posted setter. No speed target: the
// report prints the ratios (bench/report lists the scenario without bars).
//
// Every benchmark run spawns one driver and runs the io_context once (coroutine_run);
// the per-operation time is the run's wall-clock time divided by the number of waits.
// Results are checked.

#include "support.hpp"

#include <asio_futures/wait.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <variant>

namespace {

namespace af = asio_futures;
namespace asio = boost::asio;

constexpr std::chrono::seconds kDeadline{10};

using asio_futures_bench::check;

using asio_futures_bench::coroutine_run;

/// Runs `make(n, done, earlier)`, a driver doing the run's n waits; with `earlier_timer`, a
/// 5 s timer is pending on the context meanwhile (the driver cancels `earlier` when done).
template <class MakeDriver>
void run_waits(benchmark::State& state, bool earlier_timer, MakeDriver make) {
  coroutine_run r(state);
  // Constructed in every variant: the context has a reactor, as any with a timer or socket.
  asio::steady_timer earlier(r.ioc, std::chrono::seconds(5));
  if (earlier_timer)
    earlier.async_wait([](boost::system::error_code) {});
  r.run_coroutine([&](std::int64_t n) { return make(n, r.done, earlier); });
}

/// A fresh future on `ex`, resolved with `v` on the executor's next turn.
af::future<int> resolved_soon(const asio::any_io_executor& ex, int v) {
  af::future<int> f(ex);
  asio::post(ex, [f, v] { f.set_result(v); });
  return f;
}

asio::awaitable<int> value_of(af::future<int> f) {
  co_return co_await f.async_wait();
}

// --- asio_futures: wait_for(future, d) ---------------------------------------------------

asio::awaitable<void> wait_for_driver(std::int64_t n, std::int64_t& done,
                                      asio::steady_timer& earlier) {
  auto ex = co_await asio::this_coro::executor;
  for (std::int64_t i = 0; i < n; ++i) {
    const int expected = static_cast<int>(i);
    af::future<int> f = resolved_soon(ex, expected);
    const int v = co_await af::wait_for(f, kDeadline).async_wait();
    check(v == expected, "asio_futures: wrong result");
    ++done;
  }
  earlier.cancel();
}

template <bool Earlier> void asio_futures_wait_for(benchmark::State& state) {
  run_waits(state, Earlier, wait_for_driver);
}

// --- awaitable_operators: f.async_wait() || timer.async_wait() ---------------------------

asio::awaitable<void> operators_driver(std::int64_t n, std::int64_t& done,
                                       asio::steady_timer& earlier) {
  using namespace asio::experimental::awaitable_operators;
  auto ex = co_await asio::this_coro::executor;
  for (std::int64_t i = 0; i < n; ++i) {
    const int expected = static_cast<int>(i);
    af::future<int> f = resolved_soon(ex, expected);
    asio::steady_timer timer(ex, kDeadline);
    auto r = co_await (f.async_wait() || timer.async_wait(asio::use_awaitable));
    check(r.index() == 0 && std::get<0>(r) == expected, "awaitable_operators: wrong result");
    ++done;
  }
  earlier.cancel();
}

template <bool Earlier> void awaitable_operators_wait_for(benchmark::State& state) {
  run_waits(state, Earlier, operators_driver);
}

// --- bare_await: no deadline (the floor) -------------------------------------------------

asio::awaitable<void> bare_driver(std::int64_t n, std::int64_t& done, asio::steady_timer& earlier) {
  auto ex = co_await asio::this_coro::executor;
  for (std::int64_t i = 0; i < n; ++i) {
    const int expected = static_cast<int>(i);
    af::future<int> f = resolved_soon(ex, expected);
    const int v = co_await f.async_wait();
    check(v == expected, "bare_await: wrong result");
    ++done;
  }
  earlier.cancel();
}

template <bool Earlier> void bare_await(benchmark::State& state) {
  run_waits(state, Earlier, bare_driver);
}

// --- asio_futures_awaitable_form: wait_for(awaitable, d) ---------------------------------

asio::awaitable<void> awaitable_form_driver(std::int64_t n, std::int64_t& done,
                                            asio::steady_timer& earlier) {
  auto ex = co_await asio::this_coro::executor;
  for (std::int64_t i = 0; i < n; ++i) {
    const int expected = static_cast<int>(i);
    af::future<int> f = resolved_soon(ex, expected);
    const int v = co_await af::wait_for(value_of(f), kDeadline);
    check(v == expected, "asio_futures_awaitable_form: wrong result");
    ++done;
  }
  earlier.cancel();
}

void asio_futures_awaitable_form(benchmark::State& state) {
  run_waits(state, false, awaitable_form_driver);
}

} // namespace

BENCHMARK(asio_futures_wait_for<false>)->Name("wait_for/asio_futures")->UseRealTime();
BENCHMARK(awaitable_operators_wait_for<false>)->Name("wait_for/awaitable_operators")->UseRealTime();
BENCHMARK(bare_await<false>)->Name("wait_for/bare_await")->UseRealTime();
BENCHMARK(asio_futures_awaitable_form)->Name("wait_for/asio_futures_awaitable_form")->UseRealTime();
BENCHMARK(asio_futures_wait_for<true>)->Name("wait_for/asio_futures_earlier_timer")->UseRealTime();
BENCHMARK(awaitable_operators_wait_for<true>)
    ->Name("wait_for/awaitable_operators_earlier_timer")
    ->UseRealTime();
BENCHMARK(bare_await<true>)->Name("wait_for/bare_await_earlier_timer")->UseRealTime();
