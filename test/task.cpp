// Tests for <asio_futures/task.hpp>: task<T>, create_task, run_coroutine_threadsafe,
// all_tasks, current_task.
#include <asio_futures/task.hpp>
#include <asio_futures/task_group.hpp>
#include <asio_futures/wait.hpp>

#include <asio_futures/detail/task_gate.hpp>

#include "support/checks.hpp"
#include "support/co_test.hpp"
#include "support/tracking.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/version.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/system_error.hpp>
#include <boost/test/unit_test.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <future>
#include <latch>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace asio = boost::asio;
namespace af = asio_futures;
namespace aft = asio_futures_test;

using namespace std::chrono_literals;

namespace {

// ---------------------------------------------------------------------------------------
// Local helpers. Coroutines handed to create_task as awaitables are free functions taking
// their inputs by value (a lambda coroutine invoked in place would dangle); lambdas are
// handed over as callables, which the task keeps alive.

/// Runs `ioc` until `f` is done (bounded).
template <class T> bool run_until_done(asio::io_context& ioc, const af::future<T>& f) {
  return aft::run_until(ioc, [&] { return f.done(); });
}

/// The cancel message `f.result()` throws, or nullopt if it throws no cancelled_error.
template <class T> std::optional<std::string> result_cancel_message(const af::future<T>& f) {
  return aft::cancel_message(aft::thrown_by([&] { (void)f.result(); }));
}

/// Runs `ioc` until `f` is done (bounded), catching what escapes the context's run
/// functions instead: a task must never make io_context::run() throw. Returns that
/// exception (nullptr if none) and sets `done` to whether `f` finished.
template <class T>
std::exception_ptr run_until_done_catching(asio::io_context& ioc, const af::future<T>& f,
                                           bool& done) {
  const auto deadline = std::chrono::steady_clock::now() + aft::default_timeout;
  std::exception_ptr escaped;
  while (!f.done() && std::chrono::steady_clock::now() < deadline) {
    try {
      aft::run_until(
          ioc, [&] { return f.done(); }, deadline - std::chrono::steady_clock::now());
    } catch (...) {
      if (!escaped)
        escaped = std::current_exception();
    }
  }
  done = f.done();
  return escaped;
}

/// True if `e` holds a system_error (cancelled_error included) with operation_aborted.
bool is_operation_aborted(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const boost::system::system_error& s) {
    return s.code() == asio::error::operation_aborted;
  } catch (...) {
    return false;
  }
}

asio::awaitable<int> value_after_yields(int v, int yields) {
  co_await aft::yield_n(yields);
  co_return v;
}

asio::awaitable<void> wait_on(af::future<void> f) {
  co_await f.async_wait();
}

asio::awaitable<int> value_of(af::future<int> f) {
  co_return co_await f.async_wait();
}

asio::awaitable<int> fail_after_yields(int yields, std::string what) {
  co_await aft::yield_n(yields);
  if (!what.empty())
    throw std::runtime_error(what);
  co_return 0;
}

/// Signals `reached` (from the task's thread), then awaits `f`. A cancel requested after the
/// signal aborts that wait: it is emitted on the task's strand, after this step.
asio::awaitable<void> signal_then_wait_on(std::shared_ptr<std::promise<void>> reached,
                                          af::future<void> f) {
  reached->set_value();
  co_await f.async_wait();
}

asio::awaitable<void> set_flag(bool* flag) {
  *flag = true;
  co_return;
}

asio::awaitable<void> sleep_for(std::chrono::steady_clock::duration d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(asio::use_awaitable);
}

/// The number in a default name "Task-N".
std::uint64_t default_name_number(const std::string& name) {
  BOOST_TEST_REQUIRE(name.rfind("Task-", 0) == 0u);
  return std::stoull(name.substr(5));
}

/// all_tasks(ctx) keyed by name.
std::map<std::string, af::task_info> tasks_by_name(asio::execution_context& ctx) {
  std::map<std::string, af::task_info> out;
  for (auto& info : af::all_tasks(ctx))
    out.emplace(info.name, info);
  return out;
}

using ioc_strand = asio::strand<asio::io_context::executor_type>;

// ---------------------------------------------------------------------------------------
// Compile-time contract.

// task<T> is a future<T> (asyncio's Task is a Future subclass) and converts to one.
static_assert(std::is_base_of_v<af::future<int>, af::task<int>>);
static_assert(std::is_base_of_v<af::future<void>, af::task<void>>);
static_assert(std::is_convertible_v<af::task<int>, af::future<int>>);
static_assert(std::is_convertible_v<const af::task<int>&, const af::future<int>&>);
static_assert(sizeof(af::task<int>) == sizeof(af::future<int>), "still one pointer");
static_assert(std::is_nothrow_default_constructible_v<af::task<int>>);
static_assert(std::is_copy_constructible_v<af::task<std::unique_ptr<int>>>);
static_assert(std::is_nothrow_move_constructible_v<af::task<int>>);
// create_task deduces T from the awaitable, for executors, contexts and callables.
static_assert(std::is_same_v<decltype(af::create_task(std::declval<asio::io_context&>(),
                                                      std::declval<asio::awaitable<int>>())),
                             af::task<int>>);
static_assert(
    std::is_same_v<decltype(af::create_task(std::declval<asio::io_context&>(),
                                            std::declval<asio::awaitable<void>>(), "name")),
                   af::task<void>>);
static_assert(
    std::is_same_v<decltype(af::create_task(std::declval<const asio::io_context::executor_type&>(),
                                            std::declval<asio::awaitable<std::string>>())),
                   af::task<std::string>>);
static_assert(std::is_same_v<decltype(af::create_task(std::declval<const asio::any_io_executor&>(),
                                                      std::declval<asio::awaitable<int> (*)()>())),
                             af::task<int>>);
static_assert(
    std::is_same_v<decltype(af::create_task(std::declval<const ioc_strand&>(),
                                            std::declval<asio::awaitable<void> (*)()>(), "name")),
                   af::task<void>>);
static_assert(
    std::is_same_v<decltype(af::create_task(std::declval<asio::thread_pool&>(),
                                            std::declval<asio::awaitable<std::unique_ptr<int>>>())),
                   af::task<std::unique_ptr<int>>>);
static_assert(
    std::is_same_v<decltype(af::run_coroutine_threadsafe(std::declval<asio::awaitable<int>>(),
                                                         std::declval<asio::any_io_executor>())),
                   af::task<int>>);
// Members.
static_assert(std::is_same_v<decltype(std::declval<const af::task<int>&>().cancel()), bool>);
static_assert(std::is_same_v<decltype(std::declval<const af::task<int>&>().cancel("m")), bool>);
static_assert(std::is_same_v<decltype(std::declval<const af::task<int>&>().cancelling()), int>);
static_assert(std::is_same_v<decltype(std::declval<const af::task<int>&>().uncancel()), int>);
static_assert(
    std::is_same_v<decltype(std::declval<const af::task<int>&>().get_name()), const std::string&>);
static_assert(std::is_same_v<decltype(std::declval<const af::task<int>&>().async_wait()),
                             asio::awaitable<int>>);
static_assert(
    std::is_same_v<asio::completion_signature_of_t<af::task<int>>, void(std::exception_ptr, int)>);
static_assert(
    std::is_same_v<asio::completion_signature_of_t<af::task<void>>, void(std::exception_ptr)>);
// Introspection.
static_assert(std::is_same_v<decltype(af::all_tasks(std::declval<asio::io_context&>())),
                             std::vector<af::task_info>>);
static_assert(std::is_same_v<decltype(af::current_task()), std::optional<af::task_info>>);
static_assert(std::is_same_v<decltype(af::task_info::name), std::string>);
static_assert(std::is_same_v<decltype(af::task_info::done), bool>);
static_assert(std::is_same_v<decltype(af::task_info::cancelling), int>);

} // namespace

BOOST_AUTO_TEST_SUITE(task_)

// =======================================================================================
BOOST_AUTO_TEST_SUITE(basics)

BOOST_AUTO_TEST_CASE(a_task_is_a_future_and_its_future_copy_refers_to_it) {
  asio::io_context ioc;
  const af::task<int> t = af::create_task(ioc, value_after_yields(5, 1));
  const af::future<int> f = t; // slicing copy: same state
  BOOST_TEST((f == t));
  BOOST_TEST(std::hash<af::future<int>>()(f) == std::hash<af::future<int>>()(t));
  BOOST_TEST(!f.done());
  BOOST_TEST(run_until_done(ioc, f));
  BOOST_TEST(t.done());
  BOOST_TEST(f.result() == 5);
  BOOST_TEST(t.result() == 5);
}

BOOST_AUTO_TEST_CASE(body_starts_on_the_next_turn_never_inline) {
  asio::io_context ioc;
  bool started = false;
  const af::task<int> t = af::create_task(ioc, [&]() -> asio::awaitable<int> {
    started = true;
    co_return 1;
  });
  BOOST_TEST(!started);
  BOOST_TEST(!t.done());
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST(started);
  BOOST_TEST(t.result() == 1);
}

BOOST_AUTO_TEST_CASE(awaitable_form_starts_on_the_next_turn_too) {
  asio::io_context ioc;
  bool started = false;
  const af::task<void> t = af::create_task(ioc, set_flag(&started));
  BOOST_TEST(!started);
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST(started);
}

CO_TEST_CASE(create_task_inside_a_coroutine_on_the_same_context_does_not_run_the_body_inline) {
  // Asio 1.81's co_spawn *dispatches* its first step; from a thread that runs the context
  // that would run the body inside create_task. A task must start on the next turn.
  auto ex = co_await asio::this_coro::executor;
  bool started = false;
  const af::task<int> t = af::create_task(ex, [&]() -> asio::awaitable<int> {
    started = true;
    co_return 2;
  });
  BOOST_TEST(!started);
  BOOST_TEST(!t.done());
  BOOST_TEST(co_await t.async_wait() == 2);
  BOOST_TEST(started);
}

CO_TEST_CASE(create_task_inside_a_task_does_not_run_the_child_inline) {
  auto ex = co_await asio::this_coro::executor;
  std::optional<bool> child_started_inline;
  const af::task<int> parent = af::create_task(ex, [&]() -> asio::awaitable<int> {
    bool child_started = false;
    const af::task<int> child =
        af::create_task(co_await asio::this_coro::executor, [&]() -> asio::awaitable<int> {
          child_started = true;
          co_return 3;
        });
    child_started_inline = child_started;
    co_return co_await child.async_wait() + 1;
  });
  BOOST_TEST(co_await parent.async_wait() == 4);
  BOOST_TEST((child_started_inline == std::optional<bool>(false)));
}

BOOST_AUTO_TEST_CASE(value_results_resolve_the_task) {
  asio::io_context ioc;
  const af::task<int> i = af::create_task(ioc, value_after_yields(42, 2));
  const af::task<std::string> s = af::create_task(ioc, []() -> asio::awaitable<std::string> {
    co_await aft::yield_once();
    co_return std::string(100, 'x'); // heap-allocated, not SSO
  });
  BOOST_TEST(aft::run_until(ioc, [&] { return i.done() && s.done(); }));
  BOOST_TEST(!i.cancelled());
  BOOST_TEST(i.result() == 42);
  BOOST_TEST(!i.exception());
  BOOST_TEST(i.get() == 42);
  BOOST_TEST(s.result() == std::string(100, 'x'));
}

BOOST_AUTO_TEST_CASE(void_task_completes) {
  asio::io_context ioc;
  int steps = 0;
  const af::task<void> t = af::create_task(ioc, [&]() -> asio::awaitable<void> {
    ++steps;
    co_await aft::yield_once();
    ++steps;
  });
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST(steps == 2);
  BOOST_TEST(!t.cancelled());
  BOOST_CHECK_NO_THROW(t.result());
  BOOST_CHECK_NO_THROW(t.get());
  BOOST_TEST(!t.exception());
}

BOOST_AUTO_TEST_CASE(move_only_result_is_moved_out_once) {
  asio::io_context ioc;
  const af::task<std::unique_ptr<int>> t =
      af::create_task(ioc, []() -> asio::awaitable<std::unique_ptr<int>> {
        co_await aft::yield_once();
        co_return std::make_unique<int>(7);
      });
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST_REQUIRE(t.result() != nullptr);
  BOOST_TEST(*t.result() == 7);
  std::unique_ptr<int> p = t.get();
  BOOST_TEST_REQUIRE(p != nullptr);
  BOOST_TEST(*p == 7);
  BOOST_CHECK_THROW((void)t.get(), af::invalid_state_error);
  BOOST_CHECK_THROW((void)t.result(), af::invalid_state_error);
}

CO_TEST_CASE(move_only_result_reaches_the_awaiting_coroutine) {
  auto ex = co_await asio::this_coro::executor;
  const af::task<std::unique_ptr<int>> t =
      af::create_task(ex, []() -> asio::awaitable<std::unique_ptr<int>> {
        co_await aft::yield_once();
        co_return std::make_unique<int>(9);
      });
  std::unique_ptr<int> p = co_await t.async_wait();
  BOOST_TEST_REQUIRE(p != nullptr);
  BOOST_TEST(*p == 9);
}

