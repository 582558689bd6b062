//
// asio_futures/detail/state.hpp
//
// The shared state behind every future<T>: an atomic list word, a reference count, and the
// outcome. See docs/design-core.md for the protocol in prose.
//
#ifndef ASIO_FUTURES_DETAIL_STATE_HPP
#define ASIO_FUTURES_DETAIL_STATE_HPP

#include <asio_futures/error.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace asio_futures::detail {

/// What a waiter of a future<T> receives with the exception: T, or, for a T that is not
/// default-constructible, std::optional<T> (always engaged when there is no exception): an
/// Asio completion passes a value along with a failure, and there is no T to pass.
template <class T>
using wait_value_t = std::conditional_t<std::is_default_constructible_v<T>, T, std::optional<T>>;

class state_base;

/// What a node is asked to do by whoever owns it.
enum class node_action : std::uint8_t {
  complete, ///< the future is done: schedule the completion (never run user code inline)
  detach,   ///< removed by a partial/total cancellation: complete with cancelled_error
  destroy,  ///< shutdown or state destruction: destroy without invoking anything
};

/// An entry of a future's waiter list: an async waiter, a done-callback or a blocking waiter.
///
/// Ownership rule (the whole protocol rests on it): a node belongs to the state while it is
/// linked in the state's list. Whoever takes it out of the list — the completer (by swapping
/// the whole list out), a remover (remove_done_callback, a partial cancellation, a shutting-down
/// service) or the state's destructor — owns it from then on and must call `fn_` exactly once.
/// One exception: a blocking waiter that removes its own node (wait_for timed out) simply
/// drops it, since its `fn_` would only signal that waiter.
struct node {
  using fn_type = void (*)(node*, node_action, state_base*) noexcept;

  explicit node(fn_type fn, std::uint64_t serial = 0) noexcept : fn_(fn), serial_(serial) {}

  node* next_ = nullptr; // written by the pusher before publication, read by the owner
  fn_type fn_;
  std::uint64_t serial_; // non-zero for user done-callbacks: callback_id matches on it
};

/// Spin politely: a few pause instructions, then yield. Used only where a remover holds the
/// list lock, which is never on the set/await hot path.
inline void spin_pause(unsigned& n) noexcept {
  if (++n < 64) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  } else {
    std::this_thread::yield();
  }
}

/// The message of the task cancellation being emitted on this thread, or nullptr: a future
/// cancelled because the task awaiting it is cancelled carries the task's message.
const std::string* current_cancel_message() noexcept;

/// Which outcome a done state holds.
enum class outcome : std::uint8_t { none, value, exception, cancelled };

/// Hooks for derived states (tasks, use_future operations). Plain futures have none, so the
/// hot paths test a pointer for null instead of making a virtual call.
struct state_hooks {
  /// Replaces the default cancel (mark cancelled, complete waiters). Tasks request
  /// cancellation of their coroutine instead; use_future states also abort the operation.
  bool (*cancel)(state_base*, std::string&& msg);
  /// Destroys the derived object (it was created by its owner's allocator).
  void (*destroy)(state_base*) noexcept;
  /// Whether `set_result`/`set_exception` are allowed through a future handle (not for tasks,
  /// which resolve themselves).
  bool user_settable;
  /// For a combinator whose state is its result (wait, wait_for, first_completed): called
  /// when the state became *unobserved* (see state_base::make_abandonable) with no node
  /// linked; lets go of the inputs. Null for every other kind of state.
  void (*abandon)(state_base*) noexcept;
};

/// The type-independent part of a shared state.
class state_base {
public:
  // list_ encoding (the state word):
  //   bit 0 (done_bit)  the outcome is published; the list was taken by the completer and no
  //                     node will ever be pushed again. Set once, never cleared.
  //   bit 1 (lock_bit)  a remover walks/unlinks the list exclusively. Pushers and the completer
  //                     spin while it is set; it is only taken off the hot path.
  //   other bits        pointer to the most recently pushed node (a LIFO of node::next_), or 0.
  // Nodes are at least 4-byte aligned, so the two low bits are free.
  static constexpr std::uintptr_t done_bit = 1;
  static constexpr std::uintptr_t lock_bit = 2;
  static constexpr std::uintptr_t ptr_mask = ~std::uintptr_t{3};

  /// Constructs the type-erased executor in place from the concrete one.
  template <class Executor>
  explicit state_base(const Executor& ex, const state_hooks* hooks = nullptr)
      : hooks_(hooks), ex_(ex) {}

