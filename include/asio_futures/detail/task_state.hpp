//
// asio_futures/detail/task_state.hpp
//
// The shared state of a task: a future's state plus the coroutine's cancellation signal,
// cancel bookkeeping, name and registration for all_tasks().
//
#ifndef ASIO_FUTURES_DETAIL_TASK_STATE_HPP
#define ASIO_FUTURES_DETAIL_TASK_STATE_HPP

#include <asio_futures/detail/service.hpp>
#include <asio_futures/detail/state.hpp>
#include <asio_futures/error.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/version.hpp>

#include <atomic>
#include <cstdint>
#include <forward_list>
#include <mutex>
#include <optional>
#include <string>

namespace asio_futures::detail {

namespace asio = boost::asio;

/// The type-independent part of a task's state.
///
/// Thread safety: `cancelling_` is atomic; the name list, the cancel message and the strand
/// handle are guarded by `mutex_` (cancel and rename are rare). `signal_` is only touched on
/// the task's strand: by the emit that cancel() dispatches there, and by the completion,
/// which clears its slot.
///
/// The strand is released when the coroutine finishes (or is destroyed with its context):
/// an Asio strand must not outlive its execution context, but a task handle may.
class task_core {
public:
  task_core(state_base& state, asio::any_io_executor strand, std::string name);
  task_core(const task_core&) = delete;
  task_core& operator=(const task_core&) = delete;
  ~task_core();

  /// The current name. The reference stays valid for the task's life: renaming adds a new
  /// string and never frees the old one, so a concurrent get_name() never dangles. The
  /// default `Task-N` string is only built when first asked for.
  const std::string& name() const {
    // acquire: the string a reader sees was fully built (released by its writer).
    if (const std::string* n = name_.load(std::memory_order_acquire)) [[likely]]
      return *n;
    return default_name();
  }
  void set_name(std::string name);

  int cancelling() const noexcept { return cancelling_.load(std::memory_order_acquire); }
  int uncancel() noexcept;

  /// Records a cancel request (message, count) and dispatches the terminal emission to the
  /// task's executor (a strand of its own), so it never runs concurrently with a step of the
  /// coroutine. False if the task is already done.
  bool request_cancel(std::string&& msg);

  /// The message of the latest cancel request.
  std::string message() const;

  /// Runs on the task's strand: emits terminal cancellation into the coroutine, with the
  /// cancel message visible to this library's cancellation handlers (thread-local).
  void emit() noexcept;

  /// The slot the coroutine's co_spawn is bound to.
  asio::cancellation_slot slot() noexcept { return signal_.slot(); }

  /// Called when the coroutine has finished (on the strand) or was destroyed with its
  /// context: drop the stale slot handler, release the strand, leave the registry.
  void finished() noexcept;

  /// Whether the task's strand is running on the calling thread (current_task()).
  bool running_here() const noexcept;

  /// Registers the task with the service of its context (for all_tasks()).
  void register_with(waiter_service& svc);

  state_base& state() noexcept { return state_; }
  const state_base& state() const noexcept { return state_; }

  // Registry links, guarded by the service's task mutex.
  task_core* reg_prev_ = nullptr;
  task_core* reg_next_ = nullptr;
  waiter_service* svc_ = nullptr;

private:
  const std::string& default_name() const;

