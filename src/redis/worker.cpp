// asio_futures::redis::worker: the executing side (see protocol.hpp for the Redis layout).
//
// Three connections: `reader_` for the blocking XREADGROUP (a blocked connection answers
// nothing else), `cmd_` for everything else, `sub_` for the cancel channel. Everything of
// the worker, handlers included, runs on one strand of the worker's executor.
#include <asio_futures/redis/worker.hpp>

#include "protocol.hpp"

#include <asio_futures/error.hpp>
#include <asio_futures/gather.hpp>
#include <asio_futures/sync.hpp>
#include <asio_futures/task.hpp>
#include <asio_futures/wait.hpp>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/core/demangle.hpp>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <map>
#include <optional>
#include <span>
#include <typeinfo>

namespace asio_futures::redis {

namespace detail {

namespace {

struct job_entry {
  std::string stream_id;
  std::string id;
  std::string fn;
  std::string payload;
  std::string reply;
};

/// The entries of an XREADGROUP reply ([[stream, [[id, [k, v, ...]], ...]]]) or of the
/// second element of an XAUTOCLAIM reply ([[id, [k, v, ...]], ...]), moved out of `list`.
void parse_entries(reply& list, std::vector<job_entry>& out) {
  for (auto& e : list.elements) {
    if (e.type != reply::kind::array || e.elements.size() < 2 ||
        e.elements[1].type != reply::kind::array)
      continue; // an entry deleted meanwhile
    job_entry j;
    j.stream_id = std::move(e.elements[0].str);
    auto& kv = e.elements[1].elements;
    for (std::size_t i = 0; i + 1 < kv.size(); i += 2) {
      const auto& k = kv[i].str;
      if (k == "id")
        j.id = std::move(kv[i + 1].str);
      else if (k == "fn")
        j.fn = std::move(kv[i + 1].str);
      else if (k == "payload")
        j.payload = std::move(kv[i + 1].str);
      else if (k == "reply")
        j.reply = std::move(kv[i + 1].str);
    }
    out.push_back(std::move(j));
  }
}

std::string default_consumer() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0)
    host[0] = '\0';
  return std::string(host) + "-" + std::to_string(::getpid()) + "-" + random_hex(4);
}

void ignore(const future<reply>& f) {
  f.add_done_callback([](future<reply> r) { (void)r.exception(); });
}

connection_options named(connection_options o, const std::string& name) {
  if (o.client_name.empty())
    o.client_name = name;
  return o;
}

template <class T> asio::awaitable<T> await(future<T> f) {
  co_return co_await f.async_wait(asio::use_awaitable);
}

} // namespace

class worker_impl : public std::enable_shared_from_this<worker_impl> {
public:
  worker_impl(asio::any_io_executor ex, endpoint ep, std::string queue, worker_options opts)
      : strand_(asio::make_strand(ex)), ep_(std::move(ep)), keys_{std::move(queue)},
        opts_(std::move(opts)),
        consumer_(opts_.consumer.empty() ? default_consumer() : opts_.consumer),
        slot_freed_(strand_) {}

  void handle_bytes(std::string name, worker::bytes_handler h) {
    if (!h)
      throw std::invalid_argument("asio_futures::redis::worker::handle_bytes: empty handler");
    std::lock_guard lock(handlers_mutex_);
    handlers_[std::move(name)] = std::make_shared<const worker::bytes_handler>(std::move(h));
  }

  static asio::awaitable<void> run(std::shared_ptr<worker_impl> self) {
    if (self->started_.exchange(true))
      ::asio_futures::detail::throw_invalid_state(
          "asio_futures::redis::worker::async_run: already running");
    // The worker's own task, on its strand; cancelling the awaiting coroutine (terminal)
    // cancels it through the future's cancellation bridge.
    auto main = create_task(self->strand_, run_main(self), "redis-worker " + self->consumer_);
    asio::dispatch(self->strand_, [self, main] {
      self->main_ = main;
      if (self->stop_requested_.load(std::memory_order_relaxed))
        self->main_.cancel("asio_futures::redis::worker stopped");
    });
    try {
      co_await main.async_wait(asio::use_awaitable);
    } catch (const cancelled_error&) {
      if (!self->stop_requested_.load(std::memory_order_relaxed))
        throw;
    }
  }

