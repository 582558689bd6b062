//
// examples/seed_distributed_tasks.cpp
//
// The seed's "Example 2: Distributed Task Processing with Futures", grown into a small but
// complete job system, and then checked with 10 000 jobs.
//
//   af::future<R> f = system.submit(fn, args...);   // asyncio: await system.submit_task(fn, *args)
//
// Design
//   - submit() stores the job and returns a typed `af::future<R>`. A job whose `fn(args...)`
//     returns `asio::awaitable<T>` is a coroutine job (R = T) and runs as an `af::task` on the
//     io_context; any other callable is CPU-bound or blocking work (R = its result) and runs
//     on an `asio::thread_pool` through `af::run_in_executor`.
//   - The queue (`job_queue`) is built on futures: an idle worker parks an `af::future<void>`
//     and awaits it; push() resolves exactly one of them, close() resolves them all. Nothing
//     polls, and a worker sleeps until there is work or the queue closes.
//   - N worker coroutines, owned by an `af::task_group`, take jobs, run them, and resolve the
//     futures (`try_set_result`/`try_set_exception`: the future may have been cancelled
//     meanwhile). A failing job fails its future; the worker goes on.
//   - Cancelling a submitted future (`f.cancel()`, or cancelling whoever awaits it):
//       * still queued: a done-callback registered at submit() erases the job from the queue
//         (O(1), it knows its list position), which frees the function and its arguments; the
//         function never runs. A done-callback runs on a later turn of the system's executor
//         (asio_futures never runs callbacks inline), so a worker may pop the job in between:
//         it then sees the future done and drops it unrun ("skipped at pickup").
//       * running coroutine job: its task is cancelled, so whatever the coroutine awaits
//         raises `af::cancelled_error` (asyncio's Task.cancel()); the worker waits for the
//         coroutine to end.
//       * running pool job: the `run_in_executor` future is cancelled; if the function takes
//         a `std::stop_token` first it is asked to stop, otherwise it runs to its end and its
//         result is dropped (asyncio cannot interrupt a thread either). That future ends at
//         once, so the worker moves on while the pool thread finishes.
//     In every case the submitted future ends cancelled at once, with the caller's message.
//   - shutdown() closes the queue: the workers finish the jobs already queued, see the
//     closed empty queue and return, and the task_group's join completes. Destroying the
//     system without shutdown() cancels the queued jobs and, through the group, the workers
//     (and so the jobs they run).
//   - Threads: the system's bookkeeping (queue, idle workers, job phases, counters) lives on
//     one executor that never runs two handlers at once: a strand, so the io_context may be
//     run by several threads. Coroutine jobs run on the io_context's own executor (in
//     parallel when it has several threads) and pool jobs on the pool, so futures are
//     resolved across threads; the workers, which await those, resume on the strand.
//
// Differences from the Python original, on purpose
//   - The seed scans a dict of tasks and sleeps 100 ms when none is free (polling); here an
//     idle worker awaits a future that the next submit() resolves.
//   - The seed's random 0.5–2 s "processing time" is gone, and task ids are sequential
//     numbers instead of uuid4 strings.
//   - The seed's workers run forever (they are never stopped or awaited); here a task_group
//     owns them and shutdown() joins them.
//   - In the seed a cancelled future stays in the dict: a worker later runs the function
//     anyway and its `set_result` raises InvalidStateError, whose handler calls
//     `set_exception`, which raises again and kills the worker. Here a cancelled job is
//     removed (never run) or, if running, cancelled, and workers resolve with try_set_*.
//   - submit() returns a typed future instead of (task_id, Future); the demo's mixed int and
//     string results become a std::variant through `then`.
//   - CPU-bound functions go to a thread pool instead of blocking the event loop.
//
// The program (a CTest test; exits 1 on any wrong outcome):
//   1. the seed's demo: 5 workers, 10 jobs (compute_task, slow_task), one failing job;
//   2. the 10k check: 10 000 jobs mixing coroutine and thread-pool jobs, ~10% failing, ~10%
//      cancelled (half while queued, half while running), collected with
//      `af::gather(af::return_exceptions, ...)`; every future must end exactly once with the
//      exact outcome, functions must run exactly as often as they should (never for jobs
//      cancelled while queued), every job's storage must be freed, and the workers and pool
//      must shut down. First on an io_context run by one thread, then by two;
//   3. a busy system destroyed without shutdown() (every future ends cancelled, queued jobs
//      never run), the pickup race, and a submit() after shutdown() (the future fails).
//   `--jobs N` and `--threads N` run only the check, with N jobs / N io_context threads.
//
#include <asio_futures/asio_futures.hpp>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace asio = boost::asio;
namespace af = asio_futures;
using namespace std::chrono_literals;

// =============================================================================================
// The task system
// =============================================================================================

class system_core;

/// One submitted job, type-erased so that one queue holds jobs of every signature. Every
/// member is used on the system's executor (the strand) only.
class job {
public:
  enum class phase { created, queued, running, finished };

