//
// asio_futures/detail/sync_ops.hpp
//
// The machinery of the synchronisation primitives (sync.hpp): the waiter node every
// async_<verb> allocates, the FIFO that queues waiters, the base of each primitive's shared
// state, and the execution-context service that destroys pending waiters at shutdown.
//
// The protocol in one paragraph (docs/sync.md has it in prose):
//
//   * Each primitive's state (a `sync_impl`) is guarded by one std::mutex. Every field of a
//     waiter marked "guarded" below is read and written only under that mutex.
//   * A waiter is always in exactly one of three places: queued in one of its owner's FIFOs
//     (`fifo_ != nullptr`), posted (its completion was, or is about to be, submitted to its
//     handler's executor: `posted_`), or owned by a shutting-down service (neither; nobody
//     else can reach it).
//   * Whoever wakes a waiter takes it out of its FIFO under the mutex and collects it in a
//     `wake_list`; the list is submitted after the mutex is released (no handler, no
//     executor and no service lock is ever called under a primitive's mutex).
//   * `granted_` means the waiter holds what it waited for (the lock, a permit, an item, a
//     slot in a bounded queue, a set event). Until its handler runs, a cancellation takes the
//     grant back and passes it on (`sync_impl::cancel`): the handler then sees
//     `cancelled_error` and holds nothing. A waiter destroyed unrun (its context shut down)
//     passes its grant on too (`sync_impl::abandon`).
//   * Lock order: service mutex, then a primitive's mutex. Nothing takes a service mutex
//     while it holds a primitive's mutex. An initiation registers its waiter and runs
//     `begin` under both (`sync_service::add_and`), so a context's shutdown sees every
//     waiter of its context either queued (and takes it) or already posted.
//   * A posted waiter is "in flight" for its service from the moment it is collected (under
//     the primitive's mutex) until its completion has been submitted (`wake_list::flush`);
//     a context's shutdown waits until none is in flight, so the service and the context's
//     scheduler outlive every submission to them.
//
#ifndef ASIO_FUTURES_DETAIL_SYNC_OPS_HPP
#define ASIO_FUTURES_DETAIL_SYNC_OPS_HPP

#include <asio_futures/detail/ops.hpp>
#include <asio_futures/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/version.hpp>
#if BOOST_ASIO_VERSION >= 102800
#include <boost/asio/associated_immediate_executor.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/dispatch.hpp>
#endif

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

namespace asio_futures::detail {

namespace asio = boost::asio;

class sync_impl;
class sync_service;
struct sync_waiter;

/// An intrusive FIFO of waiters, guarded by its owner's mutex.
class waiter_fifo {
public:
  bool empty() const noexcept { return head_ == nullptr; }
  sync_waiter* front() const noexcept { return head_; }
  void push_back(sync_waiter* w) noexcept;
  void erase(sync_waiter* w) noexcept;

private:
  sync_waiter* head_ = nullptr;
  sync_waiter* tail_ = nullptr;
};

/// One pending async_<verb> on a primitive. The operation (`sync_op`) derives from it.
struct sync_waiter {
  using fn_type = void (*)(sync_waiter*) noexcept;

  sync_waiter(sync_impl* owner, fn_type post, fn_type destroy) noexcept
      : owner_(owner), post_(post), destroy_(destroy) {}
  sync_waiter(const sync_waiter&) = delete;
  sync_waiter& operator=(const sync_waiter&) = delete;

  // FIFO links (guarded).
  sync_waiter* prev_ = nullptr;
  sync_waiter* next_ = nullptr;
  waiter_fifo* fifo_ = nullptr; ///< the FIFO holding it; null once taken out
  // The wake_list link: owned by whoever collected it.
  sync_waiter* wake_next_ = nullptr;
  // Registry links: guarded by the service's mutex.
  sync_waiter* reg_prev_ = nullptr;
  sync_waiter* reg_next_ = nullptr;
  sync_service* svc_ = nullptr; ///< null when not registered

  sync_impl* const owner_; ///< the waiter holds a reference to it
  // Guarded:
  bool posted_ = false;      ///< taken out of its FIFO to complete
  bool granted_ = false;     ///< holds what it waited for (see the file comment)
  bool cancelled_ = false;   ///< a cancellation reached it (or, condition: was passed on)
  bool notified_ = false;    ///< condition only: a notify() chose it
  std::uint8_t kind_ = 0;    ///< which operation, for owners with several (queue)
  std::exception_ptr error_; ///< what the handler gets, when not granted or cancelled

