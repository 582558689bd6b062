// asio_futures/redis/job_queue.hpp (with workers of worker.hpp) against a real redis-server.
#include <asio_futures/redis/job_queue.hpp>

#include <asio_futures/redis/worker.hpp>

#include "support/redis_test.hpp"
#include "support/tcp_proxy.hpp"

#include <asio_futures/gather.hpp>
#include <asio_futures/sync.hpp>
#include <asio_futures/task.hpp>
#include <asio_futures/thread.hpp>

#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stop_token>
#include <thread>

#include <boost/asio/this_coro.hpp>

#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace af = asio_futures;
namespace afr = asio_futures::redis;
namespace aft = asio_futures_test;
namespace asio = boost::asio;
using aft::co_run;
using aft::outcome_of;
using namespace std::chrono_literals;

namespace {

template <class E> const E* get_if(const std::exception_ptr& e, E& out) {
  try {
    if (e)
      std::rethrow_exception(e);
  } catch (const E& x) {
    out = x;
    return &out;
  } catch (...) {
  }
  return nullptr;
}

template <class E> bool holds(const std::exception_ptr& e) {
  try {
    if (e)
      std::rethrow_exception(e);
  } catch (const E&) {
    return true;
  } catch (...) {
  }
  return false;
}

struct custom_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Runs `w` as a task; `finish` stops it and waits for the end.
struct running_worker {
  afr::worker& w;
  af::task<void> t;
  running_worker(asio::any_io_executor ex, afr::worker& wk)
      : w(wk), t(af::create_task(ex, wk.async_run())) {}
  asio::awaitable<void> finish() {
    w.stop();
    co_await t.async_wait(asio::use_awaitable);
  }
};

afr::submit_options fn(std::string name) {
  afr::submit_options o;
  o.function = std::move(name);
  return o;
}

} // namespace

BOOST_AUTO_TEST_SUITE(redis_job_queue_)

BOOST_AUTO_TEST_CASE(submit_and_call_round_trip) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    afr::job_queue q(ex, srv.endpoint(), "q");
    afr::worker_options wo;
    wo.concurrency = 4;
    afr::worker w(ex, srv.endpoint(), "q", wo);
    w.handle_bytes("",
                   [](std::string p) -> asio::awaitable<std::string> { co_return "<" + p + ">"; });
    w.handle("add", [](int a, int b) -> asio::awaitable<int> { co_return a + b; });
    w.handle("concat",
             [](const std::string& a, std::vector<int> v) -> asio::awaitable<std::string> {
               co_return a + std::to_string(v.size());
             });
    int noops = 0;
    w.handle("noop", [&]() -> asio::awaitable<void> {
      ++noops;
      co_return;
    });
    running_worker rw(ex, w);

    const std::string bin("\0\x01\xff z", 5);
    BOOST_TEST(co_await q.submit(bin).async_wait(asio::use_awaitable) == "<" + bin + ">");
    BOOST_TEST(co_await q.call<int>("add", 2, 3).async_wait(asio::use_awaitable) == 5);
    const std::vector<int> three{1, 2, 3};
    BOOST_TEST(co_await q.call<std::string>("concat", std::string("n="), three)
                   .async_wait(asio::use_awaitable) == "n=3");
    co_await q.call<void>("noop").async_wait(asio::use_awaitable);
    BOOST_TEST(noops == 1);

    // Many at once, through gather.
    std::vector<af::future<int>> fs;
    for (int i = 0; i < 40; ++i)
      fs.push_back(q.call<int>("add", i, 1000));
    auto all = co_await af::gather(fs).async_wait(asio::use_awaitable);
    for (int i = 0; i < 40; ++i)
      BOOST_TEST(all[static_cast<std::size_t>(i)] == i + 1000);

    // Bad input: wrong argument count or types, wrong result type.
    afr::remote_error re("", "");
    auto e1 = co_await outcome_of(q.call<int>("add", 1));
    BOOST_TEST_REQUIRE(get_if(e1, re));
    BOOST_TEST(re.type() == "std::invalid_argument");
    BOOST_TEST(re.message().find("takes 2 argument(s)") != std::string::npos);
    auto e2 = co_await outcome_of(q.call<int>("add", "x", 1));
    BOOST_TEST(holds<afr::remote_error>(e2));
    auto e3 = co_await outcome_of(q.call<std::vector<int>>("add", 1, 2));
    BOOST_TEST(holds<boost::system::system_error>(e3)); // value_to<vector<int>>(3) on our side

    BOOST_TEST(q.pending() == 0u);
    co_await rw.finish();
    BOOST_TEST(srv.cli({"XLEN", "q:jobs"}) == "0"); // acknowledged and deleted
  });
}

