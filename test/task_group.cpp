//
// test/task_group.cpp
//
// task_group: join, failure aggregation, cancellation both ways, misuse,
// destruction with live children, children spawning children, threads.
//
#include <asio_futures/sleep.hpp>
#include <asio_futures/task_group.hpp>

#include "support/alloc_fault.hpp"
#include "support/checks.hpp"
#include "support/co_test.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace asio = boost::asio;
namespace af = asio_futures;
namespace aft = asio_futures_test;

using namespace std::chrono_literals;

namespace {

asio::awaitable<int> value_after_yields(int v, int yields) {
  co_await aft::yield_n(yields);
  co_return v;
}

asio::awaitable<int> fail_after_yields(int yields, std::string what) {
  co_await aft::yield_n(yields);
  throw std::runtime_error(what);
}

asio::awaitable<void> wait_on(af::future<void> f) {
  co_await f.async_wait();
}

/// Waits on `f`; records whether it was cancelled (cancelled_error) into `*cancelled`.
asio::awaitable<void> wait_recording(af::future<void> f, std::atomic<bool>* cancelled) {
  try {
    co_await f.async_wait();
  } catch (const af::cancelled_error&) {
    *cancelled = true;
    throw;
  }
}

/// Runs `body` as a task on `ioc` and runs the context until it is done.
template <class F> std::exception_ptr run_task(asio::io_context& ioc, F body) {
  const af::task<void> t = af::create_task(ioc, std::move(body));
  BOOST_TEST_REQUIRE(aft::run_until(ioc, [&] { return t.done(); }));
  if (t.cancelled())
    return std::make_exception_ptr(af::cancelled_error("(task cancelled)"));
  return t.exception();
}

/// Joins `tg`; the exception_group it throws, if any.
asio::awaitable<std::optional<af::exception_group>> join_catching(af::task_group& tg) {
  try {
    co_await tg.async_join();
  } catch (const af::exception_group& g) {
    co_return g;
  }
  co_return std::nullopt;
}

std::vector<std::string> whats(const af::exception_group& g) {
  std::vector<std::string> out;
  for (const auto& e : g.exceptions())
    out.push_back(aft::what_of(e));
  return out;
}

} // namespace

BOOST_AUTO_TEST_SUITE(task_group_)

// =======================================================================================
BOOST_AUTO_TEST_SUITE(join)

BOOST_AUTO_TEST_CASE(join_waits_for_every_child_and_results_are_in_the_tasks) {
  asio::io_context ioc;
  std::vector<af::task<int>> tasks;
  bool joined = false;
  const auto e = run_task(ioc, [&]() -> asio::awaitable<void> {
    af::task_group tg(co_await asio::this_coro::executor);
    for (int i = 0; i < 5; ++i)
      tasks.push_back(tg.create_task(value_after_yields(i * 10, 5 - i)));
    BOOST_TEST(tg.size() == 5u);
    co_await tg.async_join();
    joined = true;
    BOOST_TEST(tg.size() == 0u);
  });
  BOOST_TEST(!e);
  BOOST_TEST(joined);
  for (int i = 0; i < 5; ++i) {
    BOOST_TEST(tasks[static_cast<std::size_t>(i)].done());
    BOOST_TEST(tasks[static_cast<std::size_t>(i)].result() == i * 10);
  }
}

BOOST_AUTO_TEST_CASE(empty_group_joins_at_once) {
  asio::io_context ioc;
  bool joined = false;
  const auto e = run_task(ioc, [&]() -> asio::awaitable<void> {
    af::task_group tg(ioc);
    co_await tg.async_join();
    joined = true;
  });
  BOOST_TEST(!e);
  BOOST_TEST(joined);
}

BOOST_AUTO_TEST_CASE(join_waits_for_children_created_by_children_while_it_waits) {
  asio::io_context ioc;
  std::atomic<int> finished{0};
  const auto e = run_task(ioc, [&]() -> asio::awaitable<void> {
    af::task_group tg(ioc);
    tg.create_task([&]() -> asio::awaitable<void> {
      co_await aft::yield_n(3); // the join is waiting by now
      tg.create_task([&]() -> asio::awaitable<void> {
        co_await aft::yield_n(5);
        tg.create_task([&]() -> asio::awaitable<void> {
          co_await aft::yield_n(2);
          ++finished;
        });
        ++finished;
      });
      ++finished;
    });
    co_await tg.async_join();
    BOOST_TEST(finished.load() == 3); // the grandchildren too
  });
  BOOST_TEST(!e);
  BOOST_TEST(finished.load() == 3);
}