  state_base(const state_base&) = delete;
  state_base& operator=(const state_base&) = delete;

  // --- reference counting -------------------------------------------------------------------
  //
  // refs_ counts two kinds of references in one word:
  //   bits 0..31   *observer* references: future handles, waiters, callbacks' and other
  //                combinators' holds — everyone who could read, await or resolve the state;
  //   bits 32..63  *internal* references (internal_ptr): a combinator's own hold on the state
  //                that is its result (gather's and shield's result, the nodes and timer of
  //                wait, wait_for and first_completed). They never make a state observed.
  // Only abandonable states (make_abandonable) ever have internal references.

  static constexpr std::uint64_t internal_ref = std::uint64_t{1} << 32;
  static constexpr std::uint64_t observer_mask = internal_ref - 1;

  void add_ref() noexcept {
    // relaxed: a new reference is made from an existing one, which keeps the state alive.
    refs_.fetch_add(1, std::memory_order_relaxed);
  }

  /// Drops an observer reference; true if it was the last reference of any kind (the caller
  /// then destroys the state).
  bool drop_ref() noexcept {
    if (abandonable_) [[unlikely]]
      return drop_observer_of_abandonable();
    // acq_rel: release orders our writes to the state before its destruction; acquire on the
    // last drop makes every other holder's writes visible to the destroyer. (An acquire fence
    // on the last drop only would be cheaper, but ThreadSanitizer does not model fences.)
    // Sole owner: nobody can add a reference without holding one, so no RMW is needed
    // (acquire: the other holders' releasing decrements happen-before the destruction).
    if (refs_.load(std::memory_order_acquire) == 1)
      return true;
    return refs_.fetch_sub(1, std::memory_order_acq_rel) == 1;
  }

  void add_internal_ref() noexcept {
    // relaxed: as add_ref.
    refs_.fetch_add(internal_ref, std::memory_order_relaxed);
  }

  /// Drops an internal reference; true if it was the last reference of any kind.
  bool drop_internal_ref() noexcept {
    // acq_rel: as drop_ref.
    return refs_.fetch_sub(internal_ref, std::memory_order_acq_rel) == internal_ref;
  }

  /// Marks this state as the result of a combinator that holds it through internal references
  /// (gather, shield, wait, wait_for, first_completed). When its last observer reference is
  /// dropped while it is pending, nobody can ever read it again, so the combinator lets go of
  /// its inputs (abandon()): inputs that only the combinator held die, and with them the
  /// cycle inputs -> nodes -> combinator -> inputs that would otherwise never be freed (a
  /// coroutine awaiting gather over futures only its frame held, destroyed with its
  /// io_context). Called by the creator before the state is shared.
  void make_abandonable() noexcept { abandonable_ = true; }
  bool abandonable() const noexcept { return abandonable_; }

  // --- state queries ------------------------------------------------------------------------

  bool done() const noexcept {
    // acquire: pairs with the release in publish(), so the outcome is visible once done.
    return (list_.load(std::memory_order_acquire) & done_bit) != 0;
  }

  /// Valid only after done() returned true (or in the completer).
  outcome get_outcome() const noexcept { return outcome_; }
  const std::exception_ptr& error() const noexcept { return error_; }
  const boost::asio::any_io_executor& executor() const noexcept { return ex_; }
  const state_hooks* hooks() const noexcept { return hooks_; }

  /// The serial of the waiter service of the context the state was made on (0: unknown), to
  /// tell later whether that context still exists (context_alive()). Set by the state's
  /// creator before the state is shared.
  std::uint32_t context_serial() const noexcept { return context_serial_; }
  void set_context_serial(std::uint32_t serial) noexcept { context_serial_ = serial; }

  void mark_retrieved() noexcept {
    // relaxed: only read by the destroyer, after the acquire fence of the last drop_ref.
    retrieved_.store(true, std::memory_order_relaxed);
  }
  bool retrieved() const noexcept { return retrieved_.load(std::memory_order_relaxed); }

  /// For move-only values: true for exactly one caller, the one that may move the value out.
  bool take_value() noexcept {
    // acq_rel: the winner's move-out is ordered before any later loser's report.
    return !taken_.exchange(true, std::memory_order_acq_rel);
  }
  bool value_taken() const noexcept { return taken_.load(std::memory_order_acquire); }

  // --- resolving ----------------------------------------------------------------------------

