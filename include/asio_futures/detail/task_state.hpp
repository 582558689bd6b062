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
#include <asio_futures/detail/task_gate.hpp>
#include <asio_futures/error.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/require.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/version.hpp>

#include <atomic>
#include <cstdint>
#include <forward_list>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace asio_futures::detail {

namespace asio = boost::asio;

/// The type-independent part of a task's state.
///
/// A task's coroutine steps and its cancellation emissions must never overlap: Asio's
/// cancellation_signal is not thread-safe, and a step may be installing or clearing the
/// slot handler an emission would call. A strand per task would do, but costs an
/// implementation object, a mutex and a reference count bumped on every copy of the
/// executor; instead each task has a task_gate (see task_gate.hpp) that every function run
/// through its executor enters as a reader, and that emissions take as the writer.
///
/// Thread safety otherwise: `cancelling_` is atomic; the name list and the cancel message
/// are guarded by `mutex_` (cancel and rename are rare). `signal_` and `body_started_` are
/// only touched inside the gate.
class task_core {
public:
  task_core(state_base& state, std::string name);
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

  /// Records a cancel request (message, count) and has the terminal emission run through
  /// the gate on the task's executor. False if the task is already done.
  bool request_cancel(std::string&& msg);

  /// The message of the latest cancel request.
  std::string message() const;

  /// Called by the coroutine's first step, before its body: emissions before that are
  /// skipped (the body checks cancelling() at its start instead). Asio 1.81's co_spawn entry
  /// point lets a cancellation that arrives before the body escape from io_context::run().
  void mark_body_started() noexcept { body_started_ = true; }

  /// The slot the coroutine's co_spawn is bound to.
  asio::cancellation_slot slot() noexcept { return signal_.slot(); }

  /// Called when the coroutine has finished (inside the gate) or was destroyed with its
  /// context, or could not be started: drop the stale slot handler, and take the task off
  /// the gate's owner (all_tasks, current_task). The caller still holds a reference to the
  /// state: while a task is published as its gate's owner, its state is alive with a
  /// reference that is only dropped after this, so all_tasks() may take a new one.
  void finished() noexcept;

  /// Whether a function of this task (a step of its coroutine) runs on the calling thread.
  bool running_here() const noexcept {
    const task_gate::position p = task_gate::current();
    return p.gate == gate_ && p.gen == gen_;
  }

  /// Performs the emission a reader found pending when it left the gate last (it is now the
  /// writer); drops the state reference the pending mark held.
  void perform_pending() noexcept;

  state_base& state() noexcept { return state_; }
  const state_base& state() const noexcept { return state_; }
  task_gate* gate() const noexcept { return gate_; }
  gate_gen generation() const noexcept { return gen_; }

private:
  const std::string& default_name() const;
  void emit() noexcept;
  void write() noexcept;
  /// For an emission from outside: true if the caller's state reference was handed over to
  /// a pending mark.
  bool emit_or_defer() noexcept;

  state_base& state_;
  task_gate* gate_;
  gate_gen gen_;
  bool body_started_ = false;
  std::atomic<int> cancelling_{0};
  mutable std::mutex mutex_;
  mutable std::forward_list<std::string> names_;
  mutable std::atomic<const std::string*> name_{nullptr};
  std::uint64_t number_ = 0; // for the default name; 0 if a name was given
  std::string message_;
  asio::cancellation_signal signal_;
};

/// A function submitted through a task's executor: runs inside the task's gate (or outside
/// any gate if the task is gone).
template <class F> class gated_function {
public:
  template <class G>
  gated_function(gate_ref ref, G&& f) noexcept(std::is_nothrow_constructible_v<F, G>)
      : f_(std::forward<G>(f)), ref_(ref) {}

  void operator()() {
    gate_section section(ref_.gate(), ref_.gen());
    std::move(f_)();
  }

private:
  F f_;
  gate_ref ref_;
};

/// The executor a task's coroutine runs on (`co_await asio::this_coro::executor`): the
/// executor the task was created on, with every function submitted through it run inside
/// the task's gate. A plain value (the gate is type-stable), safe to use after the task is
/// gone for as long as the inner executor is. Forwards every property to the inner one.
template <class Inner> class task_executor {
public:
  using inner_executor_type = Inner;

  task_executor(Inner inner, gate_ref ref) noexcept : inner_(std::move(inner)), ref_(ref) {}

  const Inner& get_inner_executor() const noexcept { return inner_; }

  /// Whether a function of this executor's task runs on the calling thread.
  bool running_in_this_thread() const noexcept {
    const task_gate::position p = task_gate::current();
    return p.gate == ref_.gate() && p.gen == ref_.gen();
  }

  template <class P>
  requires asio::can_query<const Inner&, const P&>::value decltype(auto) query(const P& p) const
      noexcept(asio::is_nothrow_query<const Inner&, const P&>::value) {
    return asio::query(inner_, p);
  }

  template <class P>
  requires asio::can_require<const Inner&, const P&>::value &&
      (!std::is_convertible_v<P, asio::execution::blocking_t::always_t>)auto require(
          const P& p) const {
    using R = std::decay_t<decltype(asio::require(inner_, p))>;
    return task_executor<R>(asio::require(inner_, p), ref_);
  }

  template <class P>
  requires asio::can_prefer<const Inner&, const P&>::value &&
      (!std::is_convertible_v<P, asio::execution::blocking_t::always_t>)auto prefer(
          const P& p) const {
    using R = std::decay_t<decltype(asio::prefer(inner_, p))>;
    return task_executor<R>(asio::prefer(inner_, p), ref_);
  }

  template <class F> void execute(F&& f) const {
    using asio::execution::blocking;
    using fn = gated_function<std::decay_t<F>>;
    if (ref_.gate()->first_submission(ref_.gen())) {
      // The coroutine's first step (co_spawn's entry dispatch): always on a later turn.
      asio::require(inner_, blocking.never).execute(fn(ref_, std::forward<F>(f)));
      return;
    }
    if (running_in_this_thread() && asio::query(inner_, blocking) != blocking.never) {
      // Already inside this gate on this thread (a step dispatching to its own executor, or
      // an emission reaching a child coroutine's handler): run it here, as a strand would.
      std::decay_t<F> tmp(std::forward<F>(f));
      std::move(tmp)();
      return;
    }
    inner_.execute(fn(ref_, std::forward<F>(f)));
  }

  friend bool operator==(const task_executor& a, const task_executor& b) noexcept {
    return a.ref_ == b.ref_ && a.inner_ == b.inner_;
  }
  friend bool operator!=(const task_executor& a, const task_executor& b) noexcept {
    return !(a == b);
  }

private:
  Inner inner_;
  gate_ref ref_;
};