BOOST_AUTO_TEST_CASE(handler_exception_fails_with_remote_error) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    afr::job_queue q(ex, srv.endpoint(), "q");
    afr::worker w(ex, srv.endpoint(), "q");
    w.handle_bytes("fail", [](std::string p) -> asio::awaitable<std::string> {
      throw std::runtime_error("boom: " + p);
      co_return "";
    });
    w.handle("custom", []() -> asio::awaitable<int> {
      throw custom_failure("custom");
      co_return 0;
    });
    w.handle_bytes("self_cancelled", [](std::string) -> asio::awaitable<std::string> {
      const auto inner = af::make_cancelled_future<std::string>(co_await asio::this_coro::executor,
                                                                "upstream gone");
      co_return co_await inner.async_wait();
    });
    running_worker rw(ex, w);

    afr::remote_error re("", "");
    BOOST_TEST_REQUIRE(get_if(co_await outcome_of(q.submit("x", fn("fail"))), re));
    BOOST_TEST(re.type() == "std::runtime_error");
    BOOST_TEST(re.message() == "boom: x");
    BOOST_TEST(std::string(re.what()) == "std::runtime_error: boom: x");
    BOOST_TEST_REQUIRE(get_if(co_await outcome_of(q.call<int>("custom")), re));
    BOOST_TEST(re.type().find("custom_failure") != std::string::npos);
    BOOST_TEST_REQUIRE(get_if(co_await outcome_of(q.submit("x", fn("nobody"))), re));
    BOOST_TEST(re.type() == "asio_futures::redis::unknown_function");
    // A handler that ends cancelled on its own (something it awaited was cancelled), with
    // no cancel from the caller, failed: the caller hears of it (review finding: the job was
    // acknowledged without a result and the caller's future stayed pending forever).
    BOOST_TEST_REQUIRE(get_if(co_await outcome_of(q.submit("x", fn("self_cancelled"))), re));
    BOOST_TEST(re.type().find("cancelled_error") != std::string::npos);
    co_await rw.finish();
  });
}

BOOST_AUTO_TEST_CASE(cancel_before_pickup_never_runs) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    afr::job_queue q(ex, srv.endpoint(), "q");
    std::vector<std::string> ran;
    afr::worker w(ex, srv.endpoint(), "q");
    w.handle_bytes("", [&](std::string p) -> asio::awaitable<std::string> {
      ran.push_back(p);
      co_return p;
    });
    auto first = q.submit("first");
    BOOST_TEST(co_await aft::eventually([&] { return srv.cli({"XLEN", "q:jobs"}) == "1"; }));
    BOOST_TEST(first.cancel("not needed"));
    BOOST_TEST(co_await aft::eventually([&] { return srv.cli({"KEYS", "q:cancel:*"}) != ""; }));
    // Only now a worker: it must skip the cancelled job.
    running_worker rw(ex, w);
    BOOST_TEST(co_await q.submit("second").async_wait(asio::use_awaitable) == "second");
    BOOST_TEST(ran.size() == 1u);
    BOOST_TEST(ran.at(0) == "second");
    BOOST_TEST(first.cancelled());
    BOOST_TEST(q.pending() == 0u);
    BOOST_TEST(co_await aft::eventually([&] { return srv.cli({"XLEN", "q:jobs"}) == "0"; }));
    BOOST_TEST(srv.cli({"KEYS", "q:result:*"}).find('\n') == std::string::npos); // one result
    co_await rw.finish();
  });
}

BOOST_AUTO_TEST_CASE(cancel_while_running_cancels_the_handler) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    afr::job_queue q(ex, srv.endpoint(), "q");
    afr::worker w(ex, srv.endpoint(), "q");
    af::event started(ex);
    af::event never(ex);
    std::string seen;
    w.handle_bytes("", [&](std::string) -> asio::awaitable<std::string> {
      started.set();
      try {
        co_await never.async_wait(asio::use_awaitable);
      } catch (const af::cancelled_error& e) {
        seen = "cancelled: " + e.message();
        throw;
      }
      co_return "unreachable";
    });
    running_worker rw(ex, w);
    auto f = q.submit("long");
    co_await started.async_wait(asio::use_awaitable);
    BOOST_TEST(w.running() == 1u);
    f.cancel();
    BOOST_TEST(co_await aft::eventually([&] { return !seen.empty() && w.running() == 0; }));
    BOOST_TEST(seen == "cancelled: asio_futures::redis: cancelled by the caller");
    BOOST_TEST(f.cancelled());
    BOOST_TEST(co_await aft::eventually([&] { return srv.cli({"XLEN", "q:jobs"}) == "0"; }));
    BOOST_TEST(srv.cli({"KEYS", "q:result:*"}) == ""); // no result stored
    co_await rw.finish();
  });
}

