//
// asio_futures/task.hpp
//
// task<T>: a future<T> that runs a coroutine (asyncio's Task).
//
#ifndef ASIO_FUTURES_TASK_HPP
#define ASIO_FUTURES_TASK_HPP

#include <asio_futures/detail/task_state.hpp>
#include <asio_futures/future.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/post.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace asio_futures {

template <class T> class task;

/// A handle to a task of any result type: what `all_tasks` and `current_task` give, so that
/// shutdown code can cancel every task of a context, whatever it returns (asyncio's
/// `all_tasks()` returns the Task objects).
///
/// It holds a reference like a `task<T>` handle does (the task's state stays alive, the task
/// runs on regardless). Copies refer to the same task; `==` tells whether two handles refer
/// to the same task. An empty handle (default-constructed) is `!valid()` and its members throw
/// `invalid_state_error`. **Thread safety:** as `task<T>`: any thread.
class task_handle {
public:
  /// An empty handle.
  task_handle() noexcept = default;
  /// A handle to `t` (empty if `t` is).
  template <class T> explicit task_handle(const task<T>& t);

  task_handle(const task_handle& other) noexcept;
  task_handle(task_handle&& other) noexcept : core_(std::exchange(other.core_, nullptr)) {}
  task_handle& operator=(task_handle other) noexcept {
    std::swap(core_, other.core_);
    return *this;
  }
  ~task_handle();

  bool valid() const noexcept { return core_ != nullptr; }

  /// The task's current name (`task<T>::get_name()`).
  std::string name() const;
  bool done() const;
  /// Done and ended cancelled.
  bool cancelled() const;
  /// `task<T>::cancelling()`.
  int cancelling() const;
  /// `task<T>::cancel(msg)`: requests cancellation; false if the task is done.
  bool cancel(std::string msg = {}) const;

  friend bool operator==(const task_handle& a, const task_handle& b) noexcept {
    return a.core_ == b.core_;
  }

  /// For internal use: a new reference to the task of `core`.
  explicit task_handle(detail::task_core& core) noexcept;

private:
  detail::task_core& checked() const;

  detail::task_core* core_ = nullptr;
};

/// A snapshot of a task (`all_tasks`, `current_task`): its name, whether it was done and how
/// many cancel requests were pending when the snapshot was taken, and a handle to the task
/// itself.
struct task_info {
  std::string name;
  bool done;
  int cancelling;
  task_handle handle;
};

/// A future that runs a coroutine: asyncio's Task, which is a Future subclass.
///
/// `task<T>` *is a* `future<T>`: it can be awaited (`co_await t.async_wait()`), given
/// done-callbacks, passed to anything that takes a `future<T>` (a copy keeps referring to the
/// task). The coroutine's return value or exception resolves it; `set_result` and
/// `set_exception` throw `invalid_state_error` because a task resolves itself.
///
/// **Execution.** The coroutine runs on an executor of its own over the one it was created
/// on (`co_await asio::this_coro::executor` gives it), starting on its next turn (never
/// inline in `create_task`). That executor runs everything submitted through it inside the
/// task's gate, which is what lets `cancel()` be called from any thread: the cancellation
/// is emitted through the gate, never concurrently with a step of the coroutine. It is not a
/// strand (functions posted to it may run concurrently on a multi-threaded context); create
/// the task on a strand to serialise it with other work. See docs/tasks.md.
///
/// **Cancellation.** `cancel(msg)` requests cancellation: it increments `cancelling()`,
/// records `msg`, and emits `cancellation_type::terminal` into the coroutine's cancellation
/// slot, so whatever it awaits (a timer, a socket read, a future, another task) is aborted
/// and `cancelled_error` (carrying `msg` where this library raises it) or `operation_aborted`
/// surfaces at that `co_await`. Asio's cancellation is sticky: if the coroutine is between
/// operations, the next one it starts is aborted at once. A task cancelled before its first
/// step never runs its body. The task ends *cancelled* when a `cancelled_error` escapes its
/// coroutine, or an `operation_aborted` system_error escapes after a cancel was requested;
/// a coroutine that swallows the cancellation and returns completes normally (to keep
/// awaiting after swallowing it, reset Asio's sticky state with
/// `co_await asio::this_coro::reset_cancellation_state()` and call `uncancel()`).
///
/// **Lifetime.** Destroying the last handle of an unfinished task never blocks: the task
/// runs on, and an exception it ends with goes to the exception handler. If its execution
/// context is destroyed first, the task ends cancelled.
template <class T> class task : public future<T> {
public:
  /// An empty handle.
  task() noexcept = default;

  /// Requests cancellation of the coroutine (see the class comment). False if the task is
  /// done; every successful call increments `cancelling()`. Safe from any thread.
  bool cancel(std::string msg = {}) const { return future<T>::cancel(std::move(msg)); }

  /// How many cancel requests are pending (asyncio's `Task.cancelling()`).
  int cancelling() const { return core().cancelling(); }

  /// Decrements `cancelling()` (not below 0) and returns the new count.
  int uncancel() const { return core().uncancel(); }

  /// The task's name: the one given to `create_task`, or `Task-N`. The reference stays
  /// valid while the task is referenced, even if it is renamed concurrently.
  const std::string& get_name() const { return core().name(); }
  void set_name(std::string name) const { core().set_name(std::move(name)); }

  /// For internal use: wraps a task state.
  explicit task(detail::state_ptr<T> s) noexcept : future<T>(std::move(s)) {}

private:
  friend class task_handle;

  detail::task_core& core() const {
    return detail::task_state<T>::of(this->checked_state()).core();
  }
};

