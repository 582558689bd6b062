//
// src/future.cpp
//
// Non-template parts of the core: the waiter service, lost-exception reporting, blocking-wait
// deadlock detection and the error helpers.
//
#include <asio_futures/detail/task_state.hpp>
#include <asio_futures/future.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/io_context_strand.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <cstdio>
#include <mutex>

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
using ioc_ex_tracked = asio::io_context::basic_executor_type<std::allocator<void>, 4>;
using pool_ex = asio::thread_pool::executor_type;
using pool_ex_tracked = asio::thread_pool::basic_executor_type<std::allocator<void>, 4>;

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

waiter_service::waiter_service(asio::execution_context& ctx)
    : asio::execution_context::service(ctx) {}

waiter_service::~waiter_service() {
  // release: pairs with the acquire in of(); a thread that sees the new epoch refreshes.
  epoch_.fetch_add(1, std::memory_order_release);
}

waiter_service& waiter_service::lookup(asio::execution_context& ctx, std::uint64_t epoch) {
  waiter_service& s = asio::use_service<waiter_service>(ctx);
  cache_ = {&ctx, &s, epoch};
  return s;
}

void waiter_service::throw_closed() {
  throw invalid_state_error("asio_futures: the execution context has shut down");
}

void waiter_service::shutdown() {
  // Take every waiter still linked in its future: from then on it is ours, and we destroy it
  // without invoking it (its coroutine frame dies; nothing runs after the context died).
  // A waiter we cannot unlink is owned by a completer that is about to unregister it and
  // post it to this context, where Asio's scheduler destroys it in turn.
  wait_node* owned = nullptr; // chained through reg_next_ once unlinked from the registry
  lock();
  closed_.store(true, std::memory_order_release);
  for (wait_node* n = head_; n;) {
    wait_node* next = n->reg_next_;
    if (n->owner_->remove(n)) {
      unlink(n);
      n->reg_next_ = owned;
      owned = n;
    }
    n = next;
  }
  unlock();
  // Outside the lock: destroying a frame may drop futures, destroy states and start or
  // finish other waits on this service.
  while (owned) {
    wait_node* n = owned;
    owned = static_cast<wait_node*>(n->reg_next_);
    n->reg_next_ = nullptr;
    n->fn_(n, node_action::destroy, n->owner_);
  }
}

} // namespace detail
} // namespace asio_futures