  explicit job(std::size_t id) noexcept : id_(id) {}
  virtual ~job() = default;

  std::size_t id() const noexcept { return id_; }

  /// Whether the submitted future is done (cancelled, if the job has not run yet).
  virtual bool done() const = 0;
  /// Starts the work, waits for it and resolves the submitted future. Returns the failure
  /// (or the cancellation) the work ended with, null on success. Never throws.
  virtual asio::awaitable<std::exception_ptr> run(system_core& core) = 0;
  /// The submitted future was cancelled while the job runs: pass it on to the work.
  virtual void cancel_running() = 0;
  /// The system no longer accepts jobs: fail the future.
  virtual void reject(std::exception_ptr e) = 0;
  /// Cancels the submitted future.
  virtual void cancel(const std::string& msg) = 0;

  phase phase_ = phase::created;
  std::list<std::shared_ptr<job>>::iterator where_; ///< in the queue, while queued

private:
  std::size_t id_;
};

/// A FIFO of jobs that workers await without polling, built on futures: an idle worker parks
/// an `af::future<void>` and awaits it; push() resolves exactly one parked future, close()
/// resolves them all. Not thread-safe: used on one strand.
class job_queue {
public:
  explicit job_queue(asio::any_io_executor ex) : ex_(std::move(ex)) {}

  void push(std::shared_ptr<job> j) {
    jobs_.push_back(std::move(j));
    jobs_.back()->where_ = std::prev(jobs_.end());
    jobs_.back()->phase_ = job::phase::queued;
    // Wake exactly one idle worker. A parked future that is already done belongs to a
    // worker that was cancelled while idle (its wait cancelled the future): skip it.
    while (!idle_.empty()) {
      const af::future<void> wake = std::move(idle_.front());
      idle_.pop_front();
      if (wake.try_set_result())
        break;
    }
  }

  /// The next job, or null once the queue is closed and empty. The caller must resume on
  /// the queue's strand (a worker's executor is that strand).
  asio::awaitable<std::shared_ptr<job>> pop() {
    while (jobs_.empty()) {
      if (closed_)
        co_return nullptr;
      const af::future<void> wake(ex_);
      idle_.push_back(wake);
      co_await wake.async_wait(); // resolved by push() or close()
    }
    std::shared_ptr<job> j = std::move(jobs_.front());
    jobs_.pop_front();
    co_return j;
  }

  /// Erases a queued job: O(1), and frees it unless someone else holds it.
  void remove(job& j) {
    jobs_.erase(j.where_);
    j.phase_ = job::phase::finished;
  }

  /// No more jobs: every idle worker wakes, and pop() returns null once the queue is empty.
  void close() {
    closed_ = true;
    for (const af::future<void>& wake : idle_)
      wake.try_set_result();
    idle_.clear();
  }

  bool closed() const noexcept { return closed_; }
  std::size_t size() const noexcept { return jobs_.size(); }
  std::size_t idle() const noexcept { return idle_.size(); }

  /// Takes every queued job out (for abandonment).
  std::list<std::shared_ptr<job>> take_all() { return std::exchange(jobs_, {}); }

private:
  asio::any_io_executor ex_;
  std::list<std::shared_ptr<job>> jobs_;
  std::deque<af::future<void>> idle_;
  bool closed_ = false;
};

/// What the system counts. Updated on the strand only.
struct system_stats {
  std::size_t submitted = 0;
  std::size_t removed_before_pickup = 0; ///< cancelled while queued, erased by the callback
  std::size_t skipped_at_pickup = 0;     ///< cancelled while queued, dropped by a worker
  std::size_t started = 0;               ///< run by a worker
  std::size_t succeeded = 0;
  std::size_t failed = 0;
  std::size_t cancelled_while_running = 0;
};

/// The state shared by the system, its workers and its jobs' done-callbacks (which hold it
/// weakly: a callback that runs after the system died does nothing).
class system_core {
public:
  system_core(asio::any_io_executor strand, asio::any_io_executor coroutines,
              asio::thread_pool::executor_type pool, bool verbose)
      : strand_(std::move(strand)), coroutines_(std::move(coroutines)), pool_(std::move(pool)),
        queue_(strand_), verbose_(verbose) {}

  const asio::any_io_executor& strand() const noexcept { return strand_; }
  const asio::any_io_executor& coroutine_executor() const noexcept { return coroutines_; }
  const asio::thread_pool::executor_type& pool() const noexcept { return pool_; }
  job_queue& queue() noexcept { return queue_; }
  system_stats& stats() noexcept { return stats_; }

  void log(const char* fmt, auto... args) const {
    if (verbose_)
      std::printf(fmt, args...);
  }

  /// On the strand: a submitted job enters the queue (unless cancelled already).
  void enqueue(std::shared_ptr<job> j) {
    if (queue_.closed()) {
      j->reject(std::make_exception_ptr(std::logic_error("task_system: submit after shutdown")));
      return;
    }
    if (j->done()) // cancelled before it reached the queue: it never runs
      return;
    queue_.push(std::move(j));
  }

