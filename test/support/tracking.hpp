// Tracking helpers for the Asio association rules and for lifetime checks:
//  - inside_call / inside_call::active(): marks "we are inside the setter call now", so
//    a completion can tell whether it ran inline;
//  - tracking_executor<Executor>: forwards to an inner executor, counts executions,
//    records executions that ran inline (inside an inside_call scope) and thread ids;
//  - throwing_executor<Executor>: forwards like tracking_executor, but execute() throws
//    (a submission that fails: a full queue, an allocation failure in the executor);
//  - hooked_slot: a cancellation slot that runs a hook before installing a handler (the
//    hook may throw, as a failing allocation of the handler's storage would);
//  - tracking_allocator<T> / throwing_allocator<T>: count or refuse allocations
//    (bind them with asio::bind_allocator);
//  - counted / move_only: live-instance, copy and move counters;
//  - throwing_copy: a value whose copies throw when told to.
#ifndef ASIO_FUTURES_TEST_SUPPORT_TRACKING_HPP
#define ASIO_FUTURES_TEST_SUPPORT_TRACKING_HPP

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/require.hpp>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <set>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <utility>

namespace asio_futures_test {

namespace asio = boost::asio;

// ---------------------------------------------------------------------------------
// Inline detection.

/// RAII marker: while an instance lives on this thread, `inside_call::active()` is true.
/// Wrap a setter call (`set_result`, `cancel`, `add_done_callback`, …) in one; a
/// completion or callback that observes `active()` ran inline in that call.
class inside_call {
public:
  inside_call() noexcept { ++depth(); }
  ~inside_call() { --depth(); }
  inside_call(const inside_call&) = delete;
  inside_call& operator=(const inside_call&) = delete;
  static bool active() noexcept { return depth() > 0; }

private:
  static int& depth() noexcept {
    thread_local int d = 0;
    return d;
  }
};

// ---------------------------------------------------------------------------------
// Tracking executor.

/// Shared counters of a family of tracking executors (copies, require/prefer results).
struct executor_stats {
  std::atomic<std::size_t> executes{0};    ///< functions submitted via execute()
  std::atomic<std::size_t> runs{0};        ///< submitted functions that ran
  std::atomic<std::size_t> inline_runs{0}; ///< ... of which inside an inside_call
  std::mutex mutex;
  std::set<std::thread::id> threads; ///< threads the functions ran on

  std::size_t thread_count() {
    std::lock_guard<std::mutex> lock(mutex);
    return threads.size();
  }
};

/// The property forwarding shared by the test executor wrappers: `Wrapper<Inner>` is built
/// from an inner executor and a pointer to shared `State`. Every query goes to the inner
/// executor and require/prefer rewrap their result, so a wrapper converts to
/// `asio::any_io_executor` and works as a handler's associated executor (asio::bind_executor)
/// or as a future's executor. Wrappers add `execute`.
template <template <class> class Wrapper, class Executor, class State> class wrapping_executor {
public:
  using inner_executor_type = Executor;

  wrapping_executor(Executor inner, State& state) noexcept
      : inner_(std::move(inner)), state_(&state) {}

  const Executor& inner() const noexcept { return inner_; }

  template <class Property>
  requires asio::can_query<const Executor&, const Property&>::value decltype(auto)
  query(const Property& p) const {
    return asio::query(inner_, p);
  }

  template <class Property>
  requires asio::can_require<const Executor&, const Property&>::value auto
  require(const Property& p) const {
    using inner_t = std::decay_t<decltype(asio::require(inner_, p))>;
    return Wrapper<inner_t>(asio::require(inner_, p), *state_);
  }

  template <class Property>
  requires asio::can_prefer<const Executor&, const Property&>::value auto
  prefer(const Property& p) const {
    using inner_t = std::decay_t<decltype(asio::prefer(inner_, p))>;
    return Wrapper<inner_t>(asio::prefer(inner_, p), *state_);
  }

  friend bool operator==(const wrapping_executor& a, const wrapping_executor& b) noexcept {
    return a.inner_ == b.inner_ && a.state_ == b.state_;
  }
  friend bool operator!=(const wrapping_executor& a, const wrapping_executor& b) noexcept {
    return !(a == b);
  }

protected:
  Executor inner_;
  State* state_;
};

/// Wraps a standard (P0443-style) executor and counts what runs through it (see
/// wrapping_executor for the forwarding).
template <class Executor>
class tracking_executor : public wrapping_executor<tracking_executor, Executor, executor_stats> {
public:
  using wrapping_executor<tracking_executor, Executor, executor_stats>::wrapping_executor;

