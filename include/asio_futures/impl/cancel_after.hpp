//
// asio_futures/impl/cancel_after.hpp
//
// The operation behind af::cancel_after / af::cancel_at, and their async_result
// specializations.
//
#ifndef ASIO_FUTURES_IMPL_CANCEL_AFTER_HPP
#define ASIO_FUTURES_IMPL_CANCEL_AFTER_HPP

#include <asio_futures/detail/ops.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/system/system_error.hpp>

#include <atomic>
#include <utility>

namespace asio_futures::detail {

/// The token a partial adapter stands for: the executor's default completion token, or
/// `asio::deferred` where the executor names none (Asio before 1.30 says `void`).
template <class Executor>
using partial_default_token_t =
    std::conditional_t<std::is_void_v<asio::default_completion_token_t<Executor>>, asio::deferred_t,
                       asio::default_completion_token_t<Executor>>;

template <class Op> class timed_cancel_op_handler;
template <class Op> class timed_cancel_timer_handler;

/// One timed cancellation: owns the completion handler, the timer and the signal whose slot
/// the wrapped operation gets.
///
/// Two handlers refer to it, the wrapped operation's (op_handler) and the timer's
/// (timer_handler); `refs_` counts them, and the last one to finish (run or be destroyed)
/// frees it. The operation's completion does not wait for the timer: it cancels the timer,
/// moves the handler out and invokes it at once; the aborted timer wait only frees the
/// storage later. So that the timer's handler never reads `handler_`, which the completion
/// moves, it carries its own copies of the handler's executor and allocator.
///
/// `completed_`: set (release) by the completion before it cancels the timer; read
/// (acquire) by the timer's handler, which then emits nothing. Both handlers run on the
/// handler's associated executor; emitting and completing at once on two threads would race
/// inside the wrapped operation's slot, which Asio's rules (and asio::cancel_after) leave to
/// that executor to prevent.
template <class Handler, class Timer> class timed_cancel_op {
public:
  using handler_type = Handler;
  using allocator_type = handler_allocator_t<Handler>;
  using timer_executor = typename Timer::executor_type;
  using handler_executor = asio::associated_executor_t<Handler, timer_executor>;
  using op_handler = timed_cancel_op_handler<timed_cancel_op>;
  using timer_handler = timed_cancel_timer_handler<timed_cancel_op>;

  template <class Deadline>
  timed_cancel_op(Handler&& h, const timer_executor& ex, const Deadline& deadline,
                  asio::cancellation_type type)
      : handler_(std::move(h)), alloc_(get_handler_allocator(handler_)),
        executor_(asio::get_associated_executor(handler_, ex)), timer_(ex, deadline), type_(type) {}

  /// Starts the timer, then the wrapped operation with an op_handler. If either throws, the
  /// handler is destroyed and the exception propagates (the aborted timer wait, if it was
  /// started, frees the storage later).
  template <class Deadline, class Initiation, class... Args>
  static void start(Handler&& h, const timer_executor& ex, const Deadline& deadline,
                    asio::cancellation_type type, Initiation&& initiation, Args&&... args) {
    allocator_type alloc = get_handler_allocator(h);
    timed_cancel_op* op = allocate_node<timed_cancel_op>(alloc, std::move(h), ex, deadline, type);
    op_handler inner(op); // owns one reference until handed to the operation
    // If this throws, the timer handler releases its reference, and `inner` the last one.
    op->timer_.async_wait(timer_handler(op));
    asio::cancellation_slot outer = asio::get_associated_cancellation_slot(op->handler_);
    try {
      if (outer.is_connected()) {
        outer.template emplace<forward_cancel>(forward_cancel{op});
        op->outer_ = outer;
      }
      std::forward<Initiation>(initiation)(std::move(inner), std::forward<Args>(args)...);
    } catch (...) {
      op->completed_.store(true, std::memory_order_release);
      op->clear_outer();
      op->cancel_timer();
      throw; // `inner`, if the initiation did not take it, releases its reference
    }
  }

  const Handler& handler() const noexcept { return handler_; }
  asio::cancellation_slot inner_slot() noexcept { return signal_.slot(); }
  const handler_executor& executor() const noexcept { return executor_; }
  const allocator_type& allocator() const noexcept { return alloc_; }

  template <class... A> void complete(A&&... a) {
    // release: pairs with the acquire in expired(); the timer's handler then emits nothing.
    completed_.store(true, std::memory_order_release);
    clear_outer();
    cancel_timer();
    Handler h(std::move(handler_));
    release(); // may free *this (the timer's handler already ran)
    std::move(h)(std::forward<A>(a)...);
  }

  void abandon() noexcept {
    completed_.store(true, std::memory_order_release);
    clear_outer();
    release(); // the timer's handler, run or destroyed with its context, frees the rest
  }

  void expired() {
    // acquire: pairs with the release in complete()/abandon().
    if (!completed_.load(std::memory_order_acquire))
      signal_.emit(type_);
    release();
  }

  void release() noexcept {
    // acq_rel: the last owner sees every write of the other before destroying.
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      allocator_type alloc(alloc_);
      deallocate_node(alloc, this);
    }
  }

private:
  /// Forwards a cancellation of the adapted token's slot to the wrapped operation.
  struct forward_cancel {
    timed_cancel_op* op;
    void operator()(asio::cancellation_type type) { op->signal_.emit(type); }
  };

