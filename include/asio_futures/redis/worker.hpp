//
// asio_futures/redis/worker.hpp
//
// The executing side of a Redis job queue.
//
#ifndef ASIO_FUTURES_REDIS_WORKER_HPP
#define ASIO_FUTURES_REDIS_WORKER_HPP

#include <asio_futures/redis/connection.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace asio_futures::redis {

/// Options of a worker.
struct worker_options {
  /// Jobs run at once by this worker. It is also how many jobs the worker reads ahead and
  /// has in flight with Redis: for short jobs (well under a millisecond) it sets the
  /// throughput — each job costs Redis round trips, and only `concurrency` of them overlap.
  /// Hundreds are fine: a job waiting for Redis costs a coroutine frame, not a thread.
  std::size_t concurrency = 1;
  /// A job whose worker has not shown life for this long (a crashed or stuck process) is
  /// taken over by another worker. A live worker renews its running jobs every third of it.
  std::chrono::milliseconds visibility_timeout{30000};
  /// Deliveries of one job before it fails with `remote_error`
  /// (`asio_futures::redis::max_attempts_exceeded`) instead of running again. A delivery
  /// counts once (also when the worker re-sends its begin script after a lost connection);
  /// a delivery whose worker was stopped (`stop()`, cancellation) is given back and does
  /// not count; each stream entry counts apart (a job submitted twice by a repeated
  /// `XADD` is not failed earlier).
  int max_attempts = 3;
  /// The consumer name in the group; empty: made unique from host, process and a random
  /// number. Two live workers must never share one.
  std::string consumer;
  /// How long results stay in Redis (as `queue_options::result_ttl`).
  std::chrono::seconds result_ttl{24 * 3600};
  connection_options connection;
};

namespace detail {
class worker_impl;

template <class F> struct handler_traits : handler_traits<decltype(&F::operator())> {};
template <class C, class R, class... A> struct handler_traits<R (C::*)(A...) const> {
  using result = R;
  using args = std::tuple<std::decay_t<A>...>;
};
template <class C, class R, class... A>
struct handler_traits<R (C::*)(A...)> : handler_traits<R (C::*)(A...) const> {};
template <class R, class... A> struct handler_traits<R (*)(A...)> {
  using result = R;
  using args = std::tuple<std::decay_t<A>...>;
};

template <class T> struct awaitable_value;
template <class T, class E> struct awaitable_value<asio::awaitable<T, E>> { using type = T; };

template <class Tuple, std::size_t... I>
Tuple json_args(const boost::json::array& a, std::index_sequence<I...>) {
  return Tuple{boost::json::value_to<std::tuple_element_t<I, Tuple>>(a[I])...};
}

template <class F>
asio::awaitable<std::string> invoke_json(std::shared_ptr<F> f, std::string payload) {
  using traits = handler_traits<F>;
  using args = typename traits::args;
  using value = typename awaitable_value<typename traits::result>::type;
  constexpr std::size_t n = std::tuple_size_v<args>;
  boost::json::value v = boost::json::parse(payload);
  const boost::json::array& a = v.as_array();
  if (a.size() != n)
    throw std::invalid_argument("asio_futures::redis: handler takes " + std::to_string(n) +
                                " argument(s), the call gave " + std::to_string(a.size()));
  auto tuple = json_args<args>(a, std::make_index_sequence<n>{});
  if constexpr (std::is_void_v<value>) {
    co_await std::apply(*f, std::move(tuple));
    co_return "null";
  } else {
    value r = co_await std::apply(*f, std::move(tuple));
    co_return boost::json::serialize(boost::json::value_from(std::move(r)));
  }
}
} // namespace detail

/// Runs the jobs of a Redis job queue (`job_queue.hpp`): one consumer of the queue's
/// consumer group. Run as many workers as you like, in as many processes and machines.
///
/// **Delivery.** A job is read with `XREADGROUP`, run, its result stored with
/// `SET … NX` (the first result wins), announced to its caller, then acknowledged
/// (`XACK`) and deleted. A job whose worker died is taken over after
/// `visibility_timeout` (`XAUTOCLAIM`); after `max_attempts` deliveries it fails instead
/// (a stopped worker gives its deliveries back: a stop is not a failed attempt).
/// Execution is at-least-once: handlers should be idempotent.
///
/// **Cancellation.** A job cancelled by its caller before it starts is acknowledged
/// without running; a running handler's task is cancelled (its coroutine sees
/// `cancelled_error` at its current `co_await`) and no result is stored.
///
/// **Thread safety:** `handle`/`handle_bytes` before `async_run`; the worker's work runs on
/// a strand of its executor, handlers included. Destroy it before its execution context.
class worker {
public:
  using executor_type = asio::any_io_executor;
  /// A bytes handler: payload in, result out.
  using bytes_handler = std::function<asio::awaitable<std::string>(std::string)>;

  // No default arguments of class type (see connection's constructor: a g++ 12 workaround).
  /// Throws `std::invalid_argument` for an empty queue name, a zero `concurrency`,
  /// `max_attempts`, `visibility_timeout` or `result_ttl`, or `connection` options that a
  /// `connection` refuses.
  worker(executor_type ex, endpoint ep, std::string queue);
  worker(executor_type ex, endpoint ep, std::string queue, worker_options opts);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  /// Registers the handler of `job_queue::submit(payload, {.function = name})`. One handler
  /// object serves every job of that name, and up to `concurrency` of its calls may be
  /// suspended at once: keep per-job state in the coroutine, not in a `mutable` capture.
  /// Throws `std::invalid_argument` for an empty handler.
  void handle_bytes(std::string name, bytes_handler h);

  /// Registers a typed handler for `job_queue::call<R>(name, args...)`: `f` takes the
  /// arguments by value or const reference and returns `asio::awaitable<R>`; arguments
  /// are converted with `boost::json::value_to`, the result with `value_from`. Wrong
  /// argument count or types fail the caller's future with `remote_error`.
  template <class F> void handle(std::string name, F f) {
    handle_bytes(std::move(name), [fp = std::make_shared<F>(std::move(f))](std::string p) {
      return detail::invoke_json<F>(fp, std::move(p));
    });
  }

  /// Runs the worker until the awaiting coroutine is cancelled (or `stop()`): jobs running
  /// then are cancelled and left unacknowledged, so another worker takes them over after
  /// the visibility timeout, and their deliveries are given back (not counted against
  /// `max_attempts`; best effort, waiting at most min(visibility_timeout, 2 s) for Redis).
  /// Throws `invalid_state_error` if already running.
  ///
  /// **Per-operation cancellation:** terminal cancellation stops the worker.
  asio::awaitable<void> async_run();

  /// Stops `async_run` (any thread).
  void stop();

  /// Jobs this worker is running now.
  std::size_t running() const;
  /// Jobs this worker completed (result stored) since it was created.
  std::uint64_t completed() const;
  /// This worker's consumer name.
  const std::string& consumer() const noexcept;

  executor_type get_executor() const noexcept { return ex_; }

private:
  executor_type ex_;
  std::shared_ptr<detail::worker_impl> impl_;
};

} // namespace asio_futures::redis

#endif // ASIO_FUTURES_REDIS_WORKER_HPP
