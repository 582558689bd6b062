//
// examples/hedged_requests.cpp
//
// A fan-out aggregator with hedging, the program a newcomer writes first: ask every replica
// of a service, take the first *answer*, stop the others; give the whole lookup a deadline
// that the protocol can move; run several lookups in a scope that always joins; at shutdown,
// cancel whatever still runs. The pieces (docs/waiting.md, docs/task_group.md,
// docs/tasks.md):
//   * af::first_success   — the first replica that answers wins; one that fails fast does
//                           not decide; the losers are cancelled; all failing gives an
//                           exception_group;
//   * af::timeout_scope   — asyncio's Timeout object: a deadline the body reschedules;
//   * af::with_task_group — asyncio's `async with TaskGroup()`: returns the body's value
//                           once every child is done;
//   * af::all_tasks(ctx)  — each row has a handle that can cancel the task.
// A replica is a coroutine that takes a number of scheduler turns (no sleeps, no timers), so
// the run is deterministic; the program checks its transcript and exits 1 on any difference.
//
#include "transcript.hpp"

#include <asio_futures/asio_futures.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>

#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace af = asio_futures;
using example::print;
using example::py;
using namespace std::chrono_literals;

/// A replica's behaviour: after `turns` scheduler turns it answers, or fails with `error`.
struct replica {
  std::string name;
  int turns;
  std::optional<std::string> error;
};

int replicas_cancelled = 0; // replicas that were still working when a winner was found

asio::awaitable<std::string> ask(replica r, std::string key) {
  try {
    for (int i = 0; i < r.turns; ++i)
      co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  } catch (const boost::system::system_error&) { // operation_aborted: the task was cancelled
    ++replicas_cancelled;
    throw;
  }
  if (r.error)
    throw std::runtime_error(r.name + ": " + *r.error);
  co_return key + "@" + r.name;
}

/// The hedged lookup: every replica at once, the first answer wins. The losers are cancelled
/// by first_success; the lookup still waits until they have wound down (af::wait never
/// cancels), so that nothing it started outlives it.
asio::awaitable<std::string> lookup(std::vector<replica> replicas, std::string key) {
  const auto ex = co_await asio::this_coro::executor;
  std::vector<af::future<std::string>> asks;
  for (const replica& r : replicas)
    asks.push_back(af::create_task(ex, ask(r, key), "ask " + r.name));
  const af::future<std::string> first = af::first_success(asks);
  std::exception_ptr failure;
  std::string answer;
  try {
    answer = co_await first.async_wait();
  } catch (...) {
    failure = std::current_exception();
  }
  co_await af::wait(asks).async_wait();
  if (failure)
    std::rethrow_exception(failure);
  co_return answer;
}

asio::awaitable<void> never_answers() {
  const auto ex = co_await asio::this_coro::executor;
  co_await af::future<void>(ex).async_wait();
}

asio::awaitable<void> aggregator() {
  const auto ex = co_await asio::this_coro::executor;

  // 1. One hedged lookup: "a" fails at once, "b" answers after 3 turns, "c" would take 50.
  const std::vector<replica> replicas{
      {"a", 0, "connection refused"}, {"b", 3, std::nullopt}, {"c", 50, std::nullopt}};
  const std::string one = co_await lookup(replicas, "user:1");
  print("lookup: " + one + ", slow replica cancelled: " + py(replicas_cancelled == 1));

  // 2. Every replica fails: the caller gets all the reasons, in replica order.
  std::string reasons;
  try {
    const std::vector<replica> failing{{"a", 1, "timeout"}, {"b", 0, "overloaded"}};
    (void)co_await lookup(failing, "user:2");
  } catch (const af::exception_group& g) {
    for (const std::exception_ptr& e : g.exceptions()) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        reasons += std::string(reasons.empty() ? "" : "; ") + x.what();
      }
    }
  }
  print("all failed: " + reasons);

  // 3. Several lookups in a scope that always joins; the whole batch under a deadline that
  // the body tightens once the first result is in (a moving deadline: timeout_scope).
  af::timeout_scope deadline(10s);
  const std::vector<std::string> batch = co_await deadline.run(
      af::with_task_group(ex, [&](af::task_group& tg) -> asio::awaitable<std::vector<std::string>> {
        std::vector<af::task<std::string>> lookups;
        for (int k = 3; k <= 5; ++k)
          lookups.push_back(tg.create_task(lookup(replicas, "user:" + std::to_string(k))));
        std::vector<std::string> out;
        for (auto& t : lookups) {
          out.push_back(co_await t.async_wait());
          deadline.reschedule(std::chrono::steady_clock::now() + 5s); // keep it moving
        }
        co_return out;
      }));
  print("batch: " + batch[0] + " " + batch[1] + " " + batch[2] +
        ", deadline passed: " + py(deadline.expired()));

  // 4. A lookup that cannot finish: the deadline is moved into the past, the body is
  // cancelled and the scope raises timeout_error.
  af::timeout_scope stuck(1h);
  bool timed_out = false;
  try {
    co_await stuck.run([&]() -> asio::awaitable<void> {
      stuck.reschedule(std::chrono::steady_clock::now()); // e.g. the peer went silent
      co_await never_answers();
    }());
  } catch (const af::timeout_error& e) {
    timed_out = std::string(e.what()) == "asio_futures::timeout_scope: timed out";
  }
  print(std::string("stuck lookup timed out: ") + py(timed_out));

  // 5. Shutdown: background tasks of any result type, found and cancelled through their
  // handles.
  af::create_task(ex, never_answers(), "background refresher");
  const replica slow{"z", 1000, std::nullopt};
  af::create_task(ex, ask(slow, "warmup"), "background warmup");
  co_await asio::post(ex, asio::use_awaitable); // let them start
  int cancelled = 0;
  for (const af::task_info& t : af::all_tasks(asio::query(ex, asio::execution::context)))
    if (t.name.rfind("background", 0) == 0 && t.handle.cancel("shutting down"))
      ++cancelled;
  print("background tasks cancelled at shutdown: " + std::to_string(cancelled));
}

int main() {
  return example::run_and_check(&aggregator,
                                "lookup: user:1@b, slow replica cancelled: True\n"
                                "all failed: a: timeout; b: overloaded\n"
                                "batch: user:3@b user:4@b user:5@b, deadline passed: False\n"
                                "stuck lookup timed out: True\n"
                                "background tasks cancelled at shutdown: 2\n");
}