  /// On the strand: the job's future was cancelled.
  void cancelled(job& j) {
    switch (j.phase_) {
    case job::phase::queued:
      queue_.remove(j);
      ++stats_.removed_before_pickup;
      log("Task %zu cancelled before a worker took it\n", j.id());
      break;
    case job::phase::running:
      j.cancel_running();
      break;
    case job::phase::created:  // enqueue() will see the future done
    case job::phase::finished: // too late: the worker has (or had) its outcome
      break;
    }
  }

private:
  asio::any_io_executor strand_;
  asio::any_io_executor coroutines_;
  asio::thread_pool::executor_type pool_;
  job_queue queue_;
  system_stats stats_;
  bool verbose_;
};

/// The message if `e` is an `af::cancelled_error`, else nothing.
std::optional<std::string> cancel_message(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const af::cancelled_error& c) {
    return c.message();
  } catch (...) {
    return std::nullopt;
  }
}

/// `T` for `asio::awaitable<T>`.
template <class A> struct awaitable_value {};
template <class T, class E> struct awaitable_value<asio::awaitable<T, E>> { using type = T; };

/// A job whose `fn(args...)` returns an `asio::awaitable`: it runs as a task.
template <class F, class... Args>
concept runs_as_task = std::is_invocable_v<F&, Args&...> && requires {
  typename awaitable_value<std::invoke_result_t<F&, Args&...>>::type;
};

/// The value type of the future that `submit(fn, args...)` returns.
template <class F, class... Args> struct job_value {
  using type = af::offload_result_t<F, Args...>; // run_in_executor's (the std::stop_token rule)
};
template <class F, class... Args>
requires runs_as_task<F, Args...>
struct job_value<F, Args...> {
  using type = typename awaitable_value<std::invoke_result_t<F&, Args&...>>::type;
};

template <class F, class... Args> class job_of final : public job {
public:
  using value_type = typename job_value<F, Args...>::type;

  job_of(std::size_t id, af::future<value_type> result, F f, Args... args)
      : job(id), result_(std::move(result)), fn_(std::move(f)), args_(std::move(args)...) {}

  bool done() const override { return result_.done(); }

  asio::awaitable<std::exception_ptr> run(system_core& core) override {
    phase_ = phase::running;
    ++core.stats().started;
    std::exception_ptr failure;
    try {
      running_ = start(core); // throws if the context or the pool has shut down
      if constexpr (std::is_void_v<value_type>) {
        co_await running_.async_wait();
        result_.try_set_result();
      } else {
        result_.try_set_result(co_await running_.async_wait());
      }
    } catch (...) {
      failure = std::current_exception();
    }
    const asio::cancellation_state worker_state = co_await asio::this_coro::cancellation_state;
    if (worker_state.cancelled() != asio::cancellation_type::none) {
      // The worker itself was cancelled (its group is shutting down): its wait cancelled the
      // work, or Asio's throw_if_cancelled threw before the wait began.
      cancel_running();
      result_.cancel("worker cancelled");
    } else if (failure) {
      // Usually the submitted future was cancelled and cancelled the work (then cancel() is
      // a no-op); a job that ends cancelled by itself cancels its future, as a task would.
      if (const std::optional<std::string> msg = cancel_message(failure))
        result_.cancel(*msg);
      else
        result_.try_set_exception(failure);
    }
    phase_ = phase::finished;
    running_ = {};
    // Count the outcome the future really ended with (a cancel may have won a race).
    if (result_.cancelled())
      ++core.stats().cancelled_while_running;
    else if (failure)
      ++core.stats().failed;
    else
      ++core.stats().succeeded;
    co_return failure;
  }

  void cancel_running() override {
    if (running_.valid())
      running_.cancel();
  }

  void reject(std::exception_ptr e) override { result_.try_set_exception(std::move(e)); }
  void cancel(const std::string& msg) override { result_.cancel(msg); }

private:
  /// The work, as a future of its own: a task, or a thread-pool job. The function and its
  /// arguments move into it, so the job object itself holds nothing heavy once started.
  af::future<value_type> start(system_core& core) {
    if constexpr (runs_as_task<F, Args...>) {
      // The callable form of create_task keeps fn and args alive until the coroutine ends,
      // so a coroutine taking its parameters by reference is safe.
      return af::create_task(core.coroutine_executor(),
                             [fn = std::move(fn_), args = std::move(args_)]() mutable {
                               return std::apply(fn, args);
                             });
    } else {
      // The future's executor is the strand; the worker awaiting it resumes there anyway.
      return std::apply(
          [&](Args&... args) {
            return af::run_in_executor(core.strand(), core.pool(), std::move(fn_),
                                       std::move(args)...);
          },
          args_);
    }
  }

  af::future<value_type> result_;  ///< what submit() returned
  af::future<value_type> running_; ///< the work, while it runs
  F fn_;
  std::tuple<Args...> args_;
};

