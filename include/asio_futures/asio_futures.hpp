//
// asio_futures/asio_futures.hpp
//
// Umbrella header: Python asyncio's Future/Task model on Boost.Asio.
//
#ifndef ASIO_FUTURES_ASIO_FUTURES_HPP
#define ASIO_FUTURES_ASIO_FUTURES_HPP

#include <asio_futures/cancel_after.hpp>
#include <asio_futures/error.hpp>
#include <asio_futures/future.hpp>
#include <asio_futures/gather.hpp>
#include <asio_futures/shield.hpp>
#include <asio_futures/sleep.hpp>
#include <asio_futures/sync.hpp>
#include <asio_futures/task.hpp>
#include <asio_futures/task_group.hpp>
#include <asio_futures/thread.hpp>
#include <asio_futures/use_future.hpp>
#include <asio_futures/wait.hpp>

#endif // ASIO_FUTURES_ASIO_FUTURES_HPP
