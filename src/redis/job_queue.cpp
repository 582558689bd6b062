// asio_futures::redis::job_queue: the calling side (see protocol.hpp for the Redis layout).
//
// Everything runs on one strand of the caller's executor: the pending map, the command
// replies (the connections complete their futures on that strand) and the Pub/Sub messages.
#include <asio_futures/redis/job_queue.hpp>

#include "protocol.hpp"

#include <asio_futures/error.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <optional>
#include <random>
#include <unordered_map>

namespace asio_futures::redis {

remote_error::remote_error(std::string type, std::string message)
    : std::runtime_error(type + ": " + message), type_(std::move(type)),
      message_(std::move(message)) {}

namespace detail {

std::string random_hex(std::size_t bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::random_device rd;
  std::string s;
  s.reserve(bytes * 2);
  for (std::size_t i = 0; i < bytes; ++i) {
    auto b = static_cast<unsigned>(rd()) & 0xffu;
    s += digits[b >> 4];
    s += digits[b & 0xfu];
  }
  return s;
}

namespace {

connection_options named(connection_options o, const std::string& name) {
  if (o.client_name.empty())
    o.client_name = name;
  return o;
}

} // namespace

class job_queue_impl : public std::enable_shared_from_this<job_queue_impl> {
public:
  job_queue_impl(asio::any_io_executor ex, endpoint ep, std::string name, queue_options opts)
      : ex_(ex), strand_(asio::make_strand(ex)), keys_{std::move(name)}, opts_(std::move(opts)),
        client_(random_hex(8)),
        cmd_(strand_, ep, named(opts_.connection, keys_.q + ":caller:" + client_ + ":cmd")),
        sub_(strand_, ep, named(opts_.connection, keys_.q + ":caller:" + client_ + ":sub")) {}

  void start() {
    std::weak_ptr<job_queue_impl> w = shared_from_this();
    // "<job id>\n<outcome>": complete at once; a bare "<job id>": fetch the result.
    sub_.set_message_handler([w](std::string_view, std::string_view msg) {
      auto s = w.lock();
      if (!s)
        return;
      auto nl = msg.find('\n');
      asio::dispatch(s->strand_, [s, id = std::string(msg.substr(0, nl)),
                                  outcome = nl == std::string_view::npos
                                                ? std::optional<std::string>()
                                                : std::optional<std::string>(msg.substr(nl + 1))] {
        if (outcome)
          s->complete(id, *outcome);
        else
          s->fetch(id);
      });
    });
    // After each (re)subscription: results stored while we were away were announced to
    // nobody, so fetch them all.
    sub_.set_connect_handler([w] {
      if (auto s = w.lock())
        asio::dispatch(s->strand_, [s] { s->recover(); });
    });
    auto f = sub_.subscribe(keys_.done_channel(client_));
    f.add_done_callback([w](future<void> r) {
      auto e = r.exception();
      auto s = w.lock();
      if (!e || !s || is_connection_error(e))
        return; // a connection_error: closed
      // Refused (an ACL): no result would ever reach this queue.
      asio::dispatch(s->strand_, [s, e] {
        s->refused_ = e;
        auto pending = std::move(s->pending_);
        s->pending_.clear();
        s->count_.store(0, std::memory_order_relaxed);
        for (auto& [id, f] : pending)
          f.try_set_exception(e);
        s->report(e);
      });
    });
  }

  future<std::string> submit(std::string payload, submit_options opts) {
    if (closed_.load(std::memory_order_acquire))
      ::asio_futures::detail::throw_invalid_state(
          "asio_futures::redis::job_queue::submit: the queue is closed");
    future<std::string> f(ex_);
    std::string id = client_ + "-" + std::to_string(counter_.fetch_add(1) + 1);
    std::weak_ptr<job_queue_impl> w = shared_from_this();
    f.add_done_callback(asio::bind_executor(strand_, [w, id](future<std::string> done) {
      if (auto s = w.lock())
        s->on_done(id, done);
    }));
    asio::dispatch(strand_, [s = shared_from_this(), id, f, fn = std::move(opts.function),
                             payload = std::move(payload)]() mutable {
      if (s->closed_.load(std::memory_order_relaxed)) {
        f.try_set_exception(closed_error());
        return;
      }
      if (s->refused_) {
        f.try_set_exception(s->refused_);
        return;
      }
      if (f.done())
        return; // cancelled before it was sent
      s->pending_.emplace(id, f);
      s->count_.store(s->pending_.size(), std::memory_order_relaxed);
      s->send_job(id, std::make_shared<const std::string>(std::move(fn)),
                  std::make_shared<const std::string>(std::move(payload)));
    });
    return f;
  }

  std::size_t pending() const { return count_.load(std::memory_order_relaxed); }

  void close() {
    if (closed_.exchange(true, std::memory_order_acq_rel))
      return;
    asio::dispatch(strand_, [s = shared_from_this()] {
      auto pending = std::move(s->pending_);
      s->pending_.clear();
      s->count_.store(0, std::memory_order_relaxed);
      for (auto& [id, f] : pending)
        f.try_set_exception(closed_error());
      s->cmd_.close();
      s->sub_.close();
    });
  }

private:
  static std::exception_ptr closed_error() {
    return std::make_exception_ptr(
        connection_error("asio_futures::redis::job_queue: the queue was closed"));
  }

  bool is_pending(const std::string& id) const { return pending_.contains(id); }