  /// Claims the right to write the outcome; true for exactly one caller over the state's life.
  bool try_claim() noexcept {
    // acquire: a failed claimer that then reads done() sees a consistent word; the winner's
    // writes are released by publish().
    return !claimed_.exchange(true, std::memory_order_acquire);
  }

  /// After a successful claim: store the error/cancellation outcome and publish.
  void finish_exception(std::exception_ptr e, outcome o) noexcept {
    error_ = std::move(e);
    outcome_ = o;
    publish();
  }

  /// Marks the outcome visible and completes every node; called once by the claim winner
  /// after writing the outcome.
  void publish() noexcept {
    std::uintptr_t cur = list_.load(std::memory_order_relaxed);
    unsigned spins = 0;
    for (;;) {
      if (cur & lock_bit) {
        spin_pause(spins);
        cur = list_.load(std::memory_order_relaxed);
        continue;
      }
      // acq_rel: release publishes the outcome to every acquire reader of list_; acquire
      // makes the pushed nodes' contents (released by push()) visible to us.
      if (list_.compare_exchange_weak(cur, done_bit, std::memory_order_acq_rel,
                                      std::memory_order_relaxed))
        break;
    }
    if (cur != 0)
      complete_nodes(reinterpret_cast<node*>(cur & ptr_mask), node_action::complete);
  }

  /// The default cancellation: claim, store cancelled_error(msg), complete waiters.
  bool cancel_state(std::string&& msg) noexcept;
  /// cancel_state() with a message built here: if building it fails (bad_alloc), the state
  /// is cancelled without one. For noexcept paths, where building a std::string argument at
  /// the call site could throw outside any handler.
  bool cancel_state(const char* msg) noexcept;

  /// Cancel through the hook if there is one (tasks, operations), else cancel_state().
  bool cancel(std::string&& msg) {
    if (hooks_ && hooks_->cancel)
      return hooks_->cancel(this, std::move(msg));
    return cancel_state(std::move(msg));
  }

  // --- the list -----------------------------------------------------------------------------

  /// Links `n`; false if the state is already done (then `n` is still the caller's).
  bool push(node* n) noexcept {
    // acquire: if this load already sees done_bit we return at once, and the caller then
    // reads the outcome, which publish() released.
    std::uintptr_t cur = list_.load(std::memory_order_acquire);
    unsigned spins = 0;
    for (;;) {
      if (cur & done_bit)
        return false;
      if (cur & lock_bit) {
        spin_pause(spins);
        cur = list_.load(std::memory_order_acquire);
        continue;
      }
      n->next_ = reinterpret_cast<node*>(cur);
      // release: publishes *n to the completer/remover; acquire on failure: a done word must
      // make the outcome visible to the caller, which then completes on the fast path.
      if (list_.compare_exchange_weak(cur, reinterpret_cast<std::uintptr_t>(n),
                                      std::memory_order_release, std::memory_order_acquire))
        return true;
    }
  }

  /// Unlinks `n` if it is still linked; true if it was (the caller now owns it).
  bool remove(node* n) noexcept {
    return remove_if([n](node* x) { return x == n; }) != nullptr;
  }

  /// Unlinks and returns the first linked node satisfying `pred`, or nullptr (also when the
  /// state is done). Takes lock_bit for the walk: this is the only place that holds it.
  template <class Pred> node* remove_if(Pred pred) noexcept {
    std::uintptr_t cur = list_.load(std::memory_order_acquire);
    unsigned spins = 0;
    for (;;) {
      if (cur & done_bit)
        return nullptr;
      if (cur & lock_bit) {
        spin_pause(spins);
        cur = list_.load(std::memory_order_acquire);
        continue;
      }
      // acquire: see the nodes we are about to walk.
      if (list_.compare_exchange_weak(cur, cur | lock_bit, std::memory_order_acquire,
                                      std::memory_order_acquire))
        break;
    }
    node* head = reinterpret_cast<node*>(cur);
    node* found = nullptr;
    for (node** pp = &head; *pp; pp = &(*pp)->next_) {
      if (pred(*pp)) {
        found = *pp;
        *pp = found->next_;
        break;
      }
    }
    // release: our unlinking is visible to the next locker/completer. Nobody else can change
    // the word while lock_bit is set, so a plain store suffices.
    list_.store(reinterpret_cast<std::uintptr_t>(head), std::memory_order_release);
    return found;
  }

  /// Unlinks and returns the list's node if it holds exactly one (nullptr otherwise, also
  /// when the state is done). Same lock protocol as remove_if.
  node* take_sole_node() noexcept {
    node* first = nullptr;
    bool sole = false;
    return remove_if([&](node* x) {
      // Called for each node in turn until it answers true: the first call sees the head.
      if (!first) {
        first = x;
        sole = x->next_ == nullptr;
      }
      return sole;
    });
  }

