//
// src/wait.cpp
//
// Out-of-line parts of wait.hpp: argument checks, the exceptions the combinators raise, and
// timeout_scope's shared state.
//
#include <asio_futures/wait.hpp>

#include <stdexcept>
#include <string>
#include <utility>

namespace asio_futures::detail {

void check_inputs(std::size_t count, bool all_valid, const char* who) {
  if (count == 0)
    throw std::invalid_argument(std::string(who) + ": no futures given");
  if (!all_valid)
    throw_invalid_state((std::string(who) + ": empty future handle among the inputs").c_str());
}

std::exception_ptr make_timeout_error(const char* who) {
  return std::make_exception_ptr(timeout_error(std::string(who) + ": timed out"));
}

std::exception_ptr make_iteration_error(const char* what) {
  return std::make_exception_ptr(invalid_state_error(what));
}

// --- timeout_scope --------------------------------------------------------------------------

void timeout_scope_core::reserve() {
  const std::lock_guard lock(mutex_);
  if (phase_ != phase::created)
    throw_invalid_state(
        "asio_futures::timeout_scope: run() was already called (a scope runs once)");
  phase_ = phase::reserved;
}

timeout_scope_core::entry timeout_scope_core::enter(const std::shared_ptr<timeout_scope_core>& self,
                                                    const asio::any_io_executor& ex,
                                                    std::function<bool()> expire) {
  auto timer = std::make_unique<asio::steady_timer>(ex);
  std::unique_lock lock(self->mutex_);
  if (self->phase_ != phase::reserved)
    throw_invalid_state("asio_futures::timeout_scope: entered twice");
  self->phase_ = phase::entered;
  self->timer_ = timer.get();
  self->expire_ = std::move(expire);
  entry e(self, std::move(timer));
  if (self->when_ && *self->when_ <= clock::now()) {
    self->fire_locked(lock); // passed already: the body never runs
  } else {
    try {
      self->arm_locked();
    } catch (...) {
      lock.unlock();
      e.stop(false);
      throw;
    }
  }
  return e;
}

void timeout_scope_core::arm_locked() {
  ++generation_;
  timer_->cancel(); // a pending wait completes with operation_aborted and does nothing
  if (!when_)
    return;
  timer_->expires_at(*when_);
  timer_->async_wait(
      [self = shared_from_this(), generation = generation_](const boost::system::error_code& ec) {
        if (!ec)
          self->fire(generation);
      });
}

void timeout_scope_core::fire(std::uint64_t generation) noexcept {
  std::unique_lock lock(mutex_);
  if (generation != generation_ || phase_ != phase::entered)
    return; // rescheduled, or the body is done
  fire_locked(lock);
}

void timeout_scope_core::fire_locked(std::unique_lock<std::mutex>& lock) noexcept {
  phase_ = phase::fired;
  ++generation_;
  // Outside the lock: the cancel request may run the body's cancellation handlers, which may
  // call when() or expired().
  std::function<bool()> expire = std::move(expire_);
  expire_ = nullptr;
  lock.unlock();
  if (expire)
    expire(); // noexcept; the awaiting coroutine learns the verdict through its control
}

void timeout_scope_core::exit(bool expired) noexcept {
  std::function<bool()> expire;
  {
    const std::lock_guard lock(mutex_);
    // Once the scope made its cancel request, it stays expired (as asyncio's expired()).
    expired_ = expired || phase_ == phase::fired;
    phase_ = phase::exited;
    ++generation_;
    timer_ = nullptr; // its owner cancels it when it goes
    expire = std::move(expire_);
    expire_ = nullptr;
  }
  // `expire` (it holds the body's task) goes here, outside the lock.
}

void timeout_scope_core::entry::stop(bool expired) noexcept {
  if (!core_)
    return;
  core_->exit(expired);
  core_.reset();
  if (timer_) {
    no_throw([&] { timer_->cancel(); });
    timer_.reset();
  }
}

void timeout_scope_core::reschedule(std::optional<clock::time_point> when) {
  const std::lock_guard lock(mutex_);
  switch (phase_) {
  case phase::created:
  case phase::reserved:
    when_ = when;
    return;
  case phase::entered: {
    const std::optional<clock::time_point> previous = when_;
    when_ = when;
    try {
      arm_locked();
    } catch (...) { // the new wait could not be started: keep the deadline that was
      when_ = previous;
      no_throw([&] { arm_locked(); });
      throw;
    }
    return;
  }
  case phase::fired:
    throw_invalid_state("asio_futures::timeout_scope: reschedule() after the deadline passed");
  case phase::exited:
    break;
  }
  throw_invalid_state("asio_futures::timeout_scope: reschedule() after the scope finished");
}

std::optional<timeout_scope_core::clock::time_point> timeout_scope_core::when() const {
  const std::lock_guard lock(mutex_);
  return when_;
}

bool timeout_scope_core::expired() const {
  const std::lock_guard lock(mutex_);
  return phase_ == phase::fired || (phase_ == phase::exited && expired_);
}

} // namespace asio_futures::detail

namespace asio_futures {

namespace {

std::optional<std::chrono::steady_clock::time_point>
deadline_after(std::chrono::steady_clock::duration d) {
  using clock = std::chrono::steady_clock;
  const clock::time_point now = clock::now();
  if (d > clock::time_point::max() - now)
    return clock::time_point::max(); // saturates: never in practice
  return now + d;
}

} // namespace

timeout_scope::timeout_scope()
    : core_(std::make_shared<detail::timeout_scope_core>(std::nullopt)) {}

timeout_scope::timeout_scope(std::chrono::steady_clock::duration d)
    : core_(std::make_shared<detail::timeout_scope_core>(deadline_after(d))) {}

timeout_scope::timeout_scope(std::chrono::steady_clock::time_point when)
    : core_(std::make_shared<detail::timeout_scope_core>(when)) {}

void timeout_scope::reschedule(std::optional<std::chrono::steady_clock::time_point> when) {
  core_->reschedule(when);
}

std::optional<std::chrono::steady_clock::time_point> timeout_scope::when() const {
  return core_->when();
}

bool timeout_scope::expired() const {
  return core_->expired();
}

} // namespace asio_futures
