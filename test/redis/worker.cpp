// asio_futures/redis/worker.hpp against a real redis-server: redelivery of a dead worker's
// jobs, max_attempts, misuse.
#include <asio_futures/redis/worker.hpp>

#include <asio_futures/redis/job_queue.hpp>

#include "support/redis_test.hpp"

#include "../../src/redis/protocol.hpp" // the worker's scripts, tested on their own

#include <asio_futures/sync.hpp>
#include <asio_futures/task.hpp>

#include <boost/asio/this_coro.hpp>

#include <atomic>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace af = asio_futures;
namespace afr = asio_futures::redis;
namespace aft = asio_futures_test;
namespace asio = boost::asio;
using aft::co_run;
using aft::outcome_of;
using namespace std::chrono_literals;

namespace {

afr::worker_options quick(int max_attempts) {
  afr::worker_options o;
  o.visibility_timeout = 200ms;
  o.max_attempts = max_attempts;
  return o;
}

} // namespace

BOOST_AUTO_TEST_SUITE(redis_worker_)

BOOST_AUTO_TEST_CASE(dead_consumers_job_is_reclaimed_after_visibility_timeout) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    afr::job_queue q(ex, srv.endpoint(), "q");
    auto f = q.submit("payload");
    BOOST_TEST(co_await aft::eventually([&] { return srv.cli({"XLEN", "q:jobs"}) == "1"; }));
    // A consumer that reads the job and dies without acknowledging it.
    srv.cli({"XGROUP", "CREATE", "q:jobs", "q:workers", "0", "MKSTREAM"});
    auto taken = srv.cli(
        {"XREADGROUP", "GROUP", "q:workers", "ghost", "COUNT", "1", "STREAMS", "q:jobs", ">"});
    BOOST_TEST(taken.find("payload") != std::string::npos);

    int runs = 0;
    afr::worker w(ex, srv.endpoint(), "q", quick(3));
    w.handle_bytes("", [&](std::string p) -> asio::awaitable<std::string> {
      ++runs;
      co_return "ran " + p;
    });
    auto t = af::create_task(ex, w.async_run());
    BOOST_TEST(co_await f.async_wait(asio::use_awaitable) == "ran payload");
    BOOST_TEST(runs == 1);
    BOOST_TEST(w.completed() == 1u);
    BOOST_TEST(co_await aft::eventually([&] {
      return srv.cli({"XPENDING", "q:jobs", "q:workers"}).rfind("0", 0) == 0;
    }));
    w.stop();
    co_await t.async_wait(asio::use_awaitable);
  });
}

BOOST_AUTO_TEST_CASE(scripts_go_by_sha1_and_survive_a_flushed_script_cache) {
  aft::redis_server srv;
  // calls=<n> of a command in INFO commandstats (0 if never called).
  const auto calls = [&](const std::string& command) {
    const std::string info = srv.cli({"INFO", "commandstats"});
    const std::string key = "cmdstat_" + command + ":calls=";
    const auto at = info.find(key);
    return at == std::string::npos ? 0L : std::stol(info.substr(at + key.size()));
  };
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    afr::job_queue q(ex, srv.endpoint(), "q");
    afr::worker w(ex, srv.endpoint(), "q", quick(3));
    w.handle_bytes("", [](std::string p) -> asio::awaitable<std::string> { co_return "ran " + p; });
    auto t = af::create_task(ex, w.async_run());
    BOOST_TEST(co_await q.submit("one").async_wait(asio::use_awaitable) == "ran one");
    // The begin and finish scripts went as EVALSHA (their bodies were loaded once).
    BOOST_TEST(calls("evalsha") >= 2);
    BOOST_TEST(calls("eval") == 0);
    // The server forgets its scripts (as after a restart): NOSCRIPT, then EVAL, and the job
    // completes all the same.
    srv.cli({"SCRIPT", "FLUSH"});
    BOOST_TEST(co_await q.submit("two").async_wait(asio::use_awaitable) == "ran two");
    BOOST_TEST(calls("eval") >= 2);
    BOOST_TEST(w.completed() == 2u);
    w.stop();
    co_await t.async_wait(asio::use_awaitable);
  });
}