  void stop() {
    stop_requested_.store(true, std::memory_order_relaxed);
    asio::dispatch(strand_, [s = shared_from_this()] {
      if (s->main_.valid())
        s->main_.cancel("asio_futures::redis::worker stopped");
    });
  }

  std::size_t running() const { return running_count_.load(std::memory_order_relaxed); }
  std::uint64_t completed() const { return completed_.load(std::memory_order_relaxed); }
  const std::string& consumer() const noexcept { return consumer_; }

private:
  struct slot {
    job_entry job;
    std::string token;         // this delivery's, for the begin and release scripts
    task<std::string> handler; // once started
    bool cancel_requested = false;
    bool counted = false; // the begin script was sent: the delivery may be counted
  };

  // --- the worker's life ------------------------------------------------------------------
  static asio::awaitable<void> run_main(std::shared_ptr<worker_impl> self) {
    if (self->stop_requested_.load(std::memory_order_relaxed))
      co_return;
    auto& s = *self;
    s.reader_.emplace(s.strand_, s.ep_, named(s.opts_.connection, s.consumer_ + ":read"));
    s.cmd_.emplace(s.strand_, s.ep_, named(s.opts_.connection, s.consumer_ + ":cmd"));
    s.sub_.emplace(s.strand_, s.ep_, named(s.opts_.connection, s.consumer_ + ":sub"));
    struct closer {
      worker_impl& s;
      ~closer() { s.shutdown(); }
    } closer{s};

    std::weak_ptr<worker_impl> w = self;
    s.sub_->set_message_handler([w](std::string_view, std::string_view id) {
      if (auto p = w.lock())
        asio::dispatch(p->strand_, [p, id = std::string(id)] { p->cancel_running(id); });
    });
    // After each resubscription: cancels announced while we were away reached nobody.
    s.sub_->set_connect_handler([w] {
      if (auto p = w.lock())
        asio::dispatch(p->strand_, [p] { p->check_markers(); });
    });
    co_await await(s.sub_->subscribe(s.keys_.cancel_channel()));
    co_await s.create_group();
    co_await s.load_scripts();

    auto maintenance =
        create_task(s.strand_, run_maintenance(self), "redis-worker maintenance " + s.consumer_);
    std::exception_ptr end; // the read loop only ends by an exception (stop(): cancellation)
    try {
      co_await s.read_loop(self);
    } catch (...) {
      end = std::current_exception();
    }
    maintenance.cancel();
    // A stop cancelled this coroutine, and Asio aborts every later co_await of a cancelled
    // coroutine: reset that to give the jobs back.
    co_await asio::this_coro::reset_cancellation_state();
    co_await s.give_back();
    if (end)
      std::rethrow_exception(end);
  }

  /// The worker is leaving: cancel its jobs and give back the deliveries they counted (a
  /// job whose worker was stopped did not fail; only a worker that dies charges an attempt).
  /// Best effort, bounded: without an answer from Redis the attempt stays counted.
  asio::awaitable<void> give_back() {
    stop_jobs();
    std::vector<future<reply>> fs;
    if (cmd_ && cmd_->connected())
      for (auto& [sid, sl] : slots_)
        if (sl.counted)
          fs.push_back(cmd_->command({"EVAL", std::string(release_script), "1",
                                      keys_.attempts(sl.job.id), sid, sl.token}));
    if (fs.empty())
      co_return;
    try {
      const std::chrono::steady_clock::duration bound =
          std::min<std::chrono::milliseconds>(opts_.visibility_timeout, std::chrono::seconds(2));
      auto all = wait_for(gather(std::move(fs)), bound);
      co_await all.async_wait(asio::use_awaitable);
    } catch (...) {
      // not given back: the delivery stays counted
    }
  }

  /// A Lua script of the worker and its SHA1 as the server reported it (empty: not known).
  struct lua {
    std::string_view body;
    std::string sha;
  };

  /// Asks the server for the scripts' SHA1s (SCRIPT LOAD), so that each job sends
  /// `EVALSHA <sha>` instead of the scripts' bodies (about 1 KB per job: formatting, network
  /// and the server's parsing and hashing). A server that refuses (an ACL without SCRIPT)
  /// leaves them unknown: EVAL then, as before.
  asio::awaitable<void> load_scripts() {
    const std::array<lua*, 2> scripts{&begin_, &finish_};
    for (lua* sc : scripts) {
      for (;;) {
        try {
          const std::array<std::string_view, 3> args{"SCRIPT", "LOAD", sc->body};
          auto f = cmd_->command(args);
          const reply r = co_await f.async_wait(asio::use_awaitable);
          if (r.type == reply::kind::string)
            sc->sha = r.str;
          break;
        } catch (const server_error&) {
          break; // refused: EVAL
        } catch (const connection_error&) {
          // retried once reconnected
        }
      }
    }
  }

