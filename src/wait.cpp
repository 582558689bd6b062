//
// src/wait.cpp
//
// Out-of-line parts of wait.hpp: argument checks and the exceptions the combinators raise.
//
#include <asio_futures/wait.hpp>

#include <stdexcept>
#include <string>

namespace asio_futures::detail {

void check_inputs(std::size_t count, bool all_valid, const char* who) {
  if (count == 0)
    throw std::invalid_argument(std::string(who) + ": no futures given");
  if (!all_valid)
    throw_invalid_state((std::string(who) + ": empty future handle among the inputs").c_str());
}

std::exception_ptr make_timeout_error(const char* who) {
  return std::make_exception_ptr(timeout_error(who));
}

std::exception_ptr make_iteration_error(const char* what) {
  return std::make_exception_ptr(invalid_state_error(what));
}

} // namespace asio_futures::detail
