//
// asio_futures/future.hpp
//
// future<T>: asyncio's Future on Boost.Asio.
//
#ifndef ASIO_FUTURES_FUTURE_HPP
#define ASIO_FUTURES_FUTURE_HPP

#include <asio_futures/detail/ops.hpp>
#include <asio_futures/detail/state.hpp>
#include <asio_futures/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace asio_futures {

namespace asio = boost::asio;

template <class T> class future;

/// A `future<T>` or a type derived from it (such as `task<T>`): what the combinators accept.
template <class F>
concept future_like = requires {
  typename std::decay_t<F>::value_type;
}
&&std::is_base_of_v<future<typename std::decay_t<F>::value_type>, std::decay_t<F>>;

/// True for `future<U>` and types derived from it, such as `task<U>`.
template <class T>
struct is_future : std::bool_constant<future_like<T> && std::is_same_v<T, std::decay_t<T>>> {};

namespace detail {

template <class T> struct wait_signature {
  using type = void(std::exception_ptr, wait_value_t<T>);
};
template <> struct wait_signature<void> { using type = void(std::exception_ptr); };
// Awaiting a future<future<U>> (or future<task<U>>) yields U (asyncio's nested unwrapping).
template <class T>
requires is_future<T>::value struct wait_signature<T> : wait_signature<typename T::value_type> {
};

template <class T> struct access;

struct no_value {};
/// The parameter type of set_result(T); a placeholder for void (whose overload is disabled).
template <class T> using value_arg = std::conditional_t<std::is_void_v<T>, no_value, T>;
template <class T> struct result_ref { using type = const T&; };
template <> struct result_ref<void> { using type = void; };

/// The initiation of future<T>::async_wait. Its associated executor is the future's, which
/// tokens that build their own handler executor from the initiation (such as
/// experimental::use_promise) use; the state reference travels as the initiation argument.
struct initiate_wait {
  using executor_type = boost::asio::any_io_executor;
  const state_base* state;
  executor_type get_executor() const noexcept { return state->executor(); }
  template <class Handler, class T> void operator()(Handler&& h, state_ptr<T> s) const;
};

} // namespace detail

/// Identifies a registered done-callback for `remove_done_callback`. A small value type.
class callback_id {
public:
  callback_id() noexcept = default;
  friend bool operator==(const callback_id&, const callback_id&) noexcept = default;

private:
  template <class> friend class future;
  callback_id(const void* node, std::uint64_t serial) noexcept : node_(node), serial_(serial) {}
  const void* node_ = nullptr;
  std::uint64_t serial_ = 0;
};

/// Receives exceptions that were never retrieved (see `set_exception_handler`).
using exception_handler = std::function<void(std::exception_ptr, std::string_view what)>;

/// Installs the process-wide handler for lost exceptions and returns the previous one.
///
/// A future or task that completed with an exception which nobody retrieved (through
/// `result`, `exception`, an await, `get`, or `then`) is reported when its last handle dies
/// (asyncio: "Future exception was never retrieved"). Cancellation is never reported.
/// The default handler prints one line to stderr. An empty handler silences reports.
/// The handler runs on whichever thread drops the last reference and must not throw.
exception_handler set_exception_handler(exception_handler h);

