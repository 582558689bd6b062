# asio_futures_options: the INTERFACE target carrying our own warning and sanitizer flags.
#
# Linked by our tests, benches and examples, and by the library only as
# $<BUILD_INTERFACE:asio_futures_options>, so it is never exported and consumers of the
# installed package never inherit any of these flags. -Werror is not here: presets and CI
# set CMAKE_COMPILE_WARNING_AS_ERROR, which CMake applies to every target of this project.
add_library(asio_futures_options INTERFACE)

if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  target_compile_options(asio_futures_options INTERFACE -Wall -Wextra -Wpedantic)
endif()

# ASIO_FUTURES_SANITIZE: "" | "address,undefined" | "thread" (cache variable, see CMakeLists).
if(ASIO_FUTURES_SANITIZE STREQUAL "address,undefined")
  # -fno-sanitize-recover: any UBSan finding aborts, so CTest sees a failure.
  set(asio_futures_sanitizer_flags
    -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 17)
    # WORKAROUND(clang 14): -fsanitize=function (part of `undefined`) puts prologue data
    # before every function, and for the split functions of a C++20 coroutine the assembler
    # fails with "error: Cannot represent a difference across sections". Clang 17 reworked
    # that check; seen with clang 14 (the fuzz preset).
    list(APPEND asio_futures_sanitizer_flags -fno-sanitize=function)
  endif()
elseif(ASIO_FUTURES_SANITIZE STREQUAL "thread")
  set(asio_futures_sanitizer_flags -fsanitize=thread -fno-omit-frame-pointer)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # WORKAROUND(g++ 12, Boost 1.81): Asio's std_fenced_block calls std::atomic_thread_fence,
    # and g++ warns "'atomic_thread_fence' is not supported with '-fsanitize=thread'"
    # [-Wtsan] at every inlined use (outside the system-header exemption), which
    # -Werror turns into a build failure. TSan ignores fences: Asio's hand-offs are also
    # ordered by its scheduler mutex, but our own code must not rely on standalone fences
    # (use acquire/release operations on the atomics themselves, which TSan understands).
    target_compile_options(asio_futures_options INTERFACE -Wno-tsan)
  endif()
elseif(NOT ASIO_FUTURES_SANITIZE STREQUAL "")
  message(FATAL_ERROR "ASIO_FUTURES_SANITIZE='${ASIO_FUTURES_SANITIZE}': "
    "expected empty, 'address,undefined' or 'thread'")
endif()

# ASIO_FUTURES_BUILD_FUZZER: libFuzzer's coverage instrumentation on everything our targets
# compile, the library included (test/fuzz links the fuzzer itself with -fsanitize=fuzzer).
if(ASIO_FUTURES_BUILD_FUZZER)
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    list(APPEND asio_futures_sanitizer_flags -fsanitize=fuzzer-no-link)
  else()
    message(WARNING "asio_futures: ASIO_FUTURES_BUILD_FUZZER needs clang "
      "(CMAKE_CXX_COMPILER_ID is ${CMAKE_CXX_COMPILER_ID}); the fuzzer is not built")
  endif()
endif()

if(asio_futures_sanitizer_flags)
  target_compile_options(asio_futures_options INTERFACE ${asio_futures_sanitizer_flags})
  target_link_options(asio_futures_options INTERFACE ${asio_futures_sanitizer_flags})
  message(STATUS "asio_futures: sanitizers for tests/benches/examples: ${ASIO_FUTURES_SANITIZE}")
endif()
