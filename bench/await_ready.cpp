// await_ready — a coroutine awaits a future that is already done.
//
// Shape: one coroutine awaits the same done af::future<int> n times (a done future can be
// awaited any number of times; its value is copied to each waiter). What is measured is
// the wait alone: starting it on a done future and resuming the coroutine.
//
//  - asio_futures: `co_await f.async_wait()`. The completion is posted to the coroutine's
//    executor (never run inside async_wait), so each wait is one scheduler trip: the
//    behaviour before immediate completion, and still the default.
//  - asio_futures_immediate (Asio >= 1.28, Boost 1.82): `co_await
//    f.async_wait(asio::bind_immediate_executor(ex, asio::use_awaitable))`. The handler's
//    immediate executor is the coroutine's own executor: the completion is dispatched there,
//    and a dispatch from the thread that runs it resumes the coroutine at once.
//  - asio_post: `co_await asio::post(ex, use_awaitable)`, one scheduler trip: the floor of
//    the posted form (the peer).
//  - asio_dispatch: `co_await asio::dispatch(ex, use_awaitable)` from the executor's own
//    thread, which resumes at once: the floor of the immediate form.
//
// The same with a plain callback handler that starts the next wait itself (the way
// callback-style code chains operations):
//  - asio_futures_callback: posted completions, one scheduler trip per wait;
//  - immediate_callback (Asio >= 1.28): `bind_immediate_executor(asio::system_executor(), h)`,
//    which runs the handler inside async_wait: no scheduler trip;
//  - asio_post_callback: a handler that posts itself, the floor of the posted form.
//
// An inline resumption nests: the coroutine continues inside the call that resumed it, so a
// loop of them grows the stack until it overflows (asio::dispatch's as much as ours). The
// two inline rows therefore unwind every `burst` awaits with one posted yield, whose cost
// they carry (1/32 of a scheduler trip per await). The same holds for users: an immediate
// executor that resumes inline is for awaits that are rarely done, or whose depth is bounded.
//
// The io_context runs once per benchmark run (asio_futures_bench::coroutine_run).
// Implied target: the posted form <= 1.3x asio_post (await_pending_same_loop's bar for one
// scheduler trip); the immediate form is shown against the dispatch floor.

#include "support.hpp"

#include <asio_futures/future.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/version.hpp>
#if BOOST_ASIO_VERSION >= 102800
#include <boost/asio/bind_immediate_executor.hpp>
#endif

#include <cstdint>
#include <exception>

namespace {

namespace af = asio_futures;
namespace asio = boost::asio;

using asio_futures_bench::check;
using asio_futures_bench::coroutine_run;
using asio_futures_bench::post_loop;

/// Inline resumptions between two posted yields (see the file comment).
constexpr std::int64_t burst = 32;

asio::awaitable<void> await_loop(std::int64_t n, std::int64_t& done) {
  const auto f = af::make_ready_future(co_await asio::this_coro::executor, 1);
  for (std::int64_t i = 0; i < n; ++i) {
    check(co_await f.async_wait() == 1, "asio_futures: wrong value");
    ++done;
  }
}

void asio_futures_posted(benchmark::State& state) {
  coroutine_run r(state);
  r.run_coroutine([&](std::int64_t n) { return await_loop(n, r.done); });
}

#if BOOST_ASIO_VERSION >= 102800
asio::awaitable<void> immediate_loop(std::int64_t n, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  const auto f = af::make_ready_future(ex, 1);
  for (std::int64_t i = 0; i < n; ++i) {
    if (i % burst == 0)
      co_await asio::post(ex, asio::use_awaitable); // unwind the nested resumptions
    check(co_await f.async_wait(asio::bind_immediate_executor(ex, asio::use_awaitable)) == 1,
          "asio_futures_immediate: wrong value");
    ++done;
  }
}

void asio_futures_immediate(benchmark::State& state) {
  coroutine_run r(state);
  r.run_coroutine([&](std::int64_t n) { return immediate_loop(n, r.done); });
}
#endif

void asio_post(benchmark::State& state) {
  coroutine_run r(state);
  r.run_coroutine([&](std::int64_t n) { return post_loop(n, r.done); });
}

asio::awaitable<void> dispatch_loop(std::int64_t n, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  for (std::int64_t i = 0; i < n; ++i) {
    if (i % burst == 0)
      co_await asio::post(ex, asio::use_awaitable); // unwind the nested resumptions
    co_await asio::dispatch(ex, asio::use_awaitable);
    ++done;
  }
}

void asio_dispatch(benchmark::State& state) {
  coroutine_run r(state);
  r.run_coroutine([&](std::int64_t n) { return dispatch_loop(n, r.done); });
}

// --- callback handlers ---------------------------------------------------------------

/// Waits on `f` again from its own completion until `n` waits are done; with `immediate`,
/// through an inline immediate executor, except every `burst`-th wait, which is posted and
/// unwinds the nested calls.
struct callback_chain {
  const af::future<int>* f;
  std::int64_t* done;
  std::int64_t n;
  bool immediate;

  void operator()(std::exception_ptr e, int v) {
    check(!e && v == 1, "callback: wrong outcome");
    if (++*done < n)
      start(*f, *done, std::move(*this));
  }

  static void start(const af::future<int>& f, std::int64_t i, callback_chain&& next) {
#if BOOST_ASIO_VERSION >= 102800
    if (next.immediate && i % burst != 0) {
      f.async_wait(asio::bind_immediate_executor(asio::system_executor(), std::move(next)));
      return;
    }
#endif
    (void)i;
    f.async_wait(std::move(next));
  }
};

void run_callback_chain(benchmark::State& state, bool immediate) {
  coroutine_run r(state);
  const auto f = af::make_ready_future(r.ioc.get_executor(), 1);
  r.run([&](std::int64_t n) { callback_chain::start(f, 0, {&f, &r.done, n, immediate}); });
}

void asio_futures_callback(benchmark::State& state) {
  run_callback_chain(state, false);
}

#if BOOST_ASIO_VERSION >= 102800
void immediate_callback(benchmark::State& state) {
  run_callback_chain(state, true);
}
#endif

struct repost {
  asio::io_context& ioc;
  std::int64_t& done;
  std::int64_t n;
  void operator()() {
    if (++done < n)
      asio::post(ioc, std::move(*this));
  }
};

void asio_post_callback(benchmark::State& state) {
  coroutine_run r(state);
  r.run([&](std::int64_t n) { asio::post(r.ioc, repost{r.ioc, r.done, n}); });
}

} // namespace

BENCHMARK(asio_futures_posted)->Name("await_ready/asio_futures")->UseRealTime();
#if BOOST_ASIO_VERSION >= 102800
BENCHMARK(asio_futures_immediate)->Name("await_ready/asio_futures_immediate")->UseRealTime();
#endif
BENCHMARK(asio_post)->Name("await_ready/asio_post")->UseRealTime();
BENCHMARK(asio_dispatch)->Name("await_ready/asio_dispatch")->UseRealTime();
BENCHMARK(asio_futures_callback)->Name("await_ready/asio_futures_callback")->UseRealTime();
#if BOOST_ASIO_VERSION >= 102800
BENCHMARK(immediate_callback)->Name("await_ready/immediate_callback")->UseRealTime();
#endif
BENCHMARK(asio_post_callback)->Name("await_ready/asio_post_callback")->UseRealTime();
