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
//   example_http_client PORT idle N PID      N idle long-polls held open at once: prints the
//                                            growth of the server's (PID) VmRSS per waiting
//                                            request, then hangs all N up and checks the
//                                            server freed every entry
//   example_http_client PORT bench C SECONDS C keep-alive connections, each sending
//                                            GET /stats back to back for SECONDS; prints
//                                            "bench: ... requests/s" (a throughput probe,
//                                            not a test: it checks only that each is 200)
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
#include <fstream>
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

/// One HEAD request on an open connection: the answer has headers only, whatever its
/// Content-Length says (the parser must be told, or it would wait for a body).
asio::awaitable<response> exchange_head(tcp::socket& s, beast::flat_buffer& buffer,
                                        std::string target) {
  co_await send(s, http::verb::head, std::move(target));
  http::response_parser<http::string_body> parser;
  parser.skip(true);
  co_await http::async_read(s, buffer, parser, asio::use_awaitable);
  co_return parser.release();
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
      {http::verb::post, "/request/ka-x", "", http::status::method_not_allowed},
      {http::verb::delete_, "/request/ka-x", "", http::status::not_implemented},
      {http::verb::get, "/nowhere", "", http::status::not_found},
  };
  for (const step& st : steps) {
    const response r = co_await exchange(s, buffer, st.verb, st.target, st.body);
    expect_status(r, st.want, st.target);
    check(r.keep_alive(), std::string(st.target) + ": the server closed a keep-alive connection");
    if (st.want == http::status::method_not_allowed)
      check(r[http::field::allow] == "GET, HEAD",
            std::string(st.target) + ": Allow is '" + std::string(r[http::field::allow]) + "'");
  }

  // HEAD is GET without the body (RFC 9110 9.3.2): the same status and header fields,
  // Content-Length included, and not one byte of content. A byte sent after the headers would
  // be read as the start of the next answer, and the request after the HEAD would fail.
  for (const char* target : {"/nowhere", "/response/ka-nobody?text=x", "/request/bad*id"}) {
    const response get = co_await exchange(s, buffer, http::verb::get, target);
    const response head = co_await exchange_head(s, buffer, target);
    expect_status(head, get.result(), std::string("HEAD ") + target);
    for (const http::field f :
         {http::field::content_length, http::field::content_type, http::field::server})
      check(head[f] == get[f], std::string("HEAD ") + target + ": " +
                                   std::string(http::to_string(f)) + " differs from GET's");
    check(head[http::field::content_length] == std::to_string(get.body().size()),
          std::string("HEAD ") + target + ": Content-Length is not the GET body's length");
    check(head.keep_alive(), std::string("HEAD ") + target + ": the server closed the connection");
  }
  expect_status(co_await exchange(s, buffer, http::verb::get, "/stats"), http::status::ok,
                "/stats after the HEAD requests");

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
  std::printf("keepalive: %zu requests, 3 GET/HEAD pairs and a pipelined pair on one "
              "connection\n",
              std::size(steps) + 1);
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

// --- idle: the memory a waiting request costs the server ----------------------------------

/// VmRSS of process `pid` in KiB, from /proc/PID/status.
long vm_rss_kib(long pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.starts_with("VmRSS:"))
      return std::strtol(line.c_str() + 6, nullptr, 10);
  throw std::runtime_error("no VmRSS in /proc/" + std::to_string(pid) + "/status");
}

/// Opens connections `first`, `first + stride`, ... < n and sends each a GET /request; keeps
/// each socket open in `sockets` (the request stays waiting).
asio::awaitable<void> open_idle(unsigned short port, std::vector<tcp::socket>& sockets,
                                std::string run, int first, int stride, int n) {
  for (int i = first; i < n; i += stride) {
    tcp::socket s = co_await connect(port);
    co_await send(s, http::verb::get, "/request/idle-" + std::to_string(i) + "-" + run);
    sockets[static_cast<std::size_t>(i)] = std::move(s);
  }
}

asio::awaitable<void> idle(unsigned short port, int n, long server_pid) {
  const auto ex = co_await asio::this_coro::executor;
  const std::string run = std::to_string(std::random_device{}());
  const stats before = co_await get_stats(port);
  const long rss_before = vm_rss_kib(server_pid);

  // 64 openers at a time: the listen backlog is not flooded, the waiting set grows to n.
  std::vector<tcp::socket> sockets;
  sockets.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i)
    sockets.emplace_back(ex);
  constexpr int openers = 64;
  std::vector<af::future<void>> opening;
  for (int k = 0; k < openers; ++k)
    opening.push_back(af::create_task(ex, open_idle(port, sockets, run, k, openers, n)));
  co_await af::gather(std::move(opening)).async_wait();
  co_await poll_stats(port, [&](const stats& s) { return s.waiting == before.waiting + n; });
  const long rss_waiting = vm_rss_kib(server_pid);

  for (tcp::socket& s : sockets)
    s.close();
  const stats after = co_await poll_stats(port, [&](const stats& s) {
    return s.waiting == before.waiting && s.hung_up == before.hung_up + n;
  });
  (void)after;
  std::printf("idle: %d waiting requests: server VmRSS %ld KiB -> %ld KiB, %.2f KiB (%.0f bytes) "
              "per waiting request; all %d hung up and freed\n",
              n, rss_before, rss_waiting, static_cast<double>(rss_waiting - rss_before) / n,
              static_cast<double>(rss_waiting - rss_before) * 1024.0 / n, n);
}

// --- bench: keep-alive throughput ------------------------------------------------------------

asio::awaitable<long> bench_connection(unsigned short port,
                                       std::chrono::steady_clock::time_point until) {
  tcp::socket s = co_await connect(port);
  beast::flat_buffer buffer;
  long n = 0;
  while (std::chrono::steady_clock::now() < until) {
    const response r = co_await exchange(s, buffer, http::verb::get, "/stats");
    expect_status(r, http::status::ok, "/stats");
    ++n;
  }
  co_return n;
}

asio::awaitable<void> bench(unsigned short port, int connections, double seconds) {
  const auto ex = co_await asio::this_coro::executor;
  const auto t0 = std::chrono::steady_clock::now();
  const auto until = t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(seconds));
  std::vector<af::future<long>> conns;
  for (int i = 0; i < connections; ++i)
    conns.push_back(af::create_task(ex, bench_connection(port, until)));
  const std::vector<long> counts = co_await af::gather(std::move(conns)).async_wait();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  long total = 0;
  for (const long c : counts)
    total += c;
  std::printf("bench: %d connections, %ld requests in %.3f s = %.0f requests/s\n", connections,
              total, elapsed, static_cast<double>(total) / elapsed);
}

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: example_http_client PORT disconnect ID | keepalive | load N | "
                       "idle N SERVER_PID | bench CONNECTIONS SECONDS\n");
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
  else if (command == "idle" && argc == 5)
    run = bounded(idle(port, std::atoi(argv[3]), std::atol(argv[4])));
  else if (command == "bench" && argc == 5)
    run = bounded(bench(port, std::atoi(argv[3]), std::atof(argv[4])));
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
