//
// examples/http_server/client.cpp
//
// The Beast client the tests of example_http_server drive it with: the cases curl cannot
// express. Each exits 0 when the server behaved, 1 (with a message) when not; every step is
// bounded (the whole run by af::timeout), so a hang fails instead of blocking CTest.
//
//   example_http_client PORT disconnect ID   a client hangs up while its request waits
//                                            (once with FIN, once with RST): the server
//                                            must notice, free the entry (/stats), and a
//                                            late /response/ID must get 404
//   example_http_client PORT keepalive       several requests on one connection, and a
//                                            request pipelined behind a waiting one
//   example_http_client PORT load N          N concurrent waiting requests, then N
//                                            responders with unique texts: each requester
//                                            must get exactly its own text; prints
//                                            "load: ... requests/s"
//
// It uses the library the way a client would: a task per connection, af::gather to collect
// the N requesters and responders, af::sleep between polls of /stats, af::timeout around
// everything. Polling /stats (bounded) is how a test learns that the server registered or
// dropped a request, instead of sleeping and hoping.
//
#include <asio_futures/asio_futures.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace af = asio_futures;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

using response = http::response<http::string_body>;

void check(bool ok, const std::string& what) {
  if (!ok)
    throw std::runtime_error(what);
}

/// A connection to the server on 127.0.0.1:port.
asio::awaitable<tcp::socket> connect(unsigned short port) {
  tcp::socket s(co_await asio::this_coro::executor);
  co_await s.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), port),
                           asio::use_awaitable);
  s.set_option(tcp::no_delay(true));
  co_return s;
}

/// Sends one request (keep-alive) without reading the answer.
asio::awaitable<void> send(tcp::socket& s, http::verb verb, std::string target,
                           std::string body = {}) {
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (!body.empty())
    req.set(http::field::content_type, "application/x-www-form-urlencoded");
  req.body() = std::move(body);
  req.prepare_payload();
  co_await http::async_write(s, req, asio::use_awaitable);
}

asio::awaitable<response> receive(tcp::socket& s, beast::flat_buffer& buffer) {
  response res;
  co_await http::async_read(s, buffer, res, asio::use_awaitable);
  co_return res;
}

/// One request on an open connection.
asio::awaitable<response> exchange(tcp::socket& s, beast::flat_buffer& buffer, http::verb verb,
                                   std::string target, std::string body = {}) {
  co_await send(s, verb, std::move(target), std::move(body));
  co_return co_await receive(s, buffer);
}

/// One request on a fresh connection.
asio::awaitable<response> fetch(unsigned short port, std::string target) {
  tcp::socket s = co_await connect(port);
  beast::flat_buffer buffer;
  co_return co_await exchange(s, buffer, http::verb::get, std::move(target));
}

/// The server's counters (GET /stats).
struct stats {
  long long waiting = 0, served = 0, matched = 0, timed_out = 0, hung_up = 0;
};

long long json_field(std::string_view json, std::string_view name) {
  const std::string key = "\"" + std::string(name) + "\":";
  const std::size_t at = json.find(key);
  check(at != std::string_view::npos, "/stats lacks " + std::string(name));
  return std::strtoll(std::string(json.substr(at + key.size())).c_str(), nullptr, 10);
}

asio::awaitable<stats> get_stats(unsigned short port) {
  const response r = co_await fetch(port, "/stats");
  check(r.result() == http::status::ok, "/stats failed");
  co_return stats{json_field(r.body(), "waiting"), json_field(r.body(), "served"),
                  json_field(r.body(), "matched"), json_field(r.body(), "timed_out"),
                  json_field(r.body(), "hung_up")};
}

/// Polls /stats until `pred` holds (the caller's af::timeout bounds it).
template <class Pred> asio::awaitable<stats> poll_stats(unsigned short port, Pred pred) {
  for (;;) {
    stats s = co_await get_stats(port);
    if (pred(s))
      co_return s;
    co_await af::sleep(co_await asio::this_coro::executor, 2ms).async_wait();
  }
}

