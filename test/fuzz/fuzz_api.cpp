// asio_futures_fuzz_api: a libFuzzer target that reads its input as a program of API calls.
//
// Each input byte string is a program for a small interpreter: an opcode byte, then the
// argument bytes that opcode reads (missing bytes read as 0; test/fuzz/make_corpus.py lists
// them). It runs on one thread, on two io_contexts stepped by hand (`poll_one`, `poll`): no
// threads and no timers that can expire (deadlines are <= 0 or an hour), so every input
// replays exactly. Opcodes make futures on either context, resolve them (set_result,
// try_set_result, set_exception, try_set_exception, cancel), await them from coroutines
// (co_spawn) and handlers with or without a cancellation signal and emit it (directly, or
// posted to the waiter's executor), add and remove done-callbacks, build gather /
// gather(return_exceptions) / wait / wait_for / first_completed / shield / then over chosen
// futures, create tasks that await futures and cancel them, create task groups, give them
// children, join, cancel and destroy them, run functions through run_in_executor, drop
// handles, step a context, destroy the second context mid-program (and make a new one), and
// make the k-th allocation of the next API call fail with std::bad_alloc (as
// test/support/alloc_fault.hpp does for the unit tests).
//
// The invariants (a violation prints the reason and aborts, so libFuzzer saves the input):
//   - nothing the library completes runs inline inside an API call (coroutine resumptions,
//     handlers, callbacks, task bodies run only while a context is polled), and each runs on
//     its own context;
//   - on a single thread, a resolution of a pending future succeeds and one of a done future
//     fails (set_result throws, try_* and cancel return false); a successful one is the
//     outcome at once; a done future's outcome never changes;
//   - a terminal signal into a pending handler wait cancels the future at once, unless a
//     partial/total signal detached the waiter first (then the future is untouched);
//   - self-resolving futures (tasks, sleeps, wait/wait_for/first_completed results) refuse
//     set_result/set_exception; a combinator refuses exactly when the context its result would
//     live on is gone; remove_done_callback removes a pending callback (destroying it) and
//     nothing else (a callback whose context was destroyed is gone already);
//   - an API call that fails to allocate leaves no waiter behind: the handler, callback or
//     joiner it was given has been destroyed, once, uninvoked;
//   - every waiter, callback and joiner completes exactly once, or is destroyed uninvoked
//     with its context (or removed); after the program's end (every held future resolved,
//     the contexts polled until idle), everything whose context lives has completed, values
//     carry their origin and check word, outcomes agree with the inputs' (as in the soak);
//   - after the contexts and the interpreter's tables are destroyed, no payload, coroutine
//     frame or handler probe is alive (and LeakSanitizer finds nothing).
//
// Not built by the interpreter:
//   - a future that a combinator, task or group child uses is never dropped (the checks read
//     the inputs' outcomes), so a combinator result is abandoned (its last observer gone
//     while it is pending) only with inputs that stay held; abandonment with inputs only it
//     held — a coroutine awaiting gather/shield/first_completed/wait over futures only its
//     frame held, destroyed with its context — is covered by the unit tests of each
//     combinator and by their stress tests racing the drop with the inputs' completion;
// Every API call is armed: the allocation-failure defects the fuzzer found (test/repro/) are
// fixed.
//
// FUZZ_API_TRACE=1 prints each operation and the final state of every future and waiter.
#include <asio_futures/asio_futures.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace af = asio_futures;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// ------------------------------------------------------------------------------------------
// Violations.

[[noreturn]] void violation(const char* fmt, ...) {
  std::va_list args;
  va_start(args, fmt);
  std::fprintf(stderr, "fuzz_api: INVARIANT VIOLATED: ");
  std::vfprintf(stderr, fmt, args);
  std::fprintf(stderr, "\n");
  va_end(args);
  std::fflush(stderr);
  std::abort();
}

#define FUZZ_CHECK(cond, ...)                                                                      \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      violation(__VA_ARGS__);                                                                      \
  } while (0)

// ------------------------------------------------------------------------------------------
// Counted objects, the inline detector.

bool trace = false; // FUZZ_API_TRACE set: print each operation and a summary (to explain inputs)
long live_payloads = 0;
long live_frames = 0;
long live_probes = 0;
int api_depth = 0; // > 0 while the interpreter is inside a call into the library

// Allocation failures (as test/support/alloc_fault.hpp does for the unit tests): the opcode
// alloc_fault arms `next_fault`; the next API call then fails its next_fault-th allocation
// (operator new) with std::bad_alloc. Only API calls are armed, never the stepping of a context.
std::size_t next_fault = 0;
std::size_t fail_countdown = 0;
bool fault_fired = false;

/// Marks a call into the library: nothing it completes may run before the call returns.
struct api_call {
  api_call() noexcept {
    if (api_depth++ == 0 && next_fault != 0) {
      fail_countdown = next_fault;
      next_fault = 0;
    }
  }
  api_call(const api_call&) = delete;
  ~api_call() {
    if (--api_depth == 0)
      fail_countdown = 0;
  }
};

void not_inline(const char* what) {
  FUZZ_CHECK(api_depth == 0, "%s ran inline, inside the API call that caused it", what);
}

constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// A future's value: the id of the future that produced it and a check word.
struct payload {
  std::int64_t origin = -1;
  std::uint64_t check = 0;
  payload() noexcept { ++live_payloads; }
  explicit payload(std::int64_t id) noexcept : origin(id), check(mix64(std::uint64_t(id) + 77)) {
    ++live_payloads;
  }
  payload(const payload& o) noexcept : origin(o.origin), check(o.check) { ++live_payloads; }
  payload& operator=(const payload&) noexcept = default;
  ~payload() { --live_payloads; }
  bool intact() const noexcept { return origin >= 0 && check == mix64(std::uint64_t(origin) + 77); }
};

struct fuzz_error : std::runtime_error {
  explicit fuzz_error(std::int64_t t) : std::runtime_error("fuzz_error"), tag(t) {}
  std::int64_t tag;
};

struct frame_probe {
  frame_probe() noexcept { ++live_frames; }
  frame_probe(const frame_probe&) = delete;
  ~frame_probe() { --live_frames; }
};

// ------------------------------------------------------------------------------------------
// Outcomes.

struct observed {
  // oom: std::bad_alloc, which injected allocation failures make legitimate outcomes (a
  // combinator failing to build its result inside an armed set_result; a cancel that cannot
  // build its cancelled_error stores the bad_alloc as the cancellation, src/future.cpp).
  enum kind_t { none, value, error, cancelled, aborted, timeout, invalid_state, other, oom };
  kind_t kind = none;
  bool cancelled_state = false;
  std::int64_t origin = -1;
  bool intact = true;
  std::int64_t tag = -1;
  std::string msg;
  std::vector<std::int64_t> origins;
  std::vector<observed> parts;
  std::vector<int> done, pending;
  bool group_ok = false;
  std::vector<observed> failures;

  bool same_outcome(const observed& o) const {
    if (kind != o.kind || cancelled_state != o.cancelled_state)
      return false;
    switch (kind) {
    case value:
      if (parts.size() != o.parts.size())
        return false;
      for (std::size_t i = 0; i < parts.size(); ++i)
        if (!parts[i].same_outcome(o.parts[i]))
          return false;
      return origin == o.origin && origins == o.origins && done == o.done && pending == o.pending;
    case error:
      return tag == o.tag;
    case cancelled:
      return msg == o.msg;
    default:
      return true;
    }
  }
  /// Same outcome, ignoring whether the future is cancelled() or failed with cancelled_error.
  bool same_result(const observed& o) const {
    observed a = *this, b = o;
    a.cancelled_state = b.cancelled_state = false;
    return a.same_outcome(b);
  }
  std::string describe() const {
    static const char* const names[] = {"none",    "value",         "error", "cancelled", "aborted",
                                        "timeout", "invalid_state", "other", "bad_alloc"};
    std::string s = names[kind];
    if (kind == value && origin >= 0)
      s += "(origin " + std::to_string(origin) + ")";
    if (kind == error)
      s += "(tag " + std::to_string(tag) + ")";
    if (kind == cancelled || kind == other || kind == invalid_state)
      s += "(\"" + msg + "\")";
    if (cancelled_state)
      s += "[cancelled]";
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
  } catch (const fuzz_error& e) {
    o.kind = observed::error;
    o.tag = e.tag;
  } catch (const af::invalid_state_error& e) {
    o.kind = observed::invalid_state;
    o.msg = e.what();
  } catch (const std::bad_alloc&) {
    o.kind = observed::oom;
  } catch (const boost::system::system_error& e) {
    o.kind = e.code() == asio::error::operation_aborted ? observed::aborted : observed::other;
    o.msg = e.what();
  } catch (const std::exception& e) {
    o.kind = observed::other;
    o.msg = e.what();
  } catch (...) {
    o.kind = observed::other;
  }
  return o;
}

