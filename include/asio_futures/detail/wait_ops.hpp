//
// asio_futures/detail/wait_ops.hpp
//
// The machinery behind wait.hpp: the bookkeeping every waiting combinator shares (its
// inputs, the inline nodes linked to them, a deadline timer, an exactly-once release) and
// the states of wait_for, first_completed/first_success and as_completed (wait's, which names the
// public wait_result, is in impl/wait.hpp). See docs/waiting.md.
//
#ifndef ASIO_FUTURES_DETAIL_WAIT_OPS_HPP
#define ASIO_FUTURES_DETAIL_WAIT_OPS_HPP

#include <asio_futures/detail/inline_op.hpp>
#include <asio_futures/detail/state.hpp>
#include <asio_futures/error.hpp>
#include <asio_futures/future.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace asio_futures::detail {

namespace asio = boost::asio;

using wait_duration = std::chrono::steady_clock::duration;

/// Throws std::invalid_argument for an empty input list and invalid_state_error for an empty
/// handle in it.
void check_inputs(std::size_t count, bool all_valid, const char* who);

/// The exceptions the combinators raise (out of line: they build strings).
std::exception_ptr make_timeout_error(const char* who);
std::exception_ptr make_iteration_error(const char* what);

/// Runs `f`, swallowing what it throws: cancel requests made from inline bookkeeping, where
/// an exception (bad_alloc posting a task's cancel emission) has nowhere to go.
template <class F> void no_throw(F&& f) noexcept {
  try {
    std::forward<F>(f)();
  } catch (...) {
  }
}

/// After a successful claim of `to`: copy (or, for a move-only value, move) the outcome of
/// the done state `from` into it and publish. The failure (exception or cancellation, with
/// its message) is copied as is.
template <class T> void finish_from(state<T>& from, state<T>& to) noexcept {
  from.mark_retrieved();
  if (from.get_outcome() != outcome::value) {
    to.finish_exception(from.error(), from.get_outcome());
    return;
  }
  try {
    if constexpr (std::is_void_v<T>) {
      to.finish_value();
    } else if constexpr (std::is_copy_constructible_v<T>) {
      to.finish_value(from.value());
    } else if (from.take_value()) {
      to.finish_value(std::move(from.value()));
    } else {
      to.finish_exception(result_taken_error(), outcome::exception);
    }
  } catch (...) {
    // The copy threw: the value was not constructed, the claim is still ours.
    to.finish_exception(std::current_exception(), outcome::exception);
  }
}

/// After a successful claim: cancel `s` with `msg` (publish).
inline void finish_cancelled(state_base& s, std::string&& msg) noexcept {
  std::exception_ptr e;
  try {
    e = std::make_exception_ptr(cancelled_error(std::move(msg)));
  } catch (...) {
    e = std::current_exception(); // bad_alloc building the message
  }
  s.finish_exception(std::move(e), outcome::cancelled);
}

/// After a successful claim: fail `to` with `e` (or with what building `e` threw).
template <class MakeError> void finish_failed(state_base& to, MakeError&& make) noexcept {
  std::exception_ptr e;
  try {
    e = std::forward<MakeError>(make)();
  } catch (...) {
    e = std::current_exception();
  }
  to.finish_exception(std::move(e), outcome::exception);
}