void expect_status(const response& r, http::status want, const std::string& what) {
  check(r.result() == want, what + ": expected " + std::to_string(static_cast<int>(want)) +
                                ", got " + std::to_string(r.result_int()) + " " + r.body());
}

// --- disconnect ----------------------------------------------------------------------------

asio::awaitable<void> hang_up_while_waiting(unsigned short port, std::string id, bool reset) {
  const stats before = co_await get_stats(port);
  tcp::socket waiter = co_await connect(port);
  co_await send(waiter, http::verb::get, "/request/" + id);
  co_await poll_stats(port, [&](const stats& s) { return s.waiting == before.waiting + 1; });
  if (reset) // RST instead of FIN: the server's read fails with connection_reset
    waiter.set_option(asio::socket_base::linger(true, 0));
  waiter.close();
  co_await poll_stats(port, [&](const stats& s) {
    return s.waiting == before.waiting && s.hung_up == before.hung_up + 1;
  });
  expect_status(co_await fetch(port, "/response/" + id + "?text=late"), http::status::not_found,
                "/response after the requester hung up");
  std::printf("disconnect (%s): the server freed the entry, a late /response got 404\n",
              reset ? "RST" : "FIN");
}

asio::awaitable<void> disconnect(unsigned short port, std::string id) {
  co_await hang_up_while_waiting(port, id + "-fin", false);
  co_await hang_up_while_waiting(port, id + "-rst", true);
}

// --- keep-alive ----------------------------------------------------------------------------

asio::awaitable<void> keepalive(unsigned short port) {
  tcp::socket s = co_await connect(port);
  beast::flat_buffer buffer;
  struct step {
    http::verb verb;
    const char* target;
    const char* body;
    http::status want;
  };
  const step steps[] = {
      {http::verb::get, "/stats", "", http::status::ok},
      {http::verb::get, "/response/ka-nobody?text=x", "", http::status::not_found},
      {http::verb::get, "/request/bad*id", "", http::status::bad_request},
      {http::verb::get, "/response/ka-x", "", http::status::bad_request},
      {http::verb::post, "/response/ka-nobody", "text=posted", http::status::not_found},
      {http::verb::delete_, "/request/ka-x", "", http::status::method_not_allowed},
      {http::verb::get, "/nowhere", "", http::status::not_found},
  };
  for (const step& st : steps) {
    const response r = co_await exchange(s, buffer, st.verb, st.target, st.body);
    expect_status(r, st.want, st.target);
    check(r.keep_alive(), std::string(st.target) + ": the server closed a keep-alive connection");
  }

  // A request pipelined behind a waiting one: the hang-up watcher reads it while the first
  // waits, and it must be answered after the first, not mistaken for a hang-up.
  const stats before = co_await get_stats(port);
  co_await send(s, http::verb::get, "/request/ka-pipe");
  co_await send(s, http::verb::get, "/stats");
  co_await poll_stats(port, [&](const stats& x) { return x.waiting == before.waiting + 1; });
  expect_status(co_await fetch(port, "/response/ka-pipe?text=piped%20answer"), http::status::ok,
                "/response/ka-pipe");
  const response first = co_await receive(s, buffer);
  expect_status(first, http::status::ok, "the waiting request");
  check(first.body() == "piped answer", "the waiting request got '" + first.body() + "'");
  const response second = co_await receive(s, buffer);
  expect_status(second, http::status::ok, "the pipelined /stats");
  check(second.body().find("\"waiting\"") != std::string::npos, "the pipelined /stats body");
  check(second.keep_alive(), "the connection closed after the pipelined request");
  std::printf("keepalive: %zu requests and a pipelined pair on one connection\n",
              std::size(steps) + 2);
}

// --- load ----------------------------------------------------------------------------------

asio::awaitable<std::string> requester(unsigned short port, std::string id) {
  const response r = co_await fetch(port, "/request/" + id);
  expect_status(r, http::status::ok, "/request/" + id);
  co_return r.body();
}

