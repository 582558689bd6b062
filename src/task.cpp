//
// src/task.cpp
//
// Non-template parts of tasks: cancel bookkeeping, names, the per-context task registry,
// all_tasks() and current_task().
//
#include <asio_futures/task.hpp>
#include <asio_futures/task_group.hpp>

#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/system/system_error.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace asio_futures {
namespace detail {

namespace {
thread_local const std::string* tls_cancel_message = nullptr;
thread_local task_gate::position tls_position;

/// Under the owner lock of t's gate, t published: its state is alive and referenced (see
/// task_core::finished), so the handle may take a reference.
task_info info_of(task_core& t) {
  return task_info{t.name(), t.state().done(), t.cancelling(), task_handle(t)};
}
} // namespace

const std::string* current_cancel_message() noexcept {
  return tls_cancel_message;
}

namespace {
std::atomic<std::uint64_t> task_counter{0};
} // namespace

task_core::task_core(state_base& state, std::string name)
    : state_(state), gate_(task_gate::acquire()), gen_(gate_->generation()) {
  if (name.empty()) {
    // relaxed: only uniqueness matters. The string itself is built lazily.
    number_ = task_counter.fetch_add(1, std::memory_order_relaxed) + 1;
  } else {
    try {
      names_.push_front(std::move(name));
    } catch (...) { // bad_alloc: the destructor will not run, give the gate back
      gate_->retire();
      throw;
    }
    name_.store(&names_.front(), std::memory_order_release);
  }
  gate_->publish_owner(this); // last: all_tasks() may read the task from now on
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
  gate_->retire();
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
  {
    std::lock_guard guard(mutex_);
    message_ = std::move(msg);
  }
  // release: the drive() coroutine's acquire load that sees the count sees the message.
  cancelling_.fetch_add(1, std::memory_order_acq_rel);
  if (running_here()) {
    // From inside the task. Alone in the gate, this is a step of the coroutine (or a function
    // of the task while the coroutine is suspended): emit now, and Asio's sticky state makes
    // the coroutine's next co_await abort. Otherwise the last reader out emits.
    if (gate_->try_write_as_sole_reader()) {
      {
        const writing_frame frame(gate_);
        emit();
      }
      gate_->end_sole_write();
    } else if (gate_->defer()) {
      state_.add_ref(); // held by the pending mark until the emission
    }
    return true;
  }
  // From outside: the emission runs on the task's executor. The function owns a reference
  // to the state, so it is also dropped if it is destroyed unrun (the context shut down
  // with the emission still queued), or handed over to a pending mark.
  struct emitter {
    task_core* core;
    explicit emitter(task_core* c) noexcept : core(c) { core->state_.add_ref(); }
    emitter(emitter&& o) noexcept : core(std::exchange(o.core, nullptr)) {}
    emitter& operator=(emitter&&) = delete;
    ~emitter() {
      if (core)
        core->state_.release_hooked();
    }
    void operator()() {
      if (core->emit_or_defer())
        core = nullptr; // the pending mark holds the reference now
    }
  };
  try {
    asio::post(state_.executor(), emitter(this));
  } catch (...) { // the emission could not be scheduled: the request did not happen
    cancelling_.fetch_sub(1, std::memory_order_acq_rel);
    throw;
  }
  return true;
}

std::string task_core::message() const {
  std::lock_guard guard(mutex_);
  return message_;
}

void task_core::emit() noexcept {
  if (state_.done() || !body_started_)
    return;
  std::string msg;
  try {
    msg = message();
  } catch (...) { // bad_alloc copying the message: emit without it
  }
  const std::string* previous = std::exchange(tls_cancel_message, &msg);
  try {
    signal_.emit(asio::cancellation_type::terminal);
  } catch (...) {
    // A cancellation handler failed to schedule its completion (bad_alloc, or an executor
    // that throws). Nothing can be handed the error here; the operation then completes on
    // its own, and the sticky cancellation state still aborts the coroutine's next co_await.
  }
  tls_cancel_message = previous;
}

bool task_core::emit_or_defer() noexcept {
  switch (gate_->write_or_defer()) {
  case task_gate::write_result::wrote:
    write();
    return false;
  case task_gate::write_result::deferred:
    return true;
  case task_gate::write_result::already_pending:
    break;
  }
  return false;
}

void task_core::write() noexcept {
  // As the writer: emit, then once more for each request marked pending meanwhile (each
  // mark holds a reference, dropped after its emission; ours keeps the state alive). The
  // calling thread is inside this task meanwhile, whatever it was inside before (it may be a
  // reader of an older generation of the gate, leaving last): an emission dispatching to the
  // task's executor then runs here, nested.
  const task_gate::position previous = task_gate::exchange_current({gate_, gen_});
  {
    const writing_frame frame(gate_);
    emit();
    while (!gate_->try_end_write()) {
      emit();
      state_.release_hooked();
    }
  }
  task_gate::exchange_current(previous);
}

void task_core::perform_pending() noexcept {
  // The pending mark's reference keeps the state alive through the emission; it is dropped
  // last, after the writer role is left (dropping it may destroy the task and retire the
  // gate).
  write();
  state_.release_hooked();
}

// --- the gate ---------------------------------------------------------------------------------
//
// Orders: a reader's leave() releases what its step did (slot handlers installed or cleared);
// the writer acquires it when it takes the gate, and releases the emission's effects when it
// leaves, which the next reader's enter() acquires. So steps and emissions are totally
// ordered, as on a strand.

namespace {
thread_local writing_frame* tls_writing = nullptr;
} // namespace

writing_frame::writing_frame(task_gate* g) noexcept
    : gate_(g), previous_(std::exchange(tls_writing, this)) {}

writing_frame::~writing_frame() {
  tls_writing = previous_;
}

bool writing_frame::writing(const task_gate* g) noexcept {
  for (const writing_frame* f = tls_writing; f; f = f->previous_)
    if (f->gate_ == g)
      return true;
  return false;
}

task_gate::position task_gate::current() noexcept {
  return tls_position;
}

task_gate::position task_gate::exchange_current(position p) noexcept {
  return std::exchange(tls_position, p);
}

task_gate::entry task_gate::enter(gate_gen gen) noexcept {
  std::uint64_t w = word_.load(std::memory_order_relaxed);
  for (;;) {
    if (gen_of(w) != gen || (w & closed_bit))
      return entry::stale; // the task is gone
    if (w & writer_bit) {
      if (writing_frame::writing(this))
        return entry::nested; // our own emission dispatching back into the task
      // An emission is running on another thread (it only calls cancellation handlers):
      // wait for its end.
      std::this_thread::yield();
      w = word_.load(std::memory_order_relaxed);
      continue;
    }
    // acquire: see the effects of the last emission.
    if (word_.compare_exchange_weak(w, w + one_reader, std::memory_order_acquire,
                                    std::memory_order_relaxed))
      return entry::entered;
  }
}

bool task_gate::try_write_as_sole_reader() noexcept {
  std::uint64_t w = word_.load(std::memory_order_relaxed);
  for (;;) {
    if ((w & (count_mask | writer_bit | pending_bit)) != one_reader)
      return false;
    // acquire: see what readers that left before us did.
    if (word_.compare_exchange_weak(w, w | writer_bit, std::memory_order_acquire,
                                    std::memory_order_relaxed))
      return true;
  }
}

void task_gate::end_sole_write() noexcept {
  // release: the emission's effects happen before the next reader's step. A pending mark
  // left meanwhile is performed by our own leave(): we are still the (last) reader.
  word_.fetch_and(~writer_bit, std::memory_order_release);
}

void task_gate::leave() noexcept {
  std::uint64_t w = word_.load(std::memory_order_relaxed);
  for (;;) {
    if ((w & count_mask) == one_reader && (w & pending_bit)) {
      // The last reader out with an emission pending: become the writer and perform it.
      // acquire: see the effects of the readers that left before us.
      if (word_.compare_exchange_weak(w, (w & ~(count_mask | pending_bit)) | writer_bit,
                                      std::memory_order_acq_rel, std::memory_order_relaxed)) {
        // The pending mark holds a reference to the owner's state: the owner is alive.
        owner_.load(std::memory_order_acquire)->perform_pending();
        return;
      }
      continue;
    }
    // release: our step's effects happen before a later emission.
    if (word_.compare_exchange_weak(w, w - one_reader, std::memory_order_release,
                                    std::memory_order_relaxed))
      return;
  }
}

task_gate::write_result task_gate::write_or_defer() noexcept {
  std::uint64_t w = word_.load(std::memory_order_relaxed);
  for (;;) {
    if ((w & (count_mask | writer_bit)) == 0) {
      // Free: take it as the writer. acquire: see the effects of the steps before.
      if (word_.compare_exchange_weak(w, w | writer_bit, std::memory_order_acquire,
                                      std::memory_order_relaxed))
        return write_result::wrote;
      continue;
    }
    if (w & pending_bit)
      return write_result::already_pending;
    // Readers inside, or another emission running: leave the mark. release: our message and
    // count are visible to whoever performs it.
    if (word_.compare_exchange_weak(w, w | pending_bit, std::memory_order_acq_rel,
                                    std::memory_order_relaxed))
      return write_result::deferred;
  }
}

bool task_gate::defer() noexcept {
  // acq_rel: pairs with the leave() that sees the mark.
  return !(word_.fetch_or(pending_bit, std::memory_order_acq_rel) & pending_bit);
}

bool task_gate::try_end_write() noexcept {
  std::uint64_t w = word_.load(std::memory_order_relaxed);
  for (;;) {
    // Readers spin while the writer bit is set, so only a pending mark can have appeared.
    if (w & pending_bit) {
      if (word_.compare_exchange_weak(w, w & ~pending_bit, std::memory_order_acquire,
                                      std::memory_order_relaxed))
        return false;
      continue;
    }
    // release: the emission's effects happen before the next reader's step.
    if (word_.compare_exchange_weak(w, w & ~writer_bit, std::memory_order_release,
                                    std::memory_order_relaxed))
      return true;
  }
}

bool task_gate::first_submission(gate_gen gen) noexcept {
  std::uint64_t w = word_.load(std::memory_order_relaxed);
  for (;;) {
    if ((w & started_bit) || gen_of(w) != gen)
      return false;
    // relaxed: the first submission happens in create_task, before the task is shared.
    if (word_.compare_exchange_weak(w, w | started_bit, std::memory_order_relaxed))
      return true;
  }
}

template <class F> void task_gate::update_unlocked(F next) noexcept {
  std::uint64_t w = word_.load(std::memory_order_relaxed);
  for (;;) {
    if (w & owner_lock_bit) {
      std::this_thread::yield();
      w = word_.load(std::memory_order_relaxed);
      continue;
    }
    // acquire: whoever held the owner lock is done with the owner.
    if (word_.compare_exchange_weak(w, next(w), std::memory_order_acq_rel,
                                    std::memory_order_relaxed))
      return;
  }
}

void task_gate::lock_owner() noexcept {
  update_unlocked([](std::uint64_t w) { return w | owner_lock_bit; });
}

void task_gate::unlock_owner() noexcept {
  word_.fetch_and(~owner_lock_bit, std::memory_order_release);
}

std::optional<task_info> task_gate::owner_info(gate_gen gen) noexcept {
  std::optional<task_info> info;
  lock_owner();
  if (gen_of(word_.load(std::memory_order_relaxed)) == gen &&
      listed_.load(std::memory_order_relaxed)) {
    if (task_core* o = owner_.load(std::memory_order_acquire)) {
      try {
        info = info_of(*o);
      } catch (...) { // bad_alloc copying the name: report no task rather than terminate
      }
    }
  }
  unlock_owner();
  return info;
}

void task_gate::collect_owner(asio::execution_context& ctx, std::vector<task_info>& out) {
  lock_owner();
  try {
    task_core* o = owner_.load(std::memory_order_acquire);
    // A done task is skipped before its executor is asked for its context: the context of a
    // task that ended with it may be gone.
    if (o && listed_.load(std::memory_order_relaxed) && !o->state().done() &&
        &asio::query(o->state().executor(), asio::execution::context) == &ctx)
      out.push_back(info_of(*o));
  } catch (...) {
    unlock_owner();
    throw;
  }
  unlock_owner();
}

/// gate_ref keeps 48 bits of a gate's address; fail loudly on a platform where that would
/// not do (none of x86-64 and AArch64 Linux's user-space addresses need more).
static task_gate* check_address(task_gate* first, std::size_t n) {
  if (reinterpret_cast<std::uintptr_t>(first + n) >> 48)
    throw std::runtime_error("asio_futures: task gate allocated beyond 48-bit addresses");
  return first;
}

/// The pool of gates: a per-thread cache in front of a global free list. Gates are
/// allocated in blocks and never freed (see task_gate).
struct gate_pool {
  static constexpr std::size_t block = 64;
  static constexpr std::size_t cache_max = 256;

