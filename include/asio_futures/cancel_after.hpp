//
// asio_futures/cancel_after.hpp
//
// af::cancel_after / af::cancel_at: completion-token adapters that cancel an operation whose
// deadline passes (what Asio 1.32, Boost 1.86, added as asio::cancel_after), on every Asio.
//
#ifndef ASIO_FUTURES_CANCEL_AFTER_HPP
#define ASIO_FUTURES_CANCEL_AFTER_HPP

#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/wait_traits.hpp>

#include <chrono>
#include <type_traits>
#include <utility>

namespace asio_futures {

namespace asio = boost::asio;

/// A completion token adapter: `CompletionToken`, and the operation is cancelled with a
/// cancellation type (default `terminal`) if it has not completed when the deadline passes.
/// `Deadline` is `Clock::duration` (measured from the start of the operation: made by
/// `cancel_after`) or `Clock::time_point` (made by `cancel_at`).
template <class CompletionToken, class Clock, class Deadline> class timed_cancel_t {
public:
  template <class T>
  timed_cancel_t(T&& token, const Deadline& deadline,
                 asio::cancellation_type type = asio::cancellation_type::terminal)
      : token_(std::forward<T>(token)), deadline_(deadline), type_(type) {}

  CompletionToken token_;
  Deadline deadline_;
  asio::cancellation_type type_;
};

template <class CompletionToken, class Clock = std::chrono::steady_clock>
using cancel_after_t = timed_cancel_t<CompletionToken, Clock, typename Clock::duration>;
template <class CompletionToken, class Clock = std::chrono::steady_clock>
using cancel_at_t = timed_cancel_t<CompletionToken, Clock, typename Clock::time_point>;

/// The partial form (`cancel_after(d)`): as a completion token it adapts the operation's
/// default completion token (that of its executor, else `asio::deferred`); called with a
/// token it gives the full adapter.
template <class Clock, class Deadline> class partial_timed_cancel {
public:
  explicit partial_timed_cancel(const Deadline& deadline,
                                asio::cancellation_type type = asio::cancellation_type::terminal)
      : deadline_(deadline), type_(type) {}

  template <class CompletionToken>
  timed_cancel_t<std::decay_t<CompletionToken>, Clock, Deadline>
  operator()(CompletionToken&& token) const {
    return {std::forward<CompletionToken>(token), deadline_, type_};
  }

  Deadline deadline_;
  asio::cancellation_type type_;
};

namespace detail {
template <class T>
concept not_cancellation_type = !std::is_same_v<std::decay_t<T>, asio::cancellation_type>;

/// `d` rounded up to `To`, saturating at `To`'s range (`seconds::max()` means "never", not
/// an overflow).
template <class To, class Rep, class Period>
constexpr To saturating_ceil(const std::chrono::duration<Rep, Period>& d) {
  // Compared as floating-point durations, which cannot overflow.
  using wide = std::chrono::duration<long double, typename To::period>;
  if (wide(d) >= wide(To::max()))
    return To::max();
  if (wide(d) <= wide(To::min()))
    return To::min();
  return std::chrono::ceil<To>(d);
}
} // namespace detail

/// Adapts `token` so that the operation is cancelled with `type` unless it completes within
/// `timeout` of its start.
///
/// On expiry the adapter emits `type` into the operation's cancellation slot, as a caller's
/// own `cancellation_signal` would. For an asio_futures wait, `terminal` (the default)
/// cancels the awaited future or task itself — the waiter then gets `cancelled_error` — and
/// `partial` or `total` detach only that waiter (see `future::async_wait`). For a timeout
/// that ends in `timeout_error`, use `wait_for` or `timeout`. A duration too long to
/// represent (`seconds::max()`) means no deadline.
///
/// The timer runs on the completion handler's associated executor (defaulting to the
/// operation's), where the operation completes too: its expiry is handled, and the signal
/// emitted, there. It is started once the operation has started. The handler is invoked
/// once both the operation and the timer's wait are over (when the operation completes
/// first, the timer's aborted wait is one more turn of that executor): by then nothing the
/// adapter allocated with the handler's allocator, and no work it counted, is left. A
/// cancellation slot of the adapted token is forwarded to the operation. If the timer cannot
/// be started (allocation failure), the operation is cancelled at once.
///
/// As for Asio's own operations, the handler's executor must not run two handlers of one
/// operation at once: on a multi-threaded `io_context`, give the handler a strand. Use the
/// adapter outermost among the adapters that touch the cancellation slot (an adapter around
/// it, such as `bind_cancellation_slot`, would give the operation its own slot instead);
/// before Asio 1.32 an adapter around it also hides the operation's executor: then, unless
/// the handler has an executor of its own, the initiation throws `std::invalid_argument`.
///
/// Works on every supported Asio. From Asio 1.32 (Boost 1.86) `asio::cancel_after` does the
/// same for every operation, asio_futures' included.
template <class Rep, class Period, detail::not_cancellation_type CompletionToken>
cancel_after_t<std::decay_t<CompletionToken>>
cancel_after(const std::chrono::duration<Rep, Period>& timeout, CompletionToken&& token) {
  return {std::forward<CompletionToken>(token),
          detail::saturating_ceil<std::chrono::steady_clock::duration>(timeout)};
}

/// `cancel_after(timeout, token)` with the cancellation type `type`.
template <class Rep, class Period, class CompletionToken>
cancel_after_t<std::decay_t<CompletionToken>>
cancel_after(const std::chrono::duration<Rep, Period>& timeout, asio::cancellation_type type,
             CompletionToken&& token) {
  return {std::forward<CompletionToken>(token),
          detail::saturating_ceil<std::chrono::steady_clock::duration>(timeout), type};
}

/// The partial form: `op(af::cancel_after(1s))` adapts the operation's default token.
template <class Rep, class Period>
partial_timed_cancel<std::chrono::steady_clock, std::chrono::steady_clock::duration>
cancel_after(const std::chrono::duration<Rep, Period>& timeout,
             asio::cancellation_type type = asio::cancellation_type::terminal) {
  return partial_timed_cancel<std::chrono::steady_clock, std::chrono::steady_clock::duration>(
      detail::saturating_ceil<std::chrono::steady_clock::duration>(timeout), type);
}

/// Adapts `token` so that the operation is cancelled with `type` unless it completes before
/// `expiry` (a time point of any clock that has `asio::wait_traits`). Otherwise as
/// `cancel_after`.
template <class Clock, class Duration, detail::not_cancellation_type CompletionToken>
cancel_at_t<std::decay_t<CompletionToken>, Clock>
cancel_at(const std::chrono::time_point<Clock, Duration>& expiry, CompletionToken&& token) {
  return {std::forward<CompletionToken>(token),
          typename Clock::time_point(
              detail::saturating_ceil<typename Clock::duration>(expiry.time_since_epoch()))};
}

/// `cancel_at(expiry, token)` with the cancellation type `type`.
template <class Clock, class Duration, class CompletionToken>
cancel_at_t<std::decay_t<CompletionToken>, Clock>
cancel_at(const std::chrono::time_point<Clock, Duration>& expiry, asio::cancellation_type type,
          CompletionToken&& token) {
  return {std::forward<CompletionToken>(token),
          typename Clock::time_point(
              detail::saturating_ceil<typename Clock::duration>(expiry.time_since_epoch())),
          type};
}

/// The partial form of `cancel_at`.
template <class Clock, class Duration>
partial_timed_cancel<Clock, typename Clock::time_point>
cancel_at(const std::chrono::time_point<Clock, Duration>& expiry,
          asio::cancellation_type type = asio::cancellation_type::terminal) {
  return partial_timed_cancel<Clock, typename Clock::time_point>(
      typename Clock::time_point(
          detail::saturating_ceil<typename Clock::duration>(expiry.time_since_epoch())),
      type);
}

} // namespace asio_futures

#include <asio_futures/impl/cancel_after.hpp>

#endif // ASIO_FUTURES_CANCEL_AFTER_HPP
