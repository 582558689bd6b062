// Tests for <asio_futures/future.hpp>: future<T>.
#include <asio_futures/future.hpp>

#include "support/checks.hpp"
#include "support/co_test.hpp"
#include "support/tracking.hpp"

#include <asio_futures/gather.hpp>
#include <asio_futures/shield.hpp>
#include <asio_futures/use_future.hpp>
#include <asio_futures/wait.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/experimental/promise.hpp>
#include <boost/asio/experimental/use_promise.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/spawn.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/version.hpp>
#include <boost/test/unit_test.hpp>
#if BOOST_ASIO_VERSION >= 102800
#include <boost/asio/bind_immediate_executor.hpp>
#endif

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <future>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

namespace asio = boost::asio;
namespace af = asio_futures;
namespace aft = asio_futures_test;

using namespace std::chrono_literals;

namespace {

// ---------------------------------------------------------------------------------------
// Local helpers (the shared ones come from support/checks.hpp).

using aft::cancel_message;
using aft::closable_context;
using aft::holds;
using aft::recording_exception_handler;
using aft::thrown_by;
using aft::watchdog;
using aft::what_of;

/// Records the completions of a callback-token waiter (`void(std::exception_ptr, T)`).
template <class T> struct outcome {
  int calls = 0;
  bool ran_inline = false;
  std::exception_ptr error;
  std::optional<T> value;

  auto handler() {
    return [this](std::exception_ptr e, T v) {
      ++calls;
      ran_inline = ran_inline || aft::inside_call::active();
      error = std::move(e);
      if (!error)
        value.emplace(std::move(v));
    };
  }
};

template <> struct outcome<void> {
  int calls = 0;
  bool ran_inline = false;
  std::exception_ptr error;

  auto handler() {
    return [this](std::exception_ptr e) {
      ++calls;
      ran_inline = ran_inline || aft::inside_call::active();
      error = std::move(e);
    };
  }
};

// ---------------------------------------------------------------------------------------
// Compile-time contract.

using int_callback = std::function<void(std::exception_ptr, int)>;

static_assert(sizeof(af::future<int>) == sizeof(void*), "the handle is one pointer");
static_assert(af::is_future<af::future<int>>::value && !af::is_future<int>::value);
static_assert(sizeof(af::future<void>) == sizeof(void*));
static_assert(std::is_nothrow_default_constructible_v<af::future<int>>);
static_assert(std::is_copy_constructible_v<af::future<std::unique_ptr<int>>>);
static_assert(std::is_nothrow_move_constructible_v<af::future<int>>);
static_assert(std::is_constructible_v<af::future<int>, asio::any_io_executor>);
static_assert(std::is_constructible_v<af::future<int>, asio::io_context&>);
static_assert(!std::is_convertible_v<asio::any_io_executor, af::future<int>>, "explicit");
static_assert(!std::is_convertible_v<asio::io_context&, af::future<int>>, "explicit");
static_assert(
    std::is_same_v<decltype(std::declval<const af::future<int>&>().result()), const int&>);
static_assert(std::is_same_v<decltype(std::declval<const af::future<void>&>().result()), void>);
static_assert(std::is_same_v<decltype(std::declval<const af::future<int>&>().get()), int>);
static_assert(std::is_same_v<decltype(std::declval<const af::future<int>&>().exception()),
                             std::exception_ptr>);
static_assert(std::is_same_v<decltype(std::declval<const af::future<int>&>().get_executor()),
                             asio::any_io_executor>);
static_assert(std::is_same_v<decltype(std::declval<const af::future<int>&>().add_done_callback(
                                 [](af::future<int>) {})),
                             af::callback_id>);
static_assert(std::is_copy_constructible_v<af::callback_id>);
static_assert(std::is_same_v<decltype(std::declval<const af::future<int>&>().remove_done_callback(
                                 af::callback_id{})),
                             std::size_t>);
// Completion signatures, as deduced by Asio.
static_assert(std::is_same_v<asio::completion_signature_of_t<af::future<int>>,
                             void(std::exception_ptr, int)>);
static_assert(
    std::is_same_v<asio::completion_signature_of_t<af::future<void>>, void(std::exception_ptr)>);
static_assert(std::is_same_v<asio::completion_signature_of_t<af::future<af::future<int>>>,
                             void(std::exception_ptr, int)>);
static_assert(asio::completion_token_for<int_callback, void(std::exception_ptr, int)>);
// The default token is use_awaitable: co_await f.async_wait() yields T.
static_assert(std::is_same_v<decltype(std::declval<const af::future<int>&>().async_wait()),
                             asio::awaitable<int>>);
static_assert(std::is_same_v<decltype(std::declval<const af::future<void>&>().async_wait()),
                             asio::awaitable<void>>);
static_assert(
    std::is_same_v<decltype(std::declval<const af::future<af::future<int>>&>().async_wait()),
                   asio::awaitable<int>>);
static_assert(std::is_same_v<decltype(std::declval<const af::future<af::future<int>>&>().result()),
                             const af::future<int>&>);
static_assert(std::is_same_v<decltype(std::declval<const af::future<af::future<int>>&>().unwrap()),
                             af::future<int>>);
// then: F(T)->R, F(T)->future<R> flattened, F() for void, R may be void.
static_assert(std::is_same_v<decltype(std::declval<const af::future<int>&>().then([](int v) {
                               return std::to_string(v);
                             })),
                             af::future<std::string>>);
static_assert(std::is_same_v<decltype(std::declval<const af::future<int>&>().then([](int) {})),
                             af::future<void>>);
static_assert(std::is_same_v<decltype(std::declval<const af::future<int>&>().then([](int) {
                               return af::future<double>();
                             })),
                             af::future<double>>);
static_assert(
    std::is_same_v<decltype(std::declval<const af::future<void>&>().then([] { return 1; })),
                   af::future<int>>);
// Helpers.
static_assert(
    std::is_same_v<decltype(af::make_ready_future(std::declval<asio::any_io_executor>(), 1)),
                   af::future<int>>);
static_assert(std::is_same_v<decltype(af::make_ready_future(std::declval<asio::any_io_executor>())),
                             af::future<void>>);
static_assert(std::is_same_v<decltype(af::make_exceptional_future<int>(
                                 std::declval<asio::any_io_executor>(), std::exception_ptr())),
                             af::future<int>>);
static_assert(std::is_same_v<
              decltype(af::make_cancelled_future<int>(std::declval<asio::any_io_executor>(), "x")),
              af::future<int>>);

} // namespace

BOOST_AUTO_TEST_SUITE(future_)

// =======================================================================================
BOOST_AUTO_TEST_SUITE(state)

BOOST_AUTO_TEST_CASE(default_constructed_handle_is_empty) {
  const af::future<int> f;
  BOOST_TEST(!f.valid());
  const af::future<int> g;
  BOOST_TEST((f == g));
}

BOOST_AUTO_TEST_CASE(constructed_future_is_pending_on_its_executor) {
  asio::io_context ioc;
  const af::future<int> f(ioc.get_executor());
  BOOST_TEST(f.valid());
  BOOST_TEST(!f.done());
  BOOST_TEST(!f.cancelled());
  BOOST_TEST((f.get_executor() == asio::any_io_executor(ioc.get_executor())));
}

BOOST_AUTO_TEST_CASE(constructed_from_a_context_uses_its_executor) {
  asio::io_context ioc;
  const af::future<std::string> f(ioc);
  BOOST_TEST(!f.done());
  BOOST_TEST((f.get_executor() == asio::any_io_executor(ioc.get_executor())));
}

BOOST_AUTO_TEST_CASE(constructed_from_a_strand_uses_the_strand) {
  asio::io_context ioc;
  auto strand = asio::make_strand(ioc);
  const af::future<int> f(strand); // an lvalue executor, not a context
  BOOST_TEST((f.get_executor() == asio::any_io_executor(strand)));
}

BOOST_AUTO_TEST_CASE(empty_executor_is_rejected) {
  BOOST_CHECK_THROW(af::future<int>{asio::any_io_executor()}, std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(copies_share_the_state_and_compare_equal) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  const af::future<int> copy = f;
  const af::future<int> other(ioc);
  BOOST_TEST((copy == f));
  BOOST_TEST(!(other == f));
  BOOST_TEST(std::hash<af::future<int>>()(copy) == std::hash<af::future<int>>()(f));
  f.set_result(3);
  BOOST_TEST(copy.done());
  BOOST_TEST(copy.result() == 3);
  BOOST_TEST(!other.done());

  std::unordered_set<af::future<int>> set{f, copy, other};
  BOOST_TEST(set.size() == 2u);
}

BOOST_AUTO_TEST_CASE(moved_from_handle_is_empty) {
  asio::io_context ioc;
  af::future<int> f(ioc);
  af::future<int> g = std::move(f);
  BOOST_TEST(!f.valid()); // NOLINT(bugprone-use-after-move): the documented state
  BOOST_TEST(g.valid());
  af::future<int> h;
  h = std::move(g);
  BOOST_TEST(!g.valid()); // NOLINT(bugprone-use-after-move)
  BOOST_TEST(h.valid());
  BOOST_CHECK_THROW(f.done(), af::invalid_state_error);
}

BOOST_AUTO_TEST_CASE(set_result_makes_the_future_done_with_the_value) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  f.set_result(42);
  BOOST_TEST(f.done());
  BOOST_TEST(!f.cancelled());
  BOOST_TEST(f.result() == 42);
  BOOST_TEST(f.result() == 42); // copyable results can be read again
  BOOST_TEST(!f.exception());
  BOOST_TEST(f.get() == 42);
  BOOST_TEST(f.get() == 42);
}

BOOST_AUTO_TEST_CASE(set_result_of_string_and_void) {
  asio::io_context ioc;
  const af::future<std::string> s(ioc);
  s.set_result("hello");
  BOOST_TEST(s.result() == "hello");

  const af::future<void> v(ioc);
  BOOST_TEST(!v.done());
  v.set_result();
  BOOST_TEST(v.done());
  BOOST_TEST(!v.cancelled());
  BOOST_CHECK_NO_THROW(v.result());
  BOOST_TEST(!v.exception());
  BOOST_CHECK_NO_THROW(v.get());
}

BOOST_AUTO_TEST_CASE(set_exception_ptr_fails_the_future) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  const auto error = std::make_exception_ptr(std::runtime_error("boom"));
  f.set_exception(error);
  BOOST_TEST(f.done());
  BOOST_TEST(!f.cancelled());
  BOOST_TEST((f.exception() == error));
  BOOST_CHECK_THROW(f.result(), std::runtime_error);
  BOOST_CHECK_THROW(f.get(), std::runtime_error);
  BOOST_TEST(what_of(thrown_by([&] { f.result(); })) == "boom");
}

BOOST_AUTO_TEST_CASE(set_exception_object_keeps_its_dynamic_type) {
  asio::io_context ioc;
  const af::future<void> f(ioc);
  f.set_exception(std::out_of_range("range"));
  BOOST_CHECK_THROW(f.result(), std::out_of_range);
  BOOST_TEST(holds<std::out_of_range>(f.exception()));
}

BOOST_AUTO_TEST_CASE(set_exception_with_null_is_rejected) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  BOOST_CHECK_THROW(f.set_exception(std::exception_ptr()), std::invalid_argument);
  BOOST_TEST(!f.done());
}

BOOST_AUTO_TEST_CASE(cancel_makes_the_future_cancelled_with_its_message) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  BOOST_TEST(f.cancel("stop"));
  BOOST_TEST(f.done());
  BOOST_TEST(f.cancelled());
  BOOST_TEST(
      (cancel_message(thrown_by([&] { f.result(); })) == std::optional<std::string>("stop")));
  BOOST_TEST((cancel_message(thrown_by([&] { (void)f.exception(); })) ==
              std::optional<std::string>("stop")));
  BOOST_TEST(
      (cancel_message(thrown_by([&] { (void)f.get(); })) == std::optional<std::string>("stop")));
}

BOOST_AUTO_TEST_CASE(cancel_without_message_gives_an_empty_message) {
  asio::io_context ioc;
  const af::future<void> f(ioc);
  BOOST_TEST(f.cancel());
  BOOST_TEST((cancel_message(thrown_by([&] { f.result(); })) == std::optional<std::string>("")));
}

BOOST_AUTO_TEST_CASE(cancel_on_a_done_future_returns_false_and_changes_nothing) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  f.set_result(1);
  BOOST_TEST(!f.cancel("late"));
  BOOST_TEST(!f.cancelled());
  BOOST_TEST(f.result() == 1);

  const af::future<int> g(ioc);
  BOOST_TEST(g.cancel("first"));
  BOOST_TEST(!g.cancel("second"));
  BOOST_TEST(
      (cancel_message(thrown_by([&] { g.result(); })) == std::optional<std::string>("first")));
}

BOOST_AUTO_TEST_CASE(try_set_result_wins_exactly_once) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  BOOST_TEST(f.try_set_result(1));
  BOOST_TEST(!f.try_set_result(2));
  BOOST_TEST(!f.try_set_exception(std::make_exception_ptr(std::runtime_error("x"))));
  BOOST_TEST(!f.cancel());
  BOOST_TEST(f.result() == 1);

  const af::future<void> v(ioc);
  BOOST_TEST(v.try_set_result());
  BOOST_TEST(!v.try_set_result());
}

BOOST_AUTO_TEST_CASE(try_set_exception_wins_exactly_once) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  BOOST_TEST(f.try_set_exception(std::make_exception_ptr(std::runtime_error("first"))));
  BOOST_TEST(!f.try_set_exception(std::make_exception_ptr(std::runtime_error("second"))));
  BOOST_TEST(!f.try_set_result(5));
  BOOST_TEST(what_of(f.exception()) == "first");
}

BOOST_AUTO_TEST_CASE(try_set_on_a_cancelled_future_returns_false) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  BOOST_TEST(f.cancel());
  BOOST_TEST(!f.try_set_result(1));
  BOOST_TEST(!f.try_set_exception(std::make_exception_ptr(std::runtime_error("x"))));
  BOOST_TEST(f.cancelled());
}

BOOST_AUTO_TEST_SUITE_END() // state

// =======================================================================================
BOOST_AUTO_TEST_SUITE(invalid_state)

BOOST_AUTO_TEST_CASE(set_result_on_a_done_future_throws) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  f.set_result(1);
  BOOST_CHECK_THROW(f.set_result(2), af::invalid_state_error);
  BOOST_TEST(f.result() == 1);

  const af::future<void> v(ioc);
  v.set_result();
  BOOST_CHECK_THROW(v.set_result(), af::invalid_state_error);
}

BOOST_AUTO_TEST_CASE(set_result_on_a_failed_future_throws) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  f.set_exception(std::runtime_error("x"));
  BOOST_CHECK_THROW(f.set_result(2), af::invalid_state_error);
  BOOST_CHECK_THROW(f.result(), std::runtime_error);
}

BOOST_AUTO_TEST_CASE(set_exception_on_a_done_future_throws) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  f.set_result(1);
  BOOST_CHECK_THROW(f.set_exception(std::make_exception_ptr(std::runtime_error("x"))),
                    af::invalid_state_error);
  BOOST_CHECK_THROW(f.set_exception(std::runtime_error("x")), af::invalid_state_error);
  BOOST_TEST(f.result() == 1);
}

BOOST_AUTO_TEST_CASE(set_result_on_a_cancelled_future_throws) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  f.cancel();
  BOOST_CHECK_THROW(f.set_result(1), af::invalid_state_error);
  BOOST_CHECK_THROW(f.set_exception(std::runtime_error("x")), af::invalid_state_error);
  BOOST_TEST(f.cancelled());
}

BOOST_AUTO_TEST_CASE(result_on_a_pending_future_throws) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  BOOST_CHECK_THROW(f.result(), af::invalid_state_error);
  const af::future<void> v(ioc);
  BOOST_CHECK_THROW(v.result(), af::invalid_state_error);
}

BOOST_AUTO_TEST_CASE(exception_on_a_pending_future_throws) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  BOOST_CHECK_THROW((void)f.exception(), af::invalid_state_error);
}