  struct global_list {
    std::mutex mutex;
    task_gate* head = nullptr;
    // Every gate ever made, for all_tasks(): (first, count) of each allocation.
    std::vector<std::pair<task_gate*, std::size_t>> blocks;
  };
  static global_list& global() {
    static global_list* g = new global_list; // never destroyed: gates outlive statics
    return *g;
  }

  struct cache {
    task_gate* head = nullptr;
    std::size_t size = 0;
    ~cache() {
      give_back(size);
      dead = true;
    }

    void give_back(std::size_t n) noexcept {
      if (n == 0)
        return;
      task_gate* first = head;
      task_gate* last = head;
      for (std::size_t i = 1; i < n; ++i)
        last = last->next_free_;
      head = last->next_free_;
      size -= n;
      global_list& g = global();
      std::lock_guard guard(g.mutex);
      last->next_free_ = g.head;
      g.head = first;
    }

    void refill() {
      global_list& g = global();
      {
        std::lock_guard guard(g.mutex);
        while (g.head && size < block) {
          task_gate* t = g.head;
          g.head = t->next_free_;
          t->next_free_ = head;
          head = t;
          ++size;
        }
      }
      if (size == 0) {
        std::unique_ptr<task_gate[]> made(new task_gate[block]);
        task_gate* fresh = check_address(made.get(), block);
        {
          std::lock_guard guard(g.mutex);
          g.blocks.emplace_back(fresh, block); // bad_alloc: `made` frees the block
        }
        made.release(); // recorded: never freed (see task_gate)
        for (std::size_t i = 0; i < block; ++i) {
          fresh[i].next_free_ = head;
          head = &fresh[i];
        }
        size = block;
      }
    }
  };
  static thread_local cache local;
  // Set once this thread's cache is destroyed (thread exit): later retires and acquires on
  // the thread (from other thread_local or static destructors) use the global list.
  static thread_local bool dead;