  executor_stats& stats() const noexcept { return *this->state_; }

  template <class F> void execute(F&& f) const {
    executor_stats* stats = this->state_;
    stats->executes.fetch_add(1, std::memory_order_relaxed);
    // A blocking.possibly inner executor may run the function right here; the wrapper
    // records that as an inline run if we are inside a marked setter call.
    this->inner_.execute([stats, fn = std::forward<F>(f)]() mutable {
      stats->runs.fetch_add(1, std::memory_order_relaxed);
      if (inside_call::active())
        stats->inline_runs.fetch_add(1, std::memory_order_relaxed);
      {
        std::lock_guard<std::mutex> lock(stats->mutex);
        stats->threads.insert(std::this_thread::get_id());
      }
      std::move(fn)();
    });
  }
};

template <class Executor>
tracking_executor(Executor, executor_stats&) -> tracking_executor<Executor>;

/// `tracking_executor` over `ex`, counting into `stats`.
template <class Executor>
tracking_executor<Executor> make_tracking_executor(Executor ex, executor_stats& stats) {
  return tracking_executor<Executor>(std::move(ex), stats);
}

/// What throwing_executor::execute() throws.
struct execute_error : std::runtime_error {
  execute_error() : std::runtime_error("throwing_executor: execute refused") {}
};

/// Wraps a standard executor like tracking_executor, but refuses every submission:
/// execute() counts the attempt and throws execute_error without touching the function.
/// Queries, require and prefer are forwarded (so it names its context and converts to
/// `asio::any_io_executor`); bind it to a handler with asio::bind_executor.
template <class Executor>
class throwing_executor
    : public wrapping_executor<throwing_executor, Executor, std::atomic<std::size_t>> {
public:
  using wrapping_executor<throwing_executor, Executor, std::atomic<std::size_t>>::wrapping_executor;

  template <class F> void execute(F&&) const {
    this->state_->fetch_add(1, std::memory_order_relaxed);
    throw execute_error();
  }

  std::atomic<std::size_t>& attempts() const noexcept { return *this->state_; }
};

template <class Executor>
throwing_executor(Executor, std::atomic<std::size_t>&) -> throwing_executor<Executor>;

// ---------------------------------------------------------------------------------
// Cancellation slot.

/// A cancellation slot (Asio's CancellationSlot requirements) over an
/// `asio::cancellation_slot` that calls `hook()` before installing each handler. The hook
/// runs where the operation installs its handler, inside the initiating call: it may throw
/// (std::bad_alloc is what `asio::cancellation_slot::emplace` throws when it cannot
/// allocate the handler's storage) or act on the operation being initiated. Bind it with
/// asio::bind_cancellation_slot; the hook must outlive the operation.
class hooked_slot {
public:
  hooked_slot() noexcept = default;
  hooked_slot(asio::cancellation_slot inner, const std::function<void()>& hook) noexcept
      : inner_(inner), hook_(&hook) {}

  bool is_connected() const noexcept { return inner_.is_connected(); }
  bool has_handler() const noexcept { return inner_.has_handler(); }

