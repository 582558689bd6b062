//
// examples/seed_creating_futures.cpp
//
// The seed's "Creating and Using Futures": a future created empty, resolved by another task
// after a delay, awaited by main. Prints "Hello from Future!"; exits 1 on any other output.
//
// C++ spellings: `asyncio.Future()` is `af::future<T>(executor)` — the executor plays the
// part of the running loop (where callbacks and awaiters' completions run by default);
// `await future` is `co_await future.async_wait()` on every Boost, or `co_await
// std::move(future)` from Boost 1.82 (Boost 1.81's awaitable cannot await the future object
// itself; see docs/boost-versions.md); `asyncio.sleep(1)`
// is `af::sleep(ex, 10ms)`, a future too. The seed's delay of 1 s is 10 ms here.
//
// Unlike asyncio, whose event loop keeps only a weak reference to a task (drop the last
// reference and the task may be garbage-collected mid-flight), a task whose handle is
// dropped here runs to its end: the executor owns it while it runs.
//
#include "transcript.hpp"

#include <asio_futures/asio_futures.hpp>

#include <chrono>
#include <string>

namespace asio = boost::asio;
namespace af = asio_futures;
using namespace std::chrono_literals;
using example::print;

asio::awaitable<void> set_future_result(af::future<std::string> future, std::string result,
                                        std::chrono::milliseconds delay = 10ms) {
  co_await af::sleep(co_await asio::this_coro::executor, delay).async_wait(); // some work
  future.set_result(std::move(result));                                       // resolve the future
}

asio::awaitable<void> amain() {
  const auto ex = co_await asio::this_coro::executor;
  // Create a future.
  const af::future<std::string> future(ex);

  // Set a result later, from another task.
  af::create_task(ex, set_future_result(future, "Hello from Future!"));

  // Await the future's result.
  const std::string result = co_await future.async_wait();
  print(result);
}

int main() {
  return example::run_and_check(amain, "Hello from Future!\n");
}
