//
// examples/seed_patterns.cpp
//
// The seed's "Patterns and Best Practices", each as a function written like the seed's:
//   1. timeout        — af::wait_for (asyncio.wait_for), timeout_error (asyncio.TimeoutError);
//   2. aggregation    — af::wait (asyncio.wait), results and exceptions collected;
//   3. first-completed — af::wait(..., return_when::first_completed), the others cancelled;
//                       and af::first_completed, the library's one-call form;
//   4. context managers — RAII: `async with` becomes a scope whose object releases the
//                       resource in its destructor; a release that must itself be awaited
//                       goes through an async scope helper (C++ cannot co_await in a
//                       destructor or a catch block).
// Exits 1 if the output differs from the expected transcript. The seed's timeouts in
// seconds are milliseconds here.
//
// Semantic notes. af::wait_for follows asyncio 3.12: on expiry it cancels the inner future
// itself and waits for it to end, so the seed's extra `future.cancel()` finds it already
// cancelled (returns False) — kept to show that. af::wait returns `done` and `pending` in
// input order (asyncio returns sets).
//
#include "transcript.hpp"

#include <asio_futures/asio_futures.hpp>

#include <chrono>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace asio = boost::asio;
namespace af = asio_futures;
using namespace std::chrono_literals;
using example::print;
using example::py;

// --- 1. Future timeout pattern ---------------------------------------------------------------
asio::awaitable<int> future_with_timeout(af::future<int> future,
                                         std::chrono::milliseconds timeout) {
  try {
    co_return co_await af::wait_for(future, timeout).async_wait();
  } catch (const af::timeout_error&) {
    print("Future timed out after " + std::to_string(timeout.count()) + " ms");
  }
  // Decide if you want to cancel the original future (wait_for already did).
  print(std::string("cancel() after the timeout returned ") + py(future.cancel()));
  throw af::timeout_error();
}

// --- 2. Future aggregation pattern ------------------------------------------------------------
struct aggregate {
  std::vector<int> results;
  std::vector<std::string> exceptions;
};

asio::awaitable<aggregate> aggregate_futures(std::vector<af::future<int>> futures) {
  // Wait for all futures to complete.
  const af::wait_result<int> split = co_await af::wait(std::move(futures)).async_wait();
  // Collect results and exceptions.
  aggregate out;
  for (const af::future<int>& future : split.done) {
    try {
      out.results.push_back(future.result());
    } catch (const std::exception& e) {
      out.exceptions.push_back(e.what());
    }
  }
  co_return out;
}

// --- 3. First-completed future pattern --------------------------------------------------------
asio::awaitable<std::string> first_completed(std::vector<af::future<std::string>> futures) {
  // Wait for the first future to complete.
  const af::wait_result<std::string> split =
      co_await af::wait(std::move(futures), af::return_when::first_completed).async_wait();
  // Cancel all other futures.
  for (const af::future<std::string>& future : split.pending)
    future.cancel();
  // The result of the first completed future.
  co_return split.done.front().result();
}

// --- 4. Context managers: RAII ----------------------------------------------------------------
struct connection {
  int id;
};
int open_connections = 0;

asio::awaitable<connection> acquire_resource() {
  co_await af::sleep(co_await asio::this_coro::executor, 1ms).async_wait();
  ++open_connections;
  print("acquired connection 7");
  co_return connection{7};
}

/// `async with AsyncResource() as resource:` — the release runs when the scope ends, however
/// it ends (here the release is synchronous, as returning a connection to a pool is).
class async_resource {
public:
  explicit async_resource(connection c) : resource_(c) {}
  async_resource(const async_resource&) = delete;
  async_resource& operator=(const async_resource&) = delete;
  ~async_resource() {
    --open_connections;
    print("released connection " + std::to_string(resource_.id));
  }
  const connection& get() const { return resource_; }

private:
  connection resource_;
};

asio::awaitable<void> process_with_resource(const connection& c, af::future<std::string> out) {
  co_await af::sleep(co_await asio::this_coro::executor, 1ms).async_wait();
  out.set_result("processed with connection " + std::to_string(c.id));
}

asio::awaitable<std::string> future_with_context_manager() {
  // A future to be resolved from inside the scope.
  const af::future<std::string> result_future(co_await asio::this_coro::executor);
  {
    const async_resource resource(co_await acquire_resource());
    co_await process_with_resource(resource.get(), result_future);
  } // the resource is released here, even if the body threw
  // The resource has been released, but the result is still there.
  co_return co_await result_future.async_wait();
}

