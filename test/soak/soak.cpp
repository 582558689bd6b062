// asio_futures_soak: a seeded race soak of futures, tasks and combinators across threads.
//
//   asio_futures_soak --seed S --ops N --threads T [--round-ops R] [--hang-seconds H]
//                     [--round-seconds B] [--no-doom] [--race-first-use] [--quiet]
//
// N operations are drawn (rounded up to whole rounds); the summary also counts those executed
// (an operation that finds no suitable target, say a resolve with no plain future yet, is
// skipped). Interleavings depend on scheduling; the operation sequence of each worker does not.
//
// The run is cut into rounds of R operations (default 4000). Each round makes T io_contexts,
// one per worker thread, a *shared* io_context that every worker polls (so it is run by T
// threads at once), and, in half of the rounds, a *doomed* io_context that worker 0 runs and
// destroys in the middle of the round. Each worker draws R/T operations from its own PRNG
// stream (derived from the seed, the round and the worker) and polls its context and the
// shared one between operations:
//
//   futures made on any context and resolved from any thread (set_result, try_set_result,
//   set_exception, try_set_exception, cancel(msg)), races of several resolvers posted to
//   several threads at once, coroutine waiters (co_spawn) and handler waiters with or without
//   a cancellation signal emitted later from another thread (posted to the waiter's executor
//   or strand, as Asio requires), done-callbacks, gather / gather(return_exceptions) / wait /
//   wait_for / first_completed / shield over random subsets, tasks whose bodies await other
//   futures and that other threads cancel, task groups, sleep, run_in_executor, and misuse
//   (set_result on futures that resolve themselves must throw).
//
// At the end of a round every plain future still pending is resolved, the contexts run until
// every waiter, callback, future and task is done (bounded by --round-seconds), and worker 0
// checks, single-threaded:
//
//   - every waiter and callback completed exactly once, or, only on the doomed context, was
//     destroyed uninvoked (seen by the destructor of a probe shared by the handler's copies);
//   - what each waiter saw agrees with the final state of what it awaited (value with the same
//     origin and check word, same exception, cancelled with the same message), except where
//     a partial/total signal it was sent allowed it to be detached;
//   - among the resolvers of a plain future exactly one won, and its outcome is the future's;
//     a successful cancel() of a non-task future means it ended cancelled with that message;
//   - the results of combinators and tasks agree with their inputs;
//   - after the round is torn down, no payload, coroutine frame or probe is alive.
//
// The doomed context. Resolving a future while a context that one of its waiters uses is being
// destroyed is a data race by the library's contract (docs/threading.md, "Shutdown"), so the
// futures a doomed-context waiter may use (a closed pool: futures made on the doomed context,
// tasks and sleeps on it, combinators over such futures) are only resolved, cancelled or sent
// signals under a shared lock that the destruction takes exclusively. Everything in that pool
// is also held by the round's table and resolved after the destruction (so a combinator
// awaited there is never abandoned with inputs only it held: the unit tests and stress tests
// of each combinator cover that).
//
// A hang fails: a round that does not become quiescent within --round-seconds (default 120)
// prints what is still pending and exits 1; a watchdog thread exits 3 after --hang-seconds
// (default 60) without progress. Any invariant violation prints the seed, round, worker and
// operation index of the object concerned, and the program exits 1. Success prints the counts
// and "soak: OK".
//
// Known defect worked around: each round first touches every context from one thread
// (test/repro/concurrent_first_use.cpp); --race-first-use leaves that out.
#include <asio_futures/asio_futures.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace af = asio_futures;
namespace asio = boost::asio;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

#if defined(__SANITIZE_THREAD__)
#define ASIO_FUTURES_SOAK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ASIO_FUTURES_SOAK_TSAN 1
#endif
#endif

#if defined(ASIO_FUTURES_SOAK_TSAN)
// WORKAROUND(g++ 12 TSan, Boost 1.81): an any_io_executor whose target does not fit its small
// buffer (a task's executor over a strand) shares it through
// execution::detail::shared_target_executor, released by detail::ref_count_down: a release
// fetch_sub followed by a standalone acquire fence, which TSan does not model (the -Wtsan
// warning of cmake/asio_futures_options.cmake), so the delete after the last release is
// reported as racing with the other threads' decrements. Only that frame is suppressed.
extern "C" const char* __tsan_default_suppressions() {
  return "race:boost::asio::execution::detail::shared_target_executor::~shared_target_executor\n";
}
#endif

namespace {

// ------------------------------------------------------------------------------------------
// Options and random numbers.

struct options {
  std::uint64_t seed = 1;
  std::uint64_t ops = 200000;
  int threads = 3;
  std::uint64_t round_ops = 4000;
  int hang_seconds = 60;
  int round_seconds = 120;
  bool doom = true;
  bool race_first_use = false;
  bool quiet = false;
};

/// splitmix64's finaliser: a bijective mix of 64 bits.
constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// splitmix64: small, fast, and every (seed, round, worker) gets an independent stream.
class prng {
public:
  explicit prng(std::uint64_t seed) noexcept : state_(mix64(seed)) {}
  std::uint64_t next() noexcept { return mix64(state_ += 0x9e3779b97f4a7c15ULL); }
  std::uint32_t below(std::uint32_t n) noexcept {
    return n ? static_cast<std::uint32_t>(next() % n) : 0;
  }
  bool chance(unsigned percent) noexcept { return below(100) < percent; }

private:
  std::uint64_t state_;
};

// ------------------------------------------------------------------------------------------
// Counted objects: what must all be gone at the end of a round.

std::atomic<long> live_payloads{0};
std::atomic<long> live_frames{0};
std::atomic<long> live_probes{0};

/// The value every future carries: the id of the future that produced it (its origin) and a
/// check word derived from it, so a torn, stale or foreign value is caught.
struct payload {
  std::int64_t origin = -1;
  std::uint64_t check = 0;

  payload() noexcept { live_payloads.fetch_add(1, std::memory_order_relaxed); }
  explicit payload(std::int64_t id) noexcept : origin(id), check(check_of(id)) {
    live_payloads.fetch_add(1, std::memory_order_relaxed);
  }
  payload(const payload& o) noexcept : origin(o.origin), check(o.check) {
    live_payloads.fetch_add(1, std::memory_order_relaxed);
  }
  payload& operator=(const payload&) noexcept = default;
  ~payload() { live_payloads.fetch_sub(1, std::memory_order_relaxed); }

  static std::uint64_t check_of(std::int64_t id) noexcept {
    return mix64(static_cast<std::uint64_t>(id) ^ 0x5eed5eed5eedULL);
  }
  bool intact() const noexcept { return origin >= 0 && check == check_of(origin); }
};

/// The exception futures fail with: tagged with the id of the future it was set on.
struct soak_error : std::runtime_error {
  explicit soak_error(std::int64_t t) : std::runtime_error("soak_error"), tag(t) {}
  std::int64_t tag;
};

/// Lives in every coroutine frame the soak makes.
struct frame_probe {
  frame_probe() noexcept { live_frames.fetch_add(1, std::memory_order_relaxed); }
  frame_probe(const frame_probe&) = delete;
  ~frame_probe() { live_frames.fetch_sub(1, std::memory_order_relaxed); }
};

// ------------------------------------------------------------------------------------------
// Reporting.

struct op_site {
  std::uint64_t round = 0;
  int worker = -1;
  std::uint64_t op = 0;
};

options g_opt;
std::atomic<long> g_failures{0};
std::atomic<std::uint64_t> g_progress{0};
std::atomic<std::uint64_t> g_round{0};
std::atomic<int> g_phase{0};
std::array<std::atomic<std::uint64_t>, 4> g_worker_op{};
std::mutex g_report_mutex;
const char* const phase_names[] = {"start", "operations", "drain", "quiescence", "check"};

void fail(const op_site& at, const std::string& what) {
  const long n = g_failures.fetch_add(1) + 1;
  if (n > 25)
    return;
  std::lock_guard lock(g_report_mutex);
  std::fprintf(stderr,
               "soak: FAILED: %s\n  made at round %" PRIu64 ", worker %d, operation %" PRIu64
               "; reproduce: asio_futures_soak --seed %" PRIu64 " --ops %" PRIu64
               " --threads %d --round-ops %" PRIu64 "%s%s\n",
               what.c_str(), at.round, at.worker, at.op, g_opt.seed, g_opt.ops, g_opt.threads,
               g_opt.round_ops, g_opt.doom ? "" : " --no-doom",
               g_opt.race_first_use ? " --race-first-use" : "");
  std::fflush(stderr);
}

// ------------------------------------------------------------------------------------------
// Operations.

enum op_kind : int {
  op_make,
  op_set,
  op_try_set,
  op_set_exception,
  op_try_set_exception,
  op_cancel,
  op_race,
  op_await_coro,
  op_await_handler,
  op_emit,
  op_callback,
  op_gather,
  op_wait,
  op_wait_for,
  op_first_completed,
  op_shield,
  op_task,
  op_task_cancel,
  op_group,
  op_sleep,
  op_offload,
  op_misuse,
  op_destroy_context, // not drawn: counted when the doomed context is destroyed
  op_count
};

const char* const op_names[op_count] = {
    "make",     "set_result", "try_set_result", "set_exception", "try_set_exception",
    "cancel",   "race",       "await_coro",     "await_handler", "emit_signal",
    "callback", "gather",     "wait",           "wait_for",      "first_completed",
    "shield",   "task",       "task_cancel",    "task_group",    "sleep",
    "offload",  "misuse",     "destroy_context"};

const int op_weights[op_count] = {14, 3, 6, 2, 2, 5, 5, 10, 8, 6, 6, 3,
                                  2,  3, 3, 3, 6, 3, 2, 2,  2, 2, 0};

// ------------------------------------------------------------------------------------------
// What a waiter saw, and what a future ended as, in one comparable form.

struct observed {
  enum kind_t { none, value, error, cancelled, aborted, timeout, invalid_state, other };
  kind_t kind = none;
  bool cancelled_state = false;      // the future itself is cancelled() (not merely failed)
  std::int64_t origin = -1;          // value: payload origin
  bool intact = true;                // every payload seen was intact
  std::int64_t tag = -1;             // error: soak_error tag
  std::string msg;                   // cancelled: message; other: what()
  std::vector<std::int64_t> origins; // gather
  std::vector<observed> parts;       // gather(return_exceptions)
  std::vector<int> done, pending;    // wait: input positions
  std::vector<observed> failures;    // task group: the exception_group's exceptions
  bool group_ok = false;

