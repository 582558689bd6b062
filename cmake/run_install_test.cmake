# cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=... -DCONFIG=... -DGENERATOR=...
#       -DCXX_COMPILER=... [-DCXX_FLAGS=...] -P run_install_test.cmake
#
# The install test (CTest `install_test`):
#   1. cmake --install BUILD_DIR into WORK_DIR/prefix (fresh each run),
#   2. configure and build the consumer project SOURCE_DIR (test/install) against it, with
#      CMAKE_PREFIX_PATH=WORK_DIR/prefix, as an outside project would,
#   3. run the consumer.
# CXX_FLAGS are the library build's CMAKE_CXX_FLAGS (say, an -isystem of other Boost headers),
# so that the consumer sees the same headers the library was compiled with.
foreach(var BUILD_DIR SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_install_test.cmake: ${var} not set")
  endif()
endforeach()
if("${CONFIG}" STREQUAL "")
  set(CONFIG Release)
endif()

set(prefix "${WORK_DIR}/prefix")
set(consumer_build "${WORK_DIR}/build")
file(REMOVE_RECURSE "${prefix}" "${consumer_build}")

function(step what)
  message(STATUS "install_test: ${what}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "install_test: ${what} failed (${result})")
  endif()
endfunction()

step("install into ${prefix}"
  "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}" --config "${CONFIG}")
step("configure the consumer"
  "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${consumer_build}" -G "${GENERATOR}"
    "-DCMAKE_BUILD_TYPE=${CONFIG}"
    "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
    "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
    "-DCMAKE_PREFIX_PATH=${prefix}"
    -DCMAKE_FIND_PACKAGE_PREFER_CONFIG=ON)
step("build the consumer"
  "${CMAKE_COMMAND}" --build "${consumer_build}" --config "${CONFIG}")

find_program(consumer NAMES asio_futures_consumer
  PATHS "${consumer_build}" "${consumer_build}/${CONFIG}" NO_DEFAULT_PATH NO_CACHE REQUIRED)
step("run ${consumer}" "${consumer}")
