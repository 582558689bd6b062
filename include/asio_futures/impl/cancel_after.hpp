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
#include <cstddef>
#include <mutex>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

namespace asio_futures::detail {

/// The token a partial adapter stands for: the executor's default completion token, or
/// `asio::deferred` where the executor names none (Asio before 1.30 says `void`).
template <class Executor>
using partial_default_token_t =
    std::conditional_t<std::is_void_v<asio::default_completion_token_t<Executor>>, asio::deferred_t,
                       asio::default_completion_token_t<Executor>>;

/// The arguments of a completion signature, as stored values.
template <class Signature> struct stored_args;
template <class R, class... A> struct stored_args<R(A...)> {
  using type = std::tuple<std::decay_t<A>...>;
};

template <class Op> class timed_cancel_op_handler;
template <class Op> class timed_cancel_timer_handler;

/// One timed cancellation: owns the completion handler, the timer and the signal whose slot
/// the wrapped operation gets. Asio's asio::cancel_after (1.32) works the same way, with two
/// differences: the timer runs on the handler's executor (where the completion is delivered,
/// so its context is the one that must run anyway), and it is armed only once the wrapped
/// operation has started (an early expiry cannot emit into a slot nobody listens to yet).
///
/// Two handlers refer to it, the wrapped operation's (op_handler) and the timer's
/// (timer_handler), and start() while it runs; `refs_` counts them, and the last one to
/// finish runs finish(): it frees the storage, then invokes the handler with the stored
/// completion (or destroys it, if the operation dropped its handler). So the handler is
/// never invoked while the timer's wait (storage from the handler's allocator, work on the
/// handler's executor) is still outstanding — Asio's rule for every operation.
///
/// `mutex_` orders arming the timer (on the initiating thread) against the completion
/// cancelling it (on the handler's executor): `completed_` and `armed_` are guarded by it.
/// The expiry and the completion both run on the handler's associated executor; an expiry
/// emitting while the wrapped operation completes on another thread would race inside that
/// operation's slot, which Asio's rules (and asio::cancel_after) leave to that executor to
/// prevent (a strand on a multi-threaded io_context).
template <class Handler, class Timer, class... Signatures> class timed_cancel_op {
public:
  using handler_type = Handler;
  using allocator_type = handler_allocator_t<Handler>;
  using timer_executor = typename Timer::executor_type;
  using outer_slot_type = asio::associated_cancellation_slot_t<Handler>;
  using op_handler = timed_cancel_op_handler<timed_cancel_op>;
  using timer_handler = timed_cancel_timer_handler<timed_cancel_op>;
  using payload_type = std::variant<std::monostate, typename stored_args<Signatures>::type...>;

  template <class Deadline>
  timed_cancel_op(Handler&& h, const timer_executor& ex, const Deadline& deadline,
                  asio::cancellation_type type)
      : handler_(std::move(h)), alloc_(get_handler_allocator(handler_)), timer_(ex, deadline),
        type_(type) {}

  /// Starts the wrapped operation with an op_handler, then the timer. If the initiation
  /// throws, the handler is destroyed and the exception propagates. If the timer cannot be
  /// started (an allocation failure), the operation is cancelled at once, as if its deadline
  /// had passed: it has started, so its completion still comes.
  template <class Initiation, class... Args>
  static void start(Handler&& h, const timer_executor& ex, const auto& deadline,
                    asio::cancellation_type type, Initiation&& initiation, Args&&... args) {
    allocator_type alloc = get_handler_allocator(h);
    timed_cancel_op* op = allocate_node<timed_cancel_op>(alloc, std::move(h), ex, deadline, type);
    struct release_at_exit {
      timed_cancel_op* op;
      ~release_at_exit() { op->release(); } // start()'s own reference
    } keep{op};
    op_handler inner(op); // the other reference, until the operation takes it
    outer_slot_type outer = asio::get_associated_cancellation_slot(op->handler_);
    if (outer.is_connected()) {
      outer.template emplace<forward_cancel>(op);
      op->outer_ = outer;
    }
    try {
      std::forward<Initiation>(initiation)(std::move(inner), std::forward<Args>(args)...);
    } catch (...) {
      op->clear_outer();
      throw; // `inner`, if the initiation did not take it, releases its reference
    }
    op->arm();
  }

  const Handler& handler() const noexcept { return handler_; }
  asio::cancellation_slot inner_slot() noexcept { return signal_.slot(); }
  const allocator_type& allocator() const noexcept { return alloc_; }

  /// The wrapped operation completed (on the handler's executor): keep its arguments, stop
  /// the timer; the handler runs once the timer's wait is over too.
  template <class... A> void complete(A&&... a) {
    store<1>(std::forward<A>(a)...);
    {
      std::lock_guard lock(mutex_);
      completed_ = true;
      if (armed_)
        cancel_timer();
    }
    clear_outer();
    release();
  }

  /// The wrapped operation dropped its handler (its context shut down).
  void abandon() noexcept {
    {
      std::lock_guard lock(mutex_);
      completed_ = true;
    }
    clear_outer();
    release(); // the timer's wait, run or destroyed with its context, frees the rest
  }

  /// The timer's wait is over (expired, or aborted by complete()).
  void expired() {
    bool emit = false;
    {
      std::lock_guard lock(mutex_);
      emit = !completed_;
    }
    // Not under the lock: an operation may complete inside the emission.
    if (emit)
      signal_.emit(type_);
    release();
  }

  void release() noexcept {
    // acq_rel: the last owner sees every write of the others (the stored completion).
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1)
      finish();
  }

private:
  /// Forwards a cancellation of the adapted token's slot to the wrapped operation.
  struct forward_cancel {
    explicit forward_cancel(timed_cancel_op* o) noexcept : op(o) {}
    timed_cancel_op* op;
    void operator()(asio::cancellation_type t) { op->signal_.emit(t); }
  };

