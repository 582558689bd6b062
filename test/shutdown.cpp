// The shutdown matrix (docs/reliability.md, docs/threading.md "Shutdown"): every operation,
// torn down at every stage of its life, in both orders of its execution context and its
// futures' last handles, leaks nothing, invokes nothing after its context died, and hangs
// nowhere.
//
//   operations: async_wait (coroutine and handler), add_done_callback, then, gather (tuple and
//     vector), shield, wait (with a deadline), wait_for (future form), first_completed,
//     as_completed, sleep, create_task, task_group (destroyed before its io_context, or after
//     it), run_in_executor on an asio::thread_pool, use_future on a steady_timer;
//   stages: before_start (objects made, no wait initiated, the context never run), waiting
//     (initiated, the context polled until everything suspends), completing (then the inputs
//     resolved: completions queued, never run), after (everything ran);
//   orders: context_first (destroy the context, resolve what is still pending, check the
//     documented outcome, drop the handles) and handles_first (drop the handles, then destroy
//     the context).
//
// Each cell checks: counted probes (payload values, handler and callback captures, coroutine
// frame parameters) all died; lifetime_of tokens of every input expired; nothing ran after
// the context began dying; nothing ran before the "after" stage ran the context (completions
// are never inline); at "after", everything ran exactly once and no work is left over; the
// outcomes the docs promise for a dead context (a task, a sleep, a use_future operation end
// cancelled...); no lost-exception report but one: the invalid_state_error of the job a pool
// dropped unrun, when nobody held its future any more. LeakSanitizer (preset asan) checks the
// rest, at each operation's last cell and at exit. Only poll() and the bounded run_until()
// step a context; a thread_pool is always joined.
//
// Excluded cells, by contract:
//  - destroying the io_context while a pool thread may still resolve a future it waits on: a
//    data race (docs/threading.md "Shutdown", docs/threads.md "the default pool"): the
//    run_in_executor cells always join the pool before destroying the io_context;
//  - destroying the io_context before the steady_timer I/O object: Asio's own rule (I/O
//    objects die before their context), not the library's;
//  - allocation failure during shutdown or completion: docs/reliability.md "Known open
//    problems" (covered by test/fault_injection.cpp where survivable).
// A timer's expiry cannot be queued without running the context, so sleep's and use_future's
// "completing" stage is a cancel() (sleep) or the timer's cancel() (use_future).
#include <asio_futures/asio_futures.hpp>

#include "support/checks.hpp"
#include "support/co_test.hpp"
#include "support/tracking.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <tuple>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

namespace asio = boost::asio;
namespace af = asio_futures;
namespace aft = asio_futures_test;
namespace bdata = boost::unit_test::data;

using namespace std::chrono_literals;

