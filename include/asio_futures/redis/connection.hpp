//
// asio_futures/redis/connection.hpp
//
// A Redis connection driven by Asio: hiredis's asynchronous context, its socket watched by
// an `asio::posix::stream_descriptor` on the caller's executor. Commands return futures.
//
#ifndef ASIO_FUTURES_REDIS_CONNECTION_HPP
#define ASIO_FUTURES_REDIS_CONNECTION_HPP

#include <asio_futures/future.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace asio_futures::redis {

/// Where a Redis server is and how to log in: `AUTH` (when `password` is set, with
/// `username` if that is set too) and `SELECT db` (when `db != 0`) are sent on every
/// (re)connection before any command.
struct endpoint {
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  std::string username;
  std::string password;
  int db = 0;
};

/// How a connection retries and how it notices a dead peer.
///
/// Retrying: after a failed attempt or a lost connection it waits `initial_backoff`,
/// doubling after each further failure up to `max_backoff`.
///
/// Dead peers: a Redis host that vanishes without closing its connections (power loss, a
/// network partition, a firewall dropping the flow) leaves a half-open TCP connection that
/// would otherwise wait forever — fatal for a subscriber, which only ever receives.
///   - TCP keepalive on every socket: `SO_KEEPALIVE` with `TCP_KEEPIDLE = keepalive_idle`,
///     `TCP_KEEPINTVL = keepalive_interval`, `TCP_KEEPCNT = keepalive_count`, and
///     `TCP_USER_TIMEOUT` = idle + interval × count (so unacknowledged data is bounded the
///     same way). The kernel drops a silent connection after about that long (25 s by
///     default). `keepalive_idle` of zero leaves the socket as the system makes it.
///   - A health check of a subscribed connection (TCP keepalive cannot see a server that is
///     up but stuck): `health_check_interval` after the server last answered a check (or
///     after subscribing) it asks the server to confirm one of its subscriptions again (a
///     `SUBSCRIBE` of an already subscribed channel: no message is lost or duplicated); without an
///     answer within `health_check_timeout` the connection is declared dead, dropped and
///     reconnected (and resubscribed). Zero interval: off.
///   - `connect_timeout` bounds connecting plus the handshake (`AUTH`, `SELECT`,
///     `CLIENT SETNAME`, `PING`) of every connection; on expiry it is retried with backoff.
/// Throws `std::invalid_argument` from the connection's constructor for negative values,
/// a zero `connect_timeout`, a zero `health_check_timeout` with health checks on, a
/// keepalive with a zero interval or count, or keepalive values above Linux's limits
/// (`keepalive_idle`/`keepalive_interval` 32767 s, `keepalive_count` 127).
struct connection_options {
  std::chrono::milliseconds initial_backoff{20};
  std::chrono::milliseconds max_backoff{1000};
  /// Sent as `CLIENT SETNAME` on every connection when not empty (visible in `CLIENT LIST`).
  std::string client_name;
  std::chrono::seconds keepalive_idle{10};
  std::chrono::seconds keepalive_interval{5};
  int keepalive_count = 3;
  std::chrono::milliseconds health_check_interval{5000};
  std::chrono::milliseconds health_check_timeout{5000};
  std::chrono::milliseconds connect_timeout{10000};
};

/// The connection to the server was lost, refused or closed while a command was pending.
/// The command may or may not have run on the server.
class connection_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// The server answered a command with an error reply (`-ERR ...`, `-WRONGTYPE ...`).
class server_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// One RESP reply, copied out of hiredis's reply tree.
struct reply {
  enum class kind { string, array, integer, nil, status, error };
  kind type = kind::nil;
  std::string str;             ///< string, status and error replies
  long long integer = 0;       ///< integer replies
  std::vector<reply> elements; ///< array replies

  bool is_nil() const noexcept { return type == kind::nil; }
  /// `str` if this is a string or status reply; throws `server_error` otherwise.
  const std::string& as_string() const;
  /// `integer` if this is an integer reply; throws `server_error` otherwise.
  long long as_integer() const;
};

namespace detail {
class connection_impl;
}

/// A Redis connection that reconnects by itself.
///
/// It connects at once (asynchronously) and keeps connecting, with backoff, until
/// `close()` or its destruction. A command issued while the connection is down waits for
/// the next connection (after `AUTH`/`SELECT`); a command already sent when the connection
/// drops fails with `connection_error`, since nobody can tell whether it ran.
///
/// **Thread safety:** every member may be called from any thread. The connection's work
/// runs on a strand of the executor given to the constructor (hiredis is not thread-safe:
/// the strand serialises it); futures complete on that executor. No thread of its own.
class connection {
public:
  using executor_type = asio::any_io_executor;
  /// Called with (channel, message) for each Pub/Sub message, on the connection's strand.
  using message_handler = std::function<void(std::string_view, std::string_view)>;
  /// Called on the connection's strand after each (re)connection is ready for commands.
  using connect_handler = std::function<void()>;

  // No default argument for `opts`: WORKAROUND(g++ 12): a default argument of class type
  // created inside a coroutine is copied bitwise into the frame, leaving a std::string's
  // small-buffer pointer aimed at the old copy (heap corruption once it is destroyed).
  connection(executor_type ex, endpoint ep);
  connection(executor_type ex, endpoint ep, connection_options opts);
  /// Closes the connection (as `close()`).
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Sends one command, for example `command({"SET", "k", "v"})`. Arguments are binary
  /// safe and only read during the call (the command is formatted at once). The future holds
  /// the reply; an error reply fails it with `server_error`, a lost connection with
  /// `connection_error`. Throws `std::invalid_argument` for an empty command and for the
  /// commands that change the connection's mode (`SUBSCRIBE`, `PSUBSCRIBE`, `SSUBSCRIBE`, their
  /// `UNSUBSCRIBE`s, `MONITOR`: use `subscribe()`), and `invalid_state_error` after `close()`
  /// or in subscriber mode.
  future<reply> command(const std::vector<std::string>& args);
  future<reply> command(std::initializer_list<std::string_view> args);
  future<reply> command(std::span<const std::string_view> args);

  /// Subscriber mode: `SUBSCRIBE channel`, now and after every reconnection. The future is
  /// done when the server confirmed this subscription. From then on `command()` throws
  /// (Redis accepts no ordinary command on a subscribed connection). Messages go to the
  /// handler set with `set_message_handler`.
  future<void> subscribe(std::string channel);
  void set_message_handler(message_handler h);

  /// Called after every connection is ready (the first one too), before the commands that
  /// waited for it are sent. In subscriber mode it is called once every subscription of that
  /// connection is confirmed (so a message published afterwards is delivered).
  void set_connect_handler(connect_handler h);

  /// Whether a connection is up and ready now (it may drop the next moment).
  bool connected() const;

  /// How many times a connection became ready (the first one included), how many
  /// established connections were declared dead by the health check or `connect_timeout`,
  /// and how many health checks the server answered: counters for monitoring and tests.
  /// Any thread.
  std::uint64_t connections() const;
  std::uint64_t health_failures() const;
  std::uint64_t health_checks() const;

  /// Stops reconnecting and disconnects; pending and waiting commands fail with
  /// `connection_error`. Idempotent.
  void close();

  executor_type get_executor() const;

private:
  std::shared_ptr<detail::connection_impl> impl_;
};

} // namespace asio_futures::redis

#endif // ASIO_FUTURES_REDIS_CONNECTION_HPP
