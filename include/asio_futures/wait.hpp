//
// asio_futures/wait.hpp
//
// Waiting combinators: wait, wait_for, as_completed, first_completed, first_success,
// timeout, timeout_at and timeout_scope.
// Semantics are asyncio's; docs/waiting.md has the cancellation rules of each.
//
#ifndef ASIO_FUTURES_WAIT_HPP
#define ASIO_FUTURES_WAIT_HPP

#include <asio_futures/detail/wait_ops.hpp>
#include <asio_futures/error.hpp>
#include <asio_futures/future.hpp>
#include <asio_futures/task.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <vector>

namespace asio_futures {

/// When `wait` completes (asyncio's `FIRST_COMPLETED`, `FIRST_EXCEPTION`, `ALL_COMPLETED`).
enum class return_when {
  /// As soon as any input is done (value, exception or cancelled).
  first_completed,
  /// As soon as any input fails with an exception, or when all are done. A cancelled input
  /// counts as done, not as an exception (as in asyncio).
  first_exception,
  /// When every input is done.
  all_completed,
};

/// The outcome of `wait`: the inputs split into those done and those still pending at the
/// moment the wait completed, each in input order (a future given twice appears twice).
template <class T> struct wait_result {
  std::vector<future<T>> done;
  std::vector<future<T>> pending;
};

/// asyncio's `wait(fs, return_when=...)`: a future that completes, when `when` holds, with the
/// inputs split into `done` and `pending` (input order). It never cancels an input.
///
/// The result lives on the executor of the first input. Cancelling it (or a terminal
/// cancellation of an await on it) only detaches it from the inputs. The inputs are kept
/// alive until it completes. Inputs may be completed from any thread.
///
/// Throws `std::invalid_argument` if `futures` is empty (as asyncio raises ValueError) and
/// `invalid_state_error` if one of them is an empty handle. Like a task's, the result resolves
/// itself: `set_result`/`set_exception` on it throw `invalid_state_error`.
template <class T>
future<wait_result<T>> wait(std::vector<future<T>> futures,
                            return_when when = return_when::all_completed);

/// `wait` with a deadline: also completes when `timeout` has passed, with the split as it is
/// then (asyncio's `wait(fs, timeout=...)`; the timeout is not an error and nothing is
/// cancelled). A `timeout` of zero or less checks once, without a timer: the result is done
/// when `wait` returns. The timer runs on the executor of the first input and is cancelled
/// as soon as the wait completes (it never keeps an `io_context` running longer).
template <class T>
future<wait_result<T>> wait(std::vector<future<T>> futures, return_when when,
                            std::chrono::steady_clock::duration timeout);

/// asyncio's `wait_for(fut, timeout)` (3.12 semantics) on a future: a future with the inner's
/// outcome, unless the deadline passes first.
///
/// **Expiry** cancels the inner (a plain future is cancelled at once; a task gets a cancel
/// request), then waits until the inner has actually finished: if it ends cancelled, the
/// result fails with `timeout_error`; if it completes with a value (or another exception) in
/// that window, that outcome wins. A `d` of zero or less checks once without a timer: a done
/// inner gives its outcome, otherwise the inner is cancelled as on expiry.
///
/// **Cancellation.** Cancelling the result (or a terminal cancellation of an await on it)
/// cancels the inner with the same message, and the result is cancelled at once (it is a
/// future: `cancel()` completes it; a task inner finishes on its own time).
///
/// The result and the timer live on the inner's executor; the timer is cancelled as soon as
/// the result completes. Thread-safe: the inner may complete on any thread, concurrently with
/// the expiry and with a cancellation; exactly one of them decides the outcome.
/// Throws `invalid_state_error` if `inner` is an empty handle.
template <class T> future<T> wait_for(future<T> inner, std::chrono::steady_clock::duration d);

/// `wait_for` on a coroutine: runs `inner` as a child task on the awaiting coroutine's
/// executor (inside a task: the executor the task was created on) and awaits it with a
/// deadline; the same rules as `timeout(d, inner)`, plus: a `d`
/// of zero or less cancels the child before it ever runs (asyncio: the coroutine wrapped in
/// a task is cancelled before its first step), giving `timeout_error`.
///
/// On expiry the child is cancelled and awaited until it has finished: `timeout_error` if it
/// ended cancelled, its value (or exception) if it completed anyway. A cancellation of the
/// awaiting coroutine is forwarded to the child, awaited as well, and surfaces as
/// `cancelled_error` even if the deadline passed at the same time.
template <class T>
asio::awaitable<T> wait_for(asio::awaitable<T> inner, std::chrono::steady_clock::duration d);

/// asyncio's `timeout(d)` around `inner` (`async with asyncio.timeout(d): return await
/// inner`): runs `inner` as a child task on the awaiting coroutine's executor (inside a task:
/// the executor the task was created on); when `d` has
/// passed, cancels it, waits until it has finished, and raises `timeout_error` if it ended
/// cancelled (its value or exception otherwise: a child that completes in that window wins).
///
/// **Cancel counters.** The expiry counts its own cancel request. If the awaiting coroutine
/// is cancelled too (a terminal signal reaches its slot: e.g. the task it runs in is
/// cancelled), the cancellation is forwarded to the child and the outcome is `cancelled_error`
/// — never `timeout_error` — however the two race (CPython bugs 86296 and 116720). The same
/// holds if the child's `cancelling()` shows more requests than the expiry made.
///
/// A `d` of zero or less expires at once (the child never runs). The timer runs on the
/// awaiting coroutine's executor. While it waits for the child, the awaiting coroutine does
/// not throw because of its own (sticky) cancellation; Asio's sticky state is left as it was.
template <class T>
asio::awaitable<T> timeout(std::chrono::steady_clock::duration d, asio::awaitable<T> inner);

/// asyncio's `timeout_at(when)` around `inner`: `timeout` with an absolute deadline on the
/// steady clock. A `when` that has passed by the time the awaitable starts expires at once
/// (the child never runs). Everything else is as for `timeout`.
template <class T>
asio::awaitable<T> timeout_at(std::chrono::steady_clock::time_point when, asio::awaitable<T> inner);

/// asyncio's `Timeout` object (`async with asyncio.timeout(d) as cm`): a deadline that the
/// body can move while it runs.
///
/// ```
/// af::timeout_scope scope(2s);
/// std::string reply = co_await scope.run(exchange(socket, scope)); // may call reschedule()
/// if (scope.expired()) ...
/// ```
/// `run(body)` behaves as `timeout_at(scope.when(), body)` — the body runs as a child task on
/// the awaiting coroutine's executor; when the deadline passes it is cancelled, awaited until
/// it has finished, and `timeout_error` is raised if it ended cancelled; a cancellation of the
/// awaiting coroutine wins over the deadline — except that the deadline is read when it is
/// reached, not when `run` starts, so `reschedule()` moves it while the body runs.
///
/// A scope runs once. The object may be destroyed while its run is in flight (the run keeps
/// what it needs). **Thread safety:** `reschedule`, `when` and `expired` may be called from
/// any thread, concurrently with the run.
class timeout_scope {
public:
  /// No deadline (asyncio's `timeout(None)`); set one later with `reschedule`.
  timeout_scope();
  /// The deadline is `d` from now (from the construction, as asyncio's `timeout(d)` reads the
  /// clock when it is called).
  explicit timeout_scope(std::chrono::steady_clock::duration d);
  /// The deadline is `when`.
  explicit timeout_scope(std::chrono::steady_clock::time_point when);