  /// Keeps the completion arguments as the first signature whose arguments they make.
  template <std::size_t I, class... A> void store(A&&... a) {
    static_assert(I < std::variant_size_v<payload_type>,
                  "asio_futures::cancel_after: the operation completed with arguments that "
                  "match none of its completion signatures");
    if constexpr (std::is_constructible_v<std::variant_alternative_t<I, payload_type>, A&&...>)
      payload_.template emplace<I>(std::forward<A>(a)...);
    else
      store<I + 1>(std::forward<A>(a)...);
  }

  void arm() noexcept {
    bool failed = false;
    {
      std::lock_guard lock(mutex_);
      if (completed_)
        return; // completed (or dropped) while starting: no timer needed
      refs_.fetch_add(1, std::memory_order_relaxed); // the timer handler's; start() holds one
      try {
        timer_.async_wait(timer_handler(this));
        armed_ = true;
      } catch (...) {
        failed = true; // the timer handler released its reference
      }
    }
    // The operation is running and would have no deadline: cancel it now instead. Not under
    // the lock: an operation may complete inside the emission.
    if (failed)
      signal_.emit(type_);
  }

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
      outer_ = outer_slot_type();
    }
  }

  /// Frees the storage, then invokes the handler with the stored completion (if there is
  /// one; a dropped operation's handler is destroyed uninvoked).
  void finish() noexcept {
    allocator_type alloc(alloc_);
    if (payload_.index() == 0) {
      deallocate_node(alloc, this);
      return;
    }
    Handler h(std::move(handler_));
    payload_type payload(std::move(payload_));
    deallocate_node(alloc, this);
    std::visit(
        [&h](auto& args) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(args)>, std::monostate>)
            std::apply(std::move(h), std::move(args));
        },
        payload);
  }

  Handler handler_;
  allocator_type alloc_;
  Timer timer_;
  asio::cancellation_signal signal_;
  outer_slot_type outer_{};
  asio::cancellation_type type_;
  payload_type payload_;
  std::mutex mutex_;
  bool completed_ = false;   // guarded by mutex_
  bool armed_ = false;       // guarded by mutex_
  std::atomic<int> refs_{2}; // start() and the op handler; the timer handler once armed
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