BOOST_AUTO_TEST_CASE(exception_escaping_the_coroutine_fails_the_task) {
  asio::io_context ioc;
  const af::task<int> t = af::create_task(ioc, fail_after_yields(1, "bad"));
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST(!t.cancelled());
  BOOST_TEST(t.cancelling() == 0);
  BOOST_TEST(aft::holds<std::runtime_error>(t.exception()));
  BOOST_TEST(aft::what_of(t.exception()) == "bad");
  BOOST_CHECK_THROW(t.result(), std::runtime_error);
  BOOST_CHECK_THROW((void)t.get(), std::runtime_error);
}

BOOST_AUTO_TEST_CASE(exception_thrown_before_the_first_suspension_fails_the_task) {
  asio::io_context ioc;
  const af::task<void> t = af::create_task(ioc, []() -> asio::awaitable<void> {
    throw std::out_of_range("at once");
    co_return;
  });
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST(aft::holds<std::out_of_range>(t.exception()));
}

BOOST_AUTO_TEST_CASE(operation_aborted_without_a_cancel_request_is_an_ordinary_failure) {
  asio::io_context ioc;
  const af::task<int> t = af::create_task(ioc, []() -> asio::awaitable<int> {
    co_await aft::yield_once();
    throw boost::system::system_error(asio::error::operation_aborted);
    co_return 0;
  });
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST(!t.cancelled());
  BOOST_TEST(aft::holds<boost::system::system_error>(t.exception()));
  BOOST_TEST(!aft::holds<af::cancelled_error>(t.exception()));
}

BOOST_AUTO_TEST_CASE(cancelled_error_escaping_without_a_cancel_request_cancels_the_task) {
  // asyncio: a task whose awaited future was cancelled by someone else ends cancelled.
  asio::io_context ioc;
  const af::future<int> awaited(ioc);
  const af::task<int> t = af::create_task(ioc, value_of(awaited));
  aft::poll(ioc);
  BOOST_TEST(awaited.cancel("by someone else"));
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST(t.cancelled());
  BOOST_TEST(t.cancelling() == 0);
  BOOST_TEST((result_cancel_message(t) == std::optional<std::string>("by someone else")));
}

BOOST_AUTO_TEST_CASE(callable_form_keeps_its_captures_alive_until_the_coroutine_finishes) {
  aft::instance_counters counters;
  {
    asio::io_context ioc;
    const af::future<void> gate(ioc);
    const af::task<int> t = af::create_task(
        ioc,
        [c = aft::counted(counters, 11), s = std::string(64, 's'), gate]() -> asio::awaitable<int> {
          co_await gate.async_wait(); // the lambda object must still be alive here
          co_return c.value() + static_cast<int>(s.size());
        });
    aft::poll(ioc);
    BOOST_TEST(counters.live.load() == 1);
    gate.set_result();
    BOOST_TEST(run_until_done(ioc, t));
    BOOST_TEST(t.result() == 11 + 64);
    aft::poll(ioc);
    BOOST_TEST(counters.live.load() == 0); // released once the coroutine finished
  }
  BOOST_TEST(counters.live.load() == 0);
}

BOOST_AUTO_TEST_CASE(frame_locals_are_destroyed_when_the_task_finishes) {
  aft::instance_counters counters;
  asio::io_context ioc;
  const af::task<int> t = af::create_task(ioc, [&]() -> asio::awaitable<int> {
    aft::counted local(counters, 1);
    co_await aft::yield_once();
    co_return local.value();
  });
  BOOST_TEST(run_until_done(ioc, t));
  aft::poll(ioc);
  BOOST_TEST(t.result() == 1);
  BOOST_TEST(counters.live.load() == 0);
}

BOOST_AUTO_TEST_CASE(given_name_via_the_awaitable_and_callable_forms) {
  asio::io_context ioc;
  const af::task<int> a = af::create_task(ioc, value_after_yields(1, 0), "a-name");
  const af::task<int> b = af::create_task(
      ioc, []() -> asio::awaitable<int> { co_return 2; }, "b-name");
  BOOST_TEST(a.get_name() == "a-name");
  BOOST_TEST(b.get_name() == "b-name");
  BOOST_TEST(aft::run_until(ioc, [&] { return a.done() && b.done(); }));
  BOOST_TEST(a.get_name() == "a-name"); // the name outlives completion
}

BOOST_AUTO_TEST_CASE(task_is_awaitable_with_callbacks_then_and_from_another_context) {
  asio::io_context ioc;
  asio::io_context other;
  const af::task<int> t = af::create_task(ioc, value_after_yields(6, 2));
  std::optional<int> via_callback;
  t.async_wait([&](std::exception_ptr e, int v) {
    if (!e)
      via_callback = v;
  });
  int done_callbacks = 0;
  t.add_done_callback([&](af::future<int> f) { done_callbacks += f.result() == 6 ? 1 : 0; });
  const af::future<int> doubled = t.then([](int v) { return v * 2; });
  std::optional<int> from_other;
  asio::co_spawn(
      other, [t, &from_other]() -> asio::awaitable<void> { from_other = co_await t.async_wait(); },
      asio::detached);
  BOOST_TEST(aft::run_until(ioc, [&] {
    aft::poll(other);
    return via_callback && done_callbacks == 1 && doubled.done() && from_other;
  }));
  BOOST_TEST((via_callback == std::optional<int>(6)));
  BOOST_TEST(doubled.result() == 12);
  BOOST_TEST((from_other == std::optional<int>(6)));
}

// A task whose body never suspends is done one turn after it starts, on every Asio: from
// Asio 1.26 to 1.34 (Boost 1.81-1.88) co_spawn's entry point would add a turn of its own
// after such a body, which a WORKAROUND block skips (task_state.hpp); from Asio 1.36 (Boost
// 1.89) co_spawn adds it only to a coroutine that finishes inside co_spawn itself.
BOOST_AUTO_TEST_CASE(a_body_that_never_suspends_takes_one_turn) {
  // Each on a fresh context, counting the handlers run until the task is done.
  const auto turns_until_done = [](auto make, bool cancel = false) {
    asio::io_context ioc;
    const auto t = make(ioc);
    if (cancel)
      t.cancel();
    int turns = 0;
    while (!t.done() && turns < 10 && ioc.run_one() == 1)
      ++turns;
    return turns;
  };
  const auto value = [](asio::io_context& ioc) {
    return af::create_task(ioc, []() -> asio::awaitable<int> { co_return 1; });
  };
  BOOST_TEST(turns_until_done(value) == 1);
  BOOST_TEST(turns_until_done(value, true) == 1); // cancelled before it starts
  BOOST_TEST(turns_until_done([](asio::io_context& ioc) {
               return af::create_task(ioc, []() -> asio::awaitable<void> { co_return; });
             }) == 1);
  BOOST_TEST(turns_until_done([](asio::io_context& ioc) {
               return af::create_task(ioc, []() -> asio::awaitable<int> {
                 throw std::runtime_error("no");
                 co_return 1;
               });
             }) == 1);
  BOOST_TEST(turns_until_done([](asio::io_context& ioc) {
               return af::create_task(ioc, value_after_yields(2, 0));
             }) == 1);
}

#if BOOST_ASIO_VERSION >= 102800
// Asio 1.28 (Boost 1.82): a task, like any future, is awaited directly.
CO_TEST_CASE(create_task_is_awaited_directly) {
  auto ex = co_await asio::this_coro::executor;
  BOOST_TEST(co_await af::create_task(ex, value_after_yields(8, 1)) == 8);
  co_await af::create_task(ex, []() -> asio::awaitable<void> { co_return; });
  std::exception_ptr e;
  try {
    co_await af::create_task(ex, []() -> asio::awaitable<int> {
      throw std::runtime_error("direct");
      co_return 0;
    });
  } catch (...) {
    e = std::current_exception();
  }
  BOOST_TEST(aft::what_of(e) == "direct");
  af::task<int> t = af::create_task(ex, value_after_yields(9, 2));
  BOOST_TEST(co_await std::move(t) == 9);
  BOOST_TEST(t.valid()); // a handle is not moved from by the await
}
#endif

CO_TEST_CASE(then_returning_a_task_is_flattened_and_a_future_of_a_task_unwraps) {
  auto ex = co_await asio::this_coro::executor;
  static_assert(af::is_future<af::task<int>>::value);
  af::future<int> f(ex);
  auto doubled = f.then([ex](int v) { return af::create_task(ex, value_after_yields(2 * v, 1)); });
  static_assert(std::is_same_v<decltype(doubled), af::future<int>>);
  f.set_result(3);
  BOOST_TEST(co_await doubled.async_wait() == 6);
  af::future<af::task<int>> nested(ex);
  static_assert(std::is_same_v<af::future<af::task<int>>::completion_signature,
                               void(std::exception_ptr, int)>);
  nested.set_result(af::create_task(ex, value_after_yields(5, 1)));
  BOOST_TEST(co_await nested.async_wait() == 5);
  const auto unwrapped = nested.unwrap();
  static_assert(std::is_same_v<decltype(unwrapped), const af::future<int>>);
  BOOST_TEST(co_await unwrapped.async_wait() == 5);
}

BOOST_AUTO_TEST_SUITE_END() // basics

// =======================================================================================
BOOST_AUTO_TEST_SUITE(generations)

// A task's executor can outlive the task (a timer made with it, a copy kept in a callback).
// A function submitted through it afterwards runs outside any task: it must never be taken
// for a later task's, which would run it inside that task's gate, show that task as its
// current_task(), or use up that task's first submission (its body then ran inline in
// create_task). A thread reuses its gates last-in first-out, so tasks made one after the
// other on one thread all get the same gate; generations used to wrap after 65 536.
BOOST_AUTO_TEST_CASE(an_executor_kept_from_a_finished_task_never_reaches_a_later_one) {
  asio::io_context ioc;
  const auto finish = [&](const af::task<void>& t) {
    BOOST_TEST_REQUIRE(run_until_done(ioc, t));
    aft::poll(ioc); // the task's last references go: its gate is back in the pool
  };
  std::optional<asio::any_io_executor> kept;
  finish(af::create_task(ioc, [&]() -> asio::awaitable<void> {
    kept = co_await asio::this_coro::executor;
    co_return;
  }));
  for (int i = 0; i < 65'535; ++i)
    finish(af::create_task(ioc, []() -> asio::awaitable<void> { co_return; }));
  // The gate is back at the kept executor's generation, modulo 2^16.
  int stale_runs = 0;
  std::optional<af::task_info> stale_saw;
  const auto stale_probe = [&] {
    ++stale_runs;
    stale_saw = af::current_task();
  };
  asio::post(*kept, stale_probe);
  bool body_ran_inline = true;
  bool body_ran = false;
  const af::future<void> release(ioc);
  af::task<void> next;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        next = af::create_task(
            co_await asio::this_coro::executor,
            [&]() -> asio::awaitable<void> {
              body_ran = true;
              co_await release.async_wait();
            },
            "next");
        body_ran_inline = body_ran;
      },
      asio::detached);
  BOOST_TEST(aft::run_until(ioc, [&] { return body_ran && stale_runs == 1; }));
  BOOST_TEST(!body_ran_inline); // its first submission was its own
  BOOST_TEST(!stale_saw.has_value());
  asio::post(*kept, stale_probe); // while "next" is suspended on the same gate
  BOOST_TEST(aft::run_until(ioc, [&] { return stale_runs == 2; }));
  BOOST_TEST(!stale_saw.has_value()); // not taken for "next"
  release.set_result();
  finish(next);
}

BOOST_AUTO_TEST_CASE(a_gate_whose_generations_are_used_up_is_closed_for_good) {
  asio::io_context ioc;
  af::detail::task_gate::skip_generations_for_testing(af::detail::gate_gen_mask);
  std::optional<asio::any_io_executor> last;
  {
    const af::task<void> t = af::create_task(ioc, [&]() -> asio::awaitable<void> {
      last = co_await asio::this_coro::executor; // on its gate's last generation
      co_return;
    });
    BOOST_TEST_REQUIRE(run_until_done(ioc, t));
  }
  aft::poll(ioc);
  // The next task gets another gate; the closed one's executor runs outside any task.
  const af::future<void> release(ioc);
  const af::task<void> later = af::create_task(
      ioc, [&]() -> asio::awaitable<void> { co_await release.async_wait(); }, "later");
  aft::poll(ioc);
  std::optional<std::optional<af::task_info>> seen;
  asio::post(*last, [&] { seen = af::current_task(); });
  BOOST_TEST(aft::run_until(ioc, [&] { return seen.has_value(); }));
  BOOST_TEST(!seen->has_value());
  release.set_result();
  BOOST_TEST(run_until_done(ioc, later));
}

BOOST_AUTO_TEST_SUITE_END() // generations

// =======================================================================================
BOOST_AUTO_TEST_SUITE(invalid_state)