  /// Runs `sc` with `args` (numkeys, keys, arguments): EVALSHA when its SHA1 is known, EVAL
  /// when not, or when the server answers NOSCRIPT (it restarted without its script cache,
  /// or the cache was flushed; EVAL caches it again). Errors propagate as for any command.
  /// (`args` is a span: g++ 12 destroys a by-value argument of class type with a destructor
  /// twice when the frame dies suspended; a span has none.)
  asio::awaitable<reply> eval(const lua& sc, std::span<const std::string_view> args) {
    if (!sc.sha.empty()) {
      auto f = cmd_->command(script_command("EVALSHA", sc.sha, args));
      try {
        co_return co_await f.async_wait(asio::use_awaitable);
      } catch (const server_error& e) {
        if (!std::string_view(e.what()).starts_with("NOSCRIPT"))
          throw;
      }
    }
    auto f = cmd_->command(script_command("EVAL", sc.body, args));
    co_return co_await f.async_wait(asio::use_awaitable);
  }

  /// `verb script args...` as views (the scripts take at most 11 arguments).
  struct script_args {
    std::array<std::string_view, 16> v;
    std::size_t n = 0;
    operator std::span<const std::string_view>() const { return {v.data(), n}; }
  };
  static script_args script_command(std::string_view verb, std::string_view script,
                                    std::span<const std::string_view> args) {
    script_args c;
    if (args.size() + 2 > c.v.size())
      throw std::logic_error("asio_futures::redis::worker: too many script arguments");
    c.v[c.n++] = verb;
    c.v[c.n++] = script;
    for (auto a : args)
      c.v[c.n++] = a;
    return c;
  }

  asio::awaitable<void> create_group() {
    for (;;) {
      try {
        // WORKAROUND(g++ 12): an initializer_list's backing array in the full-expression of a
        // co_await fails to compile ("array used as initializer"): command first, then await.
        auto f =
            cmd_->command({"XGROUP", "CREATE", keys_.stream(), keys_.group(), "0", "MKSTREAM"});
        co_await f.async_wait(asio::use_awaitable);
        co_return;
      } catch (const server_error& e) {
        if (std::string_view(e.what()).starts_with("BUSYGROUP"))
          co_return;
        throw;
      } catch (const connection_error&) {
        // retried once reconnected
      }
    }
  }

  asio::awaitable<void> read_loop(std::shared_ptr<worker_impl> self) {
    for (;;) {
      while (slots_.size() >= opts_.concurrency) {
        slot_freed_.clear();
        co_await slot_freed_.async_wait(asio::use_awaitable);
      }
      const auto free = opts_.concurrency - slots_.size();
      reply r;
      bool lost_group = false;
      try {
        auto f = reader_->command({"XREADGROUP", "GROUP", keys_.group(), consumer_, "COUNT",
                                   std::to_string(free), "BLOCK", "1000", "STREAMS", keys_.stream(),
                                   ">"});
        r = co_await f.async_wait(asio::use_awaitable);
      } catch (const connection_error&) {
        continue; // the next command waits for the reconnection
      } catch (const server_error& e) {
        if (!std::string_view(e.what()).starts_with("NOGROUP"))
          throw;
        lost_group = true; // the server lost its data (no persistence)
      }
      if (lost_group) {
        co_await create_group();
        continue;
      }
      std::vector<job_entry> jobs;
      for (auto& stream : r.elements)
        if (stream.elements.size() >= 2)
          parse_entries(stream.elements[1], jobs);
      for (auto& j : jobs)
        start(self, std::move(j));
    }
  }

