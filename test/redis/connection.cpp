// asio_futures/redis/connection.hpp against a real redis-server.
#include <asio_futures/redis/connection.hpp>

#include "support/redis_test.hpp"

#include "support/checks.hpp"

#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>

#include <array>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace af = asio_futures;
namespace afr = asio_futures::redis;
namespace aft = asio_futures_test;
namespace asio = boost::asio;
using aft::co_run;
using aft::holds;
using aft::outcome_of;
using namespace std::chrono_literals;

namespace {

// Variadic, not initializer_list: WORKAROUND(g++ 12) an initializer_list's backing array in
// the full-expression of a co_await fails to compile ("array used as initializer").
template <class... A> af::future<afr::reply> send(afr::connection& c, const A&... a) {
  return c.command(std::vector<std::string>{std::string(a)...});
}
template <class... A> asio::awaitable<afr::reply> cmd(afr::connection& c, const A&... a) {
  return send(c, a...).async_wait(asio::use_awaitable);
}

} // namespace

BOOST_AUTO_TEST_SUITE(redis_connection_)

BOOST_AUTO_TEST_CASE(command_round_trip) {
  aft::redis_server srv;
  BOOST_TEST(srv.port() != 6379);
  co_run([&]() -> asio::awaitable<void> {
    afr::connection c(co_await asio::this_coro::executor, srv.endpoint());
    auto ok = co_await cmd(c, "SET", "k", "v");
    BOOST_TEST((ok.type == afr::reply::kind::status));
    BOOST_TEST(ok.str == "OK");
    BOOST_TEST((co_await cmd(c, "GET", "k")).as_string() == "v");
    BOOST_TEST((co_await cmd(c, "INCR", "n")).as_integer() == 1);
    BOOST_TEST((co_await cmd(c, "GET", "missing")).is_nil());
    // Binary safe both ways.
    const std::string bin("a\0b\r\nc", 6);
    co_await cmd(c, "SET", "bin", bin);
    BOOST_TEST((co_await cmd(c, "GET", "bin")).str == bin);
    // Arguments as views: read during the call only (the command is formatted at once), so
    // the caller may change or free them before the reply.
    {
      std::string big(100000, 'z');
      const std::array<std::string_view, 3> set{"SET", "big", big};
      auto f = c.command(std::span<const std::string_view>(set));
      big.assign(100000, 'q');
      co_await f.async_wait(asio::use_awaitable);
    }
    BOOST_TEST((co_await cmd(c, "GET", "big")).str == std::string(100000, 'z'));
    const std::array<std::string_view, 2> get{"GET", "bin"};
    auto g = c.command(get);
    BOOST_TEST((co_await g.async_wait(asio::use_awaitable)).str == bin);
    // Arrays, and replies in command order when pipelined.
    auto a = c.command({"RPUSH", "l", "x", "y"});
    auto b = c.command({"LRANGE", "l", "0", "-1"});
    BOOST_TEST((co_await a.async_wait(asio::use_awaitable)).integer == 2);
    auto list = co_await b.async_wait(asio::use_awaitable);
    BOOST_TEST(list.elements.size() == 2u);
    BOOST_TEST(list.elements[1].str == "y");
    // An error reply fails the future with server_error, and the connection goes on.
    auto err = co_await outcome_of(send(c, "INCR", "k"));
    BOOST_TEST(holds<afr::server_error>(err));
    BOOST_TEST(c.connected());
    BOOST_CHECK_THROW((void)(co_await cmd(c, "GET", "k")).as_integer(), afr::server_error);
  });
}

