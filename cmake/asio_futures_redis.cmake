# The optional Redis component: asio_futures::redis (ASIO_FUTURES_BUILD_REDIS).
#
#   asio_futures_redis           static library from src/redis/*.cpp, headers
#                                include/asio_futures/redis.hpp and include/asio_futures/redis/
#   asio_futures_redis_tests     Boost.Test executable (test/redis), one CTest test per suite;
#                                each case starts its own redis-server (label `redis`)
#   example_distributed_*        examples/distributed (producer, worker, CTest driver)
#   asio_futures_redis_bench     Google Benchmark: job_queue/worker vs a hiredis loop (bench/redis)
#   redis_bench_smoke            CTest: every benchmark once, briefly
#   redis_install_test           a consumer of the installed component (test/redis/install)
#
# hiredis comes from pkg-config (PkgConfig::hiredis, linked privately: the public headers do
# not include it), Boost.JSON from Boost's CMake package (public: `call<R>` and
# `worker::handle` convert with it in the headers). Installed as the package component
# `redis`: find_package(asio_futures CONFIG REQUIRED COMPONENTS redis).
find_package(PkgConfig REQUIRED)
pkg_check_modules(hiredis REQUIRED IMPORTED_TARGET hiredis)
find_package(Boost 1.81 CONFIG REQUIRED COMPONENTS json)

file(GLOB asio_futures_redis_sources CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/src/redis/*.cpp")
add_library(asio_futures_redis STATIC ${asio_futures_redis_sources})
add_library(asio_futures::redis ALIAS asio_futures_redis)
target_include_directories(asio_futures_redis PRIVATE "${PROJECT_SOURCE_DIR}/src/redis")
target_link_libraries(asio_futures_redis
  PUBLIC asio_futures::asio_futures Boost::json
  PRIVATE PkgConfig::hiredis "$<BUILD_INTERFACE:asio_futures_options>")
set_target_properties(asio_futures_redis PROPERTIES
  EXPORT_NAME redis
  OUTPUT_NAME asio_futures_redis
  VERSION ${PROJECT_VERSION})

if(ASIO_FUTURES_BUILD_HEADER_CHECK)
  asio_futures_add_header_check(asio_futures_redis_header_check
    "${PROJECT_SOURCE_DIR}/include/asio_futures" EXCLUDE
    asio_futures.hpp cancel_after.hpp error.hpp future.hpp gather.hpp shield.hpp sleep.hpp
    sync.hpp task.hpp task_group.hpp thread.hpp use_future.hpp wait.hpp
    LINK asio_futures::redis)
endif()

# The tests, the example and the benchmark start their own redis-server: without one, the
# library is still built (it only needs hiredis), they are not.
find_program(ASIO_FUTURES_REDIS_SERVER redis-server)
if(NOT ASIO_FUTURES_REDIS_SERVER AND (ASIO_FUTURES_BUILD_TESTS OR ASIO_FUTURES_BUILD_EXAMPLES
                                      OR ASIO_FUTURES_BUILD_BENCHMARKS))
  message(WARNING "asio_futures: redis-server not found (Debian: redis-server): the Redis "
    "component's tests, example and benchmark are not built")
elseif(ASIO_FUTURES_REDIS_SERVER)
  if(ASIO_FUTURES_BUILD_TESTS)
    add_subdirectory("${PROJECT_SOURCE_DIR}/test/redis" "${PROJECT_BINARY_DIR}/test/redis")
  endif()
  if(ASIO_FUTURES_BUILD_EXAMPLES)
    add_subdirectory("${PROJECT_SOURCE_DIR}/examples/distributed"
      "${PROJECT_BINARY_DIR}/examples/distributed")
  endif()
  if(ASIO_FUTURES_BUILD_BENCHMARKS)
    add_subdirectory("${PROJECT_SOURCE_DIR}/bench/redis" "${PROJECT_BINARY_DIR}/bench/redis")
  endif()
endif()

if(ASIO_FUTURES_INSTALL)
  install(TARGETS asio_futures_redis
    EXPORT asio_futures_redisTargets
    ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}")
  install(FILES include/asio_futures/redis.hpp
    DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/asio_futures")
  install(DIRECTORY include/asio_futures/redis
    DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/asio_futures"
    FILES_MATCHING PATTERN "*.hpp")
  # The package config loads this file only when the `redis` component is requested.
  install(EXPORT asio_futures_redisTargets
    NAMESPACE asio_futures::
    DESTINATION "${CMAKE_INSTALL_LIBDIR}/cmake/asio_futures")
endif()

# The installed component, used by a consumer project (test/redis/install, own driver).
if(ASIO_FUTURES_BUILD_INSTALL_TEST)
  add_test(NAME redis_install_test
    COMMAND "${CMAKE_COMMAND}"
      "-DBUILD_DIR=${PROJECT_BINARY_DIR}"
      "-DWORK_DIR=${PROJECT_BINARY_DIR}/redis-install-test"
      "-DCONFIG=$<CONFIG>"
      "-DGENERATOR=${CMAKE_GENERATOR}"
      "-DCXX_COMPILER=${CMAKE_CXX_COMPILER}"
      "-DCXX_FLAGS=${CMAKE_CXX_FLAGS}"
      -P "${PROJECT_SOURCE_DIR}/test/redis/install/run.cmake")
  set_tests_properties(redis_install_test PROPERTIES TIMEOUT 600 LABELS "install;redis")
endif()
