//
// asio_futures/sync.hpp
//
// asyncio's synchronisation primitives and queues on Boost.Asio: event, lock, semaphore,
// bounded_semaphore, condition, queue, priority_queue, lifo_queue.
//
#ifndef ASIO_FUTURES_SYNC_HPP
#define ASIO_FUTURES_SYNC_HPP

#include <asio_futures/detail/sync_ops.hpp>
#include <asio_futures/detail/sync_state.hpp>
#include <asio_futures/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstddef>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <type_traits>

// Common to every async operation below (docs/sync.md has the details):
//
// * The completion runs on the handler's associated executor (default: the primitive's),
//   never inside the initiating call (except through a handler's associated immediate
//   executor, Asio >= 1.28, when the operation completes at once); while it waits, the
//   handler's executor counts outstanding work; storage comes from the handler's associated
//   allocator.
// * Per-operation cancellation: a signal of any type (terminal, partial, total) withdraws only
//   this waiter, which completes with `cancelled_error`. A waiter that was already granted
//   what it waited for (the lock, a permit, an item, a set event) but whose handler has not
//   run yet gives it back, to the next waiter, and completes with `cancelled_error` too:
//   whoever sees `cancelled_error` holds nothing, and nothing is lost.
// * A waiter whose handler's execution context is destroyed is destroyed with it, unrun
//   (its coroutine frame too); what it was granted passes to the next waiter. After that
//   context has shut down, an async operation bound to it throws `invalid_state_error`. A
//   primitive shared between contexts may keep being used from other threads while one of
//   them is destroyed. If submitting a completion fails (the handler's allocator or executor
//   throws), the waiter is destroyed the same way, unrun, and the waker sees no exception.
// * Destroying a primitive completes its queued waiters with `cancelled_error`.
// * Every member is safe to call from any thread.

namespace asio_futures {

namespace asio = boost::asio;

/// asyncio.Event: a flag that waiters wait to see set.
class event {
public:
  using executor_type = asio::any_io_executor;

  /// An unset event whose waiters complete on `ex` unless their handler has an executor.
  explicit event(executor_type ex);
  event(const event&) = delete;
  event& operator=(const event&) = delete;
  /// Completes the pending waits with `cancelled_error`.
  ~event();

  /// Sets the flag and completes every pending wait. Any thread.
  void set();
  /// Clears the flag. Any thread.
  void clear();
  /// Whether the flag is set. Any thread.
  bool is_set() const;

  executor_type get_executor() const noexcept { return impl_->executor(); }

  /// Waits until the flag is set (at once if it is set now).
  ///
  /// **Completion signature:** `void(std::exception_ptr)`: null once the flag was set.
  ///
  /// **Per-operation cancellation:** any type withdraws this waiter with `cancelled_error`,
  /// also after `set()` chose it and before its handler ran. The event is untouched.
  ///
  /// **Thread safety:** any thread. Throws `invalid_state_error` if the handler executor's
  /// context has shut down.
  template <asio::completion_token_for<void(std::exception_ptr)> CompletionToken =
                asio::use_awaitable_t<>>
  auto async_wait(CompletionToken&& token = CompletionToken()) {
    return asio::async_initiate<CompletionToken, void(std::exception_ptr)>(init_wait{impl_}, token);
  }

private:
  using init_wait = detail::initiate_sync<detail::event_impl, detail::sync_waiter, void,
                                          &detail::event_impl::begin_wait>;
  detail::sync_ptr<detail::event_impl> impl_;
};

/// asyncio.Lock: a FIFO-fair mutual-exclusion lock for coroutines. Not owned by a thread or
/// a task: any code may release it (as in asyncio). Not recursive.
class lock {
public:
  using executor_type = asio::any_io_executor;

  explicit lock(executor_type ex);
  lock(const lock&) = delete;
  lock& operator=(const lock&) = delete;
  /// Completes the pending acquisitions with `cancelled_error`.
  ~lock();

