//
// examples/http_server/server.cpp
//
// The seed's "Example 1: HTTP Server with Future-Based Request Handling", done as a real
// HTTP/1.1 server on Boost.Beast: a rendezvous service.
//
//   GET /request/{id}                  registers a future for `id` and long-polls it: answers
//                                      200 with the text once someone resolves it, 504 after
//                                      --timeout (default 30 s)
//   GET|POST /response/{id}?text=...   resolves the future of a waiting /request/{id} (200);
//                                      POST may carry `text=...` form-encoded in the body
//   GET /stats                         counters as JSON (what the tests poll)
//   HEAD                               wherever GET is: the same processing and header
//                                      fields, no body (RFC 9110 9.3.2)
//   other methods                      501 (405 with Allow for GET/HEAD/POST where the path
//                                      does not take it)
//
//   example_http_server [--address A] [--port P] [--threads N] [--timeout SECONDS]
//                       [--max-waiting M]
//
// The first stdout line is "listening on ADDRESS:PORT" (flushed, once the signal handler is
// installed), so a test starting the server with --port 0 finds the ephemeral port and may
// signal it at once. On SIGINT/SIGTERM the server stops
// accepting, answers every waiting request 503, closes every connection, prints
//   summary: N requests served, M pairs matched, T timed out, H hung up, R requests/s
// and exits 0 (R counts from the first request read to the last response written).
//
// How asio_futures does the work (the Python original's ideas, kept):
// - One `af::future<std::string>` per waiting id, in a map under a mutex (`rendezvous`).
//   With --threads N there are N io_contexts, one per thread, and the accept loop hands
//   the connections out in turn: a connection lives on one thread from accept to close, so
//   its socket, timers and watcher need no strand and no request hops between threads. A
//   responder resolves the future from whatever thread serves it (`try_set_result`: the
//   future is safe to touch from any thread) and the requester's coroutine resumes on its
//   own thread.
// - The long-poll is `co_await af::wait_for(waiting, timeout).async_wait()`: on expiry the
//   future is cancelled (so a late responder finds it gone and gets 404) and the requester
//   answers 504. `try_set_result` and the expiry's cancel are atomic with respect to each
//   other, so a responder racing the deadline either gets 200 and its text is delivered,
//   or gets 404 and the requester gets 504: never both, never neither.
// - Every connection is a task (`af::create_task` on its io_context) owned by one
//   `af::task_group`, together with the accept loop. The server's main coroutine is itself a
//   task that only joins the group; SIGINT/SIGTERM cancels that task, which is asyncio.run's
//   way (it cancels the main task on KeyboardInterrupt): cancelling the joiner cancels every
//   child, and the join still waits for all of them. So shutdown is: the accept is aborted,
//   idle keep-alive reads are aborted, and every long-poll sees the cancellation of its
//   future and answers 503. When the join returns, nothing of the server is running.
// - A client that hangs up while its request waits is noticed by a second task per waiting
//   request (`watch_hangup`) that waits for the socket to become readable meanwhile: EOF or
//   an error cancels the waiting future, which wakes the long-poll at once, and the entry is
//   freed (a later /response for that id gets 404). Bytes the client sends meanwhile (a
//   pipelined request) are kept in the connection's buffer for the next request. The
//   watcher reads only what has arrived, so an idle waiting request holds no read buffer.
//
// Where C++ differs from asyncio, and why:
// - Catching a cancellation and then awaiting again (the 503 written after a shutdown
//   cancel) needs `co_await asio::this_coro::reset_cancellation_state()`: Asio's
//   cancellation is sticky and would abort the write at once. In asyncio the handler would
//   just `await writer.drain()` in its `except CancelledError:` block.
// - A task_group cancels every child when one fails: a connection must never let an
//   exception escape (one bad client would close every connection), so serve_connection
//   catches everything. asyncio's TaskGroup has the same rule.
// - Each socket operation runs on the connection's io_context, which one thread runs. The
//   hang-up watcher is a separate task there and shares the socket with its parent, but
//   never at the same time: the parent touches the socket again only after the watcher has
//   finished (awaited), and both hold the connection by shared_ptr.
//
// Decisions (see also docs/http-server.md):
// - ids: 1 to 64 characters of [A-Za-z0-9._~-] (URL-unreserved, so never percent-encoded);
//   anything else, or a missing `text` parameter, is 400. `text` is percent-decoded ('+'
//   is a space); an empty `text=` is a valid, empty answer.
// - 409 Conflict: (a) /request/{id} while a request for that id is already waiting;
//   (b) /response/{id} for an id that an earlier /response already resolved and for which
//   no new request waits. The server remembers the last --max-waiting resolved ids for (b);
//   older ones, and ids that timed out or hung up, get 404.
// - 503: --max-waiting requests (default 10000) are waiting already; or the server is
//   shutting down (also the answer every waiting request gets then).
// - Keep-alive: HTTP/1.1 connections stay open between requests (answers to waiting
//   requests included) unless the client asks to close; a connection idle for 60 s is closed.
//   Parse errors get 400 (413 for a body over 64 KiB) and close the connection.
// - Methods (RFC 9110): the server implements GET, HEAD and POST. HEAD is processed exactly
//   as GET (a HEAD /request waits too, a HEAD /response resolves) and answered with the
//   same header fields, Content-Length included, without the body. Any other method is 501
//   Not Implemented; GET, HEAD or POST on a path that does not take it is 405 with an Allow
//   header listing what the path takes.
//
#include <asio_futures/asio_futures.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace af = asio_futures;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t max_id_length = 64;
constexpr std::size_t max_body_bytes = 64 * 1024;
/// A connection that sends nothing for this long (between requests) is closed.
constexpr auto idle_timeout = 60s;
/// While a request waits, the hang-up watcher buffers at most this much pipelined data;
/// beyond it, it stops reading (and so stops noticing a hang-up) until the answer is sent.
constexpr std::size_t max_pipelined_bytes = 64 * 1024;
/// The message the hang-up watcher cancels a waiting future with.
constexpr const char* hung_up_message = "client hung up";