  template <class Handler, class... Args> Handler& emplace(Args&&... args) {
    if (hook_ && *hook_)
      (*hook_)();
    return inner_.template emplace<Handler>(std::forward<Args>(args)...);
  }
  template <class Handler> std::decay_t<Handler>& assign(Handler&& h) {
    return emplace<std::decay_t<Handler>>(std::forward<Handler>(h));
  }
  void clear() { inner_.clear(); }

private:
  asio::cancellation_slot inner_;
  const std::function<void()>* hook_ = nullptr;
};

// ---------------------------------------------------------------------------------
// Allocators.

/// Shared counters of a family of tracking allocators (all rebinds).
struct allocator_stats {
  std::atomic<std::size_t> allocations{0};
  std::atomic<std::size_t> deallocations{0};
  std::atomic<std::ptrdiff_t> live_bytes{0};

  bool balanced() const noexcept {
    return allocations.load() == deallocations.load() && live_bytes.load() == 0;
  }
};

/// Counts every allocation into an allocator_stats; memory from std::allocator.
template <class T> class tracking_allocator {
public:
  using value_type = T;

  explicit tracking_allocator(allocator_stats& stats) noexcept : stats_(&stats) {}
  template <class U>
  tracking_allocator(const tracking_allocator<U>& other) noexcept : stats_(&other.stats()) {}

  T* allocate(std::size_t n) {
    T* p = std::allocator<T>().allocate(n);
    stats_->allocations.fetch_add(1, std::memory_order_relaxed);
    stats_->live_bytes.fetch_add(static_cast<std::ptrdiff_t>(n * sizeof(T)),
                                 std::memory_order_relaxed);
    return p;
  }
  void deallocate(T* p, std::size_t n) noexcept {
    stats_->deallocations.fetch_add(1, std::memory_order_relaxed);
    stats_->live_bytes.fetch_sub(static_cast<std::ptrdiff_t>(n * sizeof(T)),
                                 std::memory_order_relaxed);
    std::allocator<T>().deallocate(p, n);
  }

  allocator_stats& stats() const noexcept { return *stats_; }

  template <class U>
  friend bool operator==(const tracking_allocator& a, const tracking_allocator<U>& b) noexcept {
    return &a.stats() == &b.stats();
  }

private:
  allocator_stats* stats_;
};

/// Refuses every allocation with std::bad_alloc (counting the attempts).
template <class T> class throwing_allocator {
public:
  using value_type = T;

  explicit throwing_allocator(std::atomic<std::size_t>& attempts) noexcept : attempts_(&attempts) {}
  template <class U>
  throwing_allocator(const throwing_allocator<U>& other) noexcept : attempts_(&other.attempts()) {}

  [[noreturn]] T* allocate(std::size_t) {
    attempts_->fetch_add(1, std::memory_order_relaxed);
    throw std::bad_alloc();
  }
  void deallocate(T*, std::size_t) noexcept {}

  std::atomic<std::size_t>& attempts() const noexcept { return *attempts_; }

  template <class U>
  friend bool operator==(const throwing_allocator& a, const throwing_allocator<U>& b) noexcept {
    return &a.attempts() == &b.attempts();
  }

private:
  std::atomic<std::size_t>* attempts_;
};

// ---------------------------------------------------------------------------------
// Counted types.

/// Counters for counted / move_only instances.
struct instance_counters {
  std::atomic<int> live{0}; ///< constructed minus destroyed
  std::atomic<int> constructions{0};
  std::atomic<int> copies{0}; ///< copy constructions + copy assignments
  std::atomic<int> moves{0};  ///< move constructions + move assignments
};

/// A copyable value that counts its instances, copies and moves in `instance_counters`.
/// A default-constructed `counted` has no counters and counts nothing (a library may
/// need a placeholder value for error completions of `void(std::exception_ptr, T)`).
class counted {
public:
  counted() noexcept = default;
  counted(instance_counters& c, int value) noexcept : counters_(&c), value_(value) { born(); }
  counted(const counted& o) noexcept : counters_(o.counters_), value_(o.value_) {
    born();
    if (counters_)
      ++counters_->copies;
  }
  counted(counted&& o) noexcept : counters_(o.counters_), value_(o.value_) {
    born();
    if (counters_)
      ++counters_->moves;
  }
  counted& operator=(const counted& o) noexcept {
    if (this != &o) {
      die();
      counters_ = o.counters_;
      value_ = o.value_;
      born();
      if (counters_)
        ++counters_->copies;
    }
    return *this;
  }
  counted& operator=(counted&& o) noexcept {
    if (this != &o) {
      die();
      counters_ = o.counters_;
      value_ = o.value_;
      born();
      if (counters_)
        ++counters_->moves;
    }
    return *this;
  }
  ~counted() { die(); }

