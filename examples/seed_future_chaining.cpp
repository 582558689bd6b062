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
#include <asio_futures/asio_futures.hpp>

#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <string>

namespace asio = boost::asio;
namespace af = asio_futures;

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

int main() {
  asio::io_context ioc;
  const af::task<std::string> a = af::create_task(ioc, by_callbacks());
  const af::task<std::string> b = af::create_task(ioc, by_then());
  ioc.run();
  const std::string expected = "Future 1 -> Future 2 -> Future 3";
  bool ok = true;
  for (const af::task<std::string>* t : {&a, &b}) {
    const std::string result = t->done() && !t->exception() ? t->result() : "(failed)";
    std::printf("%s\n", result.c_str());
    ok = ok && result == expected;
  }
  return ok ? 0 : 1;
}
