// Tests for <asio_futures/sync.hpp>: event, lock, semaphore, bounded_semaphore, condition,
// queue, priority_queue, lifo_queue.
#include <asio_futures/sync.hpp>

#include "support/checks.hpp"
#include "support/co_test.hpp"
#include "support/tracking.hpp"

#include <asio_futures/use_future.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/version.hpp>
#include <boost/test/unit_test.hpp>
#if BOOST_ASIO_VERSION >= 102800
#include <boost/asio/bind_immediate_executor.hpp>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace asio = boost::asio;
namespace af = asio_futures;
namespace aft = asio_futures_test;

namespace {

/// What one completion delivered.
struct result {
  bool done = false;
  std::exception_ptr error;
};

/// A handler recording into `r`; it also appends `id` to `order` if given.
auto record(result& r, std::vector<int>* order = nullptr, int id = 0) {
  return [&r, order, id](std::exception_ptr e) {
    BOOST_TEST(!aft::inside_call::active()); // never inside the initiating call
    r.done = true;
    r.error = std::move(e);
    if (order)
      order->push_back(id);
  };
}

template <class T> struct value_result {
  bool done = false;
  std::exception_ptr error;
  T value{};
};

template <class T> auto record_value(value_result<T>& r) {
  return [&r](std::exception_ptr e, T v) {
    BOOST_TEST(!aft::inside_call::active());
    r.done = true;
    r.error = std::move(e);
    r.value = std::move(v);
  };
}

/// Waits (yielding) for `pred` from a thread that runs nothing; fails the case on a hang.
template <class Pred> bool wait_until(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + aft::default_timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      BOOST_ERROR("hang: the condition did not hold in time");
      return false;
    }
    std::this_thread::yield();
  }
  return true;
}

bool cancelled(const std::exception_ptr& e) {
  return aft::holds<af::cancelled_error>(e);
}

/// Binds `h` to a fresh cancellation signal's slot.
template <class H> auto with_slot(asio::cancellation_signal& sig, H h) {
  return asio::bind_cancellation_slot(sig.slot(), std::move(h));
}

/// Allocates from the heap while `budget` lasts, then throws std::bad_alloc.
template <class T> class flaky_allocator {
public:
  using value_type = T;
  explicit flaky_allocator(int& budget) noexcept : budget_(&budget) {}
  template <class U> flaky_allocator(const flaky_allocator<U>& o) noexcept : budget_(&o.budget()) {}
  T* allocate(std::size_t n) {
    if ((*budget_)-- <= 0)
      throw std::bad_alloc();
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>().deallocate(p, n); }
  int& budget() const noexcept { return *budget_; }
  template <class U>
  friend bool operator==(const flaky_allocator& a, const flaky_allocator<U>& b) noexcept {
    return &a.budget() == &b.budget();
  }

private:
  int* budget_;
};

/// Holds every submission at the gate until it opens.
struct gate {
  std::atomic<bool> entered{false};
  std::atomic<bool> open{false};
};
template <class Executor>
class gated_executor : public aft::wrapping_executor<gated_executor, Executor, gate> {
public:
  using aft::wrapping_executor<gated_executor, Executor, gate>::wrapping_executor;
  template <class F> void execute(F&& f) const {
    this->state_->entered = true;
    while (!this->state_->open.load())
      std::this_thread::yield();
    this->inner_.execute(std::forward<F>(f));
  }
};

/// Spins `n` iterations: a varying head start for one side of a race.
void spin(int n) {
  std::atomic<int> k{0};
  while (k.fetch_add(1, std::memory_order_relaxed) < n) {
  }
}

// Starts an operation inside an inside_call scope: a completion seeing active() ran inline.
#define START(expr)                                                                                \
  do {                                                                                             \
    aft::inside_call in_call_;                                                                     \
    expr;                                                                                          \
  } while (false)

} // namespace

BOOST_AUTO_TEST_SUITE(sync_)

// --- event --------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(event_set_completes_every_waiter_in_order_never_inline) {
  asio::io_context ioc;
  af::event ev(ioc.get_executor());
  std::vector<int> order;
  result r[3];
  for (int i = 0; i < 3; ++i)
    START(ev.async_wait(record(r[i], &order, i)));
  aft::poll(ioc);
  BOOST_TEST(!r[0].done);
  BOOST_TEST(!ev.is_set());
  START(ev.set());
  BOOST_TEST(ev.is_set());
  BOOST_TEST(!r[0].done); // posted, not run inside set()
  aft::poll(ioc);
  BOOST_TEST((order == std::vector<int>{0, 1, 2}));
  for (auto& x : r)
    BOOST_TEST(!x.error);
  // Set: a wait completes at once, still through the executor.
  result late;
  START(ev.async_wait(record(late)));
  BOOST_TEST(!late.done);
  aft::poll(ioc);
  BOOST_TEST((late.done && !late.error));
  ev.clear();
  BOOST_TEST(!ev.is_set());
  result after_clear;
  ev.async_wait(record(after_clear));
  aft::poll(ioc);
  BOOST_TEST(!after_clear.done);
  ev.set();
  aft::poll(ioc);
  BOOST_TEST(after_clear.done);
}

BOOST_AUTO_TEST_CASE(event_waiter_cancelled_before_or_after_set_sees_cancelled_error) {
  for (auto type : {asio::cancellation_type::terminal, asio::cancellation_type::partial,
                    asio::cancellation_type::total}) {
    asio::io_context ioc;
    af::event ev(ioc.get_executor());
    asio::cancellation_signal s1, s2;
    result before, after, other;
    ev.async_wait(with_slot(s1, record(before)));
    ev.async_wait(with_slot(s2, record(after)));
    ev.async_wait(record(other));
    s1.emit(type);
    aft::poll(ioc);
    BOOST_TEST((before.done && cancelled(before.error)));
    BOOST_TEST(!other.done); // only that waiter
    ev.set();
    s2.emit(type); // chosen by set(), its handler not run yet
    aft::poll(ioc);
    BOOST_TEST((after.done && cancelled(after.error)));
    BOOST_TEST((other.done && !other.error));
    BOOST_TEST(ev.is_set());
  }
}

// --- lock ---------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(lock_is_fifo_fair_and_handed_over_on_release) {
  asio::io_context ioc;
  af::lock l(ioc.get_executor());
  std::vector<int> order;
  result r[4];
  for (int i = 0; i < 4; ++i)
    START(l.async_acquire(record(r[i], &order, i)));
  BOOST_TEST(l.locked());
  aft::poll(ioc);
  BOOST_TEST((order == std::vector<int>{0}));
  for (int i = 1; i < 4; ++i) {
    START(l.release());
    BOOST_TEST(l.locked()); // handed over, never free in between
    aft::poll(ioc);
    BOOST_TEST(order.size() == static_cast<std::size_t>(i + 1));
  }
  BOOST_TEST((order == std::vector<int>{0, 1, 2, 3}));
  l.release();
  BOOST_TEST(!l.locked());
}

