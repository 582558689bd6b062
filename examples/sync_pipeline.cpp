//
// examples/sync_pipeline.cpp
//
// asyncio's producer/consumer pipeline over bounded queues:
//
//   producer --q1--> stage 1 (x * 10, two workers) --q2--> stage 2 (x + 7, two workers)
//            --q3--> consumer
//
// Every queue holds at most 2 items, so the producer (and the workers) wait for room: the
// pipeline applies back-pressure. When the producer is done, the main coroutine waits for the
// pipeline to drain with `await q.join()` on each queue in order (a worker calls
// `task_done()` on its input only after it has put the result on its output, so once q1 is
// joined every item is counted in q2, and so on), then stops the workers with Python 3.13's
// `q.shutdown()`: their `await q.get()` fails with QueueShutDown and they return how many
// items they handled. The program checks that every item arrives exactly once, transformed
// by both stages, that the producer did have to wait, and that no queue ever held more than
// its max_size. Exits 1 on any other output or failed check.
//
// The workers' "work" is a few scheduler turns (`co_await asio::post`): they are slower than
// the producer, so it fills q1 and waits, deterministically, with no sleeps.
//
// C++ differences: QueueShutDown is `af::queue_shut_down`; the workers catch it around the
// get (a co_await is not allowed inside a catch block, so the loop checks a flag).
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

constexpr int items = 50;
constexpr std::size_t max_size = 2;

std::size_t largest_size = 0; // the most items seen in any queue

void require(bool ok, const char* what) {
  if (!ok)
    throw std::runtime_error(what);
}

void observe(const af::queue<int>& q) {
  largest_size = std::max(largest_size, q.size());
}

/// Puts 0 .. items-1 on `out`; returns how many puts found the queue full and had to wait.
asio::awaitable<int> producer(af::queue<int>& out) {
  int waits = 0;
  for (int i = 0; i < items; ++i) {
    if (out.full())
      ++waits;
    co_await out.async_put(i);
    observe(out);
  }
  co_return waits;
}

/// A stage's worker: takes items from `in` until it is shut down, puts `f(item)` on `out`.
/// Returns how many items it handled.
template <class F> asio::awaitable<int> worker(af::queue<int>& in, af::queue<int>& out, F f) {
  int handled = 0;
  for (;;) {
    int item = 0;
    bool shut_down = false;
    try {
      item = co_await in.async_get();
    } catch (const af::queue_shut_down&) {
      shut_down = true;
    }
    if (shut_down)
      co_return handled;
    for (int turn = 0; turn < 3; ++turn) // "work": slower than the producer, so q1 fills up
      co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    co_await out.async_put(f(item));
    observe(out);
    in.task_done(); // after the put: joining `in` then means the item is counted in `out`
    ++handled;
  }
}

/// Takes the results from `in` until it is shut down, counting each value it sees.
asio::awaitable<int> consumer(af::queue<int>& in, std::vector<int>& seen) {
  int handled = 0;
  for (;;) {
    int item = 0;
    bool shut_down = false;
    try {
      item = co_await in.async_get();
    } catch (const af::queue_shut_down&) {
      shut_down = true;
    }
    if (shut_down)
      co_return handled;
    if (item >= 0 && static_cast<std::size_t>(item) < seen.size())
      ++seen[item];
    else
      seen.push_back(-1); // a value no input maps to: fails the exactly-once check below
    in.task_done();
    ++handled;
  }
}

asio::awaitable<void> pipeline() {
  const auto ex = co_await asio::this_coro::executor;
  af::queue<int> q1(ex, max_size), q2(ex, max_size), q3(ex, max_size);

  const auto times_ten = [](int x) { return x * 10; };
  const auto plus_seven = [](int x) { return x + 7; };
  constexpr int largest_result = (items - 1) * 10 + 7;
  std::vector<int> seen(largest_result + 1, 0);

  const af::task<int> produce = af::create_task(ex, producer(q1));
  const std::vector<af::task<int>> workers = {
      af::create_task(ex, worker(q1, q2, times_ten)),
      af::create_task(ex, worker(q1, q2, times_ten)),
      af::create_task(ex, worker(q2, q3, plus_seven)),
      af::create_task(ex, worker(q2, q3, plus_seven)),
      af::create_task(ex, consumer(q3, seen)),
  };

  // Wait for the producer, then for the pipeline to drain, stage by stage.
  const int producer_waits = co_await produce.async_wait();
  co_await q1.async_join();
  co_await q2.async_join();
  co_await q3.async_join();
  print("Pipeline drained: " + std::string(py(q1.empty() && q2.empty() && q3.empty())));

  // Stop the workers: their pending get fails with queue_shut_down and they return.
  q1.shutdown();
  q2.shutdown();
  q3.shutdown();
  const std::vector<int> handled = co_await af::gather(workers).async_wait();
  const int stage1 = handled[0] + handled[1];
  const int stage2 = handled[2] + handled[3];
  const int consumed = handled[4];
  print("Workers stopped by shutdown; handled: stage 1 " + std::to_string(stage1) + ", stage 2 " +
        std::to_string(stage2) + ", consumer " + std::to_string(consumed));

  bool exactly_once = seen.size() == static_cast<std::size_t>(largest_result + 1);
  for (int v = 0; exactly_once && v <= largest_result; ++v) {
    const bool expected = v % 10 == 7; // v = i * 10 + 7 for one i in [0, items)
    exactly_once = seen[v] == (expected ? 1 : 0);
  }
  print(std::string("Every item arrived exactly once, as x * 10 + 7: ") + py(exactly_once));
  print(std::string("The producer waited for room: ") + py(producer_waits > 0));
  print("Most items in a queue at once: " + std::to_string(largest_size) + " (max_size " +
        std::to_string(max_size) + ")");
  require(exactly_once && producer_waits > 0 && largest_size <= max_size,
          "the pipeline misbehaved");

  // After shutdown, a put fails with queue_shut_down.
  bool put_refused = false;
  try {
    q1.put_nowait(0);
  } catch (const af::queue_shut_down&) {
    put_refused = true;
  }
  print(std::string("A put after shutdown is refused: ") + py(put_refused));
  require(put_refused, "a shut-down queue took an item");
}

int main() {
  return example::run_and_check(pipeline,
                                "Pipeline drained: True\n"
                                "Workers stopped by shutdown; handled: stage 1 50, stage 2 50, "
                                "consumer 50\n"
                                "Every item arrived exactly once, as x * 10 + 7: True\n"
                                "The producer waited for room: True\n"
                                "Most items in a queue at once: 2 (max_size 2)\n"
                                "A put after shutdown is refused: True\n");
}