BOOST_AUTO_TEST_CASE(misuse_throws) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    afr::connection c(co_await asio::this_coro::executor, srv.endpoint());
    BOOST_CHECK_THROW(c.command(std::vector<std::string>{}), std::invalid_argument);
    BOOST_CHECK_THROW(c.command(std::span<const std::string_view>{}), std::invalid_argument);
    // Commands with many replies (hiredis would call the one-shot completion again).
    BOOST_CHECK_THROW(c.command({"subscribe", "ch"}), std::invalid_argument);
    BOOST_CHECK_THROW(c.command({"PSUBSCRIBE", "c*"}), std::invalid_argument);
    BOOST_CHECK_THROW(c.command(std::vector<std::string>{"Monitor"}), std::invalid_argument);
    const std::array<std::string_view, 2> unsub{"UNSUBSCRIBE", "ch"};
    BOOST_CHECK_THROW(c.command(unsub), std::invalid_argument);
    BOOST_TEST((co_await cmd(c, "PUBLISH", "ch", "m")).as_integer() == 0); // still usable
    BOOST_CHECK_THROW(c.subscribe(""), std::invalid_argument);
    afr::connection s(co_await asio::this_coro::executor, srv.endpoint());
    co_await s.subscribe("ch").async_wait(asio::use_awaitable);
    BOOST_CHECK_THROW(s.command({"GET", "k"}), af::invalid_state_error);
    c.close();
    c.close(); // idempotent
    BOOST_CHECK_THROW(c.command({"PING"}), af::invalid_state_error);
  });
}

BOOST_AUTO_TEST_CASE(pending_command_fails_when_server_dies_then_reconnects) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    afr::connection c(co_await asio::this_coro::executor, srv.endpoint());
    co_await cmd(c, "PING");
    // BLPOP stays pending on the server until it dies.
    auto pending = c.command({"BLPOP", "never", "0"});
    BOOST_TEST(co_await aft::eventually([&] {
      return srv.cli({"CLIENT", "LIST"}).find("cmd=blpop") != std::string::npos;
    }));
    srv.kill();
    auto e = co_await outcome_of(pending);
    BOOST_TEST(holds<afr::connection_error>(e));
    BOOST_TEST(aft::describe(e).find("connection lost") != std::string::npos);
    // Issued while the server is down: waits for the reconnection, then runs.
    auto waiting = c.command({"SET", "after", "restart"});
    BOOST_TEST(!waiting.done());
    srv.start();
    BOOST_TEST((co_await waiting.async_wait(asio::use_awaitable)).str == "OK");
    BOOST_TEST(c.connected());
    BOOST_TEST(srv.cli({"GET", "after"}) == "restart");
  });
}

BOOST_AUTO_TEST_CASE(killed_connection_reconnects_and_calls_connect_handler) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    afr::connection_options o;
    o.client_name = "victim";
    afr::connection c(co_await asio::this_coro::executor, srv.endpoint(), o);
    int connects = 0;
    c.set_connect_handler([&] { ++connects; });
    co_await cmd(c, "PING");
    BOOST_TEST(srv.kill_clients("victim") == 1);
    BOOST_TEST(co_await aft::eventually([&] { return connects >= 2; }));
    BOOST_TEST((co_await cmd(c, "CLIENT", "GETNAME")).str == "victim");
  });
}

BOOST_AUTO_TEST_CASE(auth_and_select_from_endpoint) {
  aft::redis_server srv({"--requirepass", "s3cret"});
  co_run([&]() -> asio::awaitable<void> {
    auto ep = srv.endpoint();
    ep.password = "s3cret";
    ep.db = 3;
    afr::connection c(co_await asio::this_coro::executor, ep);
    co_await cmd(c, "SET", "in3", "yes");
    BOOST_TEST(srv.cli({"GET", "in3"}, "s3cret") == "(nil)"); // db 0
    auto via_select =
        srv.cli({"EVAL", "redis.call('SELECT', 3) return redis.call('GET', 'in3')", "0"}, "s3cret");
    BOOST_TEST(via_select == "yes");

    // A wrong password never connects: commands wait, close() fails them.
    ep.password = "wrong";
    afr::connection bad(co_await asio::this_coro::executor, ep);
    auto f = bad.command({"PING"});
    asio::steady_timer t(co_await asio::this_coro::executor, 100ms);
    co_await t.async_wait(asio::use_awaitable); // a window in which it must not connect
    BOOST_TEST(!f.done());
    BOOST_TEST(!bad.connected());
    bad.close();
    BOOST_TEST(holds<afr::connection_error>(co_await outcome_of(f)));
  });
}