BOOST_AUTO_TEST_CASE(set_result_and_set_exception_on_a_task_throw) {
  asio::io_context ioc;
  const af::future<void> gate(ioc);
  const af::task<int> t = af::create_task(ioc, [gate]() -> asio::awaitable<int> {
    co_await gate.async_wait();
    co_return 1;
  });
  const af::future<int> copy = t;
  const auto error = std::make_exception_ptr(std::runtime_error("x"));
  for (const af::future<int>* f : {static_cast<const af::future<int>*>(&t), &copy}) {
    BOOST_CHECK_THROW(f->set_result(2), af::invalid_state_error);
    BOOST_CHECK_THROW(f->try_set_result(2), af::invalid_state_error);
    BOOST_CHECK_THROW(f->set_exception(error), af::invalid_state_error);
    BOOST_CHECK_THROW(f->set_exception(std::runtime_error("y")), af::invalid_state_error);
    BOOST_CHECK_THROW(f->try_set_exception(error), af::invalid_state_error);
  }
  BOOST_TEST(!t.done());
  gate.set_result();
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST(t.result() == 1); // the task resolved itself
  BOOST_CHECK_THROW(t.set_result(3), af::invalid_state_error);
  BOOST_CHECK_THROW(t.try_set_result(3), af::invalid_state_error);
}

BOOST_AUTO_TEST_CASE(set_result_on_a_void_task_throws) {
  asio::io_context ioc;
  const af::task<void> t = af::create_task(ioc, []() -> asio::awaitable<void> { co_return; });
  BOOST_CHECK_THROW(t.set_result(), af::invalid_state_error);
  BOOST_CHECK_THROW(t.try_set_result(), af::invalid_state_error);
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_CHECK_NO_THROW(t.result());
}

BOOST_AUTO_TEST_CASE(result_of_a_pending_task_throws) {
  asio::io_context ioc;
  const af::task<int> t = af::create_task(ioc, value_after_yields(1, 1));
  BOOST_CHECK_THROW((void)t.result(), af::invalid_state_error);
  BOOST_CHECK_THROW((void)t.exception(), af::invalid_state_error);
  BOOST_TEST(run_until_done(ioc, t));
}

BOOST_AUTO_TEST_CASE(empty_task_handle_throws_invalid_state_error) {
  const af::task<int> t;
  BOOST_TEST(!t.valid());
  BOOST_CHECK_THROW(t.done(), af::invalid_state_error);
  BOOST_CHECK_THROW(t.cancel(), af::invalid_state_error);
  BOOST_CHECK_THROW(t.cancelling(), af::invalid_state_error);
  BOOST_CHECK_THROW(t.uncancel(), af::invalid_state_error);
  BOOST_CHECK_THROW((void)t.get_name(), af::invalid_state_error);
  BOOST_CHECK_THROW(t.set_name("x"), af::invalid_state_error);
  BOOST_CHECK_THROW((void)t.result(), af::invalid_state_error);

  asio::io_context ioc;
  af::task<int> moved = af::create_task(ioc, value_after_yields(1, 0));
  const af::task<int> target = std::move(moved);
  BOOST_TEST(!moved.valid()); // NOLINT(bugprone-use-after-move): the documented state
  BOOST_CHECK_THROW(moved.cancelling(), af::invalid_state_error);
  BOOST_TEST(run_until_done(ioc, target));
}

BOOST_AUTO_TEST_CASE(empty_executor_is_rejected_with_invalid_argument) {
  // As for future<T>'s constructor: an empty any_io_executor is a programming error.
  bool ran = false;
  BOOST_CHECK_THROW(af::create_task(asio::any_io_executor(), set_flag(&ran)),
                    std::invalid_argument);
  BOOST_TEST(!ran);
}

BOOST_AUTO_TEST_SUITE_END() // invalid_state

// =======================================================================================
BOOST_AUTO_TEST_SUITE(executors)

BOOST_AUTO_TEST_CASE(coroutine_runs_on_an_executor_of_its_own_over_the_given_one) {
  asio::io_context ioc;
  struct seen {
    asio::any_io_executor ex;
    std::string current_at_start;
    std::string current_after_suspension;
    std::string current_in_posted_function;
  };
  seen a_seen, b_seen;
  const auto body = [](seen* s) -> asio::awaitable<int> {
    s->ex = co_await asio::this_coro::executor;
    s->current_at_start = af::current_task().value_or(af::task_info{}).name;
    co_await aft::yield_once();
    s->current_after_suspension = af::current_task().value_or(af::task_info{}).name;
    // A function posted to the task's executor runs inside the task too (its gate).
    asio::post(s->ex, [s] {
      s->current_in_posted_function = af::current_task().value_or(af::task_info{}).name;
    });
    co_await aft::yield_once();
    co_await aft::yield_once();
    co_return 0;
  };
  const af::task<int> a = af::create_task(ioc, body(&a_seen), "a");
  const af::task<int> b = af::create_task(ioc.get_executor(), body(&b_seen), "b");
  BOOST_TEST(aft::run_until(ioc, [&] { return a.done() && b.done(); }));
  BOOST_TEST(a_seen.current_at_start == "a");
  BOOST_TEST(a_seen.current_after_suspension == "a");
  BOOST_TEST(a_seen.current_in_posted_function == "a");
  BOOST_TEST(b_seen.current_at_start == "b");
  BOOST_TEST(b_seen.current_in_posted_function == "b");
  BOOST_TEST(!af::current_task().has_value()); // outside any task
  // The task's executor runs on the given one's context.
  BOOST_TEST(&asio::query(a_seen.ex, asio::execution::context) == &ioc);
  // get_executor() is the executor the task was created on (its "loop"); the coroutine's
  // executor is the task's own wrapper over it.
  BOOST_TEST((a.get_executor() == asio::any_io_executor(ioc.get_executor())));
  BOOST_TEST((b.get_executor() == asio::any_io_executor(ioc.get_executor())));
  BOOST_TEST(!(a_seen.ex == b_seen.ex)); // one per task
  BOOST_TEST(!(a_seen.ex == asio::any_io_executor(ioc.get_executor())));
}

BOOST_AUTO_TEST_CASE(any_io_executor_over_an_io_context) {
  asio::io_context ioc;
  const asio::any_io_executor ex(ioc.get_executor());
  const af::task<int> t = af::create_task(ex, value_after_yields(3, 2), "any");
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST(t.result() == 3);
}

BOOST_AUTO_TEST_CASE(task_on_a_user_strand_runs_inside_that_strand) {
  asio::io_context ioc;
  const ioc_strand strand = asio::make_strand(ioc);
  std::vector<bool> inside;
  const auto body = [&]() -> asio::awaitable<int> {
    inside.push_back(strand.running_in_this_thread());
    co_await aft::yield_once();
    inside.push_back(strand.running_in_this_thread());
    co_await sleep_for(1ms);
    inside.push_back(strand.running_in_this_thread());
    co_return 8;
  };
  const af::task<int> t = af::create_task(strand, body);
  const af::task<int> u = af::create_task(asio::any_io_executor(strand), body);
  BOOST_TEST(aft::run_until(ioc, [&] { return t.done() && u.done(); }));
  BOOST_TEST(t.result() == 8);
  BOOST_TEST(u.result() == 8);
  BOOST_TEST(inside.size() == 6u);
  for (bool b : inside)
    BOOST_TEST(b);
}

BOOST_AUTO_TEST_CASE(every_step_goes_through_a_custom_executor_and_none_runs_inline) {
  asio::io_context ioc;
  aft::executor_stats stats;
  const auto ex = aft::make_tracking_executor(ioc.get_executor(), stats);
  bool started = false;
  af::task<int> t;
  {
    aft::inside_call marker; // anything of the task run inside create_task is "inline"
    t = af::create_task(ex, [&]() -> asio::awaitable<int> {
      started = true;
      co_await aft::yield_once();
      co_return 4;
    });
  }
  BOOST_TEST(!started);
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST(t.result() == 4);
  BOOST_TEST(stats.runs.load() > 0u);
  BOOST_TEST(stats.inline_runs.load() == 0u);
}

BOOST_AUTO_TEST_CASE(thread_pool_task_runs_on_the_pool_and_get_returns_from_main) {
  asio::thread_pool pool(2);
  std::atomic<bool> on_main{true};
  std::optional<af::task_info> current;
  {
    const af::task<int> t = af::create_task(
        pool,
        [&]() -> asio::awaitable<int> {
          on_main = false;
          co_await sleep_for(1ms);
          current = af::current_task();
          co_return 42;
        },
        "pooled");
    BOOST_TEST(t.get() == 42); // blocks this (foreign) thread
    BOOST_TEST(!on_main.load());
    BOOST_TEST_REQUIRE(current.has_value());
    BOOST_TEST(current->name == "pooled");
    const af::task<int> u = af::create_task(pool.get_executor(), value_after_yields(5, 3));
    BOOST_TEST(u.wait_for(aft::default_timeout));
    BOOST_TEST(u.result() == 5);
  }
  pool.join();
}

BOOST_AUTO_TEST_CASE(thread_pool_task_cancelled_from_main) {
  asio::thread_pool pool(2);
  {
    std::atomic<bool> aborted_inside{false};
    std::promise<void> suspended;
    const af::task<void> t = af::create_task(pool, [&]() -> asio::awaitable<void> {
      asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::hours(1));
      // A cancel arriving before the wait below starts is emitted on the task's strand,
      // after this step: it aborts the wait either way.
      suspended.set_value();
      try {
        co_await timer.async_wait(asio::use_awaitable);
      } catch (const boost::system::system_error& e) {
        aborted_inside = e.code() == asio::error::operation_aborted;
        throw;
      }
    });
    BOOST_TEST_REQUIRE(
        (suspended.get_future().wait_for(aft::default_timeout) == std::future_status::ready));
    BOOST_TEST(t.cancel("from main"));
    BOOST_TEST_REQUIRE(t.wait_for(aft::default_timeout));
    BOOST_TEST(aborted_inside.load());
    BOOST_TEST(t.cancelled());
    BOOST_TEST((result_cancel_message(t) == std::optional<std::string>("from main")));
  }
  pool.join();
}

BOOST_AUTO_TEST_CASE(steps_of_a_task_on_a_multi_threaded_context_never_overlap) {
  // The task's own strand orders its steps: a plain int is safe (TSan checks).
  asio::io_context ioc;
  int counter = 0; // touched only by the task's steps
  constexpr int steps = 500;
  const af::task<int> t = af::create_task(ioc, [&]() -> asio::awaitable<int> {
    for (int i = 0; i < steps; ++i) {
      ++counter;
      co_await aft::yield_once();
    }
    co_return counter;
  });
  {
    aft::context_threads runners(ioc, 2);
    BOOST_TEST(t.wait_for(aft::default_timeout));
  }
  BOOST_TEST(t.result() == steps);
}

BOOST_AUTO_TEST_SUITE_END() // executors

// =======================================================================================
BOOST_AUTO_TEST_SUITE(cancellation)

BOOST_AUTO_TEST_CASE(cancel_before_the_first_step_never_runs_the_body) {
  asio::io_context ioc;
  bool body_ran = false;
  const af::task<int> t = af::create_task(ioc, [&]() -> asio::awaitable<int> {
    body_ran = true; // the very first statement
    co_return 1;
  });
  BOOST_TEST(t.cancel("early"));
  BOOST_TEST(t.cancelling() == 1);
  BOOST_TEST(!t.done()); // it ends cancelled on its first turn
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST(!body_ran);
  BOOST_TEST(t.cancelled());
  BOOST_TEST((result_cancel_message(t) == std::optional<std::string>("early")));
  BOOST_TEST((aft::cancel_message(aft::thrown_by([&] { (void)t.exception(); })) ==
              std::optional<std::string>("early")));
  BOOST_TEST((aft::cancel_message(aft::thrown_by([&] { (void)t.get(); })) ==
              std::optional<std::string>("early")));
  BOOST_TEST(!t.cancel("late"));
}

BOOST_AUTO_TEST_CASE(cancel_before_the_first_step_through_a_future_copy) {
  asio::io_context ioc;
  bool body_ran = false;
  const af::task<void> t = af::create_task(ioc, set_flag(&body_ran));
  const af::future<void> f = t;
  BOOST_TEST(f.cancel("via copy"));
  BOOST_TEST(t.cancelling() == 1);
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST(!body_ran);
  BOOST_TEST(f.cancelled());
  BOOST_TEST((result_cancel_message(f) == std::optional<std::string>("via copy")));
}

BOOST_AUTO_TEST_CASE(cancel_while_awaiting_a_timer) {
  asio::io_context ioc;
  std::optional<bool> aborted_inside;
  const af::task<void> t = af::create_task(ioc, [&]() -> asio::awaitable<void> {
    asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::hours(1));
    try {
      co_await timer.async_wait(asio::use_awaitable);
      aborted_inside = false;
    } catch (const boost::system::system_error& e) {
      aborted_inside = e.code() == asio::error::operation_aborted;
      throw;
    }
  });
  aft::poll(ioc); // suspended in the timer wait
  BOOST_TEST(!t.done());
  BOOST_TEST(t.cancel("timer"));
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST((aborted_inside == std::optional<bool>(true)));
  BOOST_TEST(t.cancelled());
  BOOST_TEST((result_cancel_message(t) == std::optional<std::string>("timer")));
}

