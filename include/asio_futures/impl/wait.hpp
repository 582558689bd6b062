//
// asio_futures/impl/wait.hpp
//
// Templates of wait.hpp: wait's state (it names the public wait_result), the coroutine behind
// the awaitable forms of wait_for and timeout, and the public function bodies.
//
#ifndef ASIO_FUTURES_IMPL_WAIT_HPP
#define ASIO_FUTURES_IMPL_WAIT_HPP

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <functional>
#include <optional>
#include <tuple>

namespace asio_futures {
namespace detail {

// --- wait ---------------------------------------------------------------------------------

/// The state of `wait(...)`'s future: a future<wait_result<T>> that splits its inputs when
/// the return_when condition holds or the deadline passes. Never cancels an input.
template <class T> class wait_state final : public state<wait_result<T>> {
  using result_type = wait_result<T>;
  using base = state<result_type>;

public:
  wait_state(const asio::any_io_executor& ex, std::vector<future<T>> futures, return_when when)
      : base(ex, &hooks_), links_(std::move(futures)), when_(when), remaining_(links_.size()) {}

  /// Setup, on the calling thread (the caller holds a reference).
  void start(std::optional<wait_duration> timeout) {
    try {
      links_.link([this](std::size_t i) {
        return [s = internal_ptr<result_type>::share(this), i](bool completed) {
          if (completed)
            static_cast<wait_state&>(*s).child_done(i);
        };
      });
      if (timeout) {
        if (*timeout <= wait_duration::zero())
          finish(); // checks once: the split as it is now
        else
          links_.start_timer(
              this->executor(), *timeout,
              deadline_handler<wait_state, result_type>(internal_ptr<result_type>::share(this)));
      }
    } catch (...) {
      links_.end_setup();
      links_.cut();
      throw;
    }
    links_.end_setup();
  }

  void deadline_expired() noexcept {
    if (!links_.cut_requested()) // not abandoned while the expiry was queued
      finish();
  }

  void deadline_abandoned() noexcept {
    this->cancel_state("asio_futures::wait: the execution context shut down");
    links_.cut();
  }

private:
  void child_done(std::size_t i) noexcept {
    switch (when_) {
    case return_when::first_completed:
      finish();
      return;
    case return_when::first_exception:
      // A cancelled input counts as done, not as an exception (asyncio).
      if (access<T>::get(links_[i])->get_outcome() == outcome::exception) {
        finish();
        return;
      }
      break;
    case return_when::all_completed:
      break;
    }
    // acq_rel: the last one to count sees every other input done.
    if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1)
      finish();
  }

  /// Claims the result, splits the inputs as they are now (input order), publishes, cuts.
  void finish() noexcept {
    if (this->try_claim()) {
      try {
        result_type r;
        r.done.reserve(links_.size());
        for (std::size_t i = 0; i < links_.size(); ++i)
          (access<T>::get(links_[i])->done() ? r.done : r.pending).push_back(links_[i]);
        this->finish_value(std::move(r));
      } catch (...) {
        this->finish_exception(std::current_exception(), outcome::exception);
      }
    }
    links_.cut();
  }

  static bool cancel(state_base* b, std::string&& msg) {
    auto* self = static_cast<wait_state*>(b);
    if (!self->cancel_state(std::move(msg)))
      return false;
    self->links_.cut(); // detach from the inputs, stop the timer; inputs are not cancelled
    return true;
  }
  static void destroy(state_base* b) noexcept { delete static_cast<wait_state*>(b); }
  /// Nobody observes the result any more: detach from the inputs, stop the timer.
  static void abandon(state_base* b) noexcept { static_cast<wait_state*>(b)->links_.cut(); }
  static constexpr state_hooks hooks_{&wait_state::cancel, &wait_state::destroy, false,
                                      &wait_state::abandon};

  child_links<T> links_;
  const return_when when_;
  std::atomic<std::size_t> remaining_; // inputs not yet done (all_completed/first_exception)
};

// --- the awaitable forms (timeout, wait_for on an awaitable) --------------------------------

/// Shared by an awaitable-form deadline, its timer handler and the awaiting coroutine's
/// cancellation handler (which may run on other threads of a multi-threaded executor).
///
/// state_ (the expiry's progress):
///   idle      the deadline has not passed
///   expiring  the timer handler is making its cancel request (transient, a few instructions)
///   accepted  the deadline passed and the child accepted the cancel request (it was running)
///   rejected  the deadline passed after the child was done: the expiry changed nothing
///   closed    the awaiting coroutine has taken its decision; a later expiry does nothing
/// The transitions out of idle are CASes, so the expiry and the closing coroutine agree on
/// whether the expiry's cancel request counts.
class deadline_control {
public:
  /// The deadline passed: cancel the child, unless the awaiting coroutine already decided.
  /// Whether the child accepted the cancel request (it was still running).
  template <class T> bool expire(const task<T>& child, const char* msg) noexcept {
    int s = idle;
    // acq_rel: a successful CAS orders our request after the coroutine's setup.
    if (!state_.compare_exchange_strong(s, expiring, std::memory_order_acq_rel))
      return false;
    bool ok = false;
    no_throw([&] { ok = child.cancel(std::string(msg)); });
    // release: close() reads the verdict after our request.
    state_.store(ok ? accepted : rejected, std::memory_order_release);
    return ok;
  }