  bool same_outcome(const observed& o) const {
    if (kind != o.kind)
      return false;
    switch (kind) {
    case value:
      return origin == o.origin && origins == o.origins && done == o.done && pending == o.pending &&
             parts_equal(o);
    case error:
      return tag == o.tag;
    case cancelled:
      return msg == o.msg;
    default:
      return true;
    }
  }
  bool parts_equal(const observed& o) const {
    if (parts.size() != o.parts.size())
      return false;
    for (std::size_t i = 0; i < parts.size(); ++i)
      if (!parts[i].same_outcome(o.parts[i]))
        return false;
    return true;
  }
  std::string describe() const {
    static const char* const names[] = {"none",    "value",   "error",         "cancelled",
                                        "aborted", "timeout", "invalid_state", "other"};
    std::string s = names[kind];
    if (kind == value && origin >= 0)
      s += "(origin " + std::to_string(origin) + ")";
    if (kind == value && !origins.empty())
      s += "(" + std::to_string(origins.size()) + " values)";
    if (kind == error)
      s += "(tag " + std::to_string(tag) + ")";
    if (kind == cancelled || kind == other || kind == invalid_state)
      s += "(\"" + msg + "\")";
    if (cancelled_state)
      s += " [future cancelled]";
    return s;
  }
};

observed classify(const std::exception_ptr& ep) {
  observed o;
  try {
    std::rethrow_exception(ep);
  } catch (const af::cancelled_error& e) {
    o.kind = observed::cancelled;
    o.msg = e.message();
  } catch (const af::timeout_error&) {
    o.kind = observed::timeout;
  } catch (const soak_error& e) {
    o.kind = observed::error;
    o.tag = e.tag;
  } catch (const af::invalid_state_error& e) {
    o.kind = observed::invalid_state;
    o.msg = e.what();
  } catch (const boost::system::system_error& e) {
    if (e.code() == asio::error::operation_aborted)
      o.kind = observed::aborted;
    else {
      o.kind = observed::other;
      o.msg = e.what();
    }
  } catch (const std::exception& e) {
    o.kind = observed::other;
    o.msg = e.what();
  } catch (...) {
    o.kind = observed::other;
    o.msg = "unknown exception";
  }
  return o;
}

// ------------------------------------------------------------------------------------------
// The round's tables.

using ioc_executor = asio::io_context::executor_type;
using strand_type = asio::strand<ioc_executor>;

/// Where something runs: one of the round's contexts, or a strand on it.
struct place {
  int ctx = -1;
  std::optional<strand_type> strand;
  asio::any_io_executor ex;
};

enum class entry_kind { plain, sleep, offload, task, shield, wait_for, first_completed };
const char* const entry_kind_names[] = {"plain",  "sleep",    "offload",        "task",
                                        "shield", "wait_for", "first_completed"};

/// A future<payload> of the round: a plain one, or a task, sleep, offload or combinator result.
struct entry {
  std::atomic<bool> ready{false};
  int id = 0;
  entry_kind kind = entry_kind::plain;
  bool doomed = false; // in the doomed context's pool (see the file comment)
  place home;          // the future's executor
  op_site made;
  af::future<payload> f;
  af::task<payload> t; // kind == task
  std::vector<int> inputs;
  std::atomic<int> value_wins{0}, error_wins{0}, cancel_wins{0}, cancel_requests{0};
  std::atomic<int> resolve_attempts{0};
  std::string cancel_msg; // written by the successful cancel
  std::atomic<int> body_runs{0}, body_ends{0};
};

enum class gentry_kind { gather, gather_outcomes, wait };

/// A combinator result of another value type: gather, gather(return_exceptions), wait.
struct gentry {
  std::atomic<bool> ready{false};
  int id = 0;
  gentry_kind kind = gentry_kind::gather;
  bool doomed = false;
  place home;
  op_site made;
  std::vector<int> inputs;
  af::future<std::vector<payload>> g;
  af::future<std::vector<af::outcome<payload>>> go;
  af::future<af::wait_result<payload>> w;
  af::return_when when = af::return_when::all_completed;
  bool timed = false;
  std::atomic<int> cancel_wins{0};
  std::string cancel_msg;
};

enum class waiter_kind { coro, handler, callback, group };
const char* const waiter_kind_names[] = {"coroutine", "handler", "callback", "task_group"};

/// A registered waiter (coroutine, handler, callback or task-group joiner).
struct waiter {
  std::atomic<bool> ready{false};
  int id = 0;
  waiter_kind kind = waiter_kind::coro;
  op_site made;
  place where;
  int target = -1; // entry or gentry id; -1 for a group
  bool target_gentry = false;
  bool doomed_target = false;
  bool total_filter = false;
  std::vector<int> inputs; // group
  std::shared_ptr<asio::cancellation_signal> signal;
  std::atomic<unsigned> signals_sent{0};
  std::atomic<int> completions{0}, drops{0};
  observed obs;
  bool ran_on_place = true;
  bool saw_done = true;
};

/// A fixed-capacity table filled concurrently: reserve() a slot, fill it, publish().
template <class T> class table {
public:
  explicit table(std::size_t capacity) : items_(new T[capacity]), capacity_(capacity) {}

  T* reserve() {
    const std::size_t i = next_.fetch_add(1, std::memory_order_relaxed);
    if (i >= capacity_)
      return nullptr;
    items_[i].id = static_cast<int>(i);
    return &items_[i];
  }
  static void publish(T* x) { x->ready.store(true, std::memory_order_release); }
  std::size_t size() const { return std::min(next_.load(std::memory_order_acquire), capacity_); }
  T& at(std::size_t i) { return items_[i]; }
  T* pick(prng& rng) {
    const std::size_t n = size();
    if (n == 0)
      return nullptr;
    for (int i = 0; i < 4; ++i) // a slot may be reserved but not yet published
      if (T* x = &items_[rng.below(static_cast<std::uint32_t>(n))];
          x->ready.load(std::memory_order_acquire))
        return x;
    return nullptr;
  }

private:
  std::unique_ptr<T[]> items_;
  std::size_t capacity_;
  std::atomic<std::size_t> next_{0};
};

struct stats {
  std::array<std::uint64_t, op_count> ops{};
  std::uint64_t completed = 0, dropped = 0, callbacks = 0, resolve_attempts = 0, wins = 0,
                contended = 0, cancelled_seen = 0, detached_seen = 0, timeouts_seen = 0,
                refused_dead = 0, rounds = 0, doomed_rounds = 0, futures = 0, tasks = 0;
};

struct round_state {
  round_state(const options& o, std::uint64_t index, prng& rng)
      : opt(o), number(index), workers(o.threads), entries(o.round_ops + 16),
        gentries(o.round_ops + 16), waiters(2 * o.round_ops + 16) {
    for (int i = 0; i < workers + 2; ++i)
      ctxs.push_back(std::make_unique<asio::io_context>());
    for (auto& c : ctxs)
      guards.emplace_back(c->get_executor());
    has_doom = o.doom && rng.chance(50);
    doom_alive.store(has_doom);
    doom_at = rng.below(static_cast<std::uint32_t>(
        std::max<std::uint64_t>(1, o.round_ops / static_cast<std::uint64_t>(o.threads))));
    if (!has_doom) {
      guards.back().reset();
      ctxs.back().reset();
    }
    // WORKAROUND(asio_futures, found by this soak): the first use of a context from two
    // threads at once can make the library take the live context for a destroyed one
    // (test/repro/concurrent_first_use.cpp). Touching every context once here, on one
    // thread, keeps the soak on the other paths; --race-first-use skips it.
    if (!o.race_first_use)
      for (auto& c : ctxs)
        if (c)
          (void)af::future<int>(c->get_executor());
  }

  int shared_index() const { return workers; }
  int doom_index() const { return workers + 1; }
  asio::io_context& ctx(int i) { return *ctxs[static_cast<std::size_t>(i)]; }

  bool running_here(const place& p) {
    if (p.strand)
      return p.strand->running_in_this_thread();
    return ctx(p.ctx).get_executor().running_in_this_thread();
  }

  const options& opt;
  std::uint64_t number;
  int workers;
  std::vector<std::unique_ptr<asio::io_context>> ctxs; // workers..., shared, doomed
  std::vector<std::optional<asio::executor_work_guard<ioc_executor>>> guards;
  bool has_doom = false;
  std::atomic<bool> doom_alive{false};
  std::shared_mutex doom_mutex;
  std::uint64_t doom_at = 0;