  /// Acquires the lock: at once if it is free and nobody waits, else after the waiters queued
  /// before (FIFO). `release()` hands the lock directly to the first waiter.
  ///
  /// **Completion signature:** `void(std::exception_ptr)`: null when the lock is held.
  ///
  /// **Per-operation cancellation:** any type withdraws this waiter with `cancelled_error`.
  /// If the lock had already been handed to it (its handler not yet run), it passes to the
  /// next waiter: a cancelled acquisition never holds the lock.
  ///
  /// **Thread safety:** any thread. Throws `invalid_state_error` if the handler executor's
  /// context has shut down.
  template <asio::completion_token_for<void(std::exception_ptr)> CompletionToken =
                asio::use_awaitable_t<>>
  auto async_acquire(CompletionToken&& token = CompletionToken()) {
    return asio::async_initiate<CompletionToken, void(std::exception_ptr)>(init_acquire{impl_},
                                                                           token);
  }

  /// Releases the lock, handing it to the first waiter if any. Throws `invalid_state_error`
  /// if it is not locked (asyncio's RuntimeError). Any thread.
  void release();

  /// Whether the lock is held (or handed to a waiter whose handler has not run yet).
  bool locked() const;

  executor_type get_executor() const noexcept { return impl_->executor(); }

private:
  friend class condition;
  using init_acquire = detail::initiate_sync<detail::lock_impl, detail::sync_waiter, void,
                                             &detail::lock_impl::begin_acquire>;
  detail::sync_ptr<detail::lock_impl> impl_;
};

/// asyncio.Semaphore: a counter of permits; FIFO-fair.
class semaphore {
public:
  using executor_type = asio::any_io_executor;

  semaphore(executor_type ex, std::size_t value);
  semaphore(const semaphore&) = delete;
  semaphore& operator=(const semaphore&) = delete;
  /// Completes the pending acquisitions with `cancelled_error`.
  ~semaphore();

  /// Takes a permit: at once if one is free and nobody waits, else after the waiters queued
  /// before (FIFO). `release()` hands its permit directly to the first waiter.
  ///
  /// **Completion signature:** `void(std::exception_ptr)`: null when a permit is held.
  ///
  /// **Per-operation cancellation:** any type withdraws this waiter with `cancelled_error`. A
  /// permit already handed to it (its handler not yet run) passes to the next waiter.
  ///
  /// **Thread safety:** any thread. Throws `invalid_state_error` if the handler executor's
  /// context has shut down.
  template <asio::completion_token_for<void(std::exception_ptr)> CompletionToken =
                asio::use_awaitable_t<>>
  auto async_acquire(CompletionToken&& token = CompletionToken()) {
    return asio::async_initiate<CompletionToken, void(std::exception_ptr)>(init_acquire{impl_},
                                                                           token);
  }

  /// Returns a permit (to the first waiter, if any). Any thread.
  void release();

  /// Whether no permit is free now (an acquisition would wait).
  bool locked() const;

  executor_type get_executor() const noexcept { return impl_->executor(); }

protected:
  semaphore(executor_type ex, std::size_t value, bool bounded);

private:
  using init_acquire = detail::initiate_sync<detail::semaphore_impl, detail::sync_waiter, void,
                                             &detail::semaphore_impl::begin_acquire>;
  detail::sync_ptr<detail::semaphore_impl> impl_;
};

/// asyncio.BoundedSemaphore: a semaphore whose `release()` throws `invalid_state_error` (a
/// `std::logic_error`; asyncio's ValueError) instead of raising the count above its initial
/// value.
class bounded_semaphore : public semaphore {
public:
  bounded_semaphore(executor_type ex, std::size_t value) : semaphore(std::move(ex), value, true) {}
};

/// asyncio.Condition: waiters that wait, holding a lock, to be notified.
class condition {
public:
  using executor_type = asio::any_io_executor;

  /// A condition over `l`, which must outlive it. Several conditions may share one lock.
  explicit condition(lock& l);
  condition(const condition&) = delete;
  condition& operator=(const condition&) = delete;
  /// Completes the pending waits with `cancelled_error` (each re-acquires the lock first).
  ~condition();