namespace {

enum class operation {
  async_wait_coroutine,
  async_wait_handler,
  add_done_callback,
  then,
  gather_tuple,
  gather_vector,
  shield,
  wait,
  wait_for,
  first_completed,
  as_completed,
  sleep,
  create_task,
  task_group,
  task_group_outlives_context,
  run_in_executor,
  use_future,
};
enum class stage { before_start, waiting, completing, after };
enum class order { context_first, handles_first };

const char* const operation_names[] = {"async_wait_coroutine",
                                       "async_wait_handler",
                                       "add_done_callback",
                                       "then",
                                       "gather_tuple",
                                       "gather_vector",
                                       "shield",
                                       "wait",
                                       "wait_for",
                                       "first_completed",
                                       "as_completed",
                                       "sleep",
                                       "create_task",
                                       "task_group",
                                       "task_group_outlives_context",
                                       "run_in_executor",
                                       "use_future"};
const char* const stage_names[] = {"before_start", "waiting", "completing", "after"};

std::ostream& operator<<(std::ostream& os, operation o) {
  return os << operation_names[static_cast<int>(o)];
}
std::ostream& operator<<(std::ostream& os, stage s) {
  return os << stage_names[static_cast<int>(s)];
}
std::ostream& operator<<(std::ostream& os, order o) {
  return os << (o == order::context_first ? "context_first" : "handles_first");
}

const std::vector<operation> all_operations = {operation::async_wait_coroutine,
                                               operation::async_wait_handler,
                                               operation::add_done_callback,
                                               operation::then,
                                               operation::gather_tuple,
                                               operation::gather_vector,
                                               operation::shield,
                                               operation::wait,
                                               operation::wait_for,
                                               operation::first_completed,
                                               operation::as_completed,
                                               operation::sleep,
                                               operation::create_task,
                                               operation::task_group,
                                               operation::task_group_outlives_context,
                                               operation::run_in_executor,
                                               operation::use_future};
const std::vector<stage> all_stages = {stage::before_start, stage::waiting, stage::completing,
                                       stage::after};
const std::vector<order> all_orders = {order::context_first, order::handles_first};

using payload = aft::counted;
using input = af::future<payload>;

/// What one cell runs in: the io_context, the probes' counters and the invocation record.
/// Declared before everything that captures it, so it outlives all of it.
struct world {
  aft::instance_counters probes;
  std::optional<asio::io_context> ioc{std::in_place};
  bool context_dead = false;             // set before the context starts dying
  int invoked = 0;                       // handlers, callbacks, continuations, coroutine bodies run
  int invoked_late = 0;                  // ... of them, run once the context began dying
  std::vector<std::weak_ptr<int>> alive; // lifetime_of tokens of the cell's futures

  payload probe(int v = 0) { return payload(probes, v); }
  void on_invoked() {
    ++invoked;
    if (context_dead)
      ++invoked_late;
  }
  /// A completion handler (any signature) holding a probe.
  auto handler() {
    return [w = this, p = probe()](auto&&...) { w->on_invoked(); };
  }
};

// Coroutine bodies: the parameters live in the frame, so the probe dies with it.
asio::awaitable<void> await_input(input in, world* w, payload) {
  (void)co_await in.async_wait();
  w->on_invoked();
}
asio::awaitable<payload> task_body(input in, world* w, payload) {
  payload v = co_await in.async_wait();
  w->on_invoked();
  co_return v;
}

/// One operation, driven stage by stage. The constructor makes the objects (stage
/// before_start); the driver calls start() and polls (waiting), resolve() (completing), then
/// runs the context (after); then tears down in the cell's order.
class scenario {
public:
  scenario(world& w, int inputs) : w_(w) {
    for (int i = 0; i < inputs; ++i) {
      in_.emplace_back(*w.ioc);
      w.alive.push_back(aft::lifetime_of(in_.back()));
    }
  }
  virtual ~scenario() = default;
  scenario(const scenario&) = delete;
  scenario& operator=(const scenario&) = delete;

