//
// asio_futures/detail/offload.hpp
//
// Machinery of thread.hpp: the job that run_in_executor submits to a pool, the closed-pool
// check, and the hand-overs between std::future/std::promise and a future's state.
//
#ifndef ASIO_FUTURES_DETAIL_OFFLOAD_HPP
#define ASIO_FUTURES_DETAIL_OFFLOAD_HPP

#include <asio_futures/detail/ops.hpp>
#include <asio_futures/detail/state.hpp>
#include <asio_futures/error.hpp>

#include <boost/asio/execution/executor.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/is_executor.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/version.hpp>

#include <exception>
#include <future>
#include <stdexcept>
#include <stop_token>
#include <type_traits>
#include <utility>

// WORKAROUND(Boost 1.81-1.90, Asio 1.26-1.38): whether a stopped or joined asio::thread_pool
// is recognised at submission, through its internal scheduler (src/future.cpp), on the Asio
// versions this was verified with. Elsewhere such a job fails when the pool is destroyed.
#if BOOST_ASIO_VERSION >= 102600 && BOOST_ASIO_VERSION <= 103800
#define ASIO_FUTURES_DETAIL_POOL_STOP_PROBE 1
#else
#define ASIO_FUTURES_DETAIL_POOL_STOP_PROBE 0
#endif