BOOST_AUTO_TEST_CASE(lock_release_when_unlocked_throws) {
  asio::io_context ioc;
  af::lock l(ioc.get_executor());
  BOOST_CHECK_THROW(l.release(), af::invalid_state_error);
  BOOST_CHECK_THROW(l.release(), std::logic_error);
  result r;
  l.async_acquire(record(r));
  aft::poll(ioc);
  l.release();
  BOOST_CHECK_THROW(l.release(), af::invalid_state_error);
}

BOOST_AUTO_TEST_CASE(lock_waiter_cancelled_while_queued_is_withdrawn_alone) {
  for (auto type : {asio::cancellation_type::terminal, asio::cancellation_type::partial,
                    asio::cancellation_type::total}) {
    asio::io_context ioc;
    af::lock l(ioc.get_executor());
    asio::cancellation_signal sig;
    result owner, victim, next;
    l.async_acquire(record(owner));
    l.async_acquire(with_slot(sig, record(victim)));
    l.async_acquire(record(next));
    aft::poll(ioc);
    sig.emit(type);
    aft::poll(ioc);
    BOOST_TEST((victim.done && cancelled(victim.error)));
    BOOST_TEST(!next.done);
    l.release();
    aft::poll(ioc);
    BOOST_TEST((next.done && !next.error));
    BOOST_TEST(l.locked());
    l.release();
    BOOST_TEST(!l.locked());
  }
}

BOOST_AUTO_TEST_CASE(lock_waiter_cancelled_after_handover_passes_the_lock_on) {
  // The lost-wakeup case: release() handed the lock to a waiter whose handler has not run;
  // a cancellation now must not leave the lock held by nobody.
  asio::io_context ioc;
  af::lock l(ioc.get_executor());
  asio::cancellation_signal sig;
  result owner, victim, next;
  l.async_acquire(record(owner));
  l.async_acquire(with_slot(sig, record(victim)));
  l.async_acquire(record(next));
  aft::poll(ioc);
  l.release(); // handed to victim, completion posted
  sig.emit(asio::cancellation_type::terminal);
  aft::poll(ioc);
  BOOST_TEST((victim.done && cancelled(victim.error)));
  BOOST_TEST((next.done && !next.error)); // the lock passed on
  BOOST_TEST(l.locked());
  l.release();
  BOOST_TEST(!l.locked());

  // The same with nobody next: the lock ends free.
  asio::cancellation_signal sig2;
  result a;
  l.async_acquire(with_slot(sig2, record(a))); // granted at once, not yet run
  BOOST_TEST(l.locked());
  sig2.emit(asio::cancellation_type::partial);
  BOOST_TEST(!l.locked());
  aft::poll(ioc);
  BOOST_TEST((a.done && cancelled(a.error)));
}

BOOST_AUTO_TEST_CASE(a_signal_after_the_handler_ran_does_nothing) {
  asio::io_context ioc;
  af::lock l(ioc.get_executor());
  asio::cancellation_signal sig;
  result r;
  l.async_acquire(with_slot(sig, record(r)));
  aft::poll(ioc);
  BOOST_TEST((r.done && !r.error));
  sig.emit(asio::cancellation_type::all); // the slot was cleared
  BOOST_TEST(l.locked());
  l.release();
}

CO_TEST_CASE(lock_serialises_coroutines) {
  auto ex = co_await asio::this_coro::executor;
  af::lock l(ex);
  int inside = 0, max_inside = 0, finished = 0;
  for (int i = 0; i < 5; ++i)
    asio::co_spawn(
        ex,
        [&]() -> asio::awaitable<void> {
          co_await l.async_acquire();
          max_inside = std::max(max_inside, ++inside);
          co_await aft::yield_n(3);
          --inside;
          l.release();
          ++finished;
        },
        asio::detached);
  while (finished < 5)
    co_await aft::yield_once();
  BOOST_TEST(max_inside == 1);
  BOOST_TEST(!l.locked());
}

// --- semaphore ----------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(semaphore_counts_permits_fifo) {
  asio::io_context ioc;
  af::semaphore s(ioc.get_executor(), 2);
  BOOST_TEST(!s.locked());
  std::vector<int> order;
  result r[4];
  for (int i = 0; i < 4; ++i)
    START(s.async_acquire(record(r[i], &order, i)));
  BOOST_TEST(s.locked());
  aft::poll(ioc);
  BOOST_TEST((order == std::vector<int>{0, 1}));
  s.release();
  aft::poll(ioc);
  s.release();
  aft::poll(ioc);
  BOOST_TEST((order == std::vector<int>{0, 1, 2, 3}));
  s.release();
  s.release();
  BOOST_TEST(!s.locked());
  s.release(); // a plain semaphore may go above its initial value
  result more[3];
  for (auto& m : more)
    s.async_acquire(record(m));
  aft::poll(ioc);
  BOOST_TEST((more[0].done && more[1].done && more[2].done));
  BOOST_TEST(s.locked());
}

BOOST_AUTO_TEST_CASE(semaphore_waiter_cancelled_after_being_given_a_permit_passes_it_on) {
  asio::io_context ioc;
  af::semaphore s(ioc.get_executor(), 1);
  asio::cancellation_signal sig, sig_queued;
  result holder, victim, queued_victim, next;
  s.async_acquire(record(holder));
  s.async_acquire(with_slot(sig, record(victim)));
  s.async_acquire(with_slot(sig_queued, record(queued_victim)));
  s.async_acquire(record(next));
  aft::poll(ioc);
  sig_queued.emit(asio::cancellation_type::total); // before its wake
  s.release();                                     // the permit goes to victim
  sig.emit(asio::cancellation_type::partial);      // after its wake
  aft::poll(ioc);
  BOOST_TEST((victim.done && cancelled(victim.error)));
  BOOST_TEST((queued_victim.done && cancelled(queued_victim.error)));
  BOOST_TEST((next.done && !next.error));
  s.release();
  BOOST_TEST(!s.locked()); // exactly one permit again: none lost, none made
  result a, b;
  s.async_acquire(record(a));
  s.async_acquire(record(b));
  aft::poll(ioc);
  BOOST_TEST(a.done);
  BOOST_TEST(!b.done);
  s.release();
  aft::poll(ioc);
  BOOST_TEST(b.done);
}

BOOST_AUTO_TEST_CASE(bounded_semaphore_release_above_initial_value_throws) {
  asio::io_context ioc;
  af::bounded_semaphore s(ioc.get_executor(), 2);
  BOOST_CHECK_THROW(s.release(), std::logic_error);
  result a;
  s.async_acquire(record(a));
  aft::poll(ioc);
  s.release();
  BOOST_CHECK_THROW(s.release(), af::invalid_state_error);
  af::bounded_semaphore zero(ioc.get_executor(), 0);
  BOOST_TEST(zero.locked());
  BOOST_CHECK_THROW(zero.release(), std::logic_error);
  // Handing a permit to a waiter is not an over-release.
  result w;
  zero.async_acquire(record(w));
  BOOST_CHECK_NO_THROW(zero.release());
  aft::poll(ioc);
  BOOST_TEST(w.done);
}

