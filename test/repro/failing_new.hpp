// The replaceable operator new of the allocation-failure regression programs: the n-th
// allocation from the moment `fail_countdown` is set to n throws std::bad_alloc (0: never).
// Defined in failing_new.cpp, linked into each program that includes this header.
#ifndef ASIO_FUTURES_TEST_REPRO_FAILING_NEW_HPP
#define ASIO_FUTURES_TEST_REPRO_FAILING_NEW_HPP

#include <cstddef>

namespace repro {
extern std::size_t fail_countdown;
} // namespace repro

#endif // ASIO_FUTURES_TEST_REPRO_FAILING_NEW_HPP
