//
// asio_futures/gather.hpp
//
// gather: asyncio.gather on futures, and outcome<T>.
//
#ifndef ASIO_FUTURES_GATHER_HPP
#define ASIO_FUTURES_GATHER_HPP

#include <asio_futures/error.hpp>
#include <asio_futures/future.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>

#include <exception>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace asio_futures {

/// Tag type of `return_exceptions`.
struct return_exceptions_t {
  explicit constexpr return_exceptions_t() noexcept = default;
};

/// Pass first to `gather` to collect each child's outcome instead of failing on the first
/// failure (asyncio's `gather(..., return_exceptions=True)`).
inline constexpr return_exceptions_t return_exceptions{};

/// The outcome of one child of `gather(return_exceptions, ...)`: its value, or the exception
/// it failed with (`cancelled_error` for a cancelled child).
///
/// A default-constructed outcome holds neither (`has_value()` false, `exception()` null); it
/// exists because `async_wait`'s completion signature passes a default value along with an
/// exception. `gather` never produces one.
template <class T> class outcome {
public:
  using value_type = T;

  outcome() noexcept = default;

  /// An outcome holding a value constructed from `args`.
  template <class... A>
  explicit outcome(std::in_place_t, A&&... args)
      : value_(std::in_place, std::forward<A>(args)...) {}

  /// An outcome holding the exception `e` (a null `e` gives an empty outcome).
  explicit outcome(std::exception_ptr e) noexcept : error_(std::move(e)) {}

  /// Whether the child succeeded.
  bool has_value() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }

  /// The value. Rethrows the stored exception if the child failed; throws
  /// `invalid_state_error` on an empty outcome.
  T& value() & {
    check();
    return *value_;
  }
  const T& value() const& {
    check();
    return *value_;
  }
  T&& value() && {
    check();
    return std::move(*value_);
  }

  /// The exception the child failed with, or nullptr if it succeeded (or the outcome is
  /// empty). Never throws.
  std::exception_ptr exception() const noexcept { return error_; }

private:
  void check() const {
    if (!value_) {
      if (error_)
        std::rethrow_exception(error_);
      detail::throw_invalid_state("asio_futures::outcome: empty outcome");
    }
  }

  std::optional<T> value_;
  std::exception_ptr error_;
};

/// The outcome of a `void` child: success, or the exception it failed with.
template <> class outcome<void> {
public:
  using value_type = void;

  outcome() noexcept = default;
  explicit outcome(std::in_place_t) noexcept : has_value_(true) {}
  explicit outcome(std::exception_ptr e) noexcept : error_(std::move(e)) {}

  bool has_value() const noexcept { return has_value_; }
  explicit operator bool() const noexcept { return has_value(); }

  /// Returns if the child succeeded; rethrows its exception otherwise (`invalid_state_error`
  /// on an empty outcome).
  void value() const {
    if (has_value_)
      return;
    if (error_)
      std::rethrow_exception(error_);
    detail::throw_invalid_state("asio_futures::outcome: empty outcome");
  }

  std::exception_ptr exception() const noexcept { return error_; }

private:
  bool has_value_ = false;
  std::exception_ptr error_;
};

namespace detail {
template <class T>
struct is_copyable<::asio_futures::outcome<T>>
    : std::conjunction<std::is_copy_constructible<::asio_futures::outcome<T>>, is_copyable<T>> {};
} // namespace detail

/// The element `gather` gives for a child of type `T`: `T`, or `std::monostate` for `void`.
template <class T> using gather_value_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