/// The executor for a new task on `ex`: io_context and thread_pool executors are unwrapped
/// from any_io_executor, so that the inner dispatch is not type-erased twice.
asio::any_io_executor make_task_executor(const asio::any_io_executor& ex, const task_core& core);

/// The state of a task<T>.
template <class T> class task_state final : public state<T> {
public:
  /// `ex` is the executor the task was created on (its future executor: done-callbacks and
  /// default waiter executor).
  task_state(const asio::any_io_executor& ex, std::string name)
      : state<T>(ex, &hooks_), core_(*this, std::move(name)) {}

  task_core& core() noexcept { return core_; }

  /// Resolve from the coroutine's outcome (inside the gate, by the co_spawn completion).
  template <class... V> void finish(std::exception_ptr e, V&&... v);

  /// The co_spawn completion was destroyed without running: the context shut down.
  void abandon(const char* why = "the task's execution context shut down") noexcept {
    std::string msg;
    try {
      msg = why;
    } catch (...) { // bad_alloc: cancelled without a message
    }
    this->cancel_state(std::move(msg));
    core_.finished();
  }

  static task_state& of(state_base& s) noexcept { return static_cast<task_state&>(s); }

private:
  static bool cancel(state_base* b, std::string&& msg) {
    return static_cast<task_state*>(b)->core_.request_cancel(std::move(msg));
  }
  static void destroy(state_base* b) noexcept { delete static_cast<task_state*>(b); }
  static constexpr state_hooks hooks_{&task_state::cancel, &task_state::destroy, false, nullptr};

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
  if constexpr (std::is_void_v<T> || sizeof...(V) > 0) { // else: called with an exception
    if (!e) {
      try {
        this->finish_value(std::forward<V>(v)...);
      } catch (...) {
        // Storing the value threw: the task failed with that exception (finish_value
        // published it), which is where it belongs; a task never makes run() throw.
      }
      return;
    }
  }
  std::string msg;
  if (is_task_cancellation(e, core_, msg)) {
    this->finish_exception(std::make_exception_ptr(cancelled_error(std::move(msg))),
                           outcome::cancelled);
    return;
  }
  this->finish_exception(std::move(e), outcome::exception);
}

/// What a task's coroutine returns to co_spawn: T, or std::optional<T> for a T that is not
/// default-constructible (co_spawn passes a default value along with an exception).
template <class T> struct spawn_value { using type = wait_value_t<T>; };
template <> struct spawn_value<void> { using type = void; };
template <class T> using spawn_value_t = typename spawn_value<T>::type;

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
    if constexpr (std::is_void_v<T> || std::is_same_v<spawn_value_t<T>, T>) {
      task_state<T>::of(*s).finish(std::move(e), std::forward<V>(v)...);
    } else if (e) { // the boxed value is empty with an exception
      task_state<T>::of(*s).finish(std::move(e));
    } else {
      task_state<T>::of(*s).finish(std::move(e), std::move(*v)...);
    }
  }

private:
  state_ptr<T> state_;
};

/// The task's coroutine: checks for a cancellation that arrived before the first step (then
/// the body never runs), then runs the body. `st` stays alive: the completion holds it.
///
/// If a cancellation left Asio's sticky cancelled state set (the body swallowed it,
/// cancelled itself, or was cancelled before starting), the state is reset once the body is
/// finished: Asio 1.26 and 1.27 (Boost 1.81) then co_await a post outside co_spawn's try block
/// (see below), which would throw operation_aborted out of io_context::run().
template <class T, class Body>
asio::awaitable<spawn_value_t<T>> drive(task_state<T>* st, Body body) {
#if BOOST_ASIO_VERSION >= 102600 && BOOST_ASIO_VERSION < 103600
  // WORKAROUND(Boost 1.81-1.88, Asio 1.26-1.34): co_spawn_entry_point posts once more after
  // a body that did not switch context, so as not to resume its caller recursively. A task's
  // first step is already on a later turn (spawn_task posts it) and its completion only
  // resolves the state, whose waiters are posted, so that extra scheduler trip buys nothing:
  // mark the thread as switched. (Measured: ~100 ns of a ~780 ns create_task + await.) From
  // Asio 1.36 (Boost 1.89) the extra post happens only for a coroutine that completes inside
  // co_spawn itself, which a task never does. test/task.cpp counts the turns on each version.
  (co_await asio::detail::awaitable_thread_has_context_switched{}) = true;
#endif
  st->core().mark_body_started();
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
    co_return spawn_value_t<T>(std::move(*value));
}

} // namespace asio_futures::detail

#endif // ASIO_FUTURES_DETAIL_TASK_STATE_HPP