  const fn_type post_;    ///< submits the completion (the waiter is unregistered)
  const fn_type destroy_; ///< destroys it unrun, settling what it holds (abandon)
};

/// A waiter that carries a value: a queue getter receives its item in `value_`, a putter
/// carries its item there until it enters the queue.
template <class T> struct value_waiter : sync_waiter {
  using sync_waiter::sync_waiter;
  std::optional<T> value_; // guarded
};

/// Waiters taken out of their FIFO under a primitive's mutex, submitted after it is released
/// (`flush`, or the destructor), in the order they were collected.
class wake_list {
public:
  wake_list() noexcept = default;
  wake_list(const wake_list&) = delete;
  wake_list& operator=(const wake_list&) = delete;
  ~wake_list() { flush(); }

  /// Under the primitive's mutex: `w` is in flight for its service until flushed.
  void push(sync_waiter* w) noexcept;

  /// Removes `w` if collected here; true if it was. It stays in flight (the caller ends it).
  bool extract(sync_waiter* w) noexcept;

  /// Unregisters every collected waiter and submits its completion. A submission that throws
  /// (the handler's allocator or executor refused it) destroys that waiter uninvoked, which
  /// passes its grant on (`sync_op::post_fn`); the others are still submitted.
  void flush() noexcept;

private:
  void append(sync_waiter* w) noexcept {
    w->wake_next_ = nullptr;
    if (tail_)
      tail_->wake_next_ = w;
    else
      head_ = w;
    tail_ = w;
  }

  sync_waiter* head_ = nullptr;
  sync_waiter* tail_ = nullptr;
};

/// The shared state of a primitive: a mutex, a reference count (the handle holds one, each
/// waiter one), the default executor of waiters, and what each primitive does when one of
/// its waiters is cancelled, runs or is destroyed unrun. Everything below `mutex()` is called
/// with it held and runs no user code.
class sync_impl {
public:
  sync_impl(const sync_impl&) = delete;
  sync_impl& operator=(const sync_impl&) = delete;

  std::mutex& mutex() const noexcept { return *mutex_; }
  const asio::any_io_executor& executor() const noexcept { return ex_; }

  void add_ref() noexcept {
    // relaxed: made from an existing reference.
    refs_.fetch_add(1, std::memory_order_relaxed);
  }
  void drop_ref() noexcept {
    // acq_rel: every holder's writes happen before the destruction.
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1)
      delete this;
  }

  /// A cancellation signal reached `w` (queued or posted, its handler not yet run). The
  /// default: a queued waiter completes with cancelled_error; a granted one gives its grant
  /// back (`give_back`) and completes with cancelled_error; others (already completed with
  /// an outcome of their own) are left alone.
  virtual void cancel(sync_waiter& w, wake_list& wakes) noexcept;

  /// `w`'s handler is about to run and it is granted and not cancelled: use the grant (a
  /// queue putter puts its item). Default: nothing.
  virtual void consume(sync_waiter& w, wake_list& wakes) noexcept;

  /// `w` is destroyed without its handler running (its context shut down); it is not in a
  /// FIFO any more. Default: a granted, not cancelled waiter gives its grant back.
  virtual void abandon(sync_waiter& w, wake_list& wakes) noexcept;

  /// Completes every queued waiter with cancelled_error: the primitive's handle is destroyed.
  virtual void close(wake_list& wakes) noexcept = 0;

  // Helpers for the derived states (all under the mutex).

  /// Takes `w` out of its FIFO (if queued) and completes it holding its grant.
  static void grant(sync_waiter& w, wake_list& wakes) noexcept {
    if (w.fifo_)
      w.fifo_->erase(&w);
    w.granted_ = true;
    w.posted_ = true;
    wakes.push(&w);
  }

  /// Takes `w` out of its FIFO (if queued) and completes it with `e` (null: success).
  static void complete(sync_waiter& w, std::exception_ptr e, wake_list& wakes) noexcept {
    if (w.fifo_)
      w.fifo_->erase(&w);
    w.error_ = std::move(e);
    w.posted_ = true;
    wakes.push(&w);
  }

  /// Completes every waiter of `fifo` with cancelled_error.
  static void cancel_all(waiter_fifo& fifo, wake_list& wakes) noexcept;

protected:
  sync_impl(asio::any_io_executor ex, std::mutex* m);
  virtual ~sync_impl();

  /// What `w` gives back when its grant is withdrawn. Default: nothing (an event).
  virtual void give_back(sync_waiter& w, wake_list& wakes) noexcept;

private:
  std::mutex* const mutex_;
  std::atomic<std::uint32_t> refs_{1};
  const asio::any_io_executor ex_;
};

