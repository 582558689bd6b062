# cmake -DTEST_EXE=<asio_futures_tests> -DEXPECTED=<suite,suite,...> -P check_test_registration.cmake
#
# The CTest tests of asio_futures_tests are derived at configure time by scanning the test
# sources (cmake/asio_futures_test_suites.cmake). This compares that list with what the
# executable really registers (`--list_content`, printed on stderr, top-level entries
# unindented): a test case outside any suite, or a suite the scan missed, would otherwise
# never run under CTest.
execute_process(COMMAND "${TEST_EXE}" --list_content
  RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${TEST_EXE} --list_content failed (${result}):\n${out}${err}")
endif()
string(REPLACE "\n" ";" lines "${err}${out}")
set(actual)
foreach(line IN LISTS lines)
  if(line MATCHES "^([A-Za-z0-9_]+)\\*?$")
    list(APPEND actual "${CMAKE_MATCH_1}")
  endif()
endforeach()
string(REPLACE "," ";" expected "${EXPECTED}")
list(SORT actual)
list(SORT expected)
if(NOT actual STREQUAL expected)
  set(missing ${actual})
  if(expected)
    list(REMOVE_ITEM missing ${expected})
  endif()
  set(extra ${expected})
  if(actual)
    list(REMOVE_ITEM extra ${actual})
  endif()
  message(FATAL_ERROR "CTest registration does not match the test executable.\n"
    "  top-level in the executable but no CTest test (a case outside any suite, or a suite "
    "the scan of test/*.cpp missed): ${missing}\n"
    "  CTest tests the executable does not have: ${extra}\n"
    "Every test case belongs in a top-level BOOST_AUTO_TEST_SUITE(<header>_); re-run CMake.")
endif()
list(LENGTH actual n)
message(STATUS "test registration ok: ${n} top-level suites")