BOOST_AUTO_TEST_CASE(cancel_while_running_requests_stop_of_offloaded_work) {
  aft::redis_server srv;
  asio::thread_pool pool(1);
  std::atomic<bool> offloaded{false}, stopped{false};
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    afr::job_queue q(ex, srv.endpoint(), "q");
    afr::worker w(ex, srv.endpoint(), "q");
    w.handle_bytes("", [&](std::string) -> asio::awaitable<std::string> {
      // Blocking work on a pool thread that honours its stop_token.
      co_return co_await af::run_in_executor(pool, [&](std::stop_token st) {
        std::mutex m;
        std::condition_variable_any cv;
        std::unique_lock lock(m);
        offloaded = true;
        cv.wait(lock, st, [] { return false; });
        stopped = true;
        return std::string("stopped");
      }).async_wait(asio::use_awaitable);
    });
    running_worker rw(ex, w);
    auto f = q.submit("work");
    BOOST_TEST(co_await aft::eventually([&] { return offloaded.load(); }));
    f.cancel();
    BOOST_TEST(co_await aft::eventually([&] { return stopped.load() && w.running() == 0; }));
    BOOST_TEST(srv.cli({"KEYS", "q:result:*"}) == "");
    co_await rw.finish();
  });
  pool.join();
}

BOOST_AUTO_TEST_CASE(caller_disconnects_and_returns_recovers_result) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    // The caller goes through a proxy that holds its reconnections until the result was
    // announced to nobody.
    aft::tcp_proxy px(ex, srv.port());
    afr::job_queue q(ex, px.endpoint(), "q");
    afr::worker w(ex, srv.endpoint(), "q");
    af::event started(ex), gate(ex);
    w.handle_bytes("", [&](std::string p) -> asio::awaitable<std::string> {
      started.set();
      co_await gate.async_wait(asio::use_awaitable);
      co_return "done:" + p;
    });
    running_worker rw(ex, w);
    auto f = q.submit("job");
    co_await started.async_wait(asio::use_awaitable);
    px.hold(":caller:");
    BOOST_TEST(srv.kill_clients(":caller:") == 2);
    BOOST_TEST(co_await aft::eventually([&] { return px.held() == 2; })); // both back, held
    BOOST_TEST(srv.cli({"PUBSUB", "CHANNELS", "q:done:*"}) == "");        // nobody listens
    gate.set();
    BOOST_TEST(co_await aft::eventually([&] { return w.completed() == 1; }));
    BOOST_TEST(!f.done());
    // Back: the queue fetches the result it missed.
    px.release_held();
    BOOST_TEST(co_await f.async_wait(asio::use_awaitable) == "done:job");
    co_await rw.finish();
  });
}

BOOST_AUTO_TEST_CASE(result_announced_before_the_first_subscription_is_recovered) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    // The caller's subscriber cannot reach Redis at first; its command connection can.
    aft::tcp_proxy px(ex, srv.port());
    px.hold(":sub");
    afr::job_queue q(ex, px.endpoint(), "q");
    afr::worker w(ex, srv.endpoint(), "q");
    w.handle_bytes("", [](std::string p) -> asio::awaitable<std::string> { co_return "r:" + p; });
    running_worker rw(ex, w);
    auto f = q.submit("job");
    BOOST_TEST(co_await aft::eventually([&] { return w.completed() == 1 && px.held() == 1; }));
    BOOST_TEST(!f.done()); // announced to nobody
    px.release_held();
    BOOST_TEST(co_await f.async_wait(asio::use_awaitable) == "r:job");
    co_await rw.finish();
  });
}

BOOST_AUTO_TEST_CASE(silent_subscriber_is_replaced_and_the_result_recovered) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    aft::tcp_proxy px(ex, srv.port());
    afr::queue_options qo;
    qo.connection.health_check_interval = 20ms;
    qo.connection.health_check_timeout = 500ms;
    afr::job_queue q(ex, px.endpoint(), "q", qo);
    afr::worker w(ex, srv.endpoint(), "q");
    af::event started(ex), gate(ex);
    w.handle_bytes("", [&](std::string p) -> asio::awaitable<std::string> {
      started.set();
      co_await gate.async_wait(asio::use_awaitable);
      co_return "done:" + p;
    });
    running_worker rw(ex, w);
    auto f = q.submit("job");
    co_await started.async_wait(asio::use_awaitable);
    // The caller's subscriber becomes a half-open connection: no RST, no FIN, no answer.
    BOOST_TEST(px.blackhole(":sub") == 1);
    gate.set(); // its result is published into the black hole
    BOOST_TEST_REQUIRE(co_await aft::eventually([&] { return f.done(); }));
    BOOST_TEST(co_await f.async_wait(asio::use_awaitable) == "done:job");
    co_await rw.finish();
  });
}