asio::awaitable<int> responder(unsigned short port, std::string id, std::string text) {
  const response r = co_await fetch(port, "/response/" + id + "?text=" + text);
  expect_status(r, http::status::ok, "/response/" + id);
  co_return r.result_int();
}

asio::awaitable<void> load(unsigned short port, int n) {
  const auto ex = co_await asio::this_coro::executor;
  // Unique texts per run and per pair: a requester that got another's text is caught.
  const std::string run = std::to_string(std::random_device{}());
  auto text_of = [&](int i) { return "answer-" + std::to_string(i) + "-" + run; };

  const stats before = co_await get_stats(port);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<af::future<std::string>> requesters;
  for (int i = 0; i < n; ++i)
    requesters.push_back(af::create_task(ex, requester(port, "load-" + std::to_string(i))));
  // All registered, or one requester already finished (failed: nobody has answered yet).
  auto finished = [&] {
    return std::any_of(requesters.begin(), requesters.end(), [](auto& f) { return f.done(); });
  };
  co_await poll_stats(
      port, [&](const stats& s) { return s.waiting == before.waiting + n || finished(); });
  if (finished()) // fail with the first requester's exception
    (void)co_await af::first_completed(requesters).async_wait();
  const auto t1 = std::chrono::steady_clock::now();

  std::vector<af::future<int>> responders;
  for (int i = 0; i < n; ++i)
    responders.push_back(
        af::create_task(ex, responder(port, "load-" + std::to_string(i), text_of(i))));
  const std::vector<int> statuses = co_await af::gather(std::move(responders)).async_wait();
  const std::vector<std::string> texts = co_await af::gather(std::move(requesters)).async_wait();
  const auto t2 = std::chrono::steady_clock::now();

  for (int i = 0; i < n; ++i) {
    check(statuses[i] == 200, "responder " + std::to_string(i) + " failed");
    check(texts[i] == text_of(i), "requester " + std::to_string(i) + " got '" + texts[i] + "'");
  }
  // The server counts a pair once the answer's write has completed, which may be a moment
  // after the requester read it: poll (bounded by the caller's timeout).
  const stats after = co_await poll_stats(port, [&](const stats& s) {
    return s.matched - before.matched >= n && s.waiting == before.waiting;
  });
  check(after.matched - before.matched == n,
        "the server counted " + std::to_string(after.matched - before.matched) + " matched pairs");

  const double total = std::chrono::duration<double>(t2 - t0).count();
  const double resolve = std::chrono::duration<double>(t2 - t1).count();
  std::printf("load: %d pairs matched exactly once; %d requests in %.3f s = %.0f requests/s "
              "(registering %d waiters %.3f s, resolving them %.3f s = %.0f pairs/s)\n",
              n, 2 * n, total, 2 * n / total, n, total - resolve, resolve, n / resolve);
}

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: example_http_client PORT disconnect ID | keepalive | load N\n");
  std::exit(2);
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 3)
    usage();
  const unsigned short port = static_cast<unsigned short>(std::strtoul(argv[1], nullptr, 10));
  const std::string_view command = argv[2];
  asio::io_context ioc;
  af::task<void> run;
  auto bounded = [&](asio::awaitable<void> body) {
    return af::create_task(ioc, af::timeout(60s, std::move(body)));
  };
  if (command == "disconnect" && argc == 4)
    run = bounded(disconnect(port, argv[3]));
  else if (command == "keepalive" && argc == 3)
    run = bounded(keepalive(port));
  else if (command == "load" && argc == 4)
    run = bounded(load(port, std::atoi(argv[3])));
  else
    usage();
  // Once the run is over, stop: tasks it left behind (requesters of a failed load still
  // waiting for answers) die with the io_context instead of keeping it running.
  run.add_done_callback([&](const af::future<void>&) { ioc.stop(); });
  ioc.run();
  try {
    run.get();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "example_http_client %s: FAILED: %s\n", argv[2], e.what());
    return 1;
  }
  return 0;
}
