// asio_futures/redis/worker.hpp against a real redis-server: redelivery of a dead worker's
// jobs, max_attempts, misuse.
#include <asio_futures/redis/worker.hpp>

#include <asio_futures/redis/job_queue.hpp>

#include "support/redis_test.hpp"

#include <asio_futures/sync.hpp>
#include <asio_futures/task.hpp>

#include <boost/asio/this_coro.hpp>

#include <string>

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

BOOST_AUTO_TEST_CASE(stopped_workers_job_runs_on_another_worker) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    afr::job_queue q(ex, srv.endpoint(), "q");
    af::event started(ex), never(ex);
    bool first_cancelled = false;
    afr::worker a(ex, srv.endpoint(), "q", quick(3));
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
    a.stop(); // as good as dead: the job stays unacknowledged
    co_await ta.async_wait(asio::use_awaitable);
    BOOST_TEST(first_cancelled);
    BOOST_TEST(!f.done());

    afr::worker b(ex, srv.endpoint(), "q", quick(3));
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
    af::event started(ex), never(ex);
    int runs = 0;
    auto hang = [&](std::string) -> asio::awaitable<std::string> {
      ++runs;
      started.set();
      co_await never.async_wait(asio::use_awaitable);
      co_return "";
    };
    afr::worker a(ex, srv.endpoint(), "q", quick(1));
    a.handle_bytes("", hang);
    auto ta = af::create_task(ex, a.async_run());
    auto f = q.submit("job");
    co_await started.async_wait(asio::use_awaitable);
    a.stop();
    co_await ta.async_wait(asio::use_awaitable);

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
    BOOST_TEST(runs == 1); // the second delivery did not run it
    b.stop();
    co_await tb.async_wait(asio::use_awaitable);
  });
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
