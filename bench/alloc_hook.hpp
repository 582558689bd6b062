// Heap accounting for bench/footprint.cpp.
//
// alloc_hook.cpp defines malloc, free, calloc, realloc, aligned_alloc,
// posix_memalign, memalign, valloc and pvalloc in the benchmark executable. They
// interpose glibc's for the whole process (libstdc++'s operator new, Boost and
// Asio's aligned_alloc-based recycling allocator all end up there) and forward to
// glibc's own implementations (__libc_malloc & co., so no dlsym and no
// recursion). They count only on a thread whose counting_scope is open, so the
// other benchmarks pay one thread-local load per call and nothing else.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// Sanitizer runtimes own malloc: the hooks stand aside and footprint skips.
#define ASIO_FUTURES_BENCH_ALLOC_HOOK 0
#else
#define ASIO_FUTURES_BENCH_ALLOC_HOOK 1
#endif

namespace asio_futures_bench {

/// Whether the malloc-level hooks are compiled in (false under sanitizers).
inline constexpr bool alloc_hook_active = ASIO_FUTURES_BENCH_ALLOC_HOOK != 0;

struct alloc_counts {
  std::size_t allocs = 0;          // successful allocation calls (realloc included)
  std::size_t frees = 0;           // free() of a non-null pointer
  std::size_t requested_bytes = 0; // sizes asked for
  std::size_t usable_bytes = 0;    // malloc_usable_size() of what was returned
};

/// Counts this thread's heap activity from construction to counts().
class counting_scope {
public:
  counting_scope();
  ~counting_scope();
  counting_scope(const counting_scope&) = delete;
  counting_scope& operator=(const counting_scope&) = delete;

  /// What this thread allocated since construction.
  alloc_counts counts() const;
};

/// The process heap's bytes in use (glibc mallinfo2: uordblks + hblkhd, every arena): what
/// the blocks handed out cost, malloc's per-block headers included.
std::int64_t heap_in_use();

} // namespace asio_futures_bench
