//
// asio_futures/task_group.hpp
//
// task_group: structured concurrency (asyncio.TaskGroup).
//
#ifndef ASIO_FUTURES_TASK_GROUP_HPP
#define ASIO_FUTURES_TASK_GROUP_HPP

#include <asio_futures/detail/inline_op.hpp>
#include <asio_futures/error.hpp>
#include <asio_futures/future.hpp>
#include <asio_futures/task.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstddef>
#include <exception>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace asio_futures {

namespace detail {

/// A child of a group, type-erased: what the group needs of it.
class group_child {
public:
  virtual ~group_child() = default;
  /// Requests cancellation with `msg`; never throws (a failure to allocate the message or the
  /// request leaves the child running to its end).
  virtual void cancel(const char* msg) noexcept = 0;
};

template <class T> class group_child_of final : public group_child {
public:
  explicit group_child_of(task<T> t) noexcept : task_(std::move(t)) {}
  void cancel(const char* msg) noexcept override {
    try {
      task_.cancel(msg); // builds the message string here, inside the try
    } catch (...) {      // bad_alloc building the message: the child then just runs to its end
    }
  }

private:
  task<T> task_;
};

/// The shared state of a task_group. Guarded by `mutex_`; kept alive by the group and by
/// each live child's completion hook.
class group_state : public std::enable_shared_from_this<group_state> {
public:
  explicit group_state(asio::any_io_executor ex);

  const asio::any_io_executor& executor() const noexcept { return ex_; }

  /// Links a new child; throws invalid_state_error once the group is joined or shutting
  /// down. `make` creates the task (called under the lock, so that the check and the
  /// registration are atomic with respect to the join).
  template <class T, class Make> task<T> add(Make&& make);

  /// Starts joining (the first call) and returns the future that completes when the group
  /// is done. A second join while one is pending throws invalid_state_error.
  future<void> start_join();

  /// The join started by start_join() failed to start (its wait threw): no join is
  /// outstanding after all, so a later async_join may try again.
  void join_start_failed() noexcept;

  /// The joiner was cancelled: cancel every child and finish the join as cancelled once
  /// they are done (failures still win).
  void cancel_from_joiner() noexcept;

  /// The group object is destroyed: cancel the live children; nobody waits.
  void abandon() noexcept;

  /// task_group::cancel(): cancel the live children with `msg`; no new child is accepted.
  /// The join is not an error for it.
  void cancel(const std::string& msg) noexcept { stop(msg, true); }

  /// with_task_group's body ended cancelled (not because of cancel()): stop the others.
  void abort_for_body() noexcept { stop("task_group: the body was cancelled", false); }

  /// Whether cancel() stopped the group (before any other cause did).
  bool stopped_by_cancel() const;

  std::size_t size() const;

private:
  using child_list = std::list<std::shared_ptr<group_child>>;

  /// A child finished: record a failure (cancelling the siblings on the first one) and
  /// complete the join if it was the last.
  void child_done(child_list::iterator it, std::exception_ptr failure) noexcept;
  /// Marks the group as stopping and cancels the live children with `msg` (no-op if it is
  /// already stopping or joined); `by_cancel`: the cause is task_group::cancel().
  void stop(const std::string& msg, bool by_cancel) noexcept;
  /// Under the lock: the live children, to cancel once the lock is released.
  std::vector<std::shared_ptr<group_child>> live_children_locked();
  static void cancel_children(const std::vector<std::shared_ptr<group_child>>& children,
                              const char* msg) noexcept;
  /// If joining and no child is left, completes the join (once).
  void finish_if_done() noexcept;