  /// Releases the lock, waits to be notified, then re-acquires the lock (queued behind the
  /// lock's waiters) before completing. The lock must be held (by the caller: the lock has
  /// no owner, as in asyncio, so only "held" is checked); otherwise the initiation throws
  /// `invalid_state_error` (asyncio's RuntimeError).
  ///
  /// **Completion signature:** `void(std::exception_ptr)`: null when notified. The lock is
  /// held when the handler runs, whatever the outcome — also with `cancelled_error`.
  ///
  /// **Per-operation cancellation:** any type withdraws this waiter: it re-acquires the lock
  /// and completes with `cancelled_error`. If it had already been notified, the notification
  /// passes to the next waiter (a cancelled waiter never consumes a notification).
  ///
  /// **Thread safety:** any thread. Throws `invalid_state_error` if the lock is not held or
  /// the handler executor's context has shut down.
  template <asio::completion_token_for<void(std::exception_ptr)> CompletionToken =
                asio::use_awaitable_t<>>
  auto async_wait(CompletionToken&& token = CompletionToken()) {
    return asio::async_initiate<CompletionToken, void(std::exception_ptr)>(init_wait{impl_}, token);
  }

  /// Wakes up to `n` waiters (oldest first). The lock must be held: throws
  /// `invalid_state_error` otherwise. Any thread.
  void notify(std::size_t n = 1);
  /// Wakes every waiter. The lock must be held.
  void notify_all();

  executor_type get_executor() const noexcept { return impl_->executor(); }

private:
  using init_wait = detail::initiate_sync<detail::condition_impl, detail::sync_waiter, void,
                                          &detail::condition_impl::begin_wait>;
  detail::sync_ptr<detail::condition_impl> impl_;
};

namespace detail {
template <class T, class Container> class queue_impl;
template <class T> class fifo_container;
template <class T> class lifo_container;
template <class T, class Compare> class heap_container;

/// The queues' common body (asyncio.Queue); `Container` decides the order.
template <class T, class Container> class basic_queue {
  // Items are moved under the queue's mutex, in paths that cannot fail (a granted getter
  // taking its item); a throwing move would have to either terminate or lose the item.
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "asio_futures: a queue's item type must be nothrow move constructible");

public:
  using value_type = T;
  using executor_type = asio::any_io_executor;

  /// A queue holding at most `max_size` items (0: unbounded), whose waiters complete on `ex`
  /// unless their handler has an executor.
  explicit basic_queue(executor_type ex, std::size_t max_size = 0);
  basic_queue(const basic_queue&) = delete;
  basic_queue& operator=(const basic_queue&) = delete;
  /// Completes the pending operations with `cancelled_error`; drops the items.
  ~basic_queue();

  /// Puts `item`: at once if there is room and no putter waits, else once room is made for
  /// it (FIFO among putters). An item is handed directly to the first waiting getter.
  ///
  /// **Completion signature:** `void(std::exception_ptr)`: null once the item is in the
  /// queue; `queue_shut_down` if the queue is (or becomes, while this waits) shut down.
  ///
  /// **Per-operation cancellation:** any type withdraws a waiting putter with
  /// `cancelled_error`; its item is not put (it is destroyed with the operation). A putter
  /// already given room, whose handler has not run yet, is withdrawn too: its item is not
  /// put and the room passes to the next putter. (A waiting putter's item enters the queue
  /// when its handler runs, on its executor; a put that finds room enters it at once and
  /// is then complete: a later signal does not undo it.)
  ///
  /// **Thread safety:** any thread. Throws `invalid_state_error` if the handler executor's
  /// context has shut down.
  template <asio::completion_token_for<void(std::exception_ptr)> CompletionToken =
                asio::use_awaitable_t<>>
  auto async_put(T item, CompletionToken&& token = CompletionToken()) {
    return asio::async_initiate<CompletionToken, void(std::exception_ptr)>(init_put{impl_}, token,
                                                                           std::move(item));
  }

  /// Puts `item` if it fits now (and no putter waits): true; false if full. Throws
  /// `queue_shut_down` after `shutdown()`.
  bool try_put(T item);

  /// asyncio's put_nowait: `try_put`, throwing `queue_full` instead of returning false.
  void put_nowait(T item);