/// When the release itself must be awaited (`await release_resource(...)` in __aexit__):
/// run the body, keep its exception, await the release, then rethrow — what `async with`
/// does, spelled out because C++ cannot co_await inside a destructor or a catch block.
template <class Body> asio::awaitable<void> with_async_release(connection c, Body body) {
  std::exception_ptr failure;
  try {
    co_await body(c);
  } catch (...) {
    failure = std::current_exception();
  }
  co_await af::sleep(co_await asio::this_coro::executor, 1ms).async_wait(); // async release
  --open_connections;
  print("released connection " + std::to_string(c.id) + " (awaited)");
  if (failure)
    std::rethrow_exception(failure);
}

asio::awaitable<void> patterns() {
  const auto ex = co_await asio::this_coro::executor;

  // 1. A future nobody resolves in time.
  const af::future<int> slow(ex);
  try {
    co_await future_with_timeout(slow, 5ms);
  } catch (const af::timeout_error&) {
    print(std::string("TimeoutError raised; the future is cancelled: ") + py(slow.cancelled()));
  }
  print("In time: " + std::to_string(co_await future_with_timeout(af::sleep(ex, 1ms, 42), 1s)));

  // 2. Three futures, one failing.
  const af::future<int> a(ex), b(ex), c(ex);
  af::create_task(ex, [=]() -> asio::awaitable<void> {
    co_await af::sleep(co_await asio::this_coro::executor, 1ms).async_wait();
    a.set_result(1);
    b.set_exception(std::runtime_error("b failed"));
    c.set_result(3);
  });
  // WORKAROUND(g++ 12): a braced list inside a co_await expression does not compile.
  std::vector<af::future<int>> inputs{a, b, c};
  const aggregate agg = co_await aggregate_futures(std::move(inputs));
  print("Aggregated: " + std::to_string(agg.results.size()) + " results (" +
        std::to_string(agg.results[0]) + ", " + std::to_string(agg.results[1]) + "), " +
        std::to_string(agg.exceptions.size()) + " exception (" + agg.exceptions[0] + ")");

  // 3. Three racers; the fastest wins, the others are cancelled. The losers' delays are long
  // (they never run out: they are cancelled) so that a late timer on a loaded machine cannot
  // let one of them finish before the cancel.
  std::vector<af::future<std::string>> racers{af::sleep(ex, 2s, std::string("slow")),
                                              af::sleep(ex, 1ms, std::string("fast")),
                                              af::sleep(ex, 1s, std::string("medium"))};
  print("First completed: " + co_await first_completed(racers));
  print(std::string("Others cancelled: ") + py(racers[0].cancelled() && racers[2].cancelled()));
  // The library's one-call form cancels the losers before its result is published.
  const std::vector<af::future<std::string>> again{af::sleep(ex, 2s, std::string("slow")),
                                                   af::sleep(ex, 1ms, std::string("fast"))};
  print("af::first_completed: " + co_await af::first_completed(again).async_wait());

  // 4. RAII for async context managers.
  print(co_await future_with_context_manager());
  try {
    co_await with_async_release(co_await acquire_resource(),
                                [](const connection&) -> asio::awaitable<void> {
                                  throw std::runtime_error("body failed");
                                  co_return;
                                });
  } catch (const std::runtime_error& e) {
    print(std::string("The body's exception after the release: ") + e.what());
  }
  print("Open connections: " + std::to_string(open_connections));
}

int main() {
  return example::run_and_check(patterns, "Future timed out after 5 ms\n"
                                          "cancel() after the timeout returned False\n"
                                          "TimeoutError raised; the future is cancelled: True\n"
                                          "In time: 42\n"
                                          "Aggregated: 2 results (1, 3), 1 exception (b failed)\n"
                                          "First completed: fast\n"
                                          "Others cancelled: True\n"
                                          "af::first_completed: fast\n"
                                          "acquired connection 7\n"
                                          "released connection 7\n"
                                          "processed with connection 7\n"
                                          "acquired connection 7\n"
                                          "released connection 7 (awaited)\n"
                                          "The body's exception after the release: body failed\n"
                                          "Open connections: 0\n");
}