struct options {
  std::string address = "127.0.0.1";
  unsigned short port = 8080;
  int threads = 1;
  std::chrono::steady_clock::duration timeout = 30s;
  std::size_t max_waiting = 10000;
};

// --- the rendezvous: waiting requests by id ------------------------------------------------

/// The futures of the waiting requests, by id, and the ids resolved recently (for 409).
/// Every member may be called from any thread.
class rendezvous {
public:
  explicit rendezvous(std::size_t max_waiting) : max_waiting_(max_waiting) {}

  enum class enter_result { waiting, duplicate, full, closed };

  /// A /request/{id}: a pending future for `id` whose waiters run on `ex` (the requester's
  /// io_context). The future is valid only with `enter_result::waiting`.
  std::pair<enter_result, af::future<std::string>> enter(const std::string& id,
                                                         const asio::any_io_executor& ex) {
    std::lock_guard guard(mutex_);
    if (closed_)
      return {enter_result::closed, {}};
    auto it = waiting_.find(id);
    // An entry whose future is done was cancelled (timed out, hung up) and its requester
    // has not left yet: the id is free again.
    if (it != waiting_.end() && !it->second.done())
      return {enter_result::duplicate, {}};
    if (it == waiting_.end() && waiting_.size() >= max_waiting_)
      return {enter_result::full, {}};
    af::future<std::string> fut(ex);
    waiting_.insert_or_assign(id, fut);
    resolved_.erase(id); // a new request: a /response now resolves it, no 409
    return {enter_result::waiting, fut};
  }

  enum class resolve_result { resolved, not_waiting, already_resolved, closed };

  /// A /response/{id}: resolves the waiting future of `id` with `text`.
  resolve_result resolve(const std::string& id, std::string text) {
    std::lock_guard guard(mutex_);
    auto it = waiting_.find(id);
    if (it == waiting_.end())
      return resolved_.contains(id) ? resolve_result::already_resolved
             : closed_              ? resolve_result::closed
                                    : resolve_result::not_waiting;
    // try_set_result, not set_result: the deadline, a hang-up or the shutdown may have
    // cancelled the future on another thread a moment ago; it is then no longer waiting.
    // The waiter is posted to the requester's io_context, never run here under our lock.
    if (!it->second.try_set_result(std::move(text)))
      return closed_ ? resolve_result::closed : resolve_result::not_waiting;
    waiting_.erase(it);
    remember_resolved(id);
    return resolve_result::resolved;
  }

