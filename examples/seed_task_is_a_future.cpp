//
// examples/seed_task_is_a_future.cpp
//
// The seed's "Relationship Between Futures and Tasks": a task is a future. In C++ that is
// the type system's statement `class task<T> : public future<T>`, checked below at compile
// time, and shown at run time: a task passes where a future is expected, a done-callback
// registered on it gets its result, and awaiting it gives the coroutine's result.
// Exits 1 if the output differs from the expected transcript.
//
// The seed prints the MRO (`inspect.getmro`); C++ has no runtime list of bases, so the
// example prints what the static_asserts prove instead.
//
#include "transcript.hpp"

#include <asio_futures/asio_futures.hpp>

#include <chrono>
#include <string>
#include <type_traits>

namespace asio = boost::asio;
namespace af = asio_futures;
using namespace std::chrono_literals;
using example::print;
using example::py;

// "Check inheritance", at compile time: a task<T> is-a future<T> (public, unambiguous base),
// converts to one without losing identity, and adds the task interface on top.
static_assert(std::is_base_of_v<af::future<std::string>, af::task<std::string>>);
static_assert(std::is_convertible_v<af::task<std::string>*, af::future<std::string>*>);
template <class F>
concept has_task_interface = requires(const F& f) {
  f.get_name();
  f.cancelling();
  f.uncancel();
};
static_assert(has_task_interface<af::task<std::string>>);
static_assert(!has_task_interface<af::future<std::string>>);

/// Takes any future: a task is one.
bool is_pending(const af::future<std::string>& f) {
  return !f.done();
}

asio::awaitable<void> explore_task_future_relationship() {
  const auto ex = co_await asio::this_coro::executor;

  // A coroutine.
  auto coro = []() -> asio::awaitable<std::string> {
    co_await af::sleep(co_await asio::this_coro::executor, 10ms).async_wait();
    co_return "Coroutine completed";
  };

  // A task from the coroutine.
  const af::task<std::string> task = af::create_task(ex, coro());

  print(std::string("Task inherits from Future: ") +
        py(std::is_base_of_v<af::future<std::string>, af::task<std::string>>));
  const af::future<std::string> as_future = task; // the same future, not a copy of its state
  print(std::string("A task converted to a future is the same future: ") + py(as_future == task));
  print(std::string("A task passes where a future is expected: ") + py(is_pending(task)));

  // We can use the task as a future.
  task.add_done_callback([](af::future<std::string> f) { print("Callback: " + f.result()); });

  // Wait for completion.
  const std::string result = co_await task.async_wait();
  print("Awaited result: " + result);
}

int main() {
  return example::run_and_check(explore_task_future_relationship,
                                "Task inherits from Future: True\n"
                                "A task converted to a future is the same future: True\n"
                                "A task passes where a future is expected: True\n"
                                "Callback: Coroutine completed\n"
                                "Awaited result: Coroutine completed\n");
}
