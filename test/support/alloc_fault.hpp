// Allocation fault injection for the tests: the test executable replaces the global
// operator new/delete (test/main.cpp) with ones that can be told to fail.
//
//   aft::allocation_fault fault(k); // the k-th operator new from now on, on this thread,
//                                   // throws std::bad_alloc (k >= 1)
//   ...
//   fault.fired()                   // whether it did
//
// Only the arming thread is affected. Asio recycles small blocks per thread (its handlers'
// and coroutine frames' memory): run an operation on a fresh thread to make its first
// allocations reach operator new.
#ifndef ASIO_FUTURES_TEST_SUPPORT_ALLOC_FAULT_HPP
#define ASIO_FUTURES_TEST_SUPPORT_ALLOC_FAULT_HPP

#include <cstddef>

namespace asio_futures_test {

/// The replacement operator new's control, per thread (defined in test/main.cpp).
struct allocation_control {
  /// Arms: the n-th allocation from now throws (0: disarmed).
  static void fail_at(std::size_t n) noexcept;
  /// Whether an armed failure has happened since the last fail_at().
  static bool fired() noexcept;
};

/// Arms allocation_control for its lifetime.
class allocation_fault {
public:
  explicit allocation_fault(std::size_t k) noexcept { allocation_control::fail_at(k); }
  ~allocation_fault() { allocation_control::fail_at(0); }
  allocation_fault(const allocation_fault&) = delete;
  allocation_fault& operator=(const allocation_fault&) = delete;

  bool fired() const noexcept { return allocation_control::fired(); }
};

} // namespace asio_futures_test

#endif // ASIO_FUTURES_TEST_SUPPORT_ALLOC_FAULT_HPP