  /// The requester is done with `fut` (answered, timed out, hung up, shut down): frees its
  /// entry unless a resolve (or a newer request for the same id) replaced it already.
  void leave(const std::string& id, const af::future<std::string>& fut) {
    std::lock_guard guard(mutex_);
    auto it = waiting_.find(id);
    if (it != waiting_.end() && it->second == fut)
      waiting_.erase(it);
  }

  /// Shutdown: no new requests. (The waiting ones are cancelled with their connections.)
  void close() {
    std::lock_guard guard(mutex_);
    closed_ = true;
  }

  std::size_t waiting() const {
    std::lock_guard guard(mutex_);
    return waiting_.size();
  }

private:
  /// Remembers `id` as resolved; forgets the oldest beyond max_waiting_ ids.
  void remember_resolved(const std::string& id) {
    const std::uint64_t seq = ++resolved_seq_;
    resolved_.insert_or_assign(id, seq);
    resolved_order_.emplace_back(id, seq);
    while (resolved_order_.size() > max_waiting_) {
      auto& [old_id, old_seq] = resolved_order_.front();
      auto it = resolved_.find(old_id);
      if (it != resolved_.end() && it->second == old_seq) // not re-resolved since
        resolved_.erase(it);
      resolved_order_.pop_front();
    }
  }

  mutable std::mutex mutex_;
  std::unordered_map<std::string, af::future<std::string>> waiting_;
  std::unordered_map<std::string, std::uint64_t> resolved_;          // id -> sequence number
  std::deque<std::pair<std::string, std::uint64_t>> resolved_order_; // oldest first
  std::uint64_t resolved_seq_ = 0;
  std::size_t max_waiting_;
  bool closed_ = false;
};

// --- request parsing helpers ---------------------------------------------------------------

bool valid_id(std::string_view id) {
  if (id.empty() || id.size() > max_id_length)
    return false;
  for (const char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~';
    if (!ok)
      return false;
  }
  return true;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/// application/x-www-form-urlencoded decoding ('+' is a space); nullopt on a bad escape.
std::optional<std::string> form_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%') {
      const int hi = i + 2 < s.size() ? hex_digit(s[i + 1]) : -1;
      const int lo = i + 2 < s.size() ? hex_digit(s[i + 2]) : -1;
      if (hi < 0 || lo < 0)
        return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

/// The decoded value of `name` in form-encoded `query` ("a=1&text=hi"); nullopt if absent,
/// and also (with `bad` set) if its percent-encoding is broken.
std::optional<std::string> form_field(std::string_view query, std::string_view name, bool& bad) {
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const std::size_t eq = pair.find('=');
    if (pair.substr(0, eq) != name)
      continue;
    auto value =
        form_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (!value)
      bad = true;
    return value;
  }
  return std::nullopt;
}

// --- the server ----------------------------------------------------------------------------

/// What a handler answers. `hung_up`: the client is gone, write nothing, close. `answer`:
/// this is a waiting request's text (a pair is matched once it is written). `allow`: the
/// Allow header of a 405.
struct reply {
  http::status status = http::status::ok;
  std::string body;
  bool close = false;
  bool hung_up = false;
  bool answer = false;
  std::string_view allow;
};

reply text_reply(http::status status, std::string body, bool close = false) {
  return reply{status, std::move(body), close, false, false, {}};
}

/// How a request is answered: `answer` now, or, with `long_poll_id`, once that id is resolved.
struct route {
  route(reply r) : answer(std::move(r)) {} // NOLINT: implicit, so handlers return a reply
  explicit route(std::string id) : long_poll_id(std::move(id)) {}
  reply answer;
  std::optional<std::string> long_poll_id;
};

/// 405 for a method the server implements (GET, HEAD, POST) on a path that does not take it.
reply method_not_allowed(std::string_view allow) {
  reply r = text_reply(http::status::method_not_allowed, "use " + std::string(allow) + "\n");
  r.allow = allow;
  return r;
}