// ------------------------------------------------------------------------------------------
// The interpreter's tables.

enum class entry_kind { plain, task, sleep, offload, shield, wait_for, first_completed, then };
const char* const entry_kind_names[] = {"plain",  "task",     "sleep",           "offload",
                                        "shield", "wait_for", "first_completed", "then"};

constexpr std::size_t max_entries = 48;
constexpr std::size_t max_gentries = 16;
constexpr std::size_t max_waiters = 64;
constexpr std::size_t max_groups = 4;

struct entry {
  int id = 0;
  entry_kind kind = entry_kind::plain;
  af::future<payload> f;
  af::task<payload> t;
  int ctx = 0, gen = 0; // the context its executor is on
  std::vector<int> inputs;
  bool dropped = false;         // the handle was reset (only for futures nothing else uses)
  bool failed = false;          // making it failed to allocate (then also `dropped`)
  bool used = false;            // an input of a combinator, task or group child: never dropped
  std::optional<observed> last; // its outcome once seen done
};

enum class gentry_kind { gather, gather_outcomes, wait };

struct gentry {
  int id = 0;
  gentry_kind kind = gentry_kind::gather;
  af::future<std::vector<payload>> g;
  af::future<std::vector<af::outcome<payload>>> go;
  af::future<af::wait_result<payload>> w;
  af::return_when when = af::return_when::all_completed;
  bool timed = false;
  int ctx = 0, gen = 0;
  std::vector<int> inputs;
  std::optional<observed> last;

  bool done() const {
    return kind == gentry_kind::gather            ? g.done()
           : kind == gentry_kind::gather_outcomes ? go.done()
                                                  : w.done();
  }
};

enum class waiter_kind { coro, handler, callback, join };

struct waiter {
  int id = 0;
  waiter_kind kind = waiter_kind::coro;
  int target = -1; // entry, gentry (target_gentry) or group index
  bool target_gentry = false;
  int ctx = 0, gen = 0; // where it runs
  std::shared_ptr<asio::cancellation_signal> signal;
  unsigned sent = 0;      // cancellation types emitted
  bool detached = false;  // a partial/total signal reached it while its future was pending
  bool uncertain = false; // a posted partial/total signal may have detached it
  bool refused = false;   // an async_join refused at initiation (its handler destroyed)
  bool total_filter = false;
  int completions = 0, drops = 0;
  observed obs;
  af::callback_id callback;
  bool removed = false;
};

struct group_rec {
  std::unique_ptr<af::task_group> tg;
  int ctx = 0, gen = 0;
  std::vector<af::task<payload>> kids;
  std::vector<int> kid_inputs;
  bool join_pending = false;
  bool joiner_signalled = false; // a join was sent a signal: joins may end cancelled
};

/// Shared by the copies of a handler: destroyed with `fired_` false means destroyed uninvoked.
class drop_probe {
public:
  explicit drop_probe(waiter& w) noexcept : w_(&w) { ++live_probes; }
  drop_probe(const drop_probe&) = delete;
  ~drop_probe() {
    if (!fired_)
      ++w_->drops;
    --live_probes;
  }
  waiter& fire(const char* what) {
    not_inline(what);
    FUZZ_CHECK(!fired_ && w_->completions == 0 && w_->drops == 0, "waiter %d completed twice",
               w_->id);
    fired_ = true;
    ++w_->completions;
    return *w_;
  }

private:
  waiter* w_;
  bool fired_ = false;
};

/// The input's bytes.
class reader {
public:
  reader(const std::uint8_t* data, std::size_t size) noexcept : data_(data), size_(size) {}
  bool done() const noexcept { return pos_ >= size_; }
  std::uint8_t byte() noexcept { return pos_ < size_ ? data_[pos_++] : 0; }

private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// ------------------------------------------------------------------------------------------
// The interpreter.

/// What the tables held before an operation (to tell what it made if it failed to allocate).
struct op_mark {
  std::size_t entries, gentries, waiters;
};

class program;

template <class T>
asio::awaitable<void> await_coro(program* p, waiter* w, af::future<T> f, std::vector<int> inputs);
asio::awaitable<payload> task_body(program* p, int self, std::vector<int> inputs);
asio::awaitable<payload> kid_body(program* p, int input);

class program {
public:
  program(const std::uint8_t* data, std::size_t size) : in_(data, size) {
    for (auto& c : ctx_)
      c.io = std::make_unique<asio::io_context>();
    // Never reallocated: coroutines and handlers keep references into these.
    entries_.reserve(max_entries);
    gentries_.reserve(max_gentries);
  }

  void run() {
    for (int n = 0; n < 1500 && !in_.done(); ++n) {
      const op_mark mark{entries_.size(), gentries_.size(), waiters_.size()};
      fault_fired = false;
      try {
        execute(in_.byte());
      } catch (const std::bad_alloc&) {
        FUZZ_CHECK(fault_fired, "std::bad_alloc without an injected allocation failure");
        allocation_failed(mark);
      }
      FUZZ_CHECK(api_depth == 0 && fail_countdown == 0, "an API call scope leaked");
      check_sticky();
    }
    next_fault = 0;
    finish();
  }

  /// An API call of the last operation failed to allocate. What it was making is abandoned:
  /// a future that was never made is treated as dropped, a combinator result removed, and a
  /// waiter, callback or joiner must have been destroyed uninvoked, once, by the failed call
  /// ("leaves no waiter behind").
  void allocation_failed(const op_mark& mark) {
    for (std::size_t i = mark.entries; i < entries_.size(); ++i)
      if (!entries_[i].f.valid()) {
        entries_[i].dropped = true;
        entries_[i].failed = true;
      }
    while (gentries_.size() > mark.gentries) {
      gentry& g = gentries_.back();
      if (g.g.valid() || g.go.valid() || g.w.valid())
        break;
      gentries_.pop_back();
    }
    for (std::size_t i = mark.waiters; i < waiters_.size(); ++i) {
      waiter& w = *waiters_[i];
      w.refused = true;
      FUZZ_CHECK(w.completions == 0 && w.drops == 1,
                 "the handler of an operation that failed to allocate was not destroyed once "
                 "(%s %d: completions %d, drops %d)",
                 w.kind == waiter_kind::callback ? "callback" : "waiter", w.id, w.completions,
                 w.drops);
    }
  }

  // --- used by the coroutines -------------------------------------------------------------

  entry& at(int id) { return entries_[static_cast<std::size_t>(id)]; }

  bool running_on(int c, int gen) {
    return alive(c, gen) && ctx_[c].io->get_executor().running_in_this_thread();
  }

  bool origin_allowed(const entry& e, std::int64_t origin, int depth = 0) {
    if (depth > 64)
      return false;
    switch (e.kind) {
    case entry_kind::shield:
    case entry_kind::wait_for:
      return origin_allowed(at(e.inputs[0]), origin, depth + 1);
    case entry_kind::first_completed:
      for (int i : e.inputs)
        if (origin_allowed(at(i), origin, depth + 1))
          return true;
      return false;
    default:
      return origin == e.id;
    }
  }

