// Consumer of the installed redis component: links hiredis through the package, and a
// command on a connection that cannot connect (nothing listens on 127.0.0.1:1) waits until
// close() fails it with connection_error.
#include <asio_futures/redis.hpp>

#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <exception>

namespace af = asio_futures;
namespace afr = asio_futures::redis;

int main() {
  boost::asio::io_context ctx;
  afr::endpoint ep;
  ep.port = 1;
  afr::connection c(ctx.get_executor(), ep);
  af::future<afr::reply> f = c.command({"PING"});
  ctx.run_for(std::chrono::milliseconds(50));
  if (f.done()) {
    std::fputs("redis install test: a command completed without a server\n", stderr);
    return 1;
  }
  c.close();
  ctx.run();
  try {
    (void)f.result();
  } catch (const afr::connection_error&) {
    std::puts("redis install test: ok");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "redis install test: unexpected %s\n", e.what());
  }
  return 1;
}
