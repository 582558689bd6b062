// Must NOT compile (CTest compile_fail_task_coroutine_type checks the diagnostic): a task's
// coroutine runs on the task's own executor, so it must be an asio::awaitable<T> with the
// default executor type; another executor type gets a static_assert naming the rule and the
// workaround, not pages of Asio template errors.
#include <asio_futures/task.hpp>

#include <boost/asio/io_context.hpp>

namespace asio = boost::asio;

asio::awaitable<int, asio::io_context::executor_type> typed() {
  co_return 1;
}

int main() {
  asio::io_context ioc;
  auto t = asio_futures::create_task(ioc, typed());
  (void)t;
}