  /// Whether any node is linked (racy unless nobody can push or complete concurrently).
  bool has_nodes() const noexcept {
    // acquire: the caller may read the nodes' owners' state after this.
    return (list_.load(std::memory_order_acquire) & ptr_mask) != 0;
  }

  /// At destruction (no other reference exists): destroy the nodes still linked (callbacks).
  void destroy_nodes() noexcept {
    // Nobody can push or complete (we hold the only reference), but a context's shutdown on
    // another thread may have just removed a registered callback (below). acquire: pairs with
    // its unlocking release store, so that its last write happens before we free the state.
    std::uintptr_t cur = list_.load(std::memory_order_acquire);
    if ((cur & done_bit) || (cur & ptr_mask) == 0)
      return;
    // A linked done-callback is registered with the waiter service of the context it runs
    // on, whose shutdown (on another thread) may be removing it right now: take the list
    // with the lock protocol, leaving it empty (not done: a task's gate may still read
    // done() of a dying task), so that such a removal either finished before or finds
    // nothing. (The shutdown touches the state only while the node is registered, and the
    // node is unregistered below, before the state is freed.)
    unsigned spins = 0;
    for (;;) {
      if (cur & lock_bit) {
        spin_pause(spins);
        cur = list_.load(std::memory_order_acquire);
        continue;
      }
      // acquire: a remover's unlinking (released with its unlock) is visible.
      if (list_.compare_exchange_weak(cur, 0, std::memory_order_acquire, std::memory_order_acquire))
        break;
    }
    complete_nodes(reinterpret_cast<node*>(cur & ptr_mask), node_action::destroy);
  }

  /// Drops a reference of a state that has hooks (tasks, operations), from code that does
  /// not know its type.
  void release_hooked() noexcept {
    if (drop_ref()) {
      destroy_nodes();
      report_if_lost();
      hooks_->destroy(this);
    }
  }

  /// Report an exception nobody retrieved (called by the destroyer).
  void report_if_lost() noexcept {
    if (outcome_ == outcome::exception && !retrieved())
      report_lost();
  }

protected:
  ~state_base() = default;

  // Writes of the outcome (value/error_/outcome_) happen after try_claim() and before
  // publish(); readers read them only after observing done_bit with acquire.
  std::exception_ptr error_;
  outcome outcome_ = outcome::none;

private:
  std::uint32_t context_serial_ = 0; // in outcome_'s padding: the state does not grow

  void report_lost() noexcept;
  bool drop_observer_of_abandonable() noexcept;
  void abandon() noexcept;

  void complete_nodes(node* lifo, node_action a) noexcept {
    // The list is LIFO; reverse it so nodes complete in registration order.
    node* fifo = nullptr;
    while (lifo) {
      node* next = lifo->next_;
      lifo->next_ = fifo;
      fifo = lifo;
      lifo = next;
    }
    while (fifo) {
      node* next = fifo->next_;
      fifo->fn_(fifo, a, this);
      fifo = next;
    }
  }

  std::atomic<std::uintptr_t> list_{0};
  std::atomic<std::uint64_t> refs_{1}; // see "reference counting" above
  std::atomic<bool> claimed_{false};
  std::atomic<bool> retrieved_{false};
  std::atomic<bool> taken_{false};
  bool abandonable_ = false; // written before the state is shared, then read-only
  const state_hooks* hooks_;
  boost::asio::any_io_executor ex_;
};

/// Whether a future's value is copied to each of its consumers (otherwise the first one moves
/// it out). `std::is_copy_constructible`, except that standard types whose copy constructor is
/// declared even for move-only elements answer for their elements: `std::vector<std::unique_ptr<
/// int>>` — what gather of move-only futures yields — is moved, not (ill-formedly) copied.
/// Specialised beside other such wrappers (`outcome<T>` in gather.hpp).
template <class T> struct is_copyable : std::is_copy_constructible<T> {};
template <class T, class A>
struct is_copyable<std::vector<T, A>>
    : std::conjunction<std::is_copy_constructible<std::vector<T, A>>, is_copyable<T>> {};
template <class... Ts>
struct is_copyable<std::tuple<Ts...>>
    : std::conjunction<std::is_copy_constructible<std::tuple<Ts...>>, is_copyable<Ts>...> {};
