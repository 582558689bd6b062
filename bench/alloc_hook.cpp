// Malloc-level interposition for bench/footprint.cpp; see alloc_hook.hpp.
//
// Asio allocates through aligned_alloc (its recycling allocator), so a hook on
// operator new alone would see nothing: we replace the C allocation functions.
// libstdc++'s operator new calls malloc/aligned_alloc through the PLT, so it is
// counted here too, once.

#include "alloc_hook.hpp"

#include <cerrno>
#include <cstdlib>
#include <malloc.h>

extern "C" {
// glibc's own implementations, exported for exactly this purpose.
void* __libc_malloc(std::size_t size);
void __libc_free(void* p);
void* __libc_calloc(std::size_t n, std::size_t size);
void* __libc_realloc(void* p, std::size_t size);
void* __libc_memalign(std::size_t alignment, std::size_t size);
void* __libc_valloc(std::size_t size);
void* __libc_pvalloc(std::size_t size);
}

namespace asio_futures_bench {
namespace {

// Constant-initialised thread_locals of the executable use the local-exec TLS
// model: no allocation and no call on access, safe inside malloc itself.
constinit thread_local bool counting = false;
constinit thread_local alloc_counts counted{};

inline void* note_alloc(void* p, std::size_t size) noexcept {
  if (counting && p != nullptr) {
    ++counted.allocs;
    counted.requested_bytes += size;
    counted.usable_bytes += malloc_usable_size(p);
  }
  return p;
}

inline void note_free(void* p) noexcept {
  if (counting && p != nullptr)
    ++counted.frees;
}

} // namespace

counting_scope::counting_scope() {
  counted = alloc_counts{};
  counting = true;
}

counting_scope::~counting_scope() {
  counting = false;
}

alloc_counts counting_scope::counts() const {
  return counted;
}

std::int64_t heap_in_use() {
  const struct mallinfo2 m = mallinfo2();
  return static_cast<std::int64_t>(m.uordblks + m.hblkhd);
}

} // namespace asio_futures_bench

#if ASIO_FUTURES_BENCH_ALLOC_HOOK

using asio_futures_bench::note_alloc;
using asio_futures_bench::note_free;

extern "C" {

void* malloc(std::size_t size) noexcept {
  return note_alloc(__libc_malloc(size), size);
}

void free(void* p) noexcept {
  note_free(p);
  __libc_free(p);
}

void* calloc(std::size_t n, std::size_t size) noexcept {
  return note_alloc(__libc_calloc(n, size), n * size);
}

void* realloc(void* p, std::size_t size) noexcept {
  note_free(p);
  return note_alloc(__libc_realloc(p, size), size);
}

void* aligned_alloc(std::size_t alignment, std::size_t size) noexcept {
  return note_alloc(__libc_memalign(alignment, size), size);
}

void* memalign(std::size_t alignment, std::size_t size) noexcept {
  return note_alloc(__libc_memalign(alignment, size), size);
}

int posix_memalign(void** out, std::size_t alignment, std::size_t size) noexcept {
  if (alignment % sizeof(void*) != 0 || (alignment & (alignment - 1)) != 0)
    return EINVAL;
  void* p = __libc_memalign(alignment, size);
  if (p == nullptr && size != 0)
    return ENOMEM;
  *out = note_alloc(p, size);
  return 0;
}

void* valloc(std::size_t size) noexcept {
  return note_alloc(__libc_valloc(size), size);
}

void* pvalloc(std::size_t size) noexcept {
  return note_alloc(__libc_pvalloc(size), size);
}

} // extern "C"

#endif // ASIO_FUTURES_BENCH_ALLOC_HOOK
