//
// examples/sync_bounded_worker_pool.cpp
//
// asyncio's bounded worker pool: `sem = asyncio.Semaphore(K)`, N jobs started at once with
// create_task, each doing `async with sem: ...`, so that at most K run at a time. The program
// measures the most jobs ever inside the semaphore at once and checks that it is exactly K,
// and that every job's result is right.
//
// Then the cancellation rule of docs/sync.md, "a waiter that completes with cancelled_error
// holds nothing, and nothing is lost", in its two cases:
//   * a task cancelled while it waits for a permit never runs its job;
//   * a task that was already handed a permit by release(), but cancelled before it could
//     resume, never runs its job either: the permit passes to the next waiter.
// Afterwards the semaphore has exactly K permits again. Exits 1 on any other output or
// failed check.
//
// C++ differences: there is no `async with`; the job releases the permit itself (an RAII
// guard would do it on every path; here the job cannot fail between acquire and release).
// The "work" is a few scheduler turns (`co_await asio::post`), so that the jobs interleave
// deterministically, with no sleeps.
//
#include "transcript.hpp"

#include <asio_futures/asio_futures.hpp>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace af = asio_futures;
using example::print;
using example::py;

constexpr int jobs = 12;         // N
constexpr std::size_t limit = 3; // K

int running = 0;     // jobs inside the semaphore right now
int max_running = 0; // the most at any moment

void require(bool ok, const char* what) {
  if (!ok)
    throw std::runtime_error(what);
}

/// One job of the pool: takes a permit, "works" for a few turns, returns i * i.
asio::awaitable<int> job(af::semaphore& sem, int i) {
  co_await sem.async_acquire();
  max_running = std::max(max_running, ++running);
  for (int turn = 0; turn < 3; ++turn) // let the other jobs run meanwhile
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  --running;
  sem.release();
  co_return i* i;
}

/// A job for the cancellation part: says (through `waiting`) when its acquire is queued,
/// and records in `ran` whether it ever got past it.
asio::awaitable<void> guarded_job(af::semaphore& sem, af::event& waiting, bool& ran) {
  waiting.set();                // the acquire below is initiated in this same step
  co_await sem.async_acquire(); // a cancelled_error here leaves the task at once
  ran = true;
  sem.release();
}

/// Awaits a task that should have been cancelled; true if it was.
asio::awaitable<bool> ended_cancelled(const af::task<void>& t) {
  try {
    co_await t.async_wait();
  } catch (const af::cancelled_error&) {
    co_return t.cancelled();
  }
  co_return false;
}

asio::awaitable<void> bounded_worker_pool() {
  const auto ex = co_await asio::this_coro::executor;
  af::semaphore sem(ex, limit);

  // 1. N jobs started at once; the semaphore lets K run at a time.
  std::vector<af::task<int>> tasks;
  for (int i = 0; i < jobs; ++i)
    tasks.push_back(af::create_task(ex, job(sem, i)));
  const std::vector<int> results = co_await af::gather(tasks).async_wait();

  bool all_right = results.size() == static_cast<std::size_t>(jobs);
  for (int i = 0; all_right && i < jobs; ++i)
    all_right = results[i] == i * i;
  print("Ran " + std::to_string(jobs) + " jobs, results right: " + py(all_right));
  print("Most jobs running at once: " + std::to_string(max_running) + " (limit " +
        std::to_string(limit) + ")");
  require(all_right && max_running == static_cast<int>(limit), "the pool misbehaved");

  // 2. Cancellation. Take every permit, so that the next acquirers queue.
  for (std::size_t i = 0; i < limit; ++i)
    co_await sem.async_acquire();
  require(sem.locked(), "every permit is taken");

  af::event waiting1(ex), waiting2(ex), waiting3(ex);
  bool ran1 = false, ran2 = false, ran3 = false;
  const af::task<void> victim = af::create_task(ex, guarded_job(sem, waiting1, ran1));
  co_await waiting1.async_wait(); // victim queued first
  const af::task<void> granted = af::create_task(ex, guarded_job(sem, waiting2, ran2));
  co_await waiting2.async_wait(); // then granted
  const af::task<void> successor = af::create_task(ex, guarded_job(sem, waiting3, ran3));
  co_await waiting3.async_wait(); // then successor

  // 2a. Cancelled while waiting: the task ends with CancelledError, its job never runs.
  victim.cancel();
  const bool victim_cancelled = co_await ended_cancelled(victim);
  print(std::string("Waiting acquirer cancelled: ") + py(victim_cancelled) +
        ", its job ran: " + py(ran1));

  // 2b. release() hands a permit to `granted` (the first waiter now); it is cancelled before
  // it resumes. The permit is not lost: it passes to `successor`.
  sem.release();
  granted.cancel();
  const bool granted_cancelled = co_await ended_cancelled(granted);
  co_await successor.async_wait();
  print(std::string("Acquirer cancelled after being granted: ") + py(granted_cancelled) +
        ", its job ran: " + py(ran2));
  print(std::string("The permit passed to the next waiter, whose job ran: ") + py(ran3));
  require(victim_cancelled && !ran1 && granted_cancelled && !ran2 && ran3,
          "cancellation misbehaved");

  // 3. The permit count is intact: give back the K - 1 permits still held (successor gave
  // back the one it got), then exactly K acquisitions succeed without waiting: the semaphore
  // is not locked before each, and is locked after the K-th.
  for (std::size_t i = 0; i + 1 < limit; ++i)
    sem.release();
  std::size_t free_permits = 0;
  while (!sem.locked()) {
    co_await sem.async_acquire();
    ++free_permits;
    require(free_permits <= limit, "more permits than the semaphore was created with");
  }
  print("Permits free afterwards: " + std::to_string(free_permits));
  require(free_permits == limit, "a permit was lost");
  for (std::size_t i = 0; i < limit; ++i)
    sem.release();
}

int main() {
  return example::run_and_check(bounded_worker_pool,
                                "Ran 12 jobs, results right: True\n"
                                "Most jobs running at once: 3 (limit 3)\n"
                                "Waiting acquirer cancelled: True, its job ran: False\n"
                                "Acquirer cancelled after being granted: True, its job ran: "
                                "False\n"
                                "The permit passed to the next waiter, whose job ran: True\n"
                                "Permits free afterwards: 3\n");
}