BOOST_AUTO_TEST_CASE(cancelled_error_without_a_message_takes_the_cancel_requests_message) {
  asio::io_context ioc;
  const af::task<void> t = af::create_task(ioc, []() -> asio::awaitable<void> {
    try {
      co_await sleep_for(std::chrono::hours(1));
    } catch (const boost::system::system_error&) {
      throw af::cancelled_error(); // translated by the coroutine, message lost
    }
  });
  aft::poll(ioc);
  BOOST_TEST(t.cancel("kept"));
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST(t.cancelled());
  BOOST_TEST((result_cancel_message(t) == std::optional<std::string>("kept")));
}

BOOST_AUTO_TEST_CASE(cancel_while_awaiting_a_future_cancels_that_future_with_the_message) {
  asio::io_context ioc;
  const af::future<int> awaited(ioc);
  std::optional<std::string> seen_inside;
  const af::task<int> t = af::create_task(ioc, [&]() -> asio::awaitable<int> {
    try {
      co_return co_await awaited.async_wait();
    } catch (const af::cancelled_error& e) {
      seen_inside = e.message();
      throw;
    }
  });
  aft::poll(ioc);
  BOOST_TEST(t.cancel("reason"));
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST((seen_inside == std::optional<std::string>("reason")));
  BOOST_TEST(awaited.cancelled()); // asyncio: cancelling the awaiter cancels the awaited
  BOOST_TEST((result_cancel_message(awaited) == std::optional<std::string>("reason")));
  BOOST_TEST(t.cancelled());
  BOOST_TEST((result_cancel_message(t) == std::optional<std::string>("reason")));
}

BOOST_AUTO_TEST_CASE(cancel_while_awaiting_another_task_cancels_both) {
  asio::io_context ioc;
  const af::future<void> never(ioc);
  const af::task<void> inner = af::create_task(ioc, wait_on(never), "inner");
  std::optional<std::string> outer_saw;
  const af::task<void> outer = af::create_task(
      ioc,
      [&, inner]() -> asio::awaitable<void> {
        try {
          co_await inner.async_wait();
        } catch (const af::cancelled_error& e) {
          outer_saw = e.message();
          throw;
        }
      },
      "outer");
  aft::poll(ioc);
  BOOST_TEST(!inner.done());
  BOOST_TEST(outer.cancel("cascade"));
  BOOST_TEST(aft::run_until(ioc, [&] { return inner.done() && outer.done(); }));
  BOOST_TEST(inner.cancelled());
  BOOST_TEST(inner.cancelling() == 1); // the outer's cancel reached it as a cancel request
  BOOST_TEST(never.cancelled());
  BOOST_TEST(outer.cancelled());
  BOOST_TEST((result_cancel_message(inner) == std::optional<std::string>("cascade")));
  BOOST_TEST((outer_saw == std::optional<std::string>("cascade")));
  BOOST_TEST((result_cancel_message(outer) == std::optional<std::string>("cascade")));
}

BOOST_AUTO_TEST_CASE(cancel_while_awaiting_a_socket_read) {
  asio::io_context ioc;
  asio::ip::tcp::acceptor acceptor(ioc, {asio::ip::address_v4::loopback(), 0});
  asio::ip::tcp::socket client(ioc);
  asio::ip::tcp::socket server(ioc);
  client.connect(acceptor.local_endpoint()); // completes from the listen backlog
  acceptor.accept(server);
  std::optional<bool> aborted_inside;
  const af::task<std::size_t> t = af::create_task(ioc, [&]() -> asio::awaitable<std::size_t> {
    std::array<char, 16> buf{};
    try {
      co_return co_await server.async_read_some(asio::buffer(buf), asio::use_awaitable);
    } catch (const boost::system::system_error& e) {
      aborted_inside = e.code() == asio::error::operation_aborted;
      throw;
    }
  });
  aft::poll(ioc); // suspended in the read: nothing was written
  BOOST_TEST(!t.done());
  BOOST_TEST(t.cancel("socket"));
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST((aborted_inside == std::optional<bool>(true)));
  BOOST_TEST(t.cancelled());
  BOOST_TEST((result_cancel_message(t) == std::optional<std::string>("socket")));
  // The socket still works: the cancellation aborted only that read.
  const std::array<char, 2> data{'o', 'k'};
  asio::write(client, asio::buffer(data));
  std::array<char, 2> got{};
  asio::read(server, asio::buffer(got));
  BOOST_TEST((got == data));
}

BOOST_AUTO_TEST_CASE(cancel_from_inside_its_own_coroutine_is_sticky) {
  asio::io_context ioc;
  const af::future<void> never(ioc);
  std::optional<af::task<int>> self; // assigned before the first step
  std::optional<bool> cancel_returned;
  int cancelling_inside = -1;
  std::exception_ptr next_await;
  const af::task<int> t = af::create_task(ioc, [&]() -> asio::awaitable<int> {
    (void)co_await asio::this_coro::executor; // no suspension
    cancel_returned = self->cancel("self");
    cancelling_inside = self->cancelling();
    try {
      co_await never.async_wait(); // the next operation is aborted at once
    } catch (...) {
      next_await = std::current_exception();
      throw;
    }
    co_return 1;
  });
  self = t;
  bool done = false;
  const std::exception_ptr escaped = run_until_done_catching(ioc, t, done);
  BOOST_TEST(!escaped, "escaped from io_context::run(): " << aft::describe(escaped));
  BOOST_TEST(done);
  BOOST_TEST((cancel_returned == std::optional<bool>(true)));
  BOOST_TEST(cancelling_inside == 1);
  BOOST_TEST(is_operation_aborted(next_await));
  BOOST_TEST(t.cancelled());
  BOOST_TEST((result_cancel_message(t) == std::optional<std::string>("self")));
  self.reset();
}

BOOST_AUTO_TEST_CASE(task_that_cancels_itself_and_returns_without_suspending_ends_cleanly) {
  // The smallest form of a self-cancel: nothing is awaited after it. The task must end
  // (with its value, or cancelled as asyncio would have it) and nothing may escape from
  // the context's run functions.
  asio::io_context ioc;
  std::optional<af::task<int>> self;
  const af::task<int> t = af::create_task(ioc, [&]() -> asio::awaitable<int> {
    self->cancel("myself");
    co_return 1;
  });
  self = t;
  bool done = false;
  const std::exception_ptr escaped = run_until_done_catching(ioc, t, done);
  BOOST_TEST(!escaped, "escaped from io_context::run(): " << aft::describe(escaped));
  BOOST_TEST(done);
  if (done)
    BOOST_TEST((t.cancelled() || t.result() == 1));
  self.reset();
}