/// An intrusive reference to a primitive's state.
template <class Impl> class sync_ptr {
public:
  sync_ptr() noexcept = default;
  /// Adopts the initial reference of a new state.
  explicit sync_ptr(Impl* p) noexcept : p_(p) {}
  sync_ptr(const sync_ptr& o) noexcept : p_(o.p_) {
    if (p_)
      p_->add_ref();
  }
  sync_ptr(sync_ptr&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  sync_ptr& operator=(sync_ptr o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~sync_ptr() {
    if (p_)
      p_->drop_ref();
  }
  Impl* get() const noexcept { return p_; }
  Impl* operator->() const noexcept { return p_; }
  Impl& operator*() const noexcept { return *p_; }

private:
  Impl* p_ = nullptr;
};

/// The cancelled_error a withdrawn waiter completes with: with the message of the task
/// cancellation being emitted on this thread, if any (as a future's waiter does).
std::exception_ptr sync_cancelled_error() noexcept;

/// One per execution context: the registry of the waiters whose handler executor belongs to
/// it, so that destroying the context destroys them (and the coroutine frames they hold)
/// without running them, like waiter_service does for futures.
class sync_service final : public asio::execution_context::service {
public:
  using key_type = sync_service;
  static asio::execution_context::id id;

  explicit sync_service(asio::execution_context& ctx);
  ~sync_service() override;

  /// The service of `ctx`; cached per thread (use_service takes the context's registry
  /// mutex), as waiter_service::of.
  static sync_service& of(asio::execution_context& ctx) {
    // acquire: pairs with the release increment in ~sync_service.
    const std::uint64_t epoch = epoch_.load(std::memory_order_acquire);
    cache& c = cache_;
    if (c.ctx == &ctx && c.epoch == epoch) [[likely]]
      return *c.svc;
    return lookup(ctx, epoch);
  }

  /// Registers `w` and runs `begin` (which takes the primitive's mutex) under the service's
  /// mutex: a shutdown sees `w` either not registered or queued or posted, never between.
  /// Throws invalid_state_error if the context has shut down; if `begin` throws, `w` is
  /// unregistered again and the exception propagates.
  template <class F> void add_and(sync_waiter* w, F&& begin) {
    std::lock_guard guard(mutex_);
    if (closed_)
      throw_closed();
    link(w);
    try {
      std::forward<F>(begin)();
    } catch (...) {
      unlink(w);
      throw;
    }
  }
  /// Unregisters a waiter (no-op if it is not registered here).
  void remove(sync_waiter* w) noexcept;

  /// Under the mutex of the primitive whose waiter was collected to be posted.
  void begin_flight() noexcept {
    // relaxed: shutdown() sees it through the primitive's or this service's mutex (see
    // shutdown()).
    in_flight_.fetch_add(1, std::memory_order_relaxed);
  }
  /// After the waiter's completion was submitted; the service may be destroyed from here on.
  void end_flight() noexcept {
    // release: the submission happens before shutdown() goes on (its acquire load).
    in_flight_.fetch_sub(1, std::memory_order_release);
  }

private:
  struct cache {
    asio::execution_context* ctx = nullptr;
    sync_service* svc = nullptr;
    std::uint64_t epoch = 0;
  };
  // Bumped whenever a sync_service dies, so that a cache keyed by context address never
  // returns the service of a destroyed context whose address was reused.
  static std::atomic<std::uint64_t> epoch_;
  static thread_local cache cache_;
  static sync_service& lookup(asio::execution_context& ctx, std::uint64_t epoch);
  [[noreturn]] static void throw_closed();

  void shutdown() override;
  void link(sync_waiter* w) noexcept;
  void unlink(sync_waiter* w) noexcept;

  std::mutex mutex_;
  bool closed_ = false;
  sync_waiter* head_ = nullptr;
  std::atomic<std::size_t> in_flight_{0}; ///< waiters collected to be posted, not yet posted
};

/// The service for the handler executor `ex`, or nullptr if `ex` cannot tell its context.
template <class Executor> sync_service* sync_service_for(const Executor& ex) {
  asio::execution_context* ctx = context_of(ex);
  return ctx ? &sync_service::of(*ctx) : nullptr;
}

inline void unregister(sync_waiter* w) noexcept {
  if (sync_service* s = w->svc_)
    s->remove(w);
}

inline void wake_list::push(sync_waiter* w) noexcept {
  if (sync_service* s = w->svc_)
    s->begin_flight();
  append(w);
}

#if BOOST_ASIO_VERSION >= 102800
/// Runs a waiter granted in its initiating call through the handler's immediate executor;
/// destroys it unrun if dropped. Forwards the handler's associations (below).
template <class Op> class sync_immediate {
public:
  explicit sync_immediate(Op* op) noexcept : op_(op) {}
  sync_immediate(sync_immediate&& o) noexcept : op_(std::exchange(o.op_, nullptr)) {}
  sync_immediate& operator=(sync_immediate&&) = delete;
  ~sync_immediate() {
    if (op_)
      op_->destroy();
  }
  void operator()() { std::exchange(op_, nullptr)->invoke(); }
  const typename Op::handler_type& handler() const noexcept { return op_->handler(); }

private:
  Op* op_;
};
#endif

/// The operation of one async_<verb>: `Base` is sync_waiter or value_waiter<T>; `Result` is
/// void (signature `void(std::exception_ptr)`) or T (`void(std::exception_ptr, T)`, the value
/// taken from value_waiter<T>::value_).
template <class Base, class Handler, class Result> class sync_op final : public Base {
public:
  using handler_type = Handler;
  using allocator_type = handler_allocator_t<Handler>;
  using handler_executor = asio::associated_executor_t<Handler, asio::any_io_executor>;
  using slot_type = asio::associated_cancellation_slot_t<Handler>;

  /// Starts a wait on `owner`: `begin(op, wakes)` runs under its mutex and either queues the
  /// op or completes it at once (it may throw on misuse, before changing anything). The
  /// completion is never run inside this call, except through the handler's immediate
  /// executor (Asio >= 1.28). `args` (a putter's item) go to `value_` first.
  template <class Begin, class... Args>
  static void start(sync_impl* owner, Handler h, Begin&& begin, Args&&... args) {
    auto ex = asio::get_associated_executor(h, owner->executor());
    sync_service* svc = sync_service_for(ex);
    allocator_type alloc = get_handler_allocator(h);
    sync_op* op = allocate_node<sync_op>(alloc, owner, std::move(h), ex);
    wake_list wakes;
    [[maybe_unused]] bool at_once = false;
    // Whatever can throw comes before the op is visible to anyone else: a throw destroys it,
    // and the initiator gets the exception with nothing left behind.
    try {
      if constexpr (sizeof...(Args) > 0)
        op->value_.emplace(std::forward<Args>(args)...);
      slot_type slot = asio::get_associated_cancellation_slot(op->handler_);
      if (slot.is_connected()) {
        op->slot_ = slot;
        slot.template emplace<cancel_handler>(op);
      }
      auto begin_locked = [&] {
        std::lock_guard guard(owner->mutex());
        begin(static_cast<Base&>(*op), wakes);
        at_once = op->posted_;
      };
      if (svc)
        svc->add_and(op, begin_locked); // unregisters it again if begin throws
      else
        begin_locked();
    } catch (...) {
      op->free();
      throw;
    }
#if BOOST_ASIO_VERSION >= 102800
    if constexpr (has_immediate_executor_v<Handler>) {
      // Completed at once: through the handler's immediate executor, as Asio's own
      // operations and future::async_wait do (a dispatch, which may run it here).
      if (at_once && wakes.extract(op)) {
        wakes.flush();
        sync_service* s = op->svc_;
        unregister(op);
        // Not in flight any more: the initiator uses the handler's executor right now, so
        // its context cannot be being destroyed (that would be a race of the program).
        if (s)
          s->end_flight();
        auto iex = asio::get_associated_immediate_executor(op->handler_, owner->executor());
        asio::dispatch(iex, sync_immediate<sync_op>(op));
      }
    }
#endif
  }

  /// Runs on the handler's executor: settle under the mutex, free the node, then invoke.
  void invoke() {
    clear_slot(); // no cancellation reaches it any more
    sync_impl* owner = this->owner_;
    {
      wake_list wakes;
      {
        std::lock_guard guard(owner->mutex());
        if (this->granted_ && !this->cancelled_)
          owner->consume(*this, wakes);
      }
    }
    // Asio's rule: free the operation before the upcall. (A throwing move of the handler
    // or the value leaves the node to `free_guard`, settled already.)
    struct free_guard {
      sync_op* op;
      ~free_guard() {
        if (op)
          op->free();
      }
    } guard{this};
    Handler h(std::move(handler_));
    std::exception_ptr e = std::move(this->error_);
    if constexpr (std::is_void_v<Result>) {
      guard.op = nullptr;
      free();
      std::move(h)(std::move(e));
    } else {
      std::optional<Result> v;
      if (!e)
        v.emplace(std::move(*this->value_));
      guard.op = nullptr;
      free();
      if (v)
        std::move(h)(std::exception_ptr(), std::move(*v));
      else
        std::move(h)(std::move(e), Result());
    }
  }

  /// Destroys it unrun (its context shut down, or its posted completion was dropped),
  /// passing on what it holds.
  void destroy() noexcept {
    clear_slot();
    {
      wake_list wakes;
      std::lock_guard guard(this->owner_->mutex());
      if (this->fifo_)
        this->fifo_->erase(this);
      this->owner_->abandon(*this, wakes);
    }
    free();
  }

  const Handler& handler() const noexcept {
    return handler_;
  }

  sync_op(sync_impl* owner, Handler&& h, const handler_executor& ex)
      : Base(owner, &post_fn, &destroy_fn), handler_(std::move(h)),
        alloc_(get_handler_allocator(handler_)), work_(ex, alloc_) {
    owner->add_ref();
  }

private:
  struct cancel_handler {
    // A constructor, not an aggregate: emplace() constructs it with parentheses, which
    // clang 14 does not accept for aggregates.
    explicit cancel_handler(sync_op* o) noexcept : op(o) {}

    sync_op* op;
    void operator()(asio::cancellation_type type) {
      if (type == asio::cancellation_type::none)
        return;
      // Runs where the signal is emitted: Asio's rule is that this is the handler's
      // executor, never concurrently with invoke(), which clears the slot first. Every
      // type withdraws only this waiter.
      wake_list wakes; // flushed after the lock is released
      std::lock_guard guard(op->owner_->mutex());
      op->owner_->cancel(*op, wakes);
    }
  };

  static void post_fn(sync_waiter* w) noexcept {
    auto* op = static_cast<sync_op*>(w);
    try {
      op->work_.post_and_release(posted<sync_op>(op));
    } catch (...) {
      // The executor refused the completion (its allocation failed, or it threw) before
      // taking it: the `posted` wrapper destroyed the op uninvoked on the way out, and its
      // destroy() passed the grant on (abandon), as a context shutdown does. The waker's
      // own operation (a release, a put) has taken effect, so nothing is reported to it.
      // (Not so if a strand took the function and then failed to schedule itself — its
      // second record is reserved for strands of io_context and thread_pool executors, so
      // that takes a strand of another executor, or a user's that allocates, failing.)
    }
  }
  static void destroy_fn(sync_waiter* w) noexcept {
    static_cast<sync_op*>(w)->destroy();
  }

  void clear_slot() noexcept {
    if (slot_.is_connected())
      slot_.clear();
  }

  /// Frees the node and drops its reference to the owner (after the handler is gone: the
  /// handler may hold the primitive's handle).
  void free() noexcept {
    sync_impl* owner = this->owner_;
    clear_slot();
    allocator_type alloc(alloc_);
    deallocate_node(alloc, this);
    owner->drop_ref();
  }

  Handler handler_;
  allocator_type alloc_;
  completion_executor<handler_executor, allocator_type, posted<sync_op>> work_;
  slot_type slot_{};
};

/// The initiation object of a primitive's async_<verb>: holds a reference to the state, so
/// that a deferred operation stays valid; its executor is the primitive's (for tokens that
/// build their handler's executor from the initiation, such as use_promise).
template <class Impl, class Base, class Result, void (Impl::*Begin)(Base&, wake_list&)>
struct initiate_sync {
  using executor_type = asio::any_io_executor;
  sync_ptr<Impl> impl;
  executor_type get_executor() const noexcept { return impl->executor(); }
  template <class Handler, class... Args> void operator()(Handler&& h, Args&&... args) const {
    Impl* p = impl.get();
    sync_op<Base, std::decay_t<Handler>, Result>::start(
        p, std::forward<Handler>(h), [p](Base& w, wake_list& wakes) { (p->*Begin)(w, wakes); },
        std::forward<Args>(args)...);
  }
};

} // namespace asio_futures::detail

#if BOOST_ASIO_VERSION >= 102800
/// sync_immediate forwards its handler's associations.
template <template <class, class> class Associator, class Op, class Default>
struct boost::asio::associator<Associator, asio_futures::detail::sync_immediate<Op>, Default>
    : Associator<typename Op::handler_type, Default> {
  static typename Associator<typename Op::handler_type, Default>::type
  get(const asio_futures::detail::sync_immediate<Op>& c) noexcept {
    return Associator<typename Op::handler_type, Default>::get(c.handler());
  }
  static auto get(const asio_futures::detail::sync_immediate<Op>& c, const Default& d) noexcept
      -> decltype(Associator<typename Op::handler_type, Default>::get(c.handler(), d)) {
    return Associator<typename Op::handler_type, Default>::get(c.handler(), d);
  }
};
#endif

#endif // ASIO_FUTURES_DETAIL_SYNC_OPS_HPP