/// The seed's DistributedTaskSystem: submit() returns a future, N workers resolve them.
///
/// All bookkeeping runs on `strand`, which must never run two handlers at once (a strand, or
/// the executor of an io_context run by one thread). submit() may be called from any thread;
/// shutdown() and the destructor on the strand.
class task_system {
public:
  struct options {
    std::size_t workers = 5;
    bool verbose = false; ///< print the seed's log lines
  };

  /// Coroutine jobs run on `coroutines`, callables on `pool`.
  task_system(asio::any_io_executor strand, asio::any_io_executor coroutines,
              asio::thread_pool& pool, options opt)
      : core_(std::make_shared<system_core>(std::move(strand), std::move(coroutines),
                                            pool.get_executor(), opt.verbose)),
        workers_(core_->strand()) {
    for (std::size_t i = 0; i < opt.workers; ++i)
      workers_.create_task(worker(core_, "worker-" + std::to_string(i)),
                           "worker-" + std::to_string(i));
  }

  task_system(const task_system&) = delete;
  task_system& operator=(const task_system&) = delete;

  /// Without shutdown(): the queued jobs end cancelled (never run); the task_group, destroyed
  /// next, cancels the workers and so the jobs they run.
  ~task_system() {
    for (const std::shared_ptr<job>& j : core_->queue().take_all()) {
      j->phase_ = job::phase::finished;
      j->cancel("task_system destroyed"); // its callback finds it finished: nothing to do
    }
    core_->queue().close();
  }

  /// Submits `fn(args...)` (decay-copied, as std::thread does) and returns the future of its
  /// outcome: `af::future<T>` if `fn(args...)` returns `asio::awaitable<T>` (run as a task),
  /// else `af::future<R>` with R its result (run on the thread pool, with a `std::stop_token`
  /// first if `fn` takes one).
  template <class F, class... Args>
  auto submit(F fn, Args... args)
      -> af::future<typename job_value<std::decay_t<F>, std::decay_t<Args>...>::type> {
    using job_type = job_of<std::decay_t<F>, std::decay_t<Args>...>;
    using value_type = typename job_type::value_type;
    const std::size_t id = next_id_.fetch_add(1, std::memory_order_relaxed) + 1;
    af::future<value_type> result(core_->strand());
    auto j = std::make_shared<job_type>(id, result, std::move(fn), std::move(args)...);
    // Cancelling the future removes the job (queued) or cancels its work (running). Weak
    // references: the callback must not keep the job or the system alive.
    result.add_done_callback([wj = std::weak_ptr<job>(j), wc = std::weak_ptr<system_core>(core_)](
                                 const af::future<value_type>& f) {
      if (!f.cancelled())
        return;
      const std::shared_ptr<job> j = wj.lock();
      const std::shared_ptr<system_core> c = wc.lock();
      if (j && c)
        c->cancelled(*j);
    });
    // Inline when called on the strand; from another thread it is posted, before any cancel
    // of the returned future can post its callback (the strand runs them in that order).
    asio::dispatch(core_->strand(), [c = core_, j = std::move(j)]() mutable {
      ++c->stats().submitted;
      c->log("Submitted task %zu\n", j->id());
      c->enqueue(std::move(j));
    });
    return result;
  }

  /// Closes the queue; the workers finish the queued jobs and return; then joins them.
  asio::awaitable<void> shutdown() {
    core_->queue().close();
    co_await workers_.async_join();
  }

  const system_stats& stats() const noexcept { return core_->stats(); }
  std::size_t queued() const noexcept { return core_->queue().size(); }
  std::size_t idle_workers() const noexcept { return core_->queue().idle(); }
  std::size_t live_workers() const { return workers_.size(); }

private:
  static asio::awaitable<void> worker(std::shared_ptr<system_core> core, std::string name) {
    core->log("Worker %s started\n", name.c_str());
    while (const std::shared_ptr<job> j = co_await core->queue().pop()) {
      const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
      if (state.cancelled() != asio::cancellation_type::none) {
        // Cancelled by the group (the system is being destroyed): give the job up and stop.
        j->phase_ = job::phase::finished;
        j->cancel("worker cancelled");
        co_return;
      }
      if (j->done()) { // cancelled while queued, before its callback erased it
        j->phase_ = job::phase::finished;
        ++core->stats().skipped_at_pickup;
        continue;
      }
      core->log("Worker %s processing task %zu\n", name.c_str(), j->id());
      if (const std::exception_ptr e = co_await j->run(*core)) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          core->log("Worker %s failed on task %zu: %s\n", name.c_str(), j->id(), x.what());
        } catch (...) {
          core->log("Worker %s failed on task %zu\n", name.c_str(), j->id());
        }
      } else {
        core->log("Worker %s completed task %zu\n", name.c_str(), j->id());
      }
    }
    core->log("Worker %s stopped\n", name.c_str());
  }

  std::shared_ptr<system_core> core_;
  af::task_group workers_; ///< after core_: destroyed (cancelling the workers) first
  std::atomic<std::size_t> next_id_{0};
};