  /// Initiates the wait on the operation's outcome.
  virtual void start() {}
  /// Resolves the inputs: their completions are queued, none runs.
  virtual void resolve() {
    for (const input& f : in_)
      (void)f.try_set_result(w_.probe(1));
  }
  /// After the context died, handles still held: resolves what is still pending (a future
  /// may outlive its context), then checks the outcome promised for stage `s`.
  virtual void check_outcome_after_context(stage) {
    resolve();
    for (const input& f : in_)
      BOOST_TEST(f.done());
  }
  virtual void drop_handles() { in_.clear(); }
  virtual void destroy_context() {
    w_.context_dead = true;
    w_.ioc.reset();
  }
  /// How many invocations the "after" stage sees.
  virtual int invocations() const { return 1; }
  /// How many exceptions the cell reports as never retrieved (cancellation is never one).
  virtual std::size_t lost_exceptions(stage, order) const { return 0; }

protected:
  world& w_;
  std::vector<input> in_;
};

/// A waiter, handler or callback on the inputs themselves.
class on_input final : public scenario {
public:
  on_input(world& w, operation op) : scenario(w, 1), op_(op) {
    if (op_ == operation::async_wait_coroutine) // its wait starts on its first turn
      asio::co_spawn(*w.ioc, await_input(in_[0], &w, w.probe()), asio::detached);
  }
  void start() override {
    if (op_ == operation::async_wait_handler)
      in_[0].async_wait(w_.handler());
    else if (op_ == operation::add_done_callback)
      in_[0].add_done_callback(w_.handler());
  }

private:
  operation op_;
};

/// A combinator result (or then()) awaited by a handler. `outcome` says what the result holds
/// once the context died and the inputs were resolved late.
enum class outcome { done, cancelled_unless_after, cancelled_before_completing };

template <class R> class awaited_result final : public scenario {
public:
  template <class Make>
  awaited_result(world& w, int inputs, outcome expect, Make make, int invocations = 1)
      : scenario(w, inputs), expect_(expect), invocations_(invocations) {
    out_ = make(in_);
  }
  void start() override { out_.async_wait(w_.handler()); }
  void check_outcome_after_context(stage s) override {
    scenario::check_outcome_after_context(s);
    BOOST_TEST(out_.done());
    const bool cancelled =
        expect_ == outcome::cancelled_unless_after
            ? s != stage::after
            : expect_ == outcome::cancelled_before_completing && s < stage::completing;
    BOOST_TEST(out_.cancelled() == cancelled);
  }
  void drop_handles() override {
    out_ = {};
    scenario::drop_handles();
  }
  int invocations() const override { return invocations_; }

private:
  af::future<R> out_;
  outcome expect_;
  int invocations_;
};

template <class Make>
std::unique_ptr<scenario> result_of(world& w, int inputs, outcome expect, Make make,
                                    int invocations = 1) {
  using R = typename decltype(make(std::declval<std::vector<input>&>()))::value_type;
  return std::make_unique<awaited_result<R>>(w, inputs, expect, std::move(make), invocations);
}

/// as_completed: a handler awaits the first input to complete.
class next_completed final : public scenario {
public:
  explicit next_completed(world& w) : scenario(w, 2), it_(af::as_completed(in_)) {}
  void start() override { it_.async_next(w_.handler()); }
  void drop_handles() override {
    it_ = {};
    scenario::drop_handles();
  }

private:
  af::as_completed_iterator<payload> it_;
};

/// sleep with a value (a probe held by the future until it dies), cancelled to complete.
class sleeping final : public scenario {
public:
  explicit sleeping(world& w) : scenario(w, 0), sleep_(af::sleep(*w.ioc, 1h, w.probe(5))) {}
  void start() override { sleep_.async_wait(w_.handler()); }
  void resolve() override { BOOST_TEST(sleep_.cancel()); }
  void check_outcome_after_context(stage) override {
    BOOST_TEST(sleep_.cancelled()); // docs: the timer dies with its context, the sleep ends
  }                                 // cancelled
  void drop_handles() override { sleep_ = {}; }

private:
  af::future<payload> sleep_;
};

/// A task awaiting an input, itself awaited by a handler; or the same task as the child of a
/// task_group that a handler joins. The group dies with the context, or after it (with the
/// handles).
class tasked final : public scenario {
public:
  tasked(world& w, operation op) : scenario(w, 1), op_(op) {
    if (op_ == operation::create_task) {
      task_ = af::create_task(*w.ioc, task_body(in_[0], &w, w.probe()));
    } else {
      group_.emplace(*w.ioc);
      task_ = group_->create_task(task_body(in_[0], &w, w.probe()));
    }
    w.alive.push_back(aft::lifetime_of(task_));
  }
  void start() override {
    if (group_)
      group_->async_join(w_.handler());
    else
      task_.async_wait(w_.handler());
  }
  void check_outcome_after_context(stage s) override {
    scenario::check_outcome_after_context(s);
    BOOST_TEST(task_.done());
    BOOST_TEST(task_.cancelled() == (s != stage::after)); // docs/tasks.md: dies cancelled
    if (s == stage::after)
      BOOST_TEST(task_.result().value() == 1);
  }
  void drop_handles() override {
    task_ = {};
    if (op_ == operation::task_group_outlives_context) // else the group is the context
      group_.reset();
    scenario::drop_handles();
  }
  void destroy_context() override {
    w_.context_dead = true;
    if (op_ == operation::task_group)
      group_.reset(); // cancels the live children, never blocks
    w_.ioc.reset();
  }
  int invocations() const override { return 2; } // the body and the join/wait handler

private:
  operation op_;
  std::optional<af::task_group> group_;
  af::task<payload> task_;
};

/// A one-shot gate a pool thread waits on (bounded: a broken case fails instead of hanging).
class gate {
public:
  void open() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    cv_.notify_all();
  }
  bool wait() {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, aft::default_timeout, [this] { return open_; });
  }

