//
// asio_futures/redis/job_queue.hpp
//
// Remote futures: a job submitted to a Redis stream, run by a worker process somewhere,
// its result delivered back into the caller's future.
//
#ifndef ASIO_FUTURES_REDIS_JOB_QUEUE_HPP
#define ASIO_FUTURES_REDIS_JOB_QUEUE_HPP

#include <asio_futures/future.hpp>
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

/// A job failed on its worker: the handler threw (`type()` is the exception's type name,
/// `message()` its `what()`), no worker handles its function
/// (`asio_futures::redis::unknown_function`), or it was delivered more than `max_attempts`
/// times without completing (`asio_futures::redis::max_attempts_exceeded`).
/// `what()` is "type: message".
class remote_error : public std::runtime_error {
public:
  remote_error(std::string type, std::string message);
  const std::string& type() const noexcept { return type_; }
  const std::string& message() const noexcept { return message_; }

private:
  std::string type_;
  std::string message_;
};

/// Options of one submission.
struct submit_options {
  /// The worker's handler to run (`worker::handle_bytes(function, …)`); empty selects the
  /// handler registered under the empty name.
  std::string function;
};

/// Options of a job_queue (the calling side).
struct queue_options {
  /// How long the cancel markers this caller sets stay in Redis (a job still queued after
  /// that would run despite its cancel). Results stay for `worker_options::result_ttl`, set
  /// on the workers: a caller away for longer than that loses the results of its jobs.
  std::chrono::seconds result_ttl{24 * 3600};
  connection_options connection;
  /// Told, on the queue's strand, what failed in the background where no future can carry
  /// it: a cancel of a job that Redis refused (`server_error`; the job may still run), or the
  /// queue's subscription refused (`server_error`, e.g. an ACL without its channel; the
  /// pending futures fail with it too, and later submissions at once). Empty: not reported.
  /// Lost connections are not errors here: the commands are repeated after reconnecting.
  std::function<void(std::exception_ptr)> on_error;
};

namespace detail {
class job_queue_impl;
}

/// The calling side of a Redis job queue: `submit` and `call` return futures that a worker
/// (`worker.hpp`), in this process or any other, resolves.
///
/// Redis keys, for a queue named `Q`: the stream `Q:jobs` with the consumer group
/// `Q:workers`; per job `Q:result:<id>`, `Q:cancel:<id>` and `Q:attempts:<id>`; the Pub/Sub
/// channels `Q:done:<client>` (results for one job_queue object) and `Q:cancel`.
///
/// **Completion.** A future completes once, with the first result stored for its job (a
/// job may run more than once, never complete twice). A stored result is announced, with
/// its value, on the client's Pub/Sub channel; after every reconnection of its subscriber the
/// queue fetches (`GET`) the results of all its pending jobs, so a result announced while it
/// was away is not lost.
///
/// **Cancellation.** `cancel()` on the returned future cancels the job: a worker that has
/// not started it never runs it (`Q:cancel:<id>` is checked before the start); a running
/// handler's task is cancelled on its worker (announced on `Q:cancel`). A cancel that Redis
/// refuses is reported to `queue_options::on_error`.
///
/// **Thread safety:** every member may be called from any thread; the futures complete on
/// the executor given to the constructor. Destroy the queue before its execution context.
class job_queue {
public:
  using executor_type = asio::any_io_executor;

  // No default arguments of class type (see connection's constructor: a g++ 12 workaround).
  job_queue(executor_type ex, endpoint ep, std::string name);
  job_queue(executor_type ex, endpoint ep, std::string name, queue_options opts);
  /// Fails the futures still pending with `connection_error` (as `close()`).
  ~job_queue();
  job_queue(const job_queue&) = delete;
  job_queue& operator=(const job_queue&) = delete;

  /// Submits `payload` (bytes) to the worker handler `opts.function`; the future holds the
  /// handler's result bytes, or fails with `remote_error`. A lost connection never fails
  /// it: the submission is repeated after reconnecting (which may add the job twice; it
  /// still completes once). Throws `invalid_state_error` after `close()`.
  future<std::string> submit(std::string payload, submit_options opts);
  future<std::string> submit(std::string payload);

  /// Typed call through Boost.JSON: the arguments go as a JSON array (`value_from`), the
  /// worker's typed handler `function` (`worker::handle`) runs, and its JSON result is
  /// converted with `value_to<R>` (`R = void` ignores it). A conversion failure fails the
  /// future. Cancelling the returned future cancels the job.
  template <class R, class... Args> future<R> call(std::string function, const Args&... args);

  /// Jobs submitted by this object whose futures are not done yet.
  std::size_t pending() const;

  /// The queue's name.
  const std::string& name() const noexcept { return name_; }

  /// Fails the pending futures with `connection_error` and closes the connections.
  /// Idempotent.
  void close();

  executor_type get_executor() const noexcept { return ex_; }

private:
  executor_type ex_;
  std::string name_;
  std::shared_ptr<detail::job_queue_impl> impl_;
};

template <class R, class... Args>
future<R> job_queue::call(std::string function, const Args&... args) {
  boost::json::array a;
  a.reserve(sizeof...(Args));
  (a.push_back(boost::json::value_from(args)), ...);
  future<std::string> raw =
      submit(boost::json::serialize(a), submit_options{.function = std::move(function)});
  future<R> out(ex_);
  out.add_done_callback([raw](future<R> o) {
    if (o.cancelled())
      raw.cancel();
  });
  raw.add_done_callback([out](future<std::string> r) mutable {
    if (r.cancelled()) {
      out.cancel();
      return;
    }
    if (auto e = r.exception()) {
      out.try_set_exception(e);
      return;
    }
    try {
      if constexpr (std::is_void_v<R>)
        out.try_set_result();
      else
        out.try_set_result(boost::json::value_to<R>(boost::json::parse(r.result())));
    } catch (...) {
      out.try_set_exception(std::current_exception());
    }
  });
  return out;
}

} // namespace asio_futures::redis

#endif // ASIO_FUTURES_REDIS_JOB_QUEUE_HPP