template <class A, class B>
struct is_copyable<std::pair<A, B>> : std::conjunction<std::is_copy_constructible<std::pair<A, B>>,
                                                       is_copyable<A>, is_copyable<B>> {};
template <class T>
struct is_copyable<std::optional<T>>
    : std::conjunction<std::is_copy_constructible<std::optional<T>>, is_copyable<T>> {};
template <class T> inline constexpr bool is_copyable_v = is_copyable<T>::value;

/// Storage for the value; empty for void.
template <class T> class value_storage {
public:
  value_storage() noexcept {}
  ~value_storage() {}
  T& ref() noexcept { return value_; }
  const T& ref() const noexcept { return value_; }
  template <class... A> void construct(A&&... a) {
    std::construct_at(std::addressof(value_), std::forward<A>(a)...);
  }
  void destroy() noexcept { std::destroy_at(std::addressof(value_)); }

private:
  union {
    T value_;
  };
};

template <> class value_storage<void> {
public:
  void construct() noexcept {}
  void destroy() noexcept {}
};

/// The state of a future<T>.
template <class T> class state : public state_base {
public:
  using state_base::state_base;

  ~state() {
    if (outcome_ == outcome::value)
      value_.destroy();
  }

  /// After a successful claim: construct the value and publish. If constructing the value
  /// throws, the state fails with that exception instead (a claimed state must be
  /// published, or every waiter hangs and nothing else can resolve it), and the exception
  /// propagates to the caller.
  template <class... A> void finish_value(A&&... a) {
    try {
      value_.construct(std::forward<A>(a)...);
    } catch (...) {
      finish_exception(std::current_exception(), outcome::exception);
      throw;
    }
    outcome_ = outcome::value;
    publish();
  }

  /// Requires done() and outcome value.
  decltype(auto) value() noexcept {
    if constexpr (!std::is_void_v<T>)
      return (value_.ref());
  }

  /// Called when the last reference is dropped.
  static void destroy(state* s) noexcept {
    s->destroy_nodes();
    s->report_if_lost();
    if (const state_hooks* h = s->hooks())
      h->destroy(s);
    else
      delete s;
  }

private:
  [[no_unique_address]] value_storage<T> value_;
};

/// Intrusive owning pointer to a state<T>.
template <class T> class state_ptr {
public:
  state_ptr() noexcept = default;
  /// Adopts a reference.
  explicit state_ptr(state<T>* p) noexcept : p_(p) {}
  state_ptr(const state_ptr& o) noexcept : p_(o.p_) {
    if (p_)
      p_->add_ref();
  }
  state_ptr(state_ptr&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  state_ptr& operator=(state_ptr o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~state_ptr() { reset(); }

  void reset() noexcept {
    if (state<T>* p = std::exchange(p_, nullptr); p && p->drop_ref())
      state<T>::destroy(p);
  }

  /// Takes a new reference to p.
  static state_ptr share(state<T>* p) noexcept {
    p->add_ref();
    return state_ptr(p);
  }

  state<T>* get() const noexcept { return p_; }
  state<T>* operator->() const noexcept { return p_; }
  state<T>& operator*() const noexcept { return *p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  state<T>* release() noexcept { return std::exchange(p_, nullptr); }

private:
  state<T>* p_ = nullptr;
};

/// Intrusive pointer holding an *internal* reference (see state_base's reference counting): a
/// combinator's hold on its own result, which does not keep the result observed.
template <class T> class internal_ptr {
public:
  internal_ptr() noexcept = default;
  /// Takes a new internal reference to p (which must be abandonable).
  static internal_ptr share(state<T>* p) noexcept {
    p->add_internal_ref();
    return internal_ptr(p);
  }
  internal_ptr(const internal_ptr& o) noexcept : p_(o.p_) {
    if (p_)
      p_->add_internal_ref();
  }
  internal_ptr(internal_ptr&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  internal_ptr& operator=(internal_ptr o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~internal_ptr() { reset(); }

  void reset() noexcept {
    if (state<T>* p = std::exchange(p_, nullptr); p && p->drop_internal_ref())
      state<T>::destroy(p);
  }

  state<T>* get() const noexcept { return p_; }
  state<T>* operator->() const noexcept { return p_; }
  state<T>& operator*() const noexcept { return *p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }

private:
  explicit internal_ptr(state<T>* p) noexcept : p_(p) {}
  state<T>* p_ = nullptr;
};

} // namespace asio_futures::detail

#endif // ASIO_FUTURES_DETAIL_STATE_HPP