BOOST_AUTO_TEST_CASE(every_member_of_an_empty_handle_throws) {
  asio::io_context ioc;
  const af::future<int> real(ioc);
  const af::callback_id id = real.add_done_callback([](af::future<int>) {});

  const af::future<int> f;
  BOOST_CHECK_THROW(f.done(), af::invalid_state_error);
  BOOST_CHECK_THROW(f.cancelled(), af::invalid_state_error);
  BOOST_CHECK_THROW(f.set_result(1), af::invalid_state_error);
  BOOST_CHECK_THROW(f.set_exception(std::make_exception_ptr(std::runtime_error("x"))),
                    af::invalid_state_error);
  BOOST_CHECK_THROW(f.set_exception(std::runtime_error("x")), af::invalid_state_error);
  BOOST_CHECK_THROW(f.try_set_result(1), af::invalid_state_error);
  BOOST_CHECK_THROW(f.try_set_exception(std::make_exception_ptr(std::runtime_error("x"))),
                    af::invalid_state_error);
  BOOST_CHECK_THROW(f.cancel(), af::invalid_state_error);
  BOOST_CHECK_THROW(f.result(), af::invalid_state_error);
  BOOST_CHECK_THROW((void)f.exception(), af::invalid_state_error);
  BOOST_CHECK_THROW(f.add_done_callback([](af::future<int>) {}), af::invalid_state_error);
  BOOST_CHECK_THROW(f.remove_done_callback(id), af::invalid_state_error);
  BOOST_CHECK_THROW(f.async_wait([](std::exception_ptr, int) {}), af::invalid_state_error);
  BOOST_CHECK_THROW(f([](std::exception_ptr, int) {}), af::invalid_state_error);
  BOOST_CHECK_THROW(f.wait(), af::invalid_state_error);
  BOOST_CHECK_THROW(f.wait_for(1ms), af::invalid_state_error);
  BOOST_CHECK_THROW(f.get(), af::invalid_state_error);
  BOOST_CHECK_THROW(f.get_executor(), af::invalid_state_error);
  BOOST_CHECK_THROW(f.then([](int v) { return v; }), af::invalid_state_error);

  const af::future<void> v;
  BOOST_CHECK_THROW(v.set_result(), af::invalid_state_error);
  BOOST_CHECK_THROW(v.try_set_result(), af::invalid_state_error);
  BOOST_CHECK_THROW(v.async_wait([](std::exception_ptr) {}), af::invalid_state_error);

  const af::future<af::future<int>> nested;
  BOOST_CHECK_THROW(nested.unwrap(), af::invalid_state_error);
}

BOOST_AUTO_TEST_CASE(value_operations_on_an_empty_handle_do_not_throw) {
  af::future<int> f;
  BOOST_CHECK_NO_THROW(BOOST_TEST(!f.valid()));
  BOOST_CHECK_NO_THROW((void)(f == af::future<int>()));
  BOOST_CHECK_NO_THROW((void)std::hash<af::future<int>>()(f));
  af::future<int> copy = f;
  af::future<int> moved = std::move(copy);
  BOOST_CHECK_NO_THROW(f = moved);
  BOOST_TEST(!moved.valid());
}

BOOST_AUTO_TEST_SUITE_END() // invalid_state

// =======================================================================================
BOOST_AUTO_TEST_SUITE(callbacks)

BOOST_AUTO_TEST_CASE(callbacks_run_in_registration_order) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  std::vector<int> order;
  for (int i = 0; i < 5; ++i)
    f.add_done_callback([&order, i](af::future<int>) { order.push_back(i); });
  f.set_result(1);
  aft::poll(ioc);
  BOOST_TEST(order == (std::vector<int>{0, 1, 2, 3, 4}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(callbacks_receive_the_done_future) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  int calls = 0;
  f.add_done_callback([&](af::future<int> g) {
    ++calls;
    BOOST_TEST((g == f));
    BOOST_TEST(g.done());
    BOOST_TEST(g.result() == 7);
  });
  f.set_result(7);
  aft::poll(ioc);
  BOOST_TEST(calls == 1);
}

BOOST_AUTO_TEST_CASE(callbacks_never_run_inline_in_set_result) {
  asio::io_context ioc;
  aft::executor_stats stats;
  // The future's executor is tracked: callbacks without their own executor go through it.
  const af::future<int> f{
      asio::any_io_executor(aft::make_tracking_executor(ioc.get_executor(), stats))};
  int calls = 0;
  bool ran_inline = false;
  f.add_done_callback([&](af::future<int>) {
    ++calls;
    ran_inline = aft::inside_call::active();
  });
  {
    aft::inside_call marker;
    f.set_result(1);
  }
  BOOST_TEST(calls == 0);
  aft::poll(ioc);
  BOOST_TEST(calls == 1);
  BOOST_TEST(!ran_inline);
  BOOST_TEST(stats.runs.load() >= 1u);
  BOOST_TEST(stats.inline_runs.load() == 0u);
}

BOOST_AUTO_TEST_CASE(callbacks_never_run_inline_when_set_from_a_handler_of_the_same_context) {
  // set_result is called on the thread running the future's io_context: a dispatch would
  // run the callback inline here, which the contract forbids.
  asio::io_context ioc;
  const af::future<int> f(ioc);
  int calls = 0;
  bool ran_inline = false;
  f.add_done_callback([&](af::future<int>) {
    ++calls;
    ran_inline = aft::inside_call::active();
  });
  int calls_right_after_set = -1;
  asio::post(ioc, [&] {
    {
      aft::inside_call marker;
      f.set_result(1);
    }
    calls_right_after_set = calls;
  });
  aft::poll(ioc);
  BOOST_TEST(calls_right_after_set == 0);
  BOOST_TEST(calls == 1);
  BOOST_TEST(!ran_inline);
}

BOOST_AUTO_TEST_CASE(callback_added_to_a_done_future_is_scheduled_not_run_inline) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  f.set_result(1);
  int calls = 0;
  bool ran_inline = false;
  {
    aft::inside_call marker;
    f.add_done_callback([&](af::future<int>) {
      ++calls;
      ran_inline = aft::inside_call::active();
    });
  }
  BOOST_TEST(calls == 0);
  aft::poll(ioc);
  BOOST_TEST(calls == 1);
  BOOST_TEST(!ran_inline);
}

BOOST_AUTO_TEST_CASE(callbacks_run_on_cancel_and_on_failure) {
  asio::io_context ioc;
  const af::future<int> cancelled(ioc);
  const af::future<int> failed(ioc);
  bool saw_cancelled = false;
  bool saw_failure = false;
  cancelled.add_done_callback([&](af::future<int> g) { saw_cancelled = g.cancelled(); });
  failed.add_done_callback(
      [&](af::future<int> g) { saw_failure = holds<std::runtime_error>(g.exception()); });
  cancelled.cancel();
  failed.set_exception(std::runtime_error("x"));
  aft::poll(ioc);
  BOOST_TEST(saw_cancelled);
  BOOST_TEST(saw_failure);
}

BOOST_AUTO_TEST_CASE(remove_done_callback_returns_one_then_zero) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  std::vector<int> order;
  f.add_done_callback([&](af::future<int>) { order.push_back(0); });
  const af::callback_id id = f.add_done_callback([&](af::future<int>) { order.push_back(1); });
  f.add_done_callback([&](af::future<int>) { order.push_back(2); });
  BOOST_TEST(f.remove_done_callback(id) == 1u);
  BOOST_TEST(f.remove_done_callback(id) == 0u);
  f.set_result(1);
  aft::poll(ioc);
  BOOST_TEST(order == (std::vector<int>{0, 2}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(remove_done_callback_returns_zero_once_done) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  int calls = 0;
  const af::callback_id id = f.add_done_callback([&](af::future<int>) { ++calls; });
  f.set_result(1);
  BOOST_TEST(f.remove_done_callback(id) == 0u); // already scheduled
  aft::poll(ioc);
  BOOST_TEST(calls == 1);
  BOOST_TEST(f.remove_done_callback(id) == 0u);
}

BOOST_AUTO_TEST_CASE(remove_done_callback_ignores_ids_of_other_futures) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  const af::future<int> g(ioc);
  int calls = 0;
  const af::callback_id id = f.add_done_callback([&](af::future<int>) { ++calls; });
  BOOST_TEST(g.remove_done_callback(id) == 0u);
  BOOST_TEST(g.remove_done_callback(af::callback_id{}) == 0u);
  f.set_result(1);
  aft::poll(ioc);
  BOOST_TEST(calls == 1);
}

BOOST_AUTO_TEST_CASE(callback_with_its_own_executor_runs_there) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  auto strand = asio::make_strand(ioc);
  aft::executor_stats stats;
  bool on_strand = false;
  int tracked_calls = 0;
  f.add_done_callback(asio::bind_executor(
      strand, [&](af::future<int>) { on_strand = strand.running_in_this_thread(); }));
  f.add_done_callback(asio::bind_executor(aft::make_tracking_executor(ioc.get_executor(), stats),
                                          [&](af::future<int>) { ++tracked_calls; }));
  f.set_result(1);
  aft::poll(ioc);
  BOOST_TEST(on_strand);
  BOOST_TEST(tracked_calls == 1);
  BOOST_TEST(stats.runs.load() >= 1u);
  BOOST_TEST(stats.inline_runs.load() == 0u);
}

BOOST_AUTO_TEST_CASE(move_only_callbacks_are_accepted) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  int seen = 0;
  auto payload = std::make_unique<int>(9);
  f.add_done_callback([&seen, p = std::move(payload)](af::future<int>) { seen = *p; });
  f.set_result(1);
  aft::poll(ioc);
  BOOST_TEST(seen == 9);
}

BOOST_AUTO_TEST_CASE(callbacks_and_their_captures_are_destroyed_after_running) {
  aft::instance_counters counters;
  {
    asio::io_context ioc;
    const af::future<int> f(ioc);
    f.add_done_callback([c = aft::counted(counters, 1)](af::future<int>) {});
    f.add_done_callback([c = aft::counted(counters, 2)](af::future<int>) {});
    BOOST_TEST(counters.live.load() == 2);
    f.set_result(1);
    aft::poll(ioc);
    BOOST_TEST(counters.live.load() == 0);
  }
  BOOST_TEST(counters.live.load() == 0);
}

BOOST_AUTO_TEST_CASE(callbacks_without_an_executor_run_on_the_futures_strand) {
  asio::io_context ioc;
  auto strand = asio::make_strand(ioc);
  const af::future<int> f(strand);
  bool on_strand = false;
  f.add_done_callback([&](af::future<int>) { on_strand = strand.running_in_this_thread(); });
  f.set_result(1);
  aft::poll(ioc);
  BOOST_TEST(on_strand);
}

BOOST_AUTO_TEST_CASE(exception_from_a_callback_propagates_out_of_run) {
  // As with any Asio handler; the other callbacks are still run afterwards.
  asio::io_context ioc;
  const af::future<int> f(ioc);
  int second_calls = 0;
  f.add_done_callback([](af::future<int>) { throw std::logic_error("from callback"); });
  f.add_done_callback([&](af::future<int>) { ++second_calls; });
  f.set_result(1);
  ioc.restart();
  BOOST_CHECK_THROW(ioc.run(), std::logic_error);
  aft::poll(ioc);
  BOOST_TEST(second_calls == 1);
}

BOOST_AUTO_TEST_SUITE_END() // callbacks

// =======================================================================================
BOOST_AUTO_TEST_SUITE(awaiting)

CO_TEST_CASE(await_returns_the_value_set_later_by_another_coroutine) {
  auto ex = co_await asio::this_coro::executor;
  const af::future<int> f(ex);
  asio::co_spawn(
      ex,
      [f]() -> asio::awaitable<void> {
        co_await aft::yield_once();
        f.set_result(42);
      },
      asio::detached);
  const int v = co_await f.async_wait();
  BOOST_TEST(v == 42);
}

CO_TEST_CASE(await_on_a_done_future_returns_its_value) {
  auto ex = co_await asio::this_coro::executor;
  const af::future<std::string> f(ex);
  f.set_result("ready");
  BOOST_TEST(co_await f.async_wait() == "ready");
  BOOST_TEST(co_await f.async_wait() == "ready"); // copyable: every waiter gets a copy
}

CO_TEST_CASE(await_of_a_void_future) {
  auto ex = co_await asio::this_coro::executor;
  const af::future<void> f(ex);
  asio::post(ex, [f] { f.set_result(); });
  co_await f.async_wait();
  BOOST_TEST(f.done());
}

CO_TEST_CASE(await_rethrows_the_stored_exception) {
  auto ex = co_await asio::this_coro::executor;
  const af::future<int> f(ex);
  asio::post(ex, [f] { f.set_exception(std::out_of_range("range")); });
  std::exception_ptr error;
  try {
    (void)co_await f.async_wait();
  } catch (...) {
    error = std::current_exception();
  }
  BOOST_TEST(holds<std::out_of_range>(error));
  BOOST_TEST(what_of(error) == "range");
}

CO_TEST_CASE(await_of_a_cancelled_future_throws_cancelled_error_with_message) {
  auto ex = co_await asio::this_coro::executor;
  const af::future<void> f(ex);
  asio::post(ex, [f] { f.cancel("no longer needed"); });
  std::exception_ptr error;
  try {
    co_await f.async_wait();
  } catch (...) {
    error = std::current_exception();
  }
  BOOST_TEST((cancel_message(error) == std::optional<std::string>("no longer needed")));
  // It is an operation_aborted system_error, like Asio's own cancellations.
  BOOST_TEST(holds<boost::system::system_error>(error));
}

CO_TEST_CASE(the_future_is_itself_an_async_operation) {
  auto ex = co_await asio::this_coro::executor;
  const af::future<int> f(ex);
  asio::post(ex, [f] { f.set_result(5); });
  BOOST_TEST(co_await f(asio::use_awaitable) == 5);
}

CO_TEST_CASE(multiple_awaiters_each_receive_a_copy) {
  auto ex = co_await asio::this_coro::executor;
  aft::instance_counters counters;
  {
    const af::future<aft::counted> f(ex);
    int finished = 0;
    std::vector<int> seen;
    for (int i = 0; i < 3; ++i) {
      asio::co_spawn(
          ex,
          [f, &seen, &finished]() -> asio::awaitable<void> {
            aft::counted v = co_await f.async_wait();
            seen.push_back(v.value());
            ++finished;
          },
          asio::detached);
    }
    co_await aft::yield_n(3); // every awaiter is suspended now
    f.set_result(aft::counted(counters, 11));
    for (int i = 0; i < 100 && finished < 3; ++i)
      co_await aft::yield_once();
    BOOST_TEST(finished == 3);
    BOOST_TEST(seen == (std::vector<int>{11, 11, 11}), boost::test_tools::per_element());
    BOOST_TEST(counters.copies.load() >= 3); // copied to every waiter
    BOOST_TEST(f.result().value() == 11);    // and still there
  }
  BOOST_TEST(counters.live.load() == 0);
}

CO_TEST_CASE(awaiter_is_not_resumed_inside_set_result) {
  auto ex = co_await asio::this_coro::executor;
  const af::future<int> f(ex);
  bool resumed = false;
  bool resumed_inline = false;
  asio::co_spawn(
      ex,
      [f, &resumed, &resumed_inline]() -> asio::awaitable<void> {
        (void)co_await f.async_wait();
        resumed = true;
        resumed_inline = aft::inside_call::active();
      },
      asio::detached);
  co_await aft::yield_n(2);
  {
    aft::inside_call marker;
    f.set_result(1);
  }
  BOOST_TEST(!resumed);
  for (int i = 0; i < 100 && !resumed; ++i)
    co_await aft::yield_once();
  BOOST_TEST(resumed);
  BOOST_TEST(!resumed_inline);
}

// Boost 1.81's transform for async operations handles void(std::exception_ptr) but not
// void(std::exception_ptr, T) (docs/boost-versions.md): the void form works everywhere.
CO_TEST_CASE(rvalue_void_future_is_awaitable_directly) {
  auto ex = co_await asio::this_coro::executor;
  af::future<void> f(ex);
  asio::post(ex, [f] { f.set_result(); });
  co_await af::future<void>(f);
  BOOST_TEST(f.done());
  af::future<void> g(ex);
  asio::post(ex, [g] { g.set_exception(std::make_exception_ptr(std::runtime_error("boom"))); });
  bool thrown = false;
  try {
    co_await std::move(g);
  } catch (const std::runtime_error&) {
    thrown = true;
  }
  BOOST_TEST(thrown);
}

