//
// asio_futures/sleep.hpp
//
// sleep: asyncio.sleep as a cancellable future.
//
#ifndef ASIO_FUTURES_SLEEP_HPP
#define ASIO_FUTURES_SLEEP_HPP

#include <asio_futures/future.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>

#include <chrono>
#include <type_traits>

namespace asio_futures {

/// A `future<void>` that resolves after `d`: asyncio's `sleep`.
///
///     co_await af::sleep(ex, 50ms).async_wait();
///
/// **Timer.** A `steady_timer` on `ex` (any executor convertible to `asio::any_io_executor`:
/// an io_context's, a strand, a thread pool's) waits `d`; its completion resolves the future
/// there. Like any pending timer it counts as outstanding work of `ex`'s context until it
/// completes. `d <= 0` sets no timer: the future is resolved by a function posted to `ex`, on
/// its next turn (asyncio's `sleep(0)` also yields once). The future's executor is `ex`.
///
/// **Cancellation.** `cancel(msg)` — from any thread, or through a `terminal` cancellation of
/// an awaiter, such as cancelling the task that awaits it — makes the future `cancelled()` at
/// once and cancels the timer, so nothing stays scheduled: the aborted timer wait completes on
/// `ex` and releases its work (an `io_context::run()` with nothing else to do returns).
///
/// A sleep resolves itself: `set_result`/`set_exception` on it throw `invalid_state_error`
/// (they would leave the timer pending); `cancel()` ends it early.
///
/// **Shutdown.** If `ex`'s context is destroyed while the sleep is pending, the timer wait is
/// destroyed with it and the future ends cancelled; nothing leaks. On a context that has
/// already shut down, `sleep` throws `invalid_state_error`.
///
/// **Cost.** One allocation for the future's state (which holds the timer) and Asio's own for
/// the timer wait (its recycling allocator).
///
/// **Thread safety:** `sleep` may be called from any thread; the timer is only touched under a
/// lock held by the future's state, so cancelling from another thread than `ex`'s is safe.
template <class Executor, class Rep, class Period>
requires std::is_convertible_v<const Executor&, asio::any_io_executor> &&
    (!std::is_base_of_v<asio::execution_context, Executor>)
        future<void> sleep(const Executor& ex, std::chrono::duration<Rep, Period> d);

/// `sleep(ex, d)` resolving to `value` (asyncio's `sleep(delay, result)`).
template <class Executor, class Rep, class Period, class V>
requires std::is_convertible_v<const Executor&, asio::any_io_executor> &&
    (!std::is_base_of_v<asio::execution_context, Executor>)future<std::decay_t<V>> sleep(
        const Executor& ex, std::chrono::duration<Rep, Period> d, V&& value);

/// `sleep(ctx.get_executor(), d)`.
template <class ExecutionContext, class Rep, class Period>
requires std::is_convertible_v<ExecutionContext&, asio::execution_context&> future<void>
sleep(ExecutionContext& ctx, std::chrono::duration<Rep, Period> d) {
  return sleep(ctx.get_executor(), d);
}

/// `sleep(ctx.get_executor(), d, value)`.
template <class ExecutionContext, class Rep, class Period, class V>
requires std::is_convertible_v<ExecutionContext&, asio::execution_context&> future<std::decay_t<V>>
sleep(ExecutionContext& ctx, std::chrono::duration<Rep, Period> d, V&& value) {
  return sleep(ctx.get_executor(), d, std::forward<V>(value));
}

} // namespace asio_futures

#include <asio_futures/impl/sleep.hpp>

#endif // ASIO_FUTURES_SLEEP_HPP