  timeout_scope(const timeout_scope&) = delete;
  timeout_scope& operator=(const timeout_scope&) = delete;

  /// Runs `body` under the scope's deadline (see the class comment). Throws
  /// `invalid_state_error` if the scope already ran (or `run` was called before).
  template <class T> asio::awaitable<T> run(asio::awaitable<T> body);

  /// Moves the deadline to `when`, or removes it (`std::nullopt`). While the body runs, a
  /// `when` that has passed expires promptly (the expiry is posted). Throws
  /// `invalid_state_error` once the deadline has passed during the run or the run is over
  /// (asyncio raises RuntimeError in both cases). If re-arming the timer fails (bad_alloc),
  /// the exception propagates and the previous deadline stays in force.
  void reschedule(std::optional<std::chrono::steady_clock::time_point> when);

  /// The current deadline, or `std::nullopt` for none.
  std::optional<std::chrono::steady_clock::time_point> when() const;

  /// Whether the deadline passed while the body ran: true from the moment the scope makes its
  /// cancel request, and from then on (even if the body then finished with a value rather
  /// than cancelled).
  bool expired() const;

private:
  std::shared_ptr<detail::timeout_scope_core> core_;
};

/// The first input to finish decides: a future with its outcome (value, exception, or
/// cancellation with its message). Every other input is cancelled *before* that outcome is
/// published: once the result is done, each other plain future is cancelled (unless its own
/// setter was resolving it concurrently) and each other task has received its cancel request
/// (the seed's FIRST_COMPLETED pattern).
///
/// Cancelling the result cancels every input with the same message. The result lives on
/// the executor of the first input. Throws `std::invalid_argument` if `futures` is empty and
/// `invalid_state_error` if one of them is an empty handle.
template <class T> future<T> first_completed(std::vector<future<T>> futures);

/// The first input to finish *with a value* decides (hedged requests: Asio's `||`, folly's
/// `collectAnyWithoutException`): a future with that value, and every other input is
/// cancelled before it is published, as in `first_completed`. A failed input — an exception
/// or a cancellation — is skipped (its exception counts as retrieved). If every input fails,
/// the result fails with an `exception_group` holding each input's exception in input order
/// (a cancelled input contributes its `cancelled_error`).
///
/// Cancelling the result cancels every input with the same message. The result lives on
/// the executor of the first input; inputs may complete on any thread. Throws
/// `std::invalid_argument` if `futures` is empty and `invalid_state_error` if one of them is
/// an empty handle. For a move-only `T` the winner's value is moved out of it.
template <class T> future<T> first_success(std::vector<future<T>> futures);

/// The iterator of `as_completed`: yields the inputs in the order they complete.
///
/// A cheap handle (copies refer to the same iterator); its inputs stay referenced while a
/// handle lives, and are released (with the deadline timer) when the last one dies, resolved
/// or not.
///
/// **Thread safety:** `async_next` and `remaining` may be called from any thread, while the
/// inputs complete on other threads; one `async_next` may be outstanding at a time.
template <class T> class as_completed_iterator {
public:
  /// The completion signature of `async_next`.
  using completion_signature = void(std::exception_ptr, future<T>);
  using executor_type = asio::any_io_executor;

  /// An empty handle (`valid() == false`); its members throw `invalid_state_error`.
  as_completed_iterator() noexcept = default;

  bool valid() const noexcept { return static_cast<bool>(core_); }

  /// How many inputs have not been handed out yet (each call of `async_next` that yields an
  /// input or a `timeout_error` hands out one).
  std::size_t remaining() const;

  /// The executor of the first input: the default executor of `async_next` completions.
  executor_type get_executor() const;

  /// Waits for the next input to complete and yields it (done: read its outcome with
  /// `result()`, or await it). Inputs already done when `as_completed` was called come first,
  /// in input order; then each in the order it completes.
  ///
  /// **Completion signature:** `void(std::exception_ptr, future<T>)`. The exception is
  ///   - `timeout_error` once the deadline has passed, for every call while inputs remain
  ///     (inputs done before the deadline are still yielded first, as in asyncio);
  ///   - `invalid_state_error` if no inputs remain, or if another `async_next` is outstanding;
  ///   - `cancelled_error` if this wait was cancelled.
  /// The completion runs on the handler's associated executor (default: `get_executor()`),
  /// never inside `async_next`; outstanding work is counted while it waits.
  ///
  /// **Per-operation cancellation:** any cancellation type (terminal, partial or total)
  /// withdraws this request: it completes with `cancelled_error`, no input is consumed, and
  /// the inputs are not cancelled (asyncio: cancelling the task iterating over as_completed
  /// leaves the awaited futures alone). If an input was handed to the request first, the
  /// request completes with it instead.
  ///
  /// **Thread safety:** any thread. Throws `invalid_state_error` on an empty handle or if the
  /// execution context of the handler's executor has shut down.
  template <
      asio::completion_token_for<completion_signature> CompletionToken = asio::use_awaitable_t<>>
  auto async_next(CompletionToken&& token = CompletionToken()) const {
    // Defined in the class: clang 14 matches no out-of-line definition whose constraint
    // names the enclosing class template.
    auto& c = checked_core();
    return asio::async_initiate<CompletionToken, completion_signature>(detail::initiate_next<T>{&c},
                                                                       token, core_);
  }

  /// For internal use.
  explicit as_completed_iterator(std::shared_ptr<detail::as_completed_core<T>> core) noexcept
      : core_(std::move(core)) {}

private:
  detail::as_completed_core<T>& checked_core() const;

  std::shared_ptr<detail::as_completed_core<T>> core_;
};

/// asyncio's `as_completed(fs)`: an iterator yielding the inputs in completion order.
///
/// ```
/// auto it = af::as_completed(std::move(futures));
/// while (it.remaining() > 0) {
///   af::future<int> f = co_await it.async_next();
///   use(f.result());
/// }
/// ```
/// Throws `std::invalid_argument` if `futures` is empty (there would be no executor for the
/// completions) and `invalid_state_error` if one of them is an empty handle.
template <class T> as_completed_iterator<T> as_completed(std::vector<future<T>> futures);

/// `as_completed` with a deadline (asyncio's `as_completed(fs, timeout=...)`): once `timeout`
/// has passed, every further `async_next` while inputs remain fails with `timeout_error`
/// (inputs done before the deadline are yielded first). Nothing is cancelled. A `timeout` of
/// zero or less has passed at once: only the inputs already done are yielded. The timer runs
/// on the executor of the first input and stops once every input is done.
template <class T>
as_completed_iterator<T> as_completed(std::vector<future<T>> futures,
                                      std::chrono::steady_clock::duration timeout);

} // namespace asio_futures

#include <asio_futures/impl/wait.hpp>

#endif // ASIO_FUTURES_WAIT_HPP