  /// Takes the oldest item (the smallest for priority_queue, the newest for lifo_queue): at
  /// once if there is one, else when one is put (FIFO among getters).
  ///
  /// **Completion signature:** `void(std::exception_ptr, T)`: the item; `queue_shut_down`
  /// (and `T()`) once the queue is shut down and empty.
  ///
  /// **Per-operation cancellation:** any type withdraws this getter with `cancelled_error`.
  /// A getter that was promised an item (its handler not yet run) gives the promise to the
  /// next getter; the item itself never left the queue, so it is still where it was: a
  /// cancelled get never loses an item nor reorders the queue. (As asyncio's woken getter, it
  /// takes the next item when its handler runs; until then that item counts in `size()` and
  /// against `max_size`, and `try_get` does not take it.)
  ///
  /// **Thread safety:** any thread. Throws `invalid_state_error` if the handler executor's
  /// context has shut down.
  template <asio::completion_token_for<void(std::exception_ptr, T)> CompletionToken =
                asio::use_awaitable_t<>>
  auto async_get(CompletionToken&& token = CompletionToken()) {
    static_assert(std::is_default_constructible_v<T>,
                  "async_get's completion signature void(std::exception_ptr, T) needs a "
                  "default-constructible T (passed along with an exception)");
    return asio::async_initiate<CompletionToken, void(std::exception_ptr, T)>(init_get{impl_},
                                                                              token);
  }

  /// Takes an item if there is one now; `std::nullopt` if empty. Throws `queue_shut_down` if
  /// the queue is shut down and empty.
  std::optional<T> try_get();

  /// asyncio's get_nowait: `try_get`, throwing `queue_empty` instead of returning nullopt.
  T get_nowait();

  /// Marks one item taken earlier as processed. Throws `invalid_state_error` (a
  /// `std::logic_error`; asyncio's ValueError) if called more times than items were put.
  void task_done();

  /// Waits until every item put has been marked done by `task_done()` (at once if so now).
  ///
  /// **Completion signature:** `void(std::exception_ptr)`: null when the count of
  /// unfinished items reached zero.
  ///
  /// **Per-operation cancellation:** any type withdraws this waiter with `cancelled_error`.
  ///
  /// **Thread safety:** any thread. Throws `invalid_state_error` if the handler executor's
  /// context has shut down.
  template <asio::completion_token_for<void(std::exception_ptr)> CompletionToken =
                asio::use_awaitable_t<>>
  auto async_join(CompletionToken&& token = CompletionToken()) {
    return asio::async_initiate<CompletionToken, void(std::exception_ptr)>(init_join{impl_}, token);
  }

  /// The number of items in the queue, counting those promised to getters whose handler has
  /// not run yet (as asyncio's qsize()).
  std::size_t size() const;
  bool empty() const;
  /// Whether a put would wait now: `max_size` items, counting room already promised to a
  /// putter whose handler has not run yet. Never true for an unbounded queue.
  bool full() const;
  std::size_t max_size() const noexcept;

  /// Python 3.13's Queue.shutdown: later puts fail with `queue_shut_down`, and so do the
  /// putters waiting now; getters drain the items left, then fail with `queue_shut_down`
  /// (the getters waiting now, on an empty queue, fail at once). With `immediate`, the items
  /// are dropped too (each counts as done for `async_join`). Any thread; idempotent.
  void shutdown(bool immediate = false);

  executor_type get_executor() const noexcept;

private:
  using impl_type = queue_impl<T, Container>;
  using init_put = initiate_sync<impl_type, value_waiter<T>, void, &impl_type::begin_put>;
  using init_get = initiate_sync<impl_type, value_waiter<T>, T, &impl_type::begin_get>;
  using init_join = initiate_sync<impl_type, value_waiter<T>, void, &impl_type::begin_join>;
  sync_ptr<impl_type> impl_;
};
} // namespace detail

/// asyncio.Queue: a FIFO queue (the oldest item first).
template <class T> class queue : public detail::basic_queue<T, detail::fifo_container<T>> {
public:
  using detail::basic_queue<T, detail::fifo_container<T>>::basic_queue;
};

/// asyncio.PriorityQueue: the smallest item under `Compare` first (a binary heap, as asyncio's
/// heapq; items that compare equal come out in no particular order).
template <class T, class Compare = std::less<T>>
class priority_queue : public detail::basic_queue<T, detail::heap_container<T, Compare>> {
public:
  using detail::basic_queue<T, detail::heap_container<T, Compare>>::basic_queue;
};

/// asyncio.LifoQueue: the newest item first.
template <class T> class lifo_queue : public detail::basic_queue<T, detail::lifo_container<T>> {
public:
  using detail::basic_queue<T, detail::lifo_container<T>>::basic_queue;
};

} // namespace asio_futures

#include <asio_futures/impl/sync.hpp>

#endif // ASIO_FUTURES_SYNC_HPP
