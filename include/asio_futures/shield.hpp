//
// asio_futures/shield.hpp
//
// shield: asyncio.shield on futures.
//
#ifndef ASIO_FUTURES_SHIELD_HPP
#define ASIO_FUTURES_SHIELD_HPP

#include <asio_futures/future.hpp>

namespace asio_futures {

/// Protects a future from cancellation: asyncio's `shield`.
///
///     T v = co_await af::shield(f).async_wait();   // cancelling this await leaves f running
///
/// **Result.** A new `future<T>` on `inner`'s executor that ends as `inner` ends: its value, its
/// exception, or cancelled with the same message if `inner` is cancelled. If `inner` is already
/// done, `inner` itself is returned (asyncio does the same; cancelling a done future is a
/// no-op).
///
/// **Cancellation.** Cancelling the result — `cancel(msg)`, or a `terminal` cancellation of an
/// awaiter of it, such as cancelling the task that awaits it — makes the result `cancelled()`
/// at once and does *not* cancel `inner`: `inner` keeps running and its outcome still reaches
/// its other awaiters and callbacks. The result lets go of `inner` at that moment (as asyncio
/// removes its callback), so `inner`'s later exception is reported as never retrieved unless
/// someone else retrieves it. Cancelling `inner` itself cancels the result too.
///
/// **Move-only values.** The result takes `inner`'s value out when `inner` completes, so other
/// consumers of a move-only `inner` see `invalid_state_error` ("result already taken"), unless
/// the result was cancelled first.
///
/// **Lifetime.** While both are pending the result keeps `inner` alive (as asyncio's shield
/// does). Once the result is done, or nobody can read it any more (no handle, waiter or
/// done-callback on it), it lets go of `inner` without cancelling it.
///
/// **Cost.** Two allocations (the result's state, and one object holding the two list nodes
/// that link it to `inner`); `inner`'s completion is forwarded inline, without a scheduler trip.
///
/// **Thread safety:** any thread; `inner` may be completed, and the result cancelled, from
/// different threads concurrently. Throws `invalid_state_error` if `inner` is an empty handle.
template <future_like F> future<typename F::value_type> shield(const F& inner);

} // namespace asio_futures

#include <asio_futures/impl/shield.hpp>

#endif // ASIO_FUTURES_SHIELD_HPP