/// What every waiting combinator keeps: its input futures (strong handles, in input order;
/// one inline, several in one array), the inline node it linked to each of them, an optional
/// deadline timer, and the one-shot *release* that detaches the nodes still linked and cancels the
/// timer.
///
/// Threads. The combinator's setup (link, start_timer, end_setup) runs on the calling thread;
/// the nodes' functions run on whichever threads complete the inputs, possibly while setup is
/// still linking; the timer's handler runs on the timer's executor. `cut()` may be called by
/// any of them, any number of times: the release runs exactly once, after both setup has
/// ended and a cut was requested, on whichever of the two threads comes last.
///
/// flags_ (the state word):
///   setup_bit  setup has ended: the nodes and `timer_` are written and will not change
///   cut_bit    a cut was requested: setup links no more inputs and starts no timer
/// The nodes and `timer_` are written by setup only, before its acq_rel fetch_or of setup_bit;
/// the releaser reads them after an acq_rel fetch_or that saw setup_bit (or is setup itself).
template <class T> class child_links {
public:
  /// One input: stored inline (wait_for allocates nothing here).
  explicit child_links(future<T> single) : one_{std::move(single)}, entries_(&one_), size_(1) {}

  /// Several inputs (moved out of `futures`): one array of {input, node}.
  explicit child_links(std::vector<future<T>> futures) : size_(futures.size()) {
    if (size_ == 1) {
      one_.f = std::move(futures.front());
      entries_ = &one_;
      return;
    }
    many_.reset(new entry[size_]);
    for (std::size_t i = 0; i < size_; ++i)
      many_[i].f = std::move(futures[i]);
    entries_ = many_.get();
  }

  child_links(const child_links&) = delete;
  child_links& operator=(const child_links&) = delete;

  /// Input i, in input order (never modified after construction).
  const future<T>& operator[](std::size_t i) const noexcept { return entries_[i].f; }
  std::size_t size() const noexcept { return size_; }

  /// Setup: links `make(i)` to input i, in input order; a function whose input is already
  /// done runs here, inline. Stops early once a cut was requested (the combinator finished).
  template <class Make> void link(Make&& make) {
    for (std::size_t i = 0; i < size_; ++i) {
      // relaxed: an early exit is an optimisation; correctness comes from end_setup().
      if (flags_.load(std::memory_order_relaxed) & cut_bit)
        break;
      entries_[i].n = on_done_inline(entries_[i].f, make(i));
    }
  }

  /// Setup: starts the deadline timer on `ex` unless the combinator already finished.
  template <class Handler>
  void start_timer(const asio::any_io_executor& ex, wait_duration d, Handler&& h) {
    if (flags_.load(std::memory_order_relaxed) & cut_bit)
      return;
    timer_.emplace(ex, d);
    timer_->async_wait(std::forward<Handler>(h));
  }

  /// Whether a cut was requested (the combinator finished).
  bool cut_requested() const noexcept {
    return (flags_.load(std::memory_order_acquire) & cut_bit) != 0;
  }

  /// Setup is over. Performs the release if a cut was requested meanwhile.
  void end_setup() noexcept {
    // acq_rel: release our writes of the nodes and the timer to a later cutter; acquire what
    // a cutter that came first wrote before its request.
    if (flags_.fetch_or(setup_bit, std::memory_order_acq_rel) & cut_bit)
      release();
  }

  /// Requests the release (idempotent, any thread).
  void cut() noexcept {
    // acq_rel: see end_setup().
    const unsigned prev = flags_.fetch_or(cut_bit, std::memory_order_acq_rel);
    if (!(prev & cut_bit) && (prev & setup_bit))
      release();
  }

private:
  static constexpr unsigned setup_bit = 1;
  static constexpr unsigned cut_bit = 2;

  struct entry {
    future<T> f;
    node* n = nullptr; // written by setup only (see the class comment)
  };

  void release() noexcept {
    // A node that already ran (or is running on a completer's thread) is no longer linked:
    // detach_inline then does nothing. Inputs are done for good once their node was taken,
    // so a freed node's address can never be found in a list again (no ABA).
    for (std::size_t i = 0; i < size_; ++i)
      if (entries_[i].n)
        detach_inline(entries_[i].f, entries_[i].n);
    if (timer_) {
      // The timer's handler never touches the timer: this is its only user after setup.
      // Its pending wait completes with operation_aborted and drops its reference.
      no_throw([&] { timer_->cancel(); });
      timer_.reset();
    }
  }

  entry one_;
  std::unique_ptr<entry[]> many_;
  entry* entries_;
  std::size_t size_;
  std::optional<asio::steady_timer> timer_;
  std::atomic<unsigned> flags_{0};
};