  // Strand only.
  void send_job(const std::string& id, std::shared_ptr<const std::string> fn,
                std::shared_ptr<const std::string> payload) {
    if (closed_.load(std::memory_order_relaxed) || !is_pending(id))
      return;
    auto c = cmd_.command({"XADD", stream_key_, "*", "id", id, "fn", *fn, "payload", *payload,
                           "reply", done_channel_});
    std::weak_ptr<job_queue_impl> w = shared_from_this();
    c.add_done_callback([w, id, fn, payload](future<reply> r) {
      auto e = r.exception();
      auto s = w.lock();
      if (!e || !s)
        return;
      if (is_connection_error(e)) {
        // It may or may not have been added: add it again (a duplicate still completes once).
        s->send_job(id, fn, payload);
      } else {
        s->fail(id, e);
      }
    });
  }

  void fetch(const std::string& id) {
    if (closed_.load(std::memory_order_relaxed) || !is_pending(id))
      return;
    auto c = cmd_.command({"GET", keys_.result(id)});
    std::weak_ptr<job_queue_impl> w = shared_from_this();
    c.add_done_callback([w, id](future<reply> r) {
      auto s = w.lock();
      auto e = r.exception();
      if (!s)
        return;
      if (e) {
        if (is_connection_error(e))
          s->fetch(id);
        else
          s->fail(id, e);
        return;
      }
      const reply& rep = r.result();
      if (rep.type == reply::kind::string)
        s->complete(id, rep.str);
    });
  }

  void recover() {
    std::vector<std::string> ids;
    ids.reserve(pending_.size());
    for (auto& [id, f] : pending_)
      ids.push_back(id);
    for (auto& id : ids)
      fetch(id);
  }

  /// The pending future of job `id`, taken out of the table (empty if none is pending).
  future<std::string> take(const std::string& id) {
    auto it = pending_.find(id);
    if (it == pending_.end())
      return {};
    future<std::string> f = std::move(it->second);
    pending_.erase(it);
    count_.store(pending_.size(), std::memory_order_relaxed);
    return f;
  }

  void complete(const std::string& id, const std::string& stored) {
    const future<std::string> f = take(id);
    if (!f.valid())
      return;
    try {
      f.try_set_result(decode(stored));
    } catch (...) {
      f.try_set_exception(std::current_exception());
    }
  }

  void fail(const std::string& id, const std::exception_ptr& e) {
    if (const future<std::string> f = take(id); f.valid())
      f.try_set_exception(e);
  }

  void on_done(const std::string& id, const future<std::string>& f) {
    if (pending_.erase(id) == 0)
      return; // completed by us, or never sent
    count_.store(pending_.size(), std::memory_order_relaxed);
    if (f.cancelled())
      cancel_job(id);
  }

  void cancel_job(const std::string& id) { cancel_step(id, false); }

  // The marker first, then the message: a worker checks the marker before starting the
  // job; the message reaches the worker that is running it. Each step is repeated after a
  // lost connection; a refusal is reported.
  void cancel_step(const std::string& id, bool publish) {
    if (closed_.load(std::memory_order_relaxed))
      return;
    auto c = publish ? cmd_.command({"PUBLISH", keys_.cancel_channel(), id})
                     : cmd_.command({"SET", keys_.cancel(id), "1", "EX",
                                     std::to_string(opts_.result_ttl.count())});
    std::weak_ptr<job_queue_impl> w = shared_from_this();
    c.add_done_callback([w, id, publish](future<reply> r) {
      auto e = r.exception();
      auto s = w.lock();
      if (!s)
        return;
      if (!e) {
        if (!publish)
          s->cancel_step(id, true);
      } else if (is_connection_error(e)) {
        s->cancel_step(id, publish);
      } else {
        s->report(e);
      }
    });
  }

  void report(const std::exception_ptr& e) {
    if (!opts_.on_error)
      return;
    try {
      opts_.on_error(e);
    } catch (...) {
      // a throwing error handler has nobody to tell either
    }
  }

  asio::any_io_executor ex_;
  asio::strand<asio::any_io_executor> strand_;
  keys keys_;
  queue_options opts_;
  std::string client_;
  const std::string stream_key_ = keys_.stream();
  const std::string done_channel_ = keys_.done_channel(client_);
  connection cmd_;
  connection sub_;
  std::unordered_map<std::string, future<std::string>> pending_; // strand only
  std::atomic<std::size_t> count_{0};
  std::atomic<std::uint64_t> counter_{0};
  std::atomic<bool> closed_{false};
  std::exception_ptr refused_; // strand only: the subscription's refusal
};

} // namespace detail

job_queue::job_queue(executor_type ex, endpoint ep, std::string name)
    : job_queue(std::move(ex), std::move(ep), std::move(name), queue_options{}) {}

job_queue::job_queue(executor_type ex, endpoint ep, std::string name, queue_options opts)
    : ex_(ex), name_(name) {
  if (name.empty())
    throw std::invalid_argument("asio_futures::redis::job_queue: empty queue name");
  if (opts.result_ttl.count() <= 0)
    throw std::invalid_argument("asio_futures::redis::job_queue: result_ttl must be positive");
  impl_ = std::make_shared<detail::job_queue_impl>(std::move(ex), std::move(ep), std::move(name),
                                                   std::move(opts));
  impl_->start();
}

job_queue::~job_queue() {
  impl_->close();
}

future<std::string> job_queue::submit(std::string payload, submit_options opts) {
  return impl_->submit(std::move(payload), std::move(opts));
}

future<std::string> job_queue::submit(std::string payload) {
  return impl_->submit(std::move(payload), submit_options{});
}

std::size_t job_queue::pending() const {
  return impl_->pending();
}

void job_queue::close() {
  impl_->close();
}

} // namespace asio_futures::redis