/// Cancels a task when the scope ends (by return or by exception).
struct stop_on_exit {
  explicit stop_on_exit(af::task<bool> t) : task(std::move(t)) {}
  af::task<bool> task;
  stop_on_exit(const stop_on_exit&) = delete;
  stop_on_exit& operator=(const stop_on_exit&) = delete;
  ~stop_on_exit() {
    try {
      task.cancel();
    } catch (...) { // bad_alloc: the task then ends when its connection does
    }
  }
};

/// One client connection. Held by shared_ptr by the connection's task and by its hang-up
/// watcher, so neither can outlive the socket and buffer the other's operation uses.
struct connection {
  explicit connection(tcp::socket s) : socket(std::move(s)) {}
  tcp::socket socket;
  beast::flat_buffer buffer;
};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class server {
public:
  /// `contexts`: one io_context per thread (at least one). The acceptor, the signal set and
  /// the main task live on the first; connections are spread over all of them in turn.
  server(const std::vector<std::unique_ptr<asio::io_context>>& contexts, const options& opt)
      : contexts_(contexts), opt_(opt), main_ex_(contexts.front()->get_executor()),
        acceptor_(main_ex_), rendezvous_(opt.max_waiting) {
    const tcp::endpoint ep(asio::ip::make_address(opt.address), opt.port);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(asio::socket_base::max_listen_connections);
  }

  /// The executor of the acceptor, the signal set and the main task (the first io_context,
  /// run by one thread: they need no strand).
  asio::any_io_executor executor() const { return main_ex_; }
  tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

  /// The main coroutine: a group owns the accept loop and every connection; the join ends
  /// only when all of them have. Cancelling it (SIGINT/SIGTERM) cancels them all.
  asio::awaitable<void> run() {
    af::task_group group(main_ex_);
    group.create_task(main_ex_, accept_loop(group), "accept");
    try {
      co_await group.async_join();
    } catch (const af::cancelled_error&) {
      // Shutdown: every child was cancelled, and the join waited for all of them.
    }
  }

  /// Shutdown begins: no new waiting requests, every answer closes its connection.
  void begin_shutdown() {
    stopping_.store(true, std::memory_order_relaxed);
    rendezvous_.close();
  }

  void print_summary() const {
    const std::uint64_t served = served_.load();
    const double span_s =
        static_cast<double>(last_response_ns_.load() - first_request_ns_.load()) / 1e9;
    const double rate = served > 0 && span_s > 0 ? static_cast<double>(served) / span_s : 0.0;
    std::printf("summary: %llu requests served, %llu pairs matched, %llu timed out, %llu hung up, "
                "%.0f requests/s\n",
                static_cast<unsigned long long>(served),
                static_cast<unsigned long long>(matched_.load()),
                static_cast<unsigned long long>(timed_out_.load()),
                static_cast<unsigned long long>(hung_up_.load()), rate);
    std::fflush(stdout);
  }

private:
  asio::awaitable<void> accept_loop(af::task_group& group) {
    for (;;) {
      // Each connection goes to the next io_context in turn and stays there: its task,
      // socket and timers run on that context's one thread (serialised without a strand,
      // and without hopping between threads), and connections run in parallel with
      // --threads N.
      asio::io_context& home = *contexts_[next_context_];
      next_context_ = (next_context_ + 1) % contexts_.size();
      auto [ec, socket] =
          co_await acceptor_.async_accept(home.get_executor(), asio::as_tuple(asio::use_awaitable));
      if (ec == asio::error::operation_aborted)
        throw boost::system::system_error(ec); // cancelled: the task ends cancelled
      if (ec) {
        // EMFILE and friends are transient: report, back off, go on.
        std::fprintf(stderr, "accept: %s\n", ec.message().c_str());
        co_await af::sleep(main_ex_, 50ms).async_wait();
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      const asio::any_io_executor ex = socket.get_executor();
      try {
        group.create_task(ex, serve_connection(std::move(socket)));
      } catch (const af::invalid_state_error&) {
        co_return; // the group is shutting down; the socket closes with the coroutine frame
      }
    }
  }

  asio::awaitable<void> serve_connection(tcp::socket socket) {
    auto conn = std::make_shared<connection>(std::move(socket));
    try {
      for (;;) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(max_body_bytes);
        bool got = false;
        std::optional<http::status> malformed;
        try {
          got = co_await af::timeout(idle_timeout, read_request(conn, parser));
        } catch (const af::timeout_error&) {
          break; // idle (or a slow client): close
        } catch (const af::cancelled_error&) {
          throw;
        } catch (const boost::system::system_error& e) {
          if (e.code().category() != http::make_error_code(http::error::bad_target).category())
            throw; // an I/O error: the connection is gone
          malformed = e.code() == http::error::body_limit ? http::status::payload_too_large
                                                          : http::status::bad_request;
        }
        if (malformed) {
          // Say so and close: the stream cannot be resynchronised.
          note_request();
          co_await write(*conn, 11, text_reply(*malformed, "malformed request\n", true), false);
          break;
        }
        if (!got)
          break; // the client closed between requests
        note_request();
        http::request<http::string_body> req = parser.release();
        route routed = handle(req);
        reply r;
        if (routed.long_poll_id)
          r = co_await long_poll(conn, std::move(*routed.long_poll_id));
        else
          r = std::move(routed.answer);
        if (r.hung_up)
          break;
        if (!co_await write(*conn, req.version(), std::move(r), req.keep_alive(),
                            req.method() == http::verb::head))
          break;
      }
      boost::system::error_code ignored;
      conn->socket.shutdown(tcp::socket::shutdown_send, ignored);
    } catch (const boost::system::system_error&) {
      // Cancelled (shutdown) or an I/O error (reset by peer, ...): the connection just ends.
    } catch (const std::exception& e) {
      // Never let an exception escape: the group would cancel every other connection.
      std::fprintf(stderr, "connection: %s\n", e.what());
    }
  }

  /// Reads one request into `parser`; false if the client closed cleanly between requests.
  static asio::awaitable<bool> read_request(std::shared_ptr<connection> conn,
                                            http::request_parser<http::string_body>& parser) {
    auto [ec, n] = co_await http::async_read(conn->socket, conn->buffer, parser,
                                             asio::as_tuple(asio::use_awaitable));
    if (ec == http::error::end_of_stream)
      co_return false;
    if (ec)
      throw boost::system::system_error(ec);
    co_return true;
  }

  /// Writes `r` (for a HEAD request, `head`: its header fields only); returns whether the
  /// connection stays open.
  asio::awaitable<bool> write(connection& conn, unsigned version, reply r, bool keep_alive,
                              bool head = false) {
    http::response<http::string_body> res{r.status, version};
    res.set(http::field::server, "asio_futures-example");
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    if (!r.allow.empty())
      res.set(http::field::allow, r.allow);
    res.keep_alive(keep_alive && !r.close && !stopping_.load(std::memory_order_relaxed));
    res.body() = std::move(r.body);
    res.prepare_payload();
    if (head)
      res.body().clear(); // Content-Length stays the GET answer's: RFC 9110 9.3.2
    co_await http::async_write(conn.socket, res, asio::use_awaitable);
    note_response();
    if (r.answer)
      matched_.fetch_add(1, std::memory_order_relaxed);
    co_return res.keep_alive();
  }

  /// Routes a request: its reply, or (a valid GET or HEAD /request/{id}) the id to long-poll.
  /// Not a coroutine: while a request waits, only long_poll's frame sits between the
  /// connection's and the wait (a frame per waiting request costs memory).
  route handle(const http::request<http::string_body>& req) {
    const std::string_view target = req.target();
    const std::size_t q = target.find('?');
    const std::string_view path = target.substr(0, q);
    const std::string_view query = q == std::string_view::npos ? "" : target.substr(q + 1);
    // HEAD is GET without the body (write() drops it): the same processing, the same fields.
    const bool get = req.method() == http::verb::get || req.method() == http::verb::head;
    const bool post = req.method() == http::verb::post;
    if (!get && !post) // not a method this server implements for any path (RFC 9110 15.6.2)
      return text_reply(http::status::not_implemented, "method not implemented\n");

    constexpr std::string_view request_prefix = "/request/";
    constexpr std::string_view response_prefix = "/response/";
    if (path.starts_with(request_prefix)) {
      if (!get)
        return method_not_allowed("GET, HEAD");
      const std::string_view id = path.substr(request_prefix.size());
      if (!valid_id(id))
        return text_reply(http::status::bad_request, "bad id\n");
      return route(std::string(id));
    }
    if (path.starts_with(response_prefix)) {
      const std::string_view id = path.substr(response_prefix.size());
      if (!valid_id(id))
        return text_reply(http::status::bad_request, "bad id\n");
      bool bad = false;
      std::optional<std::string> text = form_field(query, "text", bad);
      if (!text && !bad && post)
        text = form_field(req.body(), "text", bad);
      if (bad)
        return text_reply(http::status::bad_request, "bad percent-encoding in text\n");
      if (!text)
        return text_reply(http::status::bad_request, "missing text\n");
      return respond(std::string(id), std::move(*text));
    }
    if (path == "/stats") {
      if (!get)
        return method_not_allowed("GET, HEAD");
      return text_reply(http::status::ok, stats_json());
    }
    return text_reply(http::status::not_found, "no such endpoint\n");
  }

  /// GET /request/{id}: registers a future and waits for it, the deadline, a hang-up or the
  /// shutdown, whichever comes first.
  asio::awaitable<reply> long_poll(std::shared_ptr<connection> conn, std::string id) {
    const asio::any_io_executor ex = conn->socket.get_executor(); // the connection's io_context
    auto [entered, waiting] = rendezvous_.enter(id, ex);
    switch (entered) {
    case rendezvous::enter_result::waiting:
      break;
    case rendezvous::enter_result::duplicate:
      co_return text_reply(http::status::conflict, "a request for this id is already waiting\n");
    case rendezvous::enter_result::full:
      co_return text_reply(http::status::service_unavailable, "too many waiting requests\n");
    case rendezvous::enter_result::closed:
      co_return text_reply(http::status::service_unavailable, "shutting down\n", true);
    }

    // Nothing pipelined yet (the usual case): give the read buffer back for the wait, which
    // may be long; the watcher allocates only if bytes arrive meanwhile.
    if (conn->buffer.size() == 0)
      conn->buffer.shrink_to_fit();
    // The watcher watches the socket while we wait: a hang-up cancels `waiting` at once.
    const af::task<bool> watcher = af::create_task(ex, watch_hangup(conn, waiting), "watch " + id);
    // However this coroutine ends, the watcher must not read on forever.
    const stop_on_exit stop_watcher{watcher};
    constexpr auto none = asio::cancellation_type::none;
    std::optional<std::string> text;
    bool timed_out = false;
    try {
      text = co_await af::wait_for(waiting, opt_.timeout).async_wait();
    } catch (const af::timeout_error&) {
      timed_out = true;
    } catch (const af::cancelled_error&) {
      // By the watcher (hang-up) or by the shutdown (our task was cancelled): see below.
    }
    // Asio's cancellation is sticky: if our task was cancelled (shutdown), every further
    // co_await would throw at once. Note it, then reset it to stop the watcher and answer.
    // (Inline: co_await of a nested awaitable would itself throw while cancelled.)
    bool shutdown = (co_await asio::this_coro::cancellation_state).cancelled() != none;
    if (shutdown)
      co_await asio::this_coro::reset_cancellation_state();

    // Stop watching, and wait until the watcher is done with the socket and the buffer.
    // (A shutdown arriving meanwhile cancels the watcher too; it is noted again after.)
    watcher.cancel();
    auto [watch_error, hung_up] = co_await watcher.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)watch_error; // cancelled before its first step: it never read anything
    if ((co_await asio::this_coro::cancellation_state).cancelled() != none) {
      shutdown = true;
      co_await asio::this_coro::reset_cancellation_state();
    }
    rendezvous_.leave(id, waiting);

    if (text) {
      reply r = text_reply(http::status::ok, std::move(*text));
      r.answer = true;
      co_return r;
    }
    if (timed_out) {
      timed_out_.fetch_add(1, std::memory_order_relaxed);
      co_return text_reply(http::status::gateway_timeout, "nobody answered in time\n");
    }
    if (hung_up && !shutdown) {
      hung_up_.fetch_add(1, std::memory_order_relaxed);
      reply r;
      r.hung_up = true;
      co_return r;
    }
    co_return text_reply(http::status::service_unavailable, "shutting down\n", true);
  }

  /// While a request waits: watches the socket. EOF or an error means the client hung up:
  /// cancels `waiting` and returns true. Data is a pipelined next request: kept in the
  /// buffer. Returns false when cancelled (the wait ended) or when too much data piled up.
  ///
  /// It waits for readability and then reads only the bytes that have arrived (at least one,
  /// to see EOF or an error): an idle waiting request holds no read buffer, where a read of
  /// a fixed 4 KiB would have grown the connection's buffer by that much for every waiting
  /// request.
  static asio::awaitable<bool> watch_hangup(std::shared_ptr<connection> conn,
                                            af::future<std::string> waiting) {
    while (conn->buffer.size() < max_pipelined_bytes) {
      auto [wait_ec] = co_await conn->socket.async_wait(tcp::socket::wait_read,
                                                        asio::as_tuple(asio::use_awaitable));
      if (wait_ec == asio::error::operation_aborted)
        co_return false;
      boost::system::error_code ec = wait_ec;
      if (!ec) {
        const std::size_t ready = conn->socket.available(ec);
        const std::size_t want = std::clamp<std::size_t>(
            ready, 1, max_pipelined_bytes - std::min(conn->buffer.size(), max_pipelined_bytes));
        if (!ec) {
          std::size_t n = 0;
          std::tie(ec, n) = co_await conn->socket.async_read_some(
              conn->buffer.prepare(want), asio::as_tuple(asio::use_awaitable));
          if (ec == asio::error::operation_aborted)
            co_return false;
          conn->buffer.commit(n);
        }
      }
      if (ec) {
        waiting.cancel(hung_up_message);
        co_return true;
      }
    }
    co_return false;
  }

  /// GET|POST /response/{id}.
  reply respond(std::string id, std::string text) {
    switch (rendezvous_.resolve(id, std::move(text))) {
    case rendezvous::resolve_result::resolved:
      return text_reply(http::status::ok, "delivered\n");
    case rendezvous::resolve_result::not_waiting:
      return text_reply(http::status::not_found, "no request is waiting for this id\n");
    case rendezvous::resolve_result::already_resolved:
      return text_reply(http::status::conflict, "this id was already resolved\n");
    case rendezvous::resolve_result::closed:
      break;
    }
    return text_reply(http::status::service_unavailable, "shutting down\n", true);
  }

  std::string stats_json() const {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "{\"waiting\":%zu,\"requests\":%llu,\"served\":%llu,\"matched\":%llu,"
                  "\"timed_out\":%llu,\"hung_up\":%llu}\n",
                  rendezvous_.waiting(), static_cast<unsigned long long>(requests_.load()),
                  static_cast<unsigned long long>(served_.load()),
                  static_cast<unsigned long long>(matched_.load()),
                  static_cast<unsigned long long>(timed_out_.load()),
                  static_cast<unsigned long long>(hung_up_.load()));
    return buf;
  }

  void note_request() {
    requests_.fetch_add(1, std::memory_order_relaxed);
    std::int64_t expected = 0;
    first_request_ns_.compare_exchange_strong(expected, now_ns(), std::memory_order_relaxed);
  }

  void note_response() {
    served_.fetch_add(1, std::memory_order_relaxed);
    const std::int64_t t = now_ns();
    std::int64_t last = last_response_ns_.load(std::memory_order_relaxed);
    while (last < t && !last_response_ns_.compare_exchange_weak(last, t, std::memory_order_relaxed))
      ;
  }

  const std::vector<std::unique_ptr<asio::io_context>>& contexts_;
  std::size_t next_context_ = 0; // the accept loop's only: no lock
  options opt_;
  asio::any_io_executor main_ex_;
  tcp::acceptor acceptor_;
  rendezvous rendezvous_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> requests_{0}, served_{0}, matched_{0}, timed_out_{0}, hung_up_{0};
  std::atomic<std::int64_t> first_request_ns_{0}, last_response_ns_{0};
};

