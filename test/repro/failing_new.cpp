// See failing_new.hpp. In a translation unit of its own, so that g++ never inlines these
// into code that would then see free() of a new-ed pointer (-Wmismatched-new-delete).
#include "failing_new.hpp"

#include <cstdlib>
#include <new>

std::size_t repro::fail_countdown = 0;

void* operator new(std::size_t n) {
  if (repro::fail_countdown != 0 && --repro::fail_countdown == 0)
    throw std::bad_alloc();
  if (void* p = std::malloc(n ? n : 1))
    return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