  /// The awaiting coroutine was cancelled: forward it to the child (a cancel request).
  template <class T> void forward(const task<T>& child) noexcept {
    outer_.store(true, std::memory_order_release);
    const std::string* msg = current_cancel_message();
    no_throw([&] { child.cancel(msg ? *msg : std::string()); });
  }

  /// Called once by the awaiting coroutine, the child being done: whether the expiry's cancel
  /// request was accepted. Waits out an expiry that is making its request right now.
  bool close() noexcept {
    int s = idle;
    if (state_.compare_exchange_strong(s, closed, std::memory_order_acq_rel))
      return false;
    unsigned spins = 0;
    while (s == expiring) {
      spin_pause(spins);
      s = state_.load(std::memory_order_acquire);
    }
    return s == accepted;
  }

  bool outer_cancelled() const noexcept { return outer_.load(std::memory_order_acquire); }

private:
  enum : int { idle, expiring, accepted, rejected, closed };
  std::atomic<int> state_{idle};
  std::atomic<bool> outer_{false};
};

/// The executor to run a child task on, from the awaiting coroutine's: inside a task, the
/// executor that task was created on (its task executor unwrapped). The child is a task of its
/// own and needs no step of the parent's gate; and a task executor over a task executor would
/// not fit in any_io_executor's small buffer (its shared target counts references with an
/// acquire fence, which ThreadSanitizer does not model).
inline asio::any_io_executor child_executor(const asio::any_io_executor& ex) {
  if (const auto* t = ex.target<task_executor<asio::io_context::executor_type>>())
    return t->get_inner_executor();
  if (const auto* t = ex.target<task_executor<asio::thread_pool::executor_type>>())
    return t->get_inner_executor();
  if (const auto* t = ex.target<task_executor<asio::any_io_executor>>())
    return t->get_inner_executor();
  return ex;
}

/// A deadline fixed when the awaitable form starts: a duration from then (timeout, wait_for)
/// or a time point (timeout_at). One that has already passed expires at once, inline: the
/// child never runs.
class fixed_deadline {
public:
  explicit fixed_deadline(wait_duration d) noexcept : d_(d) {}
  explicit fixed_deadline(std::chrono::steady_clock::time_point when) noexcept : when_(when) {}

  /// The armed timer; stop() cancels it.
  struct armed {
    std::optional<asio::steady_timer> timer;
    void stop(bool /*expired*/) noexcept {
      if (timer)
        no_throw([&] { timer->cancel(); });
    }
  };

  template <class Expire> armed arm(const asio::any_io_executor& ex, Expire expire) const {
    armed a;
    if (when_ ? *when_ <= std::chrono::steady_clock::now() : d_ <= wait_duration::zero()) {
      expire();
      return a;
    }
    if (when_)
      a.timer.emplace(ex, *when_);
    else
      a.timer.emplace(ex, d_); // Asio saturates now() + d
    a.timer->async_wait([expire](const boost::system::error_code& ec) {
      if (!ec)
        expire();
    });
    return a;
  }

private:
  wait_duration d_{};
  std::optional<std::chrono::steady_clock::time_point> when_;
};

/// The deadline of a timeout_scope (see timeout_scope_core).
class scope_deadline {
public:
  explicit scope_deadline(std::shared_ptr<timeout_scope_core> core) noexcept
      : core_(std::move(core)) {}

