// The Boost.Test module of asio_futures_redis_tests: the Redis component's cases (one suite
// per public header, each case with its own redis-server; see support/redis_server.hpp).
#define BOOST_TEST_MODULE asio_futures_redis
#include <boost/test/unit_test.hpp>
