//
// src/gather.cpp
//
// Non-template helpers of the combinators.
//
#include <asio_futures/gather.hpp>

namespace asio_futures::detail {

std::string cancel_message_of(const std::exception_ptr& e) noexcept {
  if (!e)
    return {};
  try {
    std::rethrow_exception(e);
  } catch (const cancelled_error& c) {
    try {
      return c.message();
    } catch (...) {
      return {}; // bad_alloc copying the message: cancel without one
    }
  } catch (...) {
    return {};
  }
}

} // namespace asio_futures::detail
