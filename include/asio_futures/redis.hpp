//
// asio_futures/redis.hpp
//
// The optional Redis component (CMake target asio_futures::redis): remote futures on a
// Redis >= 7 server through hiredis, driven by Asio with no thread of its own.
//   connection   commands as futures, reconnecting with backoff   (redis/connection.hpp)
//   job_queue    submit / call: a future resolved by a remote worker (redis/job_queue.hpp)
//   worker       runs the jobs of a queue                           (redis/worker.hpp)
// See docs/distributed.md.
//
#ifndef ASIO_FUTURES_REDIS_HPP
#define ASIO_FUTURES_REDIS_HPP

#include <asio_futures/redis/connection.hpp>
#include <asio_futures/redis/job_queue.hpp>
#include <asio_futures/redis/worker.hpp>

#endif // ASIO_FUTURES_REDIS_HPP