BOOST_AUTO_TEST_CASE(redis_restart_with_futures_pending) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    afr::job_queue q(ex, srv.endpoint(), "q");
    afr::worker_options wo;
    wo.concurrency = 2;
    afr::worker w(ex, srv.endpoint(), "q", wo);
    af::event gate(ex);
    std::map<int, int> runs;
    int started = 0;
    w.handle("square", [&](int x) -> asio::awaitable<int> {
      ++runs[x];
      ++started;
      co_await gate.async_wait(asio::use_awaitable);
      co_return x* x;
    });
    running_worker rw(ex, w);
    std::vector<af::future<int>> fs;
    for (int i = 0; i < 4; ++i)
      fs.push_back(q.call<int>("square", i));
    BOOST_TEST(co_await aft::eventually([&] { return started == 2; })); // 2 running, 2 queued
    BOOST_TEST(co_await aft::eventually([&] { return srv.cli({"XLEN", "q:jobs"}) == "4"; }));
    // The restart runs on another thread while this one goes on serving the connections
    // (which notice the loss and retry).
    co_await af::to_thread([&] { srv.stop(); }) // SIGTERM: the append-only file is flushed
        .async_wait(asio::use_awaitable);
    for (int i = 4; i < 6; ++i)
      fs.push_back(q.call<int>("square", i)); // submitted while Redis is down
    auto restarted = af::to_thread([&] { srv.start(); });
    gate.set();
    co_await restarted.async_wait(asio::use_awaitable);
    auto all = co_await af::gather(fs).async_wait(asio::use_awaitable);
    for (int i = 0; i < 6; ++i) {
      BOOST_TEST(all[static_cast<std::size_t>(i)] == i * i);
      BOOST_TEST(runs[i] == 1);
    }
    co_await rw.finish();
  });
}

BOOST_AUTO_TEST_CASE(destroyed_and_its_context_not_run_again_closes_everything) {
  aft::redis_server srv;
  auto ours = [&] {
    auto list = srv.cli({"CLIENT", "LIST"});
    return list.find("name=q:caller:") != std::string::npos ||
           list.find("name=lifetime:") != std::string::npos;
  };
  {
    asio::io_context ioc;
    afr::worker_options wo;
    wo.consumer = "lifetime";
    auto q = std::make_unique<afr::job_queue>(ioc.get_executor(), srv.endpoint(), "q");
    auto w = std::make_unique<afr::worker>(ioc.get_executor(), srv.endpoint(), "q", wo);
    w->handle_bytes("", [](std::string) -> asio::awaitable<std::string> {
      asio::steady_timer t(co_await asio::this_coro::executor);
      t.expires_at(asio::steady_timer::time_point::max());
      co_await t.async_wait(asio::use_awaitable);
      co_return "";
    });
    auto run = af::create_task(ioc, w->async_run());
    auto f = q->submit("job");
    BOOST_TEST_REQUIRE(aft::run_until(
        ioc, [&] { return w->running() == 1; }, aft::redis_timeout));
    BOOST_TEST(ours());
    // Destroyed mid-job, then the context, which never runs again: the closes they post
    // never run. Nothing may leak (the sockets would stay open) or be used after its end
    // (the sanitizer builds run this too).
    w.reset();
    q.reset();
  }
  // Bounded poll of the server (another process): every connection of ours is gone.
  bool gone = false;
  for (int i = 0; i < 1000 && !gone; ++i) {
    gone = !ours();
    if (!gone)
      std::this_thread::sleep_for(10ms); // poll interval
  }
  BOOST_TEST(gone, "connections left open:\n" << srv.cli({"CLIENT", "LIST"}));
}