  table<entry> entries;
  table<gentry> gentries;
  table<waiter> waiters;
  std::atomic<long> registered{0}, settled{0};
  std::atomic<bool> quiet{false};
  std::atomic<int> first_use_arrivals{0};                        // --race-first-use
  std::size_t first_pending_entry = 0, first_pending_gentry = 0; // worker 0 only
};

/// Holds the doomed context's lock (shared) while an object of its pool is touched.
class doom_lock {
public:
  doom_lock(round_state& r, bool doomed) {
    if (doomed)
      lock_ = std::shared_lock(r.doom_mutex);
  }

private:
  std::shared_lock<std::shared_mutex> lock_;
};

/// Shared by the copies of a completion handler or callback. If the last copy dies before the
/// handler ran, the waiter was destroyed uninvoked.
struct drop_probe {
  drop_probe(round_state& r, waiter& w) noexcept : r_(&r), w_(&w) {
    live_probes.fetch_add(1, std::memory_order_relaxed);
  }
  drop_probe(const drop_probe&) = delete;
  ~drop_probe() {
    if (!fired_.load(std::memory_order_acquire)) {
      w_->drops.fetch_add(1, std::memory_order_relaxed);
      r_->settled.fetch_add(1, std::memory_order_release);
    }
    live_probes.fetch_sub(1, std::memory_order_relaxed);
  }

  /// The handler runs: returns false (after reporting) if it already ran.
  bool fire() {
    fired_.store(true, std::memory_order_release);
    if (w_->completions.fetch_add(1, std::memory_order_acq_rel) != 0) {
      fail(w_->made, std::string(waiter_kind_names[static_cast<int>(w_->kind)]) + " waiter " +
                         std::to_string(w_->id) + " completed twice");
      return false;
    }
    return true;
  }
  /// After the outcome was recorded.
  void settle() { r_->settled.fetch_add(1, std::memory_order_release); }
  const op_site& site() const noexcept { return w_->made; }

private:
  round_state* r_;
  waiter* w_;
  std::atomic<bool> fired_{false};
};

// ------------------------------------------------------------------------------------------
// Values: what a future of the round may legitimately hold.

bool origin_allowed(round_state& r, const entry& e, std::int64_t origin, int depth = 0) {
  if (depth > 64)
    return false;
  switch (e.kind) {
  case entry_kind::shield:
  case entry_kind::wait_for:
    return origin_allowed(r, r.entries.at(static_cast<std::size_t>(e.inputs[0])), origin,
                          depth + 1);
  case entry_kind::first_completed:
    for (int i : e.inputs)
      if (origin_allowed(r, r.entries.at(static_cast<std::size_t>(i)), origin, depth + 1))
        return true;
    return false;
  default:
    return origin == e.id;
  }
}

observed observe_value(round_state&, const payload& v, const std::vector<int>&) {
  observed o;
  o.kind = observed::value;
  o.origin = v.origin;
  o.intact = v.intact();
  return o;
}

observed observe_value(round_state&, const std::vector<payload>& v, const std::vector<int>&) {
  observed o;
  o.kind = observed::value;
  for (const payload& p : v) {
    o.origins.push_back(p.origin);
    o.intact = o.intact && p.intact();
  }
  return o;
}

observed observe_value(round_state&, const std::vector<af::outcome<payload>>& v,
                       const std::vector<int>&) {
  observed o;
  o.kind = observed::value;
  for (const auto& x : v) {
    if (x.has_value()) {
      observed part;
      part.kind = observed::value;
      part.origin = x.value().origin;
      o.intact = o.intact && x.value().intact();
      o.parts.push_back(part);
    } else {
      o.parts.push_back(classify(x.exception()));
    }
  }
  return o;
}

/// Maps each handle of the split back to its input position (a handle matching no input, or a
/// done-list future that is not done, makes the observation fail its check).
observed observe_value(round_state& r, const af::wait_result<payload>& v,
                       const std::vector<int>& inputs) {
  observed o;
  o.kind = observed::value;
  auto position = [&](const af::future<payload>& f, std::vector<bool>& used) {
    for (std::size_t i = 0; i < inputs.size(); ++i)
      if (!used[i] && r.entries.at(static_cast<std::size_t>(inputs[i])).f == f) {
        used[i] = true;
        return static_cast<int>(i);
      }
    return -1;
  };
  std::vector<bool> used(inputs.size(), false);
  for (const auto& f : v.done) {
    o.done.push_back(position(f, used));
    if (!f.done())
      o.intact = false;
  }
  for (const auto& f : v.pending)
    o.pending.push_back(position(f, used));
  return o;
}

/// The final state of a done future (or kind none if pending).
template <class T>
observed observe_future(round_state& r, const af::future<T>& f, const std::vector<int>& inputs) {
  observed o;
  if (!f.done())
    return o;
  if (f.cancelled()) {
    try {
      (void)f.exception();
      o.kind = observed::other;
      o.msg = "cancelled() but exception() did not throw";
    } catch (...) {
      o = classify(std::current_exception());
    }
    o.cancelled_state = true;
    return o;
  }
  if (std::exception_ptr ep = f.exception())
    return classify(ep);
  return observe_value(r, f.result(), inputs);
}

// ------------------------------------------------------------------------------------------
// Coroutines.

/// Awaits `f` and records what it saw into `w` (the co_spawn completion counts the waiter).
template <class T>
asio::awaitable<void> await_coro(round_state* r, waiter* w, af::future<T> f,
                                 std::vector<int> inputs) {
  frame_probe probe;
  if (w->total_filter)
    co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
  observed o;
  try {
    T v = co_await f.async_wait();
    o = observe_value(*r, v, inputs);
  } catch (...) {
    o = classify(std::current_exception());
  }
  w->ran_on_place = r->running_here(w->where);
  w->obs = std::move(o);
}

/// A task's body: awaits its inputs in turn (any failure escapes), then returns its own value.
asio::awaitable<payload> task_body(round_state* r, int self, std::vector<entry*> inputs) {
  frame_probe probe;
  entry& me = r->entries.at(static_cast<std::size_t>(self));
  me.body_runs.fetch_add(1, std::memory_order_relaxed);
  for (entry* in : inputs) {
    payload v = co_await in->f.async_wait();
    if (!v.intact() || !origin_allowed(*r, *in, v.origin))
      fail(me.made, "task " + std::to_string(self) + " awaited input " + std::to_string(in->id) +
                        " and got a foreign or torn value (origin " + std::to_string(v.origin) +
                        ")");
  }
  me.body_ends.fetch_add(1, std::memory_order_relaxed);
  co_return payload(self);
}

/// A task-group child: the value of its input.
asio::awaitable<payload> kid_body(round_state* r, entry* in, op_site made) {
  frame_probe probe;
  payload v = co_await in->f.async_wait();
  if (!v.intact() || !origin_allowed(*r, *in, v.origin))
    fail(made, "task_group child got a foreign or torn value from input " + std::to_string(in->id));
  co_return v;
}

/// Makes a task group with one child per input, maybe cancels one child, joins, and records
/// the join's outcome in `w`.
asio::awaitable<void> group_coro(round_state* r, waiter* w, std::vector<entry*> inputs,
                                 int cancel_child) {
  frame_probe probe;
  if (w->total_filter)
    co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
  auto ex = co_await asio::this_coro::executor;
  observed o;
  std::vector<af::task<payload>> kids;
  bool joined = false;
  {
    af::task_group tg(ex);
    try {
      try {
        for (entry* in : inputs)
          kids.push_back(tg.create_task(kid_body(r, in, w->made)));
      } catch (const af::invalid_state_error&) {
        // A child on another thread of the shared context failed already: the group is
        // shutting down and refuses new children (asyncio's TaskGroup does the same).
      }
      if (cancel_child >= 0 && static_cast<std::size_t>(cancel_child) < kids.size())
        kids[static_cast<std::size_t>(cancel_child)].cancel("group child cancelled");
      co_await tg.async_join();
      joined = true;
      o.kind = observed::value;
      o.group_ok = true;
    } catch (const af::exception_group& g) {
      joined = true;
      o.kind = observed::value;
      for (const auto& e : g.exceptions())
        o.failures.push_back(classify(e));
    } catch (...) {
      o = classify(std::current_exception());
      joined = o.kind == observed::cancelled; // the join completed, cancelled
    }
  }
  if (joined)
    for (const auto& k : kids)
      if (!k.done())
        fail(w->made, "task_group join completed with a child still running");
  w->ran_on_place = r->running_here(w->where);
  w->obs = std::move(o);
}

// ------------------------------------------------------------------------------------------
// A worker: draws and runs operations.

class worker {
public:
  worker(round_state& r, int index, stats& st)
      : r_(r), index_(index), st_(st),
        rng_(g_opt.seed ^ mix64(r.number * 0x100000001b3ULL + static_cast<unsigned>(index) + 1)) {
    site_.round = r.number;
    site_.worker = index;
    for (int w : op_weights)
      weight_total_ += w;
  }

