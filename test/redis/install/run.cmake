# cmake -DBUILD_DIR=... -DWORK_DIR=... -DCONFIG=... -DGENERATOR=... -DCXX_COMPILER=...
#       [-DCXX_FLAGS=...] -P test/redis/install/run.cmake
#
# CTest `redis_install_test`: installs BUILD_DIR into WORK_DIR/prefix (fresh each run),
# builds this directory's consumer against it with find_package(asio_futures COMPONENTS
# redis), and runs it. Then, as on a machine without hiredis (pkg-config finds nothing):
# find_package(asio_futures OPTIONAL_COMPONENTS redis) must succeed without the component,
# and find_package(asio_futures REQUIRED COMPONENTS redis) must fail saying why.
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

# --- no hiredis on the consumer's machine ---------------------------------------------------
set(no_pc "${WORK_DIR}/no-pkgconfig")
set(optional_src "${WORK_DIR}/optional")
file(REMOVE_RECURSE "${no_pc}" "${optional_src}")
file(MAKE_DIRECTORY "${no_pc}" "${optional_src}")
file(WRITE "${optional_src}/CMakeLists.txt" [=[
cmake_minimum_required(VERSION 3.25)
project(asio_futures_optional_redis LANGUAGES CXX)
if(WANT_REQUIRED)
  find_package(asio_futures CONFIG REQUIRED COMPONENTS redis)
else()
  find_package(asio_futures CONFIG REQUIRED OPTIONAL_COMPONENTS redis)
  if(NOT asio_futures_FOUND OR NOT TARGET asio_futures::asio_futures)
    message(FATAL_ERROR "asio_futures not found")
  endif()
  if(asio_futures_redis_FOUND)
    message(FATAL_ERROR "the redis component was found without hiredis")
  endif()
endif()
]=])
function(configure_without_hiredis result_var output_var build_dir)
  execute_process(
    COMMAND "${CMAKE_COMMAND}" -E env "PKG_CONFIG_LIBDIR=${no_pc}" "PKG_CONFIG_PATH=${no_pc}"
      "${CMAKE_COMMAND}" -S "${optional_src}" -B "${build_dir}" -G "${GENERATOR}"
      "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" "-DCMAKE_PREFIX_PATH=${prefix}" ${ARGN}
    RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(${result_var} "${result}" PARENT_SCOPE)
  set(${output_var} "${out}${err}" PARENT_SCOPE)
endfunction()
message(STATUS "redis_install_test: OPTIONAL_COMPONENTS redis without hiredis")
configure_without_hiredis(result output "${WORK_DIR}/optional-build")
if(NOT result EQUAL 0)
  message(FATAL_ERROR "redis_install_test: OPTIONAL_COMPONENTS redis failed without hiredis:\n"
    "${output}")
endif()
message(STATUS "redis_install_test: REQUIRED COMPONENTS redis without hiredis")
configure_without_hiredis(result output "${WORK_DIR}/required-build" -DWANT_REQUIRED=ON)
if(result EQUAL 0 OR NOT output MATCHES "hiredis")
  message(FATAL_ERROR "redis_install_test: REQUIRED COMPONENTS redis without hiredis must fail "
    "naming hiredis (result ${result}):\n${output}")
endif()