/// The deadline timer's handler of a combinator whose state is a future state (held by an
/// internal reference while the timer is pending): calls `deadline_expired()` when the timer
/// expires (not when it is cancelled), and `deadline_abandoned()` if Asio destroys the handler
/// without invoking it (the timer's execution context shut down).
template <class State, class R> class deadline_handler {
public:
  explicit deadline_handler(internal_ptr<R> s) noexcept : state_(std::move(s)) {}
  deadline_handler(deadline_handler&&) noexcept = default;
  deadline_handler& operator=(deadline_handler&&) = delete;
  ~deadline_handler() {
    if (state_)
      static_cast<State&>(*state_).deadline_abandoned();
  }

  void operator()(const boost::system::error_code& ec) {
    internal_ptr<R> s(std::move(state_));
    if (!ec)
      static_cast<State&>(*s).deadline_expired();
  }

private:
  internal_ptr<R> state_;
};

// --- wait_for (future form) -----------------------------------------------------------------

/// The state of `wait_for(future, d)`: completes with the inner's outcome, or with
/// timeout_error when the inner ended cancelled after the deadline (which cancels it).
template <class T> class wait_for_state final : public state<T> {
public:
  wait_for_state(const asio::any_io_executor& ex, future<T> inner)
      : state<T>(ex, &hooks_), links_(std::move(inner)) {}

  void start(wait_duration d) {
    try {
      if (d <= wait_duration::zero()) {
        // Checks once, no timer: a done inner gives its outcome; otherwise cancel it and
        // wait for it to finish (at once for a plain future, later for a task).
        if (!inner().done())
          expired_.store(true, std::memory_order_release);
        link();
        if (expired_.load(std::memory_order_relaxed))
          no_throw([&] { inner().cancel(std::string(expiry_message)); });
      } else {
        link();
        links_.start_timer(this->executor(), d,
                           deadline_handler<wait_for_state, T>(internal_ptr<T>::share(this)));
      }
    } catch (...) {
      links_.end_setup();
      links_.cut();
      throw;
    }
    links_.end_setup();
  }

  void deadline_expired() noexcept {
    // Done, or abandoned (cut: nobody reads the result) while the expiry was queued.
    if (this->done() || links_.cut_requested())
      return;
    // release: the inner's completion (maybe on another thread) that follows our cancel
    // sees the flag.
    expired_.store(true, std::memory_order_release);
    no_throw([&] { inner().cancel(std::string(expiry_message)); });
  }

  void deadline_abandoned() noexcept {
    this->cancel_state("asio_futures::wait_for: the execution context shut down");
    links_.cut();
  }

private:
  static constexpr const char* expiry_message = "asio_futures::wait_for: timed out";

  const future<T>& inner() const noexcept { return links_[0]; }

  void link() {
    links_.link([this](std::size_t) {
      return [s = internal_ptr<T>::share(this)](bool completed) {
        if (completed)
          static_cast<wait_for_state&>(*s).inner_done();
      };
    });
  }

  void inner_done() noexcept {
    state<T>& in = *access<T>::get(inner());
    if (this->try_claim()) {
      // acquire: pairs with the release store before our cancel of the inner.
      if (in.get_outcome() == outcome::cancelled && expired_.load(std::memory_order_acquire))
        finish_failed(*this, [] { return make_timeout_error("asio_futures::wait_for"); });
      else
        finish_from(in, *this); // a value (or failure) wins, even after the deadline
    }
    links_.cut();
  }

  static bool cancel(state_base* b, std::string&& msg) {
    auto* self = static_cast<wait_for_state*>(b);
    if (!self->try_claim())
      return false;
    // The inner first: once the outer is seen cancelled, a plain inner is cancelled too.
    no_throw([&] { self->inner().cancel(msg); });
    finish_cancelled(*self, std::move(msg));
    self->links_.cut();
    return true;
  }
  static void destroy(state_base* b) noexcept { delete static_cast<wait_for_state*>(b); }
  /// Nobody observes the result any more: detach from the inner, stop the timer; the inner
  /// is not cancelled.
  static void abandon(state_base* b) noexcept { static_cast<wait_for_state*>(b)->links_.cut(); }
  static constexpr state_hooks hooks_{&wait_for_state::cancel, &wait_for_state::destroy, false,
                                      &wait_for_state::abandon};

  child_links<T> links_;
  std::atomic<bool> expired_{false};
};

// --- first_completed, first_success --------------------------------------------------------

/// Which input decides a `first_state`.
enum class first_rule {
  completed, ///< first_completed: the first input to finish, whatever its outcome
  success,   ///< first_success: the first input to finish with a value; all failed: a group
};

