//
// src/sync.cpp
//
// Non-template parts of sync.hpp: the waiter FIFO, the wake list, the service that destroys
// pending waiters at shutdown, and the states of event, lock, semaphore and condition.
// docs/sync.md describes the protocol.
//
#include <asio_futures/sync.hpp>

#include <limits>
#include <stdexcept>
#include <string>
#include <thread>

namespace asio_futures {
namespace detail {

// --- waiter_fifo, wake_list ---------------------------------------------------------------

void waiter_fifo::push_back(sync_waiter* w) noexcept {
  w->fifo_ = this;
  w->next_ = nullptr;
  w->prev_ = tail_;
  if (tail_)
    tail_->next_ = w;
  else
    head_ = w;
  tail_ = w;
}

void waiter_fifo::erase(sync_waiter* w) noexcept {
  if (w->prev_)
    w->prev_->next_ = w->next_;
  else
    head_ = w->next_;
  if (w->next_)
    w->next_->prev_ = w->prev_;
  else
    tail_ = w->prev_;
  w->prev_ = w->next_ = nullptr;
  w->fifo_ = nullptr;
}

bool wake_list::extract(sync_waiter* w) noexcept {
  sync_waiter* prev = nullptr;
  for (sync_waiter* n = head_; n; prev = n, n = n->wake_next_) {
    if (n != w)
      continue;
    if (prev)
      prev->wake_next_ = n->wake_next_;
    else
      head_ = n->wake_next_;
    if (tail_ == n)
      tail_ = prev;
    n->wake_next_ = nullptr;
    return true;
  }
  return false;
}

void wake_list::flush() noexcept {
  while (sync_waiter* w = head_) {
    head_ = w->wake_next_;
    if (!head_)
      tail_ = nullptr;
    w->wake_next_ = nullptr;
    // Unregistered before it is submitted (as a future's waiter): a context shutdown finds
    // it in the scheduler's queue, which destroys it (sync_op::destroy). It stays in flight
    // until submitted: the shutdown waits for that, so the scheduler is still there.
    sync_service* s = w->svc_;
    unregister(w);
    w->post_(w); // never throws (a refused submission destroys it)
    if (s)
      s->end_flight(); // `s` may be gone from here on
  }
}

// --- sync_impl ----------------------------------------------------------------------------

sync_impl::sync_impl(asio::any_io_executor ex, std::mutex* m) : mutex_(m), ex_(std::move(ex)) {
  if (!ex_)
    throw std::invalid_argument("asio_futures: a synchronisation primitive needs an executor");
}

sync_impl::~sync_impl() = default;

void sync_impl::cancel(sync_waiter& w, wake_list& wakes) noexcept {
  if (w.cancelled_)
    return;
  if (w.fifo_) {
    w.cancelled_ = true;
    complete(w, sync_cancelled_error(), wakes);
  } else if (w.granted_) {
    // The lost-wakeup case: chosen, its handler not yet run. It gives the grant back now (to
    // the next waiter) and completes with cancelled_error.
    w.cancelled_ = true;
    w.error_ = sync_cancelled_error();
    give_back(w, wakes);
  }
  // Otherwise it already completed with an outcome of its own (a put that found room, a
  // queue_shut_down, an earlier cancellation): a signal now changes nothing.
}

void sync_impl::consume(sync_waiter&, wake_list&) noexcept {}

void sync_impl::give_back(sync_waiter&, wake_list&) noexcept {}

void sync_impl::abandon(sync_waiter& w, wake_list& wakes) noexcept {
  if (w.granted_ && !w.cancelled_)
    give_back(w, wakes);
}

void sync_impl::cancel_all(waiter_fifo& fifo, wake_list& wakes) noexcept {
  while (sync_waiter* w = fifo.front()) {
    w->cancelled_ = true;
    complete(*w, sync_cancelled_error(), wakes);
  }
}

std::exception_ptr sync_cancelled_error() noexcept {
  try {
    const std::string* msg = current_cancel_message();
    return std::make_exception_ptr(msg ? cancelled_error(*msg) : cancelled_error());
  } catch (...) {
    return std::current_exception(); // bad_alloc while building the message
  }
}

std::exception_ptr queue_shut_down_error() noexcept {
  try {
    return std::make_exception_ptr(queue_shut_down());
  } catch (...) {
    return std::current_exception();
  }
}

// --- sync_service -------------------------------------------------------------------------

asio::execution_context::id sync_service::id;

sync_service::sync_service(asio::execution_context& ctx) : asio::execution_context::service(ctx) {}

std::atomic<std::uint64_t> sync_service::epoch_{0};
thread_local sync_service::cache sync_service::cache_;

sync_service::~sync_service() {
  // release: pairs with the acquire in of(); a thread that sees the new epoch refreshes its
  // cache.
  epoch_.fetch_add(1, std::memory_order_release);
}

sync_service& sync_service::lookup(asio::execution_context& ctx, std::uint64_t epoch) {
  sync_service& s = asio::use_service<sync_service>(ctx);
  cache_ = {&ctx, &s, epoch};
  return s;
}

void sync_service::throw_closed() {
  throw invalid_state_error("asio_futures: the execution context has shut down");
}

void sync_service::link(sync_waiter* w) noexcept {
  w->svc_ = this;
  w->reg_prev_ = nullptr;
  w->reg_next_ = head_;
  if (head_)
    head_->reg_prev_ = w;
  head_ = w;
}

void sync_service::remove(sync_waiter* w) noexcept {
  std::lock_guard guard(mutex_);
  if (w->svc_ == this)
    unlink(w);
}

void sync_service::unlink(sync_waiter* w) noexcept {
  if (w->reg_prev_)
    w->reg_prev_->reg_next_ = w->reg_next_;
  else
    head_ = w->reg_next_;
  if (w->reg_next_)
    w->reg_next_->reg_prev_ = w->reg_prev_;
  w->svc_ = nullptr;
  w->reg_prev_ = w->reg_next_ = nullptr;
}

void sync_service::shutdown() {
  // Take every waiter still queued in its primitive: from then on it is ours, and we destroy
  // it unrun (its coroutine frame dies). One that is not queued any more was taken by a waker
  // (or a cancellation), which is about to unregister it and submit it to this context, whose
  // scheduler destroys it in turn. Lock order: ours, then the primitive's.
  sync_waiter* owned = nullptr; // chained through wake_next_
  {
    std::lock_guard guard(mutex_);
    closed_ = true;
    for (sync_waiter* w = head_; w;) {
      sync_waiter* next = w->reg_next_;
      bool taken = false;
      {
        std::lock_guard plock(w->owner_->mutex());
        if (w->fifo_) {
          w->fifo_->erase(w);
          taken = true;
        }
      }
      if (taken) {
        unlink(w);
        w->wake_next_ = owned;
        owned = w;
      }
      w = next;
    }
  }
  // Outside the lock: destroying a frame may destroy primitives and start or end other waits.
  while (sync_waiter* w = owned) {
    owned = w->wake_next_;
    w->wake_next_ = nullptr;
    w->destroy_(w);
  }
  // Every other waiter of this context was collected to be posted before we took its
  // primitive's mutex above (or before its waker unregistered it, under ours): it is in
  // flight, counted where we see it now. Its waker is about to submit it to this context's
  // scheduler, which Asio shuts down and destroys after this service (services are shut down
  // newest first, and the scheduler is the context's first), and which destroys it unrun.
  // Wait for those submissions: wakers never block, so this is short.
  // acquire: pairs with end_flight(); the submissions happen before we return.
  while (in_flight_.load(std::memory_order_acquire) != 0)
    std::this_thread::yield();
}

// --- event --------------------------------------------------------------------------------

void event_impl::set() {
  wake_list wakes;
  std::lock_guard guard(mutex_);
  set_ = true;
  while (sync_waiter* w = waiters_.front())
    grant(*w, wakes);
}

void event_impl::clear() {
  std::lock_guard guard(mutex_);
  set_ = false;
}

bool event_impl::is_set() const {
  std::lock_guard guard(mutex_);
  return set_;
}

void event_impl::begin_wait(sync_waiter& w, wake_list& wakes) {
  if (set_)
    grant(w, wakes);
  else
    waiters_.push_back(&w);
}

void event_impl::close(wake_list& wakes) noexcept {
  cancel_all(waiters_, wakes);
}

// --- lock ---------------------------------------------------------------------------------

void lock_impl::release() {
  wake_list wakes;
  std::lock_guard guard(mutex_);
  if (!locked_)
    throw invalid_state_error("asio_futures::lock::release: the lock is not locked");
  release_locked(wakes);
}

bool lock_impl::locked() const {
  std::lock_guard guard(mutex_);
  return locked_;
}

void lock_impl::release_locked(wake_list& wakes) noexcept {
  if (sync_waiter* w = waiters_.front())
    grant(*w, wakes); // handed over: stays locked
  else
    locked_ = false;
}

void lock_impl::acquire_locked(sync_waiter& w, wake_list& wakes) noexcept {
  if (!locked_) {
    locked_ = true;
    grant(w, wakes);
  } else {
    waiters_.push_back(&w);
  }
}

void lock_impl::begin_acquire(sync_waiter& w, wake_list& wakes) {
  acquire_locked(w, wakes);
}

void lock_impl::give_back(sync_waiter&, wake_list& wakes) noexcept {
  release_locked(wakes);
}

void lock_impl::close(wake_list& wakes) noexcept {
  // Condition waiters queued here to re-acquire complete too (their lock is gone).
  cancel_all(waiters_, wakes);
}

// --- semaphore ----------------------------------------------------------------------------

void semaphore_impl::release() {
  wake_list wakes;
  std::lock_guard guard(mutex_);
  if (waiters_.empty()) {
    if (bounded_ && value_ >= bound_)
      throw invalid_state_error(
          "asio_futures::bounded_semaphore::release: released more times than acquired");
    if (value_ == std::numeric_limits<std::size_t>::max())
      throw std::overflow_error("asio_futures::semaphore::release: the count would overflow");
  }
  release_locked(wakes);
}

bool semaphore_impl::locked() const {
  std::lock_guard guard(mutex_);
  return value_ == 0;
}

void semaphore_impl::release_locked(wake_list& wakes) noexcept {
  if (sync_waiter* w = waiters_.front())
    grant(*w, wakes); // the permit is handed over
  else
    ++value_;
}

void semaphore_impl::begin_acquire(sync_waiter& w, wake_list& wakes) {
  if (value_ > 0) {
    --value_;
    grant(w, wakes);
  } else {
    waiters_.push_back(&w);
  }
}

void semaphore_impl::give_back(sync_waiter&, wake_list& wakes) noexcept {
  release_locked(wakes);
}

void semaphore_impl::close(wake_list& wakes) noexcept {
  cancel_all(waiters_, wakes);
}

// --- condition ----------------------------------------------------------------------------

void condition_impl::notify(std::size_t n) {
  wake_list wakes;
  std::lock_guard guard(mutex());
  if (!lock_->is_locked())
    throw invalid_state_error("asio_futures::condition::notify: the lock is not held");
  notify_locked(n, wakes);
}

void condition_impl::notify_locked(std::size_t n, wake_list& wakes) noexcept {
  for (; n > 0; --n) {
    sync_waiter* w = waiters_.front();
    if (!w)
      break;
    waiters_.erase(w);
    w->notified_ = true;
    lock_->acquire_locked(*w, wakes);
  }
}

void condition_impl::begin_wait(sync_waiter& w, wake_list& wakes) {
  if (!lock_->is_locked())
    throw invalid_state_error("asio_futures::condition::async_wait: the lock is not held");
  lock_->release_locked(wakes);
  waiters_.push_back(&w);
}

void condition_impl::cancel(sync_waiter& w, wake_list& wakes) noexcept {
  if (w.cancelled_ || (!w.fifo_ && !w.posted_))
    return;
  if (w.posted_ && !w.granted_)
    return; // completed without the lock (its lock was destroyed): nothing to change
  w.cancelled_ = true;
  w.error_ = sync_cancelled_error();
  if (w.fifo_ == &waiters_) {
    // Not notified yet: it stops waiting and re-acquires the lock (asyncio re-acquires, then
    // raises CancelledError).
    waiters_.erase(&w);
    lock_->acquire_locked(w, wakes);
  } else if (w.notified_) {
    // Notified, re-acquiring or holding the lock already: it keeps the lock (it completes
    // holding it) but not the notification, which passes to the next waiter.
    notify_locked(1, wakes);
  }
}

void condition_impl::abandon(sync_waiter& w, wake_list& wakes) noexcept {
  // Destroyed unrun (its context shut down); it is in no FIFO any more.
  if (w.notified_ && !w.cancelled_)
    notify_locked(1, wakes); // the notification it did not consume
  if (w.granted_)
    lock_->release_locked(wakes); // the lock it was handed
}

void condition_impl::close(wake_list& wakes) noexcept {
  // Each waiter stops waiting and completes with cancelled_error once it holds the lock.
  while (sync_waiter* w = waiters_.front())
    cancel(*w, wakes);
}

} // namespace detail

// --- public members -----------------------------------------------------------------------

namespace {
template <class Impl> void close_impl(Impl& impl) noexcept {
  detail::wake_list wakes;
  std::lock_guard guard(impl.mutex());
  impl.close(wakes);
}
} // namespace

event::event(executor_type ex) : impl_(new detail::event_impl(std::move(ex))) {}
event::~event() {
  close_impl(*impl_);
}
void event::set() {
  impl_->set();
}
void event::clear() {
  impl_->clear();
}
bool event::is_set() const {
  return impl_->is_set();
}

lock::lock(executor_type ex) : impl_(new detail::lock_impl(std::move(ex))) {}
lock::~lock() {
  close_impl(*impl_);
}
void lock::release() {
  impl_->release();
}
bool lock::locked() const {
  return impl_->locked();
}

semaphore::semaphore(executor_type ex, std::size_t value)
    : semaphore(std::move(ex), value, false) {}
semaphore::semaphore(executor_type ex, std::size_t value, bool bounded)
    : impl_(new detail::semaphore_impl(std::move(ex), value, bounded)) {}
semaphore::~semaphore() {
  close_impl(*impl_);
}
void semaphore::release() {
  impl_->release();
}
bool semaphore::locked() const {
  return impl_->locked();
}

condition::condition(lock& l) : impl_(new detail::condition_impl(l.impl_)) {}
condition::~condition() {
  close_impl(*impl_);
}
void condition::notify(std::size_t n) {
  impl_->notify(n);
}
void condition::notify_all() {
  impl_->notify(std::numeric_limits<std::size_t>::max());
}

} // namespace asio_futures