BOOST_AUTO_TEST_CASE(subscribe_receives_messages_across_reconnection) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    afr::connection_options o;
    o.client_name = "subscriber";
    afr::connection sub(ex, srv.endpoint(), o);
    afr::connection pub(ex, srv.endpoint());
    std::vector<std::string> got;
    int connects = 0;
    sub.set_message_handler([&](std::string_view ch, std::string_view m) {
      BOOST_TEST(ch == "news");
      got.emplace_back(m);
    });
    sub.set_connect_handler([&] { ++connects; });
    co_await sub.subscribe("news").async_wait(asio::use_awaitable);
    BOOST_TEST((co_await cmd(pub, "PUBLISH", "news", "one")).integer == 1);
    BOOST_TEST(co_await aft::eventually([&] { return got.size() == 1; }));
    srv.kill_clients("subscriber");
    // Resubscribed (the handler runs once the subscription is confirmed again).
    BOOST_TEST(co_await aft::eventually([&] { return connects >= 2; }));
    BOOST_TEST((co_await cmd(pub, "PUBLISH", "news", "two")).integer == 1);
    BOOST_TEST(co_await aft::eventually([&] { return got.size() == 2; }));
    BOOST_TEST(got.back() == "two");
  });
}

BOOST_AUTO_TEST_CASE(health_check_drops_a_silent_subscriber_and_resubscribes) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    afr::connection_options o;
    o.health_check_interval = 20ms;
    o.health_check_timeout = 2000ms; // generous: a loaded or sanitized run answers late
    o.connect_timeout = 500ms;
    afr::connection sub(ex, srv.endpoint(), o);
    afr::connection pub(ex, srv.endpoint());
    std::vector<std::string> got;
    sub.set_message_handler([&](std::string_view, std::string_view m) { got.emplace_back(m); });
    co_await sub.subscribe("news").async_wait(asio::use_awaitable);
    BOOST_TEST(sub.connections() == 1u);
    // Health checks of a live server pass: ten probes answered, none failed.
    BOOST_TEST(co_await aft::eventually([&] { return sub.health_checks() >= 10; }));
    BOOST_TEST(sub.health_failures() == 0u);
    BOOST_TEST(sub.connections() == 1u);
    BOOST_TEST(sub.connected());
    // The server stops answering, its sockets open (as a stuck or vanished host): the
    // subscriber notices and drops the connection.
    srv.pause();
    const bool dropped =
        co_await aft::eventually([&] { return sub.health_failures() > 0 && !sub.connected(); });
    srv.resume();
    BOOST_TEST(dropped);
    // Back: reconnected and resubscribed, messages flow again.
    BOOST_TEST(co_await aft::eventually([&] { return sub.connections() >= 2 && sub.connected(); }));
    BOOST_TEST((co_await cmd(pub, "PUBLISH", "news", "after")).integer == 1);
    BOOST_TEST(co_await aft::eventually([&] { return got.size() == 1; }));
    BOOST_TEST(got.at(0) == "after");
  });
}

BOOST_AUTO_TEST_CASE(invalid_options_throw) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    afr::connection_options o;
    o.connect_timeout = 0ms;
    BOOST_CHECK_THROW(afr::connection(ex, srv.endpoint(), o), std::invalid_argument);
    o = {};
    o.health_check_timeout = 0ms;
    BOOST_CHECK_THROW(afr::connection(ex, srv.endpoint(), o), std::invalid_argument);
    o = {};
    o.keepalive_idle = std::chrono::seconds(40000);
    BOOST_CHECK_THROW(afr::connection(ex, srv.endpoint(), o), std::invalid_argument);
    o = {};
    o.keepalive_count = 128;
    BOOST_CHECK_THROW(afr::connection(ex, srv.endpoint(), o), std::invalid_argument);
    o = {};
    o.health_check_timeout = 0ms;
    o.health_check_interval = 0ms; // off: the timeout does not matter
    afr::connection ok(ex, srv.endpoint(), o);
    o = {};
    o.keepalive_count = 0;
    BOOST_CHECK_THROW(afr::connection(ex, srv.endpoint(), o), std::invalid_argument);
    o.keepalive_idle = 0s; // off
    afr::connection ok2(ex, srv.endpoint(), o);
    BOOST_TEST((co_await cmd(ok2, "PING")).str == "PONG");
    o = {};
    o.initial_backoff = -1ms;
    BOOST_CHECK_THROW(afr::connection(ex, srv.endpoint(), o), std::invalid_argument);
  });
}