#if BOOST_ASIO_VERSION >= 102800
// Asio 1.28 (Boost 1.82) awaits operations whose signature starts with std::exception_ptr:
// `co_await std::move(f)` (or any future-valued expression) works for every T.
CO_TEST_CASE(rvalue_future_is_awaitable_directly) {
  auto ex = co_await asio::this_coro::executor;
  af::future<int> f(ex);
  asio::post(ex, [f] { f.set_result(3); });
  BOOST_TEST(co_await std::move(f) == 3);
  // The handle is not moved from (the operation is the future's const call operator).
  BOOST_TEST(f.valid());
  BOOST_TEST(co_await af::future<int>(f) == 3);
  af::future<std::unique_ptr<int>> m(ex);
  asio::post(ex, [m] { m.set_result(std::make_unique<int>(4)); });
  BOOST_TEST(*co_await std::move(m) == 4);
  af::future<int> failed(ex);
  failed.set_exception(std::runtime_error("direct"));
  std::exception_ptr e;
  try {
    co_await std::move(failed);
  } catch (...) {
    e = std::current_exception();
  }
  BOOST_TEST(aft::what_of(e) == "direct");
  af::future<af::future<int>> nested(ex);
  nested.set_result(af::make_ready_future(ex, 5));
  BOOST_TEST(co_await std::move(nested) == 5); // unwrapped, as with async_wait
}
#endif

BOOST_AUTO_TEST_CASE(awaiting_coroutine_keeps_the_context_running) {
  // Outstanding work is tracked while a coroutine awaits: io_context::run() would block.
  asio::io_context ioc;
  const af::future<int> f(ioc);
  int result = 0;
  asio::co_spawn(
      ioc, [f, &result]() -> asio::awaitable<void> { result = co_await f.async_wait(); },
      asio::detached);
  BOOST_TEST(aft::has_outstanding_work(ioc));
  BOOST_TEST(aft::has_outstanding_work(ioc)); // still, after more polling
  f.set_result(4);
  BOOST_TEST(aft::run_until(ioc, [&] { return result == 4; }));
  BOOST_TEST(!aft::has_outstanding_work(ioc)); // and released afterwards
}

BOOST_AUTO_TEST_CASE(context_runs_to_completion_when_another_thread_sets_the_result) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  int result = 0;
  asio::co_spawn(
      ioc, [f, &result]() -> asio::awaitable<void> { result = co_await f.async_wait(); },
      asio::detached);
  aft::poll(ioc); // the coroutine is suspended on the future now
  aft::bounded_thread setter([f] { f.set_result(8); });
  ioc.restart();
  ioc.run_for(aft::default_timeout); // returns once the waiter is done (no work left)
  BOOST_TEST(setter.join_for());
  BOOST_TEST(result == 8);
}

BOOST_AUTO_TEST_CASE(awaited_from_a_coroutine_typed_on_another_executor) {
  // asio::awaitable<T, io_context::executor_type>: async_wait's default token is
  // use_awaitable_t<> (any_io_executor); such a coroutine names its own.
  using io_executor = asio::io_context::executor_type;
  asio::io_context ioc;
  const af::future<int> f(ioc);
  const af::future<int> r = asio::co_spawn(
      ioc.get_executor(),
      [f]() -> asio::awaitable<int, io_executor> {
        co_return co_await f.async_wait(asio::use_awaitable_t<io_executor>{});
      },
      af::use_future);
  f.set_result(3);
  BOOST_TEST_REQUIRE(aft::run_until(ioc, [&] { return r.done(); }));
  BOOST_TEST(r.result() == 3);
}

BOOST_AUTO_TEST_SUITE_END() // awaiting

// =======================================================================================
BOOST_AUTO_TEST_SUITE(completion_tokens)

BOOST_AUTO_TEST_CASE(callback_token_receives_exception_ptr_and_value) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  outcome<int> o;
  f.async_wait(o.handler());
  {
    aft::inside_call marker;
    f.set_result(5);
  }
  BOOST_TEST(o.calls == 0);
  aft::poll(ioc);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ran_inline);
  BOOST_TEST(!o.error);
  BOOST_TEST((o.value == std::optional<int>(5)));
}

BOOST_AUTO_TEST_CASE(callback_token_receives_the_failure) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  outcome<int> o;
  f.async_wait(o.handler());
  f.set_exception(std::runtime_error("bad"));
  aft::poll(ioc);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(holds<std::runtime_error>(o.error));
}

BOOST_AUTO_TEST_CASE(callback_token_on_a_done_future_is_not_run_inline) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  f.set_result(2);
  outcome<int> o;
  {
    aft::inside_call marker;
    f.async_wait(o.handler());
  }
  BOOST_TEST(o.calls == 0);
  aft::poll(ioc);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ran_inline);
  BOOST_TEST((o.value == std::optional<int>(2)));
}

BOOST_AUTO_TEST_CASE(callback_token_for_void) {
  asio::io_context ioc;
  const af::future<void> f(ioc);
  outcome<void> ok;
  f.async_wait(ok.handler());
  f.set_result();
  aft::poll(ioc);
  BOOST_TEST(ok.calls == 1);
  BOOST_TEST(!ok.error);
}

BOOST_AUTO_TEST_CASE(deferred_token_and_deferred_chains) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  auto op = f.async_wait(asio::deferred);
  auto chained = f.async_wait(asio::deferred(
      [](std::exception_ptr e, int v) { return asio::deferred.values(std::move(e), v * 2); }));
  auto as_op = f(asio::deferred);
  f.set_result(21);
  outcome<int> plain, doubled, direct;
  std::move(op)(plain.handler());
  std::move(chained)(doubled.handler());
  std::move(as_op)(direct.handler());
  aft::poll(ioc);
  BOOST_TEST((plain.value == std::optional<int>(21)));
  BOOST_TEST((doubled.value == std::optional<int>(42)));
  BOOST_TEST((direct.value == std::optional<int>(21)));
}

CO_TEST_CASE(deferred_operation_awaited_through_use_awaitable) {
  auto ex = co_await asio::this_coro::executor;
  const af::future<int> f(ex);
  asio::post(ex, [f] { f.set_result(6); });
  auto op = f.async_wait(asio::deferred);
  BOOST_TEST(co_await std::move(op)(asio::use_awaitable) == 6);
}

BOOST_AUTO_TEST_CASE(asio_use_future_token) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  const af::future<int> g(ioc);
  std::future<int> sf = f.async_wait(asio::use_future);
  std::future<int> sg = g.async_wait(asio::use_future);
  f.set_result(9);
  g.set_exception(std::runtime_error("no"));
  aft::poll(ioc);
  // asio::use_future's handler executor is the system executor: the promise is fulfilled
  // on a system_context thread, so wait for it (bounded).
  BOOST_TEST_REQUIRE((sf.wait_for(aft::default_timeout) == std::future_status::ready));
  BOOST_TEST(sf.get() == 9);
  BOOST_TEST_REQUIRE((sg.wait_for(aft::default_timeout) == std::future_status::ready));
  BOOST_CHECK_THROW(sg.get(), std::runtime_error);
}

CO_TEST_CASE(as_tuple_use_awaitable_token) {
  auto ex = co_await asio::this_coro::executor;
  const af::future<int> ok(ex);
  const af::future<int> bad(ex);
  asio::post(ex, [ok, bad] {
    ok.set_result(1);
    bad.set_exception(std::runtime_error("bad"));
  });
  auto [e1, v1] = co_await ok.async_wait(asio::as_tuple(asio::use_awaitable));
  BOOST_TEST(!e1);
  BOOST_TEST(v1 == 1);
  auto [e2, v2] = co_await bad.async_wait(asio::as_tuple(asio::use_awaitable));
  BOOST_TEST(holds<std::runtime_error>(e2));
  (void)v2;
}

BOOST_AUTO_TEST_CASE(yield_context_through_as_tuple) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  const af::future<void> failed(ioc);
  std::optional<int> value;
  std::exception_ptr void_error;
  bool finished = false;
  asio::spawn(
      ioc,
      [&](asio::yield_context yield) {
        auto [e, v] = f.async_wait(asio::as_tuple(yield));
        if (!e)
          value = v;
        auto [e2] = failed.async_wait(asio::as_tuple(yield));
        void_error = e2;
      },
      [&](std::exception_ptr e) {
        finished = true;
        if (e)
          std::rethrow_exception(e);
      });
  aft::poll(ioc);
  f.set_result(4);
  failed.set_exception(std::runtime_error("x"));
  BOOST_TEST(aft::run_until(ioc, [&] { return finished; }));
  BOOST_TEST((value == std::optional<int>(4)));
  BOOST_TEST(holds<std::runtime_error>(void_error));
}

CO_TEST_CASE(experimental_use_promise_token) {
  auto ex = co_await asio::this_coro::executor;
  const af::future<int> f(ex);
  auto promise = f.async_wait(asio::experimental::use_promise);
  asio::post(ex, [f] { f.set_result(12); });
  BOOST_TEST(co_await promise(asio::use_awaitable) == 12);
}

CO_TEST_CASE(parallel_group_waits_for_all_futures) {
  auto ex = co_await asio::this_coro::executor;
  const af::future<int> a(ex);
  const af::future<std::string> b(ex);
  asio::post(ex, [a, b] {
    b.set_result("two");
    a.set_result(1);
  });
  auto [order, ea, va, eb, vb] =
      co_await asio::experimental::make_parallel_group(a.async_wait(asio::deferred),
                                                       b.async_wait(asio::deferred))
          .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
  BOOST_TEST(!ea);
  BOOST_TEST(!eb);
  BOOST_TEST(va == 1);
  BOOST_TEST(vb == "two");
  BOOST_TEST(order[0] == 1u); // b completed first
  BOOST_TEST(order[1] == 0u);
}

CO_TEST_CASE(parallel_group_accepts_futures_as_operations) {
  auto ex = co_await asio::this_coro::executor;
  const af::future<int> a(ex);
  const af::future<void> b(ex);
  asio::post(ex, [a, b] {
    a.set_result(3);
    b.set_result();
  });
  auto [order, ea, va, eb] = co_await asio::experimental::make_parallel_group(a, b).async_wait(
      asio::experimental::wait_for_all(), asio::use_awaitable);
  BOOST_TEST(!ea);
  BOOST_TEST(!eb);
  BOOST_TEST(va == 3);
  (void)order;
}

CO_TEST_CASE(parallel_group_wait_for_one_cancels_the_other_future) {
  // parallel_group emits cancellation_type::all, which has the terminal bit: the slower
  // future itself is cancelled (asyncio: cancelling the waiter cancels what it awaits).
  auto ex = co_await asio::this_coro::executor;
  const af::future<int> fast(ex);
  const af::future<int> slow(ex);
  asio::post(ex, [fast] { fast.set_result(1); });
  auto [order, e1, v1, e2, v2] =
      co_await asio::experimental::make_parallel_group(fast.async_wait(asio::deferred),
                                                       slow.async_wait(asio::deferred))
          .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
  BOOST_TEST(order[0] == 0u);
  BOOST_TEST(!e1);
  BOOST_TEST(v1 == 1);
  BOOST_TEST(holds<af::cancelled_error>(e2));
  BOOST_TEST(slow.cancelled());
  (void)v2;
}

// The futures themselves are the operations of a ranged group: each one's associated
// executor is its own. (Boost 1.81 gives `async_wait(asio::deferred)` operations the system
// executor in a ranged group, so their completions would hop through system_context
// threads; docs/boost-versions.md.)
CO_TEST_CASE(ranged_parallel_group_of_futures) {
  auto ex = co_await asio::this_coro::executor;
  std::vector<af::future<int>> futures;
  for (int i = 0; i < 4; ++i)
    futures.emplace_back(ex);
  static_assert(
      std::is_same_v<asio::associated_executor_t<af::future<int>>, asio::any_io_executor>);
  asio::post(ex, [futures] {
    for (int i = 3; i >= 0; --i)
      futures[static_cast<std::size_t>(i)].set_result(i * 10);
  });
  auto [order, errors, values] =
      co_await asio::experimental::make_parallel_group(futures).async_wait(
          asio::experimental::wait_for_all(), asio::use_awaitable);
  BOOST_TEST_REQUIRE(values.size() == 4u);
  for (std::size_t i = 0; i < 4; ++i) {
    BOOST_TEST(!errors[i]);
    BOOST_TEST(values[i] == static_cast<int>(i) * 10);
  }
  (void)order;
}

BOOST_AUTO_TEST_SUITE_END() // completion_tokens

// =======================================================================================
BOOST_AUTO_TEST_SUITE(associated_characteristics)

BOOST_AUTO_TEST_CASE(completion_runs_on_the_waiters_associated_executor) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  auto strand = asio::make_strand(ioc);
  aft::executor_stats stats;
  bool on_strand = false;
  outcome<int> tracked;
  f.async_wait(asio::bind_executor(
      strand, [&](std::exception_ptr, int) { on_strand = strand.running_in_this_thread(); }));
  f.async_wait(asio::bind_executor(aft::make_tracking_executor(ioc.get_executor(), stats),
                                   tracked.handler()));
  {
    aft::inside_call marker;
    f.set_result(3);
  }
  aft::poll(ioc);
  BOOST_TEST(on_strand);
  BOOST_TEST(tracked.calls == 1);
  BOOST_TEST(!tracked.ran_inline);
  BOOST_TEST(stats.runs.load() >= 1u);
  BOOST_TEST(stats.inline_runs.load() == 0u);
}

BOOST_AUTO_TEST_CASE(completion_goes_to_the_waiters_context_not_the_futures) {
  // The future's context is never run: a waiter on another context must still complete.
  asio::io_context future_ctx;
  asio::io_context waiter_ctx;
  const af::future<int> f(future_ctx);
  outcome<int> o;
  f.async_wait(asio::bind_executor(waiter_ctx, o.handler()));
  BOOST_TEST(aft::has_outstanding_work(waiter_ctx)); // work is tracked on the waiter's side
  f.set_result(7);
  BOOST_TEST(aft::run_until(waiter_ctx, [&] { return o.calls == 1; }));
  BOOST_TEST((o.value == std::optional<int>(7)));
  BOOST_TEST(!aft::has_outstanding_work(waiter_ctx));
}

BOOST_AUTO_TEST_CASE(pending_callback_waiter_tracks_outstanding_work) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  BOOST_TEST(!aft::has_outstanding_work(ioc));
  outcome<int> o;
  f.async_wait(o.handler());
  BOOST_TEST(aft::has_outstanding_work(ioc));
  f.set_result(1);
  aft::poll(ioc);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!aft::has_outstanding_work(ioc));
}

BOOST_AUTO_TEST_CASE(waiter_storage_comes_from_the_associated_allocator) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  aft::allocator_stats stats;
  bool balanced_at_invocation = false;
  int calls = 0;
  f.async_wait(
      asio::bind_allocator(aft::tracking_allocator<void>(stats), [&](std::exception_ptr, int) {
        ++calls;
        // Asio's rule: storage is released before the upcall.
        balanced_at_invocation = stats.balanced();
      }));
  BOOST_TEST(stats.allocations.load() > 0u);
  f.set_result(1);
  aft::poll(ioc);
  BOOST_TEST(calls == 1);
  BOOST_TEST(balanced_at_invocation);
  BOOST_TEST(stats.balanced());
}

BOOST_AUTO_TEST_CASE(waiter_storage_is_released_when_detached_by_cancellation) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  aft::allocator_stats stats;
  asio::cancellation_signal signal;
  int calls = 0;
  f.async_wait(asio::bind_cancellation_slot(
      signal.slot(), asio::bind_allocator(aft::tracking_allocator<void>(stats),
                                          [&](std::exception_ptr, int) { ++calls; })));
  BOOST_TEST(stats.allocations.load() > 0u);
  signal.emit(asio::cancellation_type::partial);
  aft::poll(ioc);
  BOOST_TEST(calls == 1);
  BOOST_TEST(stats.balanced());
  BOOST_TEST(!f.done());
}

BOOST_AUTO_TEST_CASE(allocation_failure_propagates_and_leaves_the_future_usable) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  std::atomic<std::size_t> attempts{0};
  int failed_calls = 0;
  BOOST_CHECK_THROW(
      f.async_wait(asio::bind_allocator(aft::throwing_allocator<void>(attempts),
                                        [&](std::exception_ptr, int) { ++failed_calls; })),
      std::bad_alloc);
  BOOST_TEST(attempts.load() > 0u);
  BOOST_TEST(!f.done());
  outcome<int> o;
  f.async_wait(o.handler());
  f.set_result(2);
  aft::poll(ioc);
  BOOST_TEST(failed_calls == 0);
  BOOST_TEST((o.value == std::optional<int>(2)));
  BOOST_TEST(!aft::has_outstanding_work(ioc)); // the failed waiter left no work behind
}