private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

/// run_in_executor on a one-thread pool, awaited by a coroutine on the io_context. The job is
/// queued behind a blocker (before_start), runs and blocks (waiting), returns (completing).
/// Its context is the pool; destroying it stops the pool, releases the gates and joins, then
/// destroys the io_context (never concurrently with the pool: see the file comment).
class offloaded final : public scenario {
public:
  explicit offloaded(world& w) : scenario(w, 0) {
    asio::post(*pool_, [this] { record(unblock_.wait()); });
    job_ = af::run_in_executor(*pool_, [this, p = w.probe()] {
      started_.open();
      record(finish_.wait());
      ++ran_;
      return payload(w_.probes, 7);
    });
    w.alive.push_back(aft::lifetime_of(job_));
  }
  ~offloaded() override { BOOST_TEST(!timed_out_.load()); }
  void start() override {
    asio::co_spawn(*w_.ioc, await_input(job_, &w_, w_.probe()), asio::detached);
    unblock_.open();
    BOOST_TEST_REQUIRE(started_.wait());
  }
  void resolve() override {
    finish_.open();
    BOOST_TEST_REQUIRE(job_.wait_for(aft::default_timeout));
  }
  void check_outcome_after_context(stage s) override {
    BOOST_TEST(job_.done());
    if (s == stage::before_start) { // docs/threads.md: a job dropped unrun fails the future
      BOOST_TEST(aft::holds<af::invalid_state_error>(job_.exception()));
      BOOST_TEST(ran_.load() == 0);
    } else { // a running job is waited for by the pool's join
      BOOST_TEST(job_.result().value() == 7);
      BOOST_TEST(ran_.load() == 1);
    }
  }
  void drop_handles() override { job_ = {}; }
  std::size_t lost_exceptions(stage s, order o) const override {
    return s == stage::before_start && o == order::handles_first; // the dropped job's failure
  }
  void destroy_context() override {
    w_.context_dead = true;
    pool_->stop();
    unblock_.open();
    finish_.open();
    pool_->join();
    pool_.reset();
    w_.ioc.reset();
  }

private:
  void record(bool opened) {
    if (!opened)
      timed_out_ = true;
  }

  gate unblock_, started_, finish_;
  std::atomic<bool> timed_out_{false};
  std::atomic<int> ran_{0};
  std::optional<asio::thread_pool> pool_{std::in_place, 1};
  af::future<payload> job_;
};

/// use_future on a steady_timer (1 h); the timer's cancel() completes the operation. Its
/// context: the timer, then the io_context.
class io_operation final : public scenario {
public:
  explicit io_operation(world& w) : scenario(w, 0), timer_(std::in_place, *w.ioc, 1h) {
    op_ = timer_->async_wait(af::use_future);
    w.alive.push_back(aft::lifetime_of(op_));
  }
  void start() override { op_.async_wait(w_.handler()); }
  void resolve() override { timer_->cancel(); }
  void check_outcome_after_context(stage) override {
    BOOST_TEST(op_.cancelled()); // docs/threading.md: cancelled when its context dies
  }
  void drop_handles() override { op_ = {}; }
  void destroy_context() override {
    w_.context_dead = true;
    timer_.reset();
    w_.ioc.reset();
  }

private:
  std::optional<asio::steady_timer> timer_;
  af::future<void> op_;
};