// =============================================================================================
// 1. The seed's demo
// =============================================================================================

/// What a demo job produces: the seed mixes numbers and strings.
using job_result = std::variant<int, std::string>;

asio::awaitable<int> compute_task(int x, int y) {
  co_return x* y;
}

asio::awaitable<std::string> slow_task(std::string name) {
  // The seed sleeps 1 s; 5 ms keeps the test fast and still lets the jobs overlap.
  asio::steady_timer timer(co_await asio::this_coro::executor, 5ms);
  co_await timer.async_wait(asio::use_awaitable);
  co_return "Slow task " + name + " completed";
}

asio::awaitable<int> failing_task() {
  throw std::runtime_error("bad input");
  co_return 0;
}

int run_demo() {
  asio::io_context ioc;
  asio::thread_pool pool(1);
  int wrong = 0;
  const af::task<void> main_task = af::create_task(ioc, [&]() -> asio::awaitable<void> {
    const auto ex = co_await asio::this_coro::executor;
    task_system system(ex, ex, pool, {.workers = 5, .verbose = true});
    std::vector<af::future<job_result>> futures;
    for (int i = 0; i < 10; ++i) {
      if (i % 2 == 0)
        futures.push_back(
            system.submit(compute_task, i, i * 2).then([](int v) { return job_result(v); }));
      else
        futures.push_back(
            system.submit(slow_task, "task-" + std::to_string(i)).then([](std::string s) {
              return job_result(std::move(s));
            }));
    }
    const af::future<int> bad = system.submit(failing_task);

    // Wait for all tasks to complete.
    const std::vector<job_result> results = co_await af::gather(futures).async_wait();
    std::printf("All tasks completed!\n");
    for (std::size_t i = 0; i < results.size(); ++i) {
      const std::string expected = i % 2 == 0
                                       ? std::to_string(static_cast<int>(i * i * 2))
                                       : "Slow task task-" + std::to_string(i) + " completed";
      const job_result& r = results[i];
      const std::string got =
          std::holds_alternative<int>(r) ? std::to_string(std::get<int>(r)) : std::get<1>(r);
      std::printf("Task %zu result: %s\n", i, got.c_str());
      if (got != expected)
        ++wrong;
    }
    try {
      (void)co_await bad.async_wait();
      ++wrong; // must have thrown
    } catch (const std::runtime_error& e) {
      std::printf("The failing task raised: %s\n", e.what());
    }
    co_await system.shutdown();
  });
  ioc.run();
  pool.join();
  if (!main_task.done() || main_task.exception() || wrong != 0) {
    std::printf("FAILED: the demo (%d wrong results)\n", wrong);
    return 1;
  }
  return 0;
}

// =============================================================================================
// 2. The 10k check
// =============================================================================================

enum class fate { ok, fail, cancel_queued, cancel_running };
enum class kind { coroutine, pool };

/// What the check plans, and what it observes, per job.
struct check_state {
  explicit check_state(std::size_t n)
      : fates(n), kinds(n), futures(n), started(n), runs(n), live_args(n), ends(n) {}

  std::vector<fate> fates;
  std::vector<kind> kinds;
  std::vector<af::future<std::uint64_t>> futures;
  std::vector<af::future<void>> started;   ///< set by cancel_running jobs once they run
  std::vector<std::atomic<int>> runs;      ///< how often the job's function started
  std::vector<std::atomic<int>> live_args; ///< live copies of the job's argument
  std::vector<int> ends;                   ///< done-callbacks seen (on the strand)
  std::atomic<int> saw_cancellation{0};    ///< running jobs that saw their cancellation
  std::vector<std::string> errors;

  void fail(std::string what) {
    if (errors.size() < 20)
      std::printf("FAILED: %s\n", what.c_str());
    errors.push_back(std::move(what));
  }
};

/// The argument of every check job: which job it is, counting its live copies so that the
/// check sees when a job's storage is freed.
class job_ref {
public:
  job_ref(check_state* st, std::size_t i) noexcept : st_(st), i_(i) { count(1); }
  job_ref(const job_ref& o) noexcept : st_(o.st_), i_(o.i_) { count(1); }
  job_ref(job_ref&& o) noexcept : st_(std::exchange(o.st_, nullptr)), i_(o.i_) {}
  job_ref& operator=(const job_ref&) = delete;
  ~job_ref() { count(-1); }

  check_state& state() const noexcept { return *st_; }
  std::size_t index() const noexcept { return i_; }
  fate planned() const noexcept { return st_->fates[i_]; }
  void ran() const noexcept { st_->runs[i_].fetch_add(1, std::memory_order_relaxed); }

private:
  void count(int d) noexcept {
    if (st_)
      st_->live_args[i_].fetch_add(d, std::memory_order_relaxed);
  }
  check_state* st_;
  std::size_t i_;
};