  asio::any_io_executor ex_;
  mutable std::mutex mutex_;
  child_list children_;
  std::vector<std::exception_ptr> failures_; // completion order
  future<void> join_;
  bool join_started_ = false;
  bool join_waited_ = false; // an async_join is (or was) outstanding
  bool joined_ = false;
  bool aborting_ = false;
  bool joiner_cancelled_ = false;
  bool stopped_by_cancel_ = false;
  // The message the join is cancelled with: that of the cancel requested on the task that
  // awaits it (asyncio keeps it), if the cancellation came from one.
  std::optional<std::string> joiner_message_;
};

/// Whether `e` is a cancellation (not a failure of the group).
bool is_cancellation(const std::exception_ptr& e) noexcept;

template <class T, class Make> task<T> group_state::add(Make&& make) {
  child_list::iterator it;
  task<T> t;
  {
    std::lock_guard guard(mutex_);
    if (joined_)
      throw_invalid_state("task_group::create_task: the group has been joined");
    if (aborting_)
      throw_invalid_state("task_group::create_task: the group is shutting down");
    t = std::forward<Make>(make)();
    try {
      children_.push_back(std::make_shared<group_child_of<T>>(t));
    } catch (...) {
      // bad_alloc listing it: the task must not run outside the group. Cancelled before its
      // first step, it never runs any of its body.
      t.cancel();
      throw;
    }
    it = std::prev(children_.end());
  }
  // Outside the lock (the hook would run here at once if the child were already done). The
  // join cannot complete meanwhile: the child is listed.
  try {
    on_done_inline(future<T>(t), [self = shared_from_this(), it, t](bool completed) noexcept {
      std::exception_ptr failure;
      if (completed && !t.cancelled()) {
        // Retrieves the outcome: a failure the group reports is not "never retrieved".
        std::exception_ptr e = t.exception();
        if (e && !is_cancellation(e))
          failure = std::move(e);
      }
      self->child_done(it, std::move(failure));
    });
  } catch (...) { // bad_alloc for the hook: unlist the child and stop it
    t.cancel();
    child_done(it, nullptr);
    throw;
  }
  return t;
}

} // namespace detail

/// Structured concurrency: asyncio's TaskGroup.
///
/// ```
/// af::task_group tg(co_await asio::this_coro::executor);
/// af::task<int> a = tg.create_task(work(1), "a");
/// af::task<int> b = tg.create_task(work(2), "b");
/// co_await tg.async_join();   // throws af::exception_group if children failed
/// ```
///
/// - `async_join` completes once every child is done, including children created (by other
///   children) while it waits.
/// - The first child failure that is not a cancellation cancels every other child; the join
///   then fails with `exception_group` holding every non-cancellation failure in completion
///   order. Children that end cancelled are not errors.
/// - Cancelling the joiner (its cancellation slot, e.g. the enclosing task is cancelled)
///   cancels every child and waits for them, then completes with `cancelled_error` (or with
///   `exception_group` if children failed: failures win, as in asyncio).
/// - `create_task` after the join completed, or once the group is shutting down (a child
///   failed, or the joiner was cancelled), throws `invalid_state_error`.
/// - Destroying the group cancels its live children and never blocks. Failures nobody
///   joined are reported to the lost-exception handler, as one `exception_group`.
///
/// Difference from asyncio: C++ has no `async with`, so a child failure does not interrupt
/// the code between `create_task` and `async_join` (asyncio cancels the enclosing task's
/// body); the siblings are cancelled at once and the join reports the failure. The
/// enclosing task's `cancelling()` count is never touched by the group (asyncio 3.13's
/// accounting, without 3.12's leaked count).
///
/// Thread safety: every member may be called from any thread; children may run on other
/// executors than the joiner.
class task_group {
public:
  using executor_type = asio::any_io_executor;

  /// A group whose children run on `ex` by default.
  template <class Executor>
  requires detail::executor_like<Executor>
  explicit task_group(const Executor& ex)
      : state_(std::make_shared<detail::group_state>(asio::any_io_executor(ex))) {}

  /// A group whose children run on `ctx`'s executor by default.
  template <class ExecutionContext>
  requires std::is_convertible_v<ExecutionContext&, asio::execution_context&>
  explicit task_group(ExecutionContext& ctx) : task_group(ctx.get_executor()) {}

  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;

  /// Cancels the children that are still running; never blocks.
  ~task_group() { state_->abandon(); }