  static task_gate* take() {
    if (dead) {
      {
        global_list& g = global();
        std::lock_guard guard(g.mutex);
        if (task_gate* t = g.head) {
          g.head = t->next_free_;
          return t;
        }
      }
      std::unique_ptr<task_gate> made(new task_gate); // pooled like the others once retired
      task_gate* lone = check_address(made.get(), 1);
      global_list& g = global();
      std::lock_guard guard(g.mutex);
      g.blocks.emplace_back(lone, 1); // bad_alloc: `made` frees it
      return made.release();
    }
    cache& c = local;
    if (!c.head)
      c.refill();
    task_gate* g = c.head;
    c.head = g->next_free_;
    --c.size;
    return g;
  }

  static void put(task_gate* t) noexcept {
    if (dead) {
      global_list& g = global();
      std::lock_guard guard(g.mutex);
      t->next_free_ = g.head;
      g.head = t;
      return;
    }
    cache& c = local;
    t->next_free_ = c.head;
    c.head = t;
    if (++c.size > cache_max)
      c.give_back(c.size / 2);
  }
};

thread_local gate_pool::cache gate_pool::local;

void task_gate::for_each_gate(const std::function<void(task_gate&)>& f) {
  std::vector<std::pair<task_gate*, std::size_t>> blocks;
  {
    gate_pool::global_list& g = gate_pool::global();
    std::lock_guard guard(g.mutex);
    blocks = g.blocks;
  }
  for (const auto& [first, count] : blocks)
    for (std::size_t i = 0; i < count; ++i)
      f(first[i]);
}
thread_local bool gate_pool::dead = false;

task_gate* task_gate::acquire() {
  task_gate* g = gate_pool::take();
  g->next_free_ = nullptr;
  return g;
}

void task_gate::unpublish_owner() noexcept {
  lock_owner();
  listed_.store(false, std::memory_order_relaxed);
  unlock_owner();
}

void task_gate::publish_owner(task_core* owner) noexcept {
  // release: all_tasks() and current_task() load it with acquire and then read the owner,
  // which is fully constructed by now. No lock needed: readers take the owner lock only to
  // keep retire() from running under them.
  listed_.store(true, std::memory_order_relaxed);
  owner_.store(owner, std::memory_order_release);
}

void task_gate::retire() noexcept {
  // A new generation: executors of the old one no longer enter, and owner_info() no longer
  // reads the owner (the CAS waits for the owner lock to be free). Readers of the old
  // generation may still be inside; they leave normally. No emission can be pending or
  // running: each holds a reference to the owner's state, which is being destroyed.
  lock_owner();
  owner_.store(nullptr, std::memory_order_relaxed);
  listed_.store(false, std::memory_order_relaxed);
  // One CAS ends the generation and gives the owner lock back. The last generation is not
  // followed by a wrap-around to 0: the gate closes and leaves the pool for good.
  std::uint64_t w = word_.load(std::memory_order_relaxed);
  const bool last = gen_of(w) == gate_gen_mask;
  while (!word_.compare_exchange_weak(w,
                                      last ? (w | closed_bit) & ~owner_lock_bit
                                           : (w + one_gen) & ~(started_bit | owner_lock_bit),
                                      std::memory_order_release, std::memory_order_relaxed))
    ;
  if (!last)
    gate_pool::put(this);
}

void task_gate::skip_generations_for_testing(gate_gen n) noexcept {
  task_gate* g = gate_pool::take();
  std::uint64_t w = g->word_.load(std::memory_order_relaxed);
  const gate_gen to = gate_gen_mask - gen_of(w) < n ? gate_gen_mask : gen_of(w) + n;
  g->word_.store((w & (one_gen - 1)) | (std::uint64_t{to} << gen_shift), std::memory_order_relaxed);
  gate_pool::put(g);
}

void task_core::finished() noexcept {
  signal_.slot().clear();
  gate_->unpublish_owner();
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

// Both fit any_io_executor's small-object buffer (24 bytes): no allocation and no reference
// count per copy of a task's executor.
static_assert(sizeof(task_executor<asio::io_context::executor_type>) <= 24);
static_assert(sizeof(task_executor<asio::thread_pool::executor_type>) <= 24);

namespace {

/// What a new task's executor wraps: the executor it was given, without a task executor
/// around it (a task created with `co_await this_coro::executor` must not run inside its
/// parent's gate too) and without outstanding-work tracking (co_spawn tracks work itself),
/// so that io_context and thread_pool executors are recognised and not type-erased twice.
asio::any_io_executor inner_of(const asio::any_io_executor& ex) {
  using ioc_ex = asio::io_context::executor_type;
  using pool_ex = asio::thread_pool::executor_type;
  if (const auto* t = target_fast<task_executor<ioc_ex>>(ex))
    return asio::any_io_executor(t->get_inner_executor());
  if (const auto* t = target_fast<task_executor<pool_ex>>(ex))
    return asio::any_io_executor(t->get_inner_executor());
  if (const auto* t = target_fast<task_executor<asio::any_io_executor>>(ex))
    return inner_of(t->get_inner_executor());
  using asio::execution::outstanding_work;
  using ioc_tracked =
      std::decay_t<decltype(asio::require(std::declval<ioc_ex>(), outstanding_work.tracked))>;
  using pool_tracked =
      std::decay_t<decltype(asio::require(std::declval<pool_ex>(), outstanding_work.tracked))>;
  if (const auto* t = target_fast<ioc_tracked>(ex))
    return asio::any_io_executor(asio::require(*t, outstanding_work.untracked));
  if (const auto* t = target_fast<pool_tracked>(ex))
    return asio::any_io_executor(asio::require(*t, outstanding_work.untracked));
  return ex;
}

} // namespace

asio::any_io_executor make_task_executor(const asio::any_io_executor& given,
                                         const task_core& core) {
  const gate_ref g(core.gate(), core.generation());
  // The common case first: each failed target<>() check is a type_info comparison, which may
  // compare the names character by character.
  if (const auto* io = target_fast<asio::io_context::executor_type>(given))
    return asio::any_io_executor(task_executor<asio::io_context::executor_type>(*io, g));
  const asio::any_io_executor ex = inner_of(given);
  if (const auto* io = ex.target<asio::io_context::executor_type>())
    return asio::any_io_executor(task_executor<asio::io_context::executor_type>(*io, g));
  if (const auto* pool = ex.target<asio::thread_pool::executor_type>())
    return asio::any_io_executor(task_executor<asio::thread_pool::executor_type>(*pool, g));
  return asio::any_io_executor(task_executor<asio::any_io_executor>(ex, g));
}

} // namespace detail

// --- task_handle --------------------------------------------------------------------------------

task_handle::task_handle(detail::task_core& core) noexcept : core_(&core) {
  core.state().add_ref();
}

task_handle::task_handle(const task_handle& other) noexcept : core_(other.core_) {
  if (core_)
    core_->state().add_ref();
}

task_handle::~task_handle() {
  if (core_)
    core_->state().release_hooked();
}

detail::task_core& task_handle::checked() const {
  if (!core_)
    detail::throw_invalid_state("asio_futures::task_handle: empty handle");
  return *core_;
}

std::string task_handle::name() const {
  return checked().name();
}

bool task_handle::done() const {
  return checked().state().done();
}

bool task_handle::cancelled() const {
  const detail::state_base& s = checked().state();
  return s.done() && s.get_outcome() == detail::outcome::cancelled;
}

int task_handle::cancelling() const {
  return checked().cancelling();
}

bool task_handle::cancel(std::string msg) const {
  return checked().state().cancel(std::move(msg));
}

std::vector<task_info> all_tasks(asio::execution_context& ctx) {
  std::vector<task_info> out;
  detail::task_gate::for_each_gate([&](detail::task_gate& g) { g.collect_owner(ctx, out); });
  return out;
}

std::optional<task_info> current_task() {
  const detail::task_gate::position p = detail::task_gate::current();
  if (!p.gate)
    return std::nullopt;
  return p.gate->owner_info(p.gen);
}

} // namespace asio_futures