// --- condition ----------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(condition_misuse_without_the_lock_throws) {
  asio::io_context ioc;
  af::lock l(ioc.get_executor());
  af::condition c(l);
  result r;
  BOOST_CHECK_THROW(c.async_wait(record(r)), af::invalid_state_error);
  BOOST_CHECK_THROW(c.notify(), af::invalid_state_error);
  BOOST_CHECK_THROW(c.notify_all(), std::logic_error);
  aft::poll(ioc);
  BOOST_TEST(!r.done);
  BOOST_TEST(!l.locked());
}

BOOST_AUTO_TEST_CASE(condition_wait_releases_then_reacquires_and_notify_is_fifo) {
  asio::io_context ioc;
  af::lock l(ioc.get_executor());
  af::condition c(l);
  std::vector<int> order;
  result r[3], holder;
  for (int i = 0; i < 3; ++i) {
    result got;
    l.async_acquire(record(got));
    aft::poll(ioc);
    BOOST_TEST(got.done);
    START(c.async_wait(record(r[i], &order, i)));
    BOOST_TEST(!l.locked()); // released by the wait
  }
  l.async_acquire(record(holder));
  aft::poll(ioc);
  c.notify(2);
  aft::poll(ioc);
  BOOST_TEST(order.empty()); // the notified re-acquire behind the holder
  l.release();
  aft::poll(ioc);
  BOOST_TEST((order == std::vector<int>{0}));
  BOOST_TEST(l.locked()); // waiter 0 completed holding it
  l.release();
  aft::poll(ioc);
  BOOST_TEST((order == std::vector<int>{0, 1}));
  c.notify_all();
  l.release();
  aft::poll(ioc);
  BOOST_TEST((order == std::vector<int>{0, 1, 2}));
  for (auto& x : r)
    BOOST_TEST(!x.error);
  l.release();
  BOOST_TEST(!l.locked());
}

BOOST_AUTO_TEST_CASE(condition_waiter_cancelled_before_notify_reacquires_the_lock) {
  asio::io_context ioc;
  af::lock l(ioc.get_executor());
  af::condition c(l);
  asio::cancellation_signal sig;
  result got, w, holder;
  l.async_acquire(record(got));
  aft::poll(ioc);
  c.async_wait(with_slot(sig, record(w)));
  l.async_acquire(record(holder));
  aft::poll(ioc);
  BOOST_TEST(holder.done);
  sig.emit(asio::cancellation_type::terminal);
  aft::poll(ioc);
  BOOST_TEST(!w.done); // cancelled, but waits for the lock first
  l.release();
  aft::poll(ioc);
  BOOST_TEST((w.done && cancelled(w.error)));
  BOOST_TEST(l.locked()); // held by the cancelled waiter, as asyncio re-acquires
  l.release();
  BOOST_TEST(!l.locked());
}

BOOST_AUTO_TEST_CASE(condition_waiter_cancelled_after_notify_passes_the_notification_on) {
  for (int stage = 0; stage < 2; ++stage) {
    // stage 0: cancelled while re-acquiring; stage 1: after the lock was handed to it.
    asio::io_context ioc;
    af::lock l(ioc.get_executor());
    af::condition c(l);
    asio::cancellation_signal sig;
    result got, victim, next, holder;
    l.async_acquire(record(got));
    aft::poll(ioc);
    c.async_wait(with_slot(sig, record(victim)));
    l.async_acquire(record(got));
    aft::poll(ioc);
    c.async_wait(record(next));
    l.async_acquire(record(holder));
    aft::poll(ioc);
    BOOST_TEST(holder.done);
    c.notify(1); // victim only
    if (stage == 1) {
      l.release(); // handed to victim, its handler not run yet
    }
    sig.emit(asio::cancellation_type::partial);
    if (stage == 0)
      l.release();
    aft::poll(ioc);
    BOOST_TEST((victim.done && cancelled(victim.error)));
    BOOST_TEST(l.locked()); // victim holds it
    BOOST_TEST(!next.done);
    l.release(); // the passed-on notification made `next` re-acquire
    aft::poll(ioc);
    BOOST_TEST((next.done && !next.error));
    l.release();
    BOOST_TEST(!l.locked());
  }
}

CO_TEST_CASE(condition_producer_consumer_with_coroutines) {
  auto ex = co_await asio::this_coro::executor;
  af::lock l(ex);
  af::condition c(l);
  std::vector<int> items, got;
  int consumers_done = 0;
  for (int k = 0; k < 2; ++k)
    asio::co_spawn(
        ex,
        [&]() -> asio::awaitable<void> {
          for (int n = 0; n < 3; ++n) {
            co_await l.async_acquire();
            while (items.empty())
              co_await c.async_wait();
            got.push_back(items.front());
            items.erase(items.begin());
            l.release();
          }
          ++consumers_done;
        },
        asio::detached);
  for (int i = 0; i < 6; ++i) {
    co_await l.async_acquire();
    items.push_back(i);
    c.notify();
    l.release();
    co_await aft::yield_once();
  }
  while (consumers_done < 2)
    co_await aft::yield_once();
  BOOST_TEST(got.size() == 6u);
}

// --- queues -------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(queue_fifo_lifo_and_priority_orders) {
  asio::io_context ioc;
  af::queue<int> fifo(ioc.get_executor());
  af::lifo_queue<int> lifo(ioc.get_executor());
  af::priority_queue<int> prio(ioc.get_executor());
  af::priority_queue<int, std::greater<int>> prio_max(ioc.get_executor());
  for (int v : {3, 1, 4, 1, 5}) {
    BOOST_TEST(fifo.try_put(v));
    BOOST_TEST(lifo.try_put(v));
    BOOST_TEST(prio.try_put(v));
    BOOST_TEST(prio_max.try_put(v));
  }
  auto drain = [](auto& q) {
    std::vector<int> out;
    while (auto v = q.try_get())
      out.push_back(*v);
    return out;
  };
  BOOST_TEST((drain(fifo) == std::vector<int>{3, 1, 4, 1, 5}));
  BOOST_TEST((drain(lifo) == std::vector<int>{5, 1, 4, 1, 3}));
  BOOST_TEST((drain(prio) == std::vector<int>{1, 1, 3, 4, 5}));
  BOOST_TEST((drain(prio_max) == std::vector<int>{5, 4, 3, 1, 1}));
  // async_get sees the same order.
  for (int v : {2, 9, 7})
    prio.try_put(v);
  value_result<int> g[3];
  for (auto& x : g)
    START(prio.async_get(record_value(x)));
  BOOST_TEST(!g[0].done);
  aft::poll(ioc);
  BOOST_TEST(g[0].value == 2);
  BOOST_TEST(g[1].value == 7);
  BOOST_TEST(g[2].value == 9);
}

BOOST_AUTO_TEST_CASE(queue_getters_wait_fifo_and_receive_items_in_order) {
  asio::io_context ioc;
  af::queue<int> q(ioc.get_executor());
  value_result<int> g[3];
  for (auto& x : g)
    START(q.async_get(record_value(x)));
  aft::poll(ioc);
  BOOST_TEST(!g[0].done);
  result p;
  START(q.async_put(10, record(p)));
  START(BOOST_TEST(q.try_put(20)));
  aft::poll(ioc);
  BOOST_TEST((p.done && !p.error));
  BOOST_TEST((g[0].done && g[0].value == 10));
  BOOST_TEST((g[1].done && g[1].value == 20));
  BOOST_TEST(!g[2].done);
  BOOST_TEST(q.empty());
  q.put_nowait(30);
  aft::poll(ioc);
  BOOST_TEST(g[2].value == 30);
  BOOST_CHECK_THROW(q.get_nowait(), af::queue_empty);
  BOOST_TEST(!q.try_get().has_value());
}

