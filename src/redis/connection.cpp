// asio_futures::redis::connection: hiredis's async context on an Asio strand.
//
// hiredis tells its event loop what to watch through five hooks (addRead, delRead,
// addWrite, delWrite, cleanup); here they arm `async_wait`s of a `posix::stream_descriptor`
// over hiredis's socket. hiredis owns that socket (redisFree closes it), so the descriptor is
// `release()`d, never closed, when hiredis cleans up. Every call into hiredis runs on the
// connection's strand; hiredis calls back into us only from inside those calls.
#include <asio_futures/redis/connection.hpp>

#include <asio_futures/error.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <utility>

namespace asio_futures::redis {

const std::string& reply::as_string() const {
  if (type != kind::string && type != kind::status)
    throw server_error("asio_futures::redis: expected a string reply");
  return str;
}

long long reply::as_integer() const {
  if (type != kind::integer)
    throw server_error("asio_futures::redis: expected an integer reply");
  return integer;
}

namespace detail {

namespace {

reply convert(const redisReply* r) {
  reply out;
  switch (r->type) {
  case REDIS_REPLY_STRING:
    out.type = reply::kind::string;
    out.str.assign(r->str, r->len);
    break;
  case REDIS_REPLY_STATUS:
    out.type = reply::kind::status;
    out.str.assign(r->str, r->len);
    break;
  case REDIS_REPLY_ERROR:
    out.type = reply::kind::error;
    out.str.assign(r->str, r->len);
    break;
  case REDIS_REPLY_INTEGER:
    out.type = reply::kind::integer;
    out.integer = r->integer;
    break;
  case REDIS_REPLY_ARRAY:
    out.type = reply::kind::array;
    out.elements.reserve(r->elements);
    for (std::size_t i = 0; i < r->elements; ++i)
      out.elements.push_back(convert(r->element[i]));
    break;
  default:
    out.type = reply::kind::nil;
  }
  return out;
}

/// The strand the connection's work runs on: the given executor itself when it already is a
/// strand (a job_queue's or worker's: their connections then share it, and a command issued
/// from it is sent at once instead of through a second strand), a new strand of it otherwise.
asio::strand<asio::any_io_executor> serialized(const asio::any_io_executor& ex) {
  if (const auto* s = ex.target<asio::strand<asio::any_io_executor>>())
    return *s;
  return asio::make_strand(ex);
}

void append_header(std::string& out, char kind, std::size_t n) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
  out += kind;
  out.append(digits, end);
  out += "\r\n";
}

/// A command in RESP, the form hiredis sends: `*<argc>\r\n`, then `$<len>\r\n<bytes>\r\n`
/// per argument. Formatting once, on the caller's thread, spares the strand a copy of the
/// arguments and hiredis its own (printf-style) formatting.
template <class Range> std::string format_command(const Range& args) {
  std::size_t size = 16;
  std::size_t argc = 0;
  for (const auto& a : args) {
    size += a.size() + 16;
    ++argc;
  }
  std::string out;
  out.reserve(size);
  append_header(out, '*', argc);
  for (const auto& a : args) {
    append_header(out, '$', a.size());
    out.append(a.data(), a.size());
    out += "\r\n";
  }
  return out;
}

std::exception_ptr lost_error() {
  return std::make_exception_ptr(
      connection_error("asio_futures::redis: connection lost with the command pending"));
}

std::exception_ptr closed_error() {
  return std::make_exception_ptr(connection_error("asio_futures::redis: connection closed"));
}

} // namespace

class connection_impl : public std::enable_shared_from_this<connection_impl> {
public:
  connection_impl(asio::any_io_executor ex, endpoint ep, connection_options opts)
      : user_ex_(ex), strand_(serialized(ex)), ep_(std::move(ep)), opts_(std::move(opts)),
        sd_(strand_), retry_(strand_), health_(strand_), backoff_(opts_.initial_backoff) {}

