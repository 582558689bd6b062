// The Boost.Test module of asio_futures_tests. Test cases live in the other test/*.cpp
// files, one top-level suite each (`BOOST_AUTO_TEST_SUITE(<header>_)`); CMake registers one
// CTest test per suite (see test/CMakeLists.txt). This file is compiled without the
// precompiled header so that BOOST_TEST_MODULE is defined before unit_test.hpp is seen.
#define BOOST_TEST_MODULE asio_futures
#include <boost/test/unit_test.hpp>