  template <class Expire>
  timeout_scope_core::entry arm(const asio::any_io_executor& ex, Expire expire) const {
    return timeout_scope_core::enter(core_, ex, std::function<bool()>(std::move(expire)));
  }

private:
  std::shared_ptr<timeout_scope_core> core_;
};

/// The coroutine behind `timeout(d, aw)`, `timeout_at(t, aw)`, `wait_for(aw, d)` and
/// `timeout_scope::run(aw)`: `aw` runs as a child task on
/// the awaiting coroutine's executor (see child_executor; the timer runs there too); the expiry and
/// the awaiting coroutine's cancellation each become a cancel request of the child, which is always
/// awaited until it is done.
template <class T, class Deadline>
asio::awaitable<T> await_with_deadline(asio::awaitable<T> inner, Deadline deadline, const char* who,
                                       const char* expiry_msg) {
  const asio::any_io_executor ex = child_executor(co_await asio::this_coro::executor);
  const asio::cancellation_state cs = co_await asio::this_coro::cancellation_state;
  const bool throw_if_cancelled = co_await asio::this_coro::throw_if_cancelled();
  const auto ctl = std::make_shared<deadline_control>();
  const task<T> child = create_task(ex, std::move(inner));

  // From here on the child runs: whatever fails to set up (an allocation: the slot handler,
  // the timer, its wait) cancels it, and it is still awaited before the failure propagates —
  // nothing outlives this call.
  asio::cancellation_slot slot = cs.slot();
  auto expire = [ctl, child, expiry_msg]() noexcept { return ctl->expire(child, expiry_msg); };
  // The deadline's timer (or its scope entry) lives in this frame: it stops when the frame
  // goes, even if the execution context is destroyed while we wait.
  std::optional<decltype(deadline.arm(ex, expire))> armed;
  std::exception_ptr setup_failure;
  try {
    // The awaiting coroutine's cancellation (whatever type its filter lets through) becomes
    // a cancel request of the child, which we keep awaiting: our own wait on the child is
    // bound to no slot, so the future bridge's "terminal cancels, partial/total detach" does
    // not apply to it. The handler is cleared before this coroutine goes on.
    if (slot.is_connected())
      slot.assign([ctl, child](asio::cancellation_type type) {
        if (type != asio::cancellation_type::none)
          ctl->forward(child);
      });
    if (cs.cancelled() != asio::cancellation_type::none)
      ctl->forward(child); // already cancelled (with throw_if_cancelled off)
    armed.emplace(deadline.arm(ex, expire));
  } catch (...) {
    setup_failure = std::current_exception();
    no_throw([&] { child.cancel(std::string(who) + ": could not start its deadline"); });
  }

  // Our own sticky cancellation must not abort the wait for the child: it is restored after.
  co_await asio::this_coro::throw_if_cancelled(false);
  std::exception_ptr error;
  std::optional<std::conditional_t<std::is_void_v<T>, char, T>> value;
  bool awaited = false;
  // If the wait cannot start (an allocation), the child is cancelled and the wait tried once
  // more: it must not run on behind the call. A second failure propagates (out of memory
  // for good: nothing better can be done).
  for (int attempt = 0; !awaited && attempt < 2; ++attempt) {
    try {
      auto r = co_await child.async_wait(asio::bind_cancellation_slot(
          asio::cancellation_slot(), asio::as_tuple(asio::use_awaitable)));
      error = std::get<0>(std::move(r));
      if constexpr (std::is_void_v<T>) {
      } else if constexpr (std::is_same_v<wait_value_t<T>, T>) {
        if (!error)
          value.emplace(std::get<1>(std::move(r)));
      } else {
        if (!error) // boxed (T is not default-constructible): engaged when there is no error
          value.emplace(std::move(*std::get<1>(std::move(r))));
      }
      awaited = true;
    } catch (...) {
      error = std::current_exception(); // the wait itself could not start
      if (!setup_failure)
        setup_failure = error;
      no_throw([&] { child.cancel(std::string(who) + ": could not await it"); });
    }
  }
  if (slot.is_connected())
    slot.clear();
  co_await asio::this_coro::throw_if_cancelled(throw_if_cancelled);
  const bool expired = ctl->close();
  if (armed)
    armed->stop(expired);
  if (setup_failure)
    std::rethrow_exception(setup_failure); // the child was cancelled and has finished

  if (!error) {
    if constexpr (std::is_void_v<T>)
      co_return;
    else
      co_return std::move(*value);
  }
  if (!awaited || !child.cancelled())
    std::rethrow_exception(error); // a failure of the child (or of the wait) is its own
  // The child ended cancelled. The deadline is the cause only if its request was accepted and
  // nobody else cancelled: not the awaiting coroutine (forwarded, or seen in its sticky
  // state), and no request beyond the expiry's in the child's counter.
  const bool others = ctl->outer_cancelled() || cs.cancelled() != asio::cancellation_type::none ||
                      child.cancelling() > (expired ? 1 : 0);
  if (expired && !others)
    std::rethrow_exception(make_timeout_error(who));
  std::rethrow_exception(error);
}

template <class T> void check_inputs(const std::vector<future<T>>& futures, const char* who) {
  check_inputs(
      futures.size(),
      std::all_of(futures.begin(), futures.end(), [](const future<T>& f) { return f.valid(); }),
      who);
}

template <class T>
future<wait_result<T>> start_wait(std::vector<future<T>>&& futures, return_when when,
                                  std::optional<wait_duration> timeout) {
  check_inputs(futures, "asio_futures::wait");
  const asio::any_io_executor ex = live_executor(futures.front());
  const std::uint32_t serial = serial_of(service_for(ex));
  auto* s = new wait_state<T>(ex, std::move(futures), when);
  s->set_context_serial(serial);
  s->make_abandonable();
  future<wait_result<T>> out{state_ptr<wait_result<T>>(s)};
  s->start(timeout);
  return out;
}

template <class T>
as_completed_iterator<T> start_as_completed(std::vector<future<T>>&& futures,
                                            std::optional<wait_duration> timeout) {
  check_inputs(futures, "asio_futures::as_completed");
  const asio::any_io_executor ex = live_executor(futures.front());
  auto core = std::make_shared<as_completed_core<T>>(ex, std::move(futures));
  core->start(timeout);
  return as_completed_iterator<T>(std::move(core));
}

} // namespace detail