BOOST_AUTO_TEST_CASE(stopped_workers_job_runs_on_another_worker) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    afr::job_queue q(ex, srv.endpoint(), "q");
    af::event started(ex), never(ex);
    bool first_cancelled = false;
    // max_attempts 1: a stop is not a failed attempt (review finding: it was, and the
    // second worker failed the job with max_attempts_exceeded).
    afr::worker a(ex, srv.endpoint(), "q", quick(1));
    a.handle_bytes("", [&](std::string) -> asio::awaitable<std::string> {
      started.set();
      try {
        co_await never.async_wait(asio::use_awaitable);
      } catch (const af::cancelled_error&) {
        first_cancelled = true;
        throw;
      }
      co_return "";
    });
    auto ta = af::create_task(ex, a.async_run());
    auto f = q.submit("job");
    co_await started.async_wait(asio::use_awaitable);
    a.stop(); // its job stays unacknowledged, its delivery given back
    co_await ta.async_wait(asio::use_awaitable);
    BOOST_TEST(first_cancelled);
    BOOST_TEST(!f.done());

    afr::worker b(ex, srv.endpoint(), "q", quick(1));
    b.handle_bytes("", [](std::string p) -> asio::awaitable<std::string> { co_return "b:" + p; });
    auto tb = af::create_task(ex, b.async_run());
    BOOST_TEST(co_await f.async_wait(asio::use_awaitable) == "b:job");
    b.stop();
    co_await tb.async_wait(asio::use_awaitable);
  });
}

BOOST_AUTO_TEST_CASE(max_attempts_then_remote_error) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    afr::job_queue q(ex, srv.endpoint(), "q");
    // Worker a lives on its own io_context and thread, and dies: the context stops for good
    // while a's handler runs (as a frozen or killed process: nothing acknowledges, renews or
    // gives back its job), and a is destroyed without its context running again.
    std::atomic<int> runs{0};
    auto hang = [&runs](std::string) -> asio::awaitable<std::string> {
      ++runs;
      asio::steady_timer t(co_await asio::this_coro::executor);
      t.expires_at(asio::steady_timer::time_point::max());
      co_await t.async_wait(asio::use_awaitable);
      co_return "";
    };
    {
      asio::io_context other;
      auto guard = asio::make_work_guard(other);
      afr::worker a(other.get_executor(), srv.endpoint(), "q", quick(1));
      a.handle_bytes("", hang);
      auto ta = af::create_task(other, a.async_run());
      std::thread t([&] { other.run(); });
      auto f = q.submit("job");
      const bool started = co_await aft::eventually([&] { return runs.load() == 1; });
      other.stop();
      t.join();
      BOOST_TEST_REQUIRE(started);

      afr::worker b(ex, srv.endpoint(), "q", quick(1));
      b.handle_bytes("", hang);
      auto tb = af::create_task(ex, b.async_run());
      auto e = co_await outcome_of(f);
      try {
        std::rethrow_exception(e);
      } catch (const afr::remote_error& re) {
        BOOST_TEST(re.type() == "asio_futures::redis::max_attempts_exceeded");
        BOOST_TEST(re.message().find("delivered 2 times") != std::string::npos);
      } catch (...) {
        BOOST_ERROR("expected remote_error, got " << aft::describe(e));
      }
      BOOST_TEST(runs.load() == 1); // the second delivery did not run it
      b.stop();
      co_await tb.async_wait(asio::use_awaitable);
    } // a, then its context: destroyed without running again
  });
}

BOOST_AUTO_TEST_CASE(restarted_worker_with_the_same_consumer_name_counts_its_delivery) {
  // A worker with a fixed consumer name dies while running a job, and is restarted under the
  // same name (a supervisor, a StatefulSet): its first delivery is that job again. The
  // delivery tokens of the two runs must differ, or the second delivery is taken for a
  // re-sent begin script and not counted (a job that kills its worker would run forever).
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    afr::job_queue q(ex, srv.endpoint(), "q");
    std::atomic<int> runs{0};
    auto hang = [&runs](std::string) -> asio::awaitable<std::string> {
      ++runs;
      asio::steady_timer t(co_await asio::this_coro::executor);
      t.expires_at(asio::steady_timer::time_point::max());
      co_await t.async_wait(asio::use_awaitable);
      co_return "";
    };
    afr::worker_options o = quick(1);
    o.consumer = "fixed";
    {
      asio::io_context other;
      auto guard = asio::make_work_guard(other);
      afr::worker a(other.get_executor(), srv.endpoint(), "q", o);
      a.handle_bytes("", hang);
      auto ta = af::create_task(other, a.async_run());
      std::thread t([&] { other.run(); });
      auto f = q.submit("job");
      const bool started = co_await aft::eventually([&] { return runs.load() == 1; });
      other.stop();
      t.join();
      BOOST_TEST_REQUIRE(started);

      afr::worker b(ex, srv.endpoint(), "q", o);
      b.handle_bytes("", hang);
      auto tb = af::create_task(ex, b.async_run());
      const bool failed = co_await aft::eventually([&] { return f.done() || runs.load() > 1; });
      BOOST_TEST(failed);
      BOOST_TEST(runs.load() == 1); // the second delivery did not run it
      if (f.done()) {
        auto e = co_await outcome_of(f);
        try {
          std::rethrow_exception(e);
        } catch (const afr::remote_error& re) {
          BOOST_TEST(re.type() == "asio_futures::redis::max_attempts_exceeded");
        } catch (...) {
          BOOST_ERROR("expected remote_error, got " << aft::describe(e));
        }
      }
      b.stop();
      co_await tb.async_wait(asio::use_awaitable);
    }
  });
}