BOOST_AUTO_TEST_CASE(waiter_without_an_executor_completes_on_the_futures_executor) {
  asio::io_context ioc;
  aft::executor_stats stats;
  const af::future<int> f{
      asio::any_io_executor(aft::make_tracking_executor(ioc.get_executor(), stats))};
  outcome<int> o;
  f.async_wait(o.handler());
  BOOST_TEST(aft::has_outstanding_work(ioc));
  f.set_result(1);
  aft::poll(ioc);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(stats.runs.load() >= 1u);
  BOOST_TEST(stats.inline_runs.load() == 0u);
}

#if BOOST_ASIO_VERSION >= 102800
// Immediate completion (Asio 1.28, Boost 1.82): a wait on a future that is done when the wait
// starts completes through the handler's associated immediate executor, if it has one.

static_assert(!af::detail::has_immediate_executor_v<int_callback>);
static_assert(af::detail::has_immediate_executor_v<decltype(asio::bind_immediate_executor(
                  asio::system_executor(), std::declval<int_callback>()))>);

CO_TEST_CASE(without_an_immediate_executor_a_done_wait_is_posted_after_earlier_callbacks) {
  // The default stays a post, in registration order with the future's callbacks (Asio 1.28
  // names "no immediate executor" through a reference type; mistaking it for one reordered
  // these).
  auto ex = co_await asio::this_coro::executor;
  const af::future<int> f(ex);
  std::vector<int> order;
  f.add_done_callback([&](af::future<int>) { order.push_back(1); });
  f.set_result(1);
  co_await f.async_wait();
  order.push_back(2);
  BOOST_TEST((order == std::vector<int>{1, 2}));
}

BOOST_AUTO_TEST_CASE(done_future_completes_through_the_immediate_executor) {
  asio::io_context ioc;
  const auto f = af::make_ready_future(ioc.get_executor(), 5);
  outcome<int> o;
  {
    aft::inside_call marker;
    // An inline immediate executor: the handler runs inside async_wait.
    f.async_wait(asio::bind_immediate_executor(asio::system_executor(), o.handler()));
  }
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.ran_inline);
  BOOST_TEST((o.value == std::optional<int>(5)));
  BOOST_TEST(!aft::has_outstanding_work(ioc));
}

BOOST_AUTO_TEST_CASE(immediate_executor_dispatches_to_the_handlers_executor) {
  // Asio's rule: the immediate executor is dispatched to, and from there the handler runs on
  // its own associated executor (here a strand the calling thread is not in: posted).
  asio::io_context ioc;
  const auto f = af::make_exceptional_future<int>(ioc.get_executor(),
                                                  std::make_exception_ptr(std::logic_error("x")));
  auto strand = asio::make_strand(ioc);
  bool on_strand = false;
  std::exception_ptr error;
  f.async_wait(asio::bind_immediate_executor(
      asio::system_executor(), asio::bind_executor(strand, [&](std::exception_ptr e, int) {
        on_strand = strand.running_in_this_thread();
        error = e;
      })));
  BOOST_TEST(!error);
  aft::poll(ioc);
  BOOST_TEST(on_strand);
  BOOST_TEST(aft::holds<std::logic_error>(error));
}

CO_TEST_CASE(coroutine_resumes_without_a_scheduler_turn_on_a_done_future) {
  auto ex = co_await asio::this_coro::executor;
  const auto f = af::make_ready_future(ex, 6);
  bool other_ran = false;
  asio::post(ex, [&] { other_ran = true; });
  // The coroutine's own executor as the immediate executor: a dispatch from a thread that
  // runs it resumes the coroutine at once, before the handler posted above.
  BOOST_TEST(co_await f.async_wait(asio::bind_immediate_executor(ex, asio::use_awaitable)) == 6);
  BOOST_TEST(!other_ran);
  // Without one, the completion is posted as before: the earlier handler runs first.
  BOOST_TEST(co_await f.async_wait() == 6);
  BOOST_TEST(other_ran);
}

BOOST_AUTO_TEST_CASE(pending_future_ignores_the_immediate_executor) {
  // Only a future that is done when the wait starts completes immediately; a later
  // completion is posted, never run inside set_result.
  asio::io_context ioc;
  const af::future<int> f(ioc);
  outcome<int> o;
  f.async_wait(asio::bind_immediate_executor(asio::system_executor(), o.handler()));
  {
    aft::inside_call marker;
    f.set_result(2);
  }
  BOOST_TEST(o.calls == 0);
  aft::poll(ioc);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ran_inline);
}

BOOST_AUTO_TEST_CASE(immediate_completion_on_a_closed_context_throws) {
  aft::closable_context ctx;
  const auto f = af::make_ready_future(ctx.get_executor(), 1);
  ctx.shutdown();
  outcome<int> o;
  BOOST_CHECK_THROW(
      f.async_wait(asio::bind_immediate_executor(asio::system_executor(), o.handler())),
      af::invalid_state_error);
  BOOST_TEST(o.calls == 0);
}
#endif

BOOST_AUTO_TEST_SUITE_END() // associated_characteristics

// =======================================================================================
BOOST_AUTO_TEST_SUITE(cancellation)

namespace {
void check_signal_cancels_the_future(asio::cancellation_type type) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  asio::cancellation_signal signal;
  outcome<int> bound, other;
  f.async_wait(asio::bind_cancellation_slot(signal.slot(), bound.handler()));
  f.async_wait(other.handler());
  aft::poll(ioc);
  BOOST_TEST(bound.calls == 0);
  {
    aft::inside_call marker;
    signal.emit(type);
  }
  BOOST_TEST(f.done());
  BOOST_TEST(f.cancelled());
  BOOST_TEST(bound.calls == 0); // never inline in the emit either
  aft::poll(ioc);
  BOOST_TEST(bound.calls == 1);
  BOOST_TEST(other.calls == 1);
  BOOST_TEST(!bound.ran_inline);
  BOOST_TEST(holds<af::cancelled_error>(bound.error));
  BOOST_TEST(holds<af::cancelled_error>(other.error));
  BOOST_TEST(!f.try_set_result(1));
  BOOST_TEST(!signal.slot().has_handler()); // uninstalled once the waiter completed
}

void check_signal_detaches_only_the_waiter(asio::cancellation_type type) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  asio::cancellation_signal signal;
  outcome<int> bound, other;
  int callback_calls = 0;
  f.async_wait(asio::bind_cancellation_slot(signal.slot(), bound.handler()));
  f.async_wait(other.handler());
  f.add_done_callback([&](af::future<int>) { ++callback_calls; });
  {
    aft::inside_call marker;
    signal.emit(type);
  }
  BOOST_TEST(!f.done());
  BOOST_TEST(bound.calls == 0);
  aft::poll(ioc);
  BOOST_TEST(bound.calls == 1);
  BOOST_TEST(!bound.ran_inline);
  BOOST_TEST(holds<af::cancelled_error>(bound.error));
  BOOST_TEST(!signal.slot().has_handler());
  BOOST_TEST(other.calls == 0);
  BOOST_TEST(callback_calls == 0);
  BOOST_TEST(!f.done());
  BOOST_TEST(aft::has_outstanding_work(ioc)); // the other waiter still waits

  f.set_result(5);
  aft::poll(ioc);
  BOOST_TEST(bound.calls == 1);
  BOOST_TEST(other.calls == 1);
  BOOST_TEST((other.value == std::optional<int>(5)));
  BOOST_TEST(callback_calls == 1);
}
} // namespace

BOOST_AUTO_TEST_CASE(terminal_cancellation_cancels_the_future) {
  check_signal_cancels_the_future(asio::cancellation_type::terminal);
}

BOOST_AUTO_TEST_CASE(cancellation_type_all_cancels_the_future) {
  check_signal_cancels_the_future(asio::cancellation_type::all);
}

BOOST_AUTO_TEST_CASE(partial_cancellation_detaches_only_that_waiter) {
  check_signal_detaches_only_the_waiter(asio::cancellation_type::partial);
}

BOOST_AUTO_TEST_CASE(total_cancellation_detaches_only_that_waiter) {
  check_signal_detaches_only_the_waiter(asio::cancellation_type::total);
}

BOOST_AUTO_TEST_CASE(a_terminal_signal_after_a_partial_one_detached_the_waiter_is_ignored) {
  // The detached waiter's completion is queued, its slot handler still installed until it
  // runs: a later terminal signal must not cancel the future it no longer waits for.
  asio::io_context ioc;
  const af::future<int> f(ioc);
  asio::cancellation_signal signal;
  outcome<int> o;
  f.async_wait(asio::bind_cancellation_slot(signal.slot(), o.handler()));
  signal.emit(asio::cancellation_type::partial);
  signal.emit(asio::cancellation_type::terminal); // before the detached completion ran
  aft::poll(ioc);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(aft::holds<af::cancelled_error>(o.error));
  BOOST_TEST(!f.done());
}

BOOST_AUTO_TEST_CASE(cancellation_after_completion_is_harmless) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  asio::cancellation_signal signal;
  outcome<int> o;
  f.async_wait(asio::bind_cancellation_slot(signal.slot(), o.handler()));
  f.set_result(5);
  aft::poll(ioc);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!signal.slot().has_handler()); // the waiter cleared its slot on completion
  signal.emit(asio::cancellation_type::terminal);
  signal.emit(asio::cancellation_type::partial);
  aft::poll(ioc);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!f.cancelled());
  BOOST_TEST(f.result() == 5);
}

BOOST_AUTO_TEST_CASE(cancellation_between_set_and_delivery_delivers_the_value) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  asio::cancellation_signal signal;
  outcome<int> o;
  f.async_wait(asio::bind_cancellation_slot(signal.slot(), o.handler()));
  f.set_result(5);
  signal.emit(asio::cancellation_type::terminal); // too late: the future is done
  signal.emit(asio::cancellation_type::partial);
  aft::poll(ioc);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.error);
  BOOST_TEST((o.value == std::optional<int>(5)));
  BOOST_TEST(!f.cancelled());
}

BOOST_AUTO_TEST_CASE(slot_is_free_for_reuse_after_a_detach) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  const af::future<int> g(ioc);
  asio::cancellation_signal signal;
  outcome<int> first, second;
  f.async_wait(asio::bind_cancellation_slot(signal.slot(), first.handler()));
  signal.emit(asio::cancellation_type::partial);
  aft::poll(ioc);
  BOOST_TEST(first.calls == 1);
  g.async_wait(asio::bind_cancellation_slot(signal.slot(), second.handler()));
  signal.emit(asio::cancellation_type::terminal);
  aft::poll(ioc);
  BOOST_TEST(second.calls == 1);
  BOOST_TEST(g.cancelled());
  BOOST_TEST(!f.done()); // the first waiter's handler was uninstalled: f is untouched
  BOOST_TEST(first.calls == 1);
}

BOOST_AUTO_TEST_CASE(signal_destroyed_after_the_waiter_completed_is_never_touched) {
  // The future outlives the signals of its finished waiters: later completion and
  // cancellation must not reach them (ASan checks).
  asio::io_context ioc;
  const af::future<int> f(ioc);
  outcome<int> detached, completed;
  {
    asio::cancellation_signal signal;
    f.async_wait(asio::bind_cancellation_slot(signal.slot(), detached.handler()));
    signal.emit(asio::cancellation_type::partial);
    aft::poll(ioc);
  }
  BOOST_TEST(detached.calls == 1);
  const af::future<int> g(ioc);
  {
    asio::cancellation_signal signal;
    g.async_wait(asio::bind_cancellation_slot(signal.slot(), completed.handler()));
    g.set_result(1);
    aft::poll(ioc);
  }
  BOOST_TEST(completed.calls == 1);
  f.set_result(2);
  BOOST_TEST(!g.cancel());
  aft::poll(ioc);
  BOOST_TEST(detached.calls == 1);
  BOOST_TEST(completed.calls == 1);
}

BOOST_AUTO_TEST_CASE(unconnected_slot_and_no_slot_behave_alike) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  asio::cancellation_slot empty_slot; // not connected to any signal
  outcome<int> o;
  f.async_wait(asio::bind_cancellation_slot(empty_slot, o.handler()));
  f.set_result(1);
  aft::poll(ioc);
  BOOST_TEST((o.value == std::optional<int>(1)));
}

BOOST_AUTO_TEST_CASE(terminal_cancellation_of_an_awaiting_coroutine_cancels_the_future) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  asio::cancellation_signal signal;
  bool finished = false;
  std::exception_ptr error;
  asio::co_spawn(
      ioc, [f]() -> asio::awaitable<void> { (void)co_await f.async_wait(); },
      asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) {
        finished = true;
        error = std::move(e);
      }));
  aft::poll(ioc);
  signal.emit(asio::cancellation_type::terminal);
  BOOST_TEST(aft::run_until(ioc, [&] { return finished; }));
  BOOST_TEST(holds<af::cancelled_error>(error));
  BOOST_TEST(f.cancelled());
}

BOOST_AUTO_TEST_CASE(awaitable_filters_partial_cancellation_by_default) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  asio::cancellation_signal signal;
  std::optional<int> value;
  asio::co_spawn(
      ioc, [f, &value]() -> asio::awaitable<void> { value = co_await f.async_wait(); },
      asio::bind_cancellation_slot(signal.slot(), asio::detached));
  aft::poll(ioc);
  signal.emit(asio::cancellation_type::partial);
  aft::poll(ioc);
  BOOST_TEST(!f.done());
  BOOST_TEST(!value);
  f.set_result(6);
  BOOST_TEST(aft::run_until(ioc, [&] { return value.has_value(); }));
  BOOST_TEST((value == std::optional<int>(6)));
}

BOOST_AUTO_TEST_CASE(coroutine_with_partial_cancellation_enabled_detaches_its_wait) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  asio::cancellation_signal signal;
  bool detached = false;
  asio::co_spawn(
      ioc,
      [f, &detached]() -> asio::awaitable<void> {
        co_await asio::this_coro::reset_cancellation_state(asio::enable_partial_cancellation());
        try {
          (void)co_await f.async_wait();
        } catch (const af::cancelled_error&) {
          detached = true;
        }
      },
      asio::bind_cancellation_slot(signal.slot(), asio::detached));
  aft::poll(ioc);
  signal.emit(asio::cancellation_type::partial);
  BOOST_TEST(aft::run_until(ioc, [&] { return detached; }));
  BOOST_TEST(!f.done());
}

BOOST_AUTO_TEST_SUITE_END() // cancellation

// =======================================================================================
BOOST_AUTO_TEST_SUITE(move_only)

BOOST_AUTO_TEST_CASE(result_gives_a_const_reference_while_the_value_is_there) {
  asio::io_context ioc;
  const af::future<std::unique_ptr<int>> f(ioc);
  f.set_result(std::make_unique<int>(7));
  const std::unique_ptr<int>& r = f.result();
  BOOST_TEST_REQUIRE(r != nullptr);
  BOOST_TEST(*r == 7);
  BOOST_TEST(&f.result() == &r); // the same object, not a copy
}

BOOST_AUTO_TEST_CASE(get_moves_the_value_out_and_later_reads_throw) {
  asio::io_context ioc;
  const af::future<std::unique_ptr<int>> f(ioc);
  f.set_result(std::make_unique<int>(7));
  std::unique_ptr<int> p = f.get();
  BOOST_TEST_REQUIRE(p != nullptr);
  BOOST_TEST(*p == 7);
  BOOST_CHECK_THROW(f.get(), af::invalid_state_error);
  BOOST_CHECK_THROW(f.result(), af::invalid_state_error);
  outcome<std::unique_ptr<int>> late;
  f.async_wait(late.handler());
  aft::poll(ioc);
  BOOST_TEST(late.calls == 1);
  BOOST_TEST(holds<af::invalid_state_error>(late.error));
}

BOOST_AUTO_TEST_CASE(first_waiter_moves_the_value_later_waiters_get_invalid_state) {
  asio::io_context ioc;
  const af::future<std::unique_ptr<int>> f(ioc);
  outcome<std::unique_ptr<int>> first, second;
  f.async_wait(first.handler());
  f.async_wait(second.handler());
  f.set_result(std::make_unique<int>(3));
  aft::poll(ioc);
  BOOST_TEST(first.calls == 1);
  BOOST_TEST(!first.error);
  BOOST_TEST_REQUIRE(first.value.has_value());
  BOOST_TEST_REQUIRE(*first.value != nullptr);
  BOOST_TEST(**first.value == 3);
  BOOST_TEST(second.calls == 1);
  BOOST_TEST(holds<af::invalid_state_error>(second.error));
  BOOST_CHECK_THROW(f.result(), af::invalid_state_error);
  BOOST_CHECK_THROW(f.get(), af::invalid_state_error);
}

