//
// src/error.cpp
//
#include <asio_futures/error.hpp>

#include <boost/asio/error.hpp>

#include <typeinfo>

namespace asio_futures {

namespace {
boost::system::error_code aborted() {
  return boost::asio::error::operation_aborted;
}
} // namespace

cancelled_error::cancelled_error() : boost::system::system_error(aborted(), "cancelled") {}

cancelled_error::cancelled_error(std::string message)
    : boost::system::system_error(aborted(), message.empty() ? "cancelled" : message),
      message_(std::move(message)) {}

timeout_error::timeout_error()
    : boost::system::system_error(boost::asio::error::timed_out, "timeout") {}

timeout_error::timeout_error(const std::string& what_arg)
    : boost::system::system_error(boost::asio::error::timed_out, what_arg) {}

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