std::uint64_t coroutine_value(std::size_t i) {
  return 3 * i + 1;
}
std::uint64_t pool_value(std::size_t i) {
  const std::uint64_t n = 200 + i % 1000; // the sum below, in closed form
  return (std::uint64_t{i} << 32) + n * (n - 1) / 2;
}
std::string failure_message(std::size_t i) {
  return "job " + std::to_string(i) + " failed";
}

/// A coroutine job: yields to the loop a few times (its "I/O"), then returns or throws; a
/// cancel_running job announces that it runs and awaits a sleep that only a cancellation
/// ends early (bounded: if no cancellation comes, it returns a value and the check fails).
asio::awaitable<std::uint64_t> coroutine_job(job_ref r) {
  r.ran();
  const auto ex = co_await asio::this_coro::executor;
  for (int k = 0; k < 3; ++k)
    co_await asio::post(ex, asio::use_awaitable);
  switch (r.planned()) {
  case fate::fail:
    throw std::runtime_error(failure_message(r.index()));
  case fate::cancel_running:
    r.state().started[r.index()].set_result();
    try {
      co_await af::sleep(ex, 10s).async_wait();
    } catch (const af::cancelled_error&) {
      r.state().saw_cancellation.fetch_add(1, std::memory_order_relaxed);
      throw;
    }
    break;
  default:
    break;
  }
  co_return coroutine_value(r.index());
}

/// A CPU-bound pool job: a small loop, then its value or an exception.
std::uint64_t cpu_job(job_ref r) {
  r.ran();
  const std::uint64_t n = 200 + r.index() % 1000;
  std::uint64_t sum = 0;
  for (std::uint64_t k = 0; k < n; ++k)
    sum += k;
  if (r.planned() == fate::fail)
    throw std::runtime_error(failure_message(r.index()));
  return (std::uint64_t{r.index()} << 32) + sum;
}

/// A blocking pool job that can be cancelled while it runs: it announces that it runs, then
/// blocks until its stop token is triggered (bounded: 10 s, then the check fails).
std::uint64_t blocking_job(std::stop_token st, job_ref r) {
  r.ran();
  r.state().started[r.index()].set_result();
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lock(m);
  cv.wait_for(lock, st, 10s, [] { return false; }); // wakes on stop (no polling)
  if (st.stop_requested())
    r.state().saw_cancellation.fetch_add(1, std::memory_order_relaxed);
  return pool_value(r.index()); // dropped: the future is cancelled
}

/// An outcome as text: "value N", "exception: what" or "cancelled: message".
template <class T> std::string describe(const af::outcome<T>& o) {
  if (o.has_value())
    return "value " + std::to_string(o.value());
  try {
    std::rethrow_exception(o.exception());
  } catch (const af::cancelled_error& e) {
    return "cancelled: " + e.message();
  } catch (const std::exception& e) {
    return std::string("exception: ") + e.what();
  } catch (...) {
    return "exception of an unknown type";
  }
}

/// What `describe` must say of job `i`.
std::string expected_outcome(const check_state& st, std::size_t i) {
  switch (st.fates[i]) {
  case fate::ok:
    return "value " +
           std::to_string(st.kinds[i] == kind::coroutine ? coroutine_value(i) : pool_value(i));
  case fate::fail:
    return "exception: " + failure_message(i);
  case fate::cancel_queued:
    return "cancelled: cancelled while queued";
  case fate::cancel_running:
    return "cancelled: cancelled while running";
  }
  return {};
}

/// The planned outcome of each job: ~10% fail, 5% cancelled while queued, 5% while running;
/// coroutine and pool jobs alternate. Shuffled with a fixed seed, so runs are reproducible.
void plan(check_state& st) {
  const std::size_t n = st.fates.size();
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t m = i % 20;
    st.fates[i] = m < 2    ? fate::fail
                  : m == 2 ? fate::cancel_queued
                  : m == 3 ? fate::cancel_running
                           : fate::ok;
  }
  std::shuffle(st.fates.begin(), st.fates.end(), std::mt19937(20240607));
  for (std::size_t i = 0; i < n; ++i)
    st.kinds[i] = i % 2 == 0 ? kind::coroutine : kind::pool;
}

struct check_result {
  double seconds = 0;
  system_stats stats;
};

