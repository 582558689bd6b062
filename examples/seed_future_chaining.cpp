//
// examples/seed_future_chaining.cpp
//
// The seed's "Future Chaining and Composition": future1 → future2 → future3 through
// done-callbacks, and the same pipeline with then(), which creates the next future itself.
// Prints "Future 1 -> Future 2 -> Future 3" twice; exits 1 on any other result.
//
// As in asyncio, a done-callback receives the (done) future and is scheduled on the
// future's executor, never run inside set_result().
//
#include "transcript.hpp"

#include <asio_futures/asio_futures.hpp>

#include <string>

namespace asio = boost::asio;
namespace af = asio_futures;
using example::print;

asio::awaitable<std::string> by_callbacks() {
  const auto ex = co_await asio::this_coro::executor;
  const af::future<std::string> future1(ex), future2(ex), future3(ex);

  // Setup dependencies between them.
  future1.add_done_callback(
      [future2](af::future<std::string> f) { future2.set_result(f.result() + " -> Future 2"); });
  future2.add_done_callback(
      [future3](af::future<std::string> f) { future3.set_result(f.result() + " -> Future 3"); });

  // Start the chain, and wait for its end.
  future1.set_result("Future 1");
  co_return co_await future3.async_wait();
}

asio::awaitable<std::string> by_then() {
  const af::future<std::string> future1(co_await asio::this_coro::executor);
  const af::future<std::string> future3 =
      future1.then([](const std::string& r) { return r + " -> Future 2"; })
          .then([](const std::string& r) { return r + " -> Future 3"; });
  future1.set_result("Future 1");
  co_return co_await future3.async_wait();
}

asio::awaitable<void> future_composition() {
  print(co_await by_callbacks()); // "Future 1 -> Future 2 -> Future 3"
  print(co_await by_then());
}

int main() {
  return example::run_and_check(future_composition, "Future 1 -> Future 2 -> Future 3\n"
                                                    "Future 1 -> Future 2 -> Future 3\n");
}
