//
// asio_futures/detail/task_gate.hpp
//
// The gate that keeps a task's cancellation emissions apart from its coroutine's steps.
//
#ifndef ASIO_FUTURES_DETAIL_TASK_GATE_HPP
#define ASIO_FUTURES_DETAIL_TASK_GATE_HPP

#include <boost/asio/execution_context.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace asio_futures {
struct task_info;
} // namespace asio_futures

namespace asio_futures::detail {

class task_core;

/// A gate's generation: 22 bits, so that a gate pointer and its generation pack into one
/// word (task_executor then fits Asio's small-object buffer: no allocation, no reference
/// count). A generation never repeats: a gate whose last generation has ended is retired for
/// good instead of wrapping around (64 bytes kept per 4 194 304 tasks that used one gate), so
/// an executor kept from a finished task is never taken for a later task's.
using gate_gen = std::uint32_t;
inline constexpr gate_gen gate_gen_mask = (gate_gen{1} << 22) - 1;

/// A reader/writer gate in one atomic word, owned by one task at a time.
///
/// Every function run through a task's executor (every step of its coroutine, and anything
/// posted to `this_coro::executor`) is a *reader* for its duration; a cancellation emission
/// is the *writer*. The writer never waits: if readers are inside, it leaves a `pending`
/// mark and the last reader to leave performs the emission before it leaves. A reader
/// arriving while an emission runs spins until it ends (an emission only calls cancellation
/// handlers, which post their completions). Readers do not exclude each other.
///
/// Gates are type-stable: they come from a process-wide pool and are recycled, never freed,
/// so that a task's executor can be a plain value (no reference count to bump on each of the
/// many copies Asio makes of it) that stays safe to use after its task is gone. Each use of
/// a gate by a task is a *generation*; an executor remembers the generation it was made for,
/// and a function submitted through a stale executor runs outside any gate.
///
/// Lifetimes: the owner (a task_core) acquires the gate at construction and retires it in its
/// destructor. A pending emission holds a reference to its task's state, so the owner is
/// alive whenever a reader has to perform one.
class alignas(64) task_gate {
public:
  /// A gate from the pool, for a task under construction.
  static task_gate* acquire();
  /// Makes the (fully constructed) owner visible to all_tasks() and current_task().
  void publish_owner(task_core* owner) noexcept;
  /// Hides the owner from all_tasks() and current_task() (its task finished); waits out a
  /// reader holding the owner lock.
  void unpublish_owner() noexcept;

  /// Ends the current generation (called by the owner's destructor) and returns the gate to
  /// the pool — unless that was its last generation: then it is closed for good (its
  /// executors no longer enter) and never handed out again. Readers of the old generation
  /// still inside leave normally.
  void retire() noexcept;

  /// For tests: moves the generation of the gate the calling thread's next task will get
  /// forward by `n` (at most to the last one), as if `n` tasks had used it.
  static void skip_generations_for_testing(gate_gen n) noexcept;

  /// The current generation.
  gate_gen generation() const noexcept { return gen_of(word_.load(std::memory_order_relaxed)); }

  enum class entry {
    entered, ///< a reader now
    stale,   ///< `gen` is not current: the task is gone; run outside any gate
    nested,  ///< this thread is the gate's writer (an emission dispatching back into its own
             ///< task): run inside the emission, without entering
  };
  /// Enters as a reader if `gen` is still current.
  entry enter(gate_gen gen) noexcept;
  /// Leaves as a reader; the last reader out performs a pending emission first.
  void leave() noexcept;

  enum class write_result { wrote, deferred, already_pending };
  /// For an emission from outside (the caller keeps the owner alive): takes the gate as the
  /// writer if it is free (`wrote`), or marks the emission pending for the last reader
  /// (`deferred`: the caller hands a reference to the owner's state over to the mark), or
  /// finds one already pending.
  write_result write_or_defer() noexcept;
  /// From inside (a reader): marks an emission pending; true if the mark is new (the caller
  /// then hands a reference to the owner's state over to it).
  bool defer() noexcept;
  /// For a reader alone in the gate (a cancel from inside the task): takes the writer role
  /// too, so that no other reader enters while it emits; false if other readers are inside
  /// (then defer()). end_sole_write() gives the role back.
  bool try_write_as_sole_reader() noexcept;
  void end_sole_write() noexcept;
  /// Leaves the writer role and returns true, or, if an emission was marked pending
  /// meanwhile, clears the mark and returns false (the writer emits again).
  bool try_end_write() noexcept;

  /// True exactly once per generation: for the first function submitted through the task's
  /// executor (the coroutine's first step, which is posted, never run inline).
  bool first_submission(gate_gen gen) noexcept;

  /// The owner's info, if this generation is `gen` (current_task()).
  std::optional<task_info> owner_info(gate_gen gen) noexcept;

  /// Appends the owner's info to `out` if it is an unfinished task of `ctx` (all_tasks()).
  void collect_owner(boost::asio::execution_context& ctx, std::vector<task_info>& out);