CO_TEST_CASE(awaiting_a_taken_value_throws_invalid_state) {
  auto ex = co_await asio::this_coro::executor;
  const af::future<std::unique_ptr<int>> f(ex);
  f.set_result(std::make_unique<int>(1));
  auto p = co_await f.async_wait();
  BOOST_TEST(*p == 1);
  std::exception_ptr error;
  try {
    (void)co_await f.async_wait();
  } catch (...) {
    error = std::current_exception();
  }
  BOOST_TEST(holds<af::invalid_state_error>(error));
}

BOOST_AUTO_TEST_CASE(move_only_values_are_never_copied_and_never_leak) {
  aft::instance_counters counters;
  {
    asio::io_context ioc;
    const af::future<aft::move_only> f(ioc);
    std::optional<int> seen;
    f.async_wait([&](std::exception_ptr e, aft::move_only v) {
      if (!e)
        seen = v.value();
    });
    f.set_result(aft::move_only(counters, 21));
    aft::poll(ioc);
    BOOST_TEST((seen == std::optional<int>(21)));
  }
  BOOST_TEST(counters.live.load() == 0);
  BOOST_TEST(counters.copies.load() == 0);
}

BOOST_AUTO_TEST_CASE(unretrieved_move_only_value_is_destroyed_with_the_future) {
  aft::instance_counters counters;
  {
    asio::io_context ioc;
    const af::future<aft::move_only> f(ioc);
    f.set_result(aft::move_only(counters, 1));
    BOOST_TEST(counters.live.load() == 1);
  }
  BOOST_TEST(counters.live.load() == 0);
}

BOOST_AUTO_TEST_SUITE_END() // move_only

// =======================================================================================
BOOST_AUTO_TEST_SUITE(nested)

CO_TEST_CASE(awaiting_a_nested_future_yields_the_inner_value) {
  auto ex = co_await asio::this_coro::executor;
  const af::future<af::future<int>> outer(ex);
  const af::future<int> inner(ex);
  asio::co_spawn(
      ex,
      [outer, inner]() -> asio::awaitable<void> {
        co_await aft::yield_once();
        outer.set_result(inner); // the inner one is still pending
        co_await aft::yield_once();
        inner.set_result(5);
      },
      asio::detached);
  const int v = co_await outer.async_wait();
  BOOST_TEST(v == 5);
  BOOST_TEST((outer.result() == inner)); // result() is the inner future itself
}

CO_TEST_CASE(awaiting_a_nested_future_rethrows_the_inner_failure) {
  auto ex = co_await asio::this_coro::executor;
  const af::future<af::future<int>> outer(ex);
  outer.set_result(
      af::make_exceptional_future<int>(ex, std::make_exception_ptr(std::out_of_range("inner"))));
  std::exception_ptr error;
  try {
    (void)co_await outer.async_wait();
  } catch (...) {
    error = std::current_exception();
  }
  BOOST_TEST(holds<std::out_of_range>(error));
}

BOOST_AUTO_TEST_CASE(nested_callback_waiter_gets_the_inner_value) {
  asio::io_context ioc;
  const af::future<af::future<int>> outer(ioc);
  const af::future<int> inner(ioc);
  outcome<int> o;
  outer.async_wait(o.handler());
  outer.set_result(inner);
  aft::poll(ioc);
  BOOST_TEST(o.calls == 0); // still waiting for the inner future
  inner.set_result(4);
  aft::poll(ioc);
  BOOST_TEST((o.value == std::optional<int>(4)));
}

BOOST_AUTO_TEST_CASE(unwrap_completes_with_the_inner_outcome) {
  asio::io_context ioc;
  const af::future<af::future<int>> outer(ioc);
  const af::future<int> inner(ioc);
  const af::future<int> unwrapped = outer.unwrap();
  BOOST_TEST(!unwrapped.done());
  outer.set_result(inner);
  aft::poll(ioc);
  BOOST_TEST(!unwrapped.done());
  inner.set_result(3);
  BOOST_TEST(aft::run_until(ioc, [&] { return unwrapped.done(); }));
  BOOST_TEST(unwrapped.result() == 3);
}

BOOST_AUTO_TEST_CASE(unwrap_propagates_outer_and_inner_failures_and_cancellation) {
  asio::io_context ioc;
  const af::future<af::future<int>> outer_fails(ioc);
  const af::future<af::future<int>> inner_fails(ioc);
  const af::future<af::future<int>> outer_cancelled(ioc);
  const af::future<af::future<int>> inner_cancelled(ioc);
  auto u1 = outer_fails.unwrap();
  auto u2 = inner_fails.unwrap();
  auto u3 = outer_cancelled.unwrap();
  auto u4 = inner_cancelled.unwrap();
  const auto ex = ioc.get_executor();
  outer_fails.set_exception(std::runtime_error("outer"));
  inner_fails.set_result(
      af::make_exceptional_future<int>(ex, std::make_exception_ptr(std::runtime_error("inner"))));
  outer_cancelled.cancel("outer cancel");
  inner_cancelled.set_result(af::make_cancelled_future<int>(ex, "inner cancel"));
  BOOST_TEST(aft::run_until(ioc, [&] { return u1.done() && u2.done() && u3.done() && u4.done(); }));
  BOOST_TEST(what_of(thrown_by([&] { u1.result(); })) == "outer");
  BOOST_TEST(what_of(thrown_by([&] { u2.result(); })) == "inner");
  BOOST_TEST((cancel_message(thrown_by([&] { u3.result(); })) ==
              std::optional<std::string>("outer cancel")));
  BOOST_TEST((cancel_message(thrown_by([&] { u4.result(); })) ==
              std::optional<std::string>("inner cancel")));
}

CO_TEST_CASE(nested_void_futures_await_and_unwrap_to_void) {
  auto ex = co_await asio::this_coro::executor;
  const af::future<af::future<void>> outer(ex);
  const af::future<void> inner(ex);
  const af::future<void> unwrapped = outer.unwrap();
  asio::post(ex, [outer, inner] {
    outer.set_result(inner);
    inner.set_result();
  });
  co_await outer.async_wait();
  co_await unwrapped.async_wait();
  BOOST_TEST(unwrapped.done());
  BOOST_TEST(!unwrapped.cancelled());
}

BOOST_AUTO_TEST_SUITE_END() // nested

// =======================================================================================
BOOST_AUTO_TEST_SUITE(then)

BOOST_AUTO_TEST_CASE(then_maps_the_value) {
  asio::io_context ioc;
  aft::executor_stats stats;
  const af::future<int> f{
      asio::any_io_executor(aft::make_tracking_executor(ioc.get_executor(), stats))};
  bool ran_inline = false;
  int calls = 0;
  const af::future<int> g = f.then([&](int v) {
    ++calls;
    ran_inline = aft::inside_call::active();
    return v * 2;
  });
  {
    aft::inside_call marker;
    f.set_result(21);
  }
  BOOST_TEST(calls == 0);
  BOOST_TEST(aft::run_until(ioc, [&] { return g.done(); }));
  BOOST_TEST(g.result() == 42);
  BOOST_TEST(calls == 1);
  BOOST_TEST(!ran_inline);
  BOOST_TEST(stats.runs.load() >= 1u); // f ran on the future's executor
}

BOOST_AUTO_TEST_CASE(then_may_change_the_type_and_chain) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  const af::future<std::size_t> g =
      f.then([](int v) { return std::to_string(v); }).then([](std::string s) { return s.size(); });
  f.set_result(12345);
  BOOST_TEST(aft::run_until(ioc, [&] { return g.done(); }));
  BOOST_TEST(g.result() == 5u);
}

BOOST_AUTO_TEST_CASE(then_returning_void_gives_a_future_void) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  int seen = 0;
  const af::future<void> g = f.then([&](int v) { seen = v; });
  f.set_result(3);
  BOOST_TEST(aft::run_until(ioc, [&] { return g.done(); }));
  BOOST_CHECK_NO_THROW(g.result());
  BOOST_TEST(seen == 3);
}

BOOST_AUTO_TEST_CASE(then_on_a_void_future_calls_a_nullary_function) {
  asio::io_context ioc;
  const af::future<void> f(ioc);
  const af::future<std::string> g = f.then([] { return std::string("after"); });
  const af::future<void> h = f.then([] {});
  f.set_result();
  BOOST_TEST(aft::run_until(ioc, [&] { return g.done() && h.done(); }));
  BOOST_TEST(g.result() == "after");
  BOOST_CHECK_NO_THROW(h.result());
}

BOOST_AUTO_TEST_CASE(then_flattens_a_returned_future) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  const af::future<std::string> inner(ioc);
  const af::future<std::string> g = f.then([inner](int) { return inner; });
  f.set_result(1);
  aft::poll(ioc);
  BOOST_TEST(!g.done()); // waits for the returned future
  inner.set_result("flat");
  BOOST_TEST(aft::run_until(ioc, [&] { return g.done(); }));
  BOOST_TEST(g.result() == "flat");
}

BOOST_AUTO_TEST_CASE(then_exception_in_the_function_fails_the_result) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  const af::future<int> g = f.then([](int) -> int { throw std::out_of_range("in then"); });
  f.set_result(1);
  BOOST_TEST(aft::run_until(ioc, [&] { return g.done(); }));
  BOOST_TEST(!g.cancelled());
  BOOST_TEST(holds<std::out_of_range>(g.exception()));
}

BOOST_AUTO_TEST_CASE(then_on_a_failed_source_propagates_without_calling_the_function) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  int calls = 0;
  const af::future<int> g = f.then([&](int v) {
    ++calls;
    return v;
  });
  const auto error = std::make_exception_ptr(std::runtime_error("source"));
  f.set_exception(error);
  BOOST_TEST(aft::run_until(ioc, [&] { return g.done(); }));
  BOOST_TEST(calls == 0);
  BOOST_TEST(what_of(g.exception()) == "source");
}

BOOST_AUTO_TEST_CASE(then_on_a_cancelled_source_is_cancelled_without_calling_the_function) {
  asio::io_context ioc;
  const af::future<void> f(ioc);
  int calls = 0;
  const af::future<void> g = f.then([&] { ++calls; });
  f.cancel("stop");
  BOOST_TEST(aft::run_until(ioc, [&] { return g.done(); }));
  BOOST_TEST(calls == 0);
  BOOST_TEST(
      (cancel_message(thrown_by([&] { g.result(); })) == std::optional<std::string>("stop")));
}

BOOST_AUTO_TEST_CASE(then_on_a_done_future_still_runs_later) {
  asio::io_context ioc;
  const af::future<int> f = af::make_ready_future(ioc.get_executor(), 2);
  int calls = 0;
  const af::future<int> g = f.then([&](int v) {
    ++calls;
    return v + 1;
  });
  BOOST_TEST(calls == 0);
  BOOST_TEST(aft::run_until(ioc, [&] { return g.done(); }));
  BOOST_TEST(g.result() == 3);
}

BOOST_AUTO_TEST_CASE(then_receives_a_move_only_value) {
  asio::io_context ioc;
  const af::future<std::unique_ptr<int>> f(ioc);
  const af::future<int> g = f.then([](std::unique_ptr<int> p) { return *p; });
  f.set_result(std::make_unique<int>(8));
  BOOST_TEST(aft::run_until(ioc, [&] { return g.done(); }));
  BOOST_TEST(g.result() == 8);
}

BOOST_AUTO_TEST_CASE(cancelling_the_then_result_does_not_cancel_the_source) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  int calls = 0;
  const af::future<int> g = f.then([&](int v) {
    ++calls;
    return v;
  });
  BOOST_TEST(g.cancel());
  f.set_result(1);
  aft::poll(ioc);
  BOOST_TEST(!f.cancelled());
  BOOST_TEST(f.result() == 1);
  BOOST_TEST(calls == 0);
}

BOOST_AUTO_TEST_CASE(then_runs_the_function_on_its_associated_executor) {
  asio::io_context ioc;
  auto strand = asio::make_strand(ioc);
  const af::future<int> f(ioc);
  bool on_strand = false;
  const af::future<int> g = f.then(asio::bind_executor(strand, [&](int v) {
    on_strand = strand.running_in_this_thread();
    return v;
  }));
  f.set_result(1);
  BOOST_TEST(aft::run_until(ioc, [&] { return g.done(); }));
  BOOST_TEST(g.result() == 1);
  BOOST_TEST(on_strand);
}

BOOST_AUTO_TEST_SUITE_END() // then

// =======================================================================================
BOOST_AUTO_TEST_SUITE(helpers)

BOOST_AUTO_TEST_CASE(make_ready_future_holds_the_value) {
  asio::io_context ioc;
  const auto f = af::make_ready_future(ioc.get_executor(), std::string("ready"));
  BOOST_TEST(f.done());
  BOOST_TEST(!f.cancelled());
  BOOST_TEST(f.result() == "ready");
  BOOST_TEST((f.get_executor() == asio::any_io_executor(ioc.get_executor())));
  const auto from_context = af::make_ready_future(ioc, 5);
  BOOST_TEST(from_context.result() == 5);
  const af::future<void> v = af::make_ready_future(asio::any_io_executor(ioc.get_executor()));
  BOOST_TEST(v.done());
  BOOST_CHECK_NO_THROW(v.result());
}

BOOST_AUTO_TEST_CASE(make_exceptional_future_holds_the_exception) {
  asio::io_context ioc;
  const auto error = std::make_exception_ptr(std::runtime_error("x"));
  const auto f = af::make_exceptional_future<int>(ioc.get_executor(), error);
  BOOST_TEST(f.done());
  BOOST_TEST(!f.cancelled());
  BOOST_TEST((f.exception() == error));
}

BOOST_AUTO_TEST_CASE(make_cancelled_future_is_cancelled_with_the_message) {
  asio::io_context ioc;
  const auto f = af::make_cancelled_future<std::string>(ioc.get_executor(), "why");
  BOOST_TEST(f.done());
  BOOST_TEST(f.cancelled());
  BOOST_TEST((cancel_message(thrown_by([&] { f.result(); })) == std::optional<std::string>("why")));
}

CO_TEST_CASE(ready_futures_are_awaitable) {
  auto ex = co_await asio::this_coro::executor;
  BOOST_TEST(co_await af::make_ready_future(ex, 4).async_wait() == 4);
  bool cancelled = false;
  try {
    (void)co_await af::make_cancelled_future<int>(ex).async_wait();
  } catch (const af::cancelled_error&) {
    cancelled = true;
  }
  BOOST_TEST(cancelled);
}

BOOST_AUTO_TEST_SUITE_END() // helpers

// =======================================================================================
BOOST_AUTO_TEST_SUITE(blocking)

BOOST_AUTO_TEST_CASE(wait_for_returns_false_while_pending_and_true_when_done) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  BOOST_TEST(!f.wait_for(0ms));
  BOOST_TEST(!f.wait_for(1ms));
  f.set_result(1);
  BOOST_TEST(f.wait_for(0ms));
  BOOST_CHECK_NO_THROW(f.wait());
  BOOST_TEST(f.get() == 1);
}

BOOST_AUTO_TEST_CASE(get_rethrows_failures_and_cancellation) {
  asio::io_context ioc;
  const af::future<int> failed(ioc);
  failed.set_exception(std::runtime_error("x"));
  BOOST_CHECK_THROW(failed.get(), std::runtime_error);
  const af::future<int> cancelled(ioc);
  cancelled.cancel();
  BOOST_CHECK_THROW(cancelled.get(), af::cancelled_error);
  BOOST_CHECK_NO_THROW(cancelled.wait());
}

BOOST_AUTO_TEST_CASE(get_from_a_foreign_thread_returns_the_value_set_later) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  std::atomic<bool> finished{false};
  int got = 0;
  aft::bounded_thread waiter([&] {
    got = f.get();
    finished = true;
  });
  // Set from a handler of the context, while the waiter thread blocks (or is about to).
  asio::post(ioc, [f] { f.set_result(8); });
  BOOST_TEST(aft::run_until(ioc, [&] { return finished.load(); }));
  BOOST_TEST(waiter.join_for());
  BOOST_TEST(got == 8);
}