  void cancel_timer() noexcept {
    try {
      timer_.cancel();
    } catch (const boost::system::system_error&) {
      // Cannot happen with Asio's timer services; the wait then ends at the deadline.
    }
  }

  void clear_outer() noexcept {
    if (outer_.is_connected()) {
      outer_.clear();
      outer_ = asio::cancellation_slot();
    }
  }

  Handler handler_;
  allocator_type alloc_;
  handler_executor executor_;
  Timer timer_;
  asio::cancellation_signal signal_;
  asio::cancellation_slot outer_{};
  asio::cancellation_type type_;
  std::atomic<int> refs_{2};
  std::atomic<bool> completed_{false};
};

/// The wrapped operation's handler: forwards the handler's associations (executor,
/// allocator, immediate executor; see the associator below) but has the op's own
/// cancellation slot.
template <class Op> class timed_cancel_op_handler {
public:
  using cancellation_slot_type = asio::cancellation_slot;

  explicit timed_cancel_op_handler(Op* op) noexcept : op_(op) {}
  timed_cancel_op_handler(timed_cancel_op_handler&& o) noexcept
      : op_(std::exchange(o.op_, nullptr)) {}
  timed_cancel_op_handler& operator=(timed_cancel_op_handler&&) = delete;
  ~timed_cancel_op_handler() {
    if (op_)
      op_->abandon(); // destroyed uninvoked: the wrapped operation was dropped
  }

  cancellation_slot_type get_cancellation_slot() const noexcept { return op_->inner_slot(); }
  const typename Op::handler_type& handler() const noexcept { return op_->handler(); }

  template <class... A> void operator()(A&&... a) {
    std::exchange(op_, nullptr)->complete(std::forward<A>(a)...);
  }

private:
  Op* op_;
};

/// The timer's handler: runs on the handler's executor with the handler's allocator, both
/// copied at the start (the completion may move the handler meanwhile); no cancellation
/// slot (only the completion or the deadline end the wait).
template <class Op> class timed_cancel_timer_handler {
public:
  using executor_type = typename Op::handler_executor;
  using allocator_type = typename Op::allocator_type;

  explicit timed_cancel_timer_handler(Op* op) noexcept : op_(op) {}
  timed_cancel_timer_handler(timed_cancel_timer_handler&& o) noexcept
      : op_(std::exchange(o.op_, nullptr)) {}
  timed_cancel_timer_handler& operator=(timed_cancel_timer_handler&&) = delete;
  ~timed_cancel_timer_handler() {
    if (op_)
      op_->release();
  }

  executor_type get_executor() const noexcept { return op_->executor(); }
  allocator_type get_allocator() const noexcept { return op_->allocator(); }

  void operator()(const boost::system::error_code&) { std::exchange(op_, nullptr)->expired(); }

private:
  Op* op_;
};

/// The initiation of an operation adapted by cancel_after/cancel_at: starts a
/// timed_cancel_op around the original initiation.
/// An initiation's `executor_type`, if it has one (then associated_executor finds it).
template <class Initiation> struct initiation_executor {};
template <class Initiation>
requires requires {
  typename Initiation::executor_type;
}
struct initiation_executor<Initiation> {
  using executor_type = typename Initiation::executor_type;
};

template <class Initiation, class Clock>
class initiate_timed_cancel : public initiation_executor<Initiation> {
public:
  template <class I> explicit initiate_timed_cancel(I&& i) : initiation_(std::forward<I>(i)) {}

  /// The operation's executor (also what associated_executor finds for this initiation).
  auto get_executor() const noexcept requires requires { typename Initiation::executor_type; }
  { return initiation_.get_executor(); }