template <class T> future<wait_result<T>> wait(std::vector<future<T>> futures, return_when when) {
  return detail::start_wait(std::move(futures), when, std::nullopt);
}

template <class T>
future<wait_result<T>> wait(std::vector<future<T>> futures, return_when when,
                            std::chrono::steady_clock::duration timeout) {
  return detail::start_wait(std::move(futures), when, timeout);
}

template <class T> future<T> wait_for(future<T> inner, std::chrono::steady_clock::duration d) {
  if (!inner.valid())
    detail::throw_invalid_state("asio_futures::wait_for: empty future handle");
  const asio::any_io_executor ex = detail::live_executor(inner);
  const std::uint32_t serial = detail::serial_of(detail::service_for(ex));
  auto* s = new detail::wait_for_state<T>(ex, std::move(inner));
  s->set_context_serial(serial);
  s->make_abandonable();
  future<T> out{detail::state_ptr<T>(s)};
  s->start(d);
  return out;
}

template <class T>
asio::awaitable<T> wait_for(asio::awaitable<T> inner, std::chrono::steady_clock::duration d) {
  return detail::await_with_deadline(std::move(inner), detail::fixed_deadline(d),
                                     "asio_futures::wait_for", "asio_futures::wait_for: timed out");
}

template <class T>
asio::awaitable<T> timeout(std::chrono::steady_clock::duration d, asio::awaitable<T> inner) {
  return detail::await_with_deadline(std::move(inner), detail::fixed_deadline(d),
                                     "asio_futures::timeout", "asio_futures::timeout: timed out");
}

template <class T>
asio::awaitable<T> timeout_at(std::chrono::steady_clock::time_point when,
                              asio::awaitable<T> inner) {
  return detail::await_with_deadline(std::move(inner), detail::fixed_deadline(when),
                                     "asio_futures::timeout_at",
                                     "asio_futures::timeout_at: timed out");
}

template <class T> asio::awaitable<T> timeout_scope::run(asio::awaitable<T> body) {
  // Entering is checked here, when run() is called, not when its awaitable starts.
  core_->reserve();
  return detail::await_with_deadline(std::move(body), detail::scope_deadline(core_),
                                     "asio_futures::timeout_scope",
                                     "asio_futures::timeout_scope: timed out");
}

namespace detail {

template <first_rule Rule, class T>
future<T> start_first(std::vector<future<T>> futures, const char* who) {
  check_inputs(futures, who);
  const asio::any_io_executor ex = live_executor(futures.front());
  const std::uint32_t serial = serial_of(service_for(ex));
  auto* s = new first_state<T, Rule>(ex, std::move(futures));
  s->set_context_serial(serial);
  s->make_abandonable();
  future<T> out{state_ptr<T>(s)};
  s->start();
  return out;
}

} // namespace detail

template <class T> future<T> first_completed(std::vector<future<T>> futures) {
  return detail::start_first<detail::first_rule::completed>(std::move(futures),
                                                            "asio_futures::first_completed");
}

template <class T> future<T> first_success(std::vector<future<T>> futures) {
  return detail::start_first<detail::first_rule::success>(std::move(futures),
                                                          "asio_futures::first_success");
}

template <class T> as_completed_iterator<T> as_completed(std::vector<future<T>> futures) {
  return detail::start_as_completed(std::move(futures), std::nullopt);
}

template <class T>
as_completed_iterator<T> as_completed(std::vector<future<T>> futures,
                                      std::chrono::steady_clock::duration timeout) {
  return detail::start_as_completed(std::move(futures), timeout);
}

template <class T> detail::as_completed_core<T>& as_completed_iterator<T>::checked_core() const {
  if (!core_)
    detail::throw_invalid_state("asio_futures::as_completed_iterator: empty handle");
  return *core_;
}

template <class T> std::size_t as_completed_iterator<T>::remaining() const {
  return checked_core().remaining();
}

template <class T>
typename as_completed_iterator<T>::executor_type as_completed_iterator<T>::get_executor() const {
  return checked_core().executor();
}

} // namespace asio_futures

#endif // ASIO_FUTURES_IMPL_WAIT_HPP
