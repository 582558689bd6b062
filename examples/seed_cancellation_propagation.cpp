//
// examples/seed_cancellation_propagation.cpp
//
// The seed's "Future Cancellation Propagation": cancelling a task that awaits a future
// raises CancelledError in the task, whose handler cancels the future too. Prints the seed's
// lines; exits 1 on any other output.
//
// In asio_futures the propagation is also automatic, without the handler: awaiting a future
// connects the await to the task's cancellation slot, and a *terminal* cancellation (what
// task.cancel() emits) cancels the awaited future itself — as in asyncio, where cancelling a
// task cancels the future it awaits. The second part shows it. To only stop waiting without
// touching the future, use af::shield (examples/seed_shield.cpp) or a `partial`/`total`
// cancellation of the await (docs/cancellation.md).
//
#include "transcript.hpp"

#include <asio_futures/asio_futures.hpp>

#include <chrono>
#include <string>

namespace asio = boost::asio;
namespace af = asio_futures;
using namespace std::chrono_literals;
using example::print;
using example::py;

asio::awaitable<void> cancellation_propagation() {
  const auto ex = co_await asio::this_coro::executor;
  // A future.
  const af::future<std::string> future(ex);

  // A task that awaits the future.
  auto waiter = [future]() -> asio::awaitable<std::string> {
    try {
      co_return co_await future.async_wait();
    } catch (const af::cancelled_error&) {
      print("Waiter was cancelled");
      future.cancel(); // cancel the future too (already done by the await: returns false)
      throw;
    }
  };
  const af::task<std::string> task = af::create_task(ex, waiter());

  // Cancel the task.
  co_await af::sleep(ex, 1ms).async_wait();
  task.cancel();
  try {
    co_await task.async_wait();
  } catch (const af::cancelled_error&) {
  }
  // Check if the future was also cancelled.
  print(std::string("Future cancelled: ") + py(future.cancelled())); // True

  // The same without the handler: the await itself propagates the task's cancellation,
  // with the task's cancel message.
  const af::future<std::string> second(ex);
  const af::task<std::string> plain_waiter = af::create_task(
      ex, [second]() -> asio::awaitable<std::string> { co_return co_await second.async_wait(); });
  co_await af::sleep(ex, 1ms).async_wait();
  plain_waiter.cancel("shutting down");
  try {
    co_await plain_waiter.async_wait();
  } catch (const af::cancelled_error& e) {
    print("Plain waiter cancelled: " + e.message());
  }
  print(std::string("Its future cancelled: ") + py(second.cancelled()));
  try {
    (void)second.result();
  } catch (const af::cancelled_error& e) {
    print("With the task's message: " + e.message());
  }
}

int main() {
  return example::run_and_check(cancellation_propagation,
                                "Waiter was cancelled\n"
                                "Future cancelled: True\n"
                                "Plain waiter cancelled: shutting down\n"
                                "Its future cancelled: True\n"
                                "With the task's message: shutting down\n");
}