/// A handle to a future: a result that will be available later, set from any thread.
///
/// Copies refer to the same future (`==` compares identity); the handle is one pointer. Every
/// member is safe to call from any thread at any time. `T` may be `void` or move-only.
/// Handles are shared references (like `std::shared_ptr`): every member is `const`, so a
/// lambda capturing a future by copy can resolve it.
///
/// Done-callbacks and waiters are never run inline by the call that completes the future:
/// each is submitted to its associated executor (callbacks: the future's executor unless the
/// callback has its own), in registration order.
template <class T> class future {
  static_assert(!std::is_reference_v<T>, "future<T&> is not supported; use std::reference_wrapper");

public:
  using value_type = T;
  /// The executor that runs done-callbacks and is the default executor of waiters.
  using executor_type = asio::any_io_executor;
  /// The completion signature of `async_wait`: `void(std::exception_ptr, T)`, or
  /// `void(std::exception_ptr)` for `T = void`; for `future<future<U>>` that of `U`. For a
  /// `T` that is not default-constructible (a socket, a type without a default state) it is
  /// `void(std::exception_ptr, std::optional<T>)`, the optional engaged whenever there is
  /// no exception: Asio's completions pass a value along with an exception.
  using completion_signature = typename detail::wait_signature<T>::type;

  /// A pending future whose done-callbacks run on `ex` (any executor convertible to
  /// `asio::any_io_executor`). Throws std::invalid_argument if `ex` is an empty
  /// `any_io_executor`.
  template <class Executor>
  requires std::is_convertible_v<const Executor&, asio::any_io_executor> &&
      (!std::is_base_of_v<asio::execution_context, Executor>)&&(
          !is_future<Executor>::value) explicit future(const Executor& ex);

  /// A pending future on `ctx.get_executor()`.
  template <class ExecutionContext>
  requires std::is_convertible_v<ExecutionContext&, asio::execution_context&>
  explicit future(ExecutionContext& ctx) : future(ctx.get_executor()) {}

  /// An empty handle: `valid() == false`; every operation but assignment, comparison,
  /// hashing and destruction throws `invalid_state_error`.
  future() noexcept = default;

  /// Whether this handle refers to a future.
  bool valid() const noexcept { return static_cast<bool>(state_); }

  /// Whether the future has a result, an exception, or was cancelled.
  bool done() const;

  /// Whether the future was cancelled.
  bool cancelled() const;

  /// Resolves the future with `v` and schedules its waiters and callbacks.
  /// Throws `invalid_state_error` if it is done (or is a task or a sleep, which resolve
  /// themselves). If moving `v` into the future throws, the future fails with that exception
  /// instead (its waiters get it) and the exception propagates from here.
  void set_result(detail::value_arg<T> v) const requires(!std::is_void_v<T>);
  void set_result() const requires std::is_void_v<T>;

  /// Fails the future with `e`. Throws `invalid_state_error` if it is done (or is a task),
  /// `std::invalid_argument` if `e` is null.
  void set_exception(std::exception_ptr e) const;

  /// Fails the future with the exception object `e`.
  template <class E>
  requires(!std::is_same_v<std::decay_t<E>, std::exception_ptr> &&
           std::is_base_of_v<std::exception, std::decay_t<E>>) void set_exception(E&& e) const {
    set_exception(std::make_exception_ptr(std::forward<E>(e)));
  }

  /// Like `set_result`, but returns false instead of throwing if the future is already
  /// done. Use it where several threads race to resolve one future.
  bool try_set_result(detail::value_arg<T> v) const requires(!std::is_void_v<T>);
  bool try_set_result() const requires std::is_void_v<T>;

  /// Like `set_exception`, but returns false if the future is already done.
  bool try_set_exception(std::exception_ptr e) const;

  /// Cancels the future: it becomes done and cancelled, and waiters get `cancelled_error`
  /// carrying `msg`. Returns false if it was already done. For a task (even through a plain
  /// `future<T>` copy of it), this requests cancellation of the task's coroutine instead.
  bool cancel(std::string msg = {}) const;

  /// The result. Throws `invalid_state_error` if pending (or if a move-only result was already
  /// taken), `cancelled_error` if cancelled, or the stored exception.
  typename detail::result_ref<T>::type result() const;

  /// The stored exception, or nullptr on success. Throws `invalid_state_error` if pending and
  /// `cancelled_error` if cancelled.
  std::exception_ptr exception() const;

  /// Registers `f`, called as `f(future<T>)` once the future is done — on `f`'s associated
  /// executor, defaulting to the future's executor, never inline. If the future is already
  /// done, `f` is scheduled at once; if that submission throws (the executor refuses it),
  /// `f` is destroyed uninvoked and the exception propagates from here. Callbacks run in
  /// registration order. An exception thrown by `f` propagates out of the executor's
  /// `run()`, as with any Asio handler.
  template <class F>
  requires std::is_invocable_v<std::decay_t<F> &&, future<T>>
      callback_id add_done_callback(F&& f) const {
    // Defined in the class: clang 14 matches no out-of-line definition of a member template
    // whose constraint names the enclosing class template.
    auto& s = checked_state();
    using op_type = detail::callback_op<T, std::decay_t<F>, future<T>>;
    const std::uint64_t serial = detail::next_callback_serial();
    op_type* op = op_type::create(std::forward<F>(f), serial, s);
    if (!s.push(op))
      op->schedule(&s); // done already; schedule() owns op and destroys it if it throws
    return callback_id(op, serial);
  }

  /// Unregisters a callback; returns how many were removed (0 or 1; 0 once the future is
  /// done and its callbacks are scheduled).
  std::size_t remove_done_callback(callback_id id) const;

  /// Waits for the future asynchronously.
  ///
  /// **Completion signature:** `void(std::exception_ptr, T)` (`void(std::exception_ptr)` for
  /// void; for `future<future<U>>` that of `U`: the inner future is awaited too). The value
  /// is copied to each waiter if `T` is copyable (a copy that throws completes that waiter
  /// with the copy's exception); a move-only value is moved to the first waiter, and later
  /// ones get `invalid_state_error` ("result already taken").
  ///
  /// The completion runs on the handler's associated executor (default: the future's),
  /// never inside `async_wait` or inside the call that resolves the future. While waiting, the
  /// handler's executor counts outstanding work. Storage comes from the handler's associated
  /// allocator (default: Asio's recycling allocator).
  ///
  /// **Immediate completion** (Asio >= 1.28, Boost 1.82): if the future is already done and
  /// the handler has an associated immediate executor (`asio::bind_immediate_executor`), the
  /// completion is dispatched to it, as Asio's own operations do: with an executor the
  /// calling thread runs, the handler runs inside `async_wait`. Without one it is posted.
  ///
  /// **Per-operation cancellation:** a signal with the `terminal` bit (also
  /// `cancellation_type::all`) cancels the future itself, as cancelling an awaiting asyncio
  /// task cancels what it awaits. `partial` or `total` detach only this waiter: it completes
  /// with `cancelled_error`; the future and other waiters are untouched.
  ///
  /// **Thread safety:** any thread. Throws `invalid_state_error` if the handle is empty or the
  /// handler executor's context has shut down; an exception from setting up the wait
  /// (allocating, installing the cancellation handler, submitting the completion of a done
  /// future) propagates too, and leaves no waiter behind.
  ///
  /// Awaiting: `co_await f.async_wait()` on every Boost. From Asio 1.28 (Boost 1.82) the future
  /// itself is an awaitable operation: `co_await std::move(f)` (the handle is not moved from);
  /// Boost 1.81 handles no `void(std::exception_ptr, T)` operation there, and no Asio awaits a
  /// named (lvalue) operation.
  template <
      asio::completion_token_for<completion_signature> CompletionToken = asio::use_awaitable_t<>>
  auto async_wait(CompletionToken&& token = CompletionToken()) const {
    // Defined in the class, as add_done_callback (clang 14).
    checked_state();
    if constexpr (is_future<T>::value) {
      return unwrap().async_wait(std::forward<CompletionToken>(token));
    } else {
      return asio::async_initiate<CompletionToken, completion_signature>(
          detail::initiate_wait{state_.get()}, token, state_);
    }
  }

  /// The future as an Asio async operation: `f(token)` is `f.async_wait(token)`.
  template <asio::completion_token_for<completion_signature> CompletionToken>
  auto operator()(CompletionToken&& token) const {
    return async_wait(std::forward<CompletionToken>(token));
  }

  /// Blocks the calling thread until the future is done. For threads outside the future's
  /// executor: called on a thread that runs the future's io_context, strand or thread pool
  /// while the future is pending it throws `invalid_state_error` instead of deadlocking.
  void wait() const;

  /// Blocks for at most `d`; true if the future is done. Same rules as `wait()`.
  template <class Rep, class Period> bool wait_for(std::chrono::duration<Rep, Period> d) const;

  /// `wait()` then the result: a copy for copyable `T`, moved out for move-only `T`.
  T get() const;

  /// The future's executor.
  executor_type get_executor() const;

  /// A future of `f` applied to this future's value, run on this future's executor (or `f`'s
  /// associated executor) once this future is done. `f` takes `T` (nothing for `void`) and may
  /// return `void`, a value `R` (giving `future<R>`), or a `future<R>` (flattened into
  /// `future<R>`). If this future fails or is cancelled, `f` is not called and the result
  /// fails or is cancelled the same way; an exception thrown by `f` fails the result.
  /// Cancelling the result does not cancel this future (it only skips `f`).
  template <class F> auto then(F f) const;

  /// For `future<future<U>>`: a `future<U>` that completes with the inner future's outcome.
  auto unwrap() const requires is_future<T>::value;

  friend bool operator==(const future& a, const future& b) noexcept {
    return a.state_.get() == b.state_.get();
  }

  /// For internal use: wraps an existing state reference.
  explicit future(detail::state_ptr<T> s) noexcept : state_(std::move(s)) {}

protected:
  detail::state<T>& checked_state() const;

  detail::state_ptr<T> state_;

  template <class> friend struct detail::access;
  template <class> friend class future;
  friend struct std::hash<future<T>>;
};

/// A future already holding `v`.
template <class Executor, class V>
requires(!std::is_convertible_v<Executor&, asio::execution_context&>)
    future<std::decay_t<V>> make_ready_future(const Executor& ex, V&& v);
template <class ExecutionContext, class V>
requires std::is_convertible_v<ExecutionContext&, asio::execution_context&> future<std::decay_t<V>>
make_ready_future(ExecutionContext& ctx, V&& v) {
  return make_ready_future(ctx.get_executor(), std::forward<V>(v));
}
/// A done `future<void>`.
future<void> make_ready_future(const asio::any_io_executor& ex);

/// A future already failed with `e`.
template <class T>
future<T> make_exceptional_future(const asio::any_io_executor& ex, std::exception_ptr e);

/// A future already cancelled with message `msg`.
template <class T>
future<T> make_cancelled_future(const asio::any_io_executor& ex, std::string msg = {});

} // namespace asio_futures

template <class T> struct std::hash<asio_futures::future<T>> {
  std::size_t operator()(const asio_futures::future<T>& f) const noexcept {
    return std::hash<const void*>()(f.state_.get());
  }
};

#include <asio_futures/impl/future.hpp>

#endif // ASIO_FUTURES_FUTURE_HPP
