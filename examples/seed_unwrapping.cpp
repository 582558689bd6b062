//
// examples/seed_unwrapping.cpp
//
// The seed's "Future Unwrapping": an outer future whose result is another future; awaiting
// the outer one awaits the inner one too and gives its result. Prints "Nested result";
// exits 1 on any other output.
//
// In C++ the nesting is in the type: `future<future<std::string>>`. Awaiting it completes
// with the innermost value (its completion signature is that of future<std::string>), at
// any depth. `unwrap()` makes the flattened future<std::string> as an object, for code that
// wants a future rather than an await; `then` flattens a continuation that returns a future.
// (asyncio does not really unwrap a Future whose result is a Future: `await outer` returns
// the inner Future object. The seed describes the unwrapping as a feature; we provide it.)
//
#include "transcript.hpp"

#include <asio_futures/asio_futures.hpp>

#include <chrono>
#include <string>

namespace asio = boost::asio;
namespace af = asio_futures;
using namespace std::chrono_literals;
using example::print;

asio::awaitable<void> set_after_delay(af::future<std::string> future, std::string result,
                                      std::chrono::milliseconds delay) {
  co_await af::sleep(co_await asio::this_coro::executor, delay).async_wait();
  future.set_result(std::move(result));
}

asio::awaitable<void> nested_futures() {
  const auto ex = co_await asio::this_coro::executor;
  // An outer future, and an inner future.
  const af::future<af::future<std::string>> outer_future(ex);
  const af::future<std::string> inner_future(ex);

  // Set the inner future as the result of the outer future.
  outer_future.set_result(inner_future);

  // Later, set a result on the inner future.
  af::create_task(ex, set_after_delay(inner_future, "Nested result", 10ms));

  // Await the outer future: this awaits the inner future too.
  const std::string result = co_await outer_future.async_wait();
  print(result); // "Nested result"

  // The same flattening as an object, and through then().
  const af::future<std::string> flat = outer_future.unwrap();
  print("unwrap(): " + co_await flat.async_wait());
  const af::future<std::string> chained = inner_future.then(
      [ex](const std::string& s) { return af::sleep(ex, 1ms, s + ", then a future"); });
  print("then(): " + co_await chained.async_wait());
}

int main() {
  return example::run_and_check(nested_futures, "Nested result\n"
                                                "unwrap(): Nested result\n"
                                                "then(): Nested result, then a future\n");
}