  void run_operations(std::uint64_t count) {
    if (g_opt.race_first_use) {
      // Every worker first-uses every context at once (see round_state): the known defect's
      // window. A spinning rendezvous, since a barrier's wake-ups are tens of microseconds
      // apart. The futures are dropped at once; what matters is their waiter services.
      r_.first_use_arrivals.fetch_add(1);
      while (r_.first_use_arrivals.load() < r_.workers)
        std::this_thread::yield();
      // Worker 0 may destroy the doomed context as soon as its own first use is done: that
      // one is touched under the doom lock, and only while it lives.
      for (int k = 0; k < r_.workers + 2; ++k) {
        const int c = (k + index_) % (r_.workers + 2);
        const bool doomed = c == r_.doom_index();
        doom_lock lock(r_, doomed);
        if (doomed ? r_.doom_alive.load() : r_.ctxs[static_cast<std::size_t>(c)] != nullptr)
          (void)af::future<int>(r_.ctx(c).get_executor());
      }
    }
    for (std::uint64_t i = 0; i < count; ++i) {
      site_.op = i;
      g_worker_op[static_cast<std::size_t>(index_)].store(i, std::memory_order_relaxed);
      if (index_ == 0 && r_.has_doom && i == r_.doom_at)
        destroy_doomed();
      const op_kind k = draw();
      if (perform(k))
        ++st_.ops[k];
      g_progress.fetch_add(1, std::memory_order_relaxed);
      if (i % 2 == 1)
        poll();
    }
    if (index_ == 0 && r_.doom_alive.load())
      destroy_doomed();
  }

  /// Resolves this worker's stripe of plain futures still pending.
  void drain() {
    const std::size_t n = r_.entries.size();
    for (std::size_t i = static_cast<std::size_t>(index_); i < n;
         i += static_cast<std::size_t>(r_.workers)) {
      entry& e = r_.entries.at(i);
      if (!e.ready.load(std::memory_order_acquire) || e.kind != entry_kind::plain)
        continue;
      doom_lock lock(r_, e.doomed);
      e.resolve_attempts.fetch_add(1, std::memory_order_relaxed);
      if (e.f.try_set_result(payload(e.id)))
        e.value_wins.fetch_add(1, std::memory_order_relaxed);
    }
  }

  std::size_t poll() {
    std::size_t n = r_.ctx(index_).poll();
    n += r_.ctx(r_.shared_index()).poll();
    if (index_ == 0 && r_.doom_alive.load(std::memory_order_relaxed))
      n += r_.ctx(r_.doom_index()).poll();
    if (n)
      g_progress.fetch_add(1, std::memory_order_relaxed);
    return n;
  }

  void wait_a_little() { r_.ctx(index_).run_one_for(100us); }

private:
  op_kind draw() {
    int x = static_cast<int>(rng_.below(static_cast<std::uint32_t>(weight_total_)));
    for (int k = 0; k < op_count; ++k) {
      x -= op_weights[k];
      if (x < 0)
        return static_cast<op_kind>(k);
    }
    return op_make;
  }

  bool want_doomed() { return r_.has_doom && rng_.chance(20); }

  /// A live place: a worker's context, the shared one, or (if `strand_ok`) a strand on it. A
  /// waiter with a signal on the shared context needs a strand: the signal is emitted there.
  place live_place(bool need_strand_on_shared, bool strand_ok = true) {
    place p;
    const int pick = static_cast<int>(rng_.below(static_cast<std::uint32_t>(r_.workers + 2)));
    if (pick < r_.workers) {
      p.ctx = pick;
      p.ex = r_.ctx(pick).get_executor();
      return p;
    }
    p.ctx = r_.shared_index();
    if (need_strand_on_shared || (strand_ok && pick == r_.workers + 1)) {
      p.strand.emplace(asio::make_strand(r_.ctx(p.ctx).get_executor()));
      p.ex = *p.strand;
    } else {
      p.ex = r_.ctx(p.ctx).get_executor();
    }
    return p;
  }

  place doomed_place() {
    place p;
    p.ctx = r_.doom_index();
    p.ex = r_.ctx(p.ctx).get_executor();
    return p;
  }

  /// A place for a waiter of a target in pool `doomed` (caller holds the doom lock then).
  place waiter_place(bool doomed, bool with_signal) {
    if (doomed && r_.doom_alive.load() && rng_.chance(60))
      return doomed_place();
    return live_place(with_signal);
  }

  entry* pick_entry() {
    return pick_entry_if([](const entry&) { return true; });
  }

  /// A published entry satisfying `pred` (a few random tries; nullptr if none found).
  template <class Pred> entry* pick_entry_if(Pred pred) {
    for (int i = 0; i < 8; ++i)
      if (entry* e = r_.entries.pick(rng_); e && pred(*e))
        return e;
    return nullptr;
  }

  static bool is_plain(const entry& e) { return e.kind == entry_kind::plain; }

  entry* pick_entry_of(bool doomed) {
    return pick_entry_if([doomed](const entry& e) { return e.doomed == doomed; });
  }

  std::vector<entry*> pick_inputs(bool doomed, std::size_t n) {
    std::vector<entry*> v;
    for (std::size_t i = 0; i < n; ++i)
      if (entry* e = pick_entry_of(doomed))
        v.push_back(e);
    return v;
  }

  std::string message(const char* what) {
    return std::string(what) + "@" + std::to_string(r_.number) + "." + std::to_string(index_) +
           "." + std::to_string(site_.op);
  }

  bool perform(op_kind k) {
    switch (k) {
    case op_make:
      return make();
    case op_set:
    case op_try_set:
    case op_set_exception:
    case op_try_set_exception: {
      entry* e = pick_entry_if(is_plain);
      if (!e)
        return false;
      resolve(r_, *e, k, message("cancel"));
      return true;
    }
    case op_cancel:
      return cancel();
    case op_race:
      return race();
    case op_await_coro:
    case op_await_handler:
      return await(k == op_await_coro);
    case op_emit:
      return emit();
    case op_callback:
      return callback();
    case op_gather:
      return make_gentry(rng_.chance(50) ? gentry_kind::gather : gentry_kind::gather_outcomes);
    case op_wait:
      return make_gentry(gentry_kind::wait);
    case op_wait_for:
    case op_first_completed:
    case op_shield:
      return combinator(k);
    case op_task:
      return task();
    case op_task_cancel:
      return task_cancel();
    case op_group:
      return group();
    case op_sleep:
      return sleep();
    case op_offload:
      return offload();
    case op_misuse:
      return misuse();
    default:
      return false;
    }
  }

public:
  /// One resolution attempt of a plain future; used by operations, races and the drain.
  static void resolve(round_state& r, entry& e, int how, const std::string& msg) {
    doom_lock lock(r, e.doomed);
    e.resolve_attempts.fetch_add(1, std::memory_order_relaxed);
    switch (how) {
    case op_set:
      try {
        e.f.set_result(payload(e.id));
        e.value_wins.fetch_add(1, std::memory_order_relaxed);
      } catch (const af::invalid_state_error&) {
      }
      break;
    case op_try_set:
      if (e.f.try_set_result(payload(e.id)))
        e.value_wins.fetch_add(1, std::memory_order_relaxed);
      break;
    case op_set_exception:
      try {
        e.f.set_exception(soak_error(e.id));
        e.error_wins.fetch_add(1, std::memory_order_relaxed);
      } catch (const af::invalid_state_error&) {
      }
      break;
    case op_try_set_exception:
      if (e.f.try_set_exception(std::make_exception_ptr(soak_error(e.id))))
        e.error_wins.fetch_add(1, std::memory_order_relaxed);
      break;
    default:
      if (e.f.cancel(msg) && e.cancel_wins.fetch_add(1, std::memory_order_relaxed) == 0)
        e.cancel_msg = msg;
      break;
    }
  }

private:
  void destroy_doomed() {
    std::unique_lock lock(r_.doom_mutex);
    r_.doom_alive.store(false);
    r_.guards[static_cast<std::size_t>(r_.doom_index())].reset();
    // ~io_context shuts its services down: the waiter service destroys the waiters still
    // registered (coroutine frames, handlers), pending tasks end cancelled.
    r_.ctxs[static_cast<std::size_t>(r_.doom_index())].reset();
    ++st_.ops[op_destroy_context];
  }

  bool make() {
    bool doomed = want_doomed();
    doom_lock lock(r_, doomed);
    if (doomed && !r_.doom_alive.load())
      return false;
    entry* e = r_.entries.reserve();
    if (!e)
      return false;
    e->kind = entry_kind::plain;
    e->doomed = doomed;
    e->made = site_;
    e->home = doomed ? doomed_place() : live_place(false);
    e->f = af::future<payload>(e->home.ex);
    table<entry>::publish(e);
    ++st_.futures;
    return true;
  }

  bool cancel() {
    if (rng_.chance(25)) {
      gentry* g = r_.gentries.pick(rng_);
      if (!g)
        return false;
      doom_lock lock(r_, g->doomed);
      const std::string msg = message("gcancel");
      bool ok = false;
      switch (g->kind) {
      case gentry_kind::gather:
        ok = g->g.cancel(msg);
        break;
      case gentry_kind::gather_outcomes:
        ok = g->go.cancel(msg);
        break;
      case gentry_kind::wait:
        ok = g->w.cancel(msg);
        break;
      }
      if (ok && g->cancel_wins.fetch_add(1, std::memory_order_relaxed) == 0)
        g->cancel_msg = msg;
      return true;
    }
    entry* e = pick_entry();
    if (!e)
      return false;
    if (e->kind == entry_kind::plain) {
      resolve(r_, *e, op_cancel, message("cancel"));
      return true;
    }
    doom_lock lock(r_, e->doomed);
    const std::string msg = message("cancel");
    if (e->kind == entry_kind::task) {
      if (e->t.cancel(msg))
        e->cancel_requests.fetch_add(1, std::memory_order_relaxed);
    } else if (e->f.cancel(msg) && e->cancel_wins.fetch_add(1, std::memory_order_relaxed) == 0) {
      e->cancel_msg = msg;
    }
    return true;
  }