BOOST_AUTO_TEST_CASE(cancel_arriving_during_a_synchronous_step_aborts_the_next_operation) {
  asio::io_context ioc;
  const af::future<void> never(ioc);
  std::promise<void> in_step;
  std::atomic<bool> cancel_requested{false};
  bool saw_cancel_request = false;
  std::exception_ptr next_await;
  const af::task<void> t = af::create_task(ioc, [&]() -> asio::awaitable<void> {
    in_step.set_value();
    // A synchronous loop: the cancel arrives while the coroutine is between operations.
    const auto deadline = std::chrono::steady_clock::now() + aft::default_timeout;
    while (!cancel_requested.load() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
    saw_cancel_request = cancel_requested.load();
    try {
      co_await aft::yield_once(); // not itself cancellable
      co_await never.async_wait();
    } catch (...) {
      next_await = std::current_exception();
      throw;
    }
  });
  std::optional<bool> cancel_returned;
  aft::bounded_thread canceller([&, t] {
    if (in_step.get_future().wait_for(aft::default_timeout) != std::future_status::ready)
      return;
    cancel_returned = t.cancel("mid-step");
    cancel_requested = true;
  });
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST(canceller.join_for());
  BOOST_TEST(saw_cancel_request);
  BOOST_TEST((cancel_returned == std::optional<bool>(true)));
  BOOST_TEST(is_operation_aborted(next_await));
  BOOST_TEST(t.cancelled());
  BOOST_TEST((result_cancel_message(t) == std::optional<std::string>("mid-step")));
}

BOOST_AUTO_TEST_CASE(after_swallowing_without_reset_the_next_operation_is_aborted) {
  asio::io_context ioc;
  const af::future<void> first(ioc);
  bool caught = false;
  std::exception_ptr next_await;
  const af::task<int> t = af::create_task(ioc, [&]() -> asio::awaitable<int> {
    try {
      co_await first.async_wait();
    } catch (const af::cancelled_error&) {
      caught = true;
    }
    try {
      co_await aft::yield_once(); // Asio's cancellation state is still set
    } catch (...) {
      next_await = std::current_exception();
    }
    co_return 5;
  });
  aft::poll(ioc);
  BOOST_TEST(t.cancel("sticky"));
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST(caught);
  BOOST_TEST(is_operation_aborted(next_await));
  BOOST_TEST(t.result() == 5); // swallowed twice, returned normally
}

BOOST_AUTO_TEST_CASE(swallowed_cancellation_completes_the_task_normally) {
  asio::io_context ioc;
  const af::future<void> never(ioc);
  std::optional<std::string> seen;
  const af::task<int> t = af::create_task(ioc, [&]() -> asio::awaitable<int> {
    try {
      co_await never.async_wait();
    } catch (const af::cancelled_error& e) {
      seen = e.message();
      co_return 7;
    }
    co_return 0;
  });
  aft::poll(ioc);
  BOOST_TEST(t.cancel("swallow me"));
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST((seen == std::optional<std::string>("swallow me")));
  BOOST_TEST(!t.cancelled());
  BOOST_TEST(t.result() == 7);
  BOOST_TEST(t.cancelling() == 1); // asyncio: the request stays counted until uncancel()
  BOOST_TEST(!t.cancel("too late"));
}

BOOST_AUTO_TEST_CASE(reset_cancellation_state_lets_the_coroutine_keep_awaiting) {
  asio::io_context ioc;
  const af::future<int> first(ioc);
  const af::future<int> second(ioc);
  std::optional<af::task<int>> self;
  bool caught = false;
  int after_uncancel = -1;
  bool timer_completed = false;
  const af::task<int> t = af::create_task(ioc, [&]() -> asio::awaitable<int> {
    try {
      (void)co_await first.async_wait();
    } catch (const af::cancelled_error&) {
      caught = true;
    }
    co_await asio::this_coro::reset_cancellation_state();
    after_uncancel = self->uncancel();
    co_await aft::yield_once();
    co_await sleep_for(1ms); // a cancellable operation completes normally again
    timer_completed = true;
    co_return co_await second.async_wait() + 1;
  });
  self = t;
  aft::poll(ioc);
  BOOST_TEST(t.cancel("once"));
  BOOST_TEST(aft::run_until(ioc, [&] { return timer_completed; }));
  BOOST_TEST(caught);
  BOOST_TEST(after_uncancel == 0);
  BOOST_TEST(!t.done());
  second.set_result(41);
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST(!t.cancelled());
  BOOST_TEST(t.result() == 42);
  BOOST_TEST(t.cancelling() == 0);
  self.reset();
}

BOOST_AUTO_TEST_CASE(cancel_on_a_done_task_returns_false_and_changes_nothing) {
  asio::io_context ioc;
  const af::task<int> ok = af::create_task(ioc, value_after_yields(1, 0));
  const af::task<int> failed = af::create_task(ioc, fail_after_yields(0, "f"));
  const af::task<int> cancelled = af::create_task(ioc, value_after_yields(1, 0));
  BOOST_TEST(cancelled.cancel("c"));
  BOOST_TEST(aft::run_until(ioc, [&] { return ok.done() && failed.done() && cancelled.done(); }));
  BOOST_TEST(!ok.cancel("late"));
  BOOST_TEST(!failed.cancel("late"));
  BOOST_TEST(!cancelled.cancel("late"));
  aft::poll(ioc);
  BOOST_TEST(ok.cancelling() == 0);
  BOOST_TEST(failed.cancelling() == 0);
  BOOST_TEST(cancelled.cancelling() == 1);
  BOOST_TEST(ok.result() == 1);
  BOOST_TEST(aft::what_of(failed.exception()) == "f");
  BOOST_TEST((result_cancel_message(cancelled) == std::optional<std::string>("c")));
}

BOOST_AUTO_TEST_CASE(cancelling_counts_requests_and_uncancel_never_goes_below_zero) {
  asio::io_context ioc;
  const af::future<void> never(ioc);
  const af::task<void> t = af::create_task(ioc, wait_on(never));
  aft::poll(ioc);
  BOOST_TEST(t.cancelling() == 0);
  BOOST_TEST(t.uncancel() == 0);
  BOOST_TEST(t.cancelling() == 0);
  BOOST_TEST(t.cancel("m"));
  BOOST_TEST(t.cancel("m")); // still pending: the first request has not been delivered yet
  BOOST_TEST(t.cancel("m"));
  BOOST_TEST(t.cancelling() == 3);
  BOOST_TEST(t.uncancel() == 2);
  BOOST_TEST(t.cancelling() == 2);
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST(t.cancelled());
  BOOST_TEST(!t.cancel("m"));
  BOOST_TEST(t.cancelling() == 2);
  BOOST_TEST(t.uncancel() == 1);
  BOOST_TEST(t.uncancel() == 0);
  BOOST_TEST(t.uncancel() == 0);
}

BOOST_AUTO_TEST_CASE(cancel_through_a_future_copy_cancels_the_coroutine) {
  asio::io_context ioc;
  std::optional<bool> aborted_inside;
  const af::task<void> t = af::create_task(ioc, [&]() -> asio::awaitable<void> {
    try {
      co_await sleep_for(std::chrono::hours(1));
    } catch (const boost::system::system_error& e) {
      aborted_inside = e.code() == asio::error::operation_aborted;
      throw;
    }
  });
  aft::poll(ioc);
  const af::future<void> f = t;
  BOOST_TEST(f.cancel("copy"));
  BOOST_TEST(t.cancelling() == 1);
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST((aborted_inside == std::optional<bool>(true)));
  BOOST_TEST(f.cancelled());
  BOOST_TEST((result_cancel_message(f) == std::optional<std::string>("copy")));
}

BOOST_AUTO_TEST_CASE(cancel_from_a_foreign_thread_ends_the_task_cancelled) {
  asio::io_context ioc;
  const af::future<void> never(ioc);
  const af::task<void> t = af::create_task(ioc, wait_on(never));
  aft::poll(ioc);
  std::optional<bool> returned;
  aft::bounded_thread canceller([&, t] { returned = t.cancel("foreign"); });
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST(canceller.join_for());
  BOOST_TEST((returned == std::optional<bool>(true)));
  BOOST_TEST(t.cancelled());
  BOOST_TEST((result_cancel_message(t) == std::optional<std::string>("foreign")));
}

CO_TEST_CASE(awaiting_a_cancelled_task_throws_cancelled_error_with_its_message) {
  auto ex = co_await asio::this_coro::executor;
  const af::future<void> never(ex);
  const af::task<void> t = af::create_task(ex, wait_on(never));
  co_await aft::yield_once();
  BOOST_TEST(t.cancel("awaited"));
  std::optional<std::string> msg;
  try {
    co_await t.async_wait();
  } catch (const af::cancelled_error& e) {
    msg = e.message();
  }
  BOOST_TEST((msg == std::optional<std::string>("awaited")));
}

BOOST_AUTO_TEST_SUITE_END() // cancellation

// =======================================================================================
BOOST_AUTO_TEST_SUITE(names)

BOOST_AUTO_TEST_CASE(default_names_are_task_n_and_increase) {
  asio::io_context ioc;
  const af::task<int> a = af::create_task(ioc, value_after_yields(1, 0));
  const af::task<int> b = af::create_task(ioc, value_after_yields(1, 0));
  const af::task<int> c = af::create_task(ioc, value_after_yields(1, 0), "");
  BOOST_TEST(a.get_name() != b.get_name());
  const auto na = default_name_number(a.get_name());
  const auto nb = default_name_number(b.get_name());
  const auto nc = default_name_number(c.get_name()); // an empty name means "default"
  BOOST_TEST(na < nb);
  BOOST_TEST(nb < nc);
  BOOST_TEST(aft::run_until(ioc, [&] { return a.done() && b.done() && c.done(); }));
}

BOOST_AUTO_TEST_CASE(set_name_renames_and_old_references_stay_valid) {
  asio::io_context ioc;
  const af::task<int> t = af::create_task(ioc, value_after_yields(1, 1), "first");
  const std::string& old_ref = t.get_name();
  t.set_name("second");
  BOOST_TEST(t.get_name() == "second");
  BOOST_TEST(old_ref == "first"); // still readable (ASan checks it is not freed)
  const af::task<int> copy = t;
  BOOST_TEST(copy.get_name() == "second"); // the name belongs to the task, not the handle
  BOOST_TEST(run_until_done(ioc, t));
  t.set_name(std::string(200, 'n')); // renaming a done task is fine
  BOOST_TEST(copy.get_name() == std::string(200, 'n'));
  BOOST_TEST(old_ref == "first");
}

BOOST_AUTO_TEST_CASE(concurrent_rename_and_read) {
  asio::io_context ioc;
  const af::future<void> never(ioc);
  const af::task<void> t = af::create_task(ioc, wait_on(never), "n0");
  constexpr int renames = 300;
  std::latch start(2);
  std::atomic<int> bad_reads{0};
  std::vector<const std::string*> seen; // references kept, read again at the end
  // WORKAROUND(g++ 12 -O3): "n" + to_string(i) + string(40, '.') trips a false
  // -Wstringop-overflow (GCC bug 105329); the name is built step by step.
  const auto name_of = [](int i) {
    std::string n(1, 'n');
    n += std::to_string(i);
    n.append(40, '.');
    return n;
  };
  aft::bounded_thread renamer([&] {
    start.arrive_and_wait();
    for (int i = 1; i <= renames; ++i)
      t.set_name(name_of(i));
  });
  aft::bounded_thread reader([&] {
    start.arrive_and_wait();
    for (int i = 0; i < renames * 2; ++i) {
      const std::string& n = t.get_name();
      if (n.empty() || n[0] != 'n')
        bad_reads.fetch_add(1);
      seen.push_back(&n);
    }
  });
  BOOST_TEST(renamer.join_for());
  BOOST_TEST(reader.join_for());
  BOOST_TEST(bad_reads.load() == 0);
  for (const std::string* n : seen)
    BOOST_TEST((!n->empty() && (*n)[0] == 'n'));
  BOOST_TEST(t.get_name() == name_of(renames));
  t.cancel();
  BOOST_TEST(run_until_done(ioc, t));
}

BOOST_AUTO_TEST_SUITE_END() // names

// =======================================================================================
// A T without a default constructor (a socket, a handle to something that must exist): Asio's
// co_spawn and completions pass a T along with an exception, so a task boxes it and a waiter
// receives a std::optional<T>, engaged whenever there is no exception.
BOOST_AUTO_TEST_SUITE(not_default_constructible)

struct no_default {
  explicit no_default(int v) : value(v) {}
  no_default(no_default&&) = default;
  no_default& operator=(no_default&&) = default;
  int value;
};

asio::awaitable<no_default> make_no_default(int v) {
  co_await aft::yield_once();
  co_return no_default(v);
}

asio::awaitable<no_default> fail_no_default() {
  co_await aft::yield_once();
  throw std::runtime_error("no value");
}

static_assert(std::is_same_v<af::task<no_default>::completion_signature,
                             void(std::exception_ptr, std::optional<no_default>)>);
static_assert(std::is_same_v<af::future<int>::completion_signature, void(std::exception_ptr, int)>);

CO_TEST_CASE(a_task_of_a_type_without_default_constructor_gives_its_value) {
  auto ex = co_await asio::this_coro::executor;
  const af::task<no_default> t = af::create_task(ex, make_no_default(5));
  std::optional<no_default> v = co_await t.async_wait();
  BOOST_TEST_REQUIRE(v.has_value());
  BOOST_TEST(v->value == 5);
  // A second waiter of a move-only value gets "result already taken", as for any T.
  BOOST_CHECK_THROW((void)co_await t.async_wait(), af::invalid_state_error);
}

CO_TEST_CASE(its_failure_and_its_cancellation_reach_the_waiter) {
  auto ex = co_await asio::this_coro::executor;
  const af::task<no_default> failing = af::create_task(ex, fail_no_default());
  std::string what;
  try {
    (void)co_await failing.async_wait();
  } catch (const std::runtime_error& e) {
    what = e.what();
  }
  BOOST_TEST(what == "no value");

  const af::future<int> never(ex);
  const af::task<no_default> waiting =
      af::create_task(ex, [never]() -> asio::awaitable<no_default> {
        co_return no_default(co_await never.async_wait());
      });
  co_await aft::yield_once();
  BOOST_TEST(waiting.cancel("stop"));
  std::optional<std::string> message;
  try {
    (void)co_await waiting.async_wait();
  } catch (...) {
    message = aft::cancel_message(std::current_exception());
  }
  BOOST_TEST((message == std::optional<std::string>("stop")));
}

BOOST_AUTO_TEST_CASE(result_get_and_callbacks_give_the_plain_value) {
  asio::io_context ioc;
  const af::task<no_default> t = af::create_task(ioc, make_no_default(8));
  int seen = 0;
  t.add_done_callback([&](const af::future<no_default>& f) { seen = f.result().value; });
  BOOST_TEST_REQUIRE(aft::run_until(ioc, [&] { return t.done() && seen != 0; }));
  BOOST_TEST(t.result().value == 8);
  BOOST_TEST(seen == 8);
  BOOST_TEST(t.get().value == 8); // moved out
}

CO_TEST_CASE(timeout_and_with_task_group_over_such_a_type) {
  auto ex = co_await asio::this_coro::executor;
  const no_default a = co_await af::timeout(std::chrono::hours(1), make_no_default(2));
  BOOST_TEST(a.value == 2);
  const af::future<no_default> plain(ex);
  asio::post(ex, [plain] { plain.set_result(no_default(3)); });
  const std::optional<no_default> b = co_await plain.async_wait();
  BOOST_TEST(b->value == 3);
  // Move-only and not default-constructible, through the group's body task.
  const no_default c =
      co_await af::with_task_group(ex, [](af::task_group& tg) -> asio::awaitable<no_default> {
        const af::task<no_default> child = tg.create_task(make_no_default(6));
        std::optional<no_default> v = co_await child.async_wait();
        co_return std::move(*v);
      });
  BOOST_TEST(c.value == 6);
}

BOOST_AUTO_TEST_SUITE_END() // not_default_constructible

// =======================================================================================
BOOST_AUTO_TEST_SUITE(introspection)

BOOST_AUTO_TEST_CASE(all_tasks_lists_the_unfinished_tasks_of_the_context) {
  asio::io_context ioc;
  asio::io_context other;
  const af::future<void> gate(ioc);
  const af::future<void> other_gate(other);
  BOOST_TEST(af::all_tasks(ioc).empty());

  const af::task<void> alpha = af::create_task(ioc, wait_on(gate), "alpha");
  const af::task<void> beta = af::create_task(ioc, wait_on(gate), "beta");
  const af::task<void> gamma = af::create_task(ioc, wait_on(gate), "gamma");
  af::create_task(ioc, wait_on(gate), "handle dropped"); // still running: still listed
  const af::task<void> elsewhere = af::create_task(other, wait_on(other_gate), "elsewhere");
  BOOST_TEST(gamma.cancel());

  auto listed = tasks_by_name(ioc); // before the first step
  BOOST_TEST(listed.size() == 4u);
  BOOST_TEST(listed.count("alpha") == 1u);
  BOOST_TEST(listed.count("beta") == 1u);
  BOOST_TEST(listed.count("handle dropped") == 1u);
  BOOST_TEST_REQUIRE(listed.count("gamma") == 1u);
  BOOST_TEST(listed["gamma"].cancelling == 1);
  BOOST_TEST(!listed["gamma"].done);
  BOOST_TEST(listed["alpha"].cancelling == 0);
  BOOST_TEST(!listed["alpha"].done);

  BOOST_TEST(run_until_done(ioc, gamma));
  aft::poll(ioc);
  listed = tasks_by_name(ioc); // gamma finished: gone
  BOOST_TEST(listed.size() == 3u);
  BOOST_TEST(listed.count("gamma") == 0u);
  beta.set_name("beta renamed");
  listed = tasks_by_name(ioc);
  BOOST_TEST(listed.count("beta renamed") == 1u);

  const auto in_other = af::all_tasks(other);
  BOOST_TEST_REQUIRE(in_other.size() == 1u);
  BOOST_TEST(in_other[0].name == "elsewhere");

  gate.set_result();
  BOOST_TEST(aft::run_until(ioc, [&] { return alpha.done() && beta.done(); }));
  aft::poll(ioc);
  BOOST_TEST(af::all_tasks(ioc).empty());
  elsewhere.cancel();
  BOOST_TEST(run_until_done(other, elsewhere));
  BOOST_TEST(af::all_tasks(other).empty());
}

BOOST_AUTO_TEST_CASE(all_tasks_shows_the_cancelling_count_of_a_task_that_swallowed_it) {
  asio::io_context ioc;
  const af::future<void> first(ioc);
  const af::future<void> second(ioc);
  const af::task<void> t = af::create_task(
      ioc,
      [&]() -> asio::awaitable<void> {
        try {
          co_await first.async_wait();
        } catch (const af::cancelled_error&) {
        }
        co_await asio::this_coro::reset_cancellation_state();
        co_await second.async_wait();
      },
      "stubborn");
  aft::poll(ioc);
  BOOST_TEST(t.cancel());
  BOOST_TEST(aft::run_until(ioc, [&] { return first.done(); }));
  aft::poll(ioc);
  auto listed = af::all_tasks(ioc);
  BOOST_TEST_REQUIRE(listed.size() == 1u);
  BOOST_TEST(listed[0].name == "stubborn");
  BOOST_TEST(!listed[0].done);
  BOOST_TEST(listed[0].cancelling == 1);
  second.set_result();
  BOOST_TEST(run_until_done(ioc, t));
  BOOST_TEST(!t.cancelled());
}

BOOST_AUTO_TEST_CASE(current_task_inside_a_task_is_that_task) {
  asio::io_context ioc;
  std::vector<std::optional<af::task_info>> first_seen, second_seen;
  const auto nested = []() -> asio::awaitable<std::optional<af::task_info>> {
    co_await aft::yield_once();
    co_return af::current_task();
  };
  const auto body = [&](std::vector<std::optional<af::task_info>>* out) {
    return [out, nested]() -> asio::awaitable<void> {
      out->push_back(af::current_task());
      co_await aft::yield_once(); // the two tasks interleave
      out->push_back(af::current_task());
      co_await sleep_for(1ms);
      out->push_back(af::current_task());
      out->push_back(co_await nested()); // a plain awaitable called from the task
    };
  };
  const af::task<void> a = af::create_task(ioc, body(&first_seen), "first");
  const af::task<void> b = af::create_task(ioc, body(&second_seen), "second");
  std::optional<af::task_info> in_plain_handler = af::task_info{"sentinel", false, 0, {}};
  asio::post(ioc, [&] { in_plain_handler = af::current_task(); });
  BOOST_TEST(aft::run_until(ioc, [&] { return a.done() && b.done(); }));
  BOOST_TEST(first_seen.size() == 4u);
  for (const auto& info : first_seen) {
    BOOST_TEST_REQUIRE(info.has_value());
    BOOST_TEST(info->name == "first");
    BOOST_TEST(!info->done);
    BOOST_TEST(info->cancelling == 0);
  }
  BOOST_TEST(second_seen.size() == 4u);
  for (const auto& info : second_seen) {
    BOOST_TEST_REQUIRE(info.has_value());
    BOOST_TEST(info->name == "second");
  }
  BOOST_TEST(!in_plain_handler.has_value()); // a handler of the context is not a task
}

BOOST_AUTO_TEST_CASE(current_task_in_a_child_created_on_the_parents_executor_is_the_child) {
  // The child's strand runs inside the parent's strand: both strands are "running" in the
  // child's steps, and the innermost task is the current one.
  asio::io_context ioc;
  std::optional<af::task_info> in_parent_before, in_child, in_parent_after;
  const af::task<void> parent = af::create_task(
      ioc,
      [&]() -> asio::awaitable<void> {
        in_parent_before = af::current_task();
        const af::task<void> child = af::create_task(
            co_await asio::this_coro::executor,
            [&]() -> asio::awaitable<void> {
              co_await aft::yield_once();
              in_child = af::current_task();
            },
            "child");
        co_await child.async_wait();
        in_parent_after = af::current_task();
      },
      "parent");
  BOOST_TEST(run_until_done(ioc, parent));
  BOOST_TEST_REQUIRE(in_parent_before.has_value());
  BOOST_TEST(in_parent_before->name == "parent");
  BOOST_TEST_REQUIRE(in_child.has_value());
  BOOST_TEST(in_child->name == "child");
  BOOST_TEST_REQUIRE(in_parent_after.has_value());
  BOOST_TEST(in_parent_after->name == "parent");
}

BOOST_AUTO_TEST_CASE(all_tasks_lists_tasks_created_on_strands_and_thread_pools_by_context) {
  asio::io_context ioc;
  const af::future<void> gate(ioc);
  const af::task<void> on_strand = af::create_task(asio::make_strand(ioc), wait_on(gate), "s");
  const af::task<void> on_any =
      af::create_task(asio::any_io_executor(asio::make_strand(ioc)), wait_on(gate), "a");
  auto listed = tasks_by_name(ioc);
  BOOST_TEST(listed.size() == 2u);
  BOOST_TEST(listed.count("s") == 1u);
  BOOST_TEST(listed.count("a") == 1u);
  gate.set_result();
  BOOST_TEST(aft::run_until(ioc, [&] { return on_strand.done() && on_any.done(); }));

  asio::thread_pool pool(1);
  {
    const af::future<void> pool_gate(pool);
    const af::task<void> pooled = af::create_task(pool, wait_on(pool_gate), "p");
    const auto in_pool = af::all_tasks(pool);
    BOOST_TEST_REQUIRE(in_pool.size() == 1u);
    BOOST_TEST(in_pool[0].name == "p");
    BOOST_TEST(af::all_tasks(ioc).empty());
    pool_gate.set_result();
    BOOST_TEST(pooled.wait_for(aft::default_timeout));
  }
  pool.join();
}

BOOST_AUTO_TEST_CASE(current_task_outside_any_task_is_empty) {
  BOOST_TEST(!af::current_task().has_value());
  asio::io_context ioc;
  const af::future<void> gate(ioc);
  const af::task<void> t = af::create_task(ioc, wait_on(gate), "live");
  aft::poll(ioc);
  BOOST_TEST(!af::current_task().has_value()); // main, with a live task around
  std::optional<std::optional<af::task_info>> in_plain_coroutine;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        co_await aft::yield_once();
        in_plain_coroutine = af::current_task();
      },
      asio::detached);
  BOOST_TEST(aft::run_until(ioc, [&] { return in_plain_coroutine.has_value(); }));
  BOOST_TEST(!in_plain_coroutine->has_value());
  gate.set_result();
  BOOST_TEST(run_until_done(ioc, t));
}