  int value() const noexcept { return value_; }

private:
  void born() noexcept {
    if (counters_) {
      ++counters_->live;
      ++counters_->constructions;
    }
  }
  void die() noexcept {
    if (counters_)
      --counters_->live;
  }

  instance_counters* counters_ = nullptr;
  int value_ = 0;
};

/// A move-only value that counts its live instances and moves.
class move_only {
public:
  move_only() noexcept = default;
  move_only(instance_counters& c, int value) noexcept : counters_(&c), value_(value) { born(); }
  move_only(const move_only&) = delete;
  move_only& operator=(const move_only&) = delete;
  move_only(move_only&& o) noexcept : counters_(o.counters_), value_(o.value_) {
    born();
    if (counters_)
      ++counters_->moves;
  }
  move_only& operator=(move_only&& o) noexcept {
    if (this != &o) {
      die();
      counters_ = o.counters_;
      value_ = o.value_;
      born();
      if (counters_)
        ++counters_->moves;
    }
    return *this;
  }
  ~move_only() { die(); }

  int value() const noexcept { return value_; }

private:
  void born() noexcept {
    if (counters_) {
      ++counters_->live;
      ++counters_->constructions;
    }
  }
  void die() noexcept {
    if (counters_)
      --counters_->live;
  }

  instance_counters* counters_ = nullptr;
  int value_ = 0;
};

/// What a throwing_copy copy throws when its copy_control says so.
struct copy_error : std::runtime_error {
  copy_error() : std::runtime_error("throwing_copy: copy failed") {}
};

/// Counts the copies of a family of throwing_copy values and decides when they throw.
/// Not thread-safe: for single-threaded cases.
struct copy_control {
  int copies = 0;   ///< copy constructions that succeeded
  int allowed = -1; ///< copies succeed while `copies < allowed`; -1: always

  /// The next copy throws, or the one after `more` further successful copies.
  void fail_after(int more = 0) noexcept { allowed = copies + more; }
};

/// A copyable value whose copy constructor throws copy_error once its copy_control says
/// so. It has no move constructor, so every move is a copy that may throw as well (the
/// worst case for the moves a library makes internally). A default-constructed one has no
/// control and never throws (the placeholder value of an error completion).
class throwing_copy {
public:
  throwing_copy() noexcept = default;
  throwing_copy(copy_control& c, int value) noexcept : control_(&c), value_(value) {}
  throwing_copy(const throwing_copy& o) : control_(o.control_), value_(o.value_) {
    if (control_) {
      if (control_->allowed >= 0 && control_->copies >= control_->allowed)
        throw copy_error();
      ++control_->copies;
    }
  }
  throwing_copy& operator=(const throwing_copy&) = default;
  ~throwing_copy() = default;

  int value() const noexcept { return value_; }

private:
  copy_control* control_ = nullptr;
  int value_ = 0;
};

static_assert(std::is_copy_constructible_v<throwing_copy>);
static_assert(!std::is_nothrow_move_constructible_v<throwing_copy>, "moves copy");

static_assert(!std::is_copy_constructible_v<move_only>);
static_assert(std::is_nothrow_move_constructible_v<move_only>);

} // namespace asio_futures_test

#endif // ASIO_FUTURES_TEST_SUPPORT_TRACKING_HPP
