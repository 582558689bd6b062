//
// src/future.cpp
//
// Non-template parts of the core: the waiter service, lost-exception reporting, blocking-wait
// deadlock detection and the error helpers; and of thread.hpp: the closed-pool check and the
// default thread pool.
//
#include <asio_futures/detail/task_state.hpp>
#include <asio_futures/future.hpp>
#include <asio_futures/thread.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace asio_futures {
namespace {

void default_exception_handler(std::exception_ptr, std::string_view what) {
  std::fprintf(stderr, "asio_futures: exception was never retrieved: %.*s\n",
               static_cast<int>(what.size()), what.data());
}

struct handler_registry {
  std::mutex mutex;
  exception_handler handler = &default_exception_handler;
};

handler_registry& handlers() {
  static handler_registry r; // never destroyed before statics that use it: constructed first
  return r;
}

} // namespace

exception_handler set_exception_handler(exception_handler h) {
  auto& r = handlers();
  std::lock_guard lock(r.mutex);
  std::swap(r.handler, h);
  return h;
}

future<void> make_ready_future(const asio::any_io_executor& ex) {
  future<void> f(ex);
  f.set_result();
  return f;
}

namespace detail {

bool state_base::cancel_state(std::string&& msg) noexcept {
  if (!try_claim())
    return false;
  std::exception_ptr e;
  try {
    e = std::make_exception_ptr(cancelled_error(std::move(msg)));
  } catch (...) {
    e = std::current_exception(); // bad_alloc while building the message
  }
  finish_exception(std::move(e), outcome::cancelled);
  return true;
}

bool state_base::cancel_state(const char* msg) noexcept {
  std::string m;
  try {
    m = msg;
  } catch (...) { // bad_alloc: cancelled without a message
  }
  return cancel_state(std::move(m));
}

bool state_base::drop_observer_of_abandonable() noexcept {
  std::uint64_t cur = refs_.load(std::memory_order_relaxed);
  bool last_observer;
  for (;;) {
    // The last observer of a state that internal references keep alive turns its reference
    // into an internal one in the same step, so the state outlives our look at it (a
    // concurrent release of every internal reference would otherwise destroy it under us).
    last_observer = (cur & observer_mask) == 1 && cur != 1;
    const std::uint64_t next = last_observer ? cur - 1 + internal_ref : cur - 1;
    // acq_rel: as drop_ref.
    if (refs_.compare_exchange_weak(cur, next, std::memory_order_acq_rel,
                                    std::memory_order_relaxed))
      break;
  }
  if (!last_observer)
    return cur == 1;
  // Nobody holds a handle or waits any more, and nobody can start to: every way to reach the
  // state (await, callbacks, cancel, set, combinators) needs an observer reference.
  if (!done())
    abandon();
  return drop_internal_ref();
}

void state_base::abandon() noexcept {
  if (hooks_ && hooks_->abandon) {
    // The combinator is the state (wait, wait_for, first_completed): it has no node of its
    // own on its list, so a linked node is someone else's observer (a done-callback of a
    // dropped handle, a then step): they may still want the outcome.
    if (!has_nodes())
      hooks_->abandon(this);
    return;
  }
  // The result of a two-object combinator (gather, shield): its own node is linked on the
  // list until the result is done. If it is the only one, nobody else listens: hand it its
  // `destroy`, which the combinator takes as "let go of your inputs".
  if (node* n = take_sole_node())
    n->fn_(n, node_action::destroy, this);
}

void state_base::report_lost() noexcept {
  try {
    exception_handler h;
    {
      auto& r = handlers();
      std::lock_guard lock(r.mutex);
      h = r.handler;
    }
    if (!h)
      return;
    h(error_, describe(error_));
  } catch (...) {
    // A reporting failure must not turn a destructor into std::terminate.
  }
}

void cancel_dropped(state_base& s) noexcept {
  std::string msg;
  try {
    msg = "asio_futures: the continuation that would resolve this future was dropped (its "
          "future was destroyed unresolved, or the context that would run it was destroyed)";
  } catch (...) { // bad_alloc: cancelled without a message
  }
  s.cancel_state(std::move(msg));
}

std::exception_ptr result_taken_error() {
  return std::make_exception_ptr(
      invalid_state_error("asio_futures::future: result already taken (move-only value)"));
}

std::exception_ptr detached_error() {
  return std::make_exception_ptr(cancelled_error());
}

void throw_not_settable() {
  throw invalid_state_error("asio_futures::future: this future resolves itself (a task, a "
                            "sleep); set_result and set_exception are not allowed");
}
void throw_already_done() {
  throw invalid_state_error("asio_futures::future: the future is already done");
}
void throw_not_ready() {
  throw invalid_state_error("asio_futures::future: the result is not ready (future pending)");
}
void throw_result_taken() {
  throw invalid_state_error("asio_futures::future: result already taken (move-only value)");
}
void throw_would_deadlock() {
  throw invalid_state_error("asio_futures::future: blocking wait on a thread that runs the "
                            "future's own executor would deadlock; co_await it instead");
}

std::uint64_t next_callback_serial() noexcept {
  // Each thread takes blocks of serials from the process-wide counter, so that registering a
  // callback costs no atomic read-modify-write (then_chain spent 5% of its time here).
  constexpr std::uint64_t block = 1024;
  static std::atomic<std::uint64_t> taken{0};
  thread_local std::uint64_t next = 0;
  thread_local std::uint64_t end = 0;
  if (next == end) {
    // relaxed: only uniqueness matters. The first block is [1, 1025): a serial is never 0.
    next = taken.fetch_add(block, std::memory_order_relaxed) + 1;
    end = next + block;
  }
  return next++;
}

namespace {

template <class... Executors> bool running_in(const asio::any_io_executor& ex) noexcept {
  bool running = false;
  ((!running && ex.target<Executors>() &&
    (running = ex.target<Executors>()->running_in_this_thread())),
   ...);
  return running;
}

using ioc_ex = asio::io_context::executor_type;
using ioc_ex_tracked = std::decay_t<decltype(asio::require(
    std::declval<ioc_ex>(), asio::execution::outstanding_work.tracked))>;
using pool_ex = asio::thread_pool::executor_type;
// The tracked bit differs between the two (4 for io_context, 8 for thread_pool): derive the
// types instead of spelling the bits.
using pool_ex_tracked = std::decay_t<decltype(asio::require(
    std::declval<pool_ex>(), asio::execution::outstanding_work.tracked))>;

/// For a strand, the thread that runs its underlying context is what matters: a blocking
/// wait there would starve the strand on a single-threaded context.
template <class Strand>
bool running_in_strand(const asio::any_io_executor& ex, bool strict) noexcept {
  const Strand* s = ex.target<Strand>();
  return s && (s->running_in_this_thread() ||
               (!strict && running_in_this_thread(asio::any_io_executor(s->get_inner_executor()))));
}

/// For a task's executor: inside the task on this thread, or (not strict) on a thread that
/// runs its inner executor.
template <class Inner> bool running_in_task(const asio::any_io_executor& ex, bool strict) noexcept {
  const auto* t = ex.target<task_executor<Inner>>();
  return t && (t->running_in_this_thread() ||
               (!strict && running_in_this_thread(asio::any_io_executor(t->get_inner_executor()))));
}

} // namespace

bool running_in_this_thread(const asio::any_io_executor& ex, bool strict) noexcept {
  return running_in<ioc_ex, ioc_ex_tracked, pool_ex, pool_ex_tracked>(ex) ||
         running_in_strand<asio::strand<ioc_ex>>(ex, strict) ||
         running_in_strand<asio::strand<pool_ex>>(ex, strict) ||
         running_in_strand<asio::strand<asio::any_io_executor>>(ex, strict) ||
         running_in_task<ioc_ex>(ex, strict) || running_in_task<pool_ex>(ex, strict) ||
         running_in_task<asio::any_io_executor>(ex, strict);
}

// --- waiter_service ---------------------------------------------------------------------------

asio::execution_context::id waiter_service::id;
std::atomic<std::uint64_t> waiter_service::epoch_{0};
thread_local waiter_service::cache waiter_service::cache_;

namespace {

/// The live waiter services by context, for waiter_service::alive() when its per-thread
/// cache cannot answer. Never destroyed: the services of static contexts die during static
/// destruction.
struct service_registry {
  std::mutex mutex;
  std::unordered_map<const asio::execution_context*, std::uint32_t> live;
};
service_registry& registry() {
  static service_registry* r = new service_registry;
  return *r;
}

std::uint32_t next_service_serial() noexcept {
  static std::atomic<std::uint32_t> counter{0};
  std::uint32_t s;
  do // relaxed: only uniqueness matters; 0 means "unknown" and is skipped
    s = counter.fetch_add(1, std::memory_order_relaxed) + 1;
  while (s == 0);
  return s;
}

} // namespace

// The constructor does not enter the registry: two threads making the first future of a
// context at the same time may both construct a service (Asio constructs outside its registry
// lock), and Asio keeps one and destroys the other. The service Asio kept enters the registry
// in lookup(), before anyone learns its serial; the other one never does, so its destructor
// cannot erase the kept one's entry.
//
// A context shuts its services down newest first, and this one's shutdown waits for the
// completions being submitted on other threads. The strands' service must shut down after
// it (a strand's shutdown destroys the functions queued in it, and a completion queued there
// a moment ago may still be submitting the strand's second record from its waiter's memory):
// it is made first, so that it is the older one.
waiter_service::waiter_service(asio::execution_context& ctx)
    : asio::execution_context::service(ctx), serial_(next_service_serial()) {
  (void)asio::use_service<asio::detail::strand_executor_service>(ctx);
}

waiter_service::~waiter_service() {
  {
    auto& r = registry();
    std::lock_guard lock(r.mutex);
    auto it = r.live.find(&context());
    if (it != r.live.end() && it->second == serial_)
      r.live.erase(it);
  }
  // release: pairs with the acquire in of() and alive(); a thread that sees the new epoch
  // refreshes its cache.
  epoch_.fetch_add(1, std::memory_order_release);
}

bool waiter_service::registered(const asio::execution_context* ctx, std::uint32_t serial) noexcept {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  auto it = r.live.find(ctx);
  return it != r.live.end() && it->second == serial;
}

waiter_service& waiter_service::lookup(asio::execution_context& ctx, std::uint64_t epoch) {
  waiter_service& s = asio::use_service<waiter_service>(ctx);
  {
    // Enters the service Asio kept (see the constructor); a no-op once it is in. An entry for
    // this address can only be this service's: a dead context's service erased its own.
    auto& r = registry();
    std::lock_guard lock(r.mutex);
    r.live.try_emplace(&ctx, s.serial_);
  }
  cache_ = {&ctx, &s, epoch};
  return s;
}

void waiter_service::throw_closed() {
  throw invalid_state_error("asio_futures: the execution context has shut down");
}

void waiter_service::shutdown() {
  // Take every waiter still linked in its future: from then on it is ours, and we destroy it
  // without invoking it (its coroutine frame dies; nothing runs after the context died).
  //
  // A waiter we cannot unlink was taken by a completer on another thread, which unregisters
  // it (begin_flight) and submits it to this context's scheduler — shut down and destroyed
  // after this service (services go newest first; the scheduler is the context's first),
  // which destroys it unrun. We wait until every such submission is over, so that neither
  // this service nor the scheduler is destroyed under a completer; completers never block, so
  // the wait is short. Each round takes the waiters that became linked meanwhile too (an
  // initiation on another thread that registered before we closed and links afterwards), so
  // the wait cannot outlast the other threads' work.
  lock();
  closed_.store(true, std::memory_order_release);
  for (;;) {
    wait_node* owned = nullptr; // chained through reg_next_ once unlinked from the registry
    for (wait_node* n = head_; n;) {
      wait_node* next = n->reg_next_;
      if (n->owner_->remove(n)) {
        unlink(n);
        n->reg_next_ = owned;
        owned = n;
      }
      n = next;
    }
    // acquire: pairs with end_flight(); the submissions happen before we return.
    const bool idle = head_ == nullptr && in_flight_.load(std::memory_order_acquire) == 0;
    unlock();
    // Outside the lock: destroying a frame may drop futures, destroy states and start or
    // finish other waits on this service.
    while (owned) {
      wait_node* n = owned;
      owned = static_cast<wait_node*>(n->reg_next_);
      n->reg_next_ = nullptr;
      n->fn_(n, node_action::destroy, n->owner_);
    }
    if (idle)
      return;
    std::this_thread::yield();
    lock();
  }
}

} // namespace detail
} // namespace asio_futures

