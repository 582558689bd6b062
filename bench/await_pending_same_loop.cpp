// await_pending_same_loop — a coroutine awaits a pending future that another
// coroutine on the same io_context sets.
//
// Shape: a ping-pong of two coroutines, so that every iteration is exactly one
// hand-off = one "set + resume the coroutine waiting for it" through the
// scheduler, while the other coroutine suspends:
//
//   A: wait(mine) ... wake(B) wait(mine) ...
//   B: wake(A) wait(mine) ... wake(A) wait(mine) ...
//
// The baseline is the same awaitable doing `co_await asio::post(ex, use_awaitable)`:
// one suspension and one resumption through the scheduler per iteration, the
// floor for any hand-off. Peers doing the same hand-off:
//  - asio_futures: a fresh af::future<int> per hand-off (creation is part of the
//    cost: that is how a future is used), `co_await f.async_wait()`, `set_result`.
//  - channel: experimental::channel<void(error_code, int)>, unbuffered, one per
//    coroutine; the waker's try_send hands the value to the waiting async_receive.
//  - promise: experimental::promise<void(int)> made with use_promise from an
//    operation whose handler is kept in a slot; a fresh one per hand-off. It
//    completes its waiter inline, inside the call that completes it, so the waker
//    posts that call (one scheduler trip, as for the others; calling it in place
//    would nest coroutine resumptions). int, because Boost 1.81 hands a moved-from
//    value to a waiter attached before completion.
//  - steady_timer: a timer at time_point::max() used as an event; cancel() wakes
//    the waiter (operation_aborted), the value travels in a plain int.
//  - boost_fiber_future: the same ping-pong between two fibers of Boost.Fiber on the
//    benchmark thread, through boost::fibers::promise/future (its own scheduler, no Asio).
//  - asio_post_handler: the floor without a coroutine: a plain handler that posts itself
//    (for information: what a scheduler trip costs with nothing to resume).
//
// The io_context runs once per benchmark run (asio_futures_bench::coroutine_run): both
// coroutines are spawned to do the run's hand-offs between them, so spawning is amortised.
// Speed target (docs/speed-targets.md): asio_futures <= 1.3x the baseline, faster than channel and
// promise.

#include "support.hpp"

#include <asio_futures/future.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/experimental/promise.hpp>
#include <boost/asio/experimental/use_promise.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/future.hpp>

#include <cstdint>
#include <optional>

namespace {

namespace af = asio_futures;
namespace asio = boost::asio;
using boost::system::error_code;

using asio_futures_bench::check;
using asio_futures_bench::coroutine_run;
using asio_futures_bench::post_loop;

/// Runs two players on `r`'s io_context: `make_player(me, per_player, starter)` returns the
/// coroutine of player `me`; together they make the run's (even) number of hand-offs.
template <class MakePlayer> void run_players(coroutine_run& r, MakePlayer make_player) {
  r.run(
      [&](std::int64_t n) {
        // The waiter first: it is waiting by the time the starter wakes it.
        asio::co_spawn(r.ioc, make_player(0, n / 2, false), r.on_exit());
        asio::co_spawn(r.ioc, make_player(1, n / 2, true), r.on_exit());
      },
      2);
}

// --- baseline: co_await asio::post ------------------------------------------

void baseline_post(benchmark::State& state) {
  coroutine_run r(state);
  r.run_coroutine([&](std::int64_t n) { return post_loop(n, r.done); });
}

// --- the floor without a coroutine: a handler that posts itself ------------------

struct repost {
  asio::io_context& ioc;
  std::int64_t& done;
  std::int64_t left;
  void operator()() {
    ++done;
    if (--left > 0)
      asio::post(ioc, repost{ioc, done, left});
  }
};

void baseline_post_handler(benchmark::State& state) {
  coroutine_run r(state);
  r.run([&](std::int64_t n) { asio::post(r.ioc, repost{r.ioc, r.done, n}); });
}

// --- asio_futures ------------------------------------------------------------

// slot[i] is the future player i waits for next; the other player sets it.
asio::awaitable<void> future_player(af::future<int> (&slot)[2], int me, std::int64_t n,
                                    bool starter, std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  if (starter)
    slot[1 - me].set_result(0);
  for (std::int64_t i = 0; i < n; ++i) {
    int v = co_await slot[me].async_wait();
    ++done;
    // Publish my next future before waking the other, who will set it.
    slot[me] = af::future<int>(ex);
    if (!(starter && i + 1 == n))
      slot[1 - me].set_result(v + 1);
  }
}

void asio_futures_pingpong(benchmark::State& state) {
  coroutine_run r(state);
  af::future<int> slot[2] = {af::future<int>(r.ioc.get_executor()),
                             af::future<int>(r.ioc.get_executor())};
  run_players(r, [&](int me, std::int64_t n, bool starter) {
    return future_player(slot, me, n, starter, r.done);
  });
}

// --- experimental::channel ---------------------------------------------------

using int_channel = asio::experimental::channel<void(error_code, int)>;

asio::awaitable<void> channel_player(int_channel (&ch)[2], int me, std::int64_t n, bool starter,
                                     std::int64_t& done) {
  if (starter)
    check(ch[1 - me].try_send(error_code{}, 0), "channel: nobody waiting");
  for (std::int64_t i = 0; i < n; ++i) {
    int v = co_await ch[me].async_receive(asio::use_awaitable);
    ++done;
    if (!(starter && i + 1 == n))
      check(ch[1 - me].try_send(error_code{}, v + 1), "channel: nobody waiting");
  }
}

void channel_pingpong(benchmark::State& state) {
  coroutine_run r(state);
  int_channel ch[2] = {int_channel(r.ioc, 0), int_channel(r.ioc, 0)};
  run_players(r, [&](int me, std::int64_t n, bool starter) {
    return channel_player(ch, me, n, starter, r.done);
  });
}

// --- experimental::promise ---------------------------------------------------

using int_promise = asio::experimental::promise<void(int), asio::any_io_executor>;
using int_promise_handler = asio_futures_bench::use_promise_handler<void(int)>;

struct promise_slot {
  std::optional<int_promise> promise;         // what the owner awaits
  std::optional<int_promise_handler> handler; // what the other completes
};

/// An operation that never completes by itself: its handler goes to a slot.
struct initiate_settable {
  using executor_type = asio::any_io_executor;
  executor_type ex;
  executor_type get_executor() const noexcept { return ex; }