BOOST_AUTO_TEST_CASE(refused_subscription_fails_the_subscribe_future) {
  aft::redis_server srv;
  srv.cli({"ACL", "SETUSER", "default", "resetchannels", "&allowed"});
  co_run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    afr::connection sub(ex, srv.endpoint());
    auto e = co_await outcome_of(sub.subscribe("forbidden"));
    BOOST_TEST(holds<afr::server_error>(e), aft::describe(e));
    BOOST_TEST(aft::describe(e).find("NOPERM") != std::string::npos, aft::describe(e));
    // The connection goes on, and a permitted channel works.
    co_await sub.subscribe("allowed").async_wait(asio::use_awaitable);
    afr::connection pub(ex, srv.endpoint());
    std::vector<std::string> got;
    sub.set_message_handler([&](std::string_view, std::string_view m) { got.emplace_back(m); });
    BOOST_TEST((co_await cmd(pub, "PUBLISH", "allowed", "m")).integer == 1);
    BOOST_TEST(co_await aft::eventually([&] { return got.size() == 1; }));
  });
}

BOOST_AUTO_TEST_CASE(commands_from_another_thread) {
  aft::redis_server srv;
  co_run([&]() -> asio::awaitable<void> {
    afr::connection c(co_await asio::this_coro::executor, srv.endpoint());
    std::vector<af::future<afr::reply>> fs;
    std::thread t([&] {
      for (int i = 0; i < 50; ++i)
        fs.push_back(c.command({"INCR", "counter"}));
    });
    t.join();
    for (auto& f : fs)
      co_await f.async_wait(asio::use_awaitable);
    BOOST_TEST(srv.cli({"GET", "counter"}) == "50");
  });
}

BOOST_AUTO_TEST_CASE(connections_sharing_the_callers_strand) {
  // Connections given a strand (as a job_queue's and a worker's are) run on it rather than
  // on a second strand: commands issued on it go out at once, replies come back in order,
  // and a subscriber on the same strand receives what the other connection publishes.
  aft::redis_server srv;
  asio::io_context ioc;
  const auto strand = asio::make_strand(asio::any_io_executor(ioc.get_executor()));
  std::vector<std::string> messages; // the strand's
  std::vector<std::string> list;
  bool done = false;
  std::exception_ptr error;
  {
    afr::connection c(strand, srv.endpoint());
    afr::connection sub(strand, srv.endpoint());
    sub.set_message_handler(
        [&](std::string_view, std::string_view m) { messages.emplace_back(m); });
    asio::co_spawn(
        strand,
        [&]() -> asio::awaitable<void> {
          co_await sub.subscribe("ch").async_wait(asio::use_awaitable);
          std::vector<af::future<afr::reply>> fs;
          for (int i = 0; i < 20; ++i) {
            const std::string v = std::to_string(i);
            const std::array<std::string_view, 3> push{"RPUSH", "l", v};
            fs.push_back(c.command(push));
          }
          for (auto& f : fs)
            co_await f.async_wait(asio::use_awaitable);
          const std::array<std::string_view, 3> published{"m1", "m2", "m3"};
          for (const auto m : published) {
            const std::array<std::string_view, 3> pub{"PUBLISH", "ch", m};
            auto f = c.command(pub);
            co_await f.async_wait(asio::use_awaitable);
          }
          auto range = c.command({"LRANGE", "l", "0", "-1"});
          for (const auto& e : (co_await range.async_wait(asio::use_awaitable)).elements)
            list.push_back(e.str);
        },
        [&](std::exception_ptr e) {
          done = true;
          error = e;
        });
    BOOST_TEST(aft::run_until(
        ioc, [&] { return done && messages.size() == 3; }, aft::redis_timeout));
  }
  aft::poll(ioc);
  BOOST_TEST(!error);
  BOOST_TEST(list.size() == 20u);
  for (std::size_t i = 0; i < list.size(); ++i)
    BOOST_TEST(list[i] == std::to_string(i));
  BOOST_TEST((messages == std::vector<std::string>{"m1", "m2", "m3"}));
}

BOOST_AUTO_TEST_SUITE_END()
