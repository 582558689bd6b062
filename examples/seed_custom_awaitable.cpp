//
// examples/seed_custom_awaitable.cpp
//
// The seed's "Custom Awaitables vs. Futures". asyncio's custom awaitable is a class with
// __await__; Asio's is an *async operation*: a function taking a completion token, written
// with asio::async_initiate. `async_delayed_value` below is the seed's CustomAwaitable
// (a result after a delay) written that way. It can be awaited (`use_awaitable`), and the
// same operation becomes an af::future with the af::use_future token — which shows the
// seed's three differences: a future has the standard interface (done(), callbacks...), is
// integrated with cancellation, and can be resolved or cancelled from anywhere, by anyone
// holding a handle. Exits 1 if the output differs from the expected transcript.
//
// What a well-behaved Asio operation owes its caller, and how this one pays it:
//  - the completion runs on the handler's associated executor, never inside the initiating
//    call: the timer's async_wait does both, because the intermediate handler (delayed_op)
//    forwards all of the final handler's associations (asio::associator below);
//  - the caller's cancellation slot reaches the timer through the same forwarding, and a
//    cancelled wait completes with operation_aborted (use_future maps it to a cancelled
//    future, use_awaitable throws it as boost::system::system_error);
//  - the associated allocator is forwarded as well, so Asio allocates the wait with it.
// The seed's delays (2 s) are 20 ms here.
//
#include "transcript.hpp"

#include <asio_futures/asio_futures.hpp>

#include <boost/asio/associator.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <utility>

namespace asio = boost::asio;
namespace af = asio_futures;
using namespace std::chrono_literals;
using example::print;

int aborted_waits = 0; // timer waits that ended with operation_aborted (checked by main)

/// The intermediate handler: owns the timer and the value until the wait completes.
template <class Handler> struct delayed_op {
  std::unique_ptr<asio::steady_timer> timer;
  std::string value;
  Handler handler;

  void operator()(boost::system::error_code ec) {
    auto keep_timer = std::move(timer); // destroyed after the upcall, not before
    if (ec == asio::error::operation_aborted)
      ++aborted_waits;
    std::move(handler)(ec, ec ? std::string() : std::move(value));
  }
};

// Forward every association (executor, allocator, cancellation slot) of the final handler.
template <template <class, class> class Associator, class Handler, class Default>
struct asio::associator<Associator, delayed_op<Handler>, Default>
    : Associator<Handler, Default> { // its `type` is the handler's association's
  static typename Associator<Handler, Default>::type get(const delayed_op<Handler>& op) noexcept {
    return Associator<Handler, Default>::get(op.handler);
  }
  static auto get(const delayed_op<Handler>& op, const Default& d) noexcept
      -> decltype(Associator<Handler, Default>::get(op.handler, d)) {
    return Associator<Handler, Default>::get(op.handler, d);
  }
};

/// The initiation. It names the operation's I/O executor (get_executor), as Asio's own
/// initiations do: tokens that create an object standing for the operation use it —
/// af::use_future makes it the future's executor, where done-callbacks run.
struct initiate_delayed_value {
  using executor_type = asio::any_io_executor;
  executor_type ex;
  executor_type get_executor() const noexcept { return ex; }

  template <class Handler>
  void operator()(Handler&& handler, std::string value,
                  std::chrono::steady_clock::duration delay) const {
    auto timer = std::make_unique<asio::steady_timer>(ex, delay);
    asio::steady_timer& t = *timer;
    t.async_wait(delayed_op<std::decay_t<Handler>>{std::move(timer), std::move(value),
                                                   std::forward<Handler>(handler)});
  }
};

/// The seed's CustomAwaitable(result, delay) as an Asio async operation.
/// **Completion signature:** `void(boost::system::error_code, std::string)`.
/// **Per-operation cancellation:** any type; completes with `operation_aborted`.
template <asio::completion_token_for<void(boost::system::error_code, std::string)> Token =
              asio::use_awaitable_t<>>
auto async_delayed_value(asio::any_io_executor ex, std::string result,
                         std::chrono::steady_clock::duration delay, Token&& token = {}) {
  return asio::async_initiate<Token, void(boost::system::error_code, std::string)>(
      initiate_delayed_value{std::move(ex)}, token, std::move(result), delay);
}

asio::awaitable<void> custom_awaitable_example() {
  const auto ex = co_await asio::this_coro::executor;

  // Can be awaited just like a future.
  const std::string result = co_await async_delayed_value(ex, "Custom result", 20ms);
  print(result); // "Custom result" after 20 ms

  // The same operation as a future: the standard interface...
  const af::future<std::string> future =
      async_delayed_value(ex, "Future result", 20ms, af::use_future);
  future.add_done_callback([](af::future<std::string> f) { print("Callback: " + f.result()); });
  print(std::string("done() while the timer runs: ") + example::py(future.done()));
  print("Awaited: " + co_await future.async_wait());

  // ...integrated with cancellation: cancelling the future cancels the timer wait...
  const af::future<std::string> cancelled =
      async_delayed_value(ex, "never delivered", 10s, af::use_future);
  cancelled.cancel("not needed");
  try {
    co_await cancelled.async_wait();
  } catch (const af::cancelled_error& e) {
    print("Cancelled: " + e.message());
  }

  // ...and awaiting a custom operation directly is cancellable too: a task awaiting it is
  // cancelled, the slot of the await reaches the timer.
  const af::task<std::string> waiter = af::create_task(ex, async_delayed_value(ex, "late", 10s));
  co_await af::sleep(ex, 1ms).async_wait();
  waiter.cancel();
  try {
    co_await waiter.async_wait();
  } catch (const af::cancelled_error&) {
    print("The awaiting task was cancelled and its timer wait with it");
  }
}

int main() {
  const int status = example::run_and_check(
      custom_awaitable_example, "Custom result\n"
                                "done() while the timer runs: False\n"
                                "Callback: Future result\n"
                                "Awaited: Future result\n"
                                "Cancelled: not needed\n"
                                "The awaiting task was cancelled and its timer wait with it\n");
  // Both cancellations reached the timers (else the loop would have run for 10 s).
  if (aborted_waits != 2) {
    std::printf("FAILED: %d timer waits aborted, expected 2\n", aborted_waits);
    return 1;
  }
  return status;
}