BOOST_AUTO_TEST_CASE(wait_for_from_a_foreign_thread_sees_a_result_set_on_another_thread) {
  asio::io_context ioc;
  const af::future<std::string> f(ioc);
  std::latch started(1);
  bool done_in_time = false;
  aft::bounded_thread waiter([&] {
    started.count_down();
    done_in_time = f.wait_for(aft::default_timeout);
  });
  started.wait();
  aft::bounded_thread setter([f] { f.set_result("cross"); });
  BOOST_TEST(setter.join_for());
  BOOST_TEST(waiter.join_for());
  BOOST_TEST(done_in_time);
  BOOST_TEST(f.result() == "cross");
}

BOOST_AUTO_TEST_CASE(many_foreign_threads_block_on_one_future) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  constexpr int threads = 4;
  std::atomic<int> sum{0};
  std::vector<std::unique_ptr<aft::bounded_thread>> waiters;
  for (int i = 0; i < threads; ++i)
    waiters.push_back(std::make_unique<aft::bounded_thread>([&] { sum += f.get(); }));
  f.set_result(10);
  for (auto& w : waiters)
    BOOST_TEST(w->join_for());
  BOOST_TEST(sum.load() == threads * 10);
}

namespace {
/// Calls `blocking(f)` inside a handler running on `ioc` (the future's own context, or
/// the context behind its strand) and reports whether it threw invalid_state_error. A
/// watchdog resolves the future if the call wrongly blocks, so the case fails, not hangs.
template <class Blocking>
bool throws_when_called_on_the_context_thread(asio::io_context& ioc, const af::future<int>& f,
                                              Blocking blocking) {
  watchdog release([f] { f.try_set_result(-1); });
  bool threw = false;
  asio::post(ioc, [&] {
    try {
      blocking(f);
    } catch (const af::invalid_state_error&) {
      threw = true;
    }
  });
  aft::poll(ioc);
  BOOST_TEST(!release.fired());
  return threw;
}
} // namespace

BOOST_AUTO_TEST_CASE(wait_on_the_thread_running_the_futures_context_throws) {
  asio::io_context ioc;
  const af::future<int> f(ioc);
  BOOST_TEST(
      throws_when_called_on_the_context_thread(ioc, f, [](const af::future<int>& g) { g.wait(); }));
  BOOST_TEST(throws_when_called_on_the_context_thread(
      ioc, f, [](const af::future<int>& g) { (void)g.wait_for(aft::default_timeout); }));
  BOOST_TEST(throws_when_called_on_the_context_thread(
      ioc, f, [](const af::future<int>& g) { (void)g.get(); }));
  BOOST_TEST(!f.done());
}

BOOST_AUTO_TEST_CASE(wait_inside_the_futures_strand_throws) {
  asio::io_context ioc;
  auto strand = asio::make_strand(ioc);
  const af::future<int> f(strand);
  watchdog release([f] { f.try_set_result(-1); });
  bool threw = false;
  asio::post(strand, [&] {
    try {
      f.wait();
    } catch (const af::invalid_state_error&) {
      threw = true;
    }
  });
  aft::poll(ioc);
  BOOST_TEST(!release.fired());
  BOOST_TEST(threw);
}

BOOST_AUTO_TEST_CASE(wait_on_a_thread_of_the_futures_thread_pool_throws) {
  asio::thread_pool pool(1);
  const af::future<int> f(pool);
  watchdog release([f] { f.try_set_result(-1); });
  std::promise<bool> threw;
  asio::post(pool, [&] {
    try {
      f.wait();
      threw.set_value(false);
    } catch (const af::invalid_state_error&) {
      threw.set_value(true);
    }
  });
  auto result = threw.get_future();
  BOOST_TEST_REQUIRE((result.wait_for(2 * aft::default_timeout) == std::future_status::ready));
  BOOST_TEST(result.get());
  BOOST_TEST(!release.fired());
  pool.join();
}

BOOST_AUTO_TEST_CASE(wait_on_a_thread_of_the_pool_of_a_tracked_pool_executor_throws) {
  // A thread_pool executor that tracks work has other property bits than an io_context's
  // (tracked is 8 there, 4 here): it must still be recognised.
  asio::thread_pool pool(1);
  std::promise<bool> threw;
  auto result = threw.get_future();
  {
    const auto tracked =
        asio::require(pool.get_executor(), asio::execution::outstanding_work.tracked);
    const af::future<int> f(tracked); // holds tracked work until destroyed
    watchdog release([f] { f.try_set_result(-1); });
    asio::post(pool, [&threw, f] {
      try {
        f.wait();
        threw.set_value(false);
      } catch (const af::invalid_state_error&) {
        threw.set_value(true);
      }
    });
    BOOST_TEST_REQUIRE((result.wait_for(2 * aft::default_timeout) == std::future_status::ready));
    BOOST_TEST(!release.fired());
  }
  BOOST_TEST(result.get());
  pool.join();
}

CO_TEST_CASE(wait_inside_a_coroutine_on_the_futures_context_throws) {
  auto ex = co_await asio::this_coro::executor;
  const af::future<int> f(ex);
  watchdog release([f] { f.try_set_result(-1); });
  BOOST_CHECK_THROW(f.wait(), af::invalid_state_error);
  BOOST_TEST(!release.fired());
}

BOOST_AUTO_TEST_CASE(blocking_wait_from_another_contexts_thread_is_allowed) {
  asio::io_context running;
  asio::io_context other;
  const af::future<int> f(other); // not the context this thread runs
  std::optional<bool> result;
  asio::post(running, [&] {
    try {
      result = f.wait_for(0ms);
    } catch (const af::invalid_state_error&) {
    }
  });
  aft::poll(running);
  BOOST_TEST((result == std::optional<bool>(false)));
}

BOOST_AUTO_TEST_SUITE_END() // blocking

// =======================================================================================
BOOST_AUTO_TEST_SUITE(lost_exceptions)

BOOST_AUTO_TEST_CASE(unretrieved_exception_is_reported_once_when_the_last_handle_dies) {
  recording_exception_handler handler;
  asio::io_context ioc;
  {
    af::future<int> f(ioc);
    const af::future<int> copy = f;
    f.set_exception(std::runtime_error("lost"));
    f = af::future<int>();
    aft::poll(ioc);
    BOOST_TEST(handler.count() == 0u); // a handle is still alive
  }
  aft::poll(ioc);
  BOOST_TEST_REQUIRE(handler.count() == 1u);
  BOOST_TEST(handler.reports()[0].what == "lost"); // what() of the exception itself
  BOOST_TEST(holds<std::runtime_error>(handler.reports()[0].error));
}

BOOST_AUTO_TEST_CASE(unretrieved_exception_with_a_non_retrieving_callback_is_reported) {
  recording_exception_handler handler;
  asio::io_context ioc;
  {
    const af::future<void> f(ioc);
    int calls = 0;
    f.add_done_callback([&](af::future<void> g) { calls += g.done() ? 1 : 0; });
    f.set_exception(std::runtime_error("ignored"));
    aft::poll(ioc);
    BOOST_TEST(calls == 1);
  }
  aft::poll(ioc);
  BOOST_TEST(handler.count() == 1u);
}

BOOST_AUTO_TEST_CASE(retrieved_exceptions_are_not_reported) {
  recording_exception_handler handler;
  {
    asio::io_context ioc;
    const auto fail = [&] {
      af::future<int> f(ioc);
      f.set_exception(std::runtime_error("seen"));
      return f;
    };
    BOOST_CHECK_THROW(fail().result(), std::runtime_error);
    BOOST_TEST(static_cast<bool>(fail().exception()));
    BOOST_CHECK_THROW(fail().get(), std::runtime_error);
    {
      outcome<int> o;
      fail().async_wait(o.handler());
      aft::poll(ioc);
      BOOST_TEST(o.calls == 1);
    }
    {
      const af::future<int> g = fail().then([](int v) { return v; });
      aft::poll(ioc);
      BOOST_TEST(g.done());
      BOOST_TEST(static_cast<bool>(g.exception())); // retrieve the derived one too
    }
    {
      bool caught = false;
      af::future<int> f = fail();
      asio::co_spawn(
          ioc,
          [f, &caught]() -> asio::awaitable<void> {
            try {
              (void)co_await f.async_wait();
            } catch (const std::runtime_error&) {
              caught = true;
            }
          },
          asio::detached);
      f = af::future<int>();
      BOOST_TEST(aft::run_until(ioc, [&] { return caught; }));
    }
    {
      af::future<int> f = fail();
      f.add_done_callback([](af::future<int> g) { (void)g.exception(); });
      f = af::future<int>();
      aft::poll(ioc);
    }
    aft::poll(ioc);
  }
  BOOST_TEST(handler.count() == 0u);
}

BOOST_AUTO_TEST_CASE(cancellation_and_success_are_never_reported) {
  recording_exception_handler handler;
  {
    asio::io_context ioc;
    af::future<int> cancelled(ioc);
    cancelled.cancel("not an error");
    af::future<int> succeeded(ioc);
    succeeded.set_result(1);
    af::future<int> pending(ioc);
    (void)pending;
    aft::poll(ioc);
  }
  BOOST_TEST(handler.count() == 0u);
}

BOOST_AUTO_TEST_CASE(set_exception_handler_returns_the_previous_handler) {
  int first_calls = 0;
  af::exception_handler original =
      af::set_exception_handler([&](std::exception_ptr, std::string_view) { ++first_calls; });
  af::exception_handler previous =
      af::set_exception_handler([](std::exception_ptr, std::string_view) {});
  BOOST_TEST_REQUIRE(static_cast<bool>(previous));
  previous(std::make_exception_ptr(std::runtime_error("x")), "x");
  BOOST_TEST(first_calls == 1);
  af::set_exception_handler(std::move(original)); // restore
}

BOOST_AUTO_TEST_SUITE_END() // lost_exceptions

// =======================================================================================
BOOST_AUTO_TEST_SUITE(shutdown)

namespace {

/// 300 rounds: 8 futures of a fresh context, each given a waiter by `attach(ioc, f, i)`
/// (counted in `counters`); another thread resolves them while this one destroys the
/// context. ASan/TSan check the race; every waiter must be gone once both are over.
template <class Attach>
void race_resolving_with_destruction(aft::instance_counters& counters, Attach attach) {
  constexpr int rounds = 300;
  constexpr int waiters = 8;
  for (int r = 0; r < rounds; ++r) {
    std::vector<af::future<int>> fs;
    auto ioc = std::make_unique<asio::io_context>();
    for (int i = 0; i < waiters; ++i)
      fs.emplace_back(*ioc);
    for (int i = 0; i < waiters; ++i)
      attach(*ioc, fs[static_cast<std::size_t>(i)], i);
    aft::poll(*ioc);
    BOOST_TEST_REQUIRE(counters.live.load() == waiters);
    std::latch go(2);
    aft::bounded_thread setter([&] {
      go.arrive_and_wait();
      for (const af::future<int>& f : fs)
        f.set_result(r);
    });
    go.arrive_and_wait();
    ioc.reset(); // races with the setter
    BOOST_TEST_REQUIRE(setter.join_for());
    BOOST_TEST_REQUIRE(counters.live.load() == 0);
  }
}

/// A coroutine on `ex` awaiting `f`, its frame counted.
template <class Executor>
void spawn_counted_waiter(const Executor& ex, const af::future<int>& f,
                          aft::instance_counters& counters) {
  asio::co_spawn(
      ex,
      [f, &counters]() -> asio::awaitable<void> {
        aft::counted in_frame(counters, 1);
        (void)co_await f.async_wait();
      },
      asio::detached);
}

} // namespace

BOOST_AUTO_TEST_CASE(resolving_on_another_thread_while_the_waiters_context_is_destroyed) {
  // The completer takes a waiter out of the future's list, so the context's shutdown cannot
  // take it; the shutdown must wait for the completer's submission to end instead of letting
  // the waiter service and the scheduler be destroyed under it.
  aft::instance_counters counters;
  race_resolving_with_destruction(counters,
                                  [&](asio::io_context& ioc, const af::future<int>& f, int) {
                                    spawn_counted_waiter(ioc.get_executor(), f, counters);
                                  });
}

BOOST_AUTO_TEST_CASE(resolving_on_another_thread_while_the_strand_waiters_context_is_destroyed) {
  // Waiters on strands made after the context's first future (so the strands' service is
  // the newer one, shut down first unless the library orders it): coroutines on their own
  // strands and handlers bound to strands. Each completion finds its strand idle, so it
  // queues the function and then schedules the strand, the second record in the spare the
  // wait set aside. The shutdown must wait for those submissions before the strands' service
  // destroys what they queued (before, that could free the waiter, spare included, under the
  // completer, which went on to use the freed spare).
  aft::instance_counters counters;
  race_resolving_with_destruction(counters, [&](asio::io_context& ioc, const af::future<int>& f,
                                                int i) {
    const auto strand = asio::make_strand(ioc);
    if (i % 2 == 0)
      spawn_counted_waiter(strand, f, counters);
    else
      f.async_wait(
          asio::bind_executor(strand, [c = aft::counted(counters, 1)](std::exception_ptr, int) {}));
  });
}

BOOST_AUTO_TEST_CASE(
    resolving_or_dropping_on_another_thread_while_the_callbacks_context_is_destroyed) {
  // Done-callbacks and then steps are registered with the context they run on, as waiters
  // are. Even rounds: another thread resolves the futures while the context is destroyed —
  // the shutdown waits for the completer's submissions instead of letting the scheduler be
  // destroyed under them. Odd rounds: another thread drops the futures' last handles while
  // the context is destroyed — the states' destruction and the shutdown's removal of the
  // same callbacks meet under the list's lock protocol. ASan/TSan check the races; nothing
  // runs, and every callback is gone once both are over.
  constexpr int rounds = 300;
  constexpr int futures = 6;
  aft::instance_counters counters;
  std::atomic<int> ran{0};
  for (int r = 0; r < rounds; ++r) {
    std::vector<af::future<int>> fs;
    std::vector<af::future<int>> steps;
    auto ioc = std::make_unique<asio::io_context>();
    for (int i = 0; i < futures; ++i) {
      fs.emplace_back(*ioc);
      fs.back().add_done_callback(
          [c = aft::counted(counters, 1), &ran](const af::future<int>&) { ++ran; });
      steps.push_back(fs.back().then([c = aft::counted(counters, 2), &ran](int v) {
        ++ran;
        return v;
      }));
    }
    BOOST_TEST_REQUIRE(counters.live.load() == 2 * futures);
    std::latch go(2);
    aft::bounded_thread other([&] {
      go.arrive_and_wait();
      if (r % 2 == 0) {
        for (const af::future<int>& f : fs)
          f.set_result(r);
      } else {
        fs.clear(); // the steps' states still hold their sources: drop those too
        steps.clear();
      }
    });
    go.arrive_and_wait();
    ioc.reset(); // races with the other thread
    BOOST_TEST_REQUIRE(other.join_for());
    fs.clear();
    steps.clear();
    BOOST_TEST_REQUIRE(counters.live.load() == 0);
  }
  BOOST_TEST(ran.load() == 0);
}

BOOST_AUTO_TEST_CASE(destroying_the_context_destroys_awaiting_coroutines_without_resuming_them) {
  aft::instance_counters counters;
  bool resumed = false;
  bool completion_ran = false;
  af::future<int> f; // outlives the context
  {
    asio::io_context ioc;
    f = af::future<int>(ioc);
    for (int i = 0; i < 3; ++i) {
      asio::co_spawn(
          ioc,
          [f, &counters, &resumed]() -> asio::awaitable<void> {
            aft::counted in_frame(counters, 1);
            (void)co_await f.async_wait();
            resumed = true;
          },
          [&](std::exception_ptr) { completion_ran = true; });
    }
    aft::poll(ioc);
    BOOST_TEST(counters.live.load() == 3);
  }
  BOOST_TEST(counters.live.load() == 0);
  BOOST_TEST(!resumed);
  BOOST_TEST(!completion_ran);
  f = af::future<int>(); // the last handle dies after the context: nothing to run
}

