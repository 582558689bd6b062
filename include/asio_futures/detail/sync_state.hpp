//
// asio_futures/detail/sync_state.hpp
//
// The shared states of event, lock, semaphore and condition (defined in src/sync.cpp).
// Every member other than the constructor is called with mutex() held, except the public
// entry points, which say so.
//
#ifndef ASIO_FUTURES_DETAIL_SYNC_STATE_HPP
#define ASIO_FUTURES_DETAIL_SYNC_STATE_HPP

#include <asio_futures/detail/sync_ops.hpp>

#include <cstddef>
#include <mutex>

namespace asio_futures::detail {

class event_impl final : public sync_impl {
public:
  explicit event_impl(asio::any_io_executor ex) : sync_impl(std::move(ex), &mutex_) {}

  // Public entry points: take the mutex.
  void set();
  void clear();
  bool is_set() const;

  void begin_wait(sync_waiter& w, wake_list& wakes);
  void close(wake_list& wakes) noexcept override;

private:
  mutable std::mutex mutex_;
  bool set_ = false;
  waiter_fifo waiters_;
};

class lock_impl final : public sync_impl {
public:
  explicit lock_impl(asio::any_io_executor ex) : sync_impl(std::move(ex), &mutex_) {}

  // Public entry points: take the mutex.
  void release();
  bool locked() const;

  void begin_acquire(sync_waiter& w, wake_list& wakes);
  void close(wake_list& wakes) noexcept override;

  // For condition_impl (under the mutex, which it shares).
  bool is_locked() const noexcept { return locked_; }
  /// Hands the lock to the first waiter, or unlocks.
  void release_locked(wake_list& wakes) noexcept;
  /// Queues `w` for the lock, or grants it at once if the lock is free.
  void acquire_locked(sync_waiter& w, wake_list& wakes) noexcept;

private:
  void give_back(sync_waiter& w, wake_list& wakes) noexcept override;

  mutable std::mutex mutex_;
  bool locked_ = false;
  waiter_fifo waiters_; // non-empty only while locked_
};

class semaphore_impl final : public sync_impl {
public:
  /// `bounded`: release() may not raise the count above `value` (bounded_semaphore).
  semaphore_impl(asio::any_io_executor ex, std::size_t value, bool bounded)
      : sync_impl(std::move(ex), &mutex_), value_(value), bound_(value), bounded_(bounded) {}

  // Public entry points: take the mutex.
  void release();
  bool locked() const;

  void begin_acquire(sync_waiter& w, wake_list& wakes);
  void close(wake_list& wakes) noexcept override;

private:
  void give_back(sync_waiter& w, wake_list& wakes) noexcept override;
  void release_locked(wake_list& wakes) noexcept;

  mutable std::mutex mutex_;
  std::size_t value_;
  const std::size_t bound_;
  const bool bounded_;
  waiter_fifo waiters_; // non-empty only while value_ == 0
};

/// A condition's waiters; shares its lock's mutex. A notified waiter moves to the lock's FIFO
/// (it re-acquires the lock before its handler runs); `owner_` stays the condition, so the
/// lock's FIFO may hold waiters of several conditions besides its own acquirers.
class condition_impl final : public sync_impl {
public:
  explicit condition_impl(sync_ptr<lock_impl> l)
      : sync_impl(l->executor(), &l->mutex()), lock_(std::move(l)) {}

  // Public entry point: takes the mutex.
  void notify(std::size_t n);

  void begin_wait(sync_waiter& w, wake_list& wakes);
  void cancel(sync_waiter& w, wake_list& wakes) noexcept override;
  void abandon(sync_waiter& w, wake_list& wakes) noexcept override;
  void close(wake_list& wakes) noexcept override;

private:
  void notify_locked(std::size_t n, wake_list& wakes) noexcept;

  const sync_ptr<lock_impl> lock_;
  waiter_fifo waiters_;
};

} // namespace asio_futures::detail

#endif // ASIO_FUTURES_DETAIL_SYNC_STATE_HPP
