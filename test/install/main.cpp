// The install test's my_app (test/install/run.sh), built against the installed package:
// proves the headers, the static library and the imported target's usage requirements
// (C++20, Boost, Threads) are all there.
#include <asio_futures/asio_futures.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <cstdio>

namespace asio = boost::asio;
namespace af = asio_futures;

namespace {

asio::awaitable<void> await_into(af::future<int> f, int& out) {
  out = co_await f.async_wait();
}

} // namespace

int main() {
  asio::io_context ctx;

  af::future<int> ready(ctx);
  ready.set_result(42);
  if (!ready.done() || ready.result() != 42) {
    std::fputs("install_test: ready future: wrong result\n", stderr);
    return 1;
  }

  af::future<int> pending(ctx);
  int awaited = 0;
  asio::co_spawn(ctx, await_into(pending, awaited), asio::detached);
  asio::post(ctx, [pending]() mutable { pending.set_result(42); });
  ctx.run();
  if (awaited != 42) {
    std::fputs("install_test: awaited future: wrong result\n", stderr);
    return 1;
  }

  std::puts("install_test: ok");
  return 0;
}