  /// Several resolvers of one plain future, posted to several threads' contexts at once, and
  /// one more right here.
  bool race() {
    entry* e = pick_entry_if([](const entry& x) { return is_plain(x) && !x.f.done(); });
    if (!e)
      return false;
    const int n = 1 + static_cast<int>(rng_.below(static_cast<std::uint32_t>(r_.workers)));
    for (int i = 0; i < n; ++i) {
      place p = live_place(false, false);
      const int how = op_set + static_cast<int>(rng_.below(5));
      asio::post(p.ex, [r = &r_, e, how, msg = message("race")] { resolve(*r, *e, how, msg); });
    }
    resolve(r_, *e, op_set + static_cast<int>(rng_.below(5)), message("race"));
    return true;
  }

  waiter* new_waiter(waiter_kind kind, bool doomed_target, bool with_signal, const place& where) {
    waiter* w = r_.waiters.reserve();
    if (!w)
      return nullptr;
    w->kind = kind;
    w->made = site_;
    w->where = where;
    w->doomed_target = doomed_target;
    if (with_signal)
      w->signal = std::make_shared<asio::cancellation_signal>();
    return w;
  }

  asio::cancellation_slot slot_of(waiter* w) {
    return w->signal ? w->signal->slot() : asio::cancellation_slot();
  }

  template <class T>
  void spawn_await(waiter* w, const af::future<T>& f, const std::vector<int>& inputs) {
    auto probe = std::make_shared<drop_probe>(r_, *w);
    r_.registered.fetch_add(1, std::memory_order_relaxed);
    asio::co_spawn(w->where.ex, await_coro<T>(&r_, w, f, inputs),
                   asio::bind_cancellation_slot(slot_of(w), [probe](std::exception_ptr e) {
                     if (!probe->fire())
                       return;
                     if (e)
                       fail(probe->site(), "await coroutine ended with an exception");
                     probe->settle();
                   }));
  }

  template <class T>
  void handler_await(waiter* w, const af::future<T>& f, const std::vector<int>& inputs) {
    auto probe = std::make_shared<drop_probe>(r_, *w);
    r_.registered.fetch_add(1, std::memory_order_relaxed);
    round_state* r = &r_;
    auto handler = [r, w, probe, inputs](std::exception_ptr ep, T v) {
      if (!probe->fire())
        return;
      w->ran_on_place = r->running_here(w->where);
      w->obs = ep ? classify(ep) : observe_value(*r, v, inputs);
      probe->settle();
    };
    try {
      f.async_wait(asio::bind_cancellation_slot(
          slot_of(w), asio::bind_executor(w->where.ex, std::move(handler))));
    } catch (...) {
      fail(w->made, "async_wait threw: " + classify(std::current_exception()).describe());
    }
  }

  bool await(bool coro) {
    const bool with_signal = rng_.chance(50);
    if (rng_.chance(25)) {
      gentry* g = r_.gentries.pick(rng_);
      if (!g)
        return false;
      doom_lock lock(r_, g->doomed);
      place p = waiter_place(g->doomed, with_signal);
      waiter* w =
          new_waiter(coro ? waiter_kind::coro : waiter_kind::handler, g->doomed, with_signal, p);
      if (!w)
        return false;
      w->target = g->id;
      w->target_gentry = true;
      w->total_filter = with_signal && rng_.chance(50);
      switch (g->kind) {
      case gentry_kind::gather:
        coro ? spawn_await(w, g->g, g->inputs) : handler_await(w, g->g, g->inputs);
        break;
      case gentry_kind::gather_outcomes:
        coro ? spawn_await(w, g->go, g->inputs) : handler_await(w, g->go, g->inputs);
        break;
      case gentry_kind::wait:
        coro ? spawn_await(w, g->w, g->inputs) : handler_await(w, g->w, g->inputs);
        break;
      }
      table<waiter>::publish(w);
      return true;
    }
    entry* e = pick_entry();
    if (!e)
      return false;
    doom_lock lock(r_, e->doomed);
    place p = waiter_place(e->doomed, with_signal);
    waiter* w =
        new_waiter(coro ? waiter_kind::coro : waiter_kind::handler, e->doomed, with_signal, p);
    if (!w)
      return false;
    w->target = e->id;
    w->total_filter = with_signal && rng_.chance(50);
    coro ? spawn_await(w, e->f, e->inputs) : handler_await(w, e->f, e->inputs);
    table<waiter>::publish(w);
    return true;
  }

  /// Emits a signal into a waiter, from this thread, by posting the emission to the waiter's
  /// executor (Asio's cancellation signals are not thread-safe).
  bool emit() {
    waiter* w = nullptr;
    for (int i = 0; i < 8 && !(w && w->signal); ++i)
      w = r_.waiters.pick(rng_);
    if (!w || !w->signal)
      return false;
    static constexpr asio::cancellation_type types[] = {
        asio::cancellation_type::terminal, asio::cancellation_type::partial,
        asio::cancellation_type::total, asio::cancellation_type::all};
    const asio::cancellation_type type = types[rng_.below(4)];
    const bool on_doomed = w->where.ctx == r_.doom_index();
    doom_lock lock(r_, on_doomed || w->doomed_target);
    if (on_doomed && !r_.doom_alive.load())
      return false;
    w->signals_sent.fetch_or(static_cast<unsigned>(type), std::memory_order_relaxed);
    asio::post(w->where.ex, [r = &r_, sig = w->signal, type, doomed = w->doomed_target] {
      // A terminal signal cancels the awaited future: for one of the doomed pool, that must
      // not overlap the doomed context's destruction.
      doom_lock lock(*r, doomed);
      sig->emit(type);
    });
    return true;
  }

  bool callback() {
    entry* e = pick_entry();
    if (!e)
      return false;
    doom_lock lock(r_, e->doomed);
    const bool bound = rng_.chance(40);
    place p = bound ? live_place(false) : e->home;
    waiter* w = new_waiter(waiter_kind::callback, e->doomed, false, p);
    if (!w)
      return false;
    w->target = e->id;
    auto probe = std::make_shared<drop_probe>(r_, *w);
    r_.registered.fetch_add(1, std::memory_order_relaxed);
    round_state* r = &r_;
    auto cb = [r, w, probe](af::future<payload> f) {
      if (!probe->fire())
        return;
      w->saw_done = f.done();
      w->ran_on_place = r->running_here(w->where);
      w->obs.kind = observed::value;
      probe->settle();
    };
    try {
      if (bound)
        e->f.add_done_callback(asio::bind_executor(p.ex, std::move(cb)));
      else
        e->f.add_done_callback(std::move(cb));
    } catch (...) {
      fail(site_, "add_done_callback threw: " + classify(std::current_exception()).describe());
    }
    table<waiter>::publish(w);
    ++st_.callbacks;
    return true;
  }

  /// Whether an exception from making a combinator is the expected refusal: its result would
  /// live on the doomed context, which is gone.
  int first_input_ctx_ = -1;
  bool refused_on_dead(bool doomed) {
    observed o = classify(std::current_exception());
    if (doomed && !r_.doom_alive.load() && o.kind == observed::invalid_state) {
      ++st_.refused_dead;
      return true;
    }
    fail(site_, "combinator threw: " + o.describe() + " (inputs in the " +
                    (doomed ? "doomed" : "live") + " pool, doomed context " +
                    (r_.doom_alive.load() ? "alive" : "gone") + ", first input's context " +
                    std::to_string(first_input_ctx_) + ")");
    return false;
  }

  std::chrono::steady_clock::duration random_timeout(bool allow_none) {
    switch (rng_.below(allow_none ? 7 : 6)) {
    case 0:
      return -1ms;
    case 1:
      return 0ms;
    case 2:
      return 50us;
    case 3:
      return 300us;
    case 4:
      return 1ms;
    case 5:
      return 1h;
    default:
      return steady::duration::max();
    }
  }

  bool make_gentry(gentry_kind kind) {
    const bool doomed = want_doomed();
    std::vector<entry*> ins = pick_inputs(doomed, 1 + rng_.below(4));
    if (ins.empty())
      return false;
    doom_lock lock(r_, doomed);
    gentry* g = r_.gentries.reserve();
    if (!g)
      return false;
    std::vector<af::future<payload>> fs;
    for (entry* in : ins) {
      fs.push_back(in->f);
      g->inputs.push_back(in->id);
    }
    g->kind = kind;
    g->doomed = doomed;
    g->made = site_;
    g->home = ins.front()->home;
    first_input_ctx_ = g->home.ctx;
    try {
      switch (kind) {
      case gentry_kind::gather:
        g->g = af::gather(std::move(fs));
        break;
      case gentry_kind::gather_outcomes:
        g->go = af::gather(af::return_exceptions, std::move(fs));
        break;
      case gentry_kind::wait: {
        static constexpr af::return_when whens[] = {af::return_when::first_completed,
                                                    af::return_when::first_exception,
                                                    af::return_when::all_completed};
        g->when = whens[rng_.below(3)];
        const auto d = random_timeout(true);
        g->timed = d != steady::duration::max();
        g->w = g->timed ? af::wait(std::move(fs), g->when, d) : af::wait(std::move(fs), g->when);
        break;
      }
      }
    } catch (...) {
      return refused_on_dead(doomed);
    }
    table<gentry>::publish(g);
    return true;
  }