/// Runs on the strand: submits every job, cancels as planned, gathers, checks the outcomes,
/// shuts the system down.
asio::awaitable<check_result> run_jobs(check_state& st, asio::any_io_executor coroutines,
                                       asio::thread_pool& pool) {
  const auto strand = co_await asio::this_coro::executor;
  const std::size_t n = st.fates.size();
  task_system system(strand, coroutines, pool, {.workers = 16});

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::size_t> to_cancel; // cancel_queued jobs of the current batch
  constexpr std::size_t batch = 64;
  for (std::size_t i = 0; i < n; ++i) {
    if (st.fates[i] == fate::cancel_running)
      st.started[i] = af::future<void>(strand);
    af::future<std::uint64_t> f;
    if (st.kinds[i] == kind::coroutine)
      f = system.submit(coroutine_job, job_ref(&st, i));
    else if (st.fates[i] == fate::cancel_running)
      f = system.submit(blocking_job, job_ref(&st, i));
    else
      f = system.submit(cpu_job, job_ref(&st, i));
    st.futures[i] = f;
    f.add_done_callback([&st, i](const af::future<std::uint64_t>&) { ++st.ends[i]; });
    if (st.fates[i] == fate::cancel_queued)
      to_cancel.push_back(i);
    else if (st.fates[i] == fate::cancel_running)
      // Cancel from outside as soon as the job runs (the callback runs on the strand).
      st.started[i].add_done_callback(
          [f](const af::future<void>&) { f.cancel("cancelled while running"); });

    if ((i + 1) % batch == 0 || i + 1 == n) {
      // Still before pickup: this coroutine has not yielded the strand since submitting
      // them, and the workers run on the strand too. They sit among later jobs in the queue.
      for (const std::size_t k : to_cancel)
        if (!st.futures[k].cancel("cancelled while queued"))
          st.fail("job " + std::to_string(k) + ": cancel of a queued job returned false");
      // Yield: the workers run, and the cancels' callbacks (posted before this resumption)
      // erase the jobs, which frees their arguments.
      co_await asio::post(strand, asio::use_awaitable);
      for (const std::size_t k : to_cancel)
        if (st.live_args[k].load() != 0)
          st.fail("job " + std::to_string(k) + ": cancelled while queued, but not freed");
      to_cancel.clear();
    }
  }

  // Collect every outcome; bounded, so that a lost job fails instead of hanging.
  const std::vector<af::outcome<std::uint64_t>> outcomes =
      co_await af::wait_for(af::gather(af::return_exceptions, strand, st.futures), 60s)
          .async_wait();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  for (std::size_t i = 0; i < n; ++i) {
    const std::string got = describe(outcomes[i]);
    if (got != expected_outcome(st, i))
      st.fail("job " + std::to_string(i) + ": " + got + ", expected " + expected_outcome(st, i));
    const bool cancelled =
        st.fates[i] == fate::cancel_queued || st.fates[i] == fate::cancel_running;
    if (st.futures[i].cancelled() != cancelled)
      st.fail("job " + std::to_string(i) + ": cancelled() is wrong");
  }

  // Clean shutdown, bounded too.
  co_await af::timeout(10s, system.shutdown());
  if (system.live_workers() != 0 || system.queued() != 0 || system.idle_workers() != 0)
    st.fail("the workers did not shut down cleanly");
  co_return check_result{seconds, system.stats()};
}

/// Runs the check with `jobs` jobs on an io_context run by `threads` threads; true if right.
bool run_check(std::size_t jobs, int threads) {
  asio::io_context ioc(threads);
  asio::thread_pool pool(2);
  check_state st(jobs);
  plan(st);

  const af::task<check_result> main_task =
      af::create_task(asio::make_strand(ioc), run_jobs(st, ioc.get_executor(), pool));
  std::vector<std::thread> more;
  for (int k = 1; k < threads; ++k)
    more.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (std::thread& t : more)
    t.join();
  pool.join(); // the pool shuts down cleanly: every job it started has returned

  std::size_t want[4] = {};
  for (const fate f : st.fates)
    ++want[static_cast<int>(f)];
  const std::size_t ok = want[0], failed = want[1], cancel_queued = want[2],
                    cancel_running = want[3];

  if (!main_task.done() || main_task.exception()) {
    try {
      if (main_task.done())
        main_task.result();
      st.fail("the check did not finish");
    } catch (const std::exception& e) {
      st.fail(std::string("the check failed: ") + e.what());
    }
    return false;
  }
  const check_result res = main_task.result();
  const system_stats& s = res.stats;

  for (std::size_t i = 0; i < jobs; ++i) {
    const std::string job = "job " + std::to_string(i);
    if (st.ends[i] != 1)
      st.fail(job + ": ended " + std::to_string(st.ends[i]) + " times");
    const int want_runs = st.fates[i] == fate::cancel_queued ? 0 : 1;
    if (st.runs[i].load() != want_runs)
      st.fail(job + ": ran " + std::to_string(st.runs[i].load()) + " times");
    if (st.live_args[i].load() != 0)
      st.fail(job + ": its storage was not freed");
  }
  if (st.saw_cancellation.load() != static_cast<int>(cancel_running))
    st.fail("running jobs that saw their cancellation: " +
            std::to_string(st.saw_cancellation.load()) + " of " + std::to_string(cancel_running));
  if (s.submitted != jobs || s.succeeded != ok || s.failed != failed ||
      s.cancelled_while_running != cancel_running ||
      s.removed_before_pickup + s.skipped_at_pickup != cancel_queued ||
      s.started != jobs - cancel_queued)
    st.fail("the system's counters do not match the plan");

  std::printf("%zu jobs, %d io thread%s + 2 pool threads: %zu ok, %zu failed, %zu cancelled "
              "(%zu queued: %zu removed, %zu skipped at pickup; %zu running) in %.3f s, "
              "%.0f jobs/s%s\n",
              jobs, threads, threads == 1 ? "" : "s", s.succeeded, s.failed,
              s.removed_before_pickup + s.skipped_at_pickup + s.cancelled_while_running,
              s.removed_before_pickup + s.skipped_at_pickup, s.removed_before_pickup,
              s.skipped_at_pickup, s.cancelled_while_running, res.seconds,
              static_cast<double>(jobs) / res.seconds, st.errors.empty() ? "" : " -- WRONG");
  return st.errors.empty();
}