BOOST_AUTO_TEST_CASE(join_with_a_callback_token) {
  asio::io_context ioc;
  af::task_group tg(ioc);
  const af::task<int> a = tg.create_task(value_after_yields(1, 2));
  std::optional<std::exception_ptr> got;
  tg.async_join([&](std::exception_ptr e) { got = e; });
  BOOST_TEST(aft::run_until(ioc, [&] { return got.has_value(); }));
  BOOST_TEST(!*got);
  BOOST_TEST(a.result() == 1);
}

BOOST_AUTO_TEST_CASE(joining_again_after_completion_gives_the_same_outcome) {
  asio::io_context ioc;
  af::task_group tg(ioc);
  tg.create_task(fail_after_yields(1, "boom"));
  std::optional<std::exception_ptr> first, second;
  tg.async_join([&](std::exception_ptr e) { first = e; });
  BOOST_TEST(aft::run_until(ioc, [&] { return first.has_value(); }));
  tg.async_join([&](std::exception_ptr e) { second = e; });
  BOOST_TEST(aft::run_until(ioc, [&] { return second.has_value(); }));
  BOOST_TEST(aft::holds<af::exception_group>(*first));
  BOOST_TEST(aft::holds<af::exception_group>(*second));
}

BOOST_AUTO_TEST_CASE(a_second_join_while_one_is_pending_throws) {
  asio::io_context ioc;
  const af::future<void> gate(ioc);
  af::task_group tg(ioc);
  tg.create_task(wait_on(gate));
  std::optional<std::exception_ptr> first;
  tg.async_join([&](std::exception_ptr e) { first = e; });
  BOOST_CHECK_THROW(tg.async_join([](std::exception_ptr) {}), af::invalid_state_error);
  gate.set_result();
  BOOST_TEST(aft::run_until(ioc, [&] { return first.has_value(); }));
  BOOST_TEST(!*first);
}

BOOST_AUTO_TEST_SUITE_END() // join

// =======================================================================================
BOOST_AUTO_TEST_SUITE(failures)

BOOST_AUTO_TEST_CASE(one_failure_cancels_the_siblings_and_join_throws_a_group_of_one) {
  asio::io_context ioc;
  const af::future<void> never_a(ioc), never_b(ioc);
  std::atomic<bool> a_cancelled{false}, b_cancelled{false};
  std::optional<af::exception_group> caught;
  af::task<void> a, b;
  const auto e = run_task(ioc, [&]() -> asio::awaitable<void> {
    af::task_group tg(ioc);
    a = tg.create_task(wait_recording(never_a, &a_cancelled), "a");
    b = tg.create_task(wait_recording(never_b, &b_cancelled), "b");
    tg.create_task(fail_after_yields(2, "boom"), "failing");
    caught = co_await join_catching(tg);
  });
  BOOST_TEST(!e);
  BOOST_TEST_REQUIRE(caught.has_value());
  BOOST_TEST(caught->exceptions().size() == 1u);
  BOOST_TEST(caught->contains<std::runtime_error>());
  BOOST_TEST(std::string(caught->find<std::runtime_error>()->what()) == "boom");
  BOOST_TEST(std::string(caught->what()).find("boom") != std::string::npos);
  // The siblings were cancelled (not errors of the group) and are done.
  BOOST_TEST(a_cancelled.load());
  BOOST_TEST(b_cancelled.load());
  BOOST_TEST(a.cancelled());
  BOOST_TEST(b.cancelled());
}