  void check_value(const entry& e, const payload& v, const char* who) {
    FUZZ_CHECK(v.intact() && origin_allowed(e, v.origin),
               "%s got a foreign or torn value (origin %lld) from %s future %d", who,
               static_cast<long long>(v.origin), entry_kind_names[static_cast<int>(e.kind)], e.id);
  }

  observed observe_value(const payload& v, const std::vector<int>&) {
    observed o;
    o.kind = observed::value;
    o.origin = v.origin;
    o.intact = v.intact();
    return o;
  }
  observed observe_value(const std::vector<payload>& v, const std::vector<int>&) {
    observed o;
    o.kind = observed::value;
    for (const payload& x : v) {
      o.origins.push_back(x.origin);
      o.intact = o.intact && x.intact();
    }
    return o;
  }
  observed observe_value(const std::vector<af::outcome<payload>>& v, const std::vector<int>&) {
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
  observed observe_value(const af::wait_result<payload>& v, const std::vector<int>& inputs) {
    observed o;
    o.kind = observed::value;
    std::vector<bool> used(inputs.size(), false);
    auto position = [&](const af::future<payload>& f) {
      for (std::size_t i = 0; i < inputs.size(); ++i)
        if (!used[i] && at(inputs[i]).f == f) {
          used[i] = true;
          return static_cast<int>(i);
        }
      return -1;
    };
    for (const auto& f : v.done) {
      o.done.push_back(position(f));
      o.intact = o.intact && f.done();
    }
    for (const auto& f : v.pending)
      o.pending.push_back(position(f));
    return o;
  }

  template <class T>
  observed observe_future(const af::future<T>& f, const std::vector<int>& inputs) {
    observed o;
    if (!f.done())
      return o;
    if (f.cancelled()) {
      try {
        (void)f.exception();
        o.kind = observed::other;
      } catch (...) {
        o = classify(std::current_exception());
      }
      o.cancelled_state = true;
      return o;
    }
    if (std::exception_ptr ep = f.exception())
      return classify(ep);
    return observe_value(f.result(), inputs);
  }

  observed observe_gentry(gentry& g) {
    switch (g.kind) {
    case gentry_kind::gather:
      return observe_future(g.g, g.inputs);
    case gentry_kind::gather_outcomes:
      return observe_future(g.go, g.inputs);
    default:
      return observe_future(g.w, g.inputs);
    }
  }

private:
  struct context_slot {
    std::unique_ptr<asio::io_context> io;
    int gen = 0;
  };

  bool alive(int c, int gen) const { return ctx_[c].io && ctx_[c].gen == gen; }
  asio::any_io_executor executor(int c) { return ctx_[c].io->get_executor(); }

  /// A live context chosen by `b`.
  int pick_ctx(std::uint8_t b) const { return ctx_[1].io && (b & 1) ? 1 : 0; }

  entry* pick_entry(std::uint8_t b, bool allow_dropped = false) {
    if (entries_.empty())
      return nullptr;
    entry& e = entries_[b % entries_.size()];
    return (!e.dropped || allow_dropped) ? &e : nullptr;
  }

  entry* new_entry(entry_kind kind, int c) {
    if (entries_.size() >= max_entries)
      return nullptr;
    entry& e = entries_.emplace_back();
    e.id = static_cast<int>(entries_.size()) - 1;
    e.kind = kind;
    e.ctx = c;
    e.gen = ctx_[c].gen;
    return &e;
  }

  waiter* new_waiter(waiter_kind kind, int c) {
    if (waiters_.size() >= max_waiters)
      return nullptr;
    waiter& w = *waiters_.emplace_back(std::make_unique<waiter>());
    w.id = static_cast<int>(waiters_.size()) - 1;
    w.kind = kind;
    w.ctx = c;
    w.gen = ctx_[c].gen;
    return &w;
  }

  std::vector<int> pick_inputs(std::size_t n) {
    // then() results are not inputs: a then() source may be dropped unresolved while a waiter
    // keeps it alive, leaving the result pending until the context goes (documented).
    std::vector<int> v;
    for (std::size_t i = 0; i < n; ++i)
      if (entry* e = pick_entry(in_.byte()); e && e->kind != entry_kind::then)
        v.push_back(e->id);
    return v;
  }

  std::string message() { return "m" + std::to_string(in_.byte()); }

  static asio::cancellation_type signal_type(std::uint8_t b) {
    static constexpr asio::cancellation_type types[] = {
        asio::cancellation_type::terminal, asio::cancellation_type::partial,
        asio::cancellation_type::total, asio::cancellation_type::all};
    return types[b % 4];
  }

  static std::chrono::steady_clock::duration deadline(std::uint8_t b) {
    static constexpr std::chrono::steady_clock::duration ds[] = {-1ms, 0ms, 1h};
    return ds[b % 3];
  }

  /// True if the future the combinator's result would live on is on a destroyed context.
  bool home_dead(const entry& e) const { return !alive(e.ctx, e.gen); }

  // --- opcodes ------------------------------------------------------------------------------

  enum opcode : std::uint8_t {
    op_make,
    op_set_result,
    op_try_set_result,
    op_set_exception,
    op_try_set_exception,
    op_cancel,
    op_await_coro,
    op_await_handler,
    op_emit,
    op_callback,
    op_remove_callback,
    op_gather,
    op_wait,
    op_wait_for,
    op_first_completed,
    op_shield,
    op_then,
    op_task,
    op_task_cancel,
    op_group_new,
    op_group_task,
    op_group_join,
    op_group_destroy,
    op_group_cancel_child,
    op_drop,
    op_step,
    op_poll,
    op_destroy_context,
    op_new_context,
    op_sleep,
    op_offload,
    op_misuse,
    op_alloc_fault,
    op_count
  };

  static constexpr const char* op_names[] = {"make",
                                             "set_result",
                                             "try_set_result",
                                             "set_exception",
                                             "try_set_exception",
                                             "cancel",
                                             "await_coro",
                                             "await_handler",
                                             "emit",
                                             "callback",
                                             "remove_callback",
                                             "gather",
                                             "wait",
                                             "wait_for",
                                             "first_completed",
                                             "shield",
                                             "then",
                                             "task",
                                             "task_cancel",
                                             "group_new",
                                             "group_task",
                                             "group_join",
                                             "group_destroy",
                                             "group_cancel_child",
                                             "drop",
                                             "step",
                                             "poll",
                                             "destroy_context",
                                             "new_context",
                                             "sleep",
                                             "offload",
                                             "misuse",
                                             "alloc_fault"};
  static_assert(sizeof(op_names) / sizeof(op_names[0]) == op_count);

  void execute(std::uint8_t byte) {
    if (trace)
      std::fprintf(stderr, "op %s (entries %zu, waiters %zu)\n", op_names[byte % op_count],
                   entries_.size(), waiters_.size());
    switch (static_cast<opcode>(byte % op_count)) {
    case op_make:
      return make();
    case op_set_result:
    case op_try_set_result:
    case op_set_exception:
    case op_try_set_exception:
    case op_cancel:
      return resolve(static_cast<opcode>(byte % op_count));
    case op_await_coro:
      return await(true);
    case op_await_handler:
      return await(false);
    case op_emit:
      return emit();
    case op_callback:
      return callback();
    case op_remove_callback:
      return remove_callback();
    case op_gather:
    case op_wait:
      return make_gentry(byte % op_count == op_wait);
    case op_wait_for:
    case op_first_completed:
    case op_shield:
    case op_then:
      return combinator(static_cast<opcode>(byte % op_count));
    case op_task:
      return task();
    case op_task_cancel:
      return task_cancel();
    case op_group_new:
      return group_new();
    case op_group_task:
      return group_task();
    case op_group_join:
      return group_join();
    case op_group_destroy:
      return group_destroy();
    case op_group_cancel_child:
      return group_cancel_child();
    case op_drop:
      return drop();
    case op_step:
      return step();
    case op_poll:
      return poll_all();
    case op_destroy_context:
      return destroy_context();
    case op_new_context:
      return new_context();
    case op_sleep:
      return sleep();
    case op_offload:
      return offload();
    case op_misuse:
      return misuse();
    case op_alloc_fault:
      next_fault = 1 + in_.byte() % 24;
      return;
    default:
      return;
    }
  }

  void make() {
    const int c = pick_ctx(in_.byte());
    entry* e = new_entry(entry_kind::plain, c);
    if (!e)
      return;
    api_call call;
    e->f = af::future<payload>(executor(c));
  }

  void resolve(opcode how) {
    entry* e = pick_entry(in_.byte());
    if (!e)
      return;
    const bool was_done = e->f.done();
    const std::string msg = message();
    if (how == op_cancel) {
      bool ok;
      {
        api_call call;
        ok = e->kind == entry_kind::task ? e->t.cancel(msg) : e->f.cancel(msg);
      }
      FUZZ_CHECK(ok == !was_done, "cancel() on a %s %s future %d returned %d",
                 was_done ? "done" : "pending", entry_kind_names[static_cast<int>(e->kind)], e->id,
                 int(ok));
      if (ok && e->kind != entry_kind::task) {
        observed o = observe_future(e->f, e->inputs);
        FUZZ_CHECK(o.cancelled_state && (o.msg == msg || o.kind == observed::oom),
                   "an accepted cancel(\"%s\") of %s future %d left it %s", msg.c_str(),
                   entry_kind_names[static_cast<int>(e->kind)], e->id, o.describe().c_str());
      }
      return;
    }
    if (e->kind != entry_kind::plain)
      return;
    bool ok = false;
    {
      api_call call;
      switch (how) {
      case op_set_result:
        try {
          e->f.set_result(payload(e->id));
          ok = true;
        } catch (const af::invalid_state_error&) {
        }
        break;
      case op_try_set_result:
        ok = e->f.try_set_result(payload(e->id));
        break;
      case op_set_exception:
        try {
          e->f.set_exception(fuzz_error(e->id));
          ok = true;
        } catch (const af::invalid_state_error&) {
        }
        break;
      default:
        ok = e->f.try_set_exception(std::make_exception_ptr(fuzz_error(e->id)));
        break;
      }
    }
    FUZZ_CHECK(ok == !was_done, "resolving the %s future %d %s", was_done ? "done" : "pending",
               e->id, ok ? "succeeded" : "failed");
    if (ok) {
      observed o = observe_future(e->f, e->inputs);
      const bool value = how == op_set_result || how == op_try_set_result;
      FUZZ_CHECK(value ? o.kind == observed::value && o.origin == e->id
                       : o.kind == observed::error && o.tag == e->id,
                 "future %d was resolved but holds %s", e->id, o.describe().c_str());
    }
  }

  template <class T>
  void start_await(waiter* w, const af::future<T>& f, const std::vector<int>& inputs, bool coro) {
    auto probe = std::make_shared<drop_probe>(*w);
    asio::cancellation_slot slot = w->signal ? w->signal->slot() : asio::cancellation_slot();
    api_call call;
    if (coro) {
      asio::co_spawn(
          executor(w->ctx), await_coro<T>(this, w, f, inputs),
          asio::bind_cancellation_slot(slot, [probe = std::move(probe)](std::exception_ptr e) {
            waiter& me = probe->fire("a co_spawn completion");
            FUZZ_CHECK(!e, "await coroutine %d ended with an exception", me.id);
          }));
      return;
    }
    const int c = w->ctx, gen = w->gen;
    auto handler = [this, probe = std::move(probe), inputs, c, gen](std::exception_ptr ep, T v) {
      waiter& me = probe->fire("a wait handler");
      FUZZ_CHECK(running_on(c, gen), "wait handler %d ran outside its context", me.id);
      me.obs = ep ? classify(ep) : observe_value(v, inputs);
    };
    try {
      f.async_wait(
          asio::bind_cancellation_slot(slot, asio::bind_executor(executor(c), std::move(handler))));
    } catch (const std::bad_alloc&) {
      throw;
    } catch (...) {
      violation("async_wait threw %s", classify(std::current_exception()).describe().c_str());
    }
  }

  void await(bool coro) {
    const std::uint8_t sel = in_.byte(), flags = in_.byte();
    const int c = pick_ctx(flags >> 4);
    waiter* w = nullptr;
    if (flags & 4) {
      if (gentries_.empty())
        return;
      gentry& g = gentries_[sel % gentries_.size()];
      if (!(w = new_waiter(coro ? waiter_kind::coro : waiter_kind::handler, c)))
        return;
      w->target = g.id;
      w->target_gentry = true;
    } else {
      entry* e = pick_entry(sel);
      if (!e || !(w = new_waiter(coro ? waiter_kind::coro : waiter_kind::handler, c)))
        return;
      w->target = e->id;
    }
    if (flags & 1)
      w->signal = std::make_shared<asio::cancellation_signal>();
    w->total_filter = (flags & 2) != 0;
    if (w->target_gentry) {
      gentry& g = gentries_[static_cast<std::size_t>(w->target)];
      switch (g.kind) {
      case gentry_kind::gather:
        return start_await(w, g.g, g.inputs, coro);
      case gentry_kind::gather_outcomes:
        return start_await(w, g.go, g.inputs, coro);
      default:
        return start_await(w, g.w, g.inputs, coro);
      }
    }
    entry& e = at(w->target);
    start_await(w, e.f, e.inputs, coro);
  }

  bool target_dropped(const waiter& w) { return !w.target_gentry && at(w.target).dropped; }

  bool target_pending(const waiter& w) {
    if (w.target_gentry)
      return !gentries_[static_cast<std::size_t>(w.target)].done();
    return !at(w.target).f.done();
  }

  void emit() {
    if (waiters_.empty())
      return;
    waiter& w = *waiters_[in_.byte() % waiters_.size()];
    const std::uint8_t b = in_.byte();
    const asio::cancellation_type type = signal_type(b);
    if (!w.signal || !alive(w.ctx, w.gen) || w.kind == waiter_kind::join)
      return emit_other(w, type, b);
    const unsigned bits = static_cast<unsigned>(type);
    const bool terminal = (bits & static_cast<unsigned>(asio::cancellation_type::terminal)) != 0;
    const bool detaching = (bits & static_cast<unsigned>(asio::cancellation_type::partial |
                                                         asio::cancellation_type::total)) != 0;
    w.sent |= bits;
    if (b & 4) { // posted to the waiter's executor, as another thread would
      asio::post(executor(w.ctx), [sig = w.signal, type] { sig->emit(type); });
      w.uncertain = w.uncertain || detaching;
      return;
    }
    if (target_dropped(w)) {
      api_call call;
      w.signal->emit(type);
      return;
    }
    // Directly, on this thread (the only one running the waiter's context).
    const bool pending = w.completions == 0 && w.drops == 0 && target_pending(w);
    const bool plain_target = w.target_gentry || at(w.target).kind != entry_kind::task;
    const bool was_detached = w.detached;
    {
      api_call call;
      w.signal->emit(type);
    }
    if (w.kind != waiter_kind::handler || !pending || !plain_target || w.uncertain)
      return; // a coroutine may not have reached its wait yet (the signal stays pending)
    if (terminal && !was_detached) {
      FUZZ_CHECK(!target_pending(w),
                 "a terminal signal into handler waiter %d did not cancel its pending future",
                 w.id);
    } else if (was_detached) {
      FUZZ_CHECK(target_pending(w),
                 "a signal into handler waiter %d, detached earlier, changed its future", w.id);
    }
    if (detaching && !terminal)
      w.detached = true;
  }

  /// Signals into joiners, and into waiters whose context is gone (nothing to do then).
  void emit_other(waiter& w, asio::cancellation_type type, std::uint8_t b) {
    if (!w.signal || !alive(w.ctx, w.gen))
      return;
    w.sent |= static_cast<unsigned>(type);
    if (w.kind == waiter_kind::join) {
      groups_[static_cast<std::size_t>(w.target)]->joiner_signalled = true;
    }
    if (b & 4) {
      asio::post(executor(w.ctx), [sig = w.signal, type] { sig->emit(type); });
      return;
    }
    api_call call;
    w.signal->emit(type);
  }

  void callback() {
    entry* e = pick_entry(in_.byte());
    const std::uint8_t flags = in_.byte();
    if (!e)
      return;
    const bool bound = flags & 1;
    const int c = bound ? pick_ctx(flags >> 1) : e->ctx;
    waiter* w = new_waiter(waiter_kind::callback, c);
    if (!w)
      return;
    w->gen = bound ? ctx_[c].gen : e->gen;
    w->target = e->id;
    auto probe = std::make_shared<drop_probe>(*w);
    const int gen = w->gen;
    auto cb = [this, probe = std::move(probe), c, gen](af::future<payload> f) {
      waiter& me = probe->fire("a done-callback");
      FUZZ_CHECK(f.done(), "done-callback %d ran with its future pending", me.id);
      FUZZ_CHECK(running_on(c, gen), "done-callback %d ran outside its context", me.id);
    };
    api_call call;
    try {
      w->callback = bound ? e->f.add_done_callback(asio::bind_executor(executor(c), std::move(cb)))
                          : e->f.add_done_callback(std::move(cb));
    } catch (const std::bad_alloc&) {
      throw;
    } catch (...) {
      violation("add_done_callback threw %s",
                classify(std::current_exception()).describe().c_str());
    }
  }

  void remove_callback() {
    if (waiters_.empty())
      return;
    waiter& w = *waiters_[in_.byte() % waiters_.size()];
    if (w.kind != waiter_kind::callback || w.removed || w.refused || at(w.target).dropped)
      return;
    entry& e = at(w.target);
    const bool pending = !e.f.done();
    // A callback is registered with the context it runs on: that context's destruction
    // destroyed it (uninvoked) and took it off the future's list.
    const bool gone = w.drops > 0;
    std::size_t n;
    {
      api_call call;
      n = e.f.remove_done_callback(w.callback);
    }
    FUZZ_CHECK(n == (pending && !gone ? 1u : 0u),
               "remove_done_callback of callback %d (%s) on a %s future removed %zu", w.id,
               gone ? "destroyed with its context" : "live", pending ? "pending" : "done", n);
    if (n == 1) {
      w.removed = true;
      FUZZ_CHECK(w.completions == 0 && w.drops == 1,
                 "a removed callback %d was not destroyed (completions %d, drops %d)", w.id,
                 w.completions, w.drops);
    }
  }

  void make_gentry(bool is_wait) {
    const std::uint8_t flags = in_.byte();
    std::vector<int> ins = pick_inputs(1 + flags % 4);
    if (ins.empty() || gentries_.size() >= max_gentries)
      return;
    gentry& g = gentries_.emplace_back();
    g.id = static_cast<int>(gentries_.size()) - 1;
    g.inputs = ins;
    g.ctx = at(ins[0]).ctx;
    g.gen = at(ins[0]).gen;
    std::vector<af::future<payload>> fs;
    for (int i : ins)
      fs.push_back(at(i).f);
    const bool dead = home_dead(at(ins[0]));
    bool threw = false;
    {
      api_call call;
      try {
        if (is_wait) {
          g.kind = gentry_kind::wait;
          static constexpr af::return_when whens[] = {af::return_when::first_completed,
                                                      af::return_when::first_exception,
                                                      af::return_when::all_completed};
          g.when = whens[(flags >> 2) % 3];
          g.timed = (flags & 0x20) != 0;
          g.w = g.timed ? af::wait(std::move(fs), g.when, deadline(flags >> 6))
                        : af::wait(std::move(fs), g.when);
        } else if (flags & 0x10) {
          g.kind = gentry_kind::gather_outcomes;
          g.go = af::gather(af::return_exceptions, std::move(fs));
        } else {
          g.kind = gentry_kind::gather;
          g.g = af::gather(std::move(fs));
        }
      } catch (const af::invalid_state_error&) {
        threw = true;
      }
    }
    FUZZ_CHECK(threw == dead, "%s over inputs on a %s context %s", is_wait ? "wait" : "gather",
               dead ? "destroyed" : "live", threw ? "threw" : "did not throw");
    if (threw) {
      gentries_.pop_back();
      return;
    }
    for (int i : ins)
      at(i).used = true;
  }

  void combinator(opcode op) {
    const std::uint8_t flags = in_.byte();
    std::vector<int> ins = pick_inputs(op == op_first_completed ? 1 + flags % 4 : 1);
    if (ins.empty())
      return;
    entry& first = at(ins[0]);
    const bool dead = home_dead(first);
    const bool inner_done = first.f.done();
    entry_kind kind = op == op_wait_for          ? entry_kind::wait_for
                      : op == op_first_completed ? entry_kind::first_completed
                      : op == op_shield          ? entry_kind::shield
                                                 : entry_kind::then;
    entry* e = new_entry(kind, first.ctx);
    if (!e)
      return;
    e->gen = first.gen;
    e->inputs = ins;
    std::vector<af::future<payload>> fs;
    for (int i : ins)
      fs.push_back(at(i).f);
    bool threw = false;
    {
      api_call call;
      try {
        switch (op) {
        case op_wait_for:
          e->f = af::wait_for(fs[0], deadline(flags >> 2));
          break;
        case op_first_completed:
          e->f = af::first_completed(std::move(fs));
          break;
        case op_shield:
          e->f = af::shield(fs[0]);
          break;
        default: {
          const int id = e->id;
          const int c = first.ctx, gen = first.gen;
          e->f = fs[0].then([this, id, c, gen, src = ins[0]](const payload& v) {
            not_inline("a then() continuation");
            FUZZ_CHECK(running_on(c, gen), "a then() continuation ran outside its context");
            check_value(at(src), v, "a then() continuation");
            return payload(id);
          });
          break;
        }
        }
      } catch (const af::invalid_state_error&) {
        threw = true;
      }
    }
    // shield returns a done inner itself, whatever its context.
    const bool expect_throw = dead && !(op == op_shield && inner_done);
    FUZZ_CHECK(threw == expect_throw, "%s over a future on a %s context %s",
               entry_kind_names[static_cast<int>(kind)], dead ? "destroyed" : "live",
               threw ? "threw" : "did not throw");
    if (threw) {
      entries_.pop_back();
      return;
    }
    if (kind != entry_kind::then)
      for (int i : ins)
        at(i).used = true;
  }

  void task() {
    const std::uint8_t flags = in_.byte();
    const int c = pick_ctx(flags);
    std::vector<int> ins = pick_inputs((flags >> 1) % 4);
    entry* e = new_entry(entry_kind::task, c);
    if (!e)
      return;
    e->inputs = ins;
    for (int i : ins)
      at(i).used = true;
    api_call call;
    e->t = af::create_task(executor(c), task_body(this, e->id, ins));
    e->f = e->t;
  }

  void task_cancel() {
    entry* e = pick_entry(in_.byte());
    const std::string msg = message();
    if (!e || e->kind != entry_kind::task)
      return;
    const bool was_done = e->t.done();
    const int before = e->t.cancelling();
    bool ok;
    {
      api_call call;
      ok = e->t.cancel(msg);
    }
    FUZZ_CHECK(ok == !was_done, "task %d: cancel() returned %d on a %s task", e->id, int(ok),
               was_done ? "done" : "pending");
    FUZZ_CHECK(!ok || e->t.cancelling() == before + 1, "task %d: cancelling() did not go up",
               e->id);
  }

  group_rec* pick_group(std::uint8_t b) {
    if (groups_.empty())
      return nullptr;
    group_rec& g = *groups_[b % groups_.size()];
    return g.tg && alive(g.ctx, g.gen) ? &g : nullptr;
  }

  void group_new() {
    const std::uint8_t b = in_.byte();
    if (groups_.size() >= max_groups)
      return;
    group_rec& g = *groups_.emplace_back(std::make_unique<group_rec>());
    g.ctx = pick_ctx(b);
    g.gen = ctx_[g.ctx].gen;
    api_call call;
    g.tg = std::make_unique<af::task_group>(executor(g.ctx));
  }

  void group_cancel_child() {
    group_rec* g = pick_group(in_.byte());
    const std::uint8_t b = in_.byte();
    const std::string msg = message();
    if (!g || g->kids.empty())
      return;
    af::task<payload>& kid = g->kids[b % g->kids.size()];
    const bool was_done = kid.done();
    bool ok;
    {
      api_call call;
      ok = kid.cancel(msg);
    }
    FUZZ_CHECK(ok == !was_done, "a group child's cancel() returned %d on a %s child", int(ok),
               was_done ? "done" : "pending");
  }

  void group_task() {
    group_rec* g = pick_group(in_.byte());
    entry* e = pick_entry(in_.byte());
    if (!g || !e)
      return;
    e->used = true;
    // The records grow before the call: an allocation failure of ours after the child was
    // made would be taken for the call's.
    g->kids.reserve(g->kids.size() + 1);
    g->kid_inputs.reserve(g->kid_inputs.size() + 1);
    af::task<payload> kid;
    {
      api_call call;
      try {
        kid = g->tg->create_task(kid_body(this, e->id));
      } catch (const af::invalid_state_error&) {
        return; // joined, or shutting down (a child failed, the joiner was cancelled)
      }
    }
    g->kids.push_back(kid);
    g->kid_inputs.push_back(e->id);
  }

  void group_join() {
    const std::uint8_t b = in_.byte(), flags = in_.byte();
    group_rec* g = pick_group(b);
    if (!g)
      return;
    waiter* w = new_waiter(waiter_kind::join, pick_ctx(flags));
    if (!w)
      return;
    w->target = static_cast<int>(b % groups_.size());
    if (flags & 2)
      w->signal = std::make_shared<asio::cancellation_signal>();
    auto probe = std::make_shared<drop_probe>(*w);
    asio::cancellation_slot slot = w->signal ? w->signal->slot() : asio::cancellation_slot();
    const int c = w->ctx, gen = w->gen;
    const bool was_pending = g->join_pending;
    bool threw = false;
    {
      api_call call;
      try {
        g->tg->async_join(asio::bind_cancellation_slot(
            slot, asio::bind_executor(executor(c), [this, probe = std::move(probe), c, gen,
                                                    g](std::exception_ptr e) {
              waiter& me = probe->fire("a task_group join");
              FUZZ_CHECK(running_on(c, gen), "join %d completed outside its context", me.id);
              g->join_pending = false;
              me.obs = e ? classify(e) : observed{};
              if (!e) {
                me.obs.kind = observed::value;
                me.obs.group_ok = true;
              } else {
                try {
                  std::rethrow_exception(e);
                } catch (const af::exception_group& eg) {
                  me.obs = observed{};
                  me.obs.kind = observed::value;
                  for (const auto& x : eg.exceptions())
                    me.obs.failures.push_back(classify(x));
                } catch (...) {
                }
              }
              for (const auto& k : g->kids)
                FUZZ_CHECK(k.done(), "task_group join %d completed with a child running", me.id);
            })));
        g->join_pending = true;
      } catch (const af::invalid_state_error&) {
        threw = true;
      } catch (const std::bad_alloc&) {
        throw; // a join that failed to start is not pending (test/repro/task_group_join_oom.cpp)
      }
    }
    // A join while one is pending is refused; a first join never is. (Whether an earlier join
    // is still pending is not tracked exactly: its waiter may have died with its context.)
    FUZZ_CHECK(!threw || was_pending, "a first async_join threw");
    if (threw) {
      w->refused = true;
      FUZZ_CHECK(w->completions == 0 && w->drops == 1,
                 "the handler of a refused async_join was not destroyed");
    }
  }

  void group_destroy() {
    const std::uint8_t b = in_.byte();
    if (groups_.empty())
      return;
    group_rec& g = *groups_[b % groups_.size()];
    api_call call;
    g.tg.reset(); // cancels the live children, never blocks; the records stay for the checks
  }

  void drop() {
    entry* e = pick_entry(in_.byte());
    if (!e || e->used)
      return;
    api_call call;
    e->f = {};
    e->t = {};
    e->dropped = true;
  }

  void step() {
    const std::uint8_t b = in_.byte();
    const int c = pick_ctx(b);
    for (int i = 0; i < 1 + (b >> 2) % 16; ++i)
      poll_one(*ctx_[c].io);
  }

  // A context that ran out of work is stopped: poll() does nothing until restart().
  static std::size_t poll_one(asio::io_context& io) {
    if (io.stopped())
      io.restart();
    return io.poll_one();
  }
  static std::size_t poll(asio::io_context& io) {
    if (io.stopped())
      io.restart();
    return io.poll();
  }

  void poll_all() {
    for (auto& c : ctx_)
      if (c.io)
        poll(*c.io);
  }

  void destroy_context() {
    if (!ctx_[1].io)
      return;
    ctx_[1].io.reset(); // pending waiters are destroyed uninvoked, tasks end cancelled
    for (auto& wp : waiters_) {
      waiter& w = *wp;
      if (w.ctx == 1 && w.gen == ctx_[1].gen && w.kind != waiter_kind::callback)
        FUZZ_CHECK(w.completions + w.drops == 1,
                   "after its context was destroyed, waiter %d: completions %d, drops %d", w.id,
                   w.completions, w.drops);
    }
  }

  void new_context() {
    if (ctx_[1].io)
      return;
    ctx_[1].io = std::make_unique<asio::io_context>();
    ++ctx_[1].gen;
  }

  void sleep() {
    const int c = pick_ctx(in_.byte());
    entry* e = new_entry(entry_kind::sleep, c);
    if (!e)
      return;
    api_call call;
    e->f = af::sleep(executor(c), 0ms, payload(e->id));
  }

  void offload() {
    const std::uint8_t b = in_.byte();
    const int loop = pick_ctx(b), pool = pick_ctx(b >> 1);
    entry* e = new_entry(entry_kind::offload, loop);
    if (!e)
      return;
    const int id = e->id;
    api_call call;
    e->f = af::run_in_executor(executor(loop), executor(pool), [id] {
      not_inline("a run_in_executor function");
      return payload(id);
    });
  }

  void misuse() {
    entry* e = pick_entry(in_.byte());
    const std::uint8_t b = in_.byte();
    if (!e || (e->kind != entry_kind::task && e->kind != entry_kind::sleep &&
               e->kind != entry_kind::wait_for && e->kind != entry_kind::first_completed))
      return;
    const observed before = observe_future(e->f, e->inputs);
    bool threw = false;
    {
      api_call call;
      try {
        if (b & 1)
          e->f.set_result(payload(e->id));
        else
          e->f.set_exception(fuzz_error(e->id));
      } catch (const af::invalid_state_error&) {
        threw = true;
      }
    }
    FUZZ_CHECK(threw, "set_result/set_exception on %s future %d did not throw",
               entry_kind_names[static_cast<int>(e->kind)], e->id);
    const observed after = observe_future(e->f, e->inputs);
    FUZZ_CHECK(before.same_outcome(after), "a refused set changed %s future %d",
               entry_kind_names[static_cast<int>(e->kind)], e->id);
  }

  // --- checks -------------------------------------------------------------------------------

  /// A done future stays done with the same outcome.
  void check_sticky() {
    for (entry& e : entries_) {
      if (e.dropped)
        continue;
      observed o = observe_future(e.f, e.inputs);
      if (e.last) {
        FUZZ_CHECK(o.same_outcome(*e.last), "%s future %d changed from %s to %s",
                   entry_kind_names[static_cast<int>(e.kind)], e.id, e.last->describe().c_str(),
                   o.describe().c_str());
      } else if (o.kind != observed::none) {
        e.last = o;
      }
    }
    for (gentry& g : gentries_) {
      observed o = observe_gentry(g);
      if (g.last)
        FUZZ_CHECK(o.same_outcome(*g.last), "combinator result %d changed from %s to %s", g.id,
                   g.last->describe().c_str(), o.describe().c_str());
      else if (o.kind != observed::none)
        g.last = o;
    }
  }

  void check_entry(entry& e) {
    observed fin = observe_future(e.f, e.inputs);
    const char* name = entry_kind_names[static_cast<int>(e.kind)];
    // A then() result whose source was dropped while a waiter kept it alive stays pending
    // until that waiter dies with its context (and then ends cancelled).
    if (fin.kind == observed::none && e.kind == entry_kind::then && at(e.inputs[0]).dropped)
      return;
    FUZZ_CHECK(fin.kind != observed::none, "%s future %d is still pending at the end", name, e.id);
    FUZZ_CHECK(fin.kind != observed::other && fin.kind != observed::aborted,
               "%s future %d ended %s", name, e.id, fin.describe().c_str());
    if (fin.kind == observed::value)
      FUZZ_CHECK(fin.intact && origin_allowed(e, fin.origin), "%s future %d holds %s", name, e.id,
                 fin.describe().c_str());
    auto input = [&](std::size_t i) { return observe_future(at(e.inputs[i]).f, {}); };
    if (fin.cancelled_state || fin.kind == observed::oom)
      return; // (an injected allocation failure can fail any combinator: see observed::oom)
    switch (e.kind) {
    case entry_kind::plain:
      FUZZ_CHECK(fin.kind == observed::value || fin.kind == observed::error,
                 "plain future %d ended %s", e.id, fin.describe().c_str());
      break;
    case entry_kind::shield:
      FUZZ_CHECK(fin.same_outcome(input(0)), "shield %d ended %s, its inner %s", e.id,
                 fin.describe().c_str(), input(0).describe().c_str());
      break;
    case entry_kind::wait_for: {
      observed in = input(0);
      FUZZ_CHECK(fin.kind == observed::timeout ? in.cancelled_state || in.kind == observed::timeout
                                               : fin.same_outcome(in),
                 "wait_for %d ended %s, its inner %s", e.id, fin.describe().c_str(),
                 in.describe().c_str());
      break;
    }
    case entry_kind::first_completed: {
      bool found = false;
      for (std::size_t i = 0; i < e.inputs.size(); ++i)
        found = found || fin.same_outcome(input(i));
      FUZZ_CHECK(found, "first_completed %d ended %s, like none of its inputs", e.id,
                 fin.describe().c_str());
      break;
    }
    case entry_kind::task: {
      bool found = fin.kind == observed::value;
      for (std::size_t i = 0; i < e.inputs.size(); ++i)
        found = found || fin.same_result(input(i));
      FUZZ_CHECK(found, "task %d ended %s, from none of its inputs", e.id, fin.describe().c_str());
      break;
    }
    case entry_kind::then:
      if (fin.kind != observed::value && !at(e.inputs[0]).dropped)
        FUZZ_CHECK(fin.same_outcome(input(0)) || fin.kind == observed::invalid_state,
                   "then %d ended %s, its source %s", e.id, fin.describe().c_str(),
                   input(0).describe().c_str());
      break;
    case entry_kind::sleep:
      FUZZ_CHECK(fin.kind == observed::value, "sleep %d ended %s", e.id, fin.describe().c_str());
      break;
    case entry_kind::offload:
      // A job whose pool context was destroyed before it ran fails with invalid_state_error.
      FUZZ_CHECK(fin.kind == observed::value || fin.kind == observed::invalid_state,
                 "offload %d ended %s", e.id, fin.describe().c_str());
      break;
    }
  }

  void check_gentry(gentry& g) {
    observed fin = observe_gentry(g);
    FUZZ_CHECK(fin.kind != observed::none, "combinator result %d is still pending at the end",
               g.id);
    FUZZ_CHECK(fin.intact, "combinator result %d holds a torn value or a pending done-future",
               g.id);
    if (fin.cancelled_state || fin.kind == observed::oom)
      return;
    std::vector<observed> ins;
    for (int i : g.inputs)
      ins.push_back(observe_future(at(i).f, {}));
    const std::size_t n = ins.size();
    switch (g.kind) {
    case gentry_kind::gather:
      if (fin.kind == observed::value) {
        FUZZ_CHECK(fin.origins.size() == n, "gather %d: %zu values for %zu inputs", g.id,
                   fin.origins.size(), n);
        for (std::size_t i = 0; i < n; ++i)
          FUZZ_CHECK(ins[i].kind == observed::value && ins[i].origin == fin.origins[i],
                     "gather %d: value %zu is not its input's", g.id, i);
      } else {
        bool found = false;
        for (const observed& in : ins)
          found = found || fin.same_result(in);
        FUZZ_CHECK(found, "gather %d failed with %s, from none of its inputs", g.id,
                   fin.describe().c_str());
      }
      break;
    case gentry_kind::gather_outcomes:
      FUZZ_CHECK(fin.kind == observed::value && fin.parts.size() == n,
                 "gather(return_exceptions) %d ended %s", g.id, fin.describe().c_str());
      for (std::size_t i = 0; i < n; ++i)
        FUZZ_CHECK(fin.parts[i].same_result(ins[i]),
                   "gather(return_exceptions) %d: outcome %zu is %s, its input ended %s", g.id, i,
                   fin.parts[i].describe().c_str(), ins[i].describe().c_str());
      break;
    case gentry_kind::wait: {
      FUZZ_CHECK(fin.kind == observed::value, "wait %d ended %s", g.id, fin.describe().c_str());
      std::vector<int> all = fin.done;
      all.insert(all.end(), fin.pending.begin(), fin.pending.end());
      std::sort(all.begin(), all.end());
      bool ok = all.size() == n && std::is_sorted(fin.done.begin(), fin.done.end()) &&
                std::is_sorted(fin.pending.begin(), fin.pending.end());
      for (std::size_t i = 0; ok && i < n; ++i)
        ok = all[i] == static_cast<int>(i);
      FUZZ_CHECK(ok, "wait %d: done/pending is not a partition of the inputs in order", g.id);
      if (!g.timed) {
        bool failed = false;
        for (int i : fin.done)
          failed = failed || (ins[static_cast<std::size_t>(i)].kind != observed::value &&
                              !ins[static_cast<std::size_t>(i)].cancelled_state);
        FUZZ_CHECK(
            !((g.when == af::return_when::all_completed && !fin.pending.empty()) ||
              (g.when == af::return_when::first_completed && fin.done.empty()) ||
              (g.when == af::return_when::first_exception && !fin.pending.empty() && !failed)),
            "wait %d completed before its condition held", g.id);
      }
      break;
    }
    }
  }

  void check_waiter(waiter& w) {
    if (w.kind == waiter_kind::callback) {
      if (w.removed || w.refused)
        return;
      const entry& e = at(w.target);
      if (!e.dropped && e.f.done() && alive(w.ctx, w.gen))
        FUZZ_CHECK(w.completions == 1, "done-callback %d on a live context did not run", w.id);
      return;
    }
    if (!alive(w.ctx, w.gen) || w.refused)
      return; // destroyed with its context (checked when it was), or refused at initiation
    const bool pending = target_pending_for_end(w);
    if (w.completions == 0) {
      FUZZ_CHECK(pending, "waiter %d on a live context did not complete", w.id);
      return;
    }
    const observed& o = w.obs;
    if (w.kind == waiter_kind::join) {
      if (o.kind == observed::value) {
        for (const observed& x : o.failures) {
          bool found = false;
          for (int i : groups_[static_cast<std::size_t>(w.target)]->kid_inputs)
            found = found || x.same_result(observe_future(at(i).f, {}));
          FUZZ_CHECK(found && x.kind != observed::cancelled,
                     "join %d: the exception_group holds %s, a failure of no child", w.id,
                     x.describe().c_str());
        }
      } else {
        // A join completes cancelled when a joiner was cancelled; later joins repeat that.
        // Or with bad_alloc: an injected failure while the group cancelled its children or
        // built the join's outcome (see observed::oom).
        FUZZ_CHECK((o.kind == observed::cancelled &&
                    groups_[static_cast<std::size_t>(w.target)]->joiner_signalled) ||
                       o.kind == observed::oom,
                   "join %d ended %s without a cancellation signal to a joiner", w.id,
                   o.describe().c_str());
      }
      return;
    }
    if (target_dropped(w))
      return; // what it saw cannot be compared any more
    observed fin = w.target_gentry ? observe_gentry(gentries_[static_cast<std::size_t>(w.target)])
                                   : observe_future(at(w.target).f, at(w.target).inputs);
    const bool detachable = (w.sent & static_cast<unsigned>(asio::cancellation_type::partial |
                                                            asio::cancellation_type::total)) != 0 &&
                            (w.kind == waiter_kind::handler || w.total_filter);
    bool ok = false;
    switch (o.kind) {
    case observed::cancelled:
      ok = (fin.kind == observed::cancelled && fin.msg == o.msg) || detachable;
      break;
    case observed::aborted:
      ok = w.sent != 0 && w.kind == waiter_kind::coro;
      break;
    case observed::value:
      ok = o.intact && fin.same_result(o);
      break;
    case observed::error:
    case observed::timeout:
    case observed::invalid_state:
    case observed::oom:
      ok = fin.same_result(o);
      break;
    default:
      ok = false;
    }
    FUZZ_CHECK(ok, "waiter %d saw %s but its future ended %s (signals %u)", w.id,
               o.describe().c_str(), fin.describe().c_str(), w.sent);
  }

  bool target_pending_for_end(const waiter& w) {
    if (w.kind == waiter_kind::join) {
      const group_rec& g = *groups_[static_cast<std::size_t>(w.target)];
      for (const auto& k : g.kids)
        if (!k.done())
          return true;
      return false;
    }
    if (w.target_gentry)
      return !gentries_[static_cast<std::size_t>(w.target)].done();
    const entry& e = at(w.target);
    return e.dropped || !e.f.done();
  }

  void finish() {
    // Resolve every future still held that only we can resolve, then run dry.
    for (entry& e : entries_)
      if (!e.dropped && e.kind == entry_kind::plain && !e.f.done())
        FUZZ_CHECK(e.f.try_set_result(payload(e.id)), "try_set_result of pending future %d", e.id);
    for (int pass = 0;; ++pass) {
      FUZZ_CHECK(pass < 100000, "the contexts never ran dry (a livelock)");
      std::size_t n = 0;
      for (auto& c : ctx_)
        if (c.io)
          n += poll(*c.io);
      if (n == 0)
        break;
    }
    check_sticky();
    if (trace) {
      for (const entry& e : entries_)
        std::fprintf(stderr, "  %s future %d: %s%s\n", entry_kind_names[static_cast<int>(e.kind)],
                     e.id, e.dropped ? "dropped" : observe_future(e.f, e.inputs).describe().c_str(),
                     e.used ? " (an input)" : "");
      for (const auto& w : waiters_)
        std::fprintf(stderr,
                     "  waiter %d (kind %d, context %d/%d): completions %d, drops %d, saw %s\n",
                     w->id, static_cast<int>(w->kind), w->ctx, w->gen, w->completions, w->drops,
                     w->obs.describe().c_str());
    }
    for (entry& e : entries_)
      if (!e.dropped)
        check_entry(e);
    for (gentry& g : gentries_)
      check_gentry(g);
    for (auto& w : waiters_)
      check_waiter(*w);

    // Tear down: the contexts (pending waiters die uninvoked), then the groups and tables.
    for (auto& c : ctx_)
      c.io.reset();
    for (auto& g : groups_)
      g->tg.reset();
    for (auto& w : waiters_)
      if (w->kind != waiter_kind::callback)
        FUZZ_CHECK(w->completions + w->drops == 1, "waiter %d: completions %d, drops %d", w->id,
                   w->completions, w->drops);
    groups_.clear();
    gentries_.clear();
    entries_.clear();
    for (auto& w : waiters_)
      FUZZ_CHECK(w->completions + w->drops == 1, "%s %d: completions %d, drops %d at the end",
                 w->kind == waiter_kind::callback ? "callback" : "waiter", w->id, w->completions,
                 w->drops);
    for (auto& w : waiters_)
      w->signal.reset();
    waiters_.clear();
    FUZZ_CHECK(live_payloads == 0 && live_frames == 0 && live_probes == 0,
               "after the program: %ld payloads, %ld coroutine frames, %ld probes alive",
               live_payloads, live_frames, live_probes);
  }

  reader in_;
  context_slot ctx_[2];
  std::vector<entry> entries_;
  std::vector<gentry> gentries_;
  std::vector<std::unique_ptr<waiter>> waiters_;
  std::vector<std::unique_ptr<group_rec>> groups_;

  friend asio::awaitable<payload> task_body(program*, int, std::vector<int>);
  friend asio::awaitable<payload> kid_body(program*, int);
};

template <class T>
asio::awaitable<void> await_coro(program* p, waiter* w, af::future<T> f, std::vector<int> inputs) {
  frame_probe probe;
  not_inline("a coroutine's first step");
  if (w->total_filter)
    co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
  observed o;
  try {
    T v = co_await f.async_wait();
    o = p->observe_value(v, inputs);
  } catch (...) {
    o = classify(std::current_exception());
  }
  not_inline("a coroutine resumption");
  FUZZ_CHECK(p->running_on(w->ctx, w->gen), "coroutine %d resumed outside its context", w->id);
  w->obs = std::move(o);
}

asio::awaitable<payload> task_body(program* p, int self, std::vector<int> inputs) {
  frame_probe probe;
  not_inline("a task body");
  for (int i : inputs) {
    payload v = co_await p->at(i).f.async_wait();
    not_inline("a task body resumption");
    p->check_value(p->at(i), v, "a task body");
  }
  co_return payload(self);
}

asio::awaitable<payload> kid_body(program* p, int input) {
  frame_probe probe;
  not_inline("a task_group child");
  payload v = co_await p->at(input).f.async_wait();
  p->check_value(p->at(input), v, "a task_group child");
  co_return v;
}

} // namespace

// The replaceable allocation functions: malloc and free (the sanitizers see every block),
// failing on demand while an API call is armed (see api_call).
namespace {
void* allocate(std::size_t n, std::size_t align) {
  if (fail_countdown != 0 && --fail_countdown == 0) {
    fault_fired = true;
    throw std::bad_alloc();
  }
  if (n == 0)
    n = 1;
  void* p = align > alignof(std::max_align_t)
                ? std::aligned_alloc(align, (n + align - 1) / align * align)
                : std::malloc(n);
  if (!p)
    throw std::bad_alloc();
  return p;
}
void* allocate_nothrow(std::size_t n, std::size_t align) noexcept {
  try {
    return allocate(n, align);
  } catch (...) {
    return nullptr;
  }
}
} // namespace

void* operator new(std::size_t n) {
  return allocate(n, 0);
}
void* operator new[](std::size_t n) {
  return allocate(n, 0);
}
void* operator new(std::size_t n, std::align_val_t a) {
  return allocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return allocate(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return allocate_nothrow(n, 0);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return allocate_nothrow(n, 0);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate_nothrow(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate_nothrow(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Never-retrieved exceptions are normal here; the default handler would print each.
  af::set_exception_handler([](std::exception_ptr, std::string_view) {});
  trace = std::getenv("FUZZ_API_TRACE") != nullptr;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  program(data, size).run();
  return 0;
}
