// A TCP proxy in front of a test's redis-server, on the test's io_context, that can fail
// connections the way a network does:
//
//   tcp_proxy px(ex, srv.port());   // listens on a free loopback port
//   px.endpoint()                   // for connection/job_queue/worker
//   px.blackhole(":sub")            // the live connections whose client sent ":sub" (e.g. in
//                                   // its CLIENT SETNAME) go silent both ways, sockets open:
//                                   // a half-open connection, as after a vanished host
//   px.hold(":caller:")             // new connections whose first bytes contain the marker
//   px.release_held()               // are accepted but not forwarded until released
//
// Destroy it before its io_context (its loops end when the context runs or is destroyed).
#ifndef ASIO_FUTURES_TEST_REDIS_SUPPORT_TCP_PROXY_HPP
#define ASIO_FUTURES_TEST_REDIS_SUPPORT_TCP_PROXY_HPP

#include <asio_futures/redis/connection.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace asio_futures_test {

class tcp_proxy {
public:
  tcp_proxy(boost::asio::any_io_executor ex, std::uint16_t upstream_port)
      : state_(std::make_shared<state>(ex, upstream_port)) {
    boost::asio::co_spawn(ex, accept_loop(state_), boost::asio::detached);
  }
  ~tcp_proxy() { state_->shutdown(); }
  tcp_proxy(const tcp_proxy&) = delete;
  tcp_proxy& operator=(const tcp_proxy&) = delete;

  std::uint16_t port() const { return state_->acceptor.local_endpoint().port(); }
  asio_futures::redis::endpoint endpoint() const {
    asio_futures::redis::endpoint ep;
    ep.host = "127.0.0.1";
    ep.port = port();
    return ep;
  }

  /// Black-holes the live connections whose client bytes so far contain `marker`; returns
  /// how many.
  int blackhole(const std::string& marker) {
    int n = 0;
    for (auto& l : state_->links)
      if (!l->blackholed && l->seen.find(marker) != std::string::npos) {
        l->blackholed = true;
        ++n;
      }
    return n;
  }
  /// Holds every new connection whose first bytes contain `marker`.
  void hold(std::string marker) { state_->hold_marker = std::move(marker); }
  /// Forwards what the held connections sent, and stops holding new ones.
  void release_held() {
    state_->hold_marker.clear();
    for (auto& l : state_->links)
      if (l->held) {
        l->held = false;
        l->release.cancel();
      }
  }
  /// Connections held now.
  int held() const {
    int n = 0;
    for (auto& l : state_->links)
      n += l->held;
    return n;
  }

private:
  struct link {
    explicit link(boost::asio::any_io_executor ex) : client(ex), upstream(ex), release(ex) {
      release.expires_at(boost::asio::steady_timer::time_point::max());
    }
    boost::asio::ip::tcp::socket client, upstream;
    boost::asio::steady_timer release; // cancelled when a held link is released
    std::string seen;                  // the client's first bytes (up to 4 KiB)
    bool first = true, held = false, blackholed = false;
  };

  struct state {
    state(boost::asio::any_io_executor ex, std::uint16_t up)
        : ex(ex), upstream_port(up),
          acceptor(ex,
                   boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)) {}
    void shutdown() {
      boost::system::error_code ec;
      acceptor.close(ec);
      for (auto& l : links) {
        l->client.close(ec);
        l->upstream.close(ec);
        l->release.cancel();
      }
      links.clear();
    }
    boost::asio::any_io_executor ex;
    std::uint16_t upstream_port;
    boost::asio::ip::tcp::acceptor acceptor;
    std::vector<std::shared_ptr<link>> links;
    std::string hold_marker;
  };

  static boost::asio::awaitable<void> accept_loop(std::shared_ptr<state> s) {
    for (;;) {
      auto l = std::make_shared<link>(s->ex);
      try {
        co_await s->acceptor.async_accept(l->client, boost::asio::use_awaitable);
        co_await l->upstream.async_connect(
            {boost::asio::ip::make_address("127.0.0.1"), s->upstream_port},
            boost::asio::use_awaitable);
      } catch (const boost::system::system_error&) {
        if (!s->acceptor.is_open())
          co_return;
        continue; // this connection failed: the client sees it closed
      }
      s->links.push_back(l);
      boost::asio::co_spawn(s->ex, client_to_server(s, l), boost::asio::detached);
      boost::asio::co_spawn(s->ex, server_to_client(l), boost::asio::detached);
    }
  }

  static boost::asio::awaitable<void> client_to_server(std::shared_ptr<state> s,
                                                       std::shared_ptr<link> l) {
    std::array<char, 16384> buf;
    try {
      for (;;) {
        auto n = co_await l->client.async_read_some(boost::asio::buffer(buf),
                                                    boost::asio::use_awaitable);
        if (l->seen.size() < 4096)
          l->seen.append(buf.data(), std::min<std::size_t>(n, 4096 - l->seen.size()));
        if (l->first) {
          l->first = false;
          if (!s->hold_marker.empty() && l->seen.find(s->hold_marker) != std::string::npos)
            l->held = true;
        }
        if (l->held) {
          try {
            co_await l->release.async_wait(boost::asio::use_awaitable);
          } catch (const boost::system::system_error&) {
          }
        }
        if (l->blackholed || !l->upstream.is_open())
          continue;
        co_await boost::asio::async_write(l->upstream, boost::asio::buffer(buf.data(), n),
                                          boost::asio::use_awaitable);
      }
    } catch (const boost::system::system_error&) {
    }
    close(*l);
  }

  static boost::asio::awaitable<void> server_to_client(std::shared_ptr<link> l) {
    std::array<char, 16384> buf;
    try {
      for (;;) {
        auto n = co_await l->upstream.async_read_some(boost::asio::buffer(buf),
                                                      boost::asio::use_awaitable);
        if (l->blackholed || l->held)
          continue;
        co_await boost::asio::async_write(l->client, boost::asio::buffer(buf.data(), n),
                                          boost::asio::use_awaitable);
      }
    } catch (const boost::system::system_error&) {
    }
    close(*l);
  }

  static void close(link& l) {
    if (l.blackholed)
      return; // a black hole never closes: that is the point
    boost::system::error_code ec;
    l.client.close(ec);
    l.upstream.close(ec);
  }

  std::shared_ptr<state> state_;
};

} // namespace asio_futures_test

#endif // ASIO_FUTURES_TEST_REDIS_SUPPORT_TCP_PROXY_HPP
