//
// examples/thread_offload.cpp
//
// The seed's "Futures in Thread/Process Pools" (`run_in_thread_pool`) in C++: CPU-bound work
// runs on a thread pool while the event loop stays responsive, and the coroutine awaits its
// result. Then what asyncio cannot do: cancelling blocking work through a std::stop_token;
// and the bridges to and from std::future.
//
// Differences from the Python original, on purpose: no pool is created per call (the seed's
// `with ThreadPoolExecutor()` block even waits for the pool to shut down before awaiting);
// `af::to_thread` uses the library's default pool, `af::run_in_executor` any pool.
//
#include <asio_futures/asio_futures.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <stdexcept>
#include <stop_token>
#include <thread>

namespace asio = boost::asio;
namespace af = asio_futures;
using namespace std::chrono_literals;

/// The seed's CPU-bound function.
long long cpu_bound_work(long long x) {
  long long result = 0;
  for (long long i = 0; i < 10'000'000; ++i)
    result += i * x;
  return result;
}

/// Blocking work that can be cancelled: it checks its stop token. It reports progress to the
/// loop; the counter is shared, as the job may still report after the loop stopped waiting.
long long search_until_stopped(std::stop_token st, asio::any_io_executor loop,
                               std::shared_ptr<int> progress) {
  long long tried = 0;
  while (!st.stop_requested()) {
    ++tried;
    if (tried % 100'000 == 0)
      // loop.call_soon_threadsafe(...) is asio::post: run this on the loop's thread.
      asio::post(loop, [progress] { ++*progress; });
  }
  return tried;
}

asio::awaitable<void> run(asio::thread_pool& pool) {
  auto ex = co_await asio::this_coro::executor;

  // 1. run_in_thread_pool(cpu_bound_work, 2): the loop keeps ticking meanwhile.
  int ticks = 0;
  auto heartbeat = af::create_task(ex, [&]() -> asio::awaitable<void> {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (;;) {
      timer.expires_after(1ms);
      co_await timer.async_wait(asio::use_awaitable);
      ++ticks;
    }
  });
  const long long result = co_await af::to_thread(cpu_bound_work, 2).async_wait();
  heartbeat.cancel();
  std::printf("Result: %lld (the event loop ticked %d times meanwhile)\n", result, ticks);
  if (result != 2 * (10'000'000LL * 9'999'999LL / 2))
    throw std::logic_error("wrong result");

  // 2. Cancelling blocking work: the future's cancel() requests stop on its token.
  auto progress = std::make_shared<int>(0);
  af::future<long long> search = af::run_in_executor(ex, pool, search_until_stopped, ex, progress);
  asio::steady_timer timer(ex, 20ms);
  co_await timer.async_wait(asio::use_awaitable);
  search.cancel("enough searching");
  try {
    co_await search.async_wait();
    throw std::logic_error("the search should have been cancelled");
  } catch (const af::cancelled_error& e) {
    std::printf("Search cancelled (%s) after %d progress reports\n", e.message().c_str(),
                *progress);
  }

  // 3. A std::future from legacy code, awaited without blocking the loop.
  std::future<int> legacy = std::async(std::launch::async, [] { return 6 * 7; });
  const int answer = co_await af::wrap_future(std::move(legacy), ex).async_wait();
  std::printf("Legacy answer: %d\n", answer);
}

int main() {
  asio::io_context ioc;
  asio::thread_pool pool(2);
  // A foreign thread (here main) blocks on the outcome of the whole program's task.
  std::future<void> done = af::to_std_future(af::create_task(ioc, run(pool)));
  std::thread loop([&] { ioc.run(); });
  try {
    done.get();
  } catch (const std::exception& e) {
    std::printf("failed: %s\n", e.what());
    loop.join();
    return 1;
  }
  loop.join();
  return 0;
}