  bool combinator(op_kind k) {
    const bool doomed = want_doomed();
    std::vector<entry*> ins = pick_inputs(doomed, k == op_first_completed ? 1 + rng_.below(4) : 1);
    if (ins.empty())
      return false;
    doom_lock lock(r_, doomed);
    entry* e = r_.entries.reserve();
    if (!e)
      return false;
    std::vector<af::future<payload>> fs;
    for (entry* in : ins) {
      fs.push_back(in->f);
      e->inputs.push_back(in->id);
    }
    e->doomed = doomed;
    e->made = site_;
    e->home = ins.front()->home;
    first_input_ctx_ = e->home.ctx;
    try {
      switch (k) {
      case op_wait_for:
        e->kind = entry_kind::wait_for;
        e->f = af::wait_for(fs.front(), random_timeout(false));
        break;
      case op_first_completed:
        e->kind = entry_kind::first_completed;
        e->f = af::first_completed(std::move(fs));
        break;
      default:
        e->kind = entry_kind::shield;
        e->f = af::shield(fs.front());
        break;
      }
    } catch (...) {
      return refused_on_dead(doomed);
    }
    table<entry>::publish(e);
    return true;
  }

  bool task() {
    const bool doomed = want_doomed();
    std::vector<entry*> ins = pick_inputs(doomed, rng_.below(4));
    doom_lock lock(r_, doomed);
    if (doomed && !r_.doom_alive.load())
      return false;
    entry* e = r_.entries.reserve();
    if (!e)
      return false;
    e->kind = entry_kind::task;
    e->doomed = doomed;
    e->made = site_;
    e->home = doomed ? doomed_place() : live_place(false);
    for (entry* in : ins)
      e->inputs.push_back(in->id);
    e->t = af::create_task(e->home.ex, task_body(&r_, e->id, std::move(ins)));
    e->f = e->t;
    table<entry>::publish(e);
    ++st_.tasks;
    return true;
  }

