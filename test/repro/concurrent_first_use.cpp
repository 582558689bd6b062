// Reproducer (found by asio_futures_soak): two threads making the first futures of a fresh
// io_context at the same time can leave the library believing that the (live) context was
// destroyed.
//
// asio::use_service<waiter_service>(ctx) constructs the service outside Asio's registry lock;
// when two threads race there, Asio keeps one service and destroys the other. The loser's
// constructor overwrites the process-wide registry entry of the context with its own serial
// (src/future.cpp, waiter_service::waiter_service: `r.live[&ctx] = serial_`), and its
// destructor then erases the entry because the serials match (~waiter_service). From then
// on, every thread whose per-thread cache misses asks the registry, which no longer knows the
// context: context_alive() is false for every future of the live context.
//
// Consequences checked here, on threads that did not make the futures:
//   - shield / gather / wait / wait_for / first_completed / then throw invalid_state_error
//     ("the future's execution context was destroyed");
//   - a done-callback on the future is destroyed uninvoked instead of run
//     (callback_op::schedule: the target context is "not alive").
//
// Build and run by hand (CTest runs it as repro_<name>): cmake --build build/release --target
// repro_concurrent_first_use
//   build/release/test/repro/repro_concurrent_first_use
// or by hand: g++ -std=c++20 -O1 -Iinclude test/repro/concurrent_first_use.cpp
//   build/release/libasio_futures.a -pthread
// Exit status 1 if the defect showed, 0 if not (it is a race: a few thousand iterations).
#include <asio_futures/asio_futures.hpp>

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <cstdio>
#include <thread>

namespace af = asio_futures;
namespace asio = boost::asio;

int main() {
  int refused = 0, dropped = 0;
  const int iterations = 3000;
  for (int i = 0; i < iterations; ++i) {
    asio::io_context ctx;
    // Three threads make the first futures of ctx at the same moment.
    std::atomic<int> waiting{0};
    std::atomic<bool> go{false};
    af::future<int> fs[3];
    std::thread makers[3];
    for (int k = 0; k < 3; ++k)
      makers[k] = std::thread([&, k] {
        ++waiting;
        while (!go.load())
          std::this_thread::yield();
        fs[k] = af::future<int>(ctx);
      });
    while (waiting.load() < 3)
      std::this_thread::yield();
    go.store(true);
    for (auto& t : makers)
      t.join();

    // Another thread (its per-thread cache does not know ctx) makes a combinator.
    std::thread([&] {
      try {
        (void)af::shield(fs[0]);
      } catch (const af::invalid_state_error&) {
        ++refused;
      }
    }).join();
    // Resolve the shielded input: the shield (whose result nobody holds) completes and frees
    // itself. A pending combinator whose every handle was dropped would keep itself alive.
    fs[0].set_result(0);

    // A done-callback on the live context, scheduled by a set_result on yet another thread.
    int ran = 0;
    fs[1].add_done_callback([&ran](af::future<int>) { ++ran; });
    std::thread([&] { fs[1].set_result(1); }).join();
    ctx.run();
    if (ran == 0)
      ++dropped;
  }
  std::printf("%d iterations: combinator refused on a live context %d times, done-callback "
              "on a live context dropped uninvoked %d times\n",
              iterations, refused, dropped);
  return refused + dropped ? 1 : 0;
}