BOOST_AUTO_TEST_CASE(duplicate_submission_does_not_use_up_attempts) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    afr::job_queue q(ex, srv.endpoint(), "q");
    auto f = q.submit("job");
    BOOST_TEST_REQUIRE(co_await aft::eventually([&] {
      return srv.cli({"XLEN", "q:jobs"}) == "1";
    }));
    // The caller's XADD was repeated (a lost connection): the job is in the stream twice.
    std::istringstream entry(srv.cli({"XRANGE", "q:jobs", "-", "+"}));
    std::vector<std::string> fields;
    std::string line;
    std::getline(entry, line); // the entry id
    while (std::getline(entry, line))
      fields.push_back(line);
    BOOST_TEST_REQUIRE(fields.size() == 8u);
    std::vector<std::string> xadd{"XADD", "q:jobs", "*"};
    xadd.insert(xadd.end(), fields.begin(), fields.end());
    srv.cli(xadd);
    BOOST_TEST_REQUIRE(srv.cli({"XLEN", "q:jobs"}) == "2");

    // Both entries delivered at once, max_attempts 1: each delivery is the first of its
    // entry, so both run and neither fails the job.
    afr::worker_options o = quick(1);
    o.concurrency = 2;
    afr::worker w(ex, srv.endpoint(), "q", o);
    int runs = 0;
    af::event gate(ex);
    w.handle_bytes("", [&](std::string p) -> asio::awaitable<std::string> {
      ++runs;
      co_await gate.async_wait(asio::use_awaitable);
      co_return "ran " + p;
    });
    auto t = af::create_task(ex, w.async_run());
    BOOST_TEST(co_await aft::eventually([&] { return runs == 2 || f.done(); }));
    gate.set();
    auto e = co_await outcome_of(f);
    BOOST_TEST(!e, "the job failed: " << aft::describe(e));
    if (!e)
      BOOST_TEST(f.result() == "ran job");
    BOOST_TEST(runs == 2);
    w.stop();
    co_await t.async_wait(asio::use_awaitable);
  });
}

BOOST_AUTO_TEST_CASE(begin_script_counts_a_delivery_once) {
  aft::redis_server srv;
  namespace d = afr::detail;
  auto begin = [&](const std::string& sid, const std::string& token) {
    auto r = srv.cli({"EVAL", std::string(d::begin_script), "3", "q:attempts:j", "q:cancel:j",
                      "q:result:j", "60", sid, token});
    return r.substr(0, r.find('\n'));
  };
  auto release = [&](const std::string& sid, const std::string& token) {
    srv.cli({"EVAL", std::string(d::release_script), "1", "q:attempts:j", sid, token});
  };
  BOOST_TEST(begin("1-0", "w.1") == "1");
  BOOST_TEST(begin("1-0", "w.1") == "1"); // the same delivery, sent again after a lost reply
  BOOST_TEST(begin("1-0", "v.1") == "2"); // a second delivery
  BOOST_TEST(begin("2-0", "v.2") == "1"); // another entry of the same job: counted apart
  release("1-0", "v.1");
  release("1-0", "v.1"); // idempotent
  BOOST_TEST(begin("1-0", "w.1") == "1");
  BOOST_TEST(begin("1-0", "u.1") == "2");
}

BOOST_AUTO_TEST_CASE(misuse_throws) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto ep = srv.endpoint();
    BOOST_CHECK_THROW(afr::worker(ex, ep, ""), std::invalid_argument);
    afr::worker_options o;
    o.concurrency = 0;
    BOOST_CHECK_THROW(afr::worker(ex, ep, "q", o), std::invalid_argument);
    o = {};
    o.max_attempts = 0;
    BOOST_CHECK_THROW(afr::worker(ex, ep, "q", o), std::invalid_argument);
    o = {};
    o.visibility_timeout = 0ms;
    BOOST_CHECK_THROW(afr::worker(ex, ep, "q", o), std::invalid_argument);
    o = {};
    o.connection.connect_timeout = 0ms; // the connections' options, checked at once
    BOOST_CHECK_THROW(afr::worker(ex, ep, "q", o), std::invalid_argument);
    afr::worker w(ex, ep, "q");
    BOOST_CHECK_THROW(w.handle_bytes("x", {}), std::invalid_argument);
    auto t1 = af::create_task(ex, w.async_run());
    auto t2 = af::create_task(ex, w.async_run());
    auto e = co_await outcome_of(af::future<void>(t2));
    try {
      std::rethrow_exception(e);
    } catch (const af::invalid_state_error&) {
    } catch (...) {
      BOOST_ERROR("expected invalid_state_error, got " << aft::describe(e));
    }
    w.stop();
    co_await t1.async_wait(asio::use_awaitable);
  });
}

BOOST_AUTO_TEST_SUITE_END()
