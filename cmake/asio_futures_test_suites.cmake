# asio_futures_discover_suites(<out-var> <file>...)
#
# Returns the top-level Boost.Test suites opened in the given files, in order, without
# duplicates: every BOOST_AUTO_TEST_SUITE(name...) / BOOST_FIXTURE_TEST_SUITE(name, ...)
# at nesting depth 0, tracking BOOST_AUTO_TEST_SUITE_END(). Line comments are ignored.
# Each file becomes a configure dependency, so adding or renaming a suite re-runs CMake.
# The CTest test `test_registration` (cmake/check_test_registration.cmake) checks the
# result against the executable's own --list_content, so the scan cannot silently drift.
function(asio_futures_discover_suites out_var)
  set(suites)
  foreach(file IN LISTS ARGN)
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${file}")
    file(STRINGS "${file}" lines REGEX "BOOST_(AUTO|FIXTURE)_TEST_SUITE")
    set(depth 0)
    foreach(line IN LISTS lines)
      string(REGEX REPLACE "//.*$" "" line "${line}")
      string(REGEX MATCHALL
        "BOOST_(AUTO|FIXTURE)_TEST_SUITE(_END)?[ \t]*\\([ \t]*[A-Za-z0-9_]*"
        macros "${line}")
      foreach(macro IN LISTS macros)
        if(macro MATCHES "_END[ \t]*\\(")
          math(EXPR depth "${depth} - 1")
        else()
          if(depth EQUAL 0)
            string(REGEX REPLACE ".*\\([ \t]*" "" name "${macro}")
            list(APPEND suites "${name}")
          endif()
          math(EXPR depth "${depth} + 1")
        endif()
      endforeach()
    endforeach()
    if(NOT depth EQUAL 0)
      message(WARNING "${file}: unbalanced BOOST_AUTO_TEST_SUITE / _END (depth ${depth})")
    endif()
  endforeach()
  list(REMOVE_DUPLICATES suites)
  set(${out_var} "${suites}" PARENT_SCOPE)
endfunction()