  // Every third of the visibility timeout: renew our running jobs (XCLAIM JUSTID resets
  // their idle time) and take over the jobs of dead workers (XAUTOCLAIM).
  static asio::awaitable<void> run_maintenance(std::shared_ptr<worker_impl> self) {
    auto& s = *self;
    asio::steady_timer timer(s.strand_);
    const auto period = std::max(s.opts_.visibility_timeout / 3, std::chrono::milliseconds(5));
    for (;;) {
      timer.expires_after(period);
      co_await timer.async_wait(asio::use_awaitable);
      try {
        if (!s.slots_.empty()) {
          std::vector<std::string> args{"XCLAIM", s.keys_.stream(), s.keys_.group(), s.consumer_,
                                        "0"};
          for (auto& [sid, sl] : s.slots_)
            args.push_back(sid);
          args.push_back("JUSTID");
          ignore(s.cmd_->command(std::move(args)));
        }
        if (s.slots_.size() < s.opts_.concurrency) {
          const auto free = s.opts_.concurrency - s.slots_.size();
          // XAUTOCLAIM scans at most COUNT x 10 pending entries per call: go on from the
          // cursor it returns (0-0 once it wrapped), or entries kept fresh by live workers
          // ahead of a dead worker's would hide its jobs for as long as they run.
          auto f = s.cmd_->command({"XAUTOCLAIM", s.keys_.stream(), s.keys_.group(), s.consumer_,
                                    std::to_string(s.opts_.visibility_timeout.count()),
                                    s.autoclaim_cursor_, "COUNT", std::to_string(free)});
          reply r = co_await f.async_wait(asio::use_awaitable);
          std::vector<job_entry> jobs;
          if (!r.elements.empty() && r.elements[0].type == reply::kind::string)
            s.autoclaim_cursor_ = r.elements[0].str;
          if (r.elements.size() >= 2)
            parse_entries(r.elements[1], jobs);
          for (auto& j : jobs)
            s.start(self, std::move(j));
        }
      } catch (const connection_error&) {
      } catch (const server_error&) {
        // NOGROUP after a data loss: the read loop re-creates the group
      }
    }
  }

  void stop_jobs() {
    stopping_ = true;
    for (auto& [sid, sl] : slots_)
      if (sl.handler.valid())
        sl.handler.cancel("asio_futures::redis::worker stopped");
    for (auto& t : job_tasks_)
      t.cancel("asio_futures::redis::worker stopped");
    job_tasks_.clear();
  }

  void shutdown() {
    stop_jobs();
    if (reader_)
      reader_->close();
    if (cmd_)
      cmd_->close();
    if (sub_)
      sub_->close();
  }

  // --- one job ----------------------------------------------------------------------------
  void start(const std::shared_ptr<worker_impl>& self, job_entry j) {
    if (stopping_ || slots_.contains(j.stream_id))
      return; // already ours and running
    auto sid = j.stream_id;
    // A token unique to this delivery: the consumer name is unique among live workers, but a
    // worker restarted under a fixed name reuses it (and would count from 1 again), so the
    // token also carries a random number of this worker object.
    auto token = consumer_ + "." + instance_ + "." + std::to_string(++deliveries_);
    slots_.emplace(sid, slot{std::move(j), std::move(token), {}, false, false});
    running_count_.store(slots_.size(), std::memory_order_relaxed);
    auto t = create_task(strand_, run_job(self, sid), "redis-job " + sid);
    // A job that fails outside its handler (an unexpected reply) is left unacknowledged and
    // taken over later; its exception is not reported as lost.
    t.add_done_callback([](future<void> f) {
      if (!f.cancelled())
        (void)f.exception();
    });
    // Forget finished job tasks (the list only serves shutdown), in sweeps that keep the
    // cost per job constant.
    if (job_tasks_.size() >= 2 * slots_.size() + 16)
      std::erase_if(job_tasks_, [](const task<void>& x) { return x.done(); });
    job_tasks_.push_back(t);
  }

  void finish(const std::string& sid) {
    slots_.erase(sid);
    running_count_.store(slots_.size(), std::memory_order_relaxed);
    slot_freed_.set();
  }

  std::shared_ptr<const worker::bytes_handler> handler_for(const std::string& fn) {
    std::lock_guard lock(handlers_mutex_);
    auto it = handlers_.find(fn);
    if (it == handlers_.end())
      return nullptr;
    return it->second;
  }

