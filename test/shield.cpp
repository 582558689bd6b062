// Tests for <asio_futures/shield.hpp>: shield.
#include <asio_futures/shield.hpp>

#include "support/checks.hpp"
#include "support/co_test.hpp"

#include <asio_futures/task.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <exception>
#include <latch>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace asio = boost::asio;
namespace af = asio_futures;
namespace aft = asio_futures_test;

namespace {

using aft::cancel_message;
using aft::holds;
using aft::lifetime_of;
using aft::what_of;

static_assert(
    std::is_same_v<decltype(af::shield(std::declval<af::future<int>>())), af::future<int>>);
static_assert(
    std::is_same_v<decltype(af::shield(std::declval<af::task<void>>())), af::future<void>>);

asio::awaitable<int> await_future(af::future<int> f) {
  co_return co_await f.async_wait();
}

asio::awaitable<int> slow_value(af::future<void> go, int v) {
  co_await go.async_wait();
  co_return v;
}

} // namespace

BOOST_AUTO_TEST_SUITE(shield_)

BOOST_AUTO_TEST_CASE(follows_the_inner_value) {
  asio::io_context ioc;
  af::future<int> inner(ioc);
  af::future<int> outer = af::shield(inner);
  BOOST_TEST((outer != inner));
  BOOST_TEST((outer.get_executor() == inner.get_executor()));
  BOOST_TEST(!outer.done());
  inner.set_result(3);
  BOOST_TEST_REQUIRE(outer.done()); // forwarded inline by the inner's completer
  BOOST_TEST(outer.result() == 3);
  BOOST_TEST(inner.result() == 3);
}

CO_TEST_CASE(awaiting_a_shield) {
  auto ex = co_await asio::this_coro::executor;
  af::future<void> inner(ex);
  asio::post(ex, [inner] { inner.set_result(); });
  co_await af::shield(inner).async_wait();
  BOOST_TEST(inner.done());
}

BOOST_AUTO_TEST_CASE(a_done_inner_is_returned_itself) {
  asio::io_context ioc;
  auto inner = af::make_ready_future(ioc, 1);
  BOOST_TEST((af::shield(inner) == inner));
}

BOOST_AUTO_TEST_CASE(outer_cancel_leaves_inner_running_and_inner_still_reaches_its_awaiters) {
  asio::io_context ioc;
  af::future<int> inner(ioc);
  std::optional<int> other;
  inner.async_wait([&](std::exception_ptr e, int v) {
    if (!e)
      other = v;
  });
  af::future<int> outer = af::shield(inner);
  BOOST_TEST(outer.cancel("outer only"));
  BOOST_TEST(outer.cancelled());
  BOOST_TEST((cancel_message(aft::thrown_by([&] { outer.result(); })) ==
              std::optional<std::string>("outer only")));
  BOOST_TEST(!inner.done());
  inner.set_result(8);
  aft::poll(ioc);
  BOOST_TEST((other == std::optional<int>(8)));
  BOOST_TEST(outer.cancelled());
}

BOOST_AUTO_TEST_CASE(inner_failure_propagates_to_the_outer) {
  asio::io_context ioc;
  af::future<int> inner(ioc);
  auto outer = af::shield(inner);
  inner.set_exception(std::runtime_error("inner failed"));
  BOOST_TEST_REQUIRE(outer.done());
  BOOST_TEST(!outer.cancelled());
  BOOST_TEST(what_of(outer.exception()) == "inner failed");
}

BOOST_AUTO_TEST_CASE(inner_cancel_cancels_the_outer_with_its_message) {
  asio::io_context ioc;
  af::future<void> inner(ioc);
  auto outer = af::shield(inner);
  inner.cancel("inner cancelled");
  BOOST_TEST_REQUIRE(outer.cancelled());
  BOOST_TEST((cancel_message(aft::thrown_by([&] { outer.result(); })) ==
              std::optional<std::string>("inner cancelled")));
}

BOOST_AUTO_TEST_CASE(cancelling_the_task_awaiting_a_shield_does_not_cancel_the_inner) {
  asio::io_context ioc;
  af::future<int> inner(ioc);
  af::task<int> t = af::create_task(ioc, await_future(af::shield(inner)));
  aft::poll(ioc); // t awaits the shield
  t.cancel("stop");
  ioc.run();
  BOOST_TEST(t.cancelled());
  BOOST_TEST(!inner.done());
  inner.set_result(1);
  BOOST_TEST(inner.result() == 1);
}

