//
// examples/distributed/producer.cpp
//
// The caller side of the seed's "Example 2: Distributed Task Processing with Futures",
// across processes: `submit` returns a future, worker processes (worker.cpp) resolve it
// through Redis, `gather` collects.
//
//   example_distributed_producer --port P [--host H] [--queue Q] [--jobs N]
//
// Job i is compute_task(i, 2 i) when i is even, slow_task("task-i") when odd, as in the
// seed. Every result is checked; the program prints "completed K" every N/20 completions and
// at the last one (so a driver can act mid-run, and tell that jobs were still in flight),
// counts the completions of each job apart, and exits 1 on any wrong, missing or repeated
// completion.
//
#include <asio_futures/asio_futures.hpp>
#include <asio_futures/redis.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

namespace af = asio_futures;
namespace afr = asio_futures::redis;
namespace asio = boost::asio;

int main(int argc, char** argv) {
  afr::endpoint ep;
  std::string queue = "seed";
  int jobs = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view a = argv[i];
    if (a == "--port")
      ep.port = static_cast<std::uint16_t>(std::atoi(argv[i + 1]));
    else if (a == "--host")
      ep.host = argv[i + 1];
    else if (a == "--queue")
      queue = argv[i + 1];
    else if (a == "--jobs")
      jobs = std::atoi(argv[i + 1]);
  }

  asio::io_context ioc;
  afr::job_queue q(ioc.get_executor(), ep, queue);
  const int step = std::max(1, jobs / 20);
  int completed = 0;                                     // done-callbacks, all jobs
  std::vector<int> seen(static_cast<std::size_t>(jobs)); // done-callbacks, per job
  int wrong = 0;

  auto main_task = af::create_task(ioc, [&]() -> asio::awaitable<void> {
    std::vector<af::future<int>> products;
    std::vector<af::future<std::string>> messages;
    for (int i = 0; i < jobs; ++i) {
      auto count = [&, i](auto) {
        ++seen[static_cast<std::size_t>(i)];
        if (++completed % step == 0 || completed == jobs) {
          std::printf("completed %d\n", completed);
          std::fflush(stdout);
        }
      };
      if (i % 2 == 0) {
        products.push_back(q.call<int>("compute_task", i, i * 2));
        products.back().add_done_callback(count);
      } else {
        messages.push_back(q.call<std::string>("slow_task", "task-" + std::to_string(i)));
        messages.back().add_done_callback(count);
      }
    }
    auto [p, m] = co_await af::gather(af::gather(products), af::gather(messages)).async_wait();
    for (std::size_t k = 0; k < p.size(); ++k) {
      const int i = static_cast<int>(2 * k);
      wrong += p[k] != i * i * 2;
    }
    for (std::size_t k = 0; k < m.size(); ++k) {
      const int i = static_cast<int>(2 * k + 1);
      wrong += m[k] != "Slow task task-" + std::to_string(i) + " completed";
    }
    if (jobs <= 10)
      for (std::size_t k = 0; k < m.size(); ++k)
        std::printf("Task %zu result: %d / %s\n", k, p.size() > k ? p[k] : -1, m[k].c_str());
  });

  // The queue's connections keep the context busy: close it when the work is done.
  main_task.add_done_callback([&](af::future<void>) { q.close(); });
  ioc.run();
  try {
    main_task.result();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "producer failed: %s\n", e.what());
    return 1;
  }
  const auto missing = std::count(seen.begin(), seen.end(), 0);
  const auto repeated = std::count_if(seen.begin(), seen.end(), [](int n) { return n > 1; });
  std::printf("All tasks completed! %d jobs, %d completions, %ld missing, %ld repeated, %d wrong "
              "results\n",
              jobs, completed, static_cast<long>(missing), static_cast<long>(repeated), wrong);
  return wrong == 0 && missing == 0 && repeated == 0 && completed == jobs ? 0 : 1;
}