// --- command line --------------------------------------------------------------------------

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "example_http_server: %s\n"
               "usage: example_http_server [--address A] [--port P (0 = ephemeral)] "
               "[--threads N] [--timeout SECONDS] [--max-waiting M]\n",
               why);
  std::exit(2);
}

options parse_options(int argc, char** argv) {
  options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (i + 1 >= argc)
      usage("missing value");
    const char* value = argv[++i];
    char* end = nullptr;
    if (arg == "--address") {
      opt.address = value;
    } else if (arg == "--port") {
      const long p = std::strtol(value, &end, 10);
      if (*end != '\0' || p < 0 || p > 65535)
        usage("bad --port");
      opt.port = static_cast<unsigned short>(p);
    } else if (arg == "--threads") {
      const long n = std::strtol(value, &end, 10);
      if (*end != '\0' || n < 1 || n > 256)
        usage("bad --threads");
      opt.threads = static_cast<int>(n);
    } else if (arg == "--timeout") {
      const double s = std::strtod(value, &end);
      if (*end != '\0' || !std::isfinite(s) || s <= 0 || s > 86400)
        usage("bad --timeout");
      opt.timeout = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::duration<double>(s));
    } else if (arg == "--max-waiting") {
      const long long m = std::strtoll(value, &end, 10);
      if (*end != '\0' || m < 1)
        usage("bad --max-waiting");
      opt.max_waiting = static_cast<std::size_t>(m);
    } else {
      usage("unknown option");
    }
  }
  return opt;
}

} // namespace