// --- task_group ------------------------------------------------------------------------------

namespace asio_futures::detail {

bool is_cancellation(const std::exception_ptr& e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const cancelled_error&) {
    return true;
  } catch (...) {
    return false;
  }
}

group_state::group_state(asio::any_io_executor ex) : ex_(std::move(ex)), join_(ex_) {}

std::size_t group_state::size() const {
  std::lock_guard guard(mutex_);
  return children_.size();
}

future<void> group_state::start_join() {
  {
    std::lock_guard guard(mutex_);
    if (join_waited_ && !joined_)
      throw_invalid_state("task_group::async_join: a join is already pending");
    join_waited_ = true;
    join_started_ = true;
  }
  finish_if_done();
  return join_;
}

void group_state::join_start_failed() noexcept {
  std::lock_guard guard(mutex_);
  join_waited_ = false;
}

std::vector<std::shared_ptr<group_child>> group_state::live_children_locked() {
  return {children_.begin(), children_.end()};
}

void group_state::cancel_children(const std::vector<std::shared_ptr<group_child>>& children,
                                  const char* msg) noexcept {
  // Outside the lock: a cancel from inside a child emits at once, which runs cancellation
  // handlers.
  for (const auto& c : children)
    c->cancel(msg);
}

void group_state::cancel_from_joiner() noexcept {
  std::vector<std::shared_ptr<group_child>> to_cancel;
  {
    std::lock_guard guard(mutex_);
    if (joined_)
      return;
    joiner_cancelled_ = true;
    aborting_ = true;
    if (const std::string* msg = current_cancel_message()) {
      try {
        joiner_message_.emplace(*msg);
      } catch (...) { // bad_alloc: the join then ends with its own message
      }
    }
    try {
      to_cancel = live_children_locked();
    } catch (...) { // bad_alloc: nothing better to do than cancel them under the lock
      for (auto& c : children_)
        c->cancel("task_group: join cancelled");
    }
  }
  cancel_children(to_cancel, "task_group: join cancelled");
}