BOOST_AUTO_TEST_CASE(all_tasks_handles_cancel_every_task_of_a_context) {
  // The shutdown pattern: cancel whatever runs, whatever its result type, then drain.
  asio::io_context ioc;
  const af::future<void> gate(ioc);
  const af::future<int> never(ioc);
  af::create_task(ioc, wait_on(gate), "void task");
  af::create_task(
      ioc, [never]() -> asio::awaitable<int> { co_return co_await never.async_wait(); },
      "int task");
  aft::poll(ioc);
  const auto listed = af::all_tasks(ioc);
  BOOST_TEST_REQUIRE(listed.size() == 2u);
  for (const af::task_info& t : listed) {
    BOOST_TEST(t.handle.valid());
    BOOST_TEST(t.handle.name() == t.name);
    BOOST_TEST(!t.handle.done());
    BOOST_TEST(t.handle.cancel("shutdown"));
    BOOST_TEST(t.handle.cancelling() == 1);
  }
  aft::poll(ioc);
  for (const af::task_info& t : listed) {
    BOOST_TEST(t.handle.done());
    BOOST_TEST(t.handle.cancelled());
    BOOST_TEST(!t.handle.cancel("again"));
  }
  BOOST_TEST(af::all_tasks(ioc).empty());
  BOOST_TEST(never.cancelled()); // the int task's await was cancelled with it
}

BOOST_AUTO_TEST_CASE(a_handle_refers_to_the_task_and_keeps_it_alive) {
  asio::io_context ioc;
  const af::future<void> gate(ioc);
  af::task_handle h;
  BOOST_TEST(!h.valid());
  BOOST_CHECK_THROW((void)h.name(), af::invalid_state_error);
  BOOST_CHECK_THROW((void)h.cancel(), af::invalid_state_error);
  {
    const af::task<void> t = af::create_task(ioc, wait_on(gate), "kept");
    const auto listed = af::all_tasks(ioc);
    BOOST_TEST_REQUIRE(listed.size() == 1u);
    h = listed[0].handle;
    BOOST_TEST((h == af::task_handle(t)));
    BOOST_TEST(!(h == af::task_handle(af::create_task(ioc, wait_on(gate)))));
    BOOST_TEST((af::task_handle(af::task<int>()) == af::task_handle()));
  }
  gate.set_result();
  aft::poll(ioc);
  // Every task<T> handle is gone: h alone holds the state (ASan checks these reads).
  BOOST_TEST(h.done());
  BOOST_TEST(!h.cancelled());
  BOOST_TEST(h.name() == "kept");
  h = af::task_handle();
  BOOST_TEST(!h.valid());
}

CO_TEST_CASE(current_task_gives_a_handle_to_the_running_task) {
  auto ex = co_await asio::this_coro::executor;
  std::optional<af::task_handle> inside;
  const af::task<void> t = af::create_task(ex, [&]() -> asio::awaitable<void> {
    inside = af::current_task().value().handle;
    co_return;
  });
  co_await t.async_wait();
  BOOST_TEST_REQUIRE(inside.has_value());
  BOOST_TEST((*inside == af::task_handle(t)));
  BOOST_TEST(inside->done());
}

BOOST_AUTO_TEST_CASE(all_tasks_races_with_tasks_finishing_and_dropped_on_other_threads) {
  // Handles are taken while tasks finish and lose their last handle on two context threads:
  // a listed task is always alive (TSan/ASan), and cancelling it through the handle is safe.
  asio::io_context ioc;
  constexpr int rounds = 2000;
  std::atomic<bool> spawned{false};
  std::size_t seen = 0;
  {
    aft::context_threads runners(ioc, 2);
    aft::bounded_thread spawner([&] {
      for (int i = 0; i < rounds; ++i)
        af::create_task(ioc, []() -> asio::awaitable<void> { co_await aft::yield_once(); });
      spawned.store(true);
    });
    const auto deadline = std::chrono::steady_clock::now() + aft::default_timeout;
    bool drained = false;
    while (!drained && std::chrono::steady_clock::now() < deadline) {
      const bool all_spawned = spawned.load();
      const auto listed = af::all_tasks(ioc);
      for (const af::task_info& t : listed) {
        ++seen;
        BOOST_TEST_REQUIRE(t.handle.valid());
        BOOST_TEST_REQUIRE(!t.handle.name().empty());
        if (seen % 7 == 0)
          (void)t.handle.cancel("race");
      }
      drained = all_spawned && listed.empty();
    }
    BOOST_TEST_REQUIRE(spawner.join_for());
    BOOST_TEST(drained);
  }
  BOOST_TEST_MESSAGE("handles taken: " << seen);
}

BOOST_AUTO_TEST_SUITE_END() // introspection

// =======================================================================================
BOOST_AUTO_TEST_SUITE(lost_exceptions)

BOOST_AUTO_TEST_CASE(failing_task_dropped_before_it_finished_is_reported_once) {
  aft::recording_exception_handler handler;
  asio::io_context ioc;
  bool finished = false;
  af::create_task(ioc, [&]() -> asio::awaitable<int> {
    co_await aft::yield_once();
    finished = true;
    throw std::runtime_error("lost in a task");
    co_return 0;
  }); // the handle dies at once
  BOOST_TEST(aft::run_until(ioc, [&] { return finished; }));
  aft::poll(ioc);
  aft::poll(ioc);
  BOOST_TEST_REQUIRE(handler.count() == 1u);
  const auto reports = handler.reports();
  BOOST_TEST(reports[0].what == "lost in a task");
  BOOST_TEST(aft::holds<std::runtime_error>(reports[0].error));
}

BOOST_AUTO_TEST_CASE(failing_task_dropped_after_it_finished_is_reported_once) {
  aft::recording_exception_handler handler;
  asio::io_context ioc;
  {
    const af::task<int> t = af::create_task(ioc, fail_after_yields(1, "later"));
    const af::task<int> copy = t;
    BOOST_TEST(run_until_done(ioc, t));
    aft::poll(ioc);
    BOOST_TEST(handler.count() == 0u); // handles are still alive
  }
  aft::poll(ioc);
  BOOST_TEST_REQUIRE(handler.count() == 1u);
  BOOST_TEST(handler.reports()[0].what == "later");
}

BOOST_AUTO_TEST_CASE(cancelled_tasks_are_never_reported) {
  aft::recording_exception_handler handler;
  {
    asio::io_context ioc;
    const af::future<void> never(ioc);
    {
      const af::task<void> before_start = af::create_task(ioc, wait_on(never));
      before_start.cancel("a");
      const af::task<void> awaiting_future = af::create_task(ioc, wait_on(never));
      const af::task<void> awaiting_timer = af::create_task(ioc, sleep_for(std::chrono::hours(1)));
      aft::poll(ioc);
      awaiting_future.cancel("b"); // cancelled_error escapes
      awaiting_timer.cancel("c");  // operation_aborted escapes after a request
    }
    aft::poll(ioc);
    aft::poll(ioc);
  }
  BOOST_TEST(handler.count() == 0u);
}

BOOST_AUTO_TEST_CASE(awaited_or_retrieved_failures_are_not_reported) {
  aft::recording_exception_handler handler;
  {
    asio::io_context ioc;
    int caught = 0;
    {
      const af::task<int> awaited = af::create_task(ioc, fail_after_yields(1, "awaited"));
      asio::co_spawn(
          ioc,
          [awaited, &caught]() -> asio::awaitable<void> {
            try {
              (void)co_await awaited.async_wait();
            } catch (const std::runtime_error&) {
              ++caught;
            }
          },
          asio::detached);
      const af::task<int> by_result = af::create_task(ioc, fail_after_yields(0, "result"));
      const af::task<int> by_exception = af::create_task(ioc, fail_after_yields(0, "exception"));
      const af::task<int> by_get = af::create_task(ioc, fail_after_yields(0, "get"));
      BOOST_TEST(aft::run_until(ioc, [&] {
        return caught == 1 && by_result.done() && by_exception.done() && by_get.done();
      }));
      BOOST_CHECK_THROW(by_result.result(), std::runtime_error);
      BOOST_TEST(static_cast<bool>(by_exception.exception()));
      BOOST_CHECK_THROW((void)by_get.get(), std::runtime_error);
    }
    aft::poll(ioc);
  }
  BOOST_TEST(handler.count() == 0u);
}