  ~connection_impl() {
    destroying_ = true;
    if (ac_)
      redisAsyncFree(ac_); // fails the sent commands, then cleanup() releases the descriptor
    fail_waiting(closed_error());
  }

  void start() {
    asio::dispatch(strand_, [self = shared_from_this()] { self->connect(); });
  }

  /// `cmd` formatted by format_command (not empty). hiredis reads the byte after the last
  /// argument while it looks at the command's name: std::string's terminating NUL.
  future<reply> command(std::string cmd) {
    if (closed_.load(std::memory_order_acquire))
      ::asio_futures::detail::throw_invalid_state(
          "asio_futures::redis::connection::command: connection closed");
    if (subscriber_.load(std::memory_order_acquire))
      ::asio_futures::detail::throw_invalid_state(
          "asio_futures::redis::connection::command: a subscribed connection takes no commands");
    future<reply> f(user_ex_);
    asio::dispatch(strand_, [self = shared_from_this(), cmd = std::move(cmd), f]() mutable {
      if (self->closed_.load(std::memory_order_relaxed))
        f.try_set_exception(closed_error());
      else if (self->ready_)
        self->send(cmd, f);
      else
        self->waiting_.emplace_back(std::move(cmd), f);
    });
    return f;
  }

  future<void> subscribe(std::string channel) {
    if (channel.empty())
      throw std::invalid_argument("asio_futures::redis::connection::subscribe: empty channel");
    if (closed_.load(std::memory_order_acquire))
      ::asio_futures::detail::throw_invalid_state(
          "asio_futures::redis::connection::subscribe: connection closed");
    subscriber_.store(true, std::memory_order_release);
    future<void> f(user_ex_);
    asio::dispatch(strand_, [self = shared_from_this(), channel = std::move(channel), f] {
      if (self->closed_.load(std::memory_order_relaxed)) {
        f.try_set_exception(closed_error());
        return;
      }
      self->sub_waiters_[channel].push_back(f);
      if (std::find(self->channels_.begin(), self->channels_.end(), channel) ==
          self->channels_.end()) {
        self->channels_.push_back(channel);
        if (self->ready_)
          self->send_subscribe(channel);
      } else if (self->ready_ && !self->unconfirmed_.contains(channel)) {
        self->complete_subscribers(channel);
      }
    });
    return f;
  }

  void set_message_handler(connection::message_handler h) {
    asio::dispatch(strand_, [self = shared_from_this(), h = std::move(h)]() mutable {
      self->on_message_ = std::move(h);
    });
  }

  void set_connect_handler(connection::connect_handler h) {
    asio::dispatch(strand_, [self = shared_from_this(), h = std::move(h)]() mutable {
      self->on_connect_ = std::move(h);
    });
  }

  bool connected() const { return ready_flag_.load(std::memory_order_acquire); }
  std::uint64_t connections() const { return connections_.load(std::memory_order_relaxed); }
  std::uint64_t health_failures() const { return health_failures_.load(std::memory_order_relaxed); }
  std::uint64_t health_checks() const { return health_checks_.load(std::memory_order_relaxed); }

  void close() {
    if (closed_.exchange(true, std::memory_order_acq_rel))
      return;
    asio::dispatch(strand_, [self = shared_from_this()] {
      self->retry_.cancel();
      self->health_.cancel();
      self->set_ready(false);
      self->fail_waiting(closed_error());
      if (self->ac_)
        redisAsyncFree(self->ac_);
    });
  }

  asio::any_io_executor get_executor() const { return user_ex_; }

private:
  // What a hiredis callback's privdata points to: one per command (the subscription
  // callback uses the connection itself as privdata).
  struct pending {
    enum class kind { user, handshake, handshake_last } type;
    future<reply> f;
    connection_impl* self;
    std::uint64_t generation;
  };

  void set_ready(bool r) {
    ready_ = r;
    ready_flag_.store(r, std::memory_order_release);
  }

