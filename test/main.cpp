// The Boost.Test module of asio_futures_tests. Test cases live in the other test/*.cpp
// files, one top-level suite each (`BOOST_AUTO_TEST_SUITE(<header>_)`); CMake registers one
// CTest test per suite (see test/CMakeLists.txt). This file is compiled without the
// precompiled header so that BOOST_TEST_MODULE is defined before unit_test.hpp is seen.
//
// It also replaces the global operator new/delete for the whole test executable, so that a
// test can make a chosen allocation fail (support/alloc_fault.hpp). Disarmed, they are
// malloc and free (sanitizers still see every block). Asio allocates its handlers' and
// operations' memory with aligned_alloc, not operator new: the C function aligned_alloc is
// replaced too (on glibc the executable's definition takes precedence), with the same
// control, on top of posix_memalign.
#define BOOST_TEST_MODULE asio_futures
#include <boost/test/unit_test.hpp>

#include "support/alloc_fault.hpp"

#include <cstdlib>
#include <new>

namespace {

// Zero-initialised thread_locals: no dynamic initialisation, usable in operator new at any
// point of a thread's life.
thread_local std::size_t fail_countdown = 0;
thread_local bool failure_fired = false;

/// True if this allocation is the one armed to fail.
bool fail_now() noexcept {
  if (fail_countdown != 0 && --fail_countdown == 0) {
    failure_fired = true;
    return true;
  }
  return false;
}

void* allocate(std::size_t n, std::size_t align) {
  if (fail_now())
    throw std::bad_alloc();
  if (n == 0)
    n = 1;
  void* p = nullptr;
  if (align > alignof(std::max_align_t)) {
    if (posix_memalign(&p, align, n) != 0)
      p = nullptr;
  } else {
    p = std::malloc(n);
  }
  if (!p)
    throw std::bad_alloc();
  return p;
}

void* allocate_nothrow(std::size_t n, std::size_t align) noexcept {
  try {
    return allocate(n, align);
  } catch (...) {
    return nullptr;
  }
}

} // namespace

void asio_futures_test::allocation_control::fail_at(std::size_t n) noexcept {
  fail_countdown = n;
  failure_fired = false;
}

bool asio_futures_test::allocation_control::fired() noexcept {
  return failure_fired;
}

extern "C" void* aligned_alloc(std::size_t align, std::size_t n) noexcept {
  if (fail_now())
    return nullptr;
  void* p = nullptr;
  if (align < sizeof(void*))
    align = sizeof(void*);
  return posix_memalign(&p, align, n) == 0 ? p : nullptr;
}

void* operator new(std::size_t n) {
  return allocate(n, 0);
}
void* operator new[](std::size_t n) {
  return allocate(n, 0);
}
void* operator new(std::size_t n, std::align_val_t a) {
  return allocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return allocate(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return allocate_nothrow(n, 0);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return allocate_nothrow(n, 0);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate_nothrow(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate_nothrow(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}
