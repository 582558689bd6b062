//
// asio_futures/thread.hpp
//
// Thread offload and bridges: run_in_executor, to_thread, the default thread
// pool, wrap_future (std::future -> future) and to_std_future (future -> std::future).
//
#ifndef ASIO_FUTURES_THREAD_HPP
#define ASIO_FUTURES_THREAD_HPP

#include <asio_futures/detail/offload.hpp>
#include <asio_futures/future.hpp>

#include <boost/asio/thread_pool.hpp>

#include <future>
#include <stop_token>
#include <type_traits>
#include <utility>

namespace asio_futures {

/// The value type of the future returned by `run_in_executor(pool, f, args...)`:
/// `std::invoke_result_t<F, std::stop_token, Args...>` if `F` can be called with a
/// `std::stop_token` first (`std::jthread`'s rule), else `std::invoke_result_t<F, Args...>`;
/// `F` and `Args` are taken as decayed rvalues, as `std::thread` calls them.
template <class F, class... Args>
using offload_result_t =
    typename detail::offload_traits<std::decay_t<F>, std::decay_t<Args>...>::type;

/// Runs `f(args...)` on `pool` and returns a future of its result (asyncio's
/// `loop.run_in_executor(executor, func, *args)`).
///
/// `pool` is an executor (`asio::thread_pool::executor_type`, a strand on it, another
/// io_context's executor, an `any_io_executor`) or an execution context passed by reference
/// (`asio::thread_pool&`, `asio::io_context&`). `f` and `args` are decay-copied (moved if
/// rvalues) into the job and `f` is called with them as rvalues, like `std::thread` does;
/// they are destroyed on the pool. The job is submitted with `blocking.never`: `f` never runs
/// inside this call, and so never on the calling (io_context) thread unless `pool` is that
/// thread's own executor.
///
/// The returned future's executor (which runs its done-callbacks and is the default
/// executor of its waiters) is the pool's executor here and `loop` in the overload below.
/// Awaiting it resumes on the awaiting coroutine's executor either way:
/// `co_await af::run_in_executor(pool, f).async_wait()` never resumes on the pool thread.
/// As for any future, a strand executor must not outlive its context: see docs/threads.md
/// (lifetimes) for a pool that lives in the awaiting coroutine's frame.
///
/// **Outcome:** `f`'s return value (void and move-only types work) or the exception it throws.
/// If the pool cannot run the job — it has been stopped, joined or shut down (an
/// `asio::thread_pool` after `stop()`/`join()`, a context after shutdown) — the future is
/// returned already failed with `invalid_state_error`; a job that the pool drops unrun later
/// (it is stopped and destroyed with the job still queued) fails the future the same way.
///
/// **Cancellation** (`cancel()` on any handle, or a terminal cancellation of a waiter):
///   - before a pool thread picks the job up: `f` never runs;
///   - while `f` runs: asyncio's rule, `f` runs to its end and its result (or exception) is
///     dropped; unless `f` takes a `std::stop_token` as its first parameter: then it is handed
///     one, and cancelling the future requests stop on it. `std::stop_callback`s registered on
///     that token run inside the cancelling call, on the cancelling thread (the
///     `std::stop_source` rule).
///
/// **Thread safety:** any thread. Throws `std::invalid_argument` if `pool` is an empty
/// `any_io_executor`, and what copying `f`/`args` or allocating throws.
template <class Pool, class F, class... Args>
requires detail::executor_or_context<Pool> && detail::offloadable<F, Args...>
    future<offload_result_t<F, Args...>> run_in_executor(Pool&& pool, F&& f, Args&&... args);

/// `run_in_executor(pool, f, args...)`, returning a future whose executor is `loop` (an
/// executor or an execution context): its done-callbacks and default waiters run there,
/// as asyncio's `loop.run_in_executor` returns a future of `loop`. Throws
/// `std::invalid_argument` if `loop` or `pool` is an empty `any_io_executor`.
template <class Loop, class Pool, class F, class... Args>
requires detail::executor_or_context<Loop> && detail::executor_or_context<Pool> &&
    detail::offloadable<F, Args...>
        future<offload_result_t<F, Args...>> run_in_executor(Loop&& loop, Pool&& pool, F&& f,
                                                             Args&&... args);

/// The pool `to_thread` submits to: the pool installed by `set_default_thread_pool`, or else
/// a built-in `asio::thread_pool` with `std::thread::hardware_concurrency()` threads (at
/// least one), created on first use.
///
/// The built-in pool lives until static destruction at exit, where it is stopped and joined:
/// jobs still queued then never start (their futures fail with `invalid_state_error`), jobs
/// already running are waited for. Calling this after that point throws
/// `invalid_state_error`. **Thread safety:** any thread.
asio::thread_pool& default_thread_pool();

/// Makes `pool` the pool of `to_thread` (and `default_thread_pool()`), from now on.
///
/// The library does not own `pool`: it must outlive every later `to_thread` call, or the
/// default must be set to another pool before it dies (to restore the previous default, pass
/// what `default_thread_pool()` returned before). Futures already submitted stay with the
/// pool they were submitted to. A built-in pool that already exists keeps running until exit.
/// **Thread safety:** any thread; calls racing with `to_thread` use either pool.
void set_default_thread_pool(asio::thread_pool& pool);

/// `run_in_executor(default_thread_pool(), f, args...)` — asyncio's `asyncio.to_thread`.
/// The future's executor is the default pool's; await it from any coroutine (it resumes on
/// that coroutine's executor). A `std::stop_token` first parameter works as in
/// `run_in_executor`.
template <class F, class... Args>
requires detail::offloadable<F, Args...> future<offload_result_t<F, Args...>>
to_thread(F&& f, Args&&... args);

/// A `future<T>` on `ex` (an executor or an execution context) that completes with the
/// outcome of `f`: its value, or its exception. An `asio_futures::cancelled_error` stored in
/// `f` (for instance by `to_std_future` of a cancelled future) makes the result *cancelled*,
/// with the same message.
///
/// **Cost:** a `std::future` has no completion callback, so unless `f` is already ready (then
/// no thread is involved) a dedicated thread is started that blocks in `f.wait()` and
/// resolves the result; it ends as soon as `f` is ready. Nothing polls. A pool thread is
/// deliberately not used: a wait cannot be interrupted, so waits parked on a bounded pool
/// could occupy every thread and deadlock the jobs that would satisfy them. A `std::future`
/// that is never satisfied keeps its thread blocked until the process exits (the thread is
/// detached). A deferred `std::future` (`std::async(std::launch::deferred, ...)`) runs its
/// function on that thread.
///
/// Cancelling the result cancels it at once; the waiting thread still waits for `f` and then
/// drops its value.
///
/// **Thread safety:** any thread. Throws `invalid_state_error` if `f` has no shared state
/// (`!f.valid()`), `std::invalid_argument` for an empty executor, and `std::system_error` if
/// the thread cannot be started.
template <class T, class Executor>
requires detail::executor_or_context<Executor> future<T> wrap_future(std::future<T> f,
                                                                     Executor&& ex);

/// `wrap_future` for a `std::shared_future<T>`: the value is copied (so `T` must be
/// copyable), and other holders of the shared future are unaffected.
template <class T, class Executor>
requires detail::executor_or_context<Executor> future<T> wrap_future(std::shared_future<T> f,
                                                                     Executor&& ex);

/// A `std::future<T>` that becomes ready with `f`'s outcome: its value (copied for copyable
/// `T`; a move-only value is moved out, as the first waiter would), its exception, or, if
/// `f` is cancelled, a `cancelled_error` carrying the cancel message. Handing the outcome over
/// counts as retrieving it (no lost-exception report). If every handle of a pending `f` dies
/// without it completing, the `std::future` reports `std::future_errc::broken_promise`.
///
/// The hand-over runs on the thread that completes `f`, with no executor involved, so a
/// thread may block in the `std::future`'s `get()` even while the executor of `f` is not
/// being run — except on a thread that itself must run to complete `f` (a deadlock this
/// library cannot detect for a `std::future`).
///
/// **Thread safety:** any thread. Throws `invalid_state_error` if `f` is an empty handle.
template <class T> std::future<T> to_std_future(future<T> f);

} // namespace asio_futures

#include <asio_futures/impl/thread.hpp>

#endif // ASIO_FUTURES_THREAD_HPP
