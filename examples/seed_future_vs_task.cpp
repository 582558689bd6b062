//
// examples/seed_future_vs_task.cpp
//
// The seed's "Key Differences Between Tasks and Futures": a future is just marked cancelled,
// a task gets the cancellation injected into its coroutine. Prints the seed's output:
//
//   Coroutine was cancelled
//   Future completed with: Future result
//   Task was cancelled
//
// The seed orders the three events by delays alone (cancel at 0.5 s, set at 1 s, the
// coroutine's own sleep 2 s). Scaled down for CTest, timer order is not enough: on a loaded
// machine a 5 ms margin is lost to a late timer (the future set before the coroutine has seen
// its cancellation). So the events that must come first are awaited, not only timed: the
// cancel comes 5 ms in, while the coroutine sleeps the seed's 2 s (it never gets that far),
// and the future is set 10 ms in *and* once the task has ended. Exits 1 if the output
// differs.
//
#include "transcript.hpp"

#include <asio_futures/asio_futures.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <string>
#include <type_traits>

namespace asio = boost::asio;
namespace af = asio_futures;
using namespace std::chrono_literals;

using example::print;

asio::awaitable<std::string> coro() {
  try {
    co_await af::sleep(co_await asio::this_coro::executor, 2s).async_wait();
    co_return "Coroutine result";
  } catch (const af::cancelled_error&) { // asyncio.CancelledError
    print("Coroutine was cancelled");
    throw;
  }
}

asio::awaitable<void> set_after_delay(af::future<std::string> future, std::string result,
                                      std::chrono::milliseconds delay,
                                      af::task<std::string> after) {
  co_await af::sleep(co_await asio::this_coro::executor, delay).async_wait();
  // Not in the seed: also wait until `after` (the cancelled task) has ended, so the output's
  // order does not depend on how late the timers fire. as_tuple: its outcome is not ours.
  (void)co_await after.async_wait(asio::as_tuple(asio::use_awaitable));
  future.set_result(std::move(result));
}

asio::awaitable<void> cancel_after_delay(af::task<std::string> task,
                                         std::chrono::milliseconds delay) {
  co_await af::sleep(co_await asio::this_coro::executor, delay).async_wait();
  task.cancel();
}

asio::awaitable<void> future_vs_task() {
  const auto ex = co_await asio::this_coro::executor;
  // A future: created empty, resolved by hand.
  const af::future<std::string> future(ex);
  // A task: a future that runs a coroutine (af::task<T> derives from af::future<T>).
  const af::task<std::string> task = af::create_task(ex, coro());
  static_assert(std::is_base_of_v<af::future<std::string>, af::task<std::string>>);

  af::create_task(ex, set_after_delay(future, "Future result", 10ms, task));
  af::create_task(ex, cancel_after_delay(task, 5ms));

  try {
    const std::string future_result = co_await future.async_wait();
    print("Future completed with: " + future_result);
  } catch (const af::cancelled_error&) {
    print("Future was cancelled");
  }
  try {
    const std::string task_result = co_await task.async_wait();
    print("Task completed with: " + task_result);
  } catch (const af::cancelled_error&) {
    print("Task was cancelled");
  }
}

int main() {
  return example::run_and_check(future_vs_task, "Coroutine was cancelled\n"
                                                "Future completed with: Future result\n"
                                                "Task was cancelled\n");
}