/// Runs futures concurrently and collects their results: asyncio's `gather`.
///
///     auto [a, b, _] = co_await af::gather(fa, fb, fvoid).async_wait();
///
/// **Result.** A `future<std::tuple<V1, ..., Vn>>` whose elements are the children's values
/// in argument order, whatever order they complete in (`Vi` is `Ti`, or `std::monostate` for a
/// `future<void>`). The children are `future<T>`s or `task<T>`s (a task is a future); the
/// result lives on the first child's executor (its done-callbacks run there; awaiting it runs
/// on the awaiter's executor as always).
///
/// **Failure.** The first child to fail (exception, or cancellation, which gives a
/// `cancelled_error` carrying the child's message) fails the gather with that exception at
/// once. The gather is then *not* `cancelled()`, and the other children are not cancelled:
/// they keep running, and their later outcomes are ignored (their exceptions are marked
/// retrieved, as asyncio's gather does).
///
/// **Cancellation.** Cancelling the gather's future — `cancel(msg)` on it, or a `terminal`
/// cancellation of a coroutine or operation awaiting it (such as cancelling the task that
/// awaits it) — makes it `cancelled()` at once and cancels every child that is not done,
/// passing `msg` on (children that are tasks get a cancellation request). Done children are
/// untouched. (asyncio's outer future waits for the children to react before it ends; here
/// it ends at once, which is what an awaiter of the gather sees in both.)
///
/// **Move-only values.** A child's value is taken out of the child when the child completes
/// (copied if copyable): another consumer of a move-only child then sees `invalid_state_error`
/// ("result already taken"), as with two waiters. Passing the same move-only future twice
/// fails the gather that way.
///
/// **Lifetime.** While the gather is pending it keeps its children alive, as asyncio's does.
/// Once the gather is done it holds no child. When nobody can read its result any more (no
/// handle, no waiter, no done-callback on it) it lets go of its children, without cancelling
/// them: children only it held are freed (so a coroutine suspended on it over futures only its
/// frame held is freed with its io_context).
///
/// **Cost.** Two allocations (the gather's bookkeeping with one list node per child embedded in
/// it, and the result future's state) plus, for the ranged form, the result vector. Each
/// child's completion does its bookkeeping inline on the completing thread — one
/// compare-and-swap, no allocation, no scheduler trip — so the gather is done the moment its
/// last child is.
///
/// **Thread safety:** the children may live on different executors and be completed from any
/// threads concurrently; the gather ends exactly once.
///
/// Throws `invalid_state_error` if a child handle is empty.
template <future_like... Fs>
requires(sizeof...(Fs) > 0) auto gather(const Fs&... children)
    -> future<std::tuple<gather_value_t<typename Fs::value_type>...>>;

/// `gather(children...)`, but never fails because of a child: each element is the child's
/// `outcome<T>` (its value, or the exception it failed with; a cancelled child gives a
/// `cancelled_error`). The result is cancelled only when it is itself cancelled (which
/// cancels the pending children, as above).
template <future_like... Fs>
requires(sizeof...(Fs) > 0) auto gather(return_exceptions_t, const Fs&... children)
    -> future<std::tuple<outcome<typename Fs::value_type>...>>;

/// The ranged form: a `future<std::vector<V>>` of the children's values in input order (`V` is
/// `T`, or `std::monostate` for `void`), with the semantics of the variadic form. The result
/// lives on the first child's executor. An empty vector gives a ready empty vector on
/// `asio::system_executor` (asyncio needs a loop there too): pass an executor first to choose.
template <future_like F>
auto gather(std::vector<F> children) -> future<std::vector<gather_value_t<typename F::value_type>>>;

/// The ranged form with its result on `ex` (also used for an empty vector).
template <class Executor, future_like F>
requires std::is_convertible_v<const Executor&, asio::any_io_executor> &&
    (!future_like<Executor>)auto gather(const Executor& ex, std::vector<F> children)
        -> future<std::vector<gather_value_t<typename F::value_type>>>;

/// The ranged form with its result on `ctx.get_executor()`.
template <class ExecutionContext, future_like F>
requires std::is_convertible_v<ExecutionContext&, asio::execution_context&>
auto gather(ExecutionContext& ctx, std::vector<F> children)
    -> future<std::vector<gather_value_t<typename F::value_type>>> {
  return gather(ctx.get_executor(), std::move(children));
}

/// The ranged form collecting `outcome<T>`s (see `gather(return_exceptions, children...)`).
template <future_like F>
auto gather(return_exceptions_t, std::vector<F> children)
    -> future<std::vector<outcome<typename F::value_type>>>;

/// The ranged form collecting `outcome<T>`s, with its result on `ex`.
template <class Executor, future_like F>
requires std::is_convertible_v<const Executor&, asio::any_io_executor> &&
    (!future_like<Executor>)auto gather(return_exceptions_t, const Executor& ex,
                                        std::vector<F> children)
        -> future<std::vector<outcome<typename F::value_type>>>;

/// The ranged form collecting `outcome<T>`s, with its result on `ctx.get_executor()`.
template <class ExecutionContext, future_like F>
requires std::is_convertible_v<ExecutionContext&, asio::execution_context&>
auto gather(return_exceptions_t, ExecutionContext& ctx, std::vector<F> children)
    -> future<std::vector<outcome<typename F::value_type>>> {
  return gather(return_exceptions, ctx.get_executor(), std::move(children));
}

} // namespace asio_futures

#include <asio_futures/impl/gather.hpp>

#endif // ASIO_FUTURES_GATHER_HPP