  bool task_cancel() {
    entry* e = pick_entry_if([](const entry& x) { return x.kind == entry_kind::task; });
    if (!e)
      return false;
    doom_lock lock(r_, e->doomed);
    if (e->t.cancel(message("tcancel")))
      e->cancel_requests.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  bool group() {
    const bool doomed = want_doomed();
    std::vector<entry*> ins = pick_inputs(doomed, 1 + rng_.below(3));
    if (ins.empty())
      return false;
    doom_lock lock(r_, doomed);
    if (doomed && !r_.doom_alive.load())
      return false;
    const bool with_signal = rng_.chance(40);
    place p = doomed ? doomed_place() : live_place(with_signal);
    waiter* w = new_waiter(waiter_kind::group, doomed, with_signal, p);
    if (!w)
      return false;
    for (entry* in : ins)
      w->inputs.push_back(in->id);
    w->total_filter = with_signal && rng_.chance(50);
    const int cancel_child =
        rng_.chance(30) ? static_cast<int>(rng_.below(static_cast<std::uint32_t>(ins.size()))) : -1;
    auto probe = std::make_shared<drop_probe>(r_, *w);
    r_.registered.fetch_add(1, std::memory_order_relaxed);
    asio::co_spawn(p.ex, group_coro(&r_, w, std::move(ins), cancel_child),
                   asio::bind_cancellation_slot(slot_of(w), [probe](std::exception_ptr e) {
                     if (!probe->fire())
                       return;
                     if (e)
                       fail(probe->site(), "task_group coroutine ended with an exception");
                     probe->settle();
                   }));
    table<waiter>::publish(w);
    return true;
  }

  bool sleep() {
    const bool doomed = want_doomed();
    doom_lock lock(r_, doomed);
    if (doomed && !r_.doom_alive.load())
      return false;
    entry* e = r_.entries.reserve();
    if (!e)
      return false;
    e->kind = entry_kind::sleep;
    e->doomed = doomed;
    e->made = site_;
    e->home = doomed ? doomed_place() : live_place(false);
    static constexpr std::chrono::microseconds delays[] = {0us, 0us, 100us, 500us};
    e->f = af::sleep(e->home.ex, delays[rng_.below(4)], payload(e->id));
    table<entry>::publish(e);
    return true;
  }

  bool offload() {
    entry* e = r_.entries.reserve();
    if (!e)
      return false;
    e->kind = entry_kind::offload;
    e->made = site_;
    e->home = live_place(false);
    place pool = live_place(false, false);
    const int id = e->id;
    e->f = af::run_in_executor(e->home.ex, pool.ex, [id] { return payload(id); });
    table<entry>::publish(e);
    return true;
  }

  /// set_result / set_exception on a future that resolves itself must throw and change
  /// nothing.
  bool misuse() {
    entry* e = pick_entry_if([](const entry& x) {
      return x.kind == entry_kind::task || x.kind == entry_kind::sleep ||
             x.kind == entry_kind::wait_for || x.kind == entry_kind::first_completed;
    });
    if (!e)
      return false;
    {
      doom_lock lock(r_, e->doomed);
      try {
        if (rng_.chance(50))
          e->f.set_result(payload(e->id));
        else
          e->f.set_exception(soak_error(e->id));
        fail(e->made, std::string("set_result/set_exception on a ") +
                          entry_kind_names[static_cast<int>(e->kind)] + " did not throw");
      } catch (const af::invalid_state_error&) {
      }
    }
    return true;
  }

  round_state& r_;
  int index_;
  stats& st_;
  prng rng_;
  op_site site_;
  int weight_total_ = 0;
};

// ------------------------------------------------------------------------------------------
// Quiescence and the checks.

/// Worker 0: whether every future of the round is done (resumes where it stopped last time).
bool all_done(round_state& r) {
  for (; r.first_pending_entry < r.entries.size(); ++r.first_pending_entry) {
    entry& e = r.entries.at(r.first_pending_entry);
    if (e.ready.load(std::memory_order_acquire) && !e.f.done())
      return false;
  }
  for (; r.first_pending_gentry < r.gentries.size(); ++r.first_pending_gentry) {
    gentry& g = r.gentries.at(r.first_pending_gentry);
    if (!g.ready.load(std::memory_order_acquire))
      continue;
    const bool done = g.kind == gentry_kind::gather            ? g.g.done()
                      : g.kind == gentry_kind::gather_outcomes ? g.go.done()
                                                               : g.w.done();
    if (!done)
      return false;
  }
  return true;
}

[[noreturn]] void report_stuck(round_state& r) {
  std::fprintf(stderr,
               "soak: FAILED: round %" PRIu64 " not quiescent after %d s (seed %" PRIu64
               "): %ld waiters registered, %ld settled\n",
               r.number, g_opt.round_seconds, g_opt.seed, r.registered.load(), r.settled.load());
  int shown = 0;
  for (std::size_t i = 0; i < r.waiters.size() && shown < 20; ++i) {
    waiter& w = r.waiters.at(i);
    if (!w.ready.load() || w.completions.load() + w.drops.load() != 0)
      continue;
    ++shown;
    std::fprintf(stderr,
                 "  pending %s waiter %d on context %d, target %s %d (made at worker %d, op "
                 "%" PRIu64 ")\n",
                 waiter_kind_names[static_cast<int>(w.kind)], w.id, w.where.ctx,
                 w.target_gentry ? "gentry" : "entry", w.target, w.made.worker, w.made.op);
  }
  for (std::size_t i = 0; i < r.entries.size() && shown < 40; ++i) {
    entry& e = r.entries.at(i);
    if (!e.ready.load() || e.f.done())
      continue;
    ++shown;
    std::fprintf(
        stderr, "  pending %s future %d on context %d (made at worker %d, op %" PRIu64 ")\n",
        entry_kind_names[static_cast<int>(e.kind)], e.id, e.home.ctx, e.made.worker, e.made.op);
  }
  std::fflush(stderr);
  std::_Exit(1);
}

void check_entry(round_state& r, entry& e, stats& st) {
  const observed fin = observe_future(r, e.f, e.inputs);
  const std::string name =
      std::string(entry_kind_names[static_cast<int>(e.kind)]) + " future " + std::to_string(e.id);
  if (fin.kind == observed::none) {
    fail(e.made, name + " is still pending at the end of the round");
    return;
  }
  if (fin.kind == observed::value && (!fin.intact || !origin_allowed(r, e, fin.origin)))
    fail(e.made, name + " holds a foreign or torn value: " + fin.describe());
  if (fin.kind == observed::other || fin.kind == observed::aborted)
    fail(e.made, name + " ended with an unexpected exception: " + fin.describe());

  const int v = e.value_wins.load(), x = e.error_wins.load(), c = e.cancel_wins.load();
  st.resolve_attempts += static_cast<std::uint64_t>(e.resolve_attempts.load());
  st.wins += static_cast<std::uint64_t>(v + x + c);
  if (e.kind == entry_kind::plain && e.resolve_attempts.load() >= 2)
    ++st.contended;
  if (e.kind == entry_kind::plain) {
    const bool ok = (fin.kind == observed::value && v == 1 && x == 0 && c == 0) ||
                    (fin.kind == observed::error && !fin.cancelled_state && v == 0 && x == 1 &&
                     c == 0 && fin.tag == e.id) ||
                    (fin.cancelled_state && v == 0 && x == 0 && c <= 1);
    if (!ok)
      fail(e.made, name + " has " + std::to_string(v) + " set_result, " + std::to_string(x) +
                       " set_exception and " + std::to_string(c) +
                       " cancel winners for the final state " + fin.describe() + " (" +
                       std::to_string(e.resolve_attempts.load()) + " attempts)");
  }
  if (e.kind != entry_kind::task && c > 0) {
    if (c > 1)
      fail(e.made, name + ": cancel() returned true " + std::to_string(c) + " times");
    if (!fin.cancelled_state || fin.msg != e.cancel_msg)
      fail(e.made, name + ": an accepted cancel(\"" + e.cancel_msg +
                       "\") was not the outcome: " + fin.describe());
  }
  auto input_final = [&](std::size_t i) {
    entry& in = r.entries.at(static_cast<std::size_t>(e.inputs[i]));
    return observe_future(r, in.f, in.inputs);
  };
  switch (e.kind) {
  case entry_kind::shield:
    if (!fin.cancelled_state) {
      observed in = input_final(0);
      if (!fin.same_outcome(in))
        fail(e.made, name + " ended " + fin.describe() + " but its inner ended " + in.describe());
    }
    break;
  case entry_kind::wait_for:
    if (!fin.cancelled_state) {
      observed in = input_final(0);
      // Expiry gives timeout_error once the inner ended cancelled; an inner that failed with
      // a timeout_error of its own (a nested wait_for) passes that on.
      if (fin.kind == observed::timeout ? !in.cancelled_state && in.kind != observed::cancelled &&
                                              in.kind != observed::timeout
                                        : !fin.same_outcome(in))
        fail(e.made, name + " ended " + fin.describe() + " but its inner ended " + in.describe());
    }
    break;
  case entry_kind::first_completed:
    if (!fin.cancelled_state) {
      bool found = false;
      for (std::size_t i = 0; i < e.inputs.size() && !found; ++i) {
        observed in = input_final(i);
        found = fin.same_outcome(in) || (fin.kind == observed::value &&
                                         in.kind == observed::value && in.origin == fin.origin);
      }
      if (!found)
        fail(e.made, name + " ended " + fin.describe() + ", the outcome of none of its inputs");
    }
    break;
  case entry_kind::task:
    if (e.body_runs.load() > 1)
      fail(e.made, name + ": the body ran " + std::to_string(e.body_runs.load()) + " times");
    if (fin.kind == observed::value && e.body_ends.load() != 1)
      fail(e.made, name + " has a value but its body did not finish");
    if (fin.kind == observed::error || fin.kind == observed::timeout) {
      bool found = false;
      for (std::size_t i = 0; i < e.inputs.size() && !found; ++i)
        found = fin.same_outcome(input_final(i));
      if (!found)
        fail(e.made, name + " failed with " + fin.describe() + ", from none of its inputs");
    }
    break;
  case entry_kind::sleep:
  case entry_kind::offload:
    if (!fin.cancelled_state && fin.kind != observed::value)
      fail(e.made, name + " ended " + fin.describe());
    break;
  default:
    break;
  }
}

void check_gentry(round_state& r, gentry& g, stats&) {
  const observed fin = g.kind == gentry_kind::gather            ? observe_future(r, g.g, g.inputs)
                       : g.kind == gentry_kind::gather_outcomes ? observe_future(r, g.go, g.inputs)
                                                                : observe_future(r, g.w, g.inputs);
  static const char* const names[] = {"gather", "gather(return_exceptions)", "wait"};
  const std::string name =
      std::string(names[static_cast<int>(g.kind)]) + " result " + std::to_string(g.id);
  if (fin.kind == observed::none) {
    fail(g.made, name + " is still pending at the end of the round");
    return;
  }
  if (!fin.intact)
    fail(g.made, name + " holds a torn value, or a done-list future that was not done");
  const int c = g.cancel_wins.load();
  if (c > 1 || (c == 1 && (!fin.cancelled_state || fin.msg != g.cancel_msg)))
    fail(g.made, name + ": an accepted cancel was not the outcome: " + fin.describe());
  const std::size_t n = g.inputs.size();
  std::vector<observed> ins;
  for (int id : g.inputs) {
    entry& in = r.entries.at(static_cast<std::size_t>(id));
    ins.push_back(observe_future(r, in.f, in.inputs));
  }
  if (fin.cancelled_state)
    return;
  switch (g.kind) {
  case gentry_kind::gather:
    if (fin.kind == observed::value) {
      bool ok = fin.origins.size() == n;
      for (std::size_t i = 0; ok && i < n; ++i)
        ok = ins[i].kind == observed::value && ins[i].origin == fin.origins[i];
      if (!ok)
        fail(g.made, name + ": the values are not the inputs' values in order");
    } else {
      bool found = false;
      for (std::size_t i = 0; i < n && !found; ++i)
        found = fin.same_outcome(ins[i]);
      if (!found)
        fail(g.made, name + " failed with " + fin.describe() + ", from none of its inputs");
    }
    break;
  case gentry_kind::gather_outcomes:
    if (fin.kind != observed::value || fin.parts.size() != n) {
      fail(g.made, name + " ended " + fin.describe());
      break;
    }
    for (std::size_t i = 0; i < n; ++i)
      if (!fin.parts[i].same_outcome(ins[i]))
        fail(g.made, name + ": outcome " + std::to_string(i) + " is " + fin.parts[i].describe() +
                         " but the input ended " + ins[i].describe());
    break;
  case gentry_kind::wait: {
    if (fin.kind != observed::value) {
      fail(g.made, name + " ended " + fin.describe());
      break;
    }
    // The split is a partition of the inputs, each list in input order.
    std::vector<int> all = fin.done;
    all.insert(all.end(), fin.pending.begin(), fin.pending.end());
    std::sort(all.begin(), all.end());
    bool ok = all.size() == n && std::is_sorted(fin.done.begin(), fin.done.end()) &&
              std::is_sorted(fin.pending.begin(), fin.pending.end());
    for (std::size_t i = 0; ok && i < n; ++i)
      ok = all[i] == static_cast<int>(i);
    if (!ok) {
      fail(g.made, name + ": done/pending is not a partition of the inputs in input order");
      break;
    }
    if (!g.timed) {
      bool failed = false;
      for (int i : fin.done)
        failed = failed || (ins[static_cast<std::size_t>(i)].kind != observed::value &&
                            !ins[static_cast<std::size_t>(i)].cancelled_state);
      if ((g.when == af::return_when::all_completed && !fin.pending.empty()) ||
          (g.when == af::return_when::first_completed && fin.done.empty()) ||
          (g.when == af::return_when::first_exception && !fin.pending.empty() && !failed))
        fail(g.made, name + " completed before its condition held");
    }
    break;
  }
  }
}

void check_waiter(round_state& r, waiter& w, stats& st) {
  const std::string name =
      std::string(waiter_kind_names[static_cast<int>(w.kind)]) + " waiter " + std::to_string(w.id);
  const int c = w.completions.load(), d = w.drops.load();
  if (c + d != 1) {
    fail(w.made, name + " completed " + std::to_string(c) + " times and was destroyed uninvoked " +
                     std::to_string(d) + " times");
    return;
  }
  if (d == 1) {
    if (w.where.ctx != r.doom_index())
      fail(w.made, name + " on the live context " + std::to_string(w.where.ctx) +
                       " was destroyed uninvoked");
    ++st.dropped;
    return;
  }
  ++st.completed;
  if (!w.ran_on_place)
    fail(w.made, name + " did not run on its executor (context " + std::to_string(w.where.ctx) +
                     (w.where.strand ? ", strand" : "") + ")");
  if (!w.saw_done)
    fail(w.made, name + " ran with its future not done");
  const unsigned sent = w.signals_sent.load();
  const bool detachable =
      (sent & static_cast<unsigned>(asio::cancellation_type::partial |
                                    asio::cancellation_type::total)) != 0 &&
      (w.kind == waiter_kind::handler || w.total_filter || w.kind == waiter_kind::group);
  const observed& o = w.obs;
  if (o.kind == observed::cancelled)
    ++st.cancelled_seen;
  if (o.kind == observed::timeout)
    ++st.timeouts_seen;
  if (w.kind == waiter_kind::callback)
    return;
  if (w.kind == waiter_kind::group) {
    if (o.kind == observed::value) {
      // Each failure is the (non-cancellation) failure of one of the inputs.
      for (const observed& x : o.failures) {
        bool found = false;
        for (int id : w.inputs) {
          entry& in = r.entries.at(static_cast<std::size_t>(id));
          found =
              found || (!in.f.cancelled() && x.same_outcome(observe_future(r, in.f, in.inputs)));
        }
        if (!found || x.kind == observed::cancelled)
          fail(w.made, name + ": the exception_group holds " + x.describe() +
                           ", a failure of none of its inputs");
      }
    } else if (!((o.kind == observed::cancelled || o.kind == observed::aborted) && sent != 0)) {
      fail(w.made, name + " ended " + o.describe() +
                       (sent ? "" : " without being sent a cancellation signal"));
    }
    return;
  }
  observed fin;
  if (w.target_gentry) {
    gentry& g = r.gentries.at(static_cast<std::size_t>(w.target));
    fin = g.kind == gentry_kind::gather            ? observe_future(r, g.g, g.inputs)
          : g.kind == gentry_kind::gather_outcomes ? observe_future(r, g.go, g.inputs)
                                                   : observe_future(r, g.w, g.inputs);
  } else {
    entry& e = r.entries.at(static_cast<std::size_t>(w.target));
    fin = observe_future(r, e.f, e.inputs);
    if (o.kind == observed::value && (!o.intact || !origin_allowed(r, e, o.origin)))
      fail(w.made, name + " saw a foreign or torn value: " + o.describe());
  }
  bool ok = false;
  switch (o.kind) {
  case observed::cancelled:
    ok = (fin.kind == observed::cancelled && fin.msg == o.msg) || detachable;
    if (ok && !(fin.kind == observed::cancelled && fin.msg == o.msg))
      ++st.detached_seen;
    break;
  case observed::aborted:
    ok = sent != 0;
    break;
  case observed::value:
    ok = o.intact && fin.same_outcome(o);
    break;
  case observed::error:
  case observed::timeout:
    ok = fin.same_outcome(o);
    break;
  default:
    ok = false;
  }
  if (!ok)
    fail(w.made, name + " (target " + std::string(w.target_gentry ? "gentry " : "future ") +
                     std::to_string(w.target) + ", signals sent " + std::to_string(sent) +
                     ") saw " + o.describe() + " but the future ended " + fin.describe());
}

void check_round(round_state& r, stats& st) {
  for (std::size_t i = 0; i < r.entries.size(); ++i)
    if (r.entries.at(i).ready.load())
      check_entry(r, r.entries.at(i), st);
  for (std::size_t i = 0; i < r.gentries.size(); ++i)
    if (r.gentries.at(i).ready.load())
      check_gentry(r, r.gentries.at(i), st);
  for (std::size_t i = 0; i < r.waiters.size(); ++i)
    if (r.waiters.at(i).ready.load())
      check_waiter(r, r.waiters.at(i), st);
}

// ------------------------------------------------------------------------------------------
// The run.

std::atomic<long> lost_exceptions{0};

bool parse(int argc, char** argv, options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](std::uint64_t& out) {
      if (i + 1 >= argc)
        return false;
      char* end = nullptr;
      out = std::strtoull(argv[++i], &end, 0);
      return end && *end == '\0';
    };
    std::uint64_t v = 0;
    if (a == "--seed" && value(v))
      o.seed = v;
    else if (a == "--ops" && value(v))
      o.ops = v;
    else if (a == "--threads" && value(v))
      o.threads = static_cast<int>(v);
    else if (a == "--round-ops" && value(v))
      o.round_ops = v;
    else if (a == "--hang-seconds" && value(v))
      o.hang_seconds = static_cast<int>(v);
    else if (a == "--round-seconds" && value(v))
      o.round_seconds = static_cast<int>(v);
    else if (a == "--no-doom")
      o.doom = false;
    else if (a == "--race-first-use")
      o.race_first_use = true;
    else if (a == "--quiet")
      o.quiet = true;
    else
      return false;
  }
  return o.threads >= 2 && o.threads <= 4 && o.round_ops >= static_cast<std::uint64_t>(o.threads) &&
         o.ops > 0;
}