BOOST_AUTO_TEST_CASE(a_future_outliving_its_context_never_touches_it) {
  // Its context destroyed, a pending future can still be set (from any thread) and waited
  // for by blocking: the deadlock check does not ask the dead context which thread runs it.
  // Combinators over it, which would make their result on its executor, throw instead.
  af::future<int> f;
  {
    asio::io_context ioc;
    f = af::future<int>(ioc);
  }
  BOOST_TEST(!f.wait_for(0ms));
  BOOST_CHECK_THROW(af::shield(f), af::invalid_state_error);
  BOOST_CHECK_THROW(f.then([](int v) { return v; }), af::invalid_state_error);
  BOOST_CHECK_THROW(af::gather(f, f), af::invalid_state_error);
  BOOST_CHECK_THROW(af::gather(std::vector<af::future<int>>{f}), af::invalid_state_error);
  BOOST_CHECK_THROW(af::wait_for(f, 1s), af::invalid_state_error);
  BOOST_CHECK_THROW(af::wait(std::vector<af::future<int>>{f}), af::invalid_state_error);
  BOOST_CHECK_THROW(af::first_completed(std::vector<af::future<int>>{f}), af::invalid_state_error);
  BOOST_CHECK_THROW(af::as_completed(std::vector<af::future<int>>{f}), af::invalid_state_error);
  aft::bounded_thread setter([f] { f.set_result(4); });
  BOOST_TEST(f.get() == 4);
  BOOST_TEST(setter.join_for());
}

BOOST_AUTO_TEST_CASE(callbacks_whose_context_was_destroyed_are_dropped_not_posted) {
  // Registered while the context lived, resolved after it died: each callback is destroyed
  // uninvoked (as the context's shutdown destroys its waiters), never submitted to the dead
  // executor; a then() result is cancelled instead of staying pending, and a coroutine on
  // another context awaiting it resumes. A callback bound to a live executor still runs.
  aft::instance_counters counters;
  asio::io_context other;
  af::future<int> f;
  af::future<int> next;
  int invoked = 0;
  bool on_other = false;
  std::optional<std::exception_ptr> seen;
  {
    asio::io_context ioc;
    f = af::future<int>(ioc);
    f.add_done_callback([&, c = aft::counted(counters, 1)](af::future<int>) { ++invoked; });
    f.add_done_callback(asio::bind_executor(other, [&](af::future<int>) { on_other = true; }));
    next = f.then([](int v) { return v + 1; });
    asio::co_spawn(
        other,
        [next, &seen]() -> asio::awaitable<void> {
          try {
            (void)co_await next.async_wait();
            seen = nullptr;
          } catch (...) {
            seen = std::current_exception();
          }
        },
        asio::detached);
    aft::poll(other);
  }
  f.set_result(1);
  BOOST_TEST(invoked == 0);
  BOOST_TEST(counters.live.load() == 0); // destroyed at once
  BOOST_TEST(next.cancelled());
  BOOST_TEST(aft::run_until(other, [&] { return on_other && seen.has_value(); }));
  BOOST_TEST(aft::holds<af::cancelled_error>(*seen));
}

BOOST_AUTO_TEST_CASE(a_then_result_whose_future_dies_unresolved_is_cancelled) {
  asio::io_context ioc;
  af::future<int> next;
  {
    const af::future<int> f(ioc);
    next = f.then([](int v) { return v; });
  } // f's last handle: nothing can resolve it, nor run the continuation
  BOOST_TEST(next.cancelled());
}

BOOST_AUTO_TEST_CASE(destroying_the_context_destroys_callback_waiters_and_callbacks) {
  aft::instance_counters counters;
  int invoked = 0;
  {
    asio::io_context ioc;
    const af::future<int> pending(ioc);
    const af::future<int> done(ioc);
    pending.async_wait([&, c = aft::counted(counters, 1)](std::exception_ptr, int) { ++invoked; });
    pending.add_done_callback([&, c = aft::counted(counters, 2)](af::future<int>) { ++invoked; });
    done.add_done_callback([&, c = aft::counted(counters, 3)](af::future<int>) { ++invoked; });
    done.async_wait([&, c = aft::counted(counters, 4)](std::exception_ptr, int) { ++invoked; });
    done.set_result(1); // scheduled, but the context never runs them
    BOOST_TEST(counters.live.load() >= 4);
  }
  BOOST_TEST(counters.live.load() == 0);
  BOOST_TEST(invoked == 0);
}

BOOST_AUTO_TEST_CASE(destroying_the_waiters_context_unlinks_its_waiters_from_a_live_future) {
  // The future lives on a context that survives; the waiter's context dies first. Setting
  // the future afterwards must neither run nor touch the destroyed waiter (ASan checks).
  asio::io_context future_ctx;
  const af::future<int> f(future_ctx);
  aft::instance_counters counters;
  int invoked = 0;
  bool resumed = false;
  {
    asio::io_context waiter_ctx;
    f.async_wait(asio::bind_executor(
        waiter_ctx, [&, c = aft::counted(counters, 1)](std::exception_ptr, int) { ++invoked; }));
    asio::co_spawn(
        waiter_ctx,
        [f, &counters, &resumed]() -> asio::awaitable<void> {
          aft::counted in_frame(counters, 2);
          (void)co_await f.async_wait();
          resumed = true;
        },
        asio::detached);
    aft::poll(waiter_ctx);
    BOOST_TEST(counters.live.load() == 2);
  }
  BOOST_TEST(counters.live.load() == 0);
  outcome<int> survivor;
  f.async_wait(survivor.handler());
  f.set_result(1);
  aft::poll(future_ctx);
  BOOST_TEST(invoked == 0);
  BOOST_TEST(!resumed);
  BOOST_TEST((survivor.value == std::optional<int>(1)));
}

BOOST_AUTO_TEST_CASE(future_outliving_its_context_can_be_resolved_and_dropped) {
  af::future<int> f;
  {
    asio::io_context ioc;
    f = af::future<int>(ioc);
  }
  try {
    (void)f.try_set_result(1); // no waiters: nothing may be scheduled on the dead context
  } catch (const af::invalid_state_error&) {
  }
  f = af::future<int>();
}

BOOST_AUTO_TEST_CASE(fresh_contexts_at_the_same_address_work) {
  // Contexts created one after another usually reuse the same address: any per-context
  // caching must not hand a new context the dead one's service.
  for (int round = 0; round < 5; ++round) {
    aft::instance_counters counters;
    std::optional<int> value;
    {
      asio::io_context ioc;
      const af::future<int> f(ioc);
      const af::future<int> never(ioc);
      spawn_counted_waiter(ioc.get_executor(), never, counters);
      f.async_wait([&](std::exception_ptr e, int v) {
        if (!e)
          value = v;
      });
      f.set_result(round);
      aft::poll(ioc);
    }
    BOOST_TEST((value == std::optional<int>(round)));
    BOOST_TEST(counters.live.load() == 0);
  }
}

BOOST_AUTO_TEST_SUITE_END() // shutdown

// =======================================================================================
BOOST_AUTO_TEST_SUITE(closed_context)

BOOST_AUTO_TEST_CASE(awaiting_on_a_shut_down_context_throws_at_once) {
  closable_context ctx;
  const af::future<int> f(ctx);
  ctx.shutdown();
  int calls = 0;
  BOOST_CHECK_THROW(f.async_wait([&](std::exception_ptr, int) { ++calls; }),
                    af::invalid_state_error);
  BOOST_CHECK_THROW(f.async_wait(asio::bind_executor(ctx.get_executor(),
                                                     [&](std::exception_ptr, int) { ++calls; })),
                    af::invalid_state_error);
  BOOST_TEST(calls == 0);
}

BOOST_AUTO_TEST_CASE(awaiting_on_a_context_shut_down_after_earlier_waits_throws_at_once) {
  // Same as above, but the context had waiters before it shut down.
  closable_context ctx;
  const af::future<int> f(ctx);
  const af::future<int> earlier(ctx);
  int calls = 0;
  earlier.async_wait([&](std::exception_ptr, int) { ++calls; });
  ctx.shutdown(); // destroys the earlier waiter without running it
  BOOST_CHECK_THROW(f.async_wait([&](std::exception_ptr, int) { ++calls; }),
                    af::invalid_state_error);
  BOOST_TEST(calls == 0);
}

BOOST_AUTO_TEST_CASE(waiter_bound_to_a_shut_down_context_throws_at_once) {
  asio::io_context alive;
  closable_context closed;
  // The shutdown is known to the library once the context has seen a future or a wait
  // (its service exists); see docs/threading.md for the one undetectable case.
  const af::future<int> seen(closed);
  closed.shutdown();
  const af::future<int> f(alive);
  int calls = 0;
  BOOST_CHECK_THROW(f.async_wait(asio::bind_executor(closed.get_executor(),
                                                     [&](std::exception_ptr, int) { ++calls; })),
                    af::invalid_state_error);
  // The future itself is unaffected and other waiters still work.
  outcome<int> o;
  f.async_wait(o.handler());
  f.set_result(1);
  aft::poll(alive);
  BOOST_TEST((o.value == std::optional<int>(1)));
  BOOST_TEST(calls == 0);
}

BOOST_AUTO_TEST_SUITE_END() // closed_context

// =======================================================================================
BOOST_AUTO_TEST_SUITE(threads)

BOOST_AUTO_TEST_CASE(set_from_a_foreign_thread_completes_on_the_waiters_executor) {
  asio::io_context ioc;
  aft::executor_stats stats;
  const af::future<int> f(ioc);
  outcome<int> o;
  f.async_wait(
      asio::bind_executor(aft::make_tracking_executor(ioc.get_executor(), stats), o.handler()));
  int callback_calls = 0;
  f.add_done_callback(asio::bind_executor(aft::make_tracking_executor(ioc.get_executor(), stats),
                                          [&](af::future<int>) { ++callback_calls; }));
  aft::bounded_thread setter([f] { f.set_result(3); });
  BOOST_TEST(setter.join_for());
  BOOST_TEST(aft::run_until(ioc, [&] { return o.calls == 1 && callback_calls == 1; }));
  BOOST_TEST((o.value == std::optional<int>(3)));
  BOOST_TEST(stats.thread_count() == 1u); // only this thread, which runs ioc
  std::lock_guard<std::mutex> lock(stats.mutex);
  BOOST_TEST((stats.threads.count(std::this_thread::get_id()) == 1u));
}

// The issue's bar: at least 100k futures in total, raced by 4 threads while 2 threads run
// the io_context. TSan slows this down several times; it stays at the bar there too.
#if defined(__SANITIZE_THREAD__)
constexpr std::size_t stress_futures = 100'000;
#else
constexpr std::size_t stress_futures = 200'000;
#endif

BOOST_AUTO_TEST_CASE(racing_setters_cancellers_callbacks_and_waiters) {
  // Four threads walk the same futures in the same order; on each future every thread
  // registers one callback or waiter and then races to resolve it its own way:
  //   role 0: add_done_callback, try_set_result(i + 1)
  //   role 1: async_wait,        cancel()
  //   role 2: add_done_callback, try_set_exception(runtime_error)
  //   role 3: async_wait,        try_set_result(-(i + 1))
  // Exactly one resolution wins per future; every callback and waiter runs exactly once,
  // and all of them observe the winner's outcome.
  constexpr std::size_t n = stress_futures;
  constexpr int racers = 4;
  asio::io_context ioc;
  auto work = asio::make_work_guard(ioc);

  std::vector<af::future<int>> futures;
  futures.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    futures.emplace_back(ioc);

  std::vector<std::atomic<int>> wins(n);        // successful resolutions
  std::vector<std::atomic<int>> winner(n);      // role of the last successful resolver
  std::vector<std::atomic<int>> observed(n);    // outcome code seen by completions
  std::vector<std::atomic<int>> completions(n); // callbacks + waiters run
  for (std::size_t i = 0; i < n; ++i) {
    winner[i].store(-1, std::memory_order_relaxed);
    observed[i].store(-1, std::memory_order_relaxed);
  }
  std::atomic<int> inconsistent{0};
  std::atomic<std::size_t> total{0};
  std::promise<void> all_done;
  const std::size_t expected_total = n * racers;

  const auto value_for = [](std::size_t i, int role) {
    return role == 0 ? static_cast<int>(i) + 1 : -(static_cast<int>(i) + 1);
  };
  // Outcome code: the role whose resolution produced it, or -2 for garbage.
  const auto code_of = [&](std::size_t i, const std::exception_ptr& e, int v) {
    if (e) {
      if (holds<af::cancelled_error>(e))
        return 1;
      if (holds<std::runtime_error>(e))
        return 2;
      return -2;
    }
    if (v == value_for(i, 0))
      return 0;
    if (v == value_for(i, 3))
      return 3;
    return -2;
  };
  const auto completed = [&](std::size_t i, int code) {
    int expected = -1;
    if (code < 0 ||
        (!observed[i].compare_exchange_strong(expected, code, std::memory_order_relaxed) &&
         expected != code))
      inconsistent.fetch_add(1, std::memory_order_relaxed);
    completions[i].fetch_add(1, std::memory_order_relaxed);
    if (total.fetch_add(1, std::memory_order_acq_rel) + 1 == expected_total)
      all_done.set_value();
  };

  std::latch start(racers + 1);
  std::vector<std::thread> threads;
  for (int role = 0; role < racers; ++role) {
    threads.emplace_back([&, role] {
      start.arrive_and_wait();
      for (std::size_t i = 0; i < n; ++i) {
        const af::future<int>& f = futures[i];
        if (role % 2 == 0) {
          f.add_done_callback([&, i](af::future<int> g) {
            std::exception_ptr e;
            int v = 0;
            if (g.cancelled())
              e = std::make_exception_ptr(af::cancelled_error());
            else if (!(e = g.exception()))
              v = g.result();
            completed(i, code_of(i, e, v));
          });
        } else {
          f.async_wait([&, i](std::exception_ptr e, int v) { completed(i, code_of(i, e, v)); });
        }
        bool won = false;
        switch (role) {
        case 0:
          won = f.try_set_result(value_for(i, 0));
          break;
        case 1:
          won = f.cancel();
          break;
        case 2:
          won = f.try_set_exception(std::make_exception_ptr(std::runtime_error("r")));
          break;
        case 3:
          won = f.try_set_result(value_for(i, 3));
          break;
        }
        if (won) {
          wins[i].fetch_add(1, std::memory_order_relaxed);
          winner[i].store(role, std::memory_order_relaxed);
        }
      }
    });
  }
  std::vector<std::thread> runners;
  for (int r = 0; r < 2; ++r)
    runners.emplace_back([&] { ioc.run(); });
  start.arrive_and_wait();
  for (auto& t : threads)
    t.join();

  // Bounded wait for every callback and waiter (a hang guard, not a timing assertion).
  const bool finished =
      all_done.get_future().wait_for(std::chrono::seconds(120)) == std::future_status::ready;
  work.reset();
  if (!finished)
    ioc.stop();
  for (auto& t : runners)
    t.join();

  BOOST_TEST(finished);
  BOOST_TEST(total.load() == expected_total);
  BOOST_TEST(inconsistent.load() == 0);
  std::size_t bad_wins = 0, bad_completions = 0, wrong_outcome = 0, not_done = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (wins[i].load() != 1)
      ++bad_wins;
    if (completions[i].load() != racers)
      ++bad_completions;
    if (observed[i].load() != winner[i].load())
      ++wrong_outcome;
    if (!futures[i].done())
      ++not_done;
  }
  BOOST_TEST(bad_wins == 0u);
  BOOST_TEST(bad_completions == 0u);
  BOOST_TEST(wrong_outcome == 0u);
  BOOST_TEST(not_done == 0u);
}

BOOST_AUTO_TEST_CASE(racing_remove_done_callback_and_set_result) {
  // remove_done_callback racing the completion: a callback runs if and only if its removal
  // returned 0, never both and never neither.
#if defined(__SANITIZE_THREAD__)
  constexpr std::size_t n = 50'000;
#else
  constexpr std::size_t n = 100'000;
#endif
  asio::io_context ioc;
  auto work = asio::make_work_guard(ioc);
  std::vector<af::future<int>> futures;
  std::vector<af::callback_id> ids;
  std::vector<std::atomic<int>> ran(n);
  std::vector<std::size_t> removed(n, 0);
  futures.reserve(n);
  ids.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    futures.emplace_back(ioc);
    ids.push_back(futures.back().add_done_callback(
        [&ran, i](af::future<int>) { ran[i].fetch_add(1, std::memory_order_relaxed); }));
  }
  // The remover stays next to the setter: it removes callback i once the setter has
  // announced future i (odd i) or future i - 1 (even i), so both outcomes occur often.
  std::atomic<std::size_t> setter_at{0};
  std::latch start(3);
  std::thread remover([&] {
    start.arrive_and_wait();
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t wait_for = i % 2 == 1 ? i : (i == 0 ? 0 : i - 1);
      while (setter_at.load(std::memory_order_acquire) < wait_for)
        std::this_thread::yield();
      removed[i] = futures[i].remove_done_callback(ids[i]);
    }
  });
  std::thread setter([&] {
    start.arrive_and_wait();
    for (std::size_t i = 0; i < n; ++i) {
      setter_at.store(i, std::memory_order_release);
      futures[i].set_result(static_cast<int>(i));
    }
    setter_at.store(n, std::memory_order_release);
  });
  std::thread runner([&] { ioc.run(); });
  start.arrive_and_wait();
  remover.join();
  setter.join();
  // Every scheduled callback is queued by now; let the runner drain them and stop.
  work.reset();
  runner.join();
  std::size_t violations = 0, removals = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (ran[i].load() + static_cast<int>(removed[i]) != 1)
      ++violations;
    removals += removed[i];
  }
  BOOST_TEST(violations == 0u);
  BOOST_TEST_MESSAGE("removed before completion: " << removals << " of " << n);
}