BOOST_AUTO_TEST_CASE(bounded_queue_putters_wait_for_room_fifo) {
  asio::io_context ioc;
  af::queue<int> q(ioc.get_executor(), 2);
  BOOST_TEST(q.max_size() == 2u);
  BOOST_TEST(q.try_put(1));
  BOOST_TEST(q.try_put(2));
  BOOST_TEST(q.full());
  BOOST_TEST(!q.try_put(99));
  BOOST_CHECK_THROW(q.put_nowait(99), af::queue_full);
  std::vector<int> order;
  result p[2];
  q.async_put(3, record(p[0], &order, 3));
  q.async_put(4, record(p[1], &order, 4));
  aft::poll(ioc);
  BOOST_TEST(order.empty());
  BOOST_TEST(*q.try_get() == 1); // room for putter 3
  BOOST_TEST(q.full());          // promised to it
  BOOST_TEST(!q.try_put(99));    // no barging past the waiting putters
  aft::poll(ioc);
  BOOST_TEST((order == std::vector<int>{3}));
  BOOST_TEST(*q.try_get() == 2);
  aft::poll(ioc);
  BOOST_TEST((order == std::vector<int>{3, 4}));
  BOOST_TEST(*q.try_get() == 3);
  BOOST_TEST(*q.try_get() == 4);
  BOOST_TEST(q.empty());
}

BOOST_AUTO_TEST_CASE(queue_getter_cancelled_after_an_item_was_handed_to_it_loses_nothing) {
  for (int with_next_getter = 0; with_next_getter < 2; ++with_next_getter) {
    asio::io_context ioc;
    af::queue<int> q(ioc.get_executor());
    asio::cancellation_signal sig;
    value_result<int> victim, next;
    q.async_get(with_slot(sig, record_value(victim)));
    if (with_next_getter)
      q.async_get(record_value(next));
    aft::poll(ioc);
    BOOST_TEST(q.try_put(1));                    // handed to victim
    sig.emit(asio::cancellation_type::terminal); // before its handler ran
    BOOST_TEST(q.try_put(2));
    aft::poll(ioc);
    BOOST_TEST((victim.done && cancelled(victim.error)));
    if (with_next_getter) {
      BOOST_TEST((next.done && next.value == 1)); // the item went to the next getter
      BOOST_TEST(*q.try_get() == 2);
    } else {
      BOOST_TEST(*q.try_get() == 1); // back where it was: first
      BOOST_TEST(*q.try_get() == 2);
    }
    BOOST_TEST(q.empty());
  }
  // A getter promised an item at once (the queue had one): the item never left its place.
  asio::io_context ioc;
  af::lifo_queue<int> q(ioc.get_executor());
  q.try_put(1);
  asio::cancellation_signal sig;
  value_result<int> victim;
  q.async_get(with_slot(sig, record_value(victim))); // promised 1 at once
  q.try_put(2);
  sig.emit(asio::cancellation_type::total);
  aft::poll(ioc);
  BOOST_TEST(cancelled(victim.error));
  BOOST_TEST(*q.try_get() == 2); // LIFO: the newer first, then the one it was promised
  BOOST_TEST(*q.try_get() == 1);
}

BOOST_AUTO_TEST_CASE(items_promised_to_getters_count_against_the_bound_and_keep_their_place) {
  {
    // Bounded: the item promised to the first getter fills the queue until its handler runs
    // (asyncio: put_nowait raises QueueFull). Cancelling the getters leaves it in place.
    asio::io_context ioc;
    af::queue<int> q(ioc.get_executor(), 1);
    asio::cancellation_signal sig[3];
    value_result<int> got[3];
    for (int i = 0; i < 3; ++i)
      q.async_get(with_slot(sig[i], record_value(got[i])));
    BOOST_TEST(q.try_put(1));
    for (int v = 2; v <= 4; ++v)
      BOOST_TEST(!q.try_put(v));
    BOOST_TEST(q.full());
    BOOST_TEST(q.size() == 1u);
    for (auto& g : sig)
      g.emit(asio::cancellation_type::terminal);
    aft::poll(ioc);
    for (auto& g : got)
      BOOST_TEST((g.done && cancelled(g.error)));
    BOOST_TEST(q.size() == 1u);
    BOOST_TEST(*q.try_get() == 1);
    BOOST_TEST(q.empty());
  }
  {
    // Unbounded: the items come back in their original order.
    asio::io_context ioc;
    af::queue<int> q(ioc.get_executor());
    asio::cancellation_signal sig[3];
    value_result<int> got[3];
    for (int i = 0; i < 3; ++i)
      q.async_get(with_slot(sig[i], record_value(got[i])));
    for (int v = 1; v <= 4; ++v)
      BOOST_TEST(q.try_put(v));
    for (auto& g : sig)
      g.emit(asio::cancellation_type::terminal);
    aft::poll(ioc);
    std::vector<int> drained;
    while (auto v = q.try_get())
      drained.push_back(*v);
    BOOST_TEST(drained == (std::vector<int>{1, 2, 3, 4}), boost::test_tools::per_element());
  }
}

BOOST_AUTO_TEST_CASE(lifo_queue_getter_cancelled_after_being_given_the_top_item_leaves_it_on_top) {
  asio::io_context ioc;
  af::lifo_queue<int> q(ioc.get_executor());
  for (int v : {1, 2, 3})
    q.try_put(v);
  asio::cancellation_signal sig;
  value_result<int> victim;
  q.async_get(with_slot(sig, record_value(victim))); // promised 3
  sig.emit(asio::cancellation_type::terminal);
  aft::poll(ioc);
  BOOST_TEST(cancelled(victim.error));
  std::vector<int> drained;
  while (auto v = q.try_get())
    drained.push_back(*v);
  BOOST_TEST(drained == (std::vector<int>{3, 2, 1}), boost::test_tools::per_element());
}

namespace {
/// An item whose destructor (when live) asks the queue its size from another thread: if that
/// does not answer in time, the destructor ran under the queue's mutex (where calling the
/// queue from the same thread would deadlock).
struct probing_item {
  static inline af::queue<probing_item>* queue = nullptr;
  static inline bool destroyed_under_mutex = false;
  static inline int live_destroyed = 0;
  static inline std::vector<std::future<std::size_t>> probes;

  bool live = false;
  probing_item() = default;
  explicit probing_item(bool l) noexcept : live(l) {}
  probing_item(probing_item&& o) noexcept : live(std::exchange(o.live, false)) {}
  probing_item& operator=(probing_item&& o) noexcept {
    live = std::exchange(o.live, false);
    return *this;
  }
  ~probing_item() {
    if (!live || !queue)
      return;
    ++live_destroyed;
    auto probe = std::async(std::launch::async, [q = queue] { return q->size(); });
    if (probe.wait_for(std::chrono::seconds(2)) != std::future_status::ready)
      destroyed_under_mutex = true;
    probes.push_back(std::move(probe)); // joined once the mutex is free
  }
};
} // namespace

