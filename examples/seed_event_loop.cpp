//
// examples/seed_event_loop.cpp
//
// The seed's "Futures in Event Loop Implementation": the approximate event loop that starts
// a coroutine with coro.send(None), sees it suspend on a future, sets the future's result
// and resumes the coroutine with coro.send(result). Here the same story runs for real: this
// program is the event loop, stepping an io_context by hand with poll(). Exits 1 if the
// output or any of the checked states differs.
//
// How our waiter protocol plays the part of `coro.send`:
//  1. `co_await future.async_wait()` is an Asio async operation. Its initiation (run when
//     the coroutine suspends) pushes a waiter node onto the future's state — asyncio's
//     `future.add_done_callback(task.__wakeup)`. The coroutine frame is now owned by that
//     node's completion handler; nothing runs until the future is done.
//  2. `set_result(v)` stores the value and submits each waiter's handler to the waiter's
//     executor (here the io_context) — never running it inline, as asyncio's
//     `call_soon(callback)`. So right after set_result the coroutine is still suspended.
//  3. The loop runs that handler, which resumes the coroutine with the value:
//     asyncio's `coro.send(future.result())`, and `co_await` returns it.
//  4. When the coroutine returns, its task (a future) completes: StopIteration's value.
//
#include "transcript.hpp"

#include <asio_futures/asio_futures.hpp>

#include <boost/asio/io_context.hpp>

#include <stdexcept>
#include <string>

namespace asio = boost::asio;
namespace af = asio_futures;
using example::print;

void require(bool condition, const char* what) {
  if (!condition)
    throw std::logic_error(what);
}

int main() try {
  asio::io_context loop; // the event loop; this thread drives it by hand
  const af::future<std::string> some_future(loop);

  auto coro = [some_future]() -> asio::awaitable<std::string> {
    print("Coroutine: About to await future");
    std::string result = co_await some_future.async_wait(); // where the magic happens
    print("Coroutine: Resumed with result: " + result);
    co_return result;
  };

  // Start the coroutine: a task's first step is scheduled, not run here (asyncio too).
  const af::task<std::string> task = af::create_task(loop, coro());
  // Advance to the first await: run what is ready until nothing is (coro.send(None)).
  loop.poll();
  require(!task.done() && !some_future.done(), "the coroutine should be suspended");
  print("Event loop: Coroutine is now suspended, waiting for Future");

  // The future gets a result (e.g. from an I/O completion callback).
  print("Event loop: Setting Future result");
  some_future.set_result("Future is done!");
  require(!task.done(), "set_result must not resume the coroutine inline");

  // Resume the coroutine with the result: run the waiter's completion (coro.send(result)).
  print("Event loop: Resuming coroutine");
  loop.poll();
  require(task.done(), "the coroutine should have completed");
  print("Event loop: Coroutine completed with result: " + task.result());

  return example::check_transcript("Coroutine: About to await future\n"
                                   "Event loop: Coroutine is now suspended, waiting for Future\n"
                                   "Event loop: Setting Future result\n"
                                   "Event loop: Resuming coroutine\n"
                                   "Coroutine: Resumed with result: Future is done!\n"
                                   "Event loop: Coroutine completed with result: Future is "
                                   "done!\n");
} catch (const std::exception& e) {
  std::printf("FAILED: %s\n", e.what());
  return 1;
}