BOOST_AUTO_TEST_CASE(last_handles_dropped_on_racing_threads) {
  // The last reference to each state dies on whichever thread lets go last: the setter,
  // the waiter-registering thread, or an io_context thread after the completion ran.
  // TSan checks that the state's destruction is ordered after every use.
#if defined(__SANITIZE_THREAD__)
  constexpr std::size_t n = 50'000;
#else
  constexpr std::size_t n = 100'000;
#endif
  aft::instance_counters counters;
  std::atomic<std::size_t> completions{0};
  {
    asio::io_context ioc;
    auto work = asio::make_work_guard(ioc);
    std::vector<af::future<aft::counted>> for_setter, for_waiter;
    for_setter.reserve(n);
    for_waiter.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      af::future<aft::counted> f(ioc);
      for_setter.push_back(f);
      for_waiter.push_back(std::move(f));
    }
    std::latch start(3);
    std::thread setter([&] {
      start.arrive_and_wait();
      for (std::size_t i = 0; i < n; ++i) {
        for_setter[i].set_result(aft::counted(counters, static_cast<int>(i)));
        for_setter[i] = af::future<aft::counted>();
      }
    });
    std::thread waiter([&] {
      start.arrive_and_wait();
      for (std::size_t i = 0; i < n; ++i) {
        for_waiter[i].async_wait(
            [&completions, keep = for_waiter[i]](std::exception_ptr, aft::counted) {
              completions.fetch_add(1, std::memory_order_relaxed);
            });
        for_waiter[i] = af::future<aft::counted>();
      }
    });
    std::vector<std::thread> runners;
    for (int r = 0; r < 2; ++r)
      runners.emplace_back([&] { ioc.run(); });
    start.arrive_and_wait();
    setter.join();
    waiter.join();
    work.reset();
    for (auto& t : runners)
      t.join();
  }
  BOOST_TEST(completions.load() == n);
  BOOST_TEST(counters.live.load() == 0);
}

BOOST_AUTO_TEST_CASE(racing_cross_thread_awaits_on_a_two_thread_context) {
  // Coroutines on a 2-thread io_context await futures set by 2 foreign threads.
#if defined(__SANITIZE_THREAD__)
  constexpr int count = 20'000;
#else
  constexpr int count = 50'000;
#endif
  asio::io_context ioc;
  std::vector<af::future<int>> futures;
  futures.reserve(count);
  for (int i = 0; i < count; ++i)
    futures.emplace_back(ioc);
  std::atomic<long long> sum{0};
  std::atomic<int> finished{0};
  for (int i = 0; i < count; ++i) {
    asio::co_spawn(
        ioc,
        [f = futures[static_cast<std::size_t>(i)], &sum, &finished]() -> asio::awaitable<void> {
          sum += co_await f.async_wait();
          ++finished;
        },
        asio::detached);
  }
  std::vector<std::thread> runners;
  for (int r = 0; r < 2; ++r)
    runners.emplace_back([&] { ioc.run_for(std::chrono::seconds(120)); });
  std::vector<std::thread> setters;
  for (int s = 0; s < 2; ++s) {
    setters.emplace_back([&, s] {
      for (int i = s; i < count; i += 2)
        futures[static_cast<std::size_t>(i)].set_result(i);
    });
  }
  for (auto& t : setters)
    t.join();
  for (auto& t : runners)
    t.join();
  BOOST_TEST(finished.load() == count);
  BOOST_TEST(sum.load() == static_cast<long long>(count) * (count - 1) / 2);
}

BOOST_AUTO_TEST_SUITE_END() // threads

// =======================================================================================
BOOST_AUTO_TEST_SUITE(exception_safety)

namespace {

/// What an armed throwing_move_fn's move constructor throws.
struct move_error : std::runtime_error {
  move_error() : std::runtime_error("throwing_move_fn: move failed") {}
};

/// A move-only callable taking `Args...` whose move constructor throws move_error once
/// `*armed` is set. It counts its calls, and its live instances through a counted member.
template <class... Args> class throwing_move_fn {
public:
  throwing_move_fn(const bool& armed, int& calls, aft::instance_counters& counters)
      : armed_(&armed), calls_(&calls), live_(counters, 0) {}
  throwing_move_fn(throwing_move_fn&& o) : armed_(o.armed_), calls_(o.calls_), live_(o.live_) {
    if (*armed_)
      throw move_error();
  }
  throwing_move_fn(const throwing_move_fn&) = delete;
  throwing_move_fn& operator=(const throwing_move_fn&) = delete;
  throwing_move_fn& operator=(throwing_move_fn&&) = delete;

  void operator()(Args...) { ++*calls_; }

private:
  const bool* armed_;
  int* calls_;
  aft::counted live_;
};

} // namespace

BOOST_AUTO_TEST_CASE(throwing_value_construction_when_setting_fails_the_future_and_throws) {
  // Setting a result claims the future, then constructs the value in it. A throwing
  // construction must not leave it claimed but never done: it fails with that exception
  // (awaiters see it), and the setter sees it thrown.
  asio::io_context ioc;
  aft::copy_control control;
  const af::future<aft::throwing_copy> f(ioc);
  outcome<aft::throwing_copy> o;
  f.async_wait(o.handler());
  control.fail_after(0);
  // The argument initializes try_set_result's parameter without a copy; moving it into
  // the future copies (throwing_copy has no move constructor), and that copy throws.
  // (set_result forwards to try_set_result, copying once more before the claim.)
  BOOST_CHECK_THROW(f.try_set_result(aft::throwing_copy(control, 1)), aft::copy_error);
  BOOST_TEST(f.done());
  BOOST_TEST(!f.cancelled());
  BOOST_TEST(holds<aft::copy_error>(thrown_by([&] { (void)f.result(); })));
  BOOST_CHECK_THROW(f.set_exception(std::make_exception_ptr(std::runtime_error("late"))),
                    af::invalid_state_error);
  aft::poll(ioc);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(holds<aft::copy_error>(o.error));
  BOOST_TEST(!aft::has_outstanding_work(ioc));
}

BOOST_AUTO_TEST_CASE(exception_thrown_to_the_setter_is_not_reported_as_lost) {
  // The setter was told: the failure it caused is not also a lost exception.
  recording_exception_handler reports;
  {
    asio::io_context ioc;
    aft::copy_control control;
    const af::future<aft::throwing_copy> f(ioc);
    control.fail_after(0);
    BOOST_CHECK_THROW(f.try_set_result(aft::throwing_copy(control, 1)), aft::copy_error);
    BOOST_TEST(f.done());
  }
  BOOST_TEST(reports.count() == 0u);
}

BOOST_AUTO_TEST_CASE(throwing_value_copy_in_unwrap_fails_the_result_not_run) {
  // unwrap copies the inner value into its result inside a done-callback. If that copy
  // throws, the result fails with the exception; the exception has its place there and
  // does not also escape io_context::run().
  asio::io_context ioc;
  aft::copy_control control;
  const af::future<af::future<aft::throwing_copy>> outer(ioc);
  const af::future<aft::throwing_copy> inner(ioc);
  const af::future<aft::throwing_copy> out = outer.unwrap();
  outer.set_result(inner);
  inner.set_result(aft::throwing_copy(control, 1));
  control.fail_after(0);
  BOOST_CHECK_NO_THROW(aft::poll(ioc));
  BOOST_TEST(out.done());
  BOOST_TEST(holds<aft::copy_error>(thrown_by([&] { (void)out.result(); })));
}

BOOST_AUTO_TEST_CASE(throwing_value_copy_into_a_then_result_fails_it) {
  // then() stores the function's result in its future; if that copy throws, the future
  // fails with the exception instead of staying claimed and pending.
  asio::io_context ioc;
  aft::copy_control control;
  const af::future<int> f(ioc);
  const af::future<aft::throwing_copy> g =
      f.then([&control](int v) { return aft::throwing_copy(control, v); });
  control.fail_after(0);
  f.set_result(1);
  BOOST_CHECK_NO_THROW(aft::poll(ioc));
  BOOST_TEST(g.done());
  BOOST_TEST(holds<aft::copy_error>(thrown_by([&] { (void)g.result(); })));
}

BOOST_AUTO_TEST_CASE(throwing_value_copy_in_delivery_completes_the_waiter_with_it) {
  // A waiter receives a copy of the value. If the copy throws, the waiter still completes,
  // with that exception (and a default value), instead of being destroyed uninvoked.
  asio::io_context ioc;
  aft::copy_control control;
  const af::future<aft::throwing_copy> f(ioc);
  outcome<aft::throwing_copy> linked, late;
  f.async_wait(linked.handler()); // completed by the setter
  f.set_result(aft::throwing_copy(control, 1));
  f.async_wait(late.handler()); // the future is done: completed by the initiation
  control.fail_after(0);
  BOOST_CHECK_NO_THROW(aft::poll(ioc));
  BOOST_TEST(linked.calls == 1);
  BOOST_TEST(holds<aft::copy_error>(linked.error));
  BOOST_TEST(late.calls == 1);
  BOOST_TEST(holds<aft::copy_error>(late.error));
  BOOST_TEST(!aft::has_outstanding_work(ioc));
  // The value itself is intact: once copies work again, a waiter gets it.
  control.allowed = -1;
  outcome<aft::throwing_copy> again;
  f.async_wait(again.handler());
  aft::poll(ioc);
  BOOST_TEST_REQUIRE(again.value.has_value());
  BOOST_TEST(again.value->value() == 1);
}

CO_TEST_CASE(awaiting_a_value_whose_copy_throws_throws_the_copy_error) {
  auto ex = co_await asio::this_coro::executor;
  aft::copy_control control;
  const af::future<aft::throwing_copy> f(ex);
  f.set_result(aft::throwing_copy(control, 1));
  control.fail_after(0);
  bool caught = false;
  try {
    (void)co_await f.async_wait();
  } catch (const aft::copy_error&) {
    caught = true;
  }
  BOOST_TEST(caught);
}

BOOST_AUTO_TEST_CASE(callback_on_a_done_future_whose_executor_throws_is_destroyed_once) {
  // The callback is submitted at once; the submission throws. The callback must be
  // destroyed exactly once and the exception reach the caller. The heap-owning capture
  // turns a second destruction into a double free (ASan, glibc); `live` would go to -1.
  asio::io_context ioc;
  const af::future<int> f(ioc);
  f.set_result(1);
  aft::instance_counters counters;
  std::atomic<std::size_t> attempts{0};
  int calls = 0;
  BOOST_CHECK_THROW(f.add_done_callback(asio::bind_executor(
                        aft::throwing_executor(ioc.get_executor(), attempts),
                        [&calls, live = aft::counted(counters, 1),
                         payload = std::vector<int>(16, 7)](af::future<int>) { ++calls; })),
                    aft::execute_error);
  BOOST_TEST(attempts.load() == 1u);
  BOOST_TEST(counters.live.load() == 0);
  aft::poll(ioc);
  BOOST_TEST(calls == 0);
  BOOST_TEST(!aft::has_outstanding_work(ioc));
}

BOOST_AUTO_TEST_CASE(cancellation_slot_failure_propagates_and_leaves_no_waiter_behind) {
  // Installing the cancellation handler can throw (asio::cancellation_slot allocates its
  // storage). The initiation must then propagate the exception and leave nothing behind:
  // no registered waiter, no handler, no outstanding work.
  asio::io_context ioc;
  const af::future<int> f(ioc);
  asio::cancellation_signal signal;
  const std::function<void()> refuse = [] { throw std::bad_alloc(); };
  aft::instance_counters counters;
  int calls = 0;
  BOOST_CHECK_THROW(
      f.async_wait(asio::bind_cancellation_slot(
          aft::hooked_slot(signal.slot(), refuse),
          [&calls, live = aft::counted(counters, 1)](std::exception_ptr, int) { ++calls; })),
      std::bad_alloc);
  BOOST_TEST(counters.live.load() == 0);
  BOOST_TEST(!signal.slot().has_handler());
  BOOST_TEST(!aft::has_outstanding_work(ioc)); // run() returns
  f.set_result(1);
  aft::poll(ioc);
  BOOST_TEST(calls == 0);
  // The future is still usable by other waiters.
  outcome<int> o;
  f.async_wait(o.handler());
  aft::poll(ioc);
  BOOST_TEST((o.value == std::optional<int>(1)));
}

BOOST_AUTO_TEST_CASE(submission_failure_of_a_wait_done_during_initiation_propagates) {
  // The future becomes done between async_wait's first check and the linking of its
  // waiter (in real life: set_result on another thread; here deterministically, from the
  // slot hook, which runs in between). The initiation then submits the completion itself;
  // a submission failure must reach the initiator, as on the done-future path, not end in
  // std::terminate inside a noexcept completion path.
  asio::io_context ioc;
  const af::future<int> f(ioc);
  asio::cancellation_signal signal;
  const std::function<void()> resolve = [&] { f.set_result(1); };
  std::atomic<std::size_t> attempts{0};
  aft::instance_counters counters;
  int calls = 0;
  BOOST_CHECK_THROW(f.async_wait(asio::bind_cancellation_slot(
                        aft::hooked_slot(signal.slot(), resolve),
                        asio::bind_executor(aft::throwing_executor(ioc.get_executor(), attempts),
                                            [&calls, live = aft::counted(counters, 1)](
                                                std::exception_ptr, int) { ++calls; }))),
                    aft::execute_error);
  BOOST_TEST(f.done());
  BOOST_TEST(attempts.load() == 1u);
  BOOST_TEST(counters.live.load() == 0);
  BOOST_TEST(!signal.slot().has_handler());
  BOOST_TEST(!aft::has_outstanding_work(ioc));
  BOOST_TEST(calls == 0);
}

BOOST_AUTO_TEST_CASE(throwing_handler_move_at_completion_frees_the_waiter) {
  // Completing moves the handler out of the waiter's storage. If that move throws, the
  // exception leaves run() (as with Asio's own operations) and the storage, the handler
  // and the future's reference are still released.
  asio::io_context ioc;
  aft::instance_counters counters;
  bool armed = false;
  int calls = 0;
  {
    const af::future<int> f(ioc);
    f.async_wait(throwing_move_fn<std::exception_ptr, int>(armed, calls, counters));
    BOOST_TEST(counters.live.load() == 1);
    armed = true;
    f.set_result(1);
    BOOST_CHECK_THROW(aft::poll(ioc), move_error);
  }
  BOOST_TEST(calls == 0);
  BOOST_TEST(counters.live.load() == 0);
  BOOST_TEST(!aft::has_outstanding_work(ioc));
}

BOOST_AUTO_TEST_CASE(throwing_callback_move_at_completion_frees_the_callback) {
  asio::io_context ioc;
  aft::instance_counters counters;
  bool armed = false;
  int calls = 0;
  {
    const af::future<int> f(ioc);
    f.add_done_callback(throwing_move_fn<af::future<int>>(armed, calls, counters));
    BOOST_TEST(counters.live.load() == 1);
    armed = true;
    f.set_result(1);
    BOOST_CHECK_THROW(aft::poll(ioc), move_error);
  }
  BOOST_TEST(calls == 0);
  BOOST_TEST(counters.live.load() == 0);
  BOOST_TEST(!aft::has_outstanding_work(ioc));
}

BOOST_AUTO_TEST_SUITE_END() // exception_safety

BOOST_AUTO_TEST_SUITE_END() // future_
