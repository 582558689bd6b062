//
// asio_futures/error.hpp
//
// The exceptions this library raises.
//
#ifndef ASIO_FUTURES_ERROR_HPP
#define ASIO_FUTURES_ERROR_HPP

#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>

#include <cstddef>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace asio_futures {

/// Raised by `result()`, `get()` or an await of a cancelled future or task.
///
/// It *is* a `boost::system::system_error` with code `asio::error::operation_aborted`,
/// so Asio code that already handles aborted operations handles our cancellations.
/// `message()` is the message passed to `cancel(msg)` (empty if none).
class cancelled_error : public boost::system::system_error {
public:
  cancelled_error();
  explicit cancelled_error(std::string message);

  /// The cancel message (asyncio's `CancelledError.args[0]`), empty if none was given.
  const std::string& message() const noexcept { return message_; }

private:
  std::string message_;
};

/// Raised on misuse: setting a done future, reading a pending one, calling anything on an
/// empty handle, blocking on a future from its own executor's thread, or using a context
/// that has shut down.
class invalid_state_error : public std::logic_error {
public:
  using std::logic_error::logic_error;
};

/// Raised when `wait_for`, `as_completed`, `timeout`, `timeout_at` or a `timeout_scope`
/// expire. It is a `boost::system::system_error` with code `asio::error::timed_out` (so code
/// that catches Asio's timeouts catches it), but `what()` is only the message given (e.g.
/// "asio_futures::timeout: timed out"), without the system's "Connection timed out" text.
class timeout_error : public boost::system::system_error {
public:
  /// what() is "timeout".
  timeout_error();
  explicit timeout_error(const std::string& what_arg);

  const char* what() const noexcept override { return message_.what(); }

private:
  std::runtime_error message_; // a reference-counted string: copies never throw
};

/// Raised by a task group's join when children failed: every non-cancellation failure, in
/// completion order.
class exception_group : public std::exception {
public:
  explicit exception_group(std::vector<std::exception_ptr> exceptions);

  const std::vector<std::exception_ptr>& exceptions() const noexcept { return exceptions_; }

  /// "N sub-exception(s); first: <what of the first>".
  const char* what() const noexcept override { return what_.c_str(); }

  /// The first exception of type `E` (or derived from it), or nullptr.
  template <class E> const E* find() const noexcept {
    for (const auto& e : exceptions_) {
      try {
        std::rethrow_exception(e);
      } catch (const E& x) {
        return &x;
      } catch (...) {
      }
    }
    return nullptr;
  }

  /// True if one of the exceptions is of type `E` (or derived from it).
  template <class E> bool contains() const noexcept { return find<E>() != nullptr; }

private:
  std::vector<std::exception_ptr> exceptions_;
  std::string what_;
};

/// Raised by a queue's puts after `shutdown()`, and by its gets once it is shut down and
/// empty (Python 3.13's QueueShutDown).
class queue_shut_down : public std::runtime_error {
public:
  queue_shut_down();
  using std::runtime_error::runtime_error;
};

/// Raised by a queue's `get_nowait()` when it is empty (asyncio.QueueEmpty).
class queue_empty : public std::runtime_error {
public:
  queue_empty();
  using std::runtime_error::runtime_error;
};

/// Raised by a queue's `put_nowait()` when it is full (asyncio.QueueFull).
class queue_full : public std::runtime_error {
public:
  queue_full();
  using std::runtime_error::runtime_error;
};

namespace detail {

/// The one place where an Asio error code becomes an exception: `operation_aborted`
/// becomes `cancelled_error`, anything else `boost::system::system_error`.
std::exception_ptr make_error_exception(const boost::system::error_code& ec);

/// Best-effort description of an exception (its `what()`), for reporting.
std::string describe(const std::exception_ptr& e);

[[noreturn]] void throw_invalid_state(const char* what);

} // namespace detail
} // namespace asio_futures

#endif // ASIO_FUTURES_ERROR_HPP
