// The README's example: a future resolved by one coroutine, awaited by another, with a
// done-callback and a `then` continuation. Exits 0 and prints "Hello from Future! (6)".
#include <asio_futures/asio_futures.hpp>

#include <boost/asio.hpp>

#include <chrono>
#include <iostream>
#include <string>

namespace asio = boost::asio;
namespace af = asio_futures;
using namespace std::chrono_literals;

asio::awaitable<void> set_future_result(af::future<std::string> f, std::string value) {
  asio::steady_timer timer(co_await asio::this_coro::executor, 10ms);
  co_await timer.async_wait(asio::use_awaitable); // simulate some work
  f.set_result(std::move(value));                 // resolve the future
}

asio::awaitable<int> amain() {
  auto ex = co_await asio::this_coro::executor;
  af::future<std::string> f(ex);
  asio::co_spawn(ex, set_future_result(f, "Hello from Future!"), asio::detached);

  af::future<std::size_t> words = f.then([](const std::string& s) { return s.find(' ') + 1; });
  std::string result = co_await f.async_wait(); // suspends until set
  std::size_t n = co_await words.async_wait();
  std::cout << result << " (" << n << ")\n";
  co_return result == "Hello from Future!" && n == 6 ? 0 : 1;
}

int main() {
  asio::io_context ioc;
  af::future<int> status = asio::co_spawn(ioc, amain(), af::use_future);
  ioc.run();
  return status.get();
}
