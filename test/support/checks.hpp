// Checks shared by the test files of the library's concepts (task, gather, wait, ...):
//  - holds<E>(eptr), what_of(eptr), cancel_message(eptr), thrown_by(f): inspect outcomes;
//  - recording_exception_handler: installs a recording lost-exception handler for one
//    case and restores the previous handler afterwards;
//  - closable_context: an io_context whose shutdown() is callable (closed-context cases);
//  - watchdog: runs a function from its own thread if not disarmed in time, to release a
//    blocking wait that wrongly blocked (the case then fails instead of hanging);
//  - context_threads: runs an io_context on background threads for one case, with a work
//    guard; leaving the scope stops the context and joins the threads.
// (test/future.cpp predates this header and keeps local copies of the same helpers.)
#ifndef ASIO_FUTURES_TEST_SUPPORT_CHECKS_HPP
#define ASIO_FUTURES_TEST_SUPPORT_CHECKS_HPP

#include <asio_futures/error.hpp>
#include <asio_futures/future.hpp>

#include "support/co_test.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace asio_futures_test {

namespace asio = boost::asio;

/// A token that lives exactly as long as `f`'s state while `f` stays pending: a done-callback
/// holds it, and a pending state destroys its callbacks when it dies. (The callback makes the
/// state *observed*: do not use it on a combinator result whose abandonment is under test.)
template <class T> std::weak_ptr<int> lifetime_of(const asio_futures::future<T>& f) {
  auto token = std::make_shared<int>(0);
  f.add_done_callback([token](asio_futures::future<T>) {});
  return token;
}

/// True if `e` holds an exception of type E (or derived from it).
template <class E> bool holds(const std::exception_ptr& e) {
  if (!e)
    return false;
  try {
    std::rethrow_exception(e);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

/// The what() of the exception in `e` ("" if none or not a std::exception).
inline std::string what_of(const std::exception_ptr& e) {
  if (!e)
    return {};
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return {};
  }
}

/// The cancel message of the cancelled_error in `e`, or nullopt if it is not one.
inline std::optional<std::string> cancel_message(const std::exception_ptr& e) {
  if (!e)
    return std::nullopt;
  try {
    std::rethrow_exception(e);
  } catch (const asio_futures::cancelled_error& c) {
    return c.message();
  } catch (...) {
    return std::nullopt;
  }
}

/// Runs `f` and returns what it threw (nullptr if nothing).
template <class F> std::exception_ptr thrown_by(F&& f) {
  try {
    std::forward<F>(f)();
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

/// Installs a recording lost-exception handler for its lifetime, then restores the
/// previous one. Reports may arrive from any thread.
class recording_exception_handler {
public:
  struct report {
    std::exception_ptr error;
    std::string what;
  };

  recording_exception_handler() {
    previous_ =
        asio_futures::set_exception_handler([this](std::exception_ptr e, std::string_view w) {
          std::lock_guard<std::mutex> lock(mutex_);
          reports_.push_back({std::move(e), std::string(w)});
        });
  }
  ~recording_exception_handler() { asio_futures::set_exception_handler(std::move(previous_)); }
  recording_exception_handler(const recording_exception_handler&) = delete;
  recording_exception_handler& operator=(const recording_exception_handler&) = delete;

  std::size_t count() {
    std::lock_guard<std::mutex> lock(mutex_);
    return reports_.size();
  }
  std::vector<report> reports() {
    std::lock_guard<std::mutex> lock(mutex_);
    return reports_;
  }

private:
  std::mutex mutex_;
  std::vector<report> reports_;
  asio_futures::exception_handler previous_;
};

/// Spawns `body(ex)` on a fresh io_context (on a strand of it if `on_strand`), runs it until
/// it suspends, then destroys the context with the coroutine suspended: the shutdown path
/// that must free the coroutine frame and everything only it referenced.
template <class Body> void destroy_context_while_suspended(Body body, bool on_strand = false) {
  asio::io_context ioc;
  if (on_strand) {
    auto st = asio::make_strand(ioc);
    asio::co_spawn(st, body(asio::any_io_executor(st)), asio::detached);
  } else {
    asio::co_spawn(ioc, body(asio::any_io_executor(ioc.get_executor())), asio::detached);
  }
  poll(ioc);
}

/// True if every token (lifetime_of) has expired.
inline bool all_expired(const std::vector<std::weak_ptr<int>>& tokens) {
  for (const auto& t : tokens)
    if (!t.expired())
      return false;
  return true;
}

/// An io_context whose shutdown() is callable, to test closed contexts.
struct closable_context : asio::io_context {
  using asio::execution_context::shutdown;
};

/// Calls `on_expiry` from its own thread after `timeout`, unless destroyed first.
class watchdog {
public:
  explicit watchdog(std::function<void()> on_expiry,
                    std::chrono::steady_clock::duration timeout = default_timeout)
      : thread_([this, f = std::move(on_expiry), timeout] {
          std::unique_lock<std::mutex> lock(mutex_);
          if (!cv_.wait_for(lock, timeout, [this] { return disarmed_; })) {
            lock.unlock();
            fired_ = true;
            f();
          }
        }) {}
  ~watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      disarmed_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  bool fired() const noexcept { return fired_; }

private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool disarmed_ = false;
  std::atomic<bool> fired_{false};
  std::thread thread_;
};

/// Runs `ioc.run()` on `n` background threads while it lives (a work guard keeps them
/// running). The destructor stops the context and joins: it never waits for pending work,
/// so a failed case cannot hang here. Declare it after what its handlers use.
class context_threads {
public:
  explicit context_threads(asio::io_context& ioc, int n = 1)
      : ioc_(ioc), work_(asio::make_work_guard(ioc)) {
    for (int i = 0; i < n; ++i)
      threads_.emplace_back([this] { ioc_.run(); });
  }
  ~context_threads() {
    work_.reset();
    ioc_.stop();
    for (auto& t : threads_)
      t.join();
  }
  context_threads(const context_threads&) = delete;
  context_threads& operator=(const context_threads&) = delete;

  /// True if one of the threads is the calling thread.
  bool contains(std::thread::id id) const {
    for (const auto& t : threads_)
      if (t.get_id() == id)
        return true;
    return false;
  }

private:
  asio::io_context& ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
};

} // namespace asio_futures_test

#endif // ASIO_FUTURES_TEST_SUPPORT_CHECKS_HPP
