//
// examples/seed_future_interface.cpp
//
// The seed's "The Future Interface": done(), cancelled(), set_result(), result() and a
// done-callback, then the other key methods the seed lists — set_exception() and
// exception(), remove_done_callback(), cancel() — and what asyncio raises as
// InvalidStateError. Exits 1 if the output differs from the expected transcript below.
//
// C++ differences: a callback receives the future (`f(af::future<T>)`, as in asyncio) and is
// scheduled on the future's executor, never run inside set_result() — as asyncio schedules
// it with call_soon. add_done_callback() returns an id to pass to remove_done_callback(),
// because C++ lambdas have no identity to compare. InvalidStateError is
// af::invalid_state_error; CancelledError is af::cancelled_error.
//
#include "transcript.hpp"

#include <asio_futures/asio_futures.hpp>

#include <stdexcept>
#include <string>

namespace asio = boost::asio;
namespace af = asio_futures;
using example::print;
using example::py;

asio::awaitable<void> future_interface_example() {
  const auto ex = co_await asio::this_coro::executor;
  const af::future<std::string> future(ex);

  print(py(future.done()));      // False - the future is pending
  print(py(future.cancelled())); // False - the future hasn't been cancelled

  // Set a result.
  future.set_result("Success!");

  print(py(future.done())); // True - the future is now done
  print(future.result());   // "Success!" - get the result (would throw if not done)

  // Create another future, and register a callback to be called when it is done.
  const af::future<std::string> another_future(ex);
  another_future.add_done_callback(
      [](af::future<std::string> f) { print("Future completed with: " + f.result()); });

  // Set the result, which will schedule the callback. The await below registers after the
  // callback, and completions run in registration order: the callback prints first.
  another_future.set_result("Another success!");
  co_await another_future.async_wait();

  // --- The rest of the interface the seed lists ---------------------------------------------
  // result() of a pending future, and a second set_result(), are InvalidStateError.
  const af::future<int> pending(ex);
  try {
    (void)pending.result();
  } catch (const af::invalid_state_error&) {
    print("result() of a pending future: InvalidStateError");
  }
  try {
    future.set_result("again");
  } catch (const af::invalid_state_error&) {
    print("set_result() on a done future: InvalidStateError");
  }

  // set_exception() / exception(): result() rethrows what was set.
  const af::future<int> failing(ex);
  failing.set_exception(std::invalid_argument("bad input"));
  try {
    std::rethrow_exception(failing.exception());
  } catch (const std::invalid_argument& e) {
    print(std::string("exception(): ") + e.what());
  }

  // remove_done_callback(): a removed callback never runs.
  const af::callback_id id =
      pending.add_done_callback([](af::future<int>) { print("removed callback ran (wrong)"); });
  print("removed callbacks: " + std::to_string(pending.remove_done_callback(id)));

  // cancel(): a pending future becomes cancelled; result() raises CancelledError.
  print("cancel() returned " + std::string(py(pending.cancel("no longer needed"))));
  print("cancelled(): " + std::string(py(pending.cancelled())));
  try {
    (void)pending.result();
  } catch (const af::cancelled_error& e) {
    print("result() raised CancelledError: " + e.message());
  }
  // cancel() of a done future does nothing and returns False.
  print("cancel() of a done future returned " + std::string(py(future.cancel())));
}

int main() {
  return example::run_and_check(future_interface_example,
                                "False\n"
                                "False\n"
                                "True\n"
                                "Success!\n"
                                "Future completed with: Another success!\n"
                                "result() of a pending future: InvalidStateError\n"
                                "set_result() on a done future: InvalidStateError\n"
                                "exception(): bad input\n"
                                "removed callbacks: 1\n"
                                "cancel() returned True\n"
                                "cancelled(): True\n"
                                "result() raised CancelledError: no longer needed\n"
                                "cancel() of a done future returned False\n");
}