int main(int argc, char** argv) {
  const options opt = parse_options(argc, argv);
  // One io_context per thread (concurrency hint 1: one thread runs it; other threads still
  // post to it, as a responder completing a waiter on another context does).
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  for (int i = 0; i < opt.threads; ++i)
    contexts.push_back(std::make_unique<asio::io_context>(1));
  std::optional<server> srv;
  try {
    srv.emplace(contexts, opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "example_http_server: cannot listen on %s:%u: %s\n", opt.address.c_str(),
                 static_cast<unsigned>(opt.port), e.what());
    return 1;
  }
  // asyncio.run's shape: a main task; a signal cancels it, and its cancellation flows down
  // to every connection through the task group it joins.
  const af::task<void> main_task = af::create_task(srv->executor(), srv->run(), "server");
  asio::signal_set signals(srv->executor(), SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec)
      return;
    srv->begin_shutdown();
    main_task.cancel("shutting down");
  });
  // The other io_contexts may have no connection at times: keep them running until the
  // server is done.
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep_running;
  for (std::size_t i = 1; i < contexts.size(); ++i)
    keep_running.push_back(asio::make_work_guard(*contexts[i]));
  // Once the server is done, the signal wait and those guards are the last work left: end
  // them, and each io_context's run() returns when its last handler has run. (The callback
  // runs on the main task's executor, the thread that owns the signal set.)
  main_task.add_done_callback([&](const af::future<void>&) {
    signals.cancel();
    for (auto& guard : keep_running)
      guard.reset();
  });

  // Announced only now: the signal set is installed, so a SIGTERM sent as soon as this line
  // is read is a graceful shutdown, not the default action (which kills the process).
  const tcp::endpoint ep = srv->local_endpoint();
  std::printf("listening on %s:%u\n", ep.address().to_string().c_str(),
              static_cast<unsigned>(ep.port()));
  std::fflush(stdout);

  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < contexts.size(); ++i)
    threads.emplace_back([&ctx = *contexts[i]] { ctx.run(); });
  contexts.front()->run();
  for (auto& t : threads)
    t.join();

  if (!main_task.done()) {
    std::fprintf(stderr, "example_http_server: the io_context stopped early\n");
    return 1;
  }
  if (!main_task.cancelled()) {
    if (auto e = main_task.exception()) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        std::fprintf(stderr, "example_http_server: %s\n", x.what());
      }
      return 1;
    }
  }
  srv->print_summary();
  return 0;
}