BOOST_AUTO_TEST_CASE(queue_items_are_never_destroyed_under_the_queues_mutex) {
  asio::io_context ioc;
  {
    af::queue<probing_item> q(ioc.get_executor());
    probing_item::queue = &q;
    q.try_put(probing_item(true));
    asio::cancellation_signal sig;
    bool got = false;
    q.async_get(with_slot(sig, [&](std::exception_ptr e, probing_item) { got = !e; }));
    q.shutdown(true);                            // drops the item the getter was given
    sig.emit(asio::cancellation_type::terminal); // the getter gives back what it holds
    aft::poll(ioc);
    BOOST_TEST(!got);
    for (auto& p : probing_item::probes)
      p.wait(); // before the queue goes
    probing_item::probes.clear();
    probing_item::queue = nullptr;
  }
  BOOST_TEST(probing_item::live_destroyed >= 1);
  BOOST_TEST(!probing_item::destroyed_under_mutex);
}

BOOST_AUTO_TEST_CASE(queue_putter_cancelled_before_or_after_being_given_room) {
  asio::io_context ioc;
  af::queue<int> q(ioc.get_executor(), 1);
  q.try_put(0);
  asio::cancellation_signal s_before, s_after;
  result before, after, next;
  q.async_put(1, with_slot(s_before, record(before)));
  q.async_put(2, with_slot(s_after, record(after)));
  q.async_put(3, record(next));
  aft::poll(ioc);
  s_before.emit(asio::cancellation_type::partial); // still waiting: withdrawn
  BOOST_TEST(*q.try_get() == 0);                   // room goes to putter 2
  s_after.emit(asio::cancellation_type::terminal); // after: the room passes to putter 3
  aft::poll(ioc);
  BOOST_TEST((before.done && cancelled(before.error)));
  BOOST_TEST((after.done && cancelled(after.error)));
  BOOST_TEST((next.done && !next.error));
  BOOST_TEST(q.size() == 1u);
  BOOST_TEST(*q.try_get() == 3); // 1 and 2 were never put
  BOOST_TEST(q.empty());
  // A put that found room is complete: a later signal does not undo it.
  asio::cancellation_signal s_done;
  result done;
  q.async_put(4, with_slot(s_done, record(done)));
  s_done.emit(asio::cancellation_type::terminal);
  aft::poll(ioc);
  BOOST_TEST((done.done && !done.error));
  BOOST_TEST(*q.try_get() == 4);
}

BOOST_AUTO_TEST_CASE(queue_move_only_items) {
  asio::io_context ioc;
  aft::instance_counters counters;
  {
    af::queue<std::unique_ptr<int>> q(ioc.get_executor(), 1);
    value_result<std::unique_ptr<int>> g;
    q.async_get(record_value(g));
    result p1, p2;
    q.async_put(std::make_unique<int>(1), record(p1));
    q.async_put(std::make_unique<int>(2), record(p2)); // room: into the queue
    aft::poll(ioc);
    BOOST_TEST((g.done && *g.value == 1));
    BOOST_TEST(p2.done);
    auto v = q.try_get();
    BOOST_TEST((v && **v == 2));
    af::lifo_queue<aft::move_only> m(ioc.get_executor());
    BOOST_TEST(m.try_put(aft::move_only(counters, 7)));
    m.try_put(aft::move_only(counters, 8));
    BOOST_TEST(m.get_nowait().value() == 8);
    BOOST_TEST(counters.live.load() == 1);
    m.shutdown(true); // drops the rest
    BOOST_TEST(counters.live.load() == 0);
  }
  BOOST_TEST(counters.live.load() == 0);
}

BOOST_AUTO_TEST_CASE(queue_shutdown_fails_puts_and_drains_then_fails_gets) {
  asio::io_context ioc;
  af::queue<int> q(ioc.get_executor(), 2);
  q.try_put(1);
  q.try_put(2);
  result waiting_put, late_put;
  q.async_put(3, record(waiting_put));
  aft::poll(ioc);
  q.shutdown();
  aft::poll(ioc);
  BOOST_TEST(aft::holds<af::queue_shut_down>(waiting_put.error));
  BOOST_CHECK_THROW(q.try_put(4), af::queue_shut_down);
  BOOST_CHECK_THROW(q.put_nowait(4), af::queue_shut_down);
  q.async_put(4, record(late_put));
  aft::poll(ioc);
  BOOST_TEST(aft::holds<af::queue_shut_down>(late_put.error));
  value_result<int> g1, g2, g3;
  q.async_get(record_value(g1));
  q.async_get(record_value(g2));
  q.async_get(record_value(g3));
  aft::poll(ioc);
  BOOST_TEST((g1.value == 1 && !g1.error)); // drained
  BOOST_TEST((g2.value == 2 && !g2.error));
  BOOST_TEST(aft::holds<af::queue_shut_down>(g3.error));
  BOOST_CHECK_THROW(q.try_get(), af::queue_shut_down);
  BOOST_CHECK_THROW(q.get_nowait(), af::queue_shut_down);
  q.shutdown(); // idempotent
}

BOOST_AUTO_TEST_CASE(queue_shutdown_wakes_waiting_getters_and_immediate_drops_items) {
  asio::io_context ioc;
  af::queue<int> q(ioc.get_executor());
  value_result<int> g;
  q.async_get(record_value(g));
  aft::poll(ioc);
  q.shutdown();
  aft::poll(ioc);
  BOOST_TEST(aft::holds<af::queue_shut_down>(g.error));

  af::queue<int> q2(ioc.get_executor());
  q2.try_put(1);
  q2.try_put(2);
  result joined;
  q2.async_join(record(joined));
  aft::poll(ioc);
  BOOST_TEST(!joined.done);
  q2.shutdown(true);
  BOOST_TEST(q2.empty());
  aft::poll(ioc);
  BOOST_TEST((joined.done && !joined.error)); // dropped items count as done
  value_result<int> g2;
  q2.async_get(record_value(g2));
  aft::poll(ioc);
  BOOST_TEST(aft::holds<af::queue_shut_down>(g2.error));
  BOOST_CHECK_THROW(q2.task_done(), af::invalid_state_error);
}

BOOST_AUTO_TEST_CASE(queue_task_done_and_join) {
  asio::io_context ioc;
  af::queue<int> q(ioc.get_executor());
  result early;
  START(q.async_join(record(early))); // nothing unfinished: completes (never inline)
  BOOST_TEST(!early.done);
  aft::poll(ioc);
  BOOST_TEST(early.done);
  BOOST_CHECK_THROW(q.task_done(), af::invalid_state_error);
  BOOST_CHECK_THROW(q.task_done(), std::logic_error);
  q.try_put(1);
  q.try_put(2);
  result j1, j2;
  q.async_join(record(j1));
  q.async_join(record(j2));
  q.try_get();
  q.try_get();
  q.task_done();
  aft::poll(ioc);
  BOOST_TEST(!j1.done); // one unfinished left
  q.task_done();
  aft::poll(ioc);
  BOOST_TEST((j1.done && j2.done && !j1.error));
  BOOST_CHECK_THROW(q.task_done(), af::invalid_state_error);
}