/// The timer's handler: no executor of its own (the timer's is the handler's), the
/// handler's allocator, no cancellation slot (only the completion or the deadline end the
/// wait).
template <class Op> class timed_cancel_timer_handler {
public:
  using allocator_type = typename Op::allocator_type;

  explicit timed_cancel_timer_handler(Op* op) noexcept : op_(op) {}
  timed_cancel_timer_handler(timed_cancel_timer_handler&& o) noexcept
      : op_(std::exchange(o.op_, nullptr)) {}
  timed_cancel_timer_handler& operator=(timed_cancel_timer_handler&&) = delete;
  ~timed_cancel_timer_handler() {
    if (op_)
      op_->release();
  }

  allocator_type get_allocator() const noexcept { return op_->allocator(); }

  void operator()(const boost::system::error_code&) { std::exchange(op_, nullptr)->expired(); }

private:
  Op* op_;
};

/// An initiation's `executor_type`, if it has one (then associated_executor finds it).
template <class Initiation> struct initiation_executor {};
template <class Initiation>
requires requires {
  typename Initiation::executor_type;
}
struct initiation_executor<Initiation> {
  using executor_type = typename Initiation::executor_type;
};

/// The initiation of an operation adapted by cancel_after/cancel_at: starts a
/// timed_cancel_op around the original initiation.
template <class Initiation, class Clock, class... Signatures>
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
  /// The timer runs on the handler's associated executor, defaulting to the operation's:
  /// where the completion is delivered. Before Asio 1.32 an adapter around cancel_after
  /// (`as_tuple(af::cancel_after(...))`, `bind_executor(ex, af::cancel_after(...))`) hides
  /// the operation's executor; if the handler has none of its own either, there is nowhere
  /// right to run the timer (nor to deliver a completion that the timer's end would
  /// deliver), and the initiation throws std::invalid_argument. (This branch must compile:
  /// Asio's completion_token_for check instantiates it with an initiation without one.)
  template <class Handler, class Deadline, class I, class... Args>
  void start(Handler&& h, const Deadline& deadline, asio::cancellation_type type, I&& initiation,
             Args&&... args) const {
    using handler_type = std::decay_t<Handler>;
    if constexpr (requires { typename Initiation::executor_type; }) {
      launch(handler_type(std::forward<Handler>(h)), initiation_.get_executor(), deadline, type,
             std::forward<I>(initiation), std::forward<Args>(args)...);
    } else if constexpr (!std::is_same_v<
                             asio::associated_executor_t<handler_type, no_associated_executor>,
                             no_associated_executor>) {
      handler_type handler(std::forward<Handler>(h));
      const auto ex = asio::get_associated_executor(handler);
      launch(std::move(handler), ex, deadline, type, std::forward<I>(initiation),
             std::forward<Args>(args)...);
    } else {
      throw std::invalid_argument(
          "asio_futures::cancel_after/cancel_at: neither the operation nor the handler names "
          "an executor to run the timer on (before Asio 1.32 a token adapter around "
          "cancel_after hides the operation's: use cancel_after as the outermost adapter)");
    }
  }

  template <class Handler, class OpExecutor, class Deadline, class I, class... Args>
  static void launch(Handler&& handler, const OpExecutor& op_executor, const Deadline& deadline,
                     asio::cancellation_type type, I&& initiation, Args&&... args) {
    using executor_type = std::decay_t<asio::associated_executor_t<Handler, OpExecutor>>;
    const executor_type ex = asio::get_associated_executor(handler, op_executor);
    using timer = asio::basic_waitable_timer<Clock, asio::wait_traits<Clock>, executor_type>;
    timed_cancel_op<Handler, timer, Signatures...>::start(std::move(handler), ex, deadline, type,
                                                          std::forward<I>(initiation),
                                                          std::forward<Args>(args)...);
  }

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
          asio_futures::detail::initiate_timed_cancel<
              std::decay_t<Initiation>, Clock, Signatures...>(std::forward<Initiation>(initiation)),
          token.token_, token.deadline_, token.type_, std::forward<Args>(args)...)) {
    return async_initiate<
        std::conditional_t<std::is_const_v<std::remove_reference_t<RawCompletionToken>>,
                           const CompletionToken, CompletionToken>,
        Signatures...>(
        asio_futures::detail::initiate_timed_cancel<std::decay_t<Initiation>, Clock, Signatures...>(
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