  // --- connecting -------------------------------------------------------------------------
  void connect() {
    if (closed_.load(std::memory_order_relaxed))
      return;
    redisAsyncContext* ac = redisAsyncConnect(ep_.host.c_str(), ep_.port);
    if (!ac || ac->err) {
      if (ac)
        redisAsyncFree(ac);
      schedule_retry();
      return;
    }
    ac_ = ac;
    ++generation_;
    ac->data = this;
    ac->ev.data = this;
    ac->ev.addRead = [](void* p) { static_cast<connection_impl*>(p)->want(read_, true); };
    ac->ev.delRead = [](void* p) { static_cast<connection_impl*>(p)->want(read_, false); };
    ac->ev.addWrite = [](void* p) { static_cast<connection_impl*>(p)->want(write_, true); };
    ac->ev.delWrite = [](void* p) { static_cast<connection_impl*>(p)->want(write_, false); };
    ac->ev.cleanup = [](void* p) { static_cast<connection_impl*>(p)->cleanup(); };
    boost::system::error_code ec;
    sd_.assign(ac->c.fd, ec);
    if (ec) {
      redisAsyncFree(ac); // cleanup() schedules the retry
      return;
    }
    set_keepalive(ac->c.fd);
    // Connecting and the handshake must be done within connect_timeout (a server that
    // accepts but never answers, or a peer gone silent meanwhile): then retry.
    health_.expires_after(opts_.connect_timeout);
    health_.async_wait(
        [self = shared_from_this(), gen = generation_](boost::system::error_code ec) {
          if (!ec && gen == self->generation_ && self->ac_ && !self->ready_)
            self->declare_dead();
        });
    // A non-blocking connect completes when the socket becomes writable.
    want(write_, true);

    // The handshake: AUTH, SELECT, CLIENT SETNAME, then PING marks the end.
    std::vector<std::vector<std::string>> steps;
    if (!ep_.password.empty()) {
      if (ep_.username.empty())
        steps.push_back({"AUTH", ep_.password});
      else
        steps.push_back({"AUTH", ep_.username, ep_.password});
    }
    if (ep_.db != 0)
      steps.push_back({"SELECT", std::to_string(ep_.db)});
    if (!opts_.client_name.empty())
      steps.push_back({"CLIENT", "SETNAME", opts_.client_name});
    steps.push_back({"PING"});
    for (std::size_t i = 0; i < steps.size(); ++i) {
      auto* p = new pending{i + 1 == steps.size() ? pending::kind::handshake_last
                                                  : pending::kind::handshake,
                            {},
                            this,
                            generation_};
      if (!send_raw(format_command(steps[i]), p))
        return; // the context failed: cleanup() schedules the retry
    }
  }

  void set_keepalive(int fd) {
    if (opts_.keepalive_idle.count() == 0)
      return;
    // Best effort: a socket option the system refuses leaves its default (the health check
    // still covers a subscriber).
    const int on = 1;
    const int idle = static_cast<int>(opts_.keepalive_idle.count());
    const int intvl = static_cast<int>(opts_.keepalive_interval.count());
    const int cnt = opts_.keepalive_count;
    const auto user_timeout = static_cast<unsigned>(
        (opts_.keepalive_idle + opts_.keepalive_interval * opts_.keepalive_count).count() * 1000);
    (void)::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
  }

  /// The current connection is not answering: drop it (cleanup() schedules the retry; the
  /// commands sent on it fail with connection_error, as for any lost connection).
  void declare_dead() {
    health_failures_.fetch_add(1, std::memory_order_relaxed);
    if (ac_)
      redisAsyncFree(ac_);
  }

  // --- health check of a subscribed connection --------------------------------------------
  // health_check_interval after the last answer: SUBSCRIBE one of our channels again (the
  // server confirms it, whatever hiredis version routes the reply); with no reply from the
  // server at all within health_check_timeout the connection is declared dead.
  void arm_health() {
    if (opts_.health_check_interval.count() == 0) {
      health_.cancel();
      return;
    }
    health_.expires_after(opts_.health_check_interval);
    health_.async_wait(
        [self = shared_from_this(), gen = generation_](boost::system::error_code ec) {
          if (!ec)
            self->probe(gen);
        });
  }

