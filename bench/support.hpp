//
// bench/support.hpp
//
// What every benchmark scenario shares: result checks and error reporting.
//
#ifndef ASIO_FUTURES_BENCH_SUPPORT_HPP
#define ASIO_FUTURES_BENCH_SUPPORT_HPP

#include <benchmark/benchmark.h>

#include <exception>
#include <stdexcept>

namespace asio_futures_bench {

/// A benchmark checks every result it measures: throws std::runtime_error(what) unless `ok`.
inline void check(bool ok, const char* what) {
  if (!ok)
    throw std::runtime_error(what);
}

/// Marks the run failed with `error`'s message if there is an error; true if there was.
inline bool skip_on_error(benchmark::State& state, const std::exception_ptr& error) {
  if (!error)
    return false;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  } catch (...) {
    state.SkipWithError("unknown exception");
  }
  return true;
}

} // namespace asio_futures_bench

#endif // ASIO_FUTURES_BENCH_SUPPORT_HPP