CO_TEST_CASE(queue_workers_with_join) {
  auto ex = co_await asio::this_coro::executor;
  af::queue<int> q(ex, 3);
  int sum = 0;
  for (int w = 0; w < 3; ++w)
    asio::co_spawn(
        ex,
        [&]() -> asio::awaitable<void> {
          for (;;) {
            auto [e, v] = co_await q.async_get(asio::as_tuple(asio::use_awaitable));
            if (e)
              co_return; // queue_shut_down
            sum += v;
            co_await aft::yield_once();
            q.task_done();
          }
        },
        asio::detached);
  for (int i = 1; i <= 20; ++i)
    co_await q.async_put(i);
  co_await q.async_join();
  BOOST_TEST(sum == 210);
  q.shutdown();
}

// --- Asio conformance ---------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(completions_run_on_the_handlers_executor_and_never_inline) {
  asio::io_context ioc;
  aft::executor_stats stats;
  auto tex = aft::make_tracking_executor(ioc.get_executor(), stats);
  af::lock l(ioc.get_executor());
  result a, b;
  START(l.async_acquire(asio::bind_executor(tex, record(a))));
  START(l.async_acquire(asio::bind_executor(tex, record(b))));
  START(l.release());
  aft::poll(ioc);
  BOOST_TEST((a.done && b.done));
  BOOST_TEST(stats.runs.load() == 2u);
  BOOST_TEST(stats.inline_runs.load() == 0u);
}

BOOST_AUTO_TEST_CASE(a_pending_wait_keeps_its_context_running) {
  asio::io_context ioc;
  af::event ev(ioc.get_executor());
  BOOST_TEST(!aft::has_outstanding_work(ioc));
  result r;
  ev.async_wait(record(r));
  BOOST_TEST(aft::has_outstanding_work(ioc));
  ev.set();
  aft::poll(ioc);
  BOOST_TEST(r.done);
  BOOST_TEST(!aft::has_outstanding_work(ioc));
}

BOOST_AUTO_TEST_CASE(storage_comes_from_the_handlers_allocator) {
  asio::io_context ioc;
  aft::allocator_stats astats;
  af::semaphore s(ioc.get_executor(), 0);
  result r;
  s.async_acquire(asio::bind_allocator(aft::tracking_allocator<int>(astats), record(r)));
  BOOST_TEST(astats.allocations.load() >= 1u);
  s.release();
  aft::poll(ioc);
  BOOST_TEST(r.done);
  BOOST_TEST(astats.allocations.load() == astats.deallocations.load());
}

BOOST_AUTO_TEST_CASE(any_completion_token) {
  asio::io_context ioc;
  af::queue<int> q(ioc.get_executor());
  // deferred: nothing starts until it is launched.
  auto op = q.async_get(asio::deferred);
  q.try_put(5);
  value_result<int> r;
  std::move(op)(record_value(r));
  aft::poll(ioc);
  BOOST_TEST(r.value == 5);
  // af::use_future
  af::event ev(ioc.get_executor());
  af::future<void> f = ev.async_wait(af::use_future);
  af::future<int> g = q.async_get(af::use_future);
  q.try_put(6);
  ev.set();
  aft::run_until(ioc, [&] { return f.done() && g.done(); });
  BOOST_TEST(g.result() == 6);
  BOOST_CHECK_NO_THROW(f.result());
  // cancelling a use_future future withdraws the waiter
  af::lock l(ioc.get_executor());
  af::future<void> holding = l.async_acquire(af::use_future);
  af::future<void> waiting = l.async_acquire(af::use_future);
  aft::poll(ioc);
  waiting.cancel();
  aft::poll(ioc);
  BOOST_TEST(waiting.cancelled());
  l.release();
  BOOST_TEST(!l.locked()); // the cancelled waiter did not take it
  aft::poll(ioc);
  BOOST_TEST(holding.done());
}

CO_TEST_CASE(co_spawn_cancellation_reaches_a_wait) {
  auto ex = co_await asio::this_coro::executor;
  af::event ev(ex);
  asio::cancellation_signal sig;
  std::exception_ptr seen;
  bool done = false;
  asio::co_spawn(ex, ev.async_wait(),
                 asio::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e) {
                   seen = e;
                   done = true;
                 }));
  co_await aft::yield_once();
  sig.emit(asio::cancellation_type::terminal);
  while (!done)
    co_await aft::yield_once();
  BOOST_TEST(cancelled(seen));
}

#if BOOST_ASIO_VERSION >= 102800
BOOST_AUTO_TEST_CASE(an_immediate_executor_completes_a_wait_granted_at_once) {
  // As future::async_wait: granted in the initiating call and bound to an immediate
  // executor, the completion is dispatched to it; a wait that queues is posted later.
  asio::io_context ioc;
  af::lock l(ioc.get_executor());
  bool first = false, second = false;
  l.async_acquire(asio::bind_immediate_executor(asio::system_executor(),
                                                [&](std::exception_ptr e) { first = !e; }));
  BOOST_TEST(first);
  BOOST_TEST(l.locked());
  l.async_acquire(asio::bind_immediate_executor(asio::system_executor(),
                                                [&](std::exception_ptr e) { second = !e; }));
  l.release();
  BOOST_TEST(!second); // granted by release(): posted, never run inside it
  aft::poll(ioc);
  BOOST_TEST(second);
  l.release();
}

#endif

// --- context destruction ------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(destroying_the_context_destroys_pending_waiters_unrun) {
  aft::instance_counters counters;
  bool resumed = false;
  af::lock l(asio::system_executor{}); // outlives the context
  auto q = std::make_unique<af::queue<int>>(asio::system_executor{});
  af::event ev(asio::system_executor{});
  {
    asio::io_context ioc;
    result first;
    l.async_acquire(asio::bind_executor(ioc, record(first)));
    aft::poll(ioc);
    BOOST_TEST(first.done);
    for (int i = 0; i < 2; ++i) {
      asio::co_spawn(
          ioc,
          [&]() -> asio::awaitable<void> {
            aft::counted in_frame(counters, 1);
            co_await l.async_acquire();
            resumed = true;
          },
          asio::detached);
      asio::co_spawn(
          ioc,
          [&]() -> asio::awaitable<void> {
            aft::counted in_frame(counters, 1);
            (void)co_await q->async_get();
            resumed = true;
          },
          asio::detached);
      asio::co_spawn(
          ioc,
          [&]() -> asio::awaitable<void> {
            aft::counted in_frame(counters, 1);
            co_await ev.async_wait();
            resumed = true;
          },
          asio::detached);
    }
    aft::poll(ioc);
    BOOST_TEST(counters.live.load() == 6);
  }
  BOOST_TEST(counters.live.load() == 0);
  BOOST_TEST(!resumed);
  // The primitives still work, with no waiter of the dead context left in them.
  l.release();
  BOOST_TEST(!l.locked());
  BOOST_TEST(q->try_put(1));
  BOOST_TEST(q->size() == 1u);
  ev.set();
  q.reset();
}