BOOST_AUTO_TEST_CASE(throwing_copy_of_the_result_into_the_task_fails_the_task) {
  // The coroutine's result is copied into the task's state last. If that copy throws, the
  // task fails with the exception: it never stays pending, and run() does not throw.
  const auto body = [](aft::copy_control& control) {
    return [&control]() -> asio::awaitable<aft::throwing_copy> {
      co_return aft::throwing_copy(control, 1);
    };
  };
  // First count the copies a result makes on its way into the state...
  int copies_on_the_way = 0;
  {
    asio::io_context ioc;
    aft::copy_control control;
    const af::task<aft::throwing_copy> t = af::create_task(ioc, body(control));
    BOOST_TEST_REQUIRE(run_until_done(ioc, t));
    BOOST_TEST_REQUIRE(t.result().value() == 1);
    copies_on_the_way = control.copies;
  }
  BOOST_TEST_REQUIRE(copies_on_the_way >= 1);
  // ... then let all but the last one, the copy into the state, succeed.
  asio::io_context ioc;
  aft::copy_control control;
  control.fail_after(copies_on_the_way - 1);
  const af::task<aft::throwing_copy> t = af::create_task(ioc, body(control));
  bool done = false;
  const std::exception_ptr escaped = run_until_done_catching(ioc, t, done);
  BOOST_TEST(!escaped, aft::describe(escaped));
  BOOST_TEST(done);
  BOOST_TEST(aft::holds<aft::copy_error>(aft::thrown_by([&] { (void)t.result(); })));
  BOOST_TEST(control.copies == copies_on_the_way - 1);
}

BOOST_AUTO_TEST_SUITE_END() // lost_exceptions

// =======================================================================================
BOOST_AUTO_TEST_SUITE(lifetime)

BOOST_AUTO_TEST_CASE(dropping_the_last_handle_of_a_running_task_lets_it_run_on) {
  asio::io_context ioc;
  const af::future<void> gate(ioc);
  bool side_effect = false;
  {
    const af::task<void> t = af::create_task(ioc, [&, gate]() -> asio::awaitable<void> {
      co_await gate.async_wait();
      co_await aft::yield_once();
      side_effect = true;
    });
    aft::poll(ioc); // suspended on the gate
  }                 // the last handle dies here: must neither block nor terminate
  BOOST_TEST(!side_effect);
  gate.set_result();
  BOOST_TEST(aft::run_until(ioc, [&] { return side_effect; }));
}

BOOST_AUTO_TEST_CASE(dropping_the_last_handle_inside_its_own_coroutine) {
  aft::instance_counters counters;
  asio::io_context ioc;
  std::optional<af::task<void>> holder;
  bool side_effect = false;
  holder = af::create_task(ioc, [&, c = aft::counted(counters, 1)]() -> asio::awaitable<void> {
    co_await aft::yield_once();
    holder.reset(); // the only outside handle
    co_await aft::yield_once();
    side_effect = c.value() == 1;
  });
  BOOST_TEST(aft::run_until(ioc, [&] { return side_effect; }));
  aft::poll(ioc);
  BOOST_TEST(counters.live.load() == 0);
}

BOOST_AUTO_TEST_CASE(destroying_the_context_destroys_a_suspended_task_and_cancels_it) {
  aft::instance_counters counters;
  bool resumed = false;
  af::task<void> t; // outlives the context
  {
    asio::io_context ioc;
    const af::future<void> never(ioc);
    t = af::create_task(
        ioc, [never, &resumed, c = aft::counted(counters, 1)]() -> asio::awaitable<void> {
          aft::counted in_frame(c);
          co_await never.async_wait();
          resumed = true;
        });
    aft::poll(ioc);
    BOOST_TEST(counters.live.load() == 2);
    BOOST_TEST(!t.done());
  }
  BOOST_TEST(counters.live.load() == 0); // frame and callable destroyed (ASan: no leak)
  BOOST_TEST(!resumed);
  BOOST_TEST(t.done());
  BOOST_TEST(t.cancelled());
  BOOST_CHECK_THROW(t.result(), af::cancelled_error);
  t = af::task<void>(); // the last handle dies after its context
}

BOOST_AUTO_TEST_CASE(destroying_the_context_before_a_task_started) {
  aft::instance_counters counters;
  bool body_ran = false;
  af::task<int> t;
  {
    asio::io_context ioc;
    t = af::create_task(ioc, [&body_ran, c = aft::counted(counters, 1)]() -> asio::awaitable<int> {
      body_ran = true;
      co_return c.value();
    });
  }
  BOOST_TEST(counters.live.load() == 0);
  BOOST_TEST(!body_ran);
  BOOST_TEST(t.done());
  BOOST_TEST(t.cancelled());
  t = af::task<int>();
}

BOOST_AUTO_TEST_CASE(destroying_the_context_with_a_task_awaited_and_given_callbacks) {
  aft::instance_counters counters;
  int invoked = 0;
  {
    asio::io_context ioc;
    const af::future<void> never(ioc);
    const af::task<void> t = af::create_task(ioc, wait_on(never));
    asio::co_spawn(
        ioc,
        [t, &invoked, &counters]() -> asio::awaitable<void> {
          aft::counted in_frame(counters, 1);
          co_await t.async_wait();
          ++invoked;
        },
        asio::detached);
    t.add_done_callback([&invoked, c = aft::counted(counters, 2)](af::future<void>) { ++invoked; });
    t.async_wait([&invoked, c = aft::counted(counters, 3)](std::exception_ptr) { ++invoked; });
    aft::poll(ioc);
    BOOST_TEST(counters.live.load() == 3);
  }
  BOOST_TEST(counters.live.load() == 0);
  BOOST_TEST(invoked == 0); // nothing runs after its context died
}

BOOST_AUTO_TEST_CASE(create_task_on_a_shut_down_context_throws) {
  aft::closable_context ctx;
  const af::future<int> seen(ctx); // the library knows the context
  ctx.shutdown();
  bool ran = false;
  BOOST_CHECK_THROW(af::create_task(ctx,
                                    [&]() -> asio::awaitable<void> {
                                      ran = true;
                                      co_return;
                                    }),
                    af::invalid_state_error);
  BOOST_CHECK_THROW(af::create_task(ctx.get_executor(), set_flag(&ran)), af::invalid_state_error);
  BOOST_CHECK_THROW(af::create_task(asio::any_io_executor(ctx.get_executor()), set_flag(&ran)),
                    af::invalid_state_error);
  BOOST_CHECK_THROW(af::run_coroutine_threadsafe(set_flag(&ran), ctx.get_executor()),
                    af::invalid_state_error);
  BOOST_TEST(!ran);
  BOOST_TEST(af::all_tasks(ctx).empty());
}

BOOST_AUTO_TEST_SUITE_END() // lifetime

// =======================================================================================
BOOST_AUTO_TEST_SUITE(threads)

BOOST_AUTO_TEST_CASE(run_coroutine_threadsafe_get_returns_the_value) {
  asio::io_context ioc;
  aft::context_threads runner(ioc, 1);
  const af::task<int> h =
      af::run_coroutine_threadsafe(value_after_yields(21, 3), ioc.get_executor());
  BOOST_TEST(h.get() == 21); // blocks this (foreign) thread
  BOOST_TEST(h.done());
}

BOOST_AUTO_TEST_CASE(run_coroutine_threadsafe_wait_for_is_false_while_pending) {
  asio::io_context ioc;
  const af::future<int> gate(ioc);
  aft::context_threads runner(ioc, 1);
  const af::task<int> h = af::run_coroutine_threadsafe(value_of(gate), ioc.get_executor());
  BOOST_TEST(!h.wait_for(1ms));
  BOOST_TEST(!h.wait_for(0ms));
  BOOST_TEST(!h.done());
  gate.set_result(12);
  BOOST_TEST(h.wait_for(aft::default_timeout));
  BOOST_TEST(h.get() == 12);
}

BOOST_AUTO_TEST_CASE(run_coroutine_threadsafe_cancel_from_the_foreign_thread) {
  asio::io_context ioc;
  const af::future<void> never(ioc);
  aft::context_threads runner(ioc, 1);
  auto reached = std::make_shared<std::promise<void>>();
  auto reached_future = reached->get_future();
  const af::task<void> h =
      af::run_coroutine_threadsafe(signal_then_wait_on(reached, never), ioc.get_executor());
  BOOST_TEST_REQUIRE((reached_future.wait_for(aft::default_timeout) == std::future_status::ready));
  BOOST_TEST(!h.wait_for(1ms));
  BOOST_TEST(h.cancel("bye"));
  BOOST_TEST_REQUIRE(h.wait_for(aft::default_timeout));
  BOOST_TEST(h.cancelled());
  BOOST_TEST((result_cancel_message(h) == std::optional<std::string>("bye")));
  BOOST_TEST(never.cancelled());
}

BOOST_AUTO_TEST_CASE(run_coroutine_threadsafe_from_several_threads) {
  asio::io_context ioc;
  aft::context_threads runner(ioc, 2);
  constexpr int threads = 4;
  constexpr int per_thread = 50;
  std::atomic<int> sum{0};
  {
    std::vector<std::unique_ptr<aft::bounded_thread>> submitters;
    for (int s = 0; s < threads; ++s) {
      submitters.push_back(std::make_unique<aft::bounded_thread>([&, s] {
        for (int i = 0; i < per_thread; ++i)
          sum += af::run_coroutine_threadsafe(value_after_yields(s * per_thread + i, i % 3),
                                              ioc.get_executor())
                     .get();
      }));
    }
    for (auto& t : submitters)
      BOOST_TEST(t->join_for());
  }
  constexpr int n = threads * per_thread;
  BOOST_TEST(sum.load() == n * (n - 1) / 2);
}

BOOST_AUTO_TEST_CASE(get_on_a_thread_running_the_tasks_context_throws) {
  asio::io_context ioc;
  const af::future<int> gate(ioc);
  const af::task<int> t = af::create_task(ioc, value_of(gate));
  const af::future<int> other_gate(ioc);
  const af::task<int> other = af::create_task(ioc, value_of(other_gate));
  aft::poll(ioc);
  std::optional<bool> get_threw, wait_for_threw, wait_threw, inside_task_threw;
  {
    // If a blocking call wrongly blocks, release it from another thread: set the gates and
    // run the context there until the tasks are done (the case then fails, not hangs).
    aft::watchdog release([&] {
      gate.try_set_result(-1);
      other_gate.try_set_result(-1);
      aft::run_until(ioc, [&] { return t.done() && other.done(); });
    });
    const auto check = [](auto f) {
      try {
        f();
        return false;
      } catch (const af::invalid_state_error&) {
        return true;
      }
    };
    asio::post(ioc, [&] {
      get_threw = check([&] { (void)t.get(); });
      wait_for_threw = check([&] { (void)t.wait_for(aft::default_timeout); });
      wait_threw = check([&] { t.wait(); });
    });
    // From inside another task of the same context.
    const af::task<void> blocker = af::create_task(ioc, [&]() -> asio::awaitable<void> {
      inside_task_threw = check([&] { (void)t.get(); });
      co_return;
    });
    BOOST_TEST(aft::run_until(ioc, [&] { return blocker.done() && get_threw.has_value(); }));
    BOOST_TEST(!release.fired());
  }
  BOOST_TEST((get_threw == std::optional<bool>(true)));
  BOOST_TEST((wait_for_threw == std::optional<bool>(true)));
  BOOST_TEST((wait_threw == std::optional<bool>(true)));
  BOOST_TEST((inside_task_threw == std::optional<bool>(true)));
  other_gate.try_set_result(0);
  gate.try_set_result(5);
  BOOST_TEST(aft::run_until(ioc, [&] { return t.done() && other.done(); }));
  BOOST_TEST(t.get() == 5); // main does not run the context now: allowed
}

BOOST_AUTO_TEST_CASE(get_on_a_thread_running_the_context_of_a_threadsafe_task_throws) {
  asio::io_context ioc;
  const af::future<int> gate(ioc);
  // Two runners: if get() wrongly blocked one of them, the other could still finish the task
  // once the watchdog sets the gate.
  aft::context_threads runners(ioc, 2);
  const af::task<int> h = af::run_coroutine_threadsafe(value_of(gate), ioc.get_executor());
  aft::watchdog release([gate] { gate.try_set_result(-1); });
  std::promise<bool> threw;
  asio::post(ioc, [&] {
    try {
      (void)h.get();
      threw.set_value(false);
    } catch (const af::invalid_state_error&) {
      threw.set_value(true);
    }
  });
  auto result = threw.get_future();
  BOOST_TEST_REQUIRE((result.wait_for(2 * aft::default_timeout) == std::future_status::ready));
  BOOST_TEST(result.get());
  BOOST_TEST(!release.fired());
  gate.try_set_result(3);
  BOOST_TEST(h.get() == 3);
}