  /// Calls `f` for every gate ever made (all_tasks() scans them: no registry to maintain
  /// on the hot path of task creation).
  static void for_each_gate(const std::function<void(task_gate&)>& f);

  /// The gate and generation the calling thread is inside, if any.
  struct position {
    task_gate* gate = nullptr;
    gate_gen gen = 0;
  };
  static position current() noexcept;
  static position exchange_current(position p) noexcept;

private:
  task_gate() = default;
  friend struct gate_pool;

  // word_: generation (bits 42..63: the 22 bits of gate_gen) | readers (bits 5..41) | flags.
  // closed_bit: the last generation has ended; nothing enters any more.
  static constexpr std::uint64_t writer_bit = 1;
  static constexpr std::uint64_t pending_bit = 2;
  static constexpr std::uint64_t started_bit = 4;
  static constexpr std::uint64_t owner_lock_bit = 8;
  static constexpr std::uint64_t closed_bit = 16;
  static constexpr std::uint64_t one_reader = 32;
  static constexpr int gen_shift = 42;
  static constexpr std::uint64_t one_gen = std::uint64_t{1} << gen_shift;
  static constexpr std::uint64_t count_mask = (one_gen - 1) & ~(one_reader - 1);
  static gate_gen gen_of(std::uint64_t w) noexcept { return static_cast<gate_gen>(w >> gen_shift); }
  static_assert(gate_gen_mask == (~std::uint64_t{0} >> gen_shift),
                "the word holds exactly the generations a gate_ref can name");

  /// CAS `word_` to `next(word_)` once the owner lock is free.
  template <class F> void update_unlocked(F next) noexcept;
  void lock_owner() noexcept;
  void unlock_owner() noexcept;

  std::atomic<std::uint64_t> word_{0};
  // Written under owner_lock_bit; atomic so that the last reader can read it to perform a
  // pending emission (whose reference keeps the owner alive) without the lock.
  std::atomic<task_core*> owner_{nullptr};
  // Whether all_tasks() and current_task() show the owner: from publish_owner() until
  // unpublish_owner() (its task finished). Read under owner_lock_bit; cleared under it (so
  // that no reader is between its check and taking a reference); set without it, before
  // owner_ is published. owner_ itself stays set until retire(): a pending emission may
  // still be performed after the task finished.
  std::atomic<bool> listed_{false};
  task_gate* next_free_ = nullptr; // pool link
};

/// Marks the calling thread as the writer of a gate for its lifetime (an emission), so that
/// an emission dispatching back into its own task runs nested instead of waiting for itself.
class writing_frame {
public:
  explicit writing_frame(task_gate* g) noexcept;
  writing_frame(const writing_frame&) = delete;
  writing_frame& operator=(const writing_frame&) = delete;
  ~writing_frame();

  /// Whether the calling thread is the writer of `g`.
  static bool writing(const task_gate* g) noexcept;

private:
  task_gate* gate_;
  writing_frame* previous_;
};

/// A gate and a generation in one word: the gate's address uses bits 6..47 (gates are
/// 64-byte aligned; user-space addresses on x86-64 and AArch64 Linux stay below 2^48), the
/// generation the 6 low and the 16 high bits.
class gate_ref {
public:
  gate_ref(task_gate* g, gate_gen gen) noexcept
      : bits_(reinterpret_cast<std::uintptr_t>(g) | (std::uintptr_t{gen} & 0x3f) |
              (std::uintptr_t{gen >> 6} << 48)) {}
  task_gate* gate() const noexcept { return reinterpret_cast<task_gate*>(bits_ & address_mask); }
  gate_gen gen() const noexcept {
    return static_cast<gate_gen>(((bits_ >> 48) << 6) | (bits_ & 0x3f));
  }
  friend bool operator==(gate_ref a, gate_ref b) noexcept { return a.bits_ == b.bits_; }

private:
  static_assert(sizeof(std::uintptr_t) == 8, "gate_ref packs a pointer and 22 bits");
  static constexpr std::uintptr_t address_mask =
      ((std::uintptr_t{1} << 48) - 1) & ~std::uintptr_t{0x3f};
  std::uintptr_t bits_;
};

/// A reader's stay in a gate, as the calling thread's current position. A stale generation
/// (the task is gone) is not entered: the function then runs outside any gate.
class gate_section {
public:
  gate_section(task_gate* g, gate_gen gen) noexcept : gate_(g), entry_(g->enter(gen)) {
    if (entry_ != task_gate::entry::stale)
      previous_ = task_gate::exchange_current({g, gen});
  }
  gate_section(const gate_section&) = delete;
  gate_section& operator=(const gate_section&) = delete;
  ~gate_section() {
    if (entry_ == task_gate::entry::entered)
      gate_->leave();
    if (entry_ != task_gate::entry::stale)
      task_gate::exchange_current(previous_);
  }

private:
  task_gate* gate_;
  task_gate::position previous_;
  task_gate::entry entry_;
};

} // namespace asio_futures::detail

#endif // ASIO_FUTURES_DETAIL_TASK_GATE_HPP
