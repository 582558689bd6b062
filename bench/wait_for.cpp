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
// Every impl pays the future's creation and the posted setter. No DESIGN.md target: the
// report prints the ratios (bench/report lists the scenario without bars).
//
// Every benchmark run spawns one driver and runs the io_context once (KeepRunningBatch);
// the per-operation time is the run's wall-clock time divided by the number of waits.
// Results are checked.

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

void check(bool ok, const char* what) {
  if (!ok)
    throw std::runtime_error(what);
}

/// Drives one benchmark run: `spawn(n)` starts a driver doing `n` waits, counted in `done`.
struct wait_run {
  benchmark::State& state;
  asio::io_context ioc;
  std::int64_t done = 0;
  std::exception_ptr error;

  explicit wait_run(benchmark::State& s) : state(s) {}

  auto on_exit() {
    return [this](std::exception_ptr e) {
      if (e && !error) {
        error = e;
        ioc.stop();
      }
    };
  }

  template <class Spawn> void run(Spawn spawn) {
    const std::int64_t n = state.max_iterations;
    while (state.KeepRunningBatch(n)) {
      spawn(n);
      ioc.run();
    }
    if (error) {
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        state.SkipWithError(e.what());
      }
    } else if (done != n)
      state.SkipWithError("wrong number of waits");
  }
};

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

asio::awaitable<void> wait_for_driver(std::int64_t n, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  for (std::int64_t i = 0; i < n; ++i) {
    const int expected = static_cast<int>(i);
    af::future<int> f = resolved_soon(ex, expected);
    const int v = co_await af::wait_for(f, kDeadline).async_wait();
    check(v == expected, "asio_futures: wrong result");
    ++done;
  }
}

void asio_futures_wait_for(benchmark::State& state) {
  wait_run r(state);
  r.run([&](std::int64_t n) { asio::co_spawn(r.ioc, wait_for_driver(n, r.done), r.on_exit()); });
}

// --- awaitable_operators: f.async_wait() || timer.async_wait() ---------------------------

asio::awaitable<void> operators_driver(std::int64_t n, std::int64_t& done) {
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
}

void awaitable_operators_wait_for(benchmark::State& state) {
  wait_run r(state);
  r.run([&](std::int64_t n) { asio::co_spawn(r.ioc, operators_driver(n, r.done), r.on_exit()); });
}

// --- bare_await: no deadline (the floor) -------------------------------------------------

asio::awaitable<void> bare_driver(std::int64_t n, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  for (std::int64_t i = 0; i < n; ++i) {
    const int expected = static_cast<int>(i);
    af::future<int> f = resolved_soon(ex, expected);
    const int v = co_await f.async_wait();
    check(v == expected, "bare_await: wrong result");
    ++done;
  }
}

void bare_await(benchmark::State& state) {
  wait_run r(state);
  r.run([&](std::int64_t n) { asio::co_spawn(r.ioc, bare_driver(n, r.done), r.on_exit()); });
}

// --- asio_futures_awaitable_form: wait_for(awaitable, d) ---------------------------------

asio::awaitable<void> awaitable_form_driver(std::int64_t n, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  for (std::int64_t i = 0; i < n; ++i) {
    const int expected = static_cast<int>(i);
    af::future<int> f = resolved_soon(ex, expected);
    const int v = co_await af::wait_for(value_of(f), kDeadline);
    check(v == expected, "asio_futures_awaitable_form: wrong result");
    ++done;
  }
}

void asio_futures_awaitable_form(benchmark::State& state) {
  wait_run r(state);
  r.run([&](std::int64_t n) {
    asio::co_spawn(r.ioc, awaitable_form_driver(n, r.done), r.on_exit());
  });
}

} // namespace

BENCHMARK(asio_futures_wait_for)->Name("wait_for/asio_futures")->UseRealTime();
BENCHMARK(awaitable_operators_wait_for)->Name("wait_for/awaitable_operators")->UseRealTime();
BENCHMARK(bare_await)->Name("wait_for/bare_await")->UseRealTime();
BENCHMARK(asio_futures_awaitable_form)->Name("wait_for/asio_futures_awaitable_form")->UseRealTime();