/// The state of `first_completed(...)` and `first_success(...)`: the outcome of the deciding
/// input (see first_rule); every other input is cancelled before that outcome is published.
/// Under first_rule::success, a failed input (exception or cancellation) is counted and its
/// exception taken as retrieved; the last failure, if no value came, fails the result with an
/// exception_group of every input's exception in input order.
template <class T, first_rule Rule> class first_state final : public state<T> {
public:
  first_state(const asio::any_io_executor& ex, std::vector<future<T>> futures)
      : state<T>(ex, &hooks_), links_(std::move(futures)) {}

  void start() {
    try {
      links_.link([this](std::size_t i) {
        return [s = internal_ptr<T>::share(this), i](bool completed) {
          if (completed)
            static_cast<first_state&>(*s).child_done(i);
        };
      });
    } catch (...) {
      links_.end_setup();
      links_.cut();
      throw;
    }
    links_.end_setup();
  }

private:
  void child_done(std::size_t i) noexcept {
    state<T>& in = *access<T>::get(links_[i]);
    if constexpr (Rule == first_rule::success) {
      if (in.get_outcome() != outcome::value) {
        in.mark_retrieved(); // this combinator handles the failure
        // acq_rel: the last failure sees every other input's outcome (each was published
        // before its node ran, and its node's increment is ordered before ours).
        if (failed_.fetch_add(1, std::memory_order_acq_rel) + 1 < links_.size())
          return;
        if (this->try_claim())
          finish_failed(*this, [this] { return all_failed(); });
        links_.cut();
        return;
      }
    }
    if (this->try_claim()) {
      // Cancel the others first, so that once this future is done every plain-future input
      // is cancelled and every task input has its cancel request. Their own nodes run inline
      // here and find the claim taken.
      cancel_all(i, std::string());
      finish_from(in, *this);
    }
    links_.cut();
  }

  /// Every input failed: their exceptions (a cancelled input gives its cancelled_error), in
  /// input order.
  std::exception_ptr all_failed() const {
    std::vector<std::exception_ptr> errors;
    errors.reserve(links_.size());
    for (std::size_t j = 0; j < links_.size(); ++j)
      errors.push_back(access<T>::get(links_[j])->error());
    return std::make_exception_ptr(exception_group(std::move(errors)));
  }

  void cancel_all(std::size_t except, const std::string& msg) noexcept {
    for (std::size_t j = 0; j < links_.size(); ++j)
      if (j != except)
        no_throw([&] { links_[j].cancel(msg); });
  }

  static bool cancel(state_base* b, std::string&& msg) {
    auto* self = static_cast<first_state*>(b);
    if (!self->try_claim())
      return false;
    // The inputs first: once the result is seen cancelled, every plain input is too.
    self->cancel_all(static_cast<std::size_t>(-1), msg);
    finish_cancelled(*self, std::move(msg));
    self->links_.cut();
    return true;
  }
  static void destroy(state_base* b) noexcept { delete static_cast<first_state*>(b); }
  /// Nobody observes the result any more: detach from the inputs, which are not cancelled.
  static void abandon(state_base* b) noexcept { static_cast<first_state*>(b)->links_.cut(); }
  static constexpr state_hooks hooks_{&first_state::cancel, &first_state::destroy, false,
                                      &first_state::abandon};

  child_links<T> links_;
  std::atomic<std::size_t> failed_{0}; // first_rule::success: inputs that failed so far
};

// --- timeout_scope --------------------------------------------------------------------------

/// The shared state of a timeout_scope (held by the scope object, by its run's coroutine while
/// it runs, and by each pending timer handler).
///
/// phase_ (guarded by mutex_, like every member):
///   created   the scope exists; reschedule() sets the deadline
///   reserved  run() was called; its coroutine has not started yet
///   entered   the body runs; timer_ points at the deadline timer in the coroutine's frame
///   fired     the deadline passed while entered: the expiry cancels (or cancelled) the body
///   exited    the body is done (or the frame was destroyed)
/// reschedule() may come from any thread: every use of the timer is under mutex_, and a timer
/// handler acts only if the generation it was armed with is still current.
class timeout_scope_core : public std::enable_shared_from_this<timeout_scope_core> {
public:
  using clock = std::chrono::steady_clock;

