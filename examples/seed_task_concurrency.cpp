//
// examples/seed_task_concurrency.cpp
//
// The seed's "Use Tasks when": three tasks run process_item concurrently and gather collects
// their results in argument order. Prints the seed's lines and checks that the three items
// were in flight at the same time (each one starts before any finishes) — the point of
// using tasks. Exits 1 on any other output.
//
// C++ differences: `asyncio.gather(t1, t2, t3)` is `af::gather(t1, t2, t3)`, a future of a
// std::tuple (a std::vector for the ranged form). The seed's 1 s of work is 10 ms here.
//
#include "transcript.hpp"

#include <asio_futures/asio_futures.hpp>

#include <algorithm>
#include <chrono>
#include <string>
#include <tuple>

namespace asio = boost::asio;
namespace af = asio_futures;
using namespace std::chrono_literals;
using example::print;

int in_flight = 0;     // items being processed right now
int max_in_flight = 0; // the most at any moment

asio::awaitable<std::string> process_item(std::string item) {
  print("Processing " + item);
  max_in_flight = std::max(max_in_flight, ++in_flight);
  co_await af::sleep(co_await asio::this_coro::executor, 10ms).async_wait(); // simulate work
  --in_flight;
  co_return "Processed " + item;
}

asio::awaitable<void> task_based_concurrency() {
  const auto ex = co_await asio::this_coro::executor;
  // Create multiple tasks to run concurrently.
  const af::task<std::string> task1 = af::create_task(ex, process_item("item1"));
  const af::task<std::string> task2 = af::create_task(ex, process_item("item2"));
  const af::task<std::string> task3 = af::create_task(ex, process_item("item3"));

  // Wait for all tasks to complete.
  const auto [r1, r2, r3] = co_await af::gather(task1, task2, task3).async_wait();
  print("Results: [" + r1 + ", " + r2 + ", " + r3 + "]");
  print("Items in flight at once: " + std::to_string(max_in_flight));
}

int main() {
  return example::run_and_check(task_based_concurrency,
                                "Processing item1\n"
                                "Processing item2\n"
                                "Processing item3\n"
                                "Results: [Processed item1, Processed item2, Processed item3]\n"
                                "Items in flight at once: 3\n");
}