BOOST_AUTO_TEST_CASE(the_tasks_executor_stays_usable_after_the_task_is_gone) {
  // A timer made on `this_coro::executor` outlives its task (as a socket accepted in one task
  // and handed to another would): waiting on it later must work, outside any task.
  asio::io_context ioc;
  std::optional<asio::steady_timer> timer;
  {
    af::task<void> t = af::create_task(ioc, [&]() -> asio::awaitable<void> {
      timer.emplace(co_await asio::this_coro::executor);
      co_return;
    });
    BOOST_TEST(run_until_done(ioc, t));
  } // last handle gone: the task's state is destroyed
  // Create other tasks meanwhile, so that the dead task's gate is likely reused.
  for (int i = 0; i < 3; ++i) {
    const af::task<int> other = af::create_task(ioc, value_after_yields(i, 1));
    BOOST_TEST(run_until_done(ioc, other));
  }
  BOOST_TEST_REQUIRE(timer.has_value());
  std::optional<boost::system::error_code> waited;
  std::optional<std::optional<af::task_info>> current_inside;
  timer->expires_after(1ms);
  timer->async_wait([&](boost::system::error_code ec) {
    waited = ec;
    current_inside = af::current_task();
  });
  BOOST_TEST(aft::run_until(ioc, [&] { return waited.has_value(); }));
  BOOST_TEST((waited == std::optional<boost::system::error_code>(boost::system::error_code{})));
  // Not inside any task: the one the executor belonged to is gone.
  BOOST_TEST_REQUIRE(current_inside.has_value());
  BOOST_TEST(!current_inside->has_value());
}

BOOST_AUTO_TEST_CASE(tasks_on_strands_of_a_multi_threaded_context_cancelled_from_outside) {
  // A strand executor does not fit any_io_executor's small buffer: the task's executor then
  // holds it type-erased on the heap. Many such tasks, their steps on two threads, cancelled
  // from this one: each ends once, cancelled or with its value.
  constexpr int n = 500;
  asio::io_context ioc;
  aft::context_threads runners(ioc, 2);
  std::vector<af::task<int>> tasks;
  std::vector<af::future<int>> gates;
  for (int i = 0; i < n; ++i) {
    gates.emplace_back(ioc);
    tasks.push_back(af::create_task(asio::make_strand(ioc), value_of(gates.back())));
  }
  for (int i = 0; i < n; ++i) {
    if (i % 2 == 0)
      tasks[static_cast<std::size_t>(i)].cancel("stop");
    else
      gates[static_cast<std::size_t>(i)].set_result(i);
  }
  int cancelled = 0, valued = 0;
  for (int i = 0; i < n; ++i) {
    const af::task<int>& t = tasks[static_cast<std::size_t>(i)];
    BOOST_TEST_REQUIRE(t.wait_for(aft::default_timeout));
    if (t.cancelled())
      ++cancelled;
    else if (t.result() == i)
      ++valued;
  }
  BOOST_TEST(cancelled == n / 2);
  BOOST_TEST(valued == n / 2);
  for (auto& g : gates)
    g.try_set_result(-1); // the cancelled tasks' gates: nobody waits any more
}

BOOST_AUTO_TEST_CASE(cancel_while_functions_posted_to_the_task_run_on_other_threads) {
  // Readers of a task's gate do not exclude each other: functions posted to the task's
  // executor run concurrently with its coroutine on a multi-threaded context. A cancel from
  // a foreign thread must still reach the coroutine, through the last of them to leave.
  constexpr int rounds = 300;
  asio::io_context ioc;
  aft::context_threads runners(ioc, 2);
  std::atomic<int> cancelled{0};
  std::atomic<int> posted_ran{0};
  for (int r = 0; r < rounds; ++r) {
    const af::future<void> never(ioc);
    auto reached = std::make_shared<std::promise<void>>();
    auto reached_future = reached->get_future();
    const af::task<void> t = af::run_coroutine_threadsafe(
        [](af::future<void> f, std::shared_ptr<std::promise<void>> reached,
           std::atomic<int>* ran) -> asio::awaitable<void> {
          const auto ex = co_await asio::this_coro::executor;
          for (int i = 0; i < 8; ++i)
            asio::post(ex, [ran] { ran->fetch_add(1, std::memory_order_relaxed); });
          reached->set_value();
          co_await f.async_wait();
        }(never, reached, &posted_ran),
        ioc.get_executor());
    BOOST_TEST_REQUIRE(
        (reached_future.wait_for(aft::default_timeout) == std::future_status::ready));
    t.cancel("stop");
    BOOST_TEST_REQUIRE(t.wait_for(aft::default_timeout));
    if (t.cancelled())
      ++cancelled;
  }
  BOOST_TEST(cancelled.load() == rounds);
}

// ---------------------------------------------------------------------------------------
// The stress bar: at least 10k tasks on a 2-thread io_context, cancelled from 2
// foreign threads at random moments (before their first step, while they await, racing
// their completion). Each task ends exactly once, consistently with what it did.
#if defined(__SANITIZE_THREAD__)
constexpr std::size_t stress_tasks = 10'000;
#else
constexpr std::size_t stress_tasks = 40'000;
#endif

BOOST_AUTO_TEST_CASE(tasks_cancelled_from_foreign_threads_at_random_moments_end_exactly_once) {
  // Kinds (i % 5):
  //   0 awaits a timer of random short duration (0..20 ms), then returns i
  //   1 awaits a future that a setter thread resolves, then returns i
  //   2 yields a few times, then returns i (races cancellation with completion)
  //   3 awaits a timer, then throws runtime_error
  //   4 creates a child task (a timer) and awaits it: a cancel reaches the child through it
  // Outcome codes: 1 value i, 2 cancelled, 3 the planned failure, -1 anything else.
  constexpr std::size_t n = stress_tasks;
  aft::recording_exception_handler lost;
  aft::instance_counters counters;
  std::vector<std::atomic<int>> ends(n);
  std::vector<std::atomic<int>> outcome(n);
  std::vector<std::atomic<bool>> started(n);
  std::atomic<std::size_t> progressed{0}; // tasks that started their body or ended without
  std::atomic<std::size_t> total{0};
  std::atomic<std::size_t> cancels_won{0};
  std::promise<void> all_ended;
  std::atomic<std::size_t> created{0};
  bool finished = false;
  std::size_t bad_ends = 0, bad_outcomes = 0, cancelled_without_request = 0, not_done = 0;
  std::size_t cancelled_count = 0, cancelled_before_start = 0;
  std::array<std::size_t, 5> requested_but_not_cancelled{}; // by kind: raced completion
  {
    asio::io_context ioc;
    std::vector<af::task<aft::counted>> tasks(n);
    std::vector<af::future<int>> gates;
    gates.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
      gates.emplace_back(ioc);
    std::vector<int> delay_us(n);
    {
      std::mt19937 rng(12345);
      std::uniform_int_distribution<int> d(0, 20000);
      for (auto& d_us : delay_us)
        d_us = d(rng);
    }

    aft::context_threads runners(ioc, 2);
    std::latch start(4); // main, 2 cancellers, setter
    const auto wait_created = [&](std::size_t at_least) {
      while (created.load(std::memory_order_acquire) < at_least)
        std::this_thread::yield();
    };
    std::vector<std::thread> helpers;
    for (int c = 0; c < 2; ++c) {
      // Canceller c takes the tasks of its parity: 60% of them get a cancel once a random
      // number (0..255) of later tasks has been created, so the cancel lands before the
      // first step, while the task awaits, or as it completes. One step in ten also cancels
      // a random earlier task (both cancellers then race on it), one in six the newest task
      // (most often before its first step).
      helpers.emplace_back([&, c] {
        std::mt19937 rng(static_cast<unsigned>(777 + c));
        start.arrive_and_wait();
        for (std::size_t i = static_cast<std::size_t>(c); i < n; i += 2) {
          if (rng() % 5 < 3) {
            wait_created(std::min<std::size_t>(n, i + 1 + rng() % 256));
            if (tasks[i].cancel("stress"))
              cancels_won.fetch_add(1, std::memory_order_relaxed);
          }
          const std::size_t limit = created.load(std::memory_order_acquire);
          if (limit > 0 && rng() % 10 == 0 && tasks[rng() % limit].cancel("stress"))
            cancels_won.fetch_add(1, std::memory_order_relaxed);
          if (limit > 0 && rng() % 6 == 0 && tasks[limit - 1].cancel("stress")) // likely unstarted
            cancels_won.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    helpers.emplace_back([&] {
      start.arrive_and_wait();
      for (std::size_t i = 1; i < n; i += 5) {
        wait_created(i + 1);
        gates[i].try_set_result(static_cast<int>(i)); // may have been cancelled
      }
    });

    start.arrive_and_wait();
    const auto pacing_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (std::size_t i = 0; i < n; ++i) {
      // Keep at most 64 tasks waiting for their first step, so that the cancels (placed 0..255
      // creations later) land on tasks in every stage, not mostly on unstarted ones.
      while (i > progressed.load(std::memory_order_acquire) + 64 &&
             std::chrono::steady_clock::now() < pacing_deadline)
        std::this_thread::yield();
      const int kind = static_cast<int>(i % 5);
      const auto delay = std::chrono::microseconds(delay_us[i]);
      tasks[i] = af::create_task(ioc,
                                 [i, kind, delay, gate = gates[i], &counters, &started,
                                  &progressed]() -> asio::awaitable<aft::counted> {
                                   started[i].store(true, std::memory_order_relaxed);
                                   progressed.fetch_add(1, std::memory_order_release);
                                   aft::counted in_frame(counters, static_cast<int>(i));
                                   switch (kind) {
                                   case 0:
                                     co_await sleep_for(delay);
                                     break;
                                   case 1:
                                     (void)co_await gate.async_wait();
                                     break;
                                   case 2:
                                     co_await aft::yield_n(static_cast<int>(i % 3));
                                     break;
                                   case 3:
                                     co_await sleep_for(delay);
                                     throw std::runtime_error("planned");
                                   default: {
                                     const af::task<void> child = af::create_task(
                                         co_await asio::this_coro::executor, sleep_for(delay));
                                     co_await child.async_wait();
                                     break;
                                   }
                                   }
                                   co_return aft::counted(counters, static_cast<int>(i));
                                 });
      tasks[i].add_done_callback([&, i, kind](af::future<aft::counted> f) {
        int code = -1;
        if (f.cancelled()) {
          code = 2;
        } else if (const std::exception_ptr e = f.exception()) {
          code = kind == 3 && aft::what_of(e) == "planned" ? 3 : -1;
        } else {
          code = kind != 3 && f.result().value() == static_cast<int>(i) ? 1 : -1;
        }
        if (!started[i].load(std::memory_order_relaxed))
          progressed.fetch_add(1, std::memory_order_release);
        outcome[i].store(code, std::memory_order_relaxed);
        ends[i].fetch_add(1, std::memory_order_relaxed);
        if (total.fetch_add(1, std::memory_order_acq_rel) + 1 == n)
          all_ended.set_value();
      });
      created.store(i + 1, std::memory_order_release);
    }
    for (auto& h : helpers)
      h.join();

    // Bounded wait for every task to end (a hang guard, not a timing assertion).
    finished =
        all_ended.get_future().wait_for(std::chrono::seconds(120)) == std::future_status::ready;
    for (std::size_t i = 0; i < n; ++i) {
      if (ends[i].load() != 1)
        ++bad_ends;
      const int code = outcome[i].load();
      if (code < 0)
        ++bad_outcomes;
      if (!tasks[i].done()) {
        ++not_done;
        continue;
      }
      if (tasks[i].cancelled()) {
        ++cancelled_count;
        if (!started[i].load(std::memory_order_relaxed))
          ++cancelled_before_start;
        if (tasks[i].cancelling() < 1)
          ++cancelled_without_request; // nothing else cancels these tasks
      } else if (tasks[i].cancelling() > 0) {
        ++requested_but_not_cancelled[i % 5];
      }
    }
    // Leaving the scope stops the runners, then destroys the tasks and the context.
  }
  BOOST_TEST(finished);
  BOOST_TEST(total.load() == n);
  BOOST_TEST(bad_ends == 0u);
  BOOST_TEST(bad_outcomes == 0u);
  BOOST_TEST(not_done == 0u);
  BOOST_TEST(cancelled_without_request == 0u);
  BOOST_TEST(cancelled_count <= cancels_won.load());
  BOOST_TEST(counters.live.load() == 0); // no frame, value or callable leaked
  BOOST_TEST(lost.count() == 0u);        // failures were retrieved, cancellations never count
  BOOST_TEST_MESSAGE(
      "stress: " << n << " tasks, " << cancels_won.load() << " cancels won, " << cancelled_count
                 << " ended cancelled (" << cancelled_before_start
                 << " before their first step); requested but "
                 << "ended otherwise, by kind: " << requested_but_not_cancelled[0] << " "
                 << requested_but_not_cancelled[1] << " " << requested_but_not_cancelled[2] << " "
                 << requested_but_not_cancelled[3] << " " << requested_but_not_cancelled[4]);
}

BOOST_AUTO_TEST_SUITE_END() // threads

BOOST_AUTO_TEST_SUITE_END() // task_