  explicit timeout_scope_core(std::optional<clock::time_point> when) noexcept : when_(when) {}

  /// The body's stay in the scope: owns the deadline timer (in the coroutine's frame). Its
  /// destruction, or stop(), exits the scope.
  class entry {
  public:
    entry(entry&& other) noexcept = default;
    entry& operator=(entry&&) = delete;
    ~entry() { stop(false); }

    /// Exits the scope with the awaiting coroutine's verdict: whether the expiry's cancel
    /// request was accepted by the body.
    void stop(bool expired) noexcept;

  private:
    friend class timeout_scope_core;
    entry(std::shared_ptr<timeout_scope_core> core, std::unique_ptr<asio::steady_timer> timer)
        : core_(std::move(core)), timer_(std::move(timer)) {}

    std::shared_ptr<timeout_scope_core> core_;
    std::unique_ptr<asio::steady_timer> timer_;
  };

  /// run(): the one run of the scope. Throws invalid_state_error if there was one.
  void reserve();

  /// The run's coroutine starts: arms the deadline on `ex`; one already passed expires at once
  /// (inline: the body never runs). `expire` makes the cancel request; it returns whether the
  /// body accepted it.
  static entry enter(const std::shared_ptr<timeout_scope_core>& self,
                     const asio::any_io_executor& ex, std::function<bool()> expire);

  void reschedule(std::optional<clock::time_point> when);
  std::optional<clock::time_point> when() const;
  bool expired() const;

private:
  enum class phase { created, reserved, entered, fired, exited };

  void arm_locked();
  void fire(std::uint64_t generation) noexcept;
  void exit(bool expired) noexcept;
  /// Under the lock, phase_ entered: makes the expiry, then unlocks.
  void fire_locked(std::unique_lock<std::mutex>& lock) noexcept;

  mutable std::mutex mutex_;
  phase phase_ = phase::created;
  std::optional<clock::time_point> when_;
  asio::steady_timer* timer_ = nullptr;
  std::function<bool()> expire_;
  std::uint64_t generation_ = 0;
  bool expired_ = false;
};

// --- as_completed ---------------------------------------------------------------------------

/// What an async_next request future carries: the next done input.
template <class T> struct completed_box { future<T> f; };

/// The shared core of an as_completed_iterator (owned by the handles through a shared_ptr).
///
/// The nodes linked to the inputs and the deadline handler hold only weak references, so the
/// core (and the inputs it holds) dies with its last handle even if inputs are never resolved.
/// An async_next in flight holds a strong one (in its handler).
///
/// `mutex_` guards ready_, remaining_, pending_, request_ and expired_: requests, input
/// completions, the deadline and withdrawals may come from any thread. Futures are resolved
/// or cancelled outside it.
template <class T>
class as_completed_core : public std::enable_shared_from_this<as_completed_core<T>> {
public:
  using box = completed_box<T>;

  as_completed_core(const asio::any_io_executor& ex, std::vector<future<T>> futures)
      : ex_(ex), links_(std::move(futures)), remaining_(links_.size()), pending_(links_.size()) {}

  ~as_completed_core() {
    links_.cut(); // setup always ended: as_completed() held a handle while it ran
  }

  void start(std::optional<wait_duration> timeout) {
    try {
      const std::weak_ptr<as_completed_core> self = this->weak_from_this();
      links_.link([&](std::size_t i) {
        return [w = self, child = access<T>::get(links_[i])](bool completed) {
          if (completed)
            if (auto c = w.lock())
              c->child_done(child);
        };
      });
      if (timeout) {
        if (*timeout <= wait_duration::zero())
          deadline_expired();
        else
          links_.start_timer(ex_, *timeout, weak_deadline_handler(self));
      }
    } catch (...) {
      links_.end_setup();
      links_.cut();
      throw;
    }
    links_.end_setup();
  }

  const asio::any_io_executor& executor() const noexcept { return ex_; }

  std::size_t remaining() const {
    std::lock_guard lock(mutex_);
    return remaining_;
  }