BOOST_AUTO_TEST_CASE(several_failures_are_aggregated_in_completion_order) {
  asio::io_context ioc;
  std::optional<af::exception_group> caught;
  std::vector<std::string> thrown; // the order the children actually failed in
  const auto e = run_task(ioc, [&]() -> asio::awaitable<void> {
    af::task_group tg(ioc);
    // Each child catches the sibling-failure cancellation and fails anyway after a number
    // of turns that differs from its creation order: every failure that is not a
    // cancellation is collected, in the order the children ended.
    for (int i : {3, 1, 2}) {
      tg.create_task([i, &thrown]() -> asio::awaitable<void> {
        try {
          co_await aft::yield_n(i == 1 ? 1 : 1000);
        } catch (const boost::system::system_error&) {
        }
        co_await asio::this_coro::reset_cancellation_state();
        co_await aft::yield_n(10 - i); // 3 ends before 2
        thrown.push_back("fail-" + std::to_string(i));
        throw std::runtime_error(thrown.back());
      });
    }
    caught = co_await join_catching(tg);
  });
  BOOST_TEST(!e);
  BOOST_TEST_REQUIRE(caught.has_value());
  BOOST_TEST_REQUIRE(caught->exceptions().size() == 3u);
  const std::vector<std::string> expected{"fail-1", "fail-3", "fail-2"};
  BOOST_TEST(thrown == expected, boost::test_tools::per_element());
  BOOST_TEST(whats(*caught) == thrown, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_failure_before_join_is_reported_by_the_join) {
  asio::io_context ioc;
  af::task_group tg(ioc);
  const af::future<void> never(ioc);
  const af::task<void> waiting = tg.create_task(wait_on(never));
  tg.create_task(fail_after_yields(0, "early"));
  // Run until the failure has happened and the sibling was cancelled, before any join.
  BOOST_TEST(aft::run_until(ioc, [&] { return waiting.done(); }));
  BOOST_TEST(waiting.cancelled());
  // The group is shutting down: no new children.
  BOOST_CHECK_THROW(tg.create_task(value_after_yields(1, 0)), af::invalid_state_error);
  std::optional<std::exception_ptr> joined;
  tg.async_join([&](std::exception_ptr e) { joined = e; });
  BOOST_TEST(aft::run_until(ioc, [&] { return joined.has_value(); }));
  BOOST_TEST(aft::holds<af::exception_group>(*joined));
  BOOST_TEST(aft::what_of(*joined).find("early") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_failure_during_join_is_reported_by_the_join) {
  asio::io_context ioc;
  af::task_group tg(ioc);
  const af::future<void> trigger(ioc);
  tg.create_task([trigger]() -> asio::awaitable<void> {
    co_await trigger.async_wait();
    throw std::logic_error("late");
  });
  std::optional<std::exception_ptr> joined;
  tg.async_join([&](std::exception_ptr e) { joined = e; });
  aft::poll(ioc);
  BOOST_TEST(!joined.has_value());
  trigger.set_result();
  BOOST_TEST(aft::run_until(ioc, [&] { return joined.has_value(); }));
  BOOST_TEST_REQUIRE(aft::holds<af::exception_group>(*joined));
  try {
    std::rethrow_exception(*joined);
  } catch (const af::exception_group& g) {
    BOOST_TEST(g.contains<std::logic_error>());
    BOOST_TEST(!g.contains<std::runtime_error>());
  }
}

BOOST_AUTO_TEST_CASE(children_ending_cancelled_on_their_own_are_not_errors) {
  asio::io_context ioc;
  af::task_group tg(ioc);
  const af::future<void> never(ioc);
  const af::task<void> c = tg.create_task(wait_on(never));
  const af::task<int> ok = tg.create_task(value_after_yields(7, 3));
  aft::poll(ioc);
  BOOST_TEST(c.cancel("just this one"));
  std::optional<std::exception_ptr> joined;
  tg.async_join([&](std::exception_ptr e) { joined = e; });
  BOOST_TEST(aft::run_until(ioc, [&] { return joined.has_value(); }));
  BOOST_TEST(!*joined);
  BOOST_TEST(c.cancelled());
  BOOST_TEST(ok.result() == 7); // not cancelled by the sibling's cancellation
}

BOOST_AUTO_TEST_CASE(nested_groups_propagate_as_a_group_inside_a_group) {
  asio::io_context ioc;
  std::optional<af::exception_group> caught;
  const auto e = run_task(ioc, [&]() -> asio::awaitable<void> {
    af::task_group outer(ioc);
    outer.create_task([&]() -> asio::awaitable<void> {
      af::task_group inner(ioc);
      inner.create_task(fail_after_yields(1, "deep"));
      co_await inner.async_join();
    });
    caught = co_await join_catching(outer);
  });
  BOOST_TEST(!e);
  BOOST_TEST_REQUIRE(caught.has_value());
  BOOST_TEST_REQUIRE(caught->exceptions().size() == 1u);
  const af::exception_group* inner = caught->find<af::exception_group>();
  BOOST_TEST_REQUIRE(inner != nullptr);
  BOOST_TEST(inner->contains<std::runtime_error>());
}

BOOST_AUTO_TEST_SUITE_END() // failures

// =======================================================================================
BOOST_AUTO_TEST_SUITE(cancellation)

BOOST_AUTO_TEST_CASE(cancelling_the_joiner_cancels_every_child_and_waits_for_them) {
  asio::io_context ioc;
  const af::future<void> never(ioc);
  std::atomic<bool> child_saw_cancel{false};
  bool child_cleanup_done_before_join_returned = false;
  bool cleanup_done = false;
  af::task<void> child;
  std::optional<bool> join_threw_cancelled;
  const af::task<void> parent = af::create_task(ioc, [&]() -> asio::awaitable<void> {
    af::task_group tg(ioc);
    child = tg.create_task([&]() -> asio::awaitable<void> {
      try {
        co_await never.async_wait();
      } catch (const af::cancelled_error&) {
        child_saw_cancel = true;
      }
      // Cleanup that takes a few turns: the join must wait for it.
      co_await asio::this_coro::reset_cancellation_state();
      co_await aft::yield_n(3);
      cleanup_done = true;
    });
    try {
      co_await tg.async_join();
      join_threw_cancelled = false;
    } catch (const af::cancelled_error&) {
      join_threw_cancelled = true;
      child_cleanup_done_before_join_returned = cleanup_done;
      throw;
    }
  });
  aft::poll(ioc);
  BOOST_TEST(parent.cancel("stop"));
  BOOST_TEST(aft::run_until(ioc, [&] { return parent.done(); }));
  BOOST_TEST(parent.cancelled());
  BOOST_TEST((join_threw_cancelled == std::optional<bool>(true)));
  BOOST_TEST(child_saw_cancel.load());
  BOOST_TEST(child_cleanup_done_before_join_returned);
  BOOST_TEST(child.done());
  // asyncio 3.13's accounting: the group never touches the enclosing task's count (3.12
  // leaked one here): exactly the one external request remains.
  BOOST_TEST(parent.cancelling() == 1);
}

BOOST_AUTO_TEST_CASE(the_joining_tasks_cancel_message_is_kept) {
  // asyncio keeps the message of the cancel requested on the task that awaits the join.
  for (const std::string msg : {"stop now", ""}) {
    asio::io_context ioc;
    const af::future<void> never(ioc);
    std::optional<std::string> seen_in_join;
    const af::task<void> parent = af::create_task(ioc, [&]() -> asio::awaitable<void> {
      af::task_group tg(ioc);
      tg.create_task(wait_on(never));
      try {
        co_await tg.async_join();
      } catch (const af::cancelled_error& e) {
        seen_in_join = e.message();
        throw;
      }
    });
    aft::poll(ioc);
    BOOST_TEST(parent.cancel(msg));
    BOOST_TEST(aft::run_until(ioc, [&] { return parent.done(); }));
    BOOST_TEST(parent.cancelled());
    BOOST_TEST((seen_in_join == std::optional<std::string>(msg)));
    BOOST_TEST((aft::cancel_message(aft::thrown_by([&] { (void)parent.exception(); })) ==
                std::optional<std::string>(msg)));
  }
}

BOOST_AUTO_TEST_CASE(a_child_failure_during_join_leaves_the_parents_cancel_count_alone) {
  asio::io_context ioc;
  const af::task<void> parent = af::create_task(ioc, [&]() -> asio::awaitable<void> {
    af::task_group tg(ioc);
    tg.create_task(fail_after_yields(2, "x"));
    try {
      co_await tg.async_join();
    } catch (const af::exception_group&) {
    }
  });
  BOOST_TEST(aft::run_until(ioc, [&] { return parent.done(); }));
  BOOST_TEST(!parent.exception());
  BOOST_TEST(parent.cancelling() == 0);
}

BOOST_AUTO_TEST_CASE(failures_win_over_the_joiners_cancellation) {
  asio::io_context ioc;
  std::optional<std::exception_ptr> joined;
  af::task_group tg(ioc);
  tg.create_task([]() -> asio::awaitable<void> {
    try {
      co_await aft::yield_n(1000);
    } catch (const boost::system::system_error&) {
    }
    co_await asio::this_coro::reset_cancellation_state();
    throw std::runtime_error("failed while being cancelled");
  });
  asio::cancellation_signal sig;
  tg.async_join(
      asio::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e) { joined = e; }));
  aft::poll_one(ioc);
  sig.emit(asio::cancellation_type::terminal);
  BOOST_TEST(aft::run_until(ioc, [&] { return joined.has_value(); }));
  BOOST_TEST(aft::holds<af::exception_group>(*joined));
}