  template <class Handler>
  void operator()(Handler&& h, std::optional<int_promise_handler>* slot) const {
    slot->emplace(std::forward<Handler>(h));
  }
};

void arm(promise_slot& s, const asio::any_io_executor& ex) {
  s.promise.emplace(asio::async_initiate<const asio::experimental::use_promise_t<>&, void(int)>(
      initiate_settable{ex}, asio::experimental::use_promise, &s.handler));
}

void complete(promise_slot& s, const asio::any_io_executor& ex, int v) {
  asio::post(ex, [h = std::move(*s.handler), v]() mutable { h(v); });
}

asio::awaitable<void> promise_player(promise_slot (&slot)[2], int me, std::int64_t n, bool starter,
                                     std::int64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  if (starter)
    complete(slot[1 - me], ex, 0);
  for (std::int64_t i = 0; i < n; ++i) {
    int v = co_await (*slot[me].promise)(asio::use_awaitable);
    ++done;
    arm(slot[me], ex);
    if (!(starter && i + 1 == n))
      complete(slot[1 - me], ex, v + 1);
  }
}

void promise_pingpong(benchmark::State& state) {
  coroutine_run r(state);
  promise_slot slot[2];
  arm(slot[0], r.ioc.get_executor());
  arm(slot[1], r.ioc.get_executor());
  run_players(r, [&](int me, std::int64_t n, bool starter) {
    return promise_player(slot, me, n, starter, r.done);
  });
}

// --- steady_timer as an event ------------------------------------------------

struct timer_event {
  asio::steady_timer timer;
  int value = 0;
  explicit timer_event(asio::io_context& ioc) : timer(ioc, asio::steady_timer::time_point::max()) {}
};

void wake(timer_event& e, int v) {
  e.value = v;
  check(e.timer.cancel() == 1, "timer: nobody waiting");
}

asio::awaitable<void> timer_player(timer_event (&ev)[2], int me, std::int64_t n, bool starter,
                                   std::int64_t& done) {
  if (starter)
    wake(ev[1 - me], 0);
  for (std::int64_t i = 0; i < n; ++i) {
    auto [ec] = co_await ev[me].timer.async_wait(asio::as_tuple(asio::use_awaitable));
    check(ec == asio::error::operation_aborted, "timer: expired");
    ++done;
    if (!(starter && i + 1 == n))
      wake(ev[1 - me], ev[me].value + 1);
  }
}

void timer_pingpong(benchmark::State& state) {
  coroutine_run r(state);
  timer_event ev[2] = {timer_event(r.ioc), timer_event(r.ioc)};
  run_players(r, [&](int me, std::int64_t n, bool starter) {
    return timer_player(ev, me, n, starter, r.done);
  });
}

// --- Boost.Fiber: two fibers, fibers::promise/future -------------------------------

void boost_fiber_pingpong(benchmark::State& state) {
  namespace bf = boost::fibers;
  const std::int64_t per_player = (state.max_iterations + 1) / 2;
  std::int64_t done = 0;
  while (state.KeepRunningBatch(2 * per_player)) {
    bf::promise<int> slot[2];
    bf::future<int> fut[2] = {slot[0].get_future(), slot[1].get_future()};
    // Same protocol as future_player; an exception escaping a fiber terminates the process.
    auto player = [&](int me, bool starter) {
      if (starter)
        slot[1 - me].set_value(0);
      for (std::int64_t i = 0; i < per_player; ++i) {
        int v = fut[me].get(); // suspends this fiber; the scheduler runs the other one
        ++done;
        slot[me] = bf::promise<int>();
        fut[me] = slot[me].get_future();
        if (!(starter && i + 1 == per_player))
          slot[1 - me].set_value(v + 1);
      }
    };
    // launch::post (the default): both start when the benchmark thread's fiber joins.
    bf::fiber waiter(player, 0, false);
    bf::fiber starter(player, 1, true);
    waiter.join();
    starter.join();
  }
  if (done != 2 * per_player)
    state.SkipWithError("boost_fiber: wrong number of hand-offs");
}

} // namespace

BENCHMARK(baseline_post)->Name("await_pending_same_loop/asio_post")->UseRealTime();
BENCHMARK(baseline_post_handler)->Name("await_pending_same_loop/asio_post_handler")->UseRealTime();
BENCHMARK(asio_futures_pingpong)->Name("await_pending_same_loop/asio_futures")->UseRealTime();
BENCHMARK(channel_pingpong)->Name("await_pending_same_loop/channel")->UseRealTime();
BENCHMARK(promise_pingpong)->Name("await_pending_same_loop/promise")->UseRealTime();
BENCHMARK(timer_pingpong)->Name("await_pending_same_loop/steady_timer")->UseRealTime();
BENCHMARK(boost_fiber_pingpong)->Name("await_pending_same_loop/boost_fiber_future")->UseRealTime();
