//
// examples/task_group_workers.cpp
//
// The seed's "Distributed Task Processing with Futures", with a task_group owning the
// workers: submit() hands back a future, workers take jobs from a queue (no polling: an
// idle worker awaits a future that the next submit() resolves) and resolve the futures with
// results or exceptions; the group joins the workers once the queue is closed.
//
// Differences from the Python original, on purpose: the queue wakes a worker instead of
// polling every 100 ms, and a failing job does not stop its worker.
//
#include <asio_futures/asio_futures.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <deque>
#include <functional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace asio = boost::asio;
namespace af = asio_futures;
using namespace std::chrono_literals;

/// What a job produces: the seed mixes numbers and strings.
using job_result = std::variant<int, std::string>;

class task_system {
public:
  explicit task_system(asio::io_context& ioc) : ioc_(ioc), workers_(ioc) {}

  /// Submits `work`; the returned future gets its result (or exception).
  af::future<job_result> submit(std::function<asio::awaitable<job_result>()> work) {
    af::future<job_result> result(ioc_);
    jobs_.push_back(job{std::move(work), result});
    wake_one();
    std::printf("Submitted task %zu\n", ++submitted_);
    return result;
  }

  void start(int workers) {
    for (int i = 0; i < workers; ++i)
      workers_.create_task(worker("worker-" + std::to_string(i)), "worker-" + std::to_string(i));
  }

  /// No more jobs: idle workers finish, then the group joins them.
  asio::awaitable<void> shutdown() {
    closed_ = true;
    for (auto& w : idle_)
      w.try_set_result();
    idle_.clear();
    co_await workers_.async_join();
  }

private:
  struct job {
    std::function<asio::awaitable<job_result>()> work;
    af::future<job_result> result;
  };

  void wake_one() {
    if (!idle_.empty()) {
      idle_.front().try_set_result();
      idle_.pop_front();
    }
  }

  asio::awaitable<void> worker(std::string name) {
    std::printf("Worker %s started\n", name.c_str());
    for (;;) {
      if (jobs_.empty()) {
        if (closed_)
          co_return;
        af::future<void> wake(ioc_);
        idle_.push_back(wake);
        co_await wake.async_wait(); // resolved by submit() or shutdown()
        continue;
      }
      job j = std::move(jobs_.front());
      jobs_.pop_front();
      try {
        j.result.set_result(co_await j.work());
      } catch (const std::exception& e) {
        std::printf("Worker %s failed on a task: %s\n", name.c_str(), e.what());
        j.result.set_exception(std::current_exception());
      }
    }
  }

  asio::io_context& ioc_;
  af::task_group workers_;
  std::deque<job> jobs_;
  std::deque<af::future<void>> idle_;
  std::size_t submitted_ = 0;
  bool closed_ = false;
};

asio::awaitable<job_result> compute_task(int x, int y) {
  co_return x* y;
}

asio::awaitable<job_result> slow_task(std::string name) {
  asio::steady_timer timer(co_await asio::this_coro::executor, 5ms);
  co_await timer.async_wait(asio::use_awaitable);
  co_return "Slow task " + name + " completed";
}

asio::awaitable<job_result> failing_task() {
  throw std::runtime_error("bad input");
  co_return 0;
}

int main() {
  asio::io_context ioc;
  int failures = 0;
  const af::task<void> main_task = af::create_task(ioc, [&]() -> asio::awaitable<void> {
    task_system system(ioc);
    system.start(5);
    std::vector<af::future<job_result>> futures;
    for (int i = 0; i < 10; ++i) {
      if (i % 2 == 0)
        futures.push_back(system.submit([i] { return compute_task(i, i * 2); }));
      else
        futures.push_back(system.submit([i] { return slow_task("task-" + std::to_string(i)); }));
    }
    const af::future<job_result> bad = system.submit(failing_task);

    for (std::size_t i = 0; i < futures.size(); ++i) {
      const job_result r = co_await futures[i].async_wait();
      const std::string expected = i % 2 == 0
                                       ? std::to_string(static_cast<int>(i * i * 2))
                                       : "Slow task task-" + std::to_string(i) + " completed";
      const std::string got =
          std::holds_alternative<int>(r) ? std::to_string(std::get<int>(r)) : std::get<1>(r);
      std::printf("Task %zu result: %s\n", i, got.c_str());
      if (got != expected)
        ++failures;
    }
    try {
      (void)co_await bad.async_wait();
      ++failures; // must have thrown
    } catch (const std::runtime_error& e) {
      std::printf("The failing task raised: %s\n", e.what());
    }
    co_await system.shutdown();
    std::printf("All tasks completed!\n");
  });
  ioc.run();
  if (!main_task.done() || main_task.exception() || failures != 0) {
    std::printf("FAILED (%d wrong results)\n", failures);
    return 1;
  }
  return 0;
}