BOOST_AUTO_TEST_CASE(first_stored_result_wins) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    afr::job_queue q(ex, srv.endpoint(), "q");
    afr::worker w(ex, srv.endpoint(), "q");
    af::event started(ex), gate(ex);
    w.handle_bytes("", [&](std::string) -> asio::awaitable<std::string> {
      started.set();
      co_await gate.async_wait(asio::use_awaitable);
      co_return "late";
    });
    running_worker rw(ex, w);
    auto f = q.submit("x");
    co_await started.async_wait(asio::use_awaitable);
    // Another run of the same job (a worker presumed dead) stored its result first.
    std::istringstream entry(srv.cli({"XRANGE", "q:jobs", "-", "+"}));
    std::string line, id;
    while (std::getline(entry, line))
      if (line == "id")
        std::getline(entry, id);
    BOOST_TEST_REQUIRE(!id.empty());
    srv.cli({"SET", "q:result:" + id, "vfirst"});
    gate.set();
    BOOST_TEST(co_await f.async_wait(asio::use_awaitable) == "first");
    BOOST_TEST(srv.cli({"GET", "q:result:" + id}) == "vfirst");
    BOOST_TEST(co_await aft::eventually([&] { return srv.cli({"XLEN", "q:jobs"}) == "0"; }));
    co_await rw.finish();
  });
}

BOOST_AUTO_TEST_CASE(malformed_stored_result_fails_with_protocol_error) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    afr::job_queue q(ex, srv.endpoint(), "q");
    auto f = q.submit("x");
    BOOST_TEST(co_await aft::eventually([&] { return srv.cli({"XLEN", "q:jobs"}) == "1"; }));
    // No worker: the test plays one that stores garbage, read from the job's entry.
    std::istringstream entry(srv.cli({"XRANGE", "q:jobs", "-", "+"}));
    std::string line, id, reply;
    while (std::getline(entry, line)) {
      if (line == "id")
        std::getline(entry, id);
      else if (line == "reply")
        std::getline(entry, reply);
    }
    BOOST_TEST_REQUIRE(!id.empty());
    srv.cli({"SET", "q:result:" + id, "garbage"});
    srv.cli({"PUBLISH", reply, id});
    afr::remote_error re("", "");
    BOOST_TEST_REQUIRE(get_if(co_await outcome_of(f), re));
    BOOST_TEST(re.type() == "asio_futures::redis::protocol_error");
  });
}

BOOST_AUTO_TEST_CASE(refused_cancel_is_reported) {
  aft::redis_server srv;
  // The queue may not write cancel markers (an ACL without q:cancel:*).
  srv.cli({"ACL", "SETUSER", "default", "resetkeys", "~q:jobs", "~q:result:*", "~q:attempts:*"});
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    std::vector<std::exception_ptr> errors;
    afr::queue_options qo;
    qo.on_error = [&](std::exception_ptr e) { errors.push_back(e); };
    afr::job_queue q(ex, srv.endpoint(), "q", qo);
    auto f = q.submit("x");
    BOOST_TEST(co_await aft::eventually([&] { return srv.cli({"XLEN", "q:jobs"}) == "1"; }));
    f.cancel();
    BOOST_TEST_REQUIRE(co_await aft::eventually([&] { return !errors.empty(); }));
    BOOST_TEST(holds<afr::server_error>(errors.at(0)));
    BOOST_TEST(aft::describe(errors.at(0)).find("NOPERM") != std::string::npos);
  });
}

BOOST_AUTO_TEST_CASE(refused_subscription_fails_the_queue) {
  aft::redis_server srv;
  srv.cli({"ACL", "SETUSER", "default", "resetchannels"}); // no Pub/Sub channel at all
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    std::vector<std::exception_ptr> errors;
    afr::queue_options qo;
    qo.on_error = [&](std::exception_ptr e) { errors.push_back(e); };
    afr::job_queue q(ex, srv.endpoint(), "q", qo);
    auto e = co_await outcome_of(q.submit("x"));
    BOOST_TEST(holds<afr::server_error>(e), aft::describe(e));
    BOOST_TEST(aft::describe(e).find("NOPERM") != std::string::npos);
    BOOST_TEST(errors.size() == 1u);
    BOOST_TEST(holds<afr::server_error>(co_await outcome_of(q.submit("y"))));
    BOOST_TEST(q.pending() == 0u);
  });
}

BOOST_AUTO_TEST_CASE(misuse_throws) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    BOOST_CHECK_THROW(afr::job_queue(ex, srv.endpoint(), ""), std::invalid_argument);
    afr::queue_options bad;
    bad.result_ttl = 0s;
    BOOST_CHECK_THROW(afr::job_queue(ex, srv.endpoint(), "q", bad), std::invalid_argument);
    afr::job_queue q(ex, srv.endpoint(), "q");
    auto f = q.submit("nobody runs this");
    q.close();
    BOOST_TEST(holds<afr::connection_error>(co_await outcome_of(f)));
    BOOST_CHECK_THROW(q.submit("x"), af::invalid_state_error);
  });
}

BOOST_AUTO_TEST_SUITE_END()
