// Reproducer (found by asio_futures_fuzz_api): an async_join that fails to allocate leaves
// the task_group believing a join is pending, so it can never be joined again.
//
// task_group::initiate_join (include/asio_futures/task_group.hpp) first calls
// group_state::start_join() (src/task.cpp), which sets join_waited_ ("a join is outstanding"),
// and only then starts the wait on the join future (`joined.async_wait(...)`, which allocates
// the wait operation and registers it with the waiter service of the handler's context,
// created on first use; installing the cancellation handler may allocate too). If that throws,
// std::bad_alloc propagates out of async_join, but join_waited_ stays set with no join
// outstanding: every later async_join throws invalid_state_error("task_group::async_join: a
// join is already pending") until the children have all finished (the join future then
// completes on its own and a join completes at once). A caller that retries the join after
// the failure is refused although nobody is joining.
//
// Build and run by hand (CTest runs it as repro_<name>): cmake --build build/release --target
// repro_task_group_join_oom
//   build/release/test/repro/repro_task_group_join_oom
// Exit status 1 while the defect exists (the retry is refused), 0 otherwise.
#include "failing_new.hpp"

#include <asio_futures/asio_futures.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>

namespace af = asio_futures;
namespace asio = boost::asio;

using repro::fail_countdown; // failing_new.hpp

int main() {
  asio::io_context ioc;
  af::future<int> input(ioc);
  af::task_group tg(ioc);
  tg.create_task([input]() -> asio::awaitable<int> { co_return co_await input.async_wait(); });
  ioc.poll();

  // The joiner's completion runs on another io_context, not used by the library yet: the
  // join's wait registers with that context's waiter service, whose creation is the first
  // operator new of the call (Asio's own operation memory comes from aligned_alloc).
  asio::io_context joiner_ctx;
  fail_countdown = 1;
  try {
    tg.async_join(asio::bind_executor(
        joiner_ctx, [](std::exception_ptr) { std::puts("first join completed?"); }));
    std::puts("the first join did not fail (no allocation failed): nothing shown");
  } catch (const std::bad_alloc&) {
    std::puts("first async_join: std::bad_alloc (as expected)");
  }
  fail_countdown = 0;

  // Nobody is joining now; the child is still running. A retry must be accepted.
  bool refused = false;
  bool joined = false;
  try {
    tg.async_join([&joined](std::exception_ptr) { joined = true; });
  } catch (const af::invalid_state_error& e) {
    refused = true;
    std::printf("retry while the child runs: invalid_state_error: %s\n", e.what());
  }
  input.set_result(1);
  ioc.run();
  if (refused) {
    // Once the child finished, the join completed on its own, and joining works again.
    tg.async_join([&joined](std::exception_ptr) { joined = true; });
    ioc.restart();
    ioc.run();
    std::printf("after the child finished: joined %s\n", joined ? "at once" : "never");
  }
  std::puts(refused ? "defect: the retry was refused while no join was pending" : "retry accepted");
  return refused ? 1 : 0;
}