  void probe(std::uint64_t gen) {
    if (gen != generation_ || !ac_ || !ready_ || closed_.load(std::memory_order_relaxed))
      return;
    if (channels_.empty() || !unconfirmed_.empty()) {
      arm_health(); // not (yet) a subscriber, or subscribing right now: nothing to check
      return;
    }
    probe_outstanding_ = true;
    send_subscribe(channels_.front());
    health_.expires_after(opts_.health_check_timeout);
    health_.async_wait([self = shared_from_this(), gen](boost::system::error_code ec) {
      if (ec || gen != self->generation_ || !self->ac_)
        return;
      if (self->probe_outstanding_)
        self->declare_dead();
      else
        self->arm_health();
    });
  }

  void schedule_retry() {
    if (closed_.load(std::memory_order_relaxed))
      return;
    retry_.expires_after(backoff_);
    backoff_ = std::min(backoff_ * 2, opts_.max_backoff);
    retry_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec)
        self->connect();
    });
  }

  void handshake_done(std::uint64_t gen) {
    if (gen != generation_ || !ac_)
      return;
    backoff_ = opts_.initial_backoff;
    set_ready(true);
    connections_.fetch_add(1, std::memory_order_relaxed);
    arm_health(); // also ends the connect timeout
    if (!channels_.empty()) {
      unconfirmed_ = std::set<std::string>(channels_.begin(), channels_.end());
      resubscribing_ = true;
      for (const auto& c : channels_)
        send_subscribe(c);
    } else {
      if (on_connect_)
        on_connect_();
    }
    auto waiting = std::move(waiting_);
    waiting_.clear();
    for (auto& [cmd, f] : waiting) {
      if (!ready_) { // the connect handler closed us, or the context failed meanwhile
        waiting_.emplace_back(std::move(cmd), f);
        continue;
      }
      send(cmd, f);
    }
    if (closed_.load(std::memory_order_relaxed))
      fail_waiting(closed_error());
  }

  void handshake_failed(std::uint64_t gen) {
    // A refused AUTH or SELECT: drop this connection and retry with backoff (the password
    // may be fixed on the server meanwhile); waiting commands keep waiting.
    if (gen != generation_ || !ac_)
      return;
    redisAsyncFree(ac_); // cleanup() schedules the retry
  }

  // --- commands ---------------------------------------------------------------------------
  bool send_raw(const std::string& cmd, pending* p) {
    if (!ac_ || redisAsyncFormattedCommand(ac_, &on_reply, p, cmd.data(), cmd.size()) != REDIS_OK) {
      if (p->type == pending::kind::user)
        p->f.try_set_exception(lost_error());
      delete p;
      return false;
    }
    return true;
  }

  void send(const std::string& cmd, const future<reply>& f) {
    send_raw(cmd, new pending{pending::kind::user, f, this, generation_});
  }

  void send_subscribe(const std::string& channel) {
    const char* argv[] = {"SUBSCRIBE", channel.data()};
    const std::size_t lens[] = {9, channel.size()};
    redisAsyncCommandArgv(ac_, &on_subscription, this, 2, argv, lens);
  }

  static void on_reply(redisAsyncContext*, void* r, void* privdata) {
    std::unique_ptr<pending> p(static_cast<pending*>(privdata));
    const auto* rep = static_cast<const redisReply*>(r);
    switch (p->type) {
    case pending::kind::user:
      if (!rep)
        p->f.try_set_exception(lost_error());
      else if (rep->type == REDIS_REPLY_ERROR)
        p->f.try_set_exception(
            std::make_exception_ptr(server_error(std::string(rep->str, rep->len))));
      else
        p->f.try_set_result(convert(rep));
      return;
    case pending::kind::handshake:
    case pending::kind::handshake_last:
      if (!rep || p->self->destroying_)
        return;
      // Continue on a later turn of the strand, outside hiredis's read loop.
      if (rep->type == REDIS_REPLY_ERROR) {
        asio::post(p->self->strand_, [self = p->self->shared_from_this(), gen = p->generation] {
          self->handshake_failed(gen);
        });
      } else if (p->type == pending::kind::handshake_last) {
        asio::post(p->self->strand_, [self = p->self->shared_from_this(), gen = p->generation] {
          self->handshake_done(gen);
        });
      }
      return;
    }
  }

  static void on_subscription(redisAsyncContext*, void* r, void* privdata) {
    auto* self = static_cast<connection_impl*>(privdata);
    const auto* rep = static_cast<const redisReply*>(r);
    if (!rep || self->destroying_)
      return;
    if (self->probe_outstanding_) { // the server answers (we are on the strand)
      self->probe_outstanding_ = false;
      self->health_checks_.fetch_add(1, std::memory_order_relaxed);
      self->arm_health(); // the next probe an interval from now (replaces the timeout)
    }
    if (rep->type == REDIS_REPLY_ERROR) { // a refused SUBSCRIBE (where hiredis passes it on)
      asio::post(self->strand_, [s = self->shared_from_this(), gen = self->generation_,
                                 msg = std::string(rep->str, rep->len)] {
        if (gen != s->generation_ || !s->ready_)
          return;
        s->subscription_refused(msg);
        if (s->resubscribing_) {
          s->resubscribing_ = false;
          if (s->on_connect_)
            s->on_connect_();
        }
      });
      return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3)
      return;
    const auto* kind = rep->element[0];
    const auto* chan = rep->element[1];
    const auto* payload = rep->element[2];
    if (kind->type != REDIS_REPLY_STRING || chan->type != REDIS_REPLY_STRING)
      return;
    std::string_view k(kind->str, kind->len);
    std::string channel(chan->str, chan->len);
    if (k == "message" && payload->type == REDIS_REPLY_STRING) {
      asio::post(self->strand_, [s = self->shared_from_this(), channel = std::move(channel),
                                 msg = std::string(payload->str, payload->len)] {
        if (s->on_message_ && !s->closed_.load(std::memory_order_relaxed))
          s->on_message_(channel, msg);
      });
    } else if (k == "subscribe") {
      asio::post(self->strand_, [s = self->shared_from_this(), gen = self->generation_,
                                 channel = std::move(channel)] { s->confirmed(gen, channel); });
    }
  }

  void confirmed(std::uint64_t gen, const std::string& channel) {
    if (gen != generation_ || !ready_)
      return;
    unconfirmed_.erase(channel);
    complete_subscribers(channel);
    if (resubscribing_ && unconfirmed_.empty()) {
      resubscribing_ = false;
      if (on_connect_)
        on_connect_();
    }
  }

  void complete_subscribers(const std::string& channel) {
    auto it = sub_waiters_.find(channel);
    if (it == sub_waiters_.end())
      return;
    for (auto& f : it->second)
      f.try_set_result();
    sub_waiters_.erase(it);
  }

  void fail_waiting(const std::exception_ptr& e) {
    auto waiting = std::move(waiting_);
    waiting_.clear();
    for (auto& w : waiting)
      w.second.try_set_exception(e);
    auto subs = std::move(sub_waiters_);
    sub_waiters_.clear();
    for (auto& [channel, fs] : subs)
      for (auto& f : fs)
        f.try_set_exception(e);
  }

  // --- hiredis's event hooks --------------------------------------------------------------
  struct direction {
    bool wanted = false;
    bool armed = false;
  };
  static constexpr int read_ = 0;
  static constexpr int write_ = 1;

  void want(int d, bool on) {
    dir_[d].wanted = on;
    if (on)
      arm(d);
  }

  void arm(int d) {
    if (dir_[d].armed || destroying_ || !sd_.is_open())
      return;
    dir_[d].armed = true;
    sd_.async_wait(d == read_ ? asio::posix::stream_descriptor::wait_read
                              : asio::posix::stream_descriptor::wait_write,
                   [self = shared_from_this(), d, gen = generation_](boost::system::error_code ec) {
                     self->ready_to(d, gen, ec);
                   });
  }

  void ready_to(int d, std::uint64_t gen, boost::system::error_code ec) {
    if (gen != generation_ || !ac_)
      return; // a wait of a context that is gone
    dir_[d].armed = false;
    if (ec || !dir_[d].wanted)
      return;
    if (d == read_)
      redisAsyncHandleRead(ac_);
    else
      redisAsyncHandleWrite(ac_);
    // hiredis may have freed the context (cleanup() bumped the generation).
    if (gen == generation_ && ac_ && dir_[d].wanted)
      arm(d);
  }

  /// The server refused a SUBSCRIBE (-NOPERM of an ACL, …): the channels not confirmed yet
  /// are dropped (Redis does not say which one it refused) and their futures fail.
  void subscription_refused(const std::string& message) {
    auto e = std::make_exception_ptr(server_error(message));
    for (const auto& c : unconfirmed_) {
      std::erase(channels_, c);
      if (auto it = sub_waiters_.find(c); it != sub_waiters_.end()) {
        for (auto& f : it->second)
          f.try_set_exception(e);
        sub_waiters_.erase(it);
      }
    }
    unconfirmed_.clear();
  }

  void cleanup() {
    // hiredis 0.14 takes an error reply that no command waits for (the answer to a
    // SUBSCRIBE) for a fatal one and drops the connection: report it as the refusal it is.
    if (ac_ && !destroying_ && ac_->c.err == REDIS_ERR_OTHER && !unconfirmed_.empty())
      subscription_refused(ac_->c.errstr);
    // hiredis is freeing the context and will close the socket itself.
    if (sd_.is_open())
      sd_.release(); // also cancels our waits
    ac_ = nullptr;
    ++generation_;
    dir_[read_] = {};
    dir_[write_] = {};
    set_ready(false);
    probe_outstanding_ = false;
    if (!destroying_)
      health_.cancel();
    if (destroying_)
      return;
    unconfirmed_.clear();
    resubscribing_ = false;
    schedule_retry();
  }

  asio::any_io_executor user_ex_;
  asio::strand<asio::any_io_executor> strand_;
  endpoint ep_;
  connection_options opts_;
  asio::posix::stream_descriptor sd_;
  asio::steady_timer retry_;
  asio::steady_timer health_; // connect timeout, then the health check's period and timeout
  std::chrono::milliseconds backoff_;

  // Strand-only state.
  redisAsyncContext* ac_ = nullptr;
  std::uint64_t generation_ = 0; // bumped per hiredis context: stale waits and replies see it
  direction dir_[2];
  bool ready_ = false;
  bool destroying_ = false;
  bool resubscribing_ = false;
  bool probe_outstanding_ = false; // a health-check SUBSCRIBE sent, nothing heard since
  std::deque<std::pair<std::string, future<reply>>> waiting_; // formatted commands
  std::vector<std::string> channels_;
  std::set<std::string> unconfirmed_;
  std::map<std::string, std::vector<future<void>>> sub_waiters_;
  connection::message_handler on_message_;
  connection::connect_handler on_connect_;

  // Any thread.
  std::atomic<bool> closed_{false};
  std::atomic<bool> subscriber_{false};
  std::atomic<bool> ready_flag_{false};
  std::atomic<std::uint64_t> connections_{0};
  std::atomic<std::uint64_t> health_failures_{0};
  std::atomic<std::uint64_t> health_checks_{0};
};