  static asio::awaitable<void> run_job(std::shared_ptr<worker_impl> self, std::string sid) {
    auto& s = *self;
    struct release {
      worker_impl& s;
      std::string sid;
      ~release() { s.finish(sid); }
    } release{s, sid};
    // The slot lives until `release` ends this coroutine (only finish() erases it).
    const job_entry& job = s.slots_.at(sid).job;
    const std::string& token = s.slots_.at(sid).token;

    // Before running: count the delivery; skip a cancelled or already completed job.
    auto attempts_key = s.keys_.attempts(job.id);
    const auto ttl = std::to_string(s.opts_.result_ttl.count());
    long long attempts = 0;
    bool cancelled = false;
    bool completed = false;
    for (;;) {
      try {
        s.slots_.at(sid).counted = true;
        // The same token on a retry: a delivery counts once even if the script ran before
        // its connection was lost.
        const std::string cancel_key = s.keys_.cancel(job.id);
        const std::string result_key = s.keys_.result(job.id);
        const std::array<std::string_view, 7> args{"3", attempts_key, cancel_key, result_key,
                                                   ttl, sid,          token};
        const reply r = co_await s.eval(s.begin_, args);
        if (r.elements.size() != 3)
          throw server_error("asio_futures::redis: unexpected reply to the begin script");
        attempts = r.elements[0].as_integer();
        cancelled = r.elements[1].as_integer() != 0;
        completed = r.elements[2].as_integer() != 0;
        break;
      } catch (const connection_error&) {
        if (s.stopping_)
          co_return;
      }
    }
    if (cancelled || completed || job.id.empty()) {
      co_await s.finish_job(job, nullptr);
      co_return;
    }

    std::string outcome;
    bool cancelled_by_caller = false;
    if (attempts > s.opts_.max_attempts) {
      outcome = encode_error("asio_futures::redis::max_attempts_exceeded",
                             "job " + job.id + " was delivered " + std::to_string(attempts) +
                                 " times without completing (max_attempts " +
                                 std::to_string(s.opts_.max_attempts) + ")");
    } else if (auto h = s.handler_for(job.fn); !h) {
      outcome = encode_error("asio_futures::redis::unknown_function",
                             "no handler for '" + job.fn + "' on worker " + s.consumer_);
    } else {
      try {
        // The handler object stays alive until its task is done, even if this job's
        // coroutine ends first (worker stopping): a lambda coroutine refers to it.
        // (A handler replaced meanwhile stays alive through `h` as well.)
        auto t = create_task(s.strand_, (*h)(job.payload), "redis-handler " + job.id);
        t.add_done_callback([h](future<std::string>) {});
        auto& sl = s.slots_.at(sid);
        sl.handler = t;
        if (sl.cancel_requested)
          t.cancel("asio_futures::redis: cancelled by the caller");
        std::string v = co_await t.async_wait(asio::use_awaitable);
        outcome = encode_value(v);
      } catch (const cancelled_error& e) {
        if (s.stopping_)
          co_return; // left unacknowledged: another worker takes it over
        // Only the caller's cancel means "nobody waits for a result". A handler that ends
        // cancelled by itself (it awaited something that was cancelled) failed: its caller
        // must hear of it, or its future would stay pending forever.
        if (s.slots_.at(sid).cancel_requested)
          cancelled_by_caller = true;
        else
          outcome = encode_error(boost::core::demangle(typeid(e).name()), e.what());
      } catch (const std::exception& e) {
        outcome = encode_error(boost::core::demangle(typeid(e).name()), e.what());
      } catch (...) {
        outcome = encode_error("unknown", "a non-std exception");
      }
    }
    if (s.stopping_)
      co_return;
    if (cancelled_by_caller) {
      // Nobody waits for a result.
      co_await s.finish_job(job, nullptr);
      co_return;
    }
    // Store (the first result wins), announce, then acknowledge: one script, atomic.
    try {
      co_await s.finish_job(job, &outcome);
      s.completed_.fetch_add(1, std::memory_order_relaxed);
    } catch (const cancelled_error&) {
      // stopping: left unacknowledged
    }
  }

