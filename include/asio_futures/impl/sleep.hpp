//
// asio_futures/impl/sleep.hpp
//
// The state of a sleep future: a future state that owns its timer and cancels it.
//
#ifndef ASIO_FUTURES_IMPL_SLEEP_HPP
#define ASIO_FUTURES_IMPL_SLEEP_HPP

#include <asio_futures/detail/ops.hpp>
#include <asio_futures/detail/state.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace asio_futures {
namespace detail {

/// The state of a sleep future. Its cancel hook marks it cancelled and cancels the timer.
///
/// `timer_` is engaged from `sleep()` until the timer's completion handler runs or is destroyed
/// unrun (the context shut down); `mutex_` serialises every use of it (the wait's start, a
/// cancel from any thread, and its destruction by the handler), because an Asio timer is not
/// safe to use from two threads at once. A cancel that finds no timer has nothing to abort.
/// The handler destroys the timer while the timer's context is alive (it runs there, or is
/// destroyed during that context's shutdown), so a state that outlives its context never
/// touches a dead timer service.
template <class T> class sleep_state final : public state<T> {
public:
  explicit sleep_state(const asio::any_io_executor& ex) : state<T>(ex, &hooks_) {}

  static sleep_state& of(state_base& s) noexcept { return static_cast<sleep_state&>(s); }

  /// Arms the timer for `d` with completion handler `h` (before the future is handed out).
  /// If the wait cannot be started (allocation), the exception propagates: `h` is destroyed
  /// inside async_wait on this thread, and must then leave the timer (and the lock) alone.
  template <class Handler> void start_timer(std::chrono::steady_clock::duration d, Handler&& h) {
    std::lock_guard lock(mutex_);
    timer_.emplace(this->executor(), d);
    arming_ = this;
    struct disarm {
      ~disarm() { arming_ = nullptr; }
    } guard;
    timer_->async_wait(std::forward<Handler>(h));
  }

  /// Whether start_timer() is starting this sleep's wait on the calling thread: a handler
  /// destroyed then was never started.
  bool arming_here() const noexcept { return arming_ == this; }

  /// Destroys the timer (from its handler, on the timer's executor or during its shutdown).
  void drop_timer() noexcept {
    std::lock_guard lock(mutex_);
    timer_.reset();
  }

private:
  static bool cancel(state_base* b, std::string&& msg) {
    auto& self = of(*b);
    if (!self.cancel_state(std::move(msg)))
      return false;
    std::lock_guard lock(self.mutex_);
    if (self.timer_) {
      try {
        self.timer_->cancel(); // the aborted wait completes on the timer's executor
      } catch (const boost::system::system_error&) {
        // Cannot happen with Asio's timer services; the timer then simply expires later.
      }
    }
    return true;
  }
  static void destroy(state_base* b) noexcept { delete &of(*b); }

  // Not user-settable: setting the future would leave the timer pending (and holding its
  // context's work) until it expires; cancel() is the way to end a sleep early.
  static constexpr state_hooks hooks_{&sleep_state::cancel, &sleep_state::destroy, false, nullptr};

  std::mutex mutex_;
  std::optional<asio::steady_timer> timer_;
  // The sleep whose wait start_timer() is starting on this thread, if any.
  static inline thread_local const sleep_state* arming_ = nullptr;
};

/// The value a sleep resolves to, kept by its completion handler. A throwing move fails the
/// future with that exception rather than escaping into the timer's scheduler.
template <class T> struct sleep_value {
  T value;
  void resolve(state<T>& s) noexcept { forward_value(s, std::move(value)); }
};
template <> struct sleep_value<void> {
  void resolve(state<void>& s) noexcept { forward_value(s); }
};

/// The completion handler of the timer wait (or of the post, for d <= 0). Destroyed unrun, it
/// ends the sleep cancelled: its context is shutting down and will never run it.
template <class T> class sleep_handler {
public:
  sleep_handler(sleep_state<T>* s, sleep_value<T> v)
      : state_(state_ptr<T>::share(s)), value_(std::move(v)) {}
  sleep_handler(sleep_handler&&) noexcept = default;
  sleep_handler& operator=(sleep_handler&&) = delete;
  ~sleep_handler() {
    if (!state_)
      return;
    auto& s = sleep_state<T>::of(*state_);
    if (s.arming_here())
      return; // the wait never started: start_timer() is throwing, the future is not handed out
    s.drop_timer();
    s.cancel_state("the sleep's execution context shut down");
  }

  /// The timer expired (or was cancelled).
  void operator()(const boost::system::error_code& ec) {
    state_ptr<T> st(std::move(state_));
    sleep_state<T>::of(*st).drop_timer();
    if (!ec)
      value_.resolve(*st);
    else if (ec == asio::error::operation_aborted)
      st->cancel_state(std::string()); // a no-op after cancel(): it claimed the state first
                                       // (an empty string never allocates)
    else
      resolve_exception(*st, make_error_exception(ec));
  }

  /// d <= 0: the posted turn came.
  void operator()() {
    state_ptr<T> st(std::move(state_));
    value_.resolve(*st);
  }

private:
  state_ptr<T> state_;
  [[no_unique_address]] sleep_value<T> value_;
};

/// `d` as a steady_clock duration, saturated (the timer saturates the expiry in turn).
template <class Rep, class Period>
std::chrono::steady_clock::duration sleep_duration(std::chrono::duration<Rep, Period> d) {
  using sd = std::chrono::steady_clock::duration;
  if (std::chrono::duration<long double>(d) >= std::chrono::duration<long double>(sd::max()))
    return sd::max();
  if (d <= d.zero())
    return sd::zero();
  return std::chrono::ceil<sd>(d);
}

template <class T, class Executor>
future<T> start_sleep(const Executor& ex, std::chrono::steady_clock::duration d, sleep_value<T> v) {
  if constexpr (std::is_constructible_v<bool, const Executor&>) {
    if (!ex)
      throw std::invalid_argument("asio_futures::sleep: empty executor");
  }
  waiter_service* svc = service_for(ex);
  if (svc && svc->closed())
    throw_invalid_state("sleep: the execution context has shut down");
  auto* s = new sleep_state<T>(asio::any_io_executor(ex));
  s->set_context_serial(serial_of(svc));
  future<T> f{state_ptr<T>(s)};
  if (d <= d.zero())
    asio::post(s->executor(), sleep_handler<T>(s, std::move(v)));
  else
    s->start_timer(d, sleep_handler<T>(s, std::move(v)));
  return f;
}

} // namespace detail

template <class Executor, class Rep, class Period>
requires std::is_convertible_v<const Executor&, asio::any_io_executor> &&
    (!std::is_base_of_v<asio::execution_context, Executor>)
        future<void> sleep(const Executor& ex, std::chrono::duration<Rep, Period> d) {
  return detail::start_sleep<void>(ex, detail::sleep_duration(d), detail::sleep_value<void>{});
}

template <class Executor, class Rep, class Period, class V>
requires std::is_convertible_v<const Executor&, asio::any_io_executor> &&
    (!std::is_base_of_v<asio::execution_context, Executor>)future<std::decay_t<V>> sleep(
        const Executor& ex, std::chrono::duration<Rep, Period> d, V&& value) {
  using T = std::decay_t<V>;
  return detail::start_sleep<T>(ex, detail::sleep_duration(d),
                                detail::sleep_value<T>{std::forward<V>(value)});
}

} // namespace asio_futures

#endif // ASIO_FUTURES_IMPL_SLEEP_HPP