void validate(const connection_options& o) {
  auto bad = [](const char* what) {
    throw std::invalid_argument(std::string("asio_futures::redis::connection_options: ") + what);
  };
  if (o.initial_backoff.count() < 0 || o.max_backoff.count() < 0)
    bad("negative backoff");
  if (o.connect_timeout.count() <= 0)
    bad("connect_timeout must be positive");
  if (o.health_check_interval.count() < 0)
    bad("negative health_check_interval");
  if (o.health_check_interval.count() > 0 && o.health_check_timeout.count() <= 0)
    bad("health_check_timeout must be positive when health checks are on");
  if (o.keepalive_idle.count() < 0)
    bad("negative keepalive_idle");
  if (o.keepalive_idle.count() > 0 && (o.keepalive_interval.count() <= 0 || o.keepalive_count <= 0))
    bad("keepalive_interval and keepalive_count must be positive when keepalive is on");
  // Linux's limits (TCP_KEEPIDLE/TCP_KEEPINTVL at most 32767 s, TCP_KEEPCNT at most 127): a
  // value setsockopt would refuse is an error here rather than silently the system default.
  if (o.keepalive_idle.count() > 32767 || o.keepalive_interval.count() > 32767 ||
      o.keepalive_count > 127)
    bad("keepalive_idle and keepalive_interval must be at most 32767 s, keepalive_count at "
        "most 127");
}

} // namespace detail