BOOST_AUTO_TEST_CASE(a_waiter_granted_when_its_context_dies_passes_the_grant_on) {
  asio::io_context live;
  af::lock l(live.get_executor());
  af::queue<int> q(live.get_executor());
  result next;
  value_result<int> next_get;
  {
    asio::io_context dying;
    result holder, doomed;
    value_result<int> doomed_get;
    l.async_acquire(record(holder)); // on `live`
    aft::poll(live);
    l.async_acquire(asio::bind_executor(dying, record(doomed)));
    l.async_acquire(record(next));
    q.async_get(asio::bind_executor(dying, record_value(doomed_get)));
    q.async_get(record_value(next_get));
    l.release();   // handed to `doomed`, posted to `dying`, which never runs it
    q.try_put(42); // handed to `doomed_get`
    BOOST_TEST(!doomed.done);
  }
  aft::poll(live);
  BOOST_TEST((next.done && !next.error));              // the lock passed on
  BOOST_TEST((next_get.done && next_get.value == 42)); // and the item
  l.release();
  // A wait bound to a shut-down context throws.
  aft::closable_context closed;
  result touch;
  l.async_acquire(asio::bind_executor(closed, record(touch)));
  aft::poll(closed);
  l.release();
  closed.shutdown();
  BOOST_CHECK_THROW(l.async_acquire(asio::bind_executor(closed, record(touch))),
                    af::invalid_state_error);
  BOOST_TEST(!l.locked());
}

BOOST_AUTO_TEST_CASE(a_granted_waiter_needs_no_allocation_after_its_wait_started) {
  // The waiter's completion record is reserved with its node: an allocator that refuses
  // everything after the node does not stop the grant from reaching it.
  asio::io_context ioc;
  af::lock l(ioc.get_executor());
  result holder, next;
  l.async_acquire(record(holder));
  aft::poll(ioc);
  int budget = 1; // the node only
  bool invoked = false;
  l.async_acquire(asio::bind_allocator(flaky_allocator<int>(budget),
                                       [&invoked](std::exception_ptr e) { invoked = !e; }));
  l.async_acquire(record(next));
  BOOST_CHECK_NO_THROW(l.release()); // hands the lock to the flaky-allocator waiter
  aft::poll(ioc);
  BOOST_TEST(invoked);
  BOOST_TEST(budget == 0);
  BOOST_TEST(!next.done); // the flaky waiter holds the lock
  l.release();
  aft::poll(ioc);
  BOOST_TEST((next.done && !next.error));
  l.release();
  BOOST_TEST(!l.locked());
}

BOOST_AUTO_TEST_CASE(a_completion_the_executor_refuses_is_destroyed_unrun_passing_the_grant_on) {
  asio::io_context ioc;
  af::lock l(ioc.get_executor());
  result holder, next;
  l.async_acquire(record(holder));
  aft::poll(ioc);
  std::atomic<std::size_t> attempts{0};
  auto token = std::make_shared<int>(0);
  bool invoked = false;
  l.async_acquire(asio::bind_executor(aft::throwing_executor(ioc.get_executor(), attempts),
                                      [&invoked, token](std::exception_ptr) { invoked = true; }));
  l.async_acquire(record(next));
  BOOST_CHECK_NO_THROW(l.release()); // hands the lock to the refused waiter, whose post fails
  BOOST_TEST(attempts.load() == 1u);
  BOOST_TEST(token.use_count() == 1); // its handler was destroyed
  aft::poll(ioc);
  BOOST_TEST(!invoked);
  BOOST_TEST((next.done && !next.error)); // the lock passed on
  l.release();
  BOOST_TEST(!l.locked());
}

BOOST_AUTO_TEST_CASE(a_context_destroyed_while_its_waiter_is_being_posted_outlives_the_post) {
  // A setter collects two waiters; submitting the first blocks (a gated executor), so the
  // second, bound to `b`, is taken out of its FIFO but not yet unregistered nor posted when
  // another thread destroys `b`. The destruction must wait for that post (it used to free
  // the service and the scheduler the setter then used).
  asio::io_context a;
  af::event ev(a.get_executor());
  gate g;
  result first, doomed;
  ev.async_wait(asio::bind_executor(
      gated_executor<asio::io_context::executor_type>(a.get_executor(), g), record(first)));
  auto b = std::make_unique<asio::io_context>();
  ev.async_wait(asio::bind_executor(*b, record(doomed)));
  std::thread setter([&] { ev.set(); });
  wait_until([&] { return g.entered.load(); });
  std::atomic<bool> destroyed{false};
  std::thread destroyer([&] {
    b.reset();
    destroyed = true;
  });
  // Give a wrong destruction the time to finish before the setter goes on (the right one
  // waits for the setter, so this wait times out; that is not a failure).
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  while (!destroyed.load() && std::chrono::steady_clock::now() < until)
    std::this_thread::yield();
  BOOST_TEST(!destroyed.load());
  g.open = true;
  setter.join();
  destroyer.join();
  aft::poll(a);
  BOOST_TEST(first.done);
  BOOST_TEST(!doomed.done);
}

BOOST_AUTO_TEST_CASE(a_context_destroyed_while_another_thread_hands_its_waiter_the_lock) {
  // One thread releases the lock to a waiter bound to `b` while this one destroys `b`:
  // whichever wins, the waiter is destroyed unrun, the lock comes back, and nothing touches
  // the dead context (ASan/TSan check that).
  asio::io_context a;
  af::lock l(a.get_executor());
  for (int round = 0; round < 400; ++round) {
    result holder, doomed;
    l.async_acquire(record(holder));
    aft::poll(a);
    auto b = std::make_unique<asio::io_context>();
    l.async_acquire(asio::bind_executor(*b, record(doomed)));
    std::atomic<bool> go{false};
    std::thread releaser([&] {
      while (!go.load()) {
      }
      l.release();
    });
    go = true;
    spin((round % 64) * 20);
    b.reset();
    releaser.join();
    BOOST_TEST(!doomed.done);
    BOOST_TEST(!l.locked());
    if (l.locked())
      l.release();
  }
}

BOOST_AUTO_TEST_CASE(a_wait_started_while_its_context_shuts_down_is_taken_or_refused) {
  // One thread starts a wait bound to `c` while this one shuts `c` down: the wait is refused
  // (invalid_state_error) or queued and then destroyed by the shutdown, never queued behind
  // it with a dead service.
  asio::io_context a;
  af::lock l(a.get_executor());
  for (int round = 0; round < 400; ++round) {
    result holder;
    l.async_acquire(record(holder));
    aft::poll(a);
    auto c = std::make_unique<aft::closable_context>();
    {
      // Creates the context's service here: Asio does not support creating a service while
      // the context shuts down (use_service would race with shutdown_services).
      af::event set(a.get_executor());
      set.set();
      set.async_wait(asio::bind_executor(*c, [](std::exception_ptr) {}));
    }
    std::atomic<bool> go{false};
    std::thread starter([&] {
      while (!go.load()) {
      }
      try {
        l.async_acquire(asio::bind_executor(*c, [](std::exception_ptr) {}));
      } catch (const af::invalid_state_error&) {
      }
    });
    go = true;
    spin((round % 64) * 20);
    c->shutdown();
    starter.join();
    c.reset();
    l.release(); // no waiter of `c` is left to take it
    BOOST_TEST(!l.locked());
    if (l.locked())
      l.release();
  }
}

