//
// examples/seed_thread_pool_bridge.cpp
//
// The seed's "Use Futures when" (`run_in_thread_pool`: a future as the bridge from a thread
// pool) and "Futures in Thread/Process Pools" (`loop.run_in_executor(pool, f, args...)`).
// Exits 1 if a result is wrong or the output differs from the expected transcript.
//
// The bridge by hand is shorter than asyncio's: any thread may resolve an af::future, so the
// pool thread calls set_result itself — no `call_soon_threadsafe` relay. It uses the try_
// forms because the awaiting side may have been cancelled meanwhile (a cancelled future
// refuses a result; set_result would throw on the pool thread).
//
// af::run_in_executor is the library's version of the same bridge; it also lets a
// cancellation reach the work (a std::stop_token as first parameter; see
// examples/thread_offload.cpp) and never runs a function whose future was cancelled before a
// pool thread picked it up. The seed creates a ThreadPoolExecutor per call; here one pool
// serves the program. The seed's time.sleep(1) is 10 ms of blocking sleep.
//
#include "transcript.hpp"

#include <asio_futures/asio_futures.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>

namespace asio = boost::asio;
namespace af = asio_futures;
using namespace std::chrono_literals;
using example::print;

asio::thread_pool* pool = nullptr; // the program's pool, set by main

/// The seed's `run_in_thread_pool(func, *args)`, written by hand.
template <class F, class... Args>
asio::awaitable<std::invoke_result_t<F&, Args&...>> run_in_thread_pool(F func, Args... args) {
  using result_type = std::invoke_result_t<F&, Args&...>;
  // A future that the pool thread resolves (loop.create_future()).
  const af::future<result_type> future(co_await asio::this_coro::executor);
  asio::post(*pool, [future, func = std::move(func), ... args = std::move(args)]() mutable {
    try {
      future.try_set_result(std::invoke(func, args...));
    } catch (...) {
      future.try_set_exception(std::current_exception());
    }
  });
  // Await the future: the loop stays free while the pool works.
  co_return co_await future.async_wait();
}

/// The seed's CPU-bound function.
long long cpu_bound_work(long long x) {
  long long result = 0;
  for (long long i = 0; i < 10'000'000; ++i)
    result += i * x;
  return result;
}

/// The seed's blocking function (time.sleep(1) there).
std::string time_consuming_function(std::string arg1, std::string arg2) {
  std::this_thread::sleep_for(10ms); // blocking: fine on a pool thread
  return "Processed " + arg1 + " and " + arg2;
}

asio::awaitable<void> amain() {
  // Run in the thread pool while keeping the event loop responsive.
  const long long result = co_await run_in_thread_pool(cpu_bound_work, 2LL);
  print("Result: " + std::to_string(result));
  if (result != 2 * (9'999'999LL * 10'000'000LL / 2))
    throw std::logic_error("wrong sum");

  // An exception thrown on the pool thread reaches the awaiting coroutine.
  try {
    co_await run_in_thread_pool([]() -> int { throw std::out_of_range("no such row"); });
  } catch (const std::out_of_range& e) {
    print(std::string("Pool thread raised: ") + e.what());
  }

  // loop.run_in_executor(pool, time_consuming_function, "arg1", "arg2"); the result future
  // lives on this coroutine's executor, as asyncio's lives on the loop.
  const auto ex = co_await asio::this_coro::executor;
  const af::future<std::string> thread_result = af::run_in_executor(
      ex, *pool, time_consuming_function, std::string("arg1"), std::string("arg2"));
  print("Thread result: " + co_await thread_result.async_wait());
}

int main() {
  asio::thread_pool the_pool(2);
  pool = &the_pool;
  const int status = example::run_and_check(amain, "Result: 99999990000000\n"
                                                   "Pool thread raised: no such row\n"
                                                   "Thread result: Processed arg1 and arg2\n");
  the_pool.join();
  return status;
}