BOOST_AUTO_TEST_CASE(terminal_cancellation_of_an_awaiter_cancels_only_the_outer) {
  asio::io_context ioc;
  af::future<int> inner(ioc);
  asio::cancellation_signal sig;
  std::exception_ptr error;
  af::shield(inner).async_wait(asio::bind_cancellation_slot(
      sig.slot(), [&](std::exception_ptr e, int) { error = std::move(e); }));
  sig.emit(asio::cancellation_type::terminal);
  aft::poll(ioc);
  BOOST_TEST(holds<af::cancelled_error>(error));
  BOOST_TEST(!inner.done());
  inner.set_result(2);
}

BOOST_AUTO_TEST_CASE(shielded_task_is_not_cancelled_with_the_outer) {
  asio::io_context ioc;
  af::future<void> go(ioc);
  af::task<int> t = af::create_task(ioc, slow_value(go, 5));
  auto outer = af::shield(t);
  outer.cancel();
  BOOST_TEST(t.cancelling() == 0);
  go.set_result();
  ioc.run();
  BOOST_TEST(t.result() == 5);
  BOOST_TEST(outer.cancelled());
}

BOOST_AUTO_TEST_CASE(move_only_value_goes_to_the_outer_or_stays_if_the_outer_was_cancelled) {
  asio::io_context ioc;
  af::future<std::unique_ptr<int>> inner(ioc);
  auto outer = af::shield(inner);
  inner.set_result(std::make_unique<int>(1));
  BOOST_TEST(*outer.get() == 1);
  BOOST_CHECK_THROW(inner.get(), af::invalid_state_error); // taken by the shield

  af::future<std::unique_ptr<int>> kept(ioc);
  auto cancelled = af::shield(kept);
  cancelled.cancel();
  kept.set_result(std::make_unique<int>(2));
  BOOST_TEST(*kept.get() == 2);
}

BOOST_AUTO_TEST_CASE(outer_cancel_releases_the_inner) {
  asio::io_context ioc;
  std::weak_ptr<int> inner_alive;
  af::future<int> outer;
  {
    af::future<int> inner(ioc);
    inner_alive = lifetime_of(inner);
    outer = af::shield(inner);
  }
  BOOST_TEST(!inner_alive.expired()); // kept by the pending shield
  outer.cancel();
  BOOST_TEST(inner_alive.expired()); // detached and released: nobody else held it
}

BOOST_AUTO_TEST_CASE(dropping_the_outer_does_not_disturb_the_inner) {
  aft::recording_exception_handler reports;
  asio::io_context ioc;
  af::future<int> inner(ioc);
  { auto outer = af::shield(inner); }
  inner.set_result(3);
  BOOST_TEST(inner.result() == 3);
  BOOST_TEST(reports.count() == 0u);
}

struct copy_bomb {
  int v = 0;
  copy_bomb() = default;
  explicit copy_bomb(int x) : v(x) {}
  copy_bomb(const copy_bomb&) { throw std::runtime_error("copy failed"); }
  copy_bomb(copy_bomb&&) noexcept = default;
};

BOOST_AUTO_TEST_CASE(a_value_whose_copy_throws_fails_the_outer_only) {
  asio::io_context ioc;
  af::future<copy_bomb> inner(ioc);
  auto outer = af::shield(inner);
  inner.set_result(copy_bomb(2));
  BOOST_TEST_REQUIRE(outer.done());
  BOOST_TEST(what_of(outer.exception()) == "copy failed");
  BOOST_TEST(inner.result().v == 2);
}

BOOST_AUTO_TEST_CASE(
    context_destroyed_while_a_coroutine_awaits_a_shield_of_its_own_future_frees_it) {
  // Review finding: the shield and an inner only the frame held kept each other alive.
  using fi = af::future<int>;
  for (const bool on_strand : {false, true}) {
    std::vector<std::weak_ptr<int>> alive;
    aft::destroy_context_while_suspended(
        [&](asio::any_io_executor ex) -> asio::awaitable<void> {
          fi a(ex), b(ex);
          alive.push_back(lifetime_of(a));
          alive.push_back(lifetime_of(b));
          auto nested = af::shield(af::shield(b));
          co_await af::shield(a).async_wait();
        },
        on_strand);
    BOOST_TEST(aft::all_expired(alive));
  }
}