std::unique_ptr<scenario> make_scenario(operation op, world& w) {
  using fs = std::vector<input>;
  switch (op) {
  case operation::async_wait_coroutine:
  case operation::async_wait_handler:
  case operation::add_done_callback:
    return std::make_unique<on_input>(w, op);
  case operation::then:
    return result_of(
        w, 1, outcome::cancelled_unless_after,
        [&w](fs& in) {
          return in[0].then([w = &w, p = w.probe()](payload v) {
            w->on_invoked();
            return v;
          });
        },
        2);
  case operation::gather_tuple:
    return result_of(w, 2, outcome::done, [](fs& in) { return af::gather(in[0], in[1]); });
  case operation::gather_vector:
    return result_of(w, 2, outcome::done, [](fs& in) { return af::gather(in); });
  case operation::shield:
    return result_of(w, 1, outcome::done, [](fs& in) { return af::shield(in[0]); });
  case operation::wait: // docs/waiting.md: a pending deadline's context dies: cancelled
    return result_of(w, 2, outcome::cancelled_before_completing,
                     [](fs& in) { return af::wait(in, af::return_when::all_completed, 1h); });
  case operation::wait_for:
    return result_of(w, 1, outcome::cancelled_before_completing,
                     [](fs& in) { return af::wait_for(in[0], 1h); });
  case operation::first_completed:
    return result_of(w, 2, outcome::done, [](fs& in) { return af::first_completed(in); });
  case operation::as_completed:
    return std::make_unique<next_completed>(w);
  case operation::sleep:
    return std::make_unique<sleeping>(w);
  case operation::create_task:
  case operation::task_group:
  case operation::task_group_outlives_context:
    return std::make_unique<tasked>(w, op);
  case operation::run_in_executor:
    return std::make_unique<offloaded>(w);
  case operation::use_future:
    return std::make_unique<io_operation>(w);
  }
  return nullptr;
}

} // namespace

BOOST_AUTO_TEST_SUITE(shutdown_)

BOOST_DATA_TEST_CASE(teardown_leaks_nothing_and_invokes_nothing_late,
                     bdata::make(all_operations) * bdata::make(all_stages) *
                         bdata::make(all_orders),
                     op, at, teardown) {
  aft::recording_exception_handler lost;
  world w;
  int expected = 0;
  std::size_t expected_lost = 0;
  {
    std::unique_ptr<scenario> s = make_scenario(op, w);
    BOOST_TEST_REQUIRE(static_cast<bool>(s));
    if (at >= stage::waiting) {
      s->start();
      aft::poll(*w.ioc);
    }
    if (at >= stage::completing)
      s->resolve();
    if (at == stage::after) {
      expected = s->invocations();
      BOOST_TEST(aft::run_until(*w.ioc, [&] { return w.invoked >= expected; }));
      BOOST_TEST(!aft::has_outstanding_work(*w.ioc)); // timers stopped, nothing left queued
    }
    BOOST_TEST(w.invoked == expected); // nothing inline, nothing before its turn

    expected_lost = s->lost_exceptions(at, teardown);
    if (teardown == order::context_first) {
      s->destroy_context();
      s->check_outcome_after_context(at);
      s->drop_handles();
    } else {
      s->drop_handles();
      s->destroy_context();
    }
  }
  BOOST_TEST(w.invoked_late == 0);
  BOOST_TEST(lost.count() == expected_lost);
  for (const auto& report : lost.reports())
    BOOST_TEST(aft::holds<af::invalid_state_error>(report.error));
  BOOST_TEST(w.invoked == expected);
  BOOST_TEST(w.probes.live.load() == 0);
  BOOST_TEST(aft::all_expired(w.alive));
  BOOST_TEST((w.probes.constructions.load() > 0 || !w.alive.empty())); // something was tracked
#if defined(__SANITIZE_ADDRESS__)
  // LeakSanitizer at each operation's last cell (the cells run operation by operation), not
  // only at exit, so that a leak names its operation; one check per cell would be too slow.
  if (at == stage::after && teardown == order::handles_first) {
    BOOST_TEST_INFO("LeakSanitizer after every cell of " << op);
    BOOST_TEST(__lsan_do_recoverable_leak_check() == 0);
  }
#endif
}

BOOST_AUTO_TEST_SUITE_END() // shutdown_
