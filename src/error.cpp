//
// src/error.cpp
//
#include <asio_futures/error.hpp>

#include <boost/asio/error.hpp>

#include <string>
#include <string_view>
#include <typeinfo>

namespace asio_futures {

namespace {

// Building a boost::system::system_error formats its what() string (the category's message
// and "[system:125]"): ~150 ns, most of the cost of cancelling a future. Every
// cancelled_error starts as a copy of one prototype instead (std::runtime_error copies share
// the string: ~10 ns); one with a message replaces the text, reusing the formatted suffix.
// Created on first use (thread-safe initialisation of a function-local static) and never
// destroyed: a cancelled_error may be made during static destruction (a context destroyed at
// exit, such as to_thread's default pool, cancels the futures pending on it), possibly after
// a static object constructed later than that context would be gone. A pointer held by a
// static keeps it reachable, so leak checkers do not report it.
const boost::system::system_error& aborted_prototype() {
  static const auto* const prototype =
      new boost::system::system_error(boost::asio::error::operation_aborted, "cancelled");
  return *prototype;
}

/// What follows the prefix in the prototype's what(): ": Operation canceled [system:125]".
const std::string& aborted_suffix() {
  static const auto* const suffix = new std::string(
      std::string(aborted_prototype().what()).substr(std::string_view("cancelled").size()));
  return *suffix;
}

} // namespace

cancelled_error::cancelled_error() : boost::system::system_error(aborted_prototype()) {}

cancelled_error::cancelled_error(std::string message)
    : boost::system::system_error(aborted_prototype()), message_(std::move(message)) {
  // what() is "<message>: Operation canceled [...]", as system_error(code, message) makes.
  if (!message_.empty())
    static_cast<std::runtime_error&>(*this) = std::runtime_error(message_ + aborted_suffix());
}

timeout_error::timeout_error() : timeout_error(std::string("timeout")) {}

timeout_error::timeout_error(const std::string& what_arg)
    : boost::system::system_error(boost::asio::error::timed_out, what_arg), message_(what_arg) {}

queue_shut_down::queue_shut_down() : std::runtime_error("asio_futures: the queue is shut down") {}
queue_empty::queue_empty() : std::runtime_error("asio_futures: the queue is empty") {}
queue_full::queue_full() : std::runtime_error("asio_futures: the queue is full") {}

exception_group::exception_group(std::vector<std::exception_ptr> exceptions)
    : exceptions_(std::move(exceptions)) {
  what_ = std::to_string(exceptions_.size()) +
          (exceptions_.size() == 1 ? " sub-exception" : " sub-exceptions");
  if (!exceptions_.empty())
    what_ += "; first: " + detail::describe(exceptions_.front());
}

namespace detail {

std::exception_ptr make_error_exception(const boost::system::error_code& ec) {
  if (ec == boost::asio::error::operation_aborted)
    return std::make_exception_ptr(cancelled_error());
  return std::make_exception_ptr(boost::system::system_error(ec));
}

std::string describe(const std::exception_ptr& e) {
  if (!e)
    return "no exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown exception (not derived from std::exception)";
  }
}

void throw_invalid_state(const char* what) {
  throw invalid_state_error(what);
}

} // namespace detail
} // namespace asio_futures
