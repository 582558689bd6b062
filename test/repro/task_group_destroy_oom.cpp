// Reproducer (found by asio_futures_fuzz_api): destroying a task_group with a live child
// calls std::terminate when an allocation fails inside the destructor.
//
// ~task_group -> group_state::abandon() -> cancel_children(to_cancel, "task_group: destroyed")
// (src/task.cpp), which is noexcept and calls `c->cancel(msg)` for each child, where
// group_child::cancel takes `const std::string&`: the `const char*` message is converted to a
// temporary std::string at the call site, outside the try/catch that
// group_child_of<T>::cancel has for exactly this case ("bad_alloc copying the message: the
// child then just runs to its end"). The message (21 characters) does not fit the small-string
// buffer, so the conversion allocates; if that allocation throws, the exception leaves a
// noexcept function: std::terminate. The same conversion happens for every cancel_children
// call: cancel_from_joiner ("task_group: join cancelled", a joiner's cancellation slot, from
// a signal emission) and child_done (the first child failure cancelling the siblings).
//
// Here: the 1st allocation of the destructor is the vector of live children, the 2nd the
// message string.
//
// Build and run by hand (CTest runs it as repro_<name>): cmake --build build/release --target
// repro_task_group_destroy_oom
//   build/release/test/repro/repro_task_group_destroy_oom
// or by hand: g++ -std=c++20 -O1 -Iinclude test/repro/task_group_destroy_oom.cpp
//   test/repro/failing_new.cpp build/release/libasio_futures.a -pthread
// Aborts ("terminate called after throwing an instance of 'std::bad_alloc'") while the
// defect exists; prints "survived" otherwise.
#include "failing_new.hpp"

#include <asio_futures/asio_futures.hpp>

#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>

namespace af = asio_futures;
namespace asio = boost::asio;

using repro::fail_countdown; // failing_new.hpp

int main() {
  asio::io_context ioc;
  af::future<int> never(ioc); // the child waits for it
  auto group = std::make_unique<af::task_group>(ioc);
  group->create_task([never]() -> asio::awaitable<int> { co_return co_await never.async_wait(); });
  ioc.poll(); // the child starts and suspends in its wait

  fail_countdown = 2; // ~task_group: 1st allocation the vector of children, 2nd the message
  group.reset();      // std::terminate
  fail_countdown = 0;

  never.set_result(1);
  ioc.run();
  std::puts("survived");
  return 0;
}