template <class T>
task_handle::task_handle(const task<T>& t) : core_(t.valid() ? &t.core() : nullptr) {
  if (core_)
    core_->state().add_ref();
}

namespace detail {

template <class F> struct awaitable_result;
template <class T, class E> struct awaitable_result<asio::awaitable<T, E>> {
  using type = T;
  using executor = E;
};

/// A task's coroutine runs on the task's own executor (a wrapper of the one given), so its
/// type must be asio::awaitable<T> (any_io_executor).
template <class A>
inline constexpr bool runs_as_task =
    std::is_same_v<typename awaitable_result<A>::executor, asio::any_io_executor>;
#define ASIO_FUTURES_TASK_COROUTINE_RULE                                                           \
  "asio_futures: a task runs an asio::awaitable<T> (executor any_io_executor), on an executor "    \
  "of its own that wraps yours; an asio::awaitable<T, E> for another E cannot run there. "         \
  "Declare the coroutine as asio::awaitable<T>, or spawn it yourself and get a future: "           \
  "asio::co_spawn(ex, coro, asio_futures::use_future)"

template <class Executor>
concept executor_like =
    asio::execution::is_executor<Executor>::value || asio::is_executor<Executor>::value;

template <class T, class Executor, class Body>
task<T> spawn_task(const Executor& ex, Body body, std::string name) {
  if constexpr (std::is_invocable_v<Body&>)
    static_assert(runs_as_task<std::invoke_result_t<Body&>>, ASIO_FUTURES_TASK_COROUTINE_RULE);
  else
    static_assert(runs_as_task<Body>, ASIO_FUTURES_TASK_COROUTINE_RULE);
  if constexpr (std::is_constructible_v<bool, const Executor&>) {
    if (!ex)
      throw std::invalid_argument("asio_futures::create_task: empty executor");
  }
  waiter_service* svc = service_for(ex);
  if (svc && svc->closed())
    throw_invalid_state("create_task: the execution context has shut down");
  auto* s = new task_state<T>(asio::any_io_executor(ex), std::move(name));
  s->set_context_serial(serial_of(svc));
  task<T> t{state_ptr<T>(s)};
  task_core& core = s->core();
  // co_spawn runs the coroutine's entry up to its first dispatch here, and binds the slot.
  // No gate needed: nobody else holds a handle yet, so no cancel() can emit meanwhile. That
  // first dispatch is the task executor's first submission, which is posted: the body
  // starts on a later turn, as asyncio's create_task does. If the posted step is destroyed
  // unrun (the context shut down), the completion handler ends the task cancelled.
  try {
    asio::co_spawn(make_task_executor(ex, core), drive<T>(s, std::move(body)),
                   asio::bind_cancellation_slot(core.slot(), task_completion<T>(s)));
  } catch (...) {
    // It never runs. Cancelled (a handle all_tasks() took meanwhile sees it end) and
    // unlisted, unless the completion handler was made and destroyed, which did both.
    s->abandon("the task could not be started");
    throw;
  }
  return t;
}

} // namespace detail

/// Runs `coro` as a task on `ex` (an executor: io_context, strand, thread_pool,
/// any_io_executor…), starting on the executor's next turn. Throws `invalid_state_error` if
/// the executor's context has shut down. `T` may be void, move-only, or not
/// default-constructible (then awaiting the task yields a `std::optional<T>`, see
/// `future<T>::completion_signature`).
template <class Executor, class T, class AwaitableExecutor>
requires detail::executor_like<Executor> task<T>
create_task(const Executor& ex, asio::awaitable<T, AwaitableExecutor> coro, std::string name = {}) {
  return detail::spawn_task<T>(ex, std::move(coro), std::move(name));
}

/// Runs the coroutine returned by `f()` as a task. `f` is kept alive until the coroutine
/// finishes (like co_spawn's callable form), so a lambda coroutine may use its captures.
template <class Executor, class F>
requires detail::executor_like<Executor> && std::is_invocable_v<F&>
auto create_task(const Executor& ex, F f, std::string name = {}) {
  using T = typename detail::awaitable_result<std::invoke_result_t<F&>>::type;
  return detail::spawn_task<T>(ex, std::move(f), std::move(name));
}

/// `create_task(ctx.get_executor(), …)`.
template <class ExecutionContext, class Coro>
requires std::is_convertible_v<ExecutionContext&, asio::execution_context&>
auto create_task(ExecutionContext& ctx, Coro&& coro, std::string name = {}) {
  return create_task(ctx.get_executor(), std::forward<Coro>(coro), std::move(name));
}

/// asyncio's `run_coroutine_threadsafe`: submit `coro` to `ex` from any thread. The handle's
/// `get()`/`wait_for()` block the calling thread, and its `cancel()` cancels the task.
template <class T, class Executor>
requires detail::executor_like<Executor> task<T> run_coroutine_threadsafe(asio::awaitable<T> coro,
                                                                          const Executor& ex) {
  return create_task(ex, std::move(coro));
}

/// The unfinished tasks created on executors of `ctx` (asyncio's `all_tasks(loop)`), each
/// with a handle: `for (auto& t : af::all_tasks(ioc)) t.handle.cancel("shutdown");`. A scan
/// of every live task, for shutdown code, debugging and monitoring, not for hot paths. Any
/// thread; a task that finishes meanwhile may or may not be listed.
std::vector<task_info> all_tasks(asio::execution_context& ctx);

/// The task whose coroutine is running on the calling thread, if any (a scan of the live
/// tasks: meant for debugging and logging, not for hot paths).
std::optional<task_info> current_task();

} // namespace asio_futures

#undef ASIO_FUTURES_TASK_COROUTINE_RULE

#endif // ASIO_FUTURES_TASK_HPP