connection::connection(executor_type ex, endpoint ep)
    : connection(std::move(ex), std::move(ep), connection_options{}) {}

connection::connection(executor_type ex, endpoint ep, connection_options opts)
    : impl_((detail::validate(opts), std::make_shared<detail::connection_impl>(
                                         std::move(ex), std::move(ep), std::move(opts)))) {
  impl_->start();
}

connection::~connection() {
  impl_->close();
}

namespace {

/// Throws for an empty command, and for those that put a connection in a mode where one
/// command gets many replies (hiredis would call a one-shot callback again and again):
/// subscribe() is the way to subscribe.
template <class Range> void check_command(const Range& args) {
  if (std::size(args) == 0)
    throw std::invalid_argument("asio_futures::redis::connection::command: empty command");
  const std::string_view name(std::data(*std::begin(args)), std::size(*std::begin(args)));
  static constexpr std::string_view refused[] = {"SUBSCRIBE",   "PSUBSCRIBE",   "SSUBSCRIBE",
                                                 "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE",
                                                 "MONITOR"};
  for (std::string_view r : refused)
    if (name.size() == r.size() &&
        std::equal(name.begin(), name.end(), r.begin(),
                   [](char a, char b) { return std::toupper(static_cast<unsigned char>(a)) == b; }))
      throw std::invalid_argument("asio_futures::redis::connection::command: " + std::string(r) +
                                  " is not a command here (use subscribe())");
}

} // namespace

future<reply> connection::command(const std::vector<std::string>& args) {
  check_command(args);
  return impl_->command(detail::format_command(args));
}

future<reply> connection::command(std::initializer_list<std::string_view> args) {
  check_command(args);
  return impl_->command(detail::format_command(args));
}

future<reply> connection::command(std::span<const std::string_view> args) {
  check_command(args);
  return impl_->command(detail::format_command(args));
}

future<void> connection::subscribe(std::string channel) {
  return impl_->subscribe(std::move(channel));
}

void connection::set_message_handler(message_handler h) {
  impl_->set_message_handler(std::move(h));
}

void connection::set_connect_handler(connect_handler h) {
  impl_->set_connect_handler(std::move(h));
}

bool connection::connected() const {
  return impl_->connected();
}

std::uint64_t connection::connections() const {
  return impl_->connections();
}

std::uint64_t connection::health_failures() const {
  return impl_->health_failures();
}

std::uint64_t connection::health_checks() const {
  return impl_->health_checks();
}

void connection::close() {
  impl_->close();
}

connection::executor_type connection::get_executor() const {
  return impl_->get_executor();
}

} // namespace asio_futures::redis