BOOST_AUTO_TEST_CASE(joiner_cancelled_through_its_slot_completes_cancelled) {
  asio::io_context ioc;
  af::task_group tg(ioc);
  const af::future<void> never(ioc);
  const af::task<void> c = tg.create_task(wait_on(never));
  asio::cancellation_signal sig;
  std::optional<std::exception_ptr> joined;
  tg.async_join(
      asio::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e) { joined = e; }));
  aft::poll(ioc);
  sig.emit(asio::cancellation_type::total); // any type cancels the children
  BOOST_TEST(aft::run_until(ioc, [&] { return joined.has_value(); }));
  BOOST_TEST(aft::holds<af::cancelled_error>(*joined));
  BOOST_TEST(c.cancelled());
  BOOST_CHECK_THROW(tg.create_task(value_after_yields(1, 0)), af::invalid_state_error);
}

BOOST_AUTO_TEST_SUITE_END() // cancellation

// =======================================================================================
BOOST_AUTO_TEST_SUITE(misuse_and_lifetime)

BOOST_AUTO_TEST_CASE(an_allocation_failure_in_create_task_leaves_no_task_outside_the_group) {
  // Every allocation create_task makes fails in turn, on a fresh thread (an empty Asio
  // recycling cache: the coroutine frames are allocated too): the call throws bad_alloc and
  // the body never runs, or the child belongs to the group, whose join waits for it.
  int failures = 0;
  for (std::size_t k = 1; k < 200; ++k) {
    asio::io_context ioc;
    af::task_group tg(ioc);
    std::atomic<int> ran{0};
    bool fired = false;
    bool threw = false;
    aft::bounded_thread creator([&] {
      aft::allocation_fault fault(k);
      try {
        tg.create_task([&]() -> asio::awaitable<void> {
          ++ran;
          co_return;
        });
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      fired = fault.fired();
    });
    BOOST_TEST_REQUIRE(creator.join_for());
    std::optional<std::exception_ptr> joined;
    tg.async_join([&](std::exception_ptr e) { joined = e; });
    BOOST_TEST(aft::run_until(ioc, [&] { return joined.has_value(); }));
    BOOST_TEST(!*joined);
    BOOST_TEST(ran.load() == (threw ? 0 : 1));
    if (!fired)
      break; // k is beyond the allocations create_task makes
    ++failures;
  }
  BOOST_TEST(failures >= 3);
}

BOOST_AUTO_TEST_CASE(create_task_after_the_join_completed_throws) {
  asio::io_context ioc;
  af::task_group tg(ioc);
  tg.create_task(value_after_yields(1, 1));
  std::optional<std::exception_ptr> joined;
  tg.async_join([&](std::exception_ptr e) { joined = e; });
  BOOST_TEST(aft::run_until(ioc, [&] { return joined.has_value(); }));
  bool body_ran = false;
  BOOST_CHECK_THROW(tg.create_task([&]() -> asio::awaitable<void> {
    body_ran = true;
    co_return;
  }),
                    af::invalid_state_error);
  aft::poll(ioc);
  BOOST_TEST(!body_ran);
}

BOOST_AUTO_TEST_CASE(destroying_a_group_with_live_children_cancels_them_without_blocking) {
  asio::io_context ioc;
  const af::future<void> never(ioc);
  std::atomic<bool> cancelled{false};
  af::task<void> child;
  {
    af::task_group tg(ioc);
    child = tg.create_task(wait_recording(never, &cancelled));
    aft::poll(ioc);
  } // no join: returns at once
  BOOST_TEST(!child.done());
  BOOST_TEST(aft::run_until(ioc, [&] { return child.done(); }));
  BOOST_TEST(child.cancelled());
  BOOST_TEST(cancelled.load());
}

BOOST_AUTO_TEST_CASE(failures_of_a_group_nobody_joined_are_reported_once) {
  aft::recording_exception_handler lost;
  {
    asio::io_context ioc;
    {
      af::task_group tg(ioc);
      tg.create_task(fail_after_yields(1, "unjoined"));
      aft::poll(ioc); // the child fails while the group lives
    }
    aft::poll(ioc);
  }
  const auto reports = lost.reports();
  BOOST_TEST_REQUIRE(reports.size() == 1u);
  BOOST_TEST(aft::holds<af::exception_group>(reports[0].error));
  BOOST_TEST(reports[0].what.find("unjoined") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(context_destroyed_with_a_pending_join_leaks_nothing) {
  // The joiner and the children die with their context (ASan/LSan check this case).
  asio::io_context ioc;
  const af::future<void> never(ioc);
  const af::task<void> parent = af::create_task(ioc, [never, &ioc]() -> asio::awaitable<void> {
    af::task_group tg(ioc);
    tg.create_task(wait_on(never));
    co_await tg.async_join();
  });
  aft::poll(ioc);
  BOOST_TEST(!parent.done());
}

BOOST_AUTO_TEST_SUITE_END() // misuse_and_lifetime

// =======================================================================================
BOOST_AUTO_TEST_SUITE(threads)

BOOST_AUTO_TEST_CASE(children_on_a_thread_pool_joined_from_an_io_context) {
  asio::io_context ioc;
  asio::thread_pool pool(2);
  std::atomic<int> sum{0};
  const auto e = run_task(ioc, [&]() -> asio::awaitable<void> {
    af::task_group tg(ioc);
    for (int i = 1; i <= 100; ++i) {
      tg.create_task(pool.get_executor(), [&sum, i]() -> asio::awaitable<void> {
        co_await aft::yield_n(i % 3);
        sum += i;
      });
    }
    co_await tg.async_join();
  });
  BOOST_TEST(!e);
  BOOST_TEST(sum.load() == 5050);
  pool.join();
}

BOOST_AUTO_TEST_CASE(multi_threaded_failures_and_cancellation_end_every_child_once) {
  // Many groups on a 2-thread io_context: children succeed, fail or wait; each join ends
  // exactly once with a group holding exactly the planned failures.
  constexpr int groups = 200;
  constexpr int children = 20;
  asio::io_context ioc;
  std::atomic<int> joined{0}, bad{0};
  aft::context_threads runners(ioc, 2);
  std::vector<af::task<void>> parents;
  for (int g = 0; g < groups; ++g) {
    parents.push_back(af::run_coroutine_threadsafe(
        [](int g, std::atomic<int>* joined, std::atomic<int>* bad) -> asio::awaitable<void> {
          af::task_group tg(co_await asio::this_coro::executor);
          const bool failing = g % 2 == 0;
          for (int c = 0; c < children; ++c) {
            if (failing && c == children / 2)
              tg.create_task(fail_after_yields(c % 4, "planned"));
            else
              tg.create_task(value_after_yields(c, c % 5));
          }
          try {
            co_await tg.async_join();
            if (failing)
              ++*bad;
          } catch (const af::exception_group& e) {
            if (!failing || e.exceptions().size() != 1u)
              ++*bad;
          }
          ++*joined;
        }(g, &joined, &bad),
        ioc.get_executor()));
  }
  for (const auto& p : parents)
    BOOST_TEST_REQUIRE(p.wait_for(aft::default_timeout));
  BOOST_TEST(joined.load() == groups);
  BOOST_TEST(bad.load() == 0);
}

BOOST_AUTO_TEST_SUITE_END() // threads

// =======================================================================================
BOOST_AUTO_TEST_SUITE(group_cancel)

BOOST_AUTO_TEST_CASE(cancel_stops_every_child_and_the_join_is_not_an_error) {
  asio::io_context ioc;
  const af::future<void> never(ioc);
  std::atomic<bool> a_cancelled{false}, b_cancelled{false};
  af::task<int> done_before;
  std::optional<std::string> message;
  bool joined = false;
  const auto e = run_task(ioc, [&]() -> asio::awaitable<void> {
    af::task_group tg(co_await asio::this_coro::executor);
    done_before = tg.create_task(value_after_yields(7, 0));
    const auto a = tg.create_task(wait_recording(never, &a_cancelled));
    const auto b = tg.create_task(wait_recording(never, &b_cancelled));
    co_await aft::yield_n(3);
    tg.cancel("stop now");
    tg.cancel("again"); // idempotent
    BOOST_CHECK_THROW(tg.create_task(value_after_yields(1, 0)), af::invalid_state_error);
    co_await tg.async_join();
    joined = true;
    message = aft::cancel_message(aft::thrown_by([&] { (void)a.result(); }));
  });
  BOOST_TEST(!e);
  BOOST_TEST(joined);
  BOOST_TEST(a_cancelled.load());
  BOOST_TEST(b_cancelled.load());
  BOOST_TEST((message == std::optional<std::string>("stop now"))); // the second did nothing
  BOOST_TEST(done_before.result() == 7);
}

BOOST_AUTO_TEST_CASE(a_failure_still_wins_over_cancel) {
  asio::io_context ioc;
  const af::future<void> never(ioc);
  std::optional<af::exception_group> group;
  const auto e = run_task(ioc, [&]() -> asio::awaitable<void> {
    af::task_group tg(co_await asio::this_coro::executor);
    tg.create_task([]() -> asio::awaitable<void> {
      try {
        co_await af::sleep(co_await asio::this_coro::executor, std::chrono::hours(1)).async_wait();
      } catch (const af::cancelled_error&) {
      }
      throw std::runtime_error("failed while stopping");
    });
    tg.create_task(wait_on(never));
    co_await aft::yield_n(2);
    tg.cancel();
    group = co_await join_catching(tg);
  });
  BOOST_TEST(!e);
  BOOST_TEST_REQUIRE(group.has_value());
  BOOST_TEST((whats(*group) == std::vector<std::string>{"failed while stopping"}));
}

BOOST_AUTO_TEST_CASE(cancel_after_the_join_does_nothing_and_from_another_thread_is_safe) {
  asio::io_context ioc;
  const af::future<void> never(ioc);
  af::task_group tg(ioc);
  std::atomic<bool> cancelled{false};
  const af::task<void> child = tg.create_task(wait_recording(never, &cancelled));
  const af::future<void> joined = [&] {
    af::future<void> f(ioc);
    tg.async_join([f](std::exception_ptr e) {
      if (e)
        f.set_exception(e);
      else
        f.set_result();
    });
    return f;
  }();
  {
    aft::context_threads runner(ioc, 1);
    aft::bounded_thread other([&] { tg.cancel("from another thread"); });
    BOOST_TEST_REQUIRE(other.join_for());
    BOOST_TEST_REQUIRE(joined.wait_for(aft::default_timeout));
  }
  BOOST_TEST(!joined.cancelled());
  BOOST_TEST(!joined.exception());
  BOOST_TEST(child.cancelled()); // (before or after its first step: `cancelled` may be unset)
  tg.cancel();                   // joined: nothing to do
  BOOST_TEST(tg.size() == 0u);
}

BOOST_AUTO_TEST_SUITE_END() // group_cancel

// =======================================================================================
BOOST_AUTO_TEST_SUITE(with_task_group_)

static_assert(std::is_same_v<decltype(af::with_task_group(
                                 std::declval<asio::any_io_executor>(),
                                 [](af::task_group&) -> asio::awaitable<int> { co_return 1; })),
                             asio::awaitable<int>>);

CO_TEST_CASE(returns_the_body_value_after_every_child_is_done) {
  auto ex = co_await asio::this_coro::executor;
  std::vector<af::task<int>> children;
  int frame_local = 0; // children may use the caller's frame: nothing outlives the call
  const int total =
      co_await af::with_task_group(ex, [&](af::task_group& tg) -> asio::awaitable<int> {
        for (int i = 1; i <= 3; ++i)
          children.push_back(tg.create_task([&frame_local, i]() -> asio::awaitable<int> {
            co_await aft::yield_n(i * 2);
            frame_local += i;
            co_return i;
          }));
        co_return 100; // returns before the children are done: the call still waits
      });
  BOOST_TEST(total == 100);
  BOOST_TEST(frame_local == 6);
  for (const auto& c : children)
    BOOST_TEST(c.done());
}

CO_TEST_CASE(void_body) {
  auto ex = co_await asio::this_coro::executor;
  bool child_ran = false;
  co_await af::with_task_group(ex, [&](af::task_group& tg) -> asio::awaitable<void> {
    tg.create_task([&]() -> asio::awaitable<void> {
      co_await aft::yield_once();
      child_ran = true;
    });
    co_return;
  });
  BOOST_TEST(child_ran);
}

CO_TEST_CASE(a_child_failure_cancels_the_body_and_the_call_throws_the_group) {
  auto ex = co_await asio::this_coro::executor;
  const af::future<void> never(ex);
  std::atomic<bool> body_cancelled{false};
  std::optional<af::exception_group> group;
  try {
    co_await af::with_task_group(ex, [&](af::task_group& tg) -> asio::awaitable<void> {
      tg.create_task(fail_after_yields(2, "child failed"));
      co_await wait_recording(never, &body_cancelled);
    });
  } catch (const af::exception_group& g) {
    group = g;
  }
  BOOST_TEST(body_cancelled.load());
  BOOST_TEST_REQUIRE(group.has_value());
  BOOST_TEST((whats(*group) == std::vector<std::string>{"child failed"}));
}

CO_TEST_CASE(a_body_failure_cancels_the_children_and_is_in_the_group) {
  auto ex = co_await asio::this_coro::executor;
  const af::future<void> never(ex);
  std::atomic<bool> child_cancelled{false};
  std::optional<af::exception_group> group;
  try {
    (void)co_await af::with_task_group(ex, [&](af::task_group& tg) -> asio::awaitable<int> {
      tg.create_task(wait_recording(never, &child_cancelled));
      co_await aft::yield_n(2);
      throw std::runtime_error("body failed");
    });
  } catch (const af::exception_group& g) {
    group = g;
  }
  BOOST_TEST(child_cancelled.load());
  BOOST_TEST_REQUIRE(group.has_value());
  BOOST_TEST((whats(*group) == std::vector<std::string>{"body failed"}));
}

CO_TEST_CASE(group_cancel_stops_body_and_children_without_an_error) {
  auto ex = co_await asio::this_coro::executor;
  const af::future<void> never(ex);
  std::atomic<bool> child_cancelled{false}, body_cancelled{false};
  co_await af::with_task_group(ex, [&](af::task_group& tg) -> asio::awaitable<void> {
    tg.create_task(wait_recording(never, &child_cancelled));
    asio::post(ex, [&tg] { tg.cancel("shutdown"); }); // runs once the body waits
    co_await wait_recording(never, &body_cancelled);
  });
  BOOST_TEST(child_cancelled.load());
  BOOST_TEST(body_cancelled.load());

  // A body with a value, cancelled before it produced one: no value to return.
  const af::future<void> never2(ex); // (never was cancelled with the awaits on it)
  std::optional<std::string> message;
  try {
    (void)co_await af::with_task_group(ex, [&](af::task_group& tg) -> asio::awaitable<int> {
      asio::post(ex, [&tg] { tg.cancel("no value"); });
      co_await never2.async_wait();
      co_return 1;
    });
  } catch (...) {
    message = aft::cancel_message(std::current_exception());
  }
  BOOST_TEST((message == std::optional<std::string>("no value")));
}

CO_TEST_CASE(a_body_value_without_default_constructor) {
  struct no_default {
    explicit no_default(int v) : value(v) {}
    int value;
  };
  auto ex = co_await asio::this_coro::executor;
  const no_default r = co_await af::with_task_group(
      ex, [](af::task_group&) -> asio::awaitable<no_default> { co_return no_default(4); });
  BOOST_TEST(r.value == 4);
}

CO_TEST_CASE(a_body_cancelled_from_elsewhere_stops_the_group_and_the_call_says_so) {
  // Review finding: a body ending cancelled (not by tg.cancel()) is no "failure", so nothing
  // stopped the children, and a void body returned normally.
  auto ex = co_await asio::this_coro::executor;
  for (const bool void_body : {true, false}) {
    const af::future<void> upstream(ex), never(ex);
    std::atomic<bool> child_cancelled{false};
    asio::post(ex, [upstream] { upstream.cancel("upstream gone"); });
    std::optional<std::string> message;
    try {
      if (void_body) {
        co_await af::with_task_group(ex, [&](af::task_group& tg) -> asio::awaitable<void> {
          tg.create_task(wait_recording(never, &child_cancelled));
          co_await upstream.async_wait();
        });
      } else {
        (void)co_await af::with_task_group(ex, [&](af::task_group& tg) -> asio::awaitable<int> {
          tg.create_task(wait_recording(never, &child_cancelled));
          co_await upstream.async_wait();
          co_return 1;
        });
      }
    } catch (...) {
      message = aft::cancel_message(std::current_exception());
    }
    BOOST_TEST(child_cancelled.load());
    BOOST_TEST((message == std::optional<std::string>("upstream gone")));
  }
}

BOOST_AUTO_TEST_CASE(cancelling_the_caller_cancels_everything_and_still_waits) {
  asio::io_context ioc;
  const af::future<void> never(ioc);
  std::atomic<bool> child_cancelled{false};
  bool child_finished_before_the_call_ended = false;
  bool call_ended = false;
  const af::task<void> t = af::create_task(ioc, [&]() -> asio::awaitable<void> {
    try {
      co_await af::with_task_group(co_await asio::this_coro::executor,
                                   [&](af::task_group& tg) -> asio::awaitable<void> {
                                     tg.create_task([&]() -> asio::awaitable<void> {
                                       try {
                                         co_await never.async_wait();
                                       } catch (const af::cancelled_error&) {
                                         child_cancelled = true;
                                       }
                                       co_await asio::this_coro::reset_cancellation_state();
                                       co_await aft::yield_n(3); // takes its time to stop
                                       child_finished_before_the_call_ended = !call_ended;
                                     });
                                     co_await never.async_wait();
                                   });
    } catch (...) {
      call_ended = true;
      throw;
    }
  });
  aft::poll(ioc);
  BOOST_TEST(t.cancel("caller"));
  BOOST_TEST_REQUIRE(aft::run_until(ioc, [&] { return t.done(); }));
  BOOST_TEST(t.cancelled());
  BOOST_TEST(child_cancelled.load());
  BOOST_TEST(child_finished_before_the_call_ended);
}

BOOST_AUTO_TEST_CASE(context_destroyed_mid_call_frees_everything) {
  std::vector<std::weak_ptr<int>> alive;
  aft::destroy_context_while_suspended([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    af::future<void> f(ex);
    alive.push_back(aft::lifetime_of(f));
    // WORKAROUND(g++ 12): the body is named, not a prvalue in the co_await expression: when
    // this frame is destroyed while suspended there, g++ 12 destroys such a prvalue argument
    // although it was already moved into the callee, dropping its captured future twice
    // (heap-use-after-free; clang is fine). docs/boost-versions.md, "Compiler notes".
    auto body = [f](af::task_group& tg) -> asio::awaitable<void> {
      tg.create_task(wait_on(f));
      co_await f.async_wait();
    };
    co_await af::with_task_group(ex, std::move(body));
  });
  BOOST_TEST(aft::all_expired(alive));
}

BOOST_AUTO_TEST_SUITE_END() // with_task_group_

BOOST_AUTO_TEST_SUITE_END() // task_group_
