//
// src/task.cpp
//
// Non-template parts of tasks: cancel bookkeeping, names, the per-context task registry,
// all_tasks() and current_task().
//
#include <asio_futures/task.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>

namespace asio_futures {
namespace detail {

namespace {
thread_local const std::string* tls_cancel_message = nullptr;

task_info info_of(const task_core& t) {
  return task_info{t.name(), t.state().done(), t.cancelling()};
}
} // namespace

const std::string* current_cancel_message() noexcept {
  return tls_cancel_message;
}

namespace {
std::atomic<std::uint64_t> task_counter{0};
} // namespace

task_core::task_core(state_base& state, asio::any_io_executor strand, std::string name)
    : state_(state), strand_(std::move(strand)) {
  if (name.empty()) {
    // relaxed: only uniqueness matters. The string itself is built lazily.
    number_ = task_counter.fetch_add(1, std::memory_order_relaxed) + 1;
  } else {
    names_.push_front(std::move(name));
    name_.store(&names_.front(), std::memory_order_release);
  }
}

const std::string& task_core::default_name() const {
  std::lock_guard guard(mutex_);
  if (const std::string* n = name_.load(std::memory_order_acquire))
    return *n; // built (or renamed) meanwhile
  names_.push_front("Task-" + std::to_string(number_));
  name_.store(&names_.front(), std::memory_order_release);
  return names_.front();
}

task_core::~task_core() {
  if (svc_)
    svc_->remove_task(this);
}

void task_core::set_name(std::string name) {
  std::lock_guard guard(mutex_);
  names_.push_front(std::move(name));
  // release: the new string is fully built before a reader can see it.
  name_.store(&names_.front(), std::memory_order_release);
}

int task_core::uncancel() noexcept {
  int n = cancelling_.load(std::memory_order_acquire);
  while (n > 0 && !cancelling_.compare_exchange_weak(n, n - 1, std::memory_order_acq_rel))
    ;
  return n > 0 ? n - 1 : 0;
}

bool task_core::request_cancel(std::string&& msg) {
  if (state_.done())
    return false;
  asio::any_io_executor strand;
  {
    std::lock_guard guard(mutex_);
    message_ = std::move(msg);
    strand = strand_;
  }
  // release: the drive() coroutine's acquire load that sees the count sees the message.
  cancelling_.fetch_add(1, std::memory_order_acq_rel);
  if (!strand)
    return true; // the coroutine has just finished; nothing left to interrupt
  // Keep the state alive until the emit has run. Dispatched: on the strand it never runs
  // concurrently with a step of the coroutine; from inside the task itself it runs at once,
  // and Asio's sticky state makes the coroutine's next co_await abort (drive() resets it
  // once the body has returned).
  // The reference is owned by the function object, so it is also dropped if the function is
  // destroyed unrun (the context shut down with the emission still queued).
  struct emitter {
    task_core* core;
    explicit emitter(task_core* c) noexcept : core(c) { core->state_.add_ref(); }
    emitter(emitter&& o) noexcept : core(std::exchange(o.core, nullptr)) {}
    emitter& operator=(emitter&&) = delete;
    ~emitter() {
      if (core)
        core->state_.release_hooked();
    }
    void operator()() { core->emit(); }
  };
  asio::dispatch(strand, emitter(this));
  return true;
}

std::string task_core::message() const {
  std::lock_guard guard(mutex_);
  return message_;
}

void task_core::emit() noexcept {
  if (state_.done())
    return;
  const std::string msg = message();
  const std::string* previous = std::exchange(tls_cancel_message, &msg);
  signal_.emit(asio::cancellation_type::terminal);
  tls_cancel_message = previous;
}

void task_core::finished() noexcept {
  signal_.slot().clear();
  asio::any_io_executor strand;
  {
    std::lock_guard guard(mutex_);
    strand = std::move(strand_);
  }
  if (svc_)
    svc_->remove_task(this);
}

bool task_core::running_here() const noexcept {
  std::lock_guard guard(mutex_);
  return strand_ && running_in_this_thread(strand_, /*strict=*/true);
}

void task_core::register_with(waiter_service& svc) {
  svc.add_task(this);
}

bool is_task_cancellation(const std::exception_ptr& e, const task_core& core, std::string& msg) {
  try {
    std::rethrow_exception(e);
  } catch (const cancelled_error& c) {
    msg = c.message().empty() ? core.message() : c.message();
    return true;
  } catch (const boost::system::system_error& s) {
    if (s.code() == asio::error::operation_aborted && core.cancelling() > 0) {
      msg = core.message();
      return true;
    }
  } catch (...) {
  }
  return false;
}

asio::any_io_executor make_task_strand(const asio::any_io_executor& ex) {
  if (const auto* io = ex.target<asio::io_context::executor_type>())
    return asio::any_io_executor(asio::make_strand(*io));
  if (const auto* pool = ex.target<asio::thread_pool::executor_type>())
    return asio::any_io_executor(asio::make_strand(*pool));
  return asio::any_io_executor(asio::make_strand(ex));
}

// --- the registry in waiter_service -----------------------------------------------------------

void waiter_service::add_task(task_core* t) {
  std::lock_guard guard(tasks_mutex_);
  if (closed()) // raced with shutdown: the task is not listed (it ends when its frame dies)
    return;
  t->svc_ = this;
  t->reg_prev_ = nullptr;
  t->reg_next_ = tasks_head_;
  if (tasks_head_)
    tasks_head_->reg_prev_ = t;
  tasks_head_ = t;
}

void waiter_service::remove_task(task_core* t) noexcept {
  std::lock_guard guard(tasks_mutex_);
  if (t->svc_ != this)
    return;
  if (t->reg_prev_)
    t->reg_prev_->reg_next_ = t->reg_next_;
  else
    tasks_head_ = t->reg_next_;
  if (t->reg_next_)
    t->reg_next_->reg_prev_ = t->reg_prev_;
  t->svc_ = nullptr;
  t->reg_prev_ = t->reg_next_ = nullptr;
}

void waiter_service::detach_tasks() noexcept {
  std::lock_guard guard(tasks_mutex_);
  for (task_core* t = tasks_head_; t;) {
    task_core* next = t->reg_next_;
    t->svc_ = nullptr;
    t->reg_prev_ = t->reg_next_ = nullptr;
    t = next;
  }
  tasks_head_ = nullptr;
}

task_core* waiter_service::next_task(task_core* t) noexcept {
  return t->reg_next_;
}

} // namespace detail

std::vector<task_info> all_tasks(asio::execution_context& ctx) {
  std::vector<task_info> out;
  detail::waiter_service::of(ctx).for_each_task(
      [&](const detail::task_core& t) { out.push_back(detail::info_of(t)); });
  return out;
}

std::optional<task_info> current_task() {
  std::optional<task_info> found;
  detail::waiter_service::for_each_service([&](detail::waiter_service& s) {
    if (found)
      return;
    s.for_each_task([&](const detail::task_core& t) {
      if (!found && t.running_here())
        found = detail::info_of(t);
    });
  });
  return found;
}

} // namespace asio_futures