// =============================================================================================
// 3. The other ways a system ends
// =============================================================================================

/// Jobs that stay busy until cancelled (bounded: 10 s), counting how many started.
struct parked_jobs {
  std::atomic<int> started{0};
  af::future<void> two_started; ///< set when the second job starts
};

asio::awaitable<int> parked_job(parked_jobs* p) {
  if (p->started.fetch_add(1) + 1 == 2)
    p->two_started.set_result();
  co_await af::sleep(co_await asio::this_coro::executor, 10s).async_wait();
  co_return 0;
}

/// Destroying a system without shutdown(): its queued jobs end cancelled and never run, the
/// running ones are cancelled through their (cancelled) workers; nothing hangs. A job
/// cancelled between its worker's wake-up and its pickup is dropped unrun. And submit()
/// after shutdown() fails the future.
bool run_abandon_check() {
  asio::io_context ioc;
  asio::thread_pool pool(1);
  parked_jobs parked;
  std::vector<std::string> errors;
  const af::task<void> main_task = af::create_task(ioc, [&]() -> asio::awaitable<void> {
    const auto ex = co_await asio::this_coro::executor;
    parked.two_started = af::future<void>(ex);
    std::vector<af::future<int>> futures;
    {
      task_system system(ex, ex, pool, {.workers = 2});
      for (int i = 0; i < 6; ++i)
        futures.push_back(system.submit(parked_job, &parked));
      co_await af::wait_for(parked.two_started, 10s).async_wait(); // both workers busy
    }                                                              // destroyed without shutdown()
    const std::vector<af::outcome<int>> outcomes =
        co_await af::wait_for(af::gather(af::return_exceptions, futures), 10s).async_wait();
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
      // The first two were running: their workers were cancelled; the rest were queued.
      const std::string want =
          i < 2 ? "cancelled: worker cancelled" : "cancelled: task_system destroyed";
      if (describe(outcomes[i]) != want)
        errors.push_back("abandoned job " + std::to_string(i) + ": " + describe(outcomes[i]));
    }

    {
      // The race the pickup check covers: the worker woken for a job runs before the job's
      // cancel callback (both wait on the executor, the wake-up first). It drops the job.
      task_system racy(ex, ex, pool, {.workers = 1});
      co_await asio::post(ex, asio::use_awaitable); // the worker starts and parks
      const af::future<int> f = racy.submit(parked_job, &parked);
      f.cancel();
      co_await racy.shutdown();
      if (racy.stats().skipped_at_pickup != 1 || racy.stats().started != 0)
        errors.push_back("a job cancelled before its pickup was not dropped by the worker");
    }

    task_system closed(ex, ex, pool, {.workers = 1});
    co_await closed.shutdown();
    try {
      (void)co_await closed.submit(compute_task, 6, 7).async_wait();
      errors.push_back("submit after shutdown: the job ran");
    } catch (const std::logic_error& e) {
      std::printf("Submit after shutdown: %s\n", e.what());
    }
  });
  ioc.run();
  pool.join();
  if (!main_task.done() || main_task.exception())
    errors.push_back("the abandon check did not finish");
  if (parked.started.load() != 2)
    errors.push_back("abandoned jobs started: " + std::to_string(parked.started.load()));
  for (const std::string& e : errors)
    std::printf("FAILED: %s\n", e.c_str());
  if (errors.empty())
    std::printf("Destroyed a busy system: 2 running jobs cancelled, 4 queued jobs cancelled "
                "unrun\n");
  return errors.empty();
}

int main(int argc, char** argv) {
  std::size_t jobs = 10'000;
  int threads = 0; // 0: the demo, then the check on 1 and on 2 threads
  for (int a = 1; a + 1 < argc; a += 2) {
    const std::string_view opt = argv[a];
    if (opt == "--jobs")
      jobs = std::strtoul(argv[a + 1], nullptr, 10);
    else if (opt == "--threads")
      threads = std::atoi(argv[a + 1]);
    else
      jobs = 0; // unknown option: print the usage
  }
  if (argc % 2 == 0 || jobs == 0 || threads < 0) {
    std::printf("usage: %s [--jobs N] [--threads N]\n", argv[0]);
    return 2;
  }
  if (argc > 1)
    return run_check(jobs, threads == 0 ? 1 : threads) ? 0 : 1;
  if (run_demo() != 0)
    return 1;
  return run_check(jobs, 1) && run_check(jobs, 2) && run_abandon_check() ? 0 : 1;
}