  executor_type get_executor() const noexcept { return state_->executor(); }

  /// The number of children not yet done.
  std::size_t size() const { return state_->size(); }

  /// Runs `coro` as a child task on the group's executor.
  template <class T> task<T> create_task(asio::awaitable<T> coro, std::string name = {}) {
    return create_task(state_->executor(), std::move(coro), std::move(name));
  }

  /// Runs the coroutine returned by `f()` as a child task on the group's executor.
  template <class F>
  requires std::is_invocable_v<F&>
  auto create_task(F f, std::string name = {}) {
    return create_task(state_->executor(), std::move(f), std::move(name));
  }

  /// Runs `coro` (an awaitable, or a callable returning one) as a child task on `ex`.
  template <class Executor, class Coro>
  requires detail::executor_like<Executor>
  auto create_task(const Executor& ex, Coro coro, std::string name = {}) {
    using T = typename decltype(asio_futures::create_task(ex, std::move(coro)))::value_type;
    return state_->add<T>(
        [&] { return asio_futures::create_task(ex, std::move(coro), std::move(name)); });
  }

  /// Stops the group (asyncio 3.15's `TaskGroup.cancel()`): every child not yet done gets a
  /// cancel request with `msg` (default "task_group: cancelled"), and `create_task` throws
  /// `invalid_state_error` from now on. The join is not failed by it: it completes normally
  /// once the children are done, unless a child failed (then `exception_group`, as always) or
  /// the joiner itself was cancelled. Inside `with_task_group`, the body is cancelled too.
  /// Does nothing if the group is already stopping (an earlier `cancel`, a child failure, a
  /// cancelled joiner: every child has its request) or the join completed. Any thread.
  void cancel(std::string msg = {}) {
    state_->cancel(msg.empty() ? std::string("task_group: cancelled") : msg);
  }

  /// Waits for every child (see the class comment). Completion signature
  /// `void(std::exception_ptr)`: null, an `exception_group`, or a `cancelled_error`.
  /// Any completion token; default `use_awaitable`. The handler's cancellation slot (any
  /// cancellation type) cancels the children; the join then still waits for them.
  /// One join at a time: a second while one is pending throws `invalid_state_error`; after
  /// the join completed, joining again completes at once with the same outcome.
  template <asio::completion_token_for<void(std::exception_ptr)> CompletionToken =
                asio::use_awaitable_t<>>
  auto async_join(CompletionToken&& token = CompletionToken()) {
    return asio::async_initiate<CompletionToken, void(std::exception_ptr)>(initiate_join{state_},
                                                                           token);
  }

private:
  struct join_canceller {
    std::shared_ptr<detail::group_state> g;
    void operator()(asio::cancellation_type_t) const noexcept { g->cancel_from_joiner(); }
  };

  /// Clears the handler's slot (our join_canceller) before the upcall.
  template <class Handler> struct join_completion {
    Handler h;
    void operator()(std::exception_ptr e) {
      asio::get_associated_cancellation_slot(h).clear();
      std::move(h)(std::move(e));
    }
  };

  struct initiate_join {
    std::shared_ptr<detail::group_state> g;
    using executor_type = asio::any_io_executor;
    executor_type get_executor() const noexcept { return g->executor(); }

    template <class Handler> void operator()(Handler&& h) const {
      future<void> joined = g->start_join();
      auto slot = asio::get_associated_cancellation_slot(h);
      try {
        if (slot.is_connected() && !joined.done())
          slot.template emplace<join_canceller>(join_canceller{g});
        auto ex = asio::get_associated_executor(h, g->executor());
        auto alloc = asio::get_associated_allocator(h);
        joined.async_wait(asio::bind_executor(
            ex, asio::bind_allocator(
                    alloc, join_completion<std::decay_t<Handler>>{std::forward<Handler>(h)})));
      } catch (...) {
        // Nothing was linked (async_wait leaves nothing behind when it throws): undo the
        // canceller and the "join pending" mark, then report the failure to the caller.
        if (slot.is_connected())
          slot.clear();
        g->join_start_failed();
        throw;
      }
    }
  };

public:
  /// For internal use (with_task_group).
  const std::shared_ptr<detail::group_state>& internal_state() const noexcept { return state_; }

private:
  std::shared_ptr<detail::group_state> state_;
};