void group_state::abandon() noexcept {
  std::vector<std::shared_ptr<group_child>> to_cancel;
  std::exception_ptr done;
  {
    std::lock_guard guard(mutex_);
    // Whatever the children end with resolves the join future, which nobody waits for: an
    // exception_group there is reported as lost when the group's state goes away.
    join_started_ = true;
    aborting_ = true;
    try {
      to_cancel = live_children_locked();
    } catch (...) {
      for (auto& c : children_)
        c->cancel("task_group: destroyed");
    }
  }
  cancel_children(to_cancel, "task_group: destroyed");
  finish_if_done();
}

bool is_cancellation_or_abort(const std::exception_ptr& e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const cancelled_error&) {
    return true;
  } catch (const boost::system::system_error& x) {
    return x.code() == asio::error::operation_aborted;
  } catch (...) {
    return false;
  }
}

bool group_state::stopped_by_cancel() const {
  std::lock_guard guard(mutex_);
  return stopped_by_cancel_;
}

void group_state::stop(const std::string& msg, bool by_cancel) noexcept {
  std::vector<std::shared_ptr<group_child>> to_cancel;
  {
    std::lock_guard guard(mutex_);
    if (joined_ || aborting_)
      return; // already stopping: every child has its request
    aborting_ = true;
    stopped_by_cancel_ = by_cancel;
    try {
      to_cancel = live_children_locked();
    } catch (...) {
      for (auto& c : children_)
        c->cancel(msg.c_str());
    }
  }
  cancel_children(to_cancel, msg.c_str());
}