// --- thread offload (thread.hpp) --------------------------------------------------------------

namespace asio_futures {
namespace detail {
namespace {

/// Per execution context: whether a function submitted now would never run. One per
/// context that run_in_executor submitted to, found through a per-thread cache (as
/// waiter_service::of: use_service takes the registry's mutex).
class offload_service final : public asio::execution_context::service {
public:
  using key_type = offload_service;
  static asio::execution_context::id id;

  explicit offload_service(asio::execution_context& ctx) : asio::execution_context::service(ctx) {}

  ~offload_service() override {
    // release: pairs with the acquire in of(); a thread that sees the new epoch refreshes.
    epoch_.fetch_add(1, std::memory_order_release);
  }

  static offload_service& of(asio::execution_context& ctx) {
    // acquire: pairs with the release increment in the destructor.
    const std::uint64_t epoch = epoch_.load(std::memory_order_acquire);
    cache& c = cache_;
    if (c.ctx == &ctx && c.epoch == epoch) [[likely]]
      return *c.svc;
    offload_service& s = asio::use_service<offload_service>(ctx);
    c = {&ctx, &s, epoch};
    return s;
  }

  /// `pool`: this context as an asio::thread_pool, if the caller knows it is one.
  bool closed(asio::thread_pool* pool) {
    // acquire: pairs with the release in shutdown().
    if (closed_.load(std::memory_order_acquire))
      return true;
    if (!pool)
      return false;
#if ASIO_FUTURES_DETAIL_POOL_STOP_PROBE
    // WORKAROUND(Boost 1.81-1.90, Asio 1.26-1.38): asio::thread_pool has no public way to
    // tell that it was stopped or joined (posting to it then queues the function until the
    // pool is destroyed). Its scheduler — the service asio::detail::scheduler that its
    // constructor adds — can: stop() stops it, and so does join() (the pool's last work
    // finishes), and a pool never restarts it. (A stopped io_context, which may be restarted,
    // is not treated as closed.) On an Asio this was not verified with, the probe is off:
    // a job submitted to a stopped pool then fails when the pool is destroyed.
    // Every caller computes the same pointer (use_service synchronises itself); acquire/
    // release only order the scheduler's construction before its use for a reader that
    // takes the cached pointer.
    asio::detail::scheduler* s = scheduler_.load(std::memory_order_acquire);
    if (!s) {
      s = &asio::use_service<asio::detail::scheduler>(*pool);
      scheduler_.store(s, std::memory_order_release);
    }
    // stopped() takes the scheduler's mutex, which the submission that follows takes anyway.
    return s->stopped();
#else
    return false;
#endif
  }

private:
  void shutdown() override {
    closed_.store(true, std::memory_order_release);
  }