BOOST_AUTO_TEST_CASE(dropping_the_outer_lets_go_of_the_inner) {
  asio::io_context ioc;
  std::weak_ptr<int> inner_alive;
  {
    af::future<int> inner(ioc);
    inner_alive = lifetime_of(inner);
    auto outer = af::shield(inner);
  }
  BOOST_TEST(inner_alive.expired()); // nobody could read the outer: the inner is not kept
  BOOST_TEST(aft::poll(ioc) == 0);   // ... nor cancelled
}

BOOST_AUTO_TEST_CASE(empty_handle_throws_invalid_state_error) {
  BOOST_CHECK_THROW(af::shield(af::future<int>()), af::invalid_state_error);
}

BOOST_AUTO_TEST_CASE(stress_inner_completion_races_with_outer_cancel) {
  constexpr int rounds = 5000;
  asio::io_context ioc;
  std::vector<af::future<int>> inners;
  std::vector<af::future<int>> outers;
  for (int r = 0; r < rounds; ++r) {
    inners.emplace_back(ioc);
    outers.push_back(af::shield(inners.back()));
  }
  // Both threads start together and walk the rounds in the same order.
  std::latch start(2);
  aft::bounded_thread setter([&] {
    start.arrive_and_wait();
    for (int r = 0; r < rounds; ++r)
      inners[r].set_result(r);
  });
  aft::bounded_thread canceller([&] {
    start.arrive_and_wait();
    for (int r = 0; r < rounds; ++r)
      outers[r].cancel();
  });
  BOOST_TEST_REQUIRE(setter.join_for());
  BOOST_TEST_REQUIRE(canceller.join_for());
  for (int r = 0; r < rounds; ++r) {
    BOOST_TEST_REQUIRE(outers[r].done());
    BOOST_TEST(inners[r].result() == r); // never cancelled through the shield
    if (!outers[r].cancelled())
      BOOST_TEST(outers[r].result() == r);
  }
}

BOOST_AUTO_TEST_CASE(stress_inner_completion_races_with_dropping_the_outer) {
  // The outer's last handle goes (it lets go of the inner) while the inner completes (which
  // forwards into the outer): under TSan/ASan, no race, no leak, no use after free.
  constexpr int rounds = 5000;
  asio::io_context ioc;
  std::vector<af::future<int>> inners;
  std::vector<af::future<int>> outers;
  for (int r = 0; r < rounds; ++r) {
    inners.emplace_back(ioc);
    outers.push_back(af::shield(af::shield(inners.back())));
  }
  std::latch start(2);
  aft::bounded_thread setter([&] {
    start.arrive_and_wait();
    for (int r = 0; r < rounds; ++r)
      inners[r].set_result(r);
  });
  aft::bounded_thread dropper([&] {
    start.arrive_and_wait();
    for (int r = 0; r < rounds; ++r)
      outers[r] = af::future<int>();
  });
  BOOST_TEST_REQUIRE(setter.join_for());
  BOOST_TEST_REQUIRE(dropper.join_for());
  for (int r = 0; r < rounds; ++r)
    BOOST_TEST_REQUIRE(inners[r].result() == r);
  BOOST_TEST(aft::poll(ioc) == 0); // nothing was scheduled: no waiter, no callback
}

BOOST_AUTO_TEST_CASE(a_result_resolved_through_its_handle_lets_go_of_the_inner) {
  // Review finding: resolving the result directly left the shield's node on a pending inner,
  // so an inner that is a combinator result stayed observed (and leaked) forever.
  asio::io_context ioc;
  std::weak_ptr<int> alive;
  {
    af::future<int> a(ioc);
    alive = lifetime_of(a);
    auto outer = af::shield(af::shield(a));
    outer.set_result(1);
    auto direct = af::shield(a);
    direct.set_result(2);
  }
  BOOST_TEST(alive.expired());
}

BOOST_AUTO_TEST_SUITE_END()