namespace detail {

/// Whether `e` ends a task as cancelled when no cancel was requested on it: a
/// cancelled_error, or Asio's operation_aborted.
bool is_cancellation_or_abort(const std::exception_ptr& e) noexcept;

} // namespace detail

/// A task group that always joins (asyncio's `async with TaskGroup() as tg:` — C++ has no
/// `async with`, and `task_group`'s destructor can cancel its children but not wait for
/// them): runs `body(tg)` with a fresh group on `ex`, then waits for every child the body
/// started, and returns the body's value.
///
/// ```
/// int total = co_await af::with_task_group(ex, [&](af::task_group& tg) -> asio::awaitable<int> {
///   auto a = tg.create_task(fetch(1));
///   auto b = tg.create_task(fetch(2));
///   co_return co_await a.async_wait() + co_await b.async_wait();
/// });
/// ```
/// The body runs as one of the group's tasks (on `ex`; it counts in `tg.size()`), so the
/// group's rules apply to it: a child's failure cancels the body and the other children; the
/// body's own exception cancels the children; either way, once everything is done, the call
/// throws `exception_group` with every failure (the body's included) in completion order.
/// A body that ends cancelled for another reason (what it awaited was cancelled, its task
/// was cancelled through a handle) cancels the children too, and the call then throws the
/// body's `cancelled_error`.
/// `tg.cancel()` cancels the body and the children and is not an error: the call returns
/// normally once they are done — for a body that returns a value and was cancelled before
/// it produced one, the call throws `cancelled_error` (there is no value to return).
/// Cancelling the awaiting coroutine cancels the body and the children, waits for them, and
/// throws `cancelled_error`. References to the caller's frame are safe in the body and its
/// children: nothing outlives the call.
template <class Executor, class F>
requires detail::executor_like<Executor> && std::is_invocable_v<F&, task_group&>
auto with_task_group(const Executor& ex, F body) -> asio::awaitable<
    typename detail::awaitable_result<std::invoke_result_t<F&, task_group&>>::type> {
  using R = typename detail::awaitable_result<std::invoke_result_t<F&, task_group&>>::type;
  task_group tg(ex);
  const task<R> main =
      tg.create_task([&tg, body = std::move(body)]() mutable -> asio::awaitable<R> {
        try {
          if constexpr (std::is_void_v<R>)
            co_await body(tg);
          else
            co_return co_await body(tg);
        } catch (...) {
          // A failure stops the group as any child's does; a cancellation must too (a
          // cancelled child is no error), or the call would wait for children nobody stops.
          if (detail::is_cancellation_or_abort(std::current_exception()))
            tg.internal_state()->abort_for_body();
          throw;
        }
      });
  co_await tg.async_join(); // exception_group, or cancelled_error if we were cancelled
  // `main` is done: its outcome without another suspension (a cancellation of ours arriving
  // now finds the join completed and must not turn a value into operation_aborted).
  if constexpr (std::is_void_v<R>) {
    if (main.cancelled() && tg.internal_state()->stopped_by_cancel())
      co_return; // tg.cancel() stopped it: not an error
    main.get();
  } else {
    co_return main.get(); // stopped by tg.cancel() before its value: cancelled_error
  }
}

/// `with_task_group(ctx.get_executor(), body)`.
template <class ExecutionContext, class F>
requires std::is_convertible_v<ExecutionContext&, asio::execution_context&> &&
    std::is_invocable_v<F&, task_group&>
auto with_task_group(ExecutionContext& ctx, F body) {
  return with_task_group(ctx.get_executor(), std::move(body));
}

} // namespace asio_futures

#endif // ASIO_FUTURES_TASK_GROUP_HPP