  struct cache {
    asio::execution_context* ctx = nullptr;
    offload_service* svc = nullptr;
    std::uint64_t epoch = 0;
  };
  // Bumped whenever an offload_service dies, so that a per-thread cache keyed by context
  // address never returns the service of a destroyed context whose address was reused.
  static std::atomic<std::uint64_t> epoch_;
  static thread_local cache cache_;

#if ASIO_FUTURES_DETAIL_POOL_STOP_PROBE
  std::atomic<asio::detail::scheduler*> scheduler_{nullptr}; // a pool's, once known
#endif
  std::atomic<bool> closed_{false};
};

asio::execution_context::id offload_service::id;
std::atomic<std::uint64_t> offload_service::epoch_{0};
thread_local offload_service::cache offload_service::cache_;

std::exception_ptr make_invalid_state(const char* what) noexcept {
  try {
    return std::make_exception_ptr(invalid_state_error(what));
  } catch (...) {
    return std::current_exception(); // bad_alloc while building the message
  }
}

} // namespace

bool offload_context_closed(asio::execution_context& ctx, asio::thread_pool* pool) {
  return offload_service::of(ctx).closed(pool);
}

namespace {
template <unsigned Bits>
using pool_executor_bits = asio::thread_pool::basic_executor_type<std::allocator<void>, Bits>;

template <class Executor> asio::thread_pool* pool_of_target(const Executor* ex) noexcept {
  return ex ? thread_pool_of(*ex) : nullptr;
}

template <unsigned... Bits>
asio::thread_pool* pool_target(const asio::any_io_executor& ex,
                               std::integer_sequence<unsigned, Bits...>) noexcept {
  asio::thread_pool* pool = nullptr;
  // Template bits of a pool executor: blocking.always (2), relationship.continuation (4),
  // outstanding_work.tracked (8); blocking.never is a run-time bit (hence Bits * 2).
  ((pool || (pool = pool_of_target(ex.target<pool_executor_bits<Bits * 2>>()))), ...);
  ((pool || (pool = pool_of_target(ex.target<asio::strand<pool_executor_bits<Bits * 2>>>()))), ...);
  return pool;
}
} // namespace

asio::thread_pool* thread_pool_of_any(const asio::any_io_executor& ex) noexcept {
  if (!ex || ex.target<asio::io_context::executor_type>())
    return nullptr;
  if (const auto* s = ex.target<asio::strand<asio::any_io_executor>>())
    return thread_pool_of_any(s->get_inner_executor());
  return pool_target(ex, std::make_integer_sequence<unsigned, 8>());
}

std::exception_ptr pool_closed_error() noexcept {
  return make_invalid_state("asio_futures::run_in_executor: the pool has been stopped, joined "
                            "or shut down; the job was not submitted");
}

std::exception_ptr job_dropped_error() noexcept {
  return make_invalid_state("asio_futures::run_in_executor: the pool was shut down before "
                            "running the job");
}

} // namespace detail

namespace {

// The pool of to_thread: the installed one, or null until the built-in one exists.
std::atomic<asio::thread_pool*> default_pool{nullptr};
// Set once the built-in pool has been destroyed at exit.
std::atomic<bool> builtin_pool_gone{false};

/// The lazily created default pool, destroyed (stopped and joined) during static destruction.
struct builtin_pool {
  asio::thread_pool pool;

