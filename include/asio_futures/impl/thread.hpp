//
// asio_futures/impl/thread.hpp
//
// Templates of thread.hpp.
//
#ifndef ASIO_FUTURES_IMPL_THREAD_HPP
#define ASIO_FUTURES_IMPL_THREAD_HPP

#include <asio_futures/detail/inline_op.hpp>

#include <boost/asio/post.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <thread>

namespace asio_futures {
namespace detail {

/// Posts `job` (which resolves `s`) to `pool`. If posting throws (allocation), the job was
/// destroyed unrun and failed `s`; the caller gets the exception instead of the future, so
/// that failure is marked retrieved (it is not a lost exception).
template <class R, class PoolExecutor, class Job>
void post_offload_job(const PoolExecutor& pool, state<R>& s, Job&& job) {
  try {
    asio::post(pool, std::forward<Job>(job));
  } catch (...) {
    s.mark_retrieved();
    throw;
  }
}

/// Submits the job computing `f(args...)` into the pending `out` to `pool`, or fails `out` at
/// once if the pool will never run it.
template <class R, class PoolExecutor, class F, class... Args>
void submit_offload(const future<R>& out, const PoolExecutor& pool, F&& f, Args&&... args) {
  static_assert(!std::is_reference_v<R>,
                "run_in_executor: f returns a reference; return a value or a "
                "std::reference_wrapper");
  state<R>* s = access<R>::get(out);
  if (offload_target_closed(pool)) {
    resolve_exception(*s, pool_closed_error());
    return;
  }
  using traits = offload_traits<std::decay_t<F>, std::decay_t<Args>...>;
  if constexpr (traits::takes_stop_token) {
    std::stop_source source;
    auto call = [f = std::forward<F>(f), token = source.get_token(),
                 ... args = std::forward<Args>(args)]() mutable -> R {
      return std::invoke(std::move(f), std::move(token), std::move(args)...);
    };
    // Cancelling the result requests stop. The op runs inline in whatever completes `out`
    // (the cancelling call, or the job resolving it, when there is nothing left to stop);
    // it reads the outcome there, where it is already written. `s` outlives the op: the op
    // is linked in `s`'s list and runs at the latest when `s` is destroyed (then with false).
    on_done_inline(out, [s, source = std::move(source)](bool completed) mutable {
      if (completed && s->get_outcome() == outcome::cancelled)
        source.request_stop();
    });
    post_offload_job(pool, *s,
                     offload_job<R, decltype(call)>(state_ptr<R>::share(s), std::move(call)));
  } else {
    auto call = [f = std::forward<F>(f), ... args = std::forward<Args>(args)]() mutable -> R {
      return std::invoke(std::move(f), std::move(args)...);
    };
    post_offload_job(pool, *s,
                     offload_job<R, decltype(call)>(state_ptr<R>::share(s), std::move(call)));
  }
}

/// wrap_future for a std::future or std::shared_future.
template <class T, class StdFuture, class Executor>
future<T> wrap_std_future(StdFuture f, const Executor& ex) {
  static_assert(!std::is_reference_v<T>,
                "wrap_future: std::future<T&> has no asio_futures equivalent; use "
                "std::reference_wrapper");
  if (!f.valid())
    throw_invalid_state("asio_futures::wrap_future: the std::future has no shared state");
  check_executor(ex, "asio_futures::wrap_future: empty executor");
  future<T> out(ex);
  if (f.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
    settle_from_std(*access<T>::get(out), f);
    return out;
  }
  // A std::future has no callback: a dedicated thread blocks until it is ready (see the
  // cost paragraph of wrap_future). Detached: a never-satisfied std::future must not make
  // the process hang at exit.
  std::thread([s = access<T>::share(out), f = std::move(f)]() mutable {
    f.wait();
    settle_from_std(*s, f);
  }).detach();
  return out;
}

} // namespace detail

template <class Pool, class F, class... Args>
requires detail::executor_or_context<Pool> && detail::offloadable<F, Args...>
    future<offload_result_t<F, Args...>> run_in_executor(Pool&& pool, F&& f, Args&&... args) {
  using R = offload_result_t<F, Args...>;
  const auto& pool_ex = detail::executor_of(pool);
  detail::check_executor(pool_ex, "asio_futures::run_in_executor: empty pool executor");
  future<R> out(pool_ex);
  detail::submit_offload(out, pool_ex, std::forward<F>(f), std::forward<Args>(args)...);
  return out;
}

template <class Loop, class Pool, class F, class... Args>
requires detail::executor_or_context<Loop> && detail::executor_or_context<Pool> &&
    detail::offloadable<F, Args...>
        future<offload_result_t<F, Args...>> run_in_executor(Loop&& loop, Pool&& pool, F&& f,
                                                             Args&&... args) {
  using R = offload_result_t<F, Args...>;
  const auto& loop_ex = detail::executor_of(loop);
  const auto& pool_ex = detail::executor_of(pool);
  detail::check_executor(loop_ex, "asio_futures::run_in_executor: empty loop executor");
  detail::check_executor(pool_ex, "asio_futures::run_in_executor: empty pool executor");
  future<R> out(loop_ex);
  detail::submit_offload(out, pool_ex, std::forward<F>(f), std::forward<Args>(args)...);
  return out;
}

template <class F, class... Args>
requires detail::offloadable<F, Args...> future<offload_result_t<F, Args...>>
to_thread(F&& f, Args&&... args) {
  return run_in_executor(default_thread_pool(), std::forward<F>(f), std::forward<Args>(args)...);
}

template <class T, class Executor>
requires detail::executor_or_context<Executor> future<T> wrap_future(std::future<T> f,
                                                                     Executor&& ex) {
  return detail::wrap_std_future<T>(std::move(f), detail::executor_of(ex));
}

template <class T, class Executor>
requires detail::executor_or_context<Executor> future<T> wrap_future(std::shared_future<T> f,
                                                                     Executor&& ex) {
  static_assert(std::is_void_v<T> || std::is_copy_constructible_v<T>,
                "wrap_future(std::shared_future<T>): T must be copyable (a shared future's "
                "value is shared, so each wrap copies it)");
  return detail::wrap_std_future<T>(std::move(f), detail::executor_of(ex));
}

template <class T> std::future<T> to_std_future(future<T> f) {
  if (!f.valid())
    detail::throw_invalid_state("asio_futures::to_std_future: empty handle");
  std::promise<T> p;
  std::future<T> out = p.get_future();
  detail::state<T>* s = detail::access<T>::get(f);
  // Inline, on the completing thread: a thread blocked in out.get() must not depend on
  // anyone running f's executor. Destroyed uncompleted (every handle died), the promise
  // breaks: out reports broken_promise.
  detail::on_done_inline(f, [s, p = std::move(p)](bool completed) mutable {
    if (completed)
      detail::settle_promise(*s, p);
  });
  return out;
}

} // namespace asio_futures

#endif // ASIO_FUTURES_IMPL_THREAD_HPP