  /// For a new async_next: a done request future (the next input, or an error) or the
  /// pending one that the next completion (or the deadline) resolves.
  future<box> next() {
    std::lock_guard lock(mutex_);
    if (request_.valid())
      return make_exceptional_future<box>(
          ex_, make_iteration_error("asio_futures::as_completed: async_next is already "
                                    "outstanding (one at a time)"));
    if (head_ < ready_.size()) {
      future<T> f = std::move(ready_[head_]);
      if (++head_ == ready_.size()) {
        ready_.clear();
        head_ = 0;
      }
      --remaining_;
      future<box> r(ex_);
      resolve_value(*access<box>::get(r), box{std::move(f)});
      return r;
    }
    if (remaining_ == 0)
      return make_exceptional_future<box>(
          ex_, make_iteration_error("asio_futures::as_completed: no futures remain"));
    if (expired_) {
      --remaining_;
      return make_exceptional_future<box>(ex_, make_timeout_error("asio_futures::as_completed"));
    }
    request_ = future<box>(ex_);
    return request_;
  }

  /// The request's waiter was cancelled (any cancellation type): withdraw the request if it
  /// is still outstanding; the inputs are untouched and nothing is consumed.
  void withdraw(const future<box>& req, std::string msg) noexcept {
    {
      std::lock_guard lock(mutex_);
      if (!(request_ == req))
        return; // already fulfilled: the waiter gets its input
      request_ = future<box>();
    }
    req.cancel(std::move(msg));
  }

  void deadline_expired() noexcept {
    future<box> req;
    {
      std::lock_guard lock(mutex_);
      if (expired_)
        return;
      expired_ = true;
      if (request_.valid()) {
        req = std::move(request_);
        request_ = future<box>();
        --remaining_;
      }
    }
    if (req.valid())
      resolve_exception(*access<box>::get(req),
                        make_timeout_error_nothrow("asio_futures::as_completed"));
    links_.cut(); // inputs finishing from now on are reported as timeouts
  }

  void deadline_abandoned() noexcept { links_.cut(); }

private:
  class weak_deadline_handler {
  public:
    explicit weak_deadline_handler(std::weak_ptr<as_completed_core> w) noexcept
        : w_(std::move(w)) {}
    weak_deadline_handler(weak_deadline_handler&&) noexcept = default;
    weak_deadline_handler& operator=(weak_deadline_handler&&) = delete;
    ~weak_deadline_handler() {
      if (auto c = w_.lock()) // empty once moved from or invoked
        c->deadline_abandoned();
    }
    void operator()(const boost::system::error_code& ec) {
      std::weak_ptr<as_completed_core> w(std::move(w_));
      if (!ec)
        if (auto c = w.lock())
          c->deadline_expired();
    }

  private:
    std::weak_ptr<as_completed_core> w_;
  };

  static std::exception_ptr make_timeout_error_nothrow(const char* who) noexcept {
    try {
      return make_timeout_error(who);
    } catch (...) {
      return std::current_exception();
    }
  }

  void child_done(state<T>* child) noexcept {
    future<box> req;
    bool last = false;
    try {
      future<T> f(state_ptr<T>::share(child));
      {
        std::lock_guard lock(mutex_);
        if (expired_)
          return; // reported as a timeout (it counts in remaining_)
        last = --pending_ == 0;
        if (request_.valid()) {
          req = std::move(request_);
          request_ = future<box>();
          --remaining_;
        } else {
          ready_.push_back(f);
        }
      }
      if (req.valid())
        resolve_value(*access<box>::get(req), box{std::move(f)});
    } catch (...) {
      // bad_alloc queueing it: the waiter (if any) gets the error instead of hanging.
      if (req.valid())
        resolve_exception(*access<box>::get(req), std::current_exception());
    }
    if (last)
      links_.cut(); // every input is in: the timer has nothing left to do
  }

  asio::any_io_executor ex_;
  child_links<T> links_;
  mutable std::mutex mutex_;
  std::vector<future<T>> ready_; // done, in completion order; [head_, size) not handed out
  std::size_t head_ = 0;
  std::size_t remaining_; // not yet handed out (ready, pending, or due as timeouts)
  std::size_t pending_;   // not yet done
  future<box> request_;   // the outstanding async_next, if any
  bool expired_ = false;
};