  builtin_pool() : pool(std::max(1u, std::thread::hardware_concurrency())) {
    // Statics that the pool's destruction may use — the lost-exception handler (a dropped
    // job's future reported when its last handle dies), the service registry of
    // waiter_service — must be destroyed after the pool: construct them before it is
    // complete, so that they are destroyed after it.
    handlers();
    detail::waiter_service::of(pool);
  }

  ~builtin_pool() {
    asio::thread_pool* self = &pool;
    default_pool.compare_exchange_strong(self, nullptr, std::memory_order_acq_rel);
    builtin_pool_gone.store(true, std::memory_order_release);
    // ~thread_pool: stop() (queued jobs never start), join() (running ones finish), then the
    // shutdown of its services destroys the queued jobs, failing their futures.
  }
};

} // namespace

asio::thread_pool& default_thread_pool() {
  // acquire: an installed pool is fully constructed (pairs with the release stores).
  if (asio::thread_pool* p = default_pool.load(std::memory_order_acquire)) [[likely]]
    return *p;
  if (builtin_pool_gone.load(std::memory_order_acquire))
    detail::throw_invalid_state("asio_futures::default_thread_pool: the built-in pool was "
                                "destroyed at exit");
  static builtin_pool builtin; // thread-safe one-time construction
  asio::thread_pool* expected = nullptr;
  // release on success: publishes the constructed pool; acquire on failure: another thread
  // installed a pool meanwhile, use it.
  if (default_pool.compare_exchange_strong(expected, &builtin.pool, std::memory_order_acq_rel,
                                           std::memory_order_acquire))
    return builtin.pool;
  return *expected;
}

void set_default_thread_pool(asio::thread_pool& pool) {
  // release: pairs with the acquire in default_thread_pool().
  default_pool.store(&pool, std::memory_order_release);
}

} // namespace asio_futures