void group_state::child_done(child_list::iterator it, std::exception_ptr failure) noexcept {
  std::vector<std::shared_ptr<group_child>> to_cancel;
  std::shared_ptr<group_child> gone; // destroyed outside the lock
  {
    std::lock_guard guard(mutex_);
    gone = std::move(*it);
    children_.erase(it);
    if (failure) {
      const bool first = failures_.empty() && !aborting_;
      try {
        failures_.push_back(std::move(failure));
      } catch (...) { // bad_alloc: the group still aborts
      }
      if (first) {
        aborting_ = true;
        try {
          to_cancel = live_children_locked();
        } catch (...) {
          for (auto& c : children_)
            c->cancel("task_group: a sibling failed");
        }
      }
    }
  }
  cancel_children(to_cancel, "task_group: a sibling failed");
  finish_if_done();
}

void group_state::finish_if_done() noexcept {
  std::exception_ptr outcome;
  bool cancelled = false;
  std::string message;
  {
    std::lock_guard guard(mutex_);
    if (!join_started_ || joined_ || !children_.empty())
      return;
    joined_ = true;
    if (joiner_message_) {
      message.swap(*joiner_message_);
    } else {
      try {
        message = "task_group: join cancelled";
      } catch (...) { // bad_alloc: cancelled without a message
      }
    }
    try {
      if (!failures_.empty())
        outcome = std::make_exception_ptr(exception_group(failures_));
    } catch (...) {
      outcome = std::current_exception(); // bad_alloc building the group
    }
    cancelled = !outcome && joiner_cancelled_;
  }
  // Outside the lock: resolving runs the join future's inline hooks (its waiters are posted).
  if (outcome)
    (void)join_.try_set_exception(std::move(outcome));
  else if (cancelled)
    (void)join_.cancel(std::move(message));
  else
    (void)join_.try_set_result();
}

} // namespace asio_futures::detail
