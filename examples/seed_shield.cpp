//
// examples/seed_shield.cpp
//
// The seed's "Shield vs. Future Unwrapping": af::shield stops a task's cancellation from
// reaching the future it awaits. The waiter is cancelled, the future is not, and it can
// still be resolved and used. Prints the seed's lines; exits 1 on any other output.
//
// As in asyncio, shield(f) is a second future that follows f: cancelling the waiter cancels
// the shield's future (so the waiter gets CancelledError at once), while f keeps running and
// its outcome still reaches its other awaiters and callbacks.
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

asio::awaitable<void> shield_example() {
  const auto ex = co_await asio::this_coro::executor;
  const af::future<std::string> future(ex);

  auto shielded_waiter = [future]() -> asio::awaitable<std::string> {
    try {
      // Shield prevents cancellation from propagating to the future.
      co_return co_await af::shield(future).async_wait();
    } catch (const af::cancelled_error&) {
      print("Shielded waiter was cancelled");
      print(std::string("But future was not: ") + py(!future.cancelled()));
      throw;
    }
  };
  const af::task<std::string> task = af::create_task(ex, shielded_waiter());

  // Cancel the task.
  co_await af::sleep(ex, 1ms).async_wait();
  task.cancel();
  try {
    co_await task.async_wait();
  } catch (const af::cancelled_error&) {
  }

  // The future was not cancelled.
  print(std::string("Future cancelled: ") + py(future.cancelled())); // False

  // We can still resolve and use the future.
  future.set_result("Still usable!");
  print("Future result: " + future.result());
}

int main() {
  return example::run_and_check(shield_example, "Shielded waiter was cancelled\n"
                                                "But future was not: True\n"
                                                "Future cancelled: False\n"
                                                "Future result: Still usable!\n");
}
