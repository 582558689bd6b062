//
// examples/transcript.hpp
//
// What the seed walkthrough examples (examples/seed_*.cpp) share: `print` writes a line to
// stdout and records it, and `run_and_check` runs the example's main coroutine as a task on
// a fresh io_context, then compares what was printed with what the seed says it prints. The
// program exits 1 on any difference, or if the coroutine failed, so CTest checks the
// behaviour, not only that the program ran.
//
#ifndef ASIO_FUTURES_EXAMPLES_TRANSCRIPT_HPP
#define ASIO_FUTURES_EXAMPLES_TRANSCRIPT_HPP

#include <asio_futures/asio_futures.hpp>

#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <exception>
#include <string>
#include <string_view>

namespace example {

/// Everything `print` wrote so far.
inline std::string& transcript() {
  static std::string text;
  return text;
}

/// Python's print(): one line to stdout, recorded for the final check.
inline void print(std::string_view line) {
  std::printf("%.*s\n", static_cast<int>(line.size()), line.data());
  transcript().append(line).append("\n");
}

/// Python's f"{flag}" for a bool.
inline const char* py(bool flag) {
  return flag ? "True" : "False";
}

/// Compares the transcript with `expected`; returns the process exit status.
inline int check_transcript(std::string_view expected) {
  if (transcript() == expected)
    return 0;
  std::printf("FAILED: the output differs from the expected:\n%.*s",
              static_cast<int>(expected.size()), expected.data());
  return 1;
}

/// Runs `main_coro` as a task on a fresh io_context until the context runs out of work (the
/// seed's `asyncio.run(main())`), then checks that it ended without an exception and that
/// the transcript is `expected`. Returns the process exit status.
template <class T>
int run_and_check(boost::asio::awaitable<T> (*main_coro)(), std::string_view expected) {
  boost::asio::io_context ioc;
  const asio_futures::task<T> main_task = asio_futures::create_task(ioc, main_coro());
  ioc.run();
  if (!main_task.done()) {
    std::printf("FAILED: the main coroutine never finished\n");
    return 1;
  }
  if (main_task.cancelled()) {
    std::printf("FAILED: the main coroutine was cancelled\n");
    return 1;
  }
  if (const std::exception_ptr e = main_task.exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::printf("FAILED: the main coroutine threw: %s\n", x.what());
    }
    return 1;
  }
  return check_transcript(expected);
}

} // namespace example

#endif // ASIO_FUTURES_EXAMPLES_TRANSCRIPT_HPP