  template <class Handler, class Deadline, class... Args>
  void operator()(Handler&& h, const Deadline& deadline, asio::cancellation_type type,
                  Args&&... args) && {
    start(std::forward<Handler>(h), deadline, type, std::move(initiation_),
          std::forward<Args>(args)...);
  }

  template <class Handler, class Deadline, class... Args>
  void operator()(Handler&& h, const Deadline& deadline, asio::cancellation_type type,
                  Args&&... args) const& {
    start(std::forward<Handler>(h), deadline, type, initiation_, std::forward<Args>(args)...);
  }

private:
  template <class Handler, class Deadline, class I, class... Args>
  void start(Handler&& h, const Deadline& deadline, asio::cancellation_type type, I&& initiation,
             Args&&... args) const {
    // Checked here, not on the class: completion_token_for probes async_result with an
    // initiation archetype that has no executor.
    static_assert(
        requires(const Initiation& i) {
          typename Initiation::executor_type;
          i.get_executor();
        },
        "asio_futures::cancel_after/cancel_at: the operation's initiation has no "
        "executor to run the timer on");
    using executor_type = std::decay_t<decltype(initiation_.get_executor())>;
    using timer = asio::basic_waitable_timer<Clock, asio::wait_traits<Clock>, executor_type>;
    executor_type ex = initiation_.get_executor();
    timed_cancel_op<std::decay_t<Handler>, timer>::start(
        std::decay_t<Handler>(std::forward<Handler>(h)), ex, deadline, type,
        std::forward<I>(initiation), std::forward<Args>(args)...);
  }

private:
  Initiation initiation_;
};

} // namespace asio_futures::detail

template <class CompletionToken, class Clock, class Deadline, class... Signatures>
struct boost::asio::async_result<asio_futures::timed_cancel_t<CompletionToken, Clock, Deadline>,
                                 Signatures...> : async_result<CompletionToken, Signatures...> {
  template <class Initiation, class RawCompletionToken, class... Args>
  static auto initiate(Initiation&& initiation, RawCompletionToken&& token, Args&&... args)
      -> decltype(async_initiate<
                  std::conditional_t<std::is_const_v<std::remove_reference_t<RawCompletionToken>>,
                                     const CompletionToken, CompletionToken>,
                  Signatures...>(
          asio_futures::detail::initiate_timed_cancel<std::decay_t<Initiation>, Clock>(
              std::forward<Initiation>(initiation)),
          token.token_, token.deadline_, token.type_, std::forward<Args>(args)...)) {
    return async_initiate<
        std::conditional_t<std::is_const_v<std::remove_reference_t<RawCompletionToken>>,
                           const CompletionToken, CompletionToken>,
        Signatures...>(asio_futures::detail::initiate_timed_cancel<std::decay_t<Initiation>, Clock>(
                           std::forward<Initiation>(initiation)),
                       token.token_, token.deadline_, token.type_, std::forward<Args>(args)...);
  }
};

template <class Clock, class Deadline, class... Signatures>
struct boost::asio::async_result<asio_futures::partial_timed_cancel<Clock, Deadline>,
                                 Signatures...> {
  template <class Initiation, class RawCompletionToken, class... Args>
  static auto initiate(Initiation&& initiation, RawCompletionToken&& token, Args&&... args) {
    using default_token =
        asio_futures::detail::partial_default_token_t<associated_executor_t<Initiation>>;
    return async_initiate<const asio_futures::timed_cancel_t<default_token, Clock, Deadline>&,
                          Signatures...>(
        std::forward<Initiation>(initiation),
        asio_futures::timed_cancel_t<default_token, Clock, Deadline>(default_token{},
                                                                     token.deadline_, token.type_),
        std::forward<Args>(args)...);
  }
};

/// The wrapped operation's handler forwards its handler's associations, except the
/// cancellation slot (its own, a member, which takes precedence).
template <template <class, class> class Associator, class Op, class Default>
struct boost::asio::associator<Associator, asio_futures::detail::timed_cancel_op_handler<Op>,
                               Default> : Associator<typename Op::handler_type, Default> {
  using handler_type = typename Op::handler_type;
  static typename Associator<handler_type, Default>::type
  get(const asio_futures::detail::timed_cancel_op_handler<Op>& h) noexcept {
    return Associator<handler_type, Default>::get(h.handler());
  }
  static auto get(const asio_futures::detail::timed_cancel_op_handler<Op>& h,
                  const Default& d) noexcept
      -> decltype(Associator<handler_type, Default>::get(h.handler(), d)) {
    return Associator<handler_type, Default>::get(h.handler(), d);
  }
};

#endif // ASIO_FUTURES_IMPL_CANCEL_AFTER_HPP