void watchdog(std::atomic<bool>& finished) {
  std::uint64_t last = g_progress.load();
  auto last_change = steady::now();
  while (!finished.load()) {
    std::this_thread::sleep_for(100ms);
    const std::uint64_t now_progress = g_progress.load();
    if (now_progress != last) {
      last = now_progress;
      last_change = steady::now();
      continue;
    }
    if (steady::now() - last_change > std::chrono::seconds(g_opt.hang_seconds)) {
      std::fprintf(stderr,
                   "soak: FAILED: HANG: no progress for %d s in round %" PRIu64
                   ", phase %s (seed %" PRIu64 "); workers at operations",
                   g_opt.hang_seconds, g_round.load(), phase_names[g_phase.load()], g_opt.seed);
      for (int i = 0; i < g_opt.threads; ++i)
        std::fprintf(stderr, " %" PRIu64, g_worker_op[static_cast<std::size_t>(i)].load());
      std::fprintf(stderr, "\n");
      std::fflush(stderr);
      std::_Exit(3);
    }
  }
}

} // namespace

int main(int argc, char** argv) {
  if (!parse(argc, argv, g_opt)) {
    std::fprintf(stderr,
                 "usage: %s --seed S --ops N --threads T(2..4) [--round-ops R] "
                 "[--hang-seconds H] [--round-seconds B] [--no-doom] [--race-first-use] "
                 "[--quiet]\n",
                 argv[0]);
    return 2;
  }
  const options& opt = g_opt;
  af::set_exception_handler([](std::exception_ptr, std::string_view) {
    lost_exceptions.fetch_add(1, std::memory_order_relaxed);
  });

  const auto start = steady::now();
  std::atomic<bool> finished{false};
  std::thread dog(watchdog, std::ref(finished));

  const int T = opt.threads;
  const std::uint64_t per_worker = opt.round_ops / static_cast<std::uint64_t>(T);
  const std::uint64_t rounds = (opt.ops + per_worker * T - 1) / (per_worker * T);
  std::vector<stats> st(static_cast<std::size_t>(T));
  std::unique_ptr<round_state> current;
  std::barrier sync(T);
  prng round_rng(opt.seed);

  auto body = [&](int index) {
    stats& my = st[static_cast<std::size_t>(index)];
    for (std::uint64_t n = 0; n < rounds; ++n) {
      if (index == 0) {
        g_round.store(n);
        g_phase.store(1);
        current = std::make_unique<round_state>(opt, n, round_rng);
        ++my.rounds;
        if (current->has_doom)
          ++my.doomed_rounds;
      }
      sync.arrive_and_wait();
      round_state& r = *current;
      worker w(r, index, my);
      w.run_operations(per_worker);
      sync.arrive_and_wait();
      if (index == 0)
        g_phase.store(2);
      w.drain();
      sync.arrive_and_wait();
      if (index == 0)
        g_phase.store(3);
      const auto deadline = steady::now() + std::chrono::seconds(opt.round_seconds);
      while (!r.quiet.load(std::memory_order_acquire)) {
        if (w.poll())
          continue;
        if (index == 0 && r.settled.load(std::memory_order_acquire) == r.registered.load() &&
            all_done(r)) {
          r.quiet.store(true, std::memory_order_release);
          break;
        }
        if (steady::now() > deadline && index == 0)
          report_stuck(r);
        w.wait_a_little();
      }
      sync.arrive_and_wait();
      if (index == 0) {
        g_phase.store(4);
        // Everything is done: let the contexts run dry on this thread, check, tear down.
        for (std::size_t i = 0; i < r.ctxs.size(); ++i) {
          if (!r.ctxs[i])
            continue;
          r.guards[i].reset();
          r.ctxs[i]->restart();
          r.ctxs[i]->run();
        }
        check_round(r, my);
        current.reset(); // the tables first (strands, signals, handles), then the contexts
        g_progress.fetch_add(1);
        if (live_payloads.load() != 0 || live_frames.load() != 0 || live_probes.load() != 0)
          fail(op_site{n, -1, 0}, "after the round: " + std::to_string(live_payloads.load()) +
                                      " payloads, " + std::to_string(live_frames.load()) +
                                      " coroutine frames, " + std::to_string(live_probes.load()) +
                                      " handler probes still alive");
        if (!opt.quiet && (n + 1) % std::max<std::uint64_t>(1, rounds / 10) == 0) {
          std::printf("soak: round %" PRIu64 "/%" PRIu64 " done, %.1f s\n", n + 1, rounds,
                      std::chrono::duration<double>(steady::now() - start).count());
          std::fflush(stdout);
        }
      }
      sync.arrive_and_wait();
    }
  };

  std::vector<std::thread> threads;
  for (int i = 1; i < T; ++i)
    threads.emplace_back(body, i);
  body(0);
  for (auto& t : threads)
    t.join();
  const double seconds = std::chrono::duration<double>(steady::now() - start).count();
  finished.store(true);
  dog.join();

  stats total;
  for (const stats& s : st) {
    for (int k = 0; k < op_count; ++k)
      total.ops[static_cast<std::size_t>(k)] += s.ops[static_cast<std::size_t>(k)];
    total.completed += s.completed;
    total.dropped += s.dropped;
    total.callbacks += s.callbacks;
    total.resolve_attempts += s.resolve_attempts;
    total.wins += s.wins;
    total.contended += s.contended;
    total.cancelled_seen += s.cancelled_seen;
    total.detached_seen += s.detached_seen;
    total.timeouts_seen += s.timeouts_seen;
    total.refused_dead += s.refused_dead;
    total.rounds += s.rounds;
    total.doomed_rounds += s.doomed_rounds;
    total.futures += s.futures;
    total.tasks += s.tasks;
  }
  std::uint64_t executed = 0;
  std::printf("soak: seed %" PRIu64 ", threads %d, %" PRIu64 " rounds of %" PRIu64
              " operations (%" PRIu64 " with a context destroyed mid-flight)\n",
              opt.seed, T, total.rounds, per_worker * T, total.doomed_rounds);
  std::printf("soak: operations executed per kind:\n");
  for (int k = 0; k < op_count; ++k) {
    std::printf("  %-18s %12" PRIu64 "\n", op_names[k], total.ops[static_cast<std::size_t>(k)]);
    executed += total.ops[static_cast<std::size_t>(k)];
  }
  std::printf("soak: total %" PRIu64 " operations executed (%" PRIu64
              " drawn; the others found no suitable target)\n",
              executed, rounds * per_worker * T);
  std::printf(
      "soak: waiters completed once %" PRIu64 ", destroyed uninvoked with their context %" PRIu64
      "; resolve attempts %" PRIu64 ", winners %" PRIu64 " (%" PRIu64
      " plain futures with several resolvers, one winner each); cancelled_error seen %" PRIu64
      " (%" PRIu64 " detached waiters), timeouts %" PRIu64
      ", combinators refused on a dead context %" PRIu64 ", lost exceptions reported %ld\n",
      total.completed, total.dropped, total.resolve_attempts, total.wins, total.contended,
      total.cancelled_seen, total.detached_seen, total.timeouts_seen, total.refused_dead,
      lost_exceptions.load());
  std::printf("soak: time %.2f s (%.0f operations/s)\n", seconds,
              static_cast<double>(executed) / seconds);
  if (g_failures.load() != 0) {
    std::printf("soak: FAILED: %ld invariant violations (seed %" PRIu64 ")\n", g_failures.load(),
                opt.seed);
    return 1;
  }
  std::printf("soak: OK\n");
  return 0;
}