namespace asio_futures::detail {

namespace asio = boost::asio;

/// An executor of either model Asio accepts, or an execution context passed by lvalue
/// reference (`asio::thread_pool&`, `asio::io_context&`).
template <class E>
concept executor_or_context = asio::execution::is_executor<std::decay_t<E>>::value ||
    asio::is_executor<std::decay_t<E>>::value ||
    (std::is_lvalue_reference_v<E>&&
         std::is_convertible_v<std::remove_reference_t<E>&, asio::execution_context&>);

/// The executor of an executor_or_context argument.
template <class E> decltype(auto) executor_of(E& e) {
  if constexpr (std::is_convertible_v<E&, asio::execution_context&>)
    return e.get_executor();
  else
    return static_cast<const E&>(e);
}

/// Throws std::invalid_argument if `ex` is an empty (polymorphic) executor.
template <class Executor> void check_executor(const Executor& ex, const char* message) {
  if constexpr (std::is_constructible_v<bool, const Executor&>) {
    if (!ex)
      throw std::invalid_argument(message);
  }
}

/// How run_in_executor calls `F` (decayed) with `A...` (decayed, as rvalues): with a
/// std::stop_token first if it can (std::jthread's rule), else without. No members when it
/// cannot be called either way: a return type naming `type` is then a substitution failure
/// (clang 14 substitutes into the return type before checking the constraints).
template <class F, class... A> struct offload_traits {};
template <class F, class... A>
requires(std::is_invocable_v<F, std::stop_token, A...> ||
         std::is_invocable_v<F, A...>) struct offload_traits<F, A...> {
  static constexpr bool takes_stop_token = std::is_invocable_v<F, std::stop_token, A...>;
  using type =
      typename std::conditional_t<takes_stop_token, std::invoke_result<F, std::stop_token, A...>,
                                  std::invoke_result<F, A...>>::type;
};

/// `f(args...)` (or `f(stop_token, args...)`) can be run by run_in_executor.
template <class F, class... A>
concept offloadable =
    (std::is_invocable_v<std::decay_t<F>, std::decay_t<A>...> ||
     std::is_invocable_v<std::decay_t<F>, std::stop_token,
                         std::decay_t<A>...>)&&std::is_constructible_v<std::decay_t<F>, F> &&
    (std::is_constructible_v<std::decay_t<A>, A> && ...);

/// The exception of a job that its pool will never run (stopped, joined, shut down).
std::exception_ptr pool_closed_error() noexcept;
/// The exception of a job that its pool destroyed unrun (shut down with the job queued).
std::exception_ptr job_dropped_error() noexcept;

/// Whether `ctx` will never run a function submitted now: it has shut down, or `pool` (the
/// same context, when the caller could tell it is an `asio::thread_pool`) was stopped or
/// joined. False when it cannot tell (a context that shut down before this library first saw
/// it).
bool offload_context_closed(asio::execution_context& ctx, asio::thread_pool* pool);

/// The `asio::thread_pool` an `any_io_executor` submits to, if it holds one of the executor
/// types Asio hands out for a pool (its executor with any of the standard properties
/// required, or a strand of one); else nullptr.
asio::thread_pool* thread_pool_of_any(const asio::any_io_executor& ex) noexcept;

/// The `asio::thread_pool` `ex` submits to, or nullptr if it is not a pool's (or cannot tell).
/// Asio's execution_context is not polymorphic: this is known from the executor's type.
template <class Executor> asio::thread_pool* thread_pool_of(const Executor& ex) noexcept {
  if constexpr (std::is_same_v<Executor, asio::any_io_executor>) {
    return thread_pool_of_any(ex);
  } else if constexpr (requires { ex.get_inner_executor(); }) {
    return thread_pool_of(ex.get_inner_executor()); // a strand (or another adapter)
  } else if constexpr (asio::can_query<const Executor&, asio::execution::context_t>::value) {
    using context_type = std::decay_t<decltype(asio::query(ex, asio::execution::context))>;
    if constexpr (std::is_same_v<context_type, asio::thread_pool>)
      return &asio::query(ex, asio::execution::context);
    else
      return nullptr;
  } else {
    return nullptr;
  }
}

template <class Executor> bool offload_target_closed(const Executor& ex) {
  asio::execution_context* ctx = context_of(ex);
  return ctx && offload_context_closed(*ctx, thread_pool_of(ex));
}

/// The function object submitted to the pool: owns a reference to the result's state and the
/// bound call. Runs the call only if the result is still pending when a pool thread picks it
/// up; destroyed unrun (the pool shut down with it queued), it fails the result.
template <class R, class Call> class offload_job {
public:
  offload_job(state_ptr<R> s, Call&& call) : state_(std::move(s)), call_(std::move(call)) {}
  offload_job(offload_job&&) = default; // leaves state_ empty: the moved-from job is inert
  offload_job& operator=(offload_job&&) = delete;
  ~offload_job() {
    if (state_)
      resolve_exception(*state_, job_dropped_error());
  }

  void operator()() {
    const state_ptr<R> s(std::move(state_));
    // Cancelled (or otherwise resolved) before a pool thread picked the job up: `f` never
    // runs. done() loads with acquire, so the canceller's writes are visible here.
    if (s->done())
      return;
    try {
      if constexpr (std::is_void_v<R>) {
        std::move(call_)();
        resolve_value(*s);
      } else {
        // Resolving fails (and the value is dropped) if the result was cancelled meanwhile.
        resolve_value(*s, std::move(call_)());
      }
    } catch (...) {
      resolve_exception(*s, std::current_exception());
    }
  }

private:
  state_ptr<R> state_;
  Call call_;
};

/// Resolves `s` (if still pending) from a ready std::future or std::shared_future. An
/// asio_futures::cancelled_error it holds makes `s` cancelled. Never throws.
template <class T, class StdFuture> void settle_from_std(state<T>& s, StdFuture& f) noexcept {
  try {
    if constexpr (std::is_void_v<T>) {
      f.get();
      resolve_value(s);
    } else {
      resolve_value(s, f.get());
    }
  } catch (const cancelled_error&) {
    if (s.try_claim())
      s.finish_exception(std::current_exception(), outcome::cancelled);
  } catch (...) {
    resolve_exception(s, std::current_exception());
  }
}

/// Hands the outcome of done `s` over to `p` (see to_std_future). Never throws.
template <class T> void settle_promise(state<T>& s, std::promise<T>& p) noexcept {
  try {
    s.mark_retrieved();
    if (s.get_outcome() != outcome::value) {
      p.set_exception(s.error()); // a cancelled state's error is its cancelled_error
    } else if constexpr (std::is_void_v<T>) {
      p.set_value();
    } else if constexpr (std::is_copy_constructible_v<T>) {
      p.set_value(s.value());
    } else if (s.take_value()) {
      p.set_value(std::move(s.value()));
    } else {
      p.set_exception(result_taken_error());
    }
  } catch (...) {
    try {
      p.set_exception(std::current_exception()); // copying the value threw
    } catch (...) {
      // Already satisfied: nothing more to hand over.
    }
  }
}

} // namespace asio_futures::detail

#endif // ASIO_FUTURES_DETAIL_OFFLOAD_HPP
