//
// examples/seed_error_handling.cpp
//
// The seed's "Error Handling with Futures": an exception set on a future is raised by
// awaiting it, by result(), is available from exception(), and done-callbacks still run and
// must handle it. Also what asyncio logs as "Future exception was never retrieved": here a
// process-wide handler (af::set_exception_handler) receives it when the last handle of the
// failed future is dropped. Exits 1 if the output differs from the expected transcript.
//
// C++ spellings: ValueError is std::invalid_argument, RuntimeError std::runtime_error; any
// exception type works (`set_exception(E)` or `set_exception(std::exception_ptr)`), and
// `catch` clauses select by type, as Python's `except` does.
//
#include "transcript.hpp"

#include <asio_futures/asio_futures.hpp>

#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>

namespace asio = boost::asio;
namespace af = asio_futures;
using example::print;

asio::awaitable<void> future_error_handling() {
  const auto ex = co_await asio::this_coro::executor;

  // A future that will fail: an exception instead of a result.
  const af::future<void> future(ex);
  future.set_exception(std::invalid_argument("Something went wrong"));
  try {
    co_await future.async_wait(); // awaiting raises the exception
  } catch (const std::invalid_argument& e) {
    print(std::string("Caught exception: ") + e.what());
  }
  // result() raises it too, and exception() returns it.
  try {
    future.result();
  } catch (const std::invalid_argument& e) {
    print(std::string("result() raised: ") + e.what());
  }
  print(std::string("exception() is set: ") + example::py(future.exception() != nullptr));

  // Callbacks also receive the exception.
  auto callback = [](af::future<void> f) {
    try {
      f.result(); // this will throw
    } catch (const std::exception& e) {
      print(std::string("Callback caught: ") + e.what());
    }
  };
  const af::future<void> another_future(ex);
  another_future.add_done_callback(callback);
  another_future.set_exception(std::runtime_error("Another error"));
  co_await af::sleep(ex, std::chrono::milliseconds(0)).async_wait(); // let the callback run

  // A failure nobody retrieves is reported when its last handle goes away.
  {
    const af::future<int> forgotten(ex);
    forgotten.set_exception(std::runtime_error("nobody looked at me"));
  } // last handle dropped here: the handler gets the exception
}

int main() {
  af::set_exception_handler([](std::exception_ptr, std::string_view what) {
    print("Never retrieved: " + std::string(what));
  });
  return example::run_and_check(future_error_handling, "Caught exception: Something went wrong\n"
                                                       "result() raised: Something went wrong\n"
                                                       "exception() is set: True\n"
                                                       "Callback caught: Another error\n"
                                                       "Never retrieved: nobody looked at me\n");
}