/// Installed in the slot of an async_next's handler: any cancellation withdraws the request.
template <class T> struct withdraw_handler {
  std::weak_ptr<as_completed_core<T>> core;
  future<completed_box<T>> request;

  void operator()(asio::cancellation_type type) {
    if (type == asio::cancellation_type::none)
      return;
    if (auto c = core.lock()) {
      const std::string* msg = current_cancel_message();
      c->withdraw(request, msg ? *msg : std::string());
    }
  }
};

/// Wraps an async_next handler for the request future's async_wait: unboxes the input,
/// forwards the handler's executor and allocator, keeps the core alive, and hides the
/// handler's cancellation slot from the wait (the withdraw_handler is installed there instead,
/// and cleared here before the upcall).
template <class T, class Handler> class next_handler {
  using user_slot = asio::associated_cancellation_slot_t<Handler>;

public:
  using cancellation_slot_type = asio::cancellation_slot;

  next_handler(Handler&& h, std::shared_ptr<as_completed_core<T>> core)
      : handler_(std::move(h)), core_(std::move(core)) {}
  next_handler(next_handler&& o) noexcept(std::is_nothrow_move_constructible_v<Handler>)
      : handler_(std::move(o.handler_)), core_(std::move(o.core_)),
        slot_(std::exchange(o.slot_, user_slot())) {}
  next_handler& operator=(next_handler&&) = delete;
  ~next_handler() { disarm(); }

  /// The user's slot, in which a withdraw_handler was installed.
  void arm(const user_slot& slot) noexcept { slot_ = slot; }

  cancellation_slot_type get_cancellation_slot() const noexcept { return {}; }
  const Handler& handler() const noexcept { return handler_; }

  void operator()(std::exception_ptr e, completed_box<T> b) {
    disarm();
    core_.reset();
    std::move(handler_)(std::move(e), std::move(b.f));
  }

private:
  void disarm() noexcept {
    if (slot_.is_connected()) {
      slot_.clear();
      slot_ = user_slot();
    }
  }

  Handler handler_;
  std::shared_ptr<as_completed_core<T>> core_;
  user_slot slot_{};
};

/// The initiation of as_completed_iterator::async_next.
template <class T> struct initiate_next {
  using executor_type = asio::any_io_executor;
  as_completed_core<T>* core;
  executor_type get_executor() const noexcept { return core->executor(); }

  template <class Handler>
  void operator()(Handler&& h, std::shared_ptr<as_completed_core<T>> keep) const {
    using handler_type = std::decay_t<Handler>;
    future<completed_box<T>> req = keep->next();
    auto slot = asio::get_associated_cancellation_slot(h);
    const std::weak_ptr<as_completed_core<T>> weak = keep;
    next_handler<T, handler_type> wrapped(handler_type(std::forward<Handler>(h)), std::move(keep));
    if (!req.done() && slot.is_connected()) {
      slot.template emplace<withdraw_handler<T>>(withdraw_handler<T>{weak, req});
      wrapped.arm(slot);
    }
    try {
      req.async_wait(std::move(wrapped));
    } catch (...) {
      if (auto c = weak.lock())
        c->withdraw(req, std::string());
      throw;
    }
  }
};

} // namespace asio_futures::detail

/// next_handler forwards its handler's associations (executor, allocator); its cancellation
/// slot is its own (see next_handler).
template <template <class, class> class Associator, class T, class Handler, class Default>
struct boost::asio::associator<Associator, asio_futures::detail::next_handler<T, Handler>, Default>
    : Associator<Handler, Default> {
  static typename Associator<Handler, Default>::type
  get(const asio_futures::detail::next_handler<T, Handler>& h) noexcept {
    return Associator<Handler, Default>::get(h.handler());
  }
  static auto get(const asio_futures::detail::next_handler<T, Handler>& h,
                  const Default& d) noexcept
      -> decltype(Associator<Handler, Default>::get(h.handler(), d)) {
    return Associator<Handler, Default>::get(h.handler(), d);
  }
};

#endif // ASIO_FUTURES_DETAIL_WAIT_OPS_HPP