  /// The finish script: with an outcome, SET NX EX it and PUBLISH the job id; in any case
  /// XACK and XDEL the entry and DEL the attempts counter. Idempotent, so retried as a whole.
  asio::awaitable<void> finish_job(const job_entry& job, const std::string* outcome) {
    const std::string result_key = keys_.result(job.id);
    const std::string attempts_key = keys_.attempts(job.id);
    const std::string ttl = std::to_string(opts_.result_ttl.count());
    const std::array<std::string_view, 11> args{
        "3",
        result_key,
        stream_key_,
        attempts_key,
        outcome ? "1" : "0",
        outcome ? std::string_view(*outcome) : std::string_view(),
        ttl,
        job.reply,
        job.id,
        group_key_,
        job.stream_id};
    for (;;) { // retried on connection errors (commands wait for the reconnection)
      if (stopping_)
        throw cancelled_error("asio_futures::redis::worker stopped");
      try {
        co_await eval(finish_, args);
        co_return;
      } catch (const connection_error&) {
      }
    }
  }

  // --- cancellation -----------------------------------------------------------------------
  void cancel_running(const std::string& id) {
    for (auto& [sid, sl] : slots_) {
      if (sl.job.id != id)
        continue;
      sl.cancel_requested = true;
      if (sl.handler.valid())
        sl.handler.cancel("asio_futures::redis: cancelled by the caller");
    }
  }

  void check_markers() {
    if (stopping_ || !cmd_)
      return;
    std::weak_ptr<worker_impl> w = shared_from_this();
    for (auto& [sid, sl] : slots_) {
      auto f = cmd_->command({"EXISTS", keys_.cancel(sl.job.id)});
      f.add_done_callback([w, id = sl.job.id](future<reply> r) {
        auto p = w.lock();
        if (!p || r.exception())
          return;
        if (r.result().type == reply::kind::integer && r.result().integer != 0)
          p->cancel_running(id);
      });
    }
  }

  asio::strand<asio::any_io_executor> strand_;
  endpoint ep_;
  keys keys_;
  worker_options opts_;
  std::string consumer_;
  const std::string instance_ = random_hex(8); // in the delivery tokens
  const std::string stream_key_ = keys_.stream();
  const std::string group_key_ = keys_.group();
  lua begin_{begin_script, {}}; // strand only (SHA1s set by load_scripts)
  lua finish_{finish_script, {}};
  std::string autoclaim_cursor_ = "0-0"; // XAUTOCLAIM's scan position (keep_alive loop only)

  std::mutex handlers_mutex_;
  std::map<std::string, std::shared_ptr<const worker::bytes_handler>> handlers_;

  // Strand only.
  std::optional<connection> reader_, cmd_, sub_;
  std::map<std::string, slot> slots_; // by stream entry id
  std::vector<task<void>> job_tasks_;
  event slot_freed_;
  task<void> main_;
  std::uint64_t deliveries_ = 0;
  bool stopping_ = false;

  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> started_{false};
  std::atomic<std::size_t> running_count_{0};
  std::atomic<std::uint64_t> completed_{0};
};

} // namespace detail

worker::worker(executor_type ex, endpoint ep, std::string queue)
    : worker(std::move(ex), std::move(ep), std::move(queue), worker_options{}) {}

worker::worker(executor_type ex, endpoint ep, std::string queue, worker_options opts) : ex_(ex) {
  if (queue.empty())
    throw std::invalid_argument("asio_futures::redis::worker: empty queue name");
  if (opts.concurrency == 0)
    throw std::invalid_argument("asio_futures::redis::worker: concurrency must be at least 1");
  if (opts.max_attempts < 1)
    throw std::invalid_argument("asio_futures::redis::worker: max_attempts must be at least 1");
  if (opts.visibility_timeout.count() <= 0)
    throw std::invalid_argument("asio_futures::redis::worker: visibility_timeout must be positive");
  if (opts.result_ttl.count() <= 0)
    throw std::invalid_argument("asio_futures::redis::worker: result_ttl must be positive");
  detail::validate(opts.connection);
  impl_ = std::make_shared<detail::worker_impl>(std::move(ex), std::move(ep), std::move(queue),
                                                std::move(opts));
}

worker::~worker() {
  impl_->stop();
}

void worker::handle_bytes(std::string name, bytes_handler h) {
  impl_->handle_bytes(std::move(name), std::move(h));
}

asio::awaitable<void> worker::async_run() {
  return detail::worker_impl::run(impl_);
}

void worker::stop() {
  impl_->stop();
}

std::size_t worker::running() const {
  return impl_->running();
}

std::uint64_t worker::completed() const {
  return impl_->completed();
}

const std::string& worker::consumer() const noexcept {
  return impl_->consumer();
}

} // namespace asio_futures::redis