BOOST_AUTO_TEST_CASE(destroying_a_primitive_cancels_its_waiters) {
  asio::io_context ioc;
  result r;
  value_result<int> g;
  {
    af::semaphore s(ioc.get_executor(), 0);
    s.async_acquire(record(r));
    af::queue<int> q(ioc.get_executor());
    q.async_get(record_value(g));
  }
  aft::poll(ioc);
  BOOST_TEST(cancelled(r.error));
  BOOST_TEST(cancelled(g.error));
  // A condition's waiters re-acquire the lock before completing cancelled.
  af::lock l(ioc.get_executor());
  result got, w;
  l.async_acquire(record(got));
  aft::poll(ioc);
  {
    af::condition c(l);
    c.async_wait(record(w));
    BOOST_TEST(!l.locked());
  }
  aft::poll(ioc);
  BOOST_TEST((w.done && cancelled(w.error)));
  BOOST_TEST(l.locked());
  l.release();
}

BOOST_AUTO_TEST_CASE(a_join_can_be_cancelled_alone) {
  asio::io_context ioc;
  af::queue<int> q(ioc.get_executor());
  q.try_put(1);
  asio::cancellation_signal sig;
  result cancelled_join, other;
  q.async_join(with_slot(sig, record(cancelled_join)));
  q.async_join(record(other));
  sig.emit(asio::cancellation_type::total);
  aft::poll(ioc);
  BOOST_TEST((cancelled_join.done && cancelled(cancelled_join.error)));
  BOOST_TEST(!other.done);
  q.try_get();
  q.task_done();
  aft::poll(ioc);
  BOOST_TEST((other.done && !other.error));
}

// --- threads (run under TSan) -------------------------------------------------------------

BOOST_AUTO_TEST_CASE(lock_and_semaphore_from_several_threads) {
  asio::io_context ioc;
  auto guard = asio::make_work_guard(ioc);
  af::lock l(ioc.get_executor());
  af::semaphore s(ioc.get_executor(), 2);
  int counter = 0; // protected by l
  std::atomic<int> in_sem{0}, max_in_sem{0}, finished{0};
  constexpr int per_thread = 200;
  std::vector<std::thread> runners;
  for (int i = 0; i < 2; ++i)
    runners.emplace_back([&] { ioc.run(); });
  for (int t = 0; t < 3; ++t)
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
          for (int i = 0; i < per_thread; ++i) {
            co_await l.async_acquire();
            ++counter;
            l.release();
            co_await s.async_acquire();
            int now = ++in_sem;
            int prev = max_in_sem.load();
            while (now > prev && !max_in_sem.compare_exchange_weak(prev, now)) {
            }
            --in_sem;
            s.release();
          }
          ++finished;
        },
        asio::detached);
  // Releases from a foreign thread too.
  aft::bounded_thread foreign([&] {
    for (int i = 0; i < 100; ++i) {
      auto got = af::future<void>(l.async_acquire(af::use_future));
      got.wait();
      ++counter; // under the lock, as the coroutines
      l.release();
    }
  });
  BOOST_TEST(foreign.join_for());
  wait_until([&] { return finished.load() == 3; });
  guard.reset();
  for (auto& r : runners)
    r.join();
  BOOST_TEST(counter == 3 * per_thread + 100);
  BOOST_TEST(max_in_sem.load() <= 2);
  BOOST_TEST(!l.locked());
}

BOOST_AUTO_TEST_CASE(queue_producers_and_consumers_on_several_threads) {
  asio::io_context ioc;
  auto guard = asio::make_work_guard(ioc);
  af::queue<int> q(ioc.get_executor(), 4);
  std::atomic<long> sum{0};
  std::atomic<int> consumed{0};
  constexpr int producers = 3, per_producer = 300;
  std::vector<std::thread> runners;
  for (int i = 0; i < 2; ++i)
    runners.emplace_back([&] { ioc.run(); });
  for (int c = 0; c < 2; ++c)
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
          for (;;) {
            auto [e, v] = co_await q.async_get(asio::as_tuple(asio::use_awaitable));
            if (e)
              co_return;
            sum += v;
            ++consumed;
            q.task_done();
          }
        },
        asio::detached);
  std::vector<std::unique_ptr<aft::bounded_thread>> threads;
  for (int p = 0; p < producers; ++p)
    threads.push_back(std::make_unique<aft::bounded_thread>([&] {
      for (int i = 1; i <= per_producer; ++i)
        af::future<void>(q.async_put(i, af::use_future)).get();
    }));
  for (auto& t : threads)
    BOOST_TEST(t->join_for());
  af::future<void>(q.async_join(af::use_future)).get();
  BOOST_TEST(consumed.load() == producers * per_producer);
  BOOST_TEST(sum.load() == long(producers) * per_producer * (per_producer + 1) / 2);
  q.shutdown();
  guard.reset();
  for (auto& r : runners)
    r.join();
}

BOOST_AUTO_TEST_CASE(cancellation_racing_with_release_on_a_strand_loses_nothing) {
  // Each round: a waiter on its own strand is cancelled (on that strand) while another thread
  // releases; whatever wins, the lock ends up with exactly one holder or free.
  asio::io_context ioc;
  auto guard = asio::make_work_guard(ioc);
  std::vector<std::thread> runners;
  for (int i = 0; i < 2; ++i)
    runners.emplace_back([&] { ioc.run(); });
  af::lock l(ioc.get_executor());
  for (int round = 0; round < 200; ++round) {
    auto strand = asio::make_strand(ioc);
    asio::cancellation_signal sig;
    std::atomic<bool> done{false}, emitted{false};
    std::atomic<bool> got{false};
    std::atomic<bool> queued{false}, ready{false}, go{false};
    af::future<void>(l.async_acquire(af::use_future)).get(); // we hold it
    asio::post(strand, [&] {
      l.async_acquire(asio::bind_cancellation_slot(
          sig.slot(), asio::bind_executor(strand, [&](std::exception_ptr e) {
            got = !e;
            done = true;
          })));
      queued = true;
    });
    if (!wait_until([&] { return queued.load(); }))
      break;
    // The waiter is queued. The strand emits the signal while this thread releases: either
    // the release grants it first (then the signal takes the grant back and passes the lock
    // on: its completion waits behind the emission on the strand), or the signal withdraws
    // it from the queue first.
    asio::post(strand, [&] {
      ready = true;
      while (!go.load()) {
      }
      spin((round % 16) * 50);
      sig.emit(asio::cancellation_type::partial);
      emitted = true;
    });
    if (!wait_until([&] { return ready.load(); }))
      break;
    go = true;
    spin((round % 13) * 60);
    l.release(); // races with the cancellation
    if (!wait_until([&] { return done.load() && emitted.load(); }))
      break;
    BOOST_TEST(!got.load()); // the signal always reaches it before its handler runs
    if (got.load())
      l.release();
    BOOST_TEST(!l.locked());
  }
  guard.reset();
  for (auto& r : runners)
    r.join();
}

BOOST_AUTO_TEST_SUITE_END()
