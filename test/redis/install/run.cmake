# cmake -DBUILD_DIR=... -DWORK_DIR=... -DCONFIG=... -DGENERATOR=... -DCXX_COMPILER=...
#       [-DCXX_FLAGS=...] -P test/redis/install/run.cmake
#
# CTest `redis_install_test`: installs BUILD_DIR into WORK_DIR/prefix (fresh each run),
# builds this directory's consumer against it with find_package(asio_futures COMPONENTS
# redis), and runs it.
foreach(var BUILD_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if("${${var}}" STREQUAL "")
    message(FATAL_ERROR "redis_install_test: ${var} not set")
  endif()
endforeach()
if("${CONFIG}" STREQUAL "")
  set(CONFIG Release)
endif()
set(prefix "${WORK_DIR}/prefix")
set(consumer_build "${WORK_DIR}/build")
file(REMOVE_RECURSE "${prefix}" "${consumer_build}")

function(step what)
  message(STATUS "redis_install_test: ${what}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "redis_install_test: ${what} failed (${result})")
  endif()
endfunction()

step("install into ${prefix}"
  "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}" --config "${CONFIG}")
step("configure the consumer"
  "${CMAKE_COMMAND}" -S "${CMAKE_CURRENT_LIST_DIR}" -B "${consumer_build}" -G "${GENERATOR}"
    "-DCMAKE_BUILD_TYPE=${CONFIG}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
    "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" "-DCMAKE_PREFIX_PATH=${prefix}"
    -DCMAKE_FIND_PACKAGE_PREFER_CONFIG=ON)
step("build the consumer" "${CMAKE_COMMAND}" --build "${consumer_build}" --config "${CONFIG}")
step("run the consumer" "${consumer_build}/asio_futures_consumer")
