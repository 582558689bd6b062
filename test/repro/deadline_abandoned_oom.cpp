// Reproducer (found by asio_futures_fuzz_api): wait_for / wait with a deadline call
// std::terminate when an allocation fails while their deadline handler is abandoned.
//
// deadline_handler's destructor (include/asio_futures/detail/wait_ops.hpp) calls the state's
// deadline_abandoned(), which is noexcept and does
//     this->cancel_state(std::string("asio_futures::wait_for: the execution context shut down"));
// (wait_ops.hpp, wait_for_state; the same in impl/wait.hpp, wait_state). cancel_state itself
// survives a bad_alloc, but the std::string argument is built by the caller, outside any try:
// if that allocation throws, the exception leaves a noexcept function -> std::terminate.
// ~sleep_handler (impl/sleep.hpp) builds "the sleep's execution context shut down" the same
// way, in a destructor.
//
// The handler is abandoned not only when its context is destroyed: `wait_for(f, d)` with `f`
// already done links the input (which completes the result at once and requests the cut), so
// start_timer() returns without starting the timer and the handler temporary is destroyed
// un-moved, inside the wait_for call. The same for `wait(fs, when, d)` whose condition already
// holds.
//
// Build and run by hand (CTest runs it as repro_<name>): cmake --build build/release --target
// repro_deadline_abandoned_oom
//   build/release/test/repro/repro_deadline_abandoned_oom
// or by hand: g++ -std=c++20 -O1 -Iinclude test/repro/deadline_abandoned_oom.cpp
//   test/repro/failing_new.cpp build/release/libasio_futures.a -pthread
// Run: tries failing the k-th allocation of the call for k = 1..12, each in a child process;
// prints which k end in std::terminate (exit status 1 if any).
#include "failing_new.hpp"

#include <asio_futures/asio_futures.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <sys/wait.h>
#include <unistd.h>

namespace af = asio_futures;
namespace asio = boost::asio;
using namespace std::chrono_literals;

using repro::fail_countdown; // failing_new.hpp

namespace {
/// Child process: wait_for (or wait) over a done future, its k-th allocation failing.
int attempt(bool use_wait, std::size_t k) {
  asio::io_context ioc;
  af::future<int> f(ioc);
  f.set_result(1);
  try {
    fail_countdown = k;
    if (use_wait)
      (void)af::wait(std::vector<af::future<int>>{f}, af::return_when::all_completed, 1h);
    else
      (void)af::wait_for(f, 1h);
  } catch (const std::bad_alloc&) {
    // fine: the call failed cleanly
  }
  fail_countdown = 0;
  ioc.run();
  return 0;
}
} // namespace

int main() {
  int failures = 0;
  for (bool use_wait : {false, true})
    for (std::size_t k = 1; k <= 12; ++k) {
      std::fflush(stdout);
      const pid_t pid = fork();
      if (pid == 0) {
        std::freopen("/dev/null", "w", stderr);
        std::_Exit(attempt(use_wait, k));
      }
      int status = 0;
      waitpid(pid, &status, 0);
      if (WIFSIGNALED(status)) {
        ++failures;
        std::printf("%s(done future, 1h): failing allocation %zu of the call -> signal %d "
                    "(std::terminate)\n",
                    use_wait ? "wait" : "wait_for", k, WTERMSIG(status));
      }
    }
  std::printf("%d of 24 attempts terminated\n", failures);
  return failures ? 1 : 0;
}