  state_base& state_;
  mutable std::mutex mutex_;
  mutable std::forward_list<std::string> names_;
  mutable std::atomic<const std::string*> name_{nullptr};
  std::uint64_t number_ = 0; // for the default name; 0 if a name was given
  std::string message_;
  asio::any_io_executor strand_; // empty once finished
  std::atomic<int> cancelling_{0};
  asio::cancellation_signal signal_;
};

/// The state of a task<T>.
template <class T> class task_state final : public state<T> {
public:
  /// `ex` is the executor the task was created on (its future executor: done-callbacks and
  /// default waiter executor); `strand` is the task's own strand over it.
  task_state(const asio::any_io_executor& ex, asio::any_io_executor strand, std::string name)
      : state<T>(ex, &hooks_), core_(*this, std::move(strand), std::move(name)) {}

  task_core& core() noexcept { return core_; }

  /// Resolve from the coroutine's outcome (on the strand, by the co_spawn completion).
  template <class... V> void finish(std::exception_ptr e, V&&... v);

  /// The co_spawn completion was destroyed without running: the context shut down.
  void abandon() noexcept {
    if (this->cancel_state(std::string("the task's execution context shut down")))
      core_.finished();
  }

  static task_state& of(state_base& s) noexcept { return static_cast<task_state&>(s); }

private:
  static bool cancel(state_base* b, std::string&& msg) {
    return static_cast<task_state*>(b)->core_.request_cancel(std::move(msg));
  }
  static void destroy(state_base* b) noexcept { delete static_cast<task_state*>(b); }
  static constexpr state_hooks hooks_{&task_state::cancel, &task_state::destroy, false};

  task_core core_;
};

/// Whether `e` ends a task as cancelled: a cancelled_error, or an operation_aborted
/// system_error after a cancel was requested. Sets `msg` to the message to keep.
bool is_task_cancellation(const std::exception_ptr& e, const task_core& core, std::string& msg);

template <class T>
template <class... V>
void task_state<T>::finish(std::exception_ptr e, V&&... v) {
  core_.finished();
  if (!this->try_claim())
    return;
  if (!e) {
    try {
      this->finish_value(std::forward<V>(v)...);
    } catch (...) {
      // Storing the value threw: the task failed with that exception (finish_value
      // published it), which is where it belongs; a task never makes run() throw.
    }
    return;
  }
  std::string msg;
  if (is_task_cancellation(e, core_, msg)) {
    this->finish_exception(std::make_exception_ptr(cancelled_error(std::move(msg))),
                           outcome::cancelled);
    return;
  }
  this->finish_exception(std::move(e), outcome::exception);
}

/// The co_spawn completion handler of a task: resolves the state, or cancels it if the
/// handler is destroyed without being invoked (its context shut down).
template <class T> class task_completion {
public:
  explicit task_completion(task_state<T>* s) noexcept : state_(state_ptr<T>::share(s)) {}
  task_completion(task_completion&&) noexcept = default;
  task_completion& operator=(task_completion&&) = delete;
  ~task_completion() {
    if (state_)
      task_state<T>::of(*state_).abandon();
  }

  template <class... V> void operator()(std::exception_ptr e, V&&... v) {
    state_ptr<T> s(std::move(state_));
    task_state<T>::of(*s).finish(std::move(e), std::forward<V>(v)...);
  }

private:
  state_ptr<T> state_;
};

/// The task's coroutine: checks for a cancellation that arrived before the first step (then
/// the body never runs), then runs the body. `st` stays alive: the completion holds it.
///
/// WORKAROUND(Boost 1.81): when a coroutine finishes without having suspended,
/// co_spawn_entry_point co_awaits a post before completing, outside its try block. If a
/// cancellation left Asio's sticky cancelled state set (the body swallowed it, cancelled
/// itself, or was cancelled before starting), that co_await throws operation_aborted out of
/// io_context::run(). The body is finished by then, so the state is reset first.
template <class T, class Body> asio::awaitable<T> drive(task_state<T>* st, Body body) {
#if BOOST_VERSION == 108100
  // WORKAROUND(Boost 1.81): co_spawn_entry_point posts once more after a body that did not
  // suspend, so as not to resume its caller recursively. A task's first step is already on
  // a later turn (spawn_task posts it) and its completion only resolves the state, whose
  // waiters are posted, so that extra scheduler trip buys nothing: mark the thread as
  // switched. (Measured: ~100 ns of a ~780 ns create_task + await.)
  (co_await asio::detail::awaitable_thread_has_context_switched{}) = true;
#endif
  std::exception_ptr failure;
  std::optional<std::conditional_t<std::is_void_v<T>, char, T>> value;
  try {
    if (st->core().cancelling() > 0)
      throw cancelled_error(st->core().message());
    if constexpr (std::is_void_v<T>) {
      if constexpr (std::is_invocable_v<Body&>)
        co_await body();
      else
        co_await std::move(body);
    } else {
      if constexpr (std::is_invocable_v<Body&>)
        value.emplace(co_await body());
      else
        value.emplace(co_await std::move(body));
    }
  } catch (...) {
    failure = std::current_exception();
  }
  if (st->core().cancelling() > 0)
    co_await asio::this_coro::reset_cancellation_state();
  if (failure)
    std::rethrow_exception(failure);
  if constexpr (!std::is_void_v<T>)
    co_return std::move(*value);
}

} // namespace asio_futures::detail

#endif // ASIO_FUTURES_DETAIL_TASK_STATE_HPP
