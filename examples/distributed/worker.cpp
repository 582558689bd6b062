//
// examples/distributed/worker.cpp
//
// The worker side of the seed's "Example 2: Distributed Task Processing with Futures",
// across processes: it runs the jobs that producer.cpp submits, through a Redis server.
//
//   example_distributed_worker --port P [--host H] [--queue Q] [--concurrency N]
//
// The seed's two task functions are its handlers: compute_task(x, y) -> x * y and
// slow_task(name) -> "Slow task <name> completed" (after a 1 ms timer instead of the seed's
// 1 s). Runs until SIGTERM or SIGINT, then stops the worker (its running jobs are left to the
// other workers) and prints how many jobs it ran.
//
#include <asio_futures/redis.hpp>
#include <asio_futures/task.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

namespace af = asio_futures;
namespace afr = asio_futures::redis;
namespace asio = boost::asio;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  afr::endpoint ep;
  std::string queue = "seed";
  afr::worker_options opts;
  opts.concurrency = 8;
  opts.visibility_timeout = 2s; // a SIGKILLed worker's jobs run elsewhere 2 s later
  opts.max_attempts = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view a = argv[i];
    if (a == "--port")
      ep.port = static_cast<std::uint16_t>(std::atoi(argv[i + 1]));
    else if (a == "--host")
      ep.host = argv[i + 1];
    else if (a == "--queue")
      queue = argv[i + 1];
    else if (a == "--concurrency")
      opts.concurrency = static_cast<std::size_t>(std::atoi(argv[i + 1]));
  }

  asio::io_context ioc;
  afr::worker w(ioc.get_executor(), ep, queue, opts);
  long runs = 0;
  w.handle("compute_task", [&](int x, int y) -> asio::awaitable<int> {
    ++runs;
    co_return x* y;
  });
  w.handle("slow_task", [&](std::string name) -> asio::awaitable<std::string> {
    ++runs;
    asio::steady_timer t(co_await asio::this_coro::executor, 1ms);
    co_await t.async_wait(asio::use_awaitable);
    co_return "Slow task " + name + " completed";
  });

  asio::signal_set signals(ioc, SIGTERM, SIGINT);
  signals.async_wait([&](auto, int) { w.stop(); });
  int rc = 0;
  auto run = af::create_task(ioc, w.async_run());
  run.add_done_callback([&](af::future<void> f) {
    if (auto e = f.exception()) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        std::fprintf(stderr, "worker %s failed: %s\n", w.consumer().c_str(), ex.what());
      }
      rc = 1;
    }
    signals.cancel();
  });
  std::printf("worker %s started\n", w.consumer().c_str());
  std::fflush(stdout);
  ioc.run();
  std::printf("worker %s stopped: ran %ld jobs, completed %llu\n", w.consumer().c_str(), runs,
              static_cast<unsigned long long>(w.completed()));
  return rc;
}
