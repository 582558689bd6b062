// Tests for <asio_futures/use_future.hpp>: the completion token turning any Asio operation
// into a cancellable af::future<T>.
#include <asio_futures/use_future.hpp>

#include "support/checks.hpp"
#include "support/co_test.hpp"
#include "support/tracking.hpp"

#include <asio_futures/future.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/system_error.hpp>
#include <boost/test/unit_test.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>

namespace asio = boost::asio;
namespace af = asio_futures;
namespace aft = asio_futures_test;

using namespace std::chrono_literals;

namespace {

/// A connected loopback TCP pair, set up with synchronous calls (no handlers involved).
struct socket_pair {
  explicit socket_pair(asio::io_context& ioc) : client(ioc), server(ioc) {
    asio::ip::tcp::acceptor acceptor(ioc, {asio::ip::address_v4::loopback(), 0});
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server);
  }
  asio::ip::tcp::socket client;
  asio::ip::tcp::socket server;
};

/// The error code of the system_error `f.result()` throws (nullopt if it throws no
/// system_error).
template <class T> std::optional<boost::system::error_code> error_code_of(const af::future<T>& f) {
  try {
    (void)f.result();
  } catch (const boost::system::system_error& e) {
    return e.code();
  } catch (...) {
  }
  return std::nullopt;
}

/// Runs the context until it runs out of work; true if it did so within the hang guard
/// (i.e. no operation is left pending).
bool runs_out_of_work(asio::io_context& ioc) {
  ioc.restart();
  ioc.run_for(aft::default_timeout);
  return ioc.stopped();
}

asio::awaitable<int> answer() {
  co_return 42;
}

asio::awaitable<int> fail_after_a_turn() {
  co_await aft::yield_once();
  throw std::out_of_range("from coroutine");
}

asio::awaitable<int> sleep_forever() {
  asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::hours(1));
  co_await timer.async_wait(asio::use_awaitable);
  co_return 0;
}

// The token deduces future<T> from the completion signature: the error_code (or
// exception_ptr) goes into the future's failure, the value into its result.
using timer_future = decltype(std::declval<asio::steady_timer&>().async_wait(af::use_future));
static_assert(std::is_same_v<timer_future, af::future<void>>);
using read_future = decltype(std::declval<asio::ip::tcp::socket&>().async_read_some(
    asio::mutable_buffer(), af::use_future));
static_assert(std::is_same_v<read_future, af::future<std::size_t>>);
using post_future = decltype(asio::post(std::declval<asio::io_context&>(), af::use_future));
static_assert(std::is_same_v<post_future, af::future<void>>);
using spawn_future =
    decltype(asio::co_spawn(std::declval<asio::io_context&>(), answer(), af::use_future));
static_assert(std::is_same_v<spawn_future, af::future<int>>);

} // namespace

BOOST_AUTO_TEST_SUITE(use_future_)

BOOST_AUTO_TEST_CASE(timer_wait_becomes_a_future_void) {
  asio::io_context ioc;
  asio::steady_timer timer(ioc, asio::steady_timer::time_point::min()); // already expired
  const af::future<void> f = timer.async_wait(af::use_future);
  BOOST_TEST(!f.done()); // Asio operations never complete inside the initiating call
  // The future's executor (for its callbacks) is the operation's I/O executor.
  BOOST_TEST((f.get_executor() == asio::any_io_executor(timer.get_executor())));
  BOOST_TEST(aft::run_until(ioc, [&] { return f.done(); }));
  BOOST_TEST(!f.cancelled());
  BOOST_CHECK_NO_THROW(f.result());
}

BOOST_AUTO_TEST_CASE(error_code_becomes_a_system_error) {
  asio::io_context ioc;
  asio::steady_timer timer(ioc, std::chrono::hours(1));
  const af::future<void> f = timer.async_wait(af::use_future);
  timer.cancel(); // the operation completes with operation_aborted
  BOOST_TEST(aft::run_until(ioc, [&] { return f.done(); }));
  BOOST_TEST((error_code_of(f) ==
              std::optional<boost::system::error_code>(asio::error::operation_aborted)));
}

BOOST_AUTO_TEST_CASE(cancelling_the_future_cancels_the_timer_wait) {
  asio::io_context ioc;
  asio::steady_timer timer(ioc, std::chrono::hours(1));
  const af::future<void> f = timer.async_wait(af::use_future);
  aft::poll(ioc);
  BOOST_TEST(aft::has_outstanding_work(ioc)); // the timer wait is pending
  BOOST_TEST(f.cancel("enough"));
  BOOST_TEST(f.cancelled());
  // The timer operation was aborted through its cancellation slot: it completes now,
  // instead of in an hour, and the context runs out of work.
  BOOST_TEST(runs_out_of_work(ioc));
  BOOST_TEST(f.cancelled());
  bool right_message = false;
  try {
    f.result();
  } catch (const af::cancelled_error& e) {
    right_message = e.message() == "enough";
  }
  BOOST_TEST(right_message);
}

BOOST_AUTO_TEST_CASE(terminal_cancellation_of_a_waiter_reaches_the_operation) {
  // A coroutine awaits the future of a timer wait; cancelling the coroutine cancels the
  // future (terminal), which aborts the timer operation.
  asio::io_context ioc;
  asio::steady_timer timer(ioc, std::chrono::hours(1));
  const af::future<void> f = timer.async_wait(af::use_future);
  asio::cancellation_signal signal;
  bool finished = false;
  std::exception_ptr error;
  asio::co_spawn(
      ioc, [f]() -> asio::awaitable<void> { co_await f.async_wait(); },
      asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) {
        finished = true;
        error = std::move(e);
      }));
  aft::poll(ioc);
  signal.emit(asio::cancellation_type::terminal);
  BOOST_TEST(runs_out_of_work(ioc)); // the timer wait was aborted too
  BOOST_TEST(finished);
  BOOST_TEST(f.cancelled());
  BOOST_CHECK_THROW(error ? std::rethrow_exception(error) : (void)0, af::cancelled_error);
}

CO_TEST_CASE(use_future_result_can_be_awaited) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex, asio::steady_timer::time_point::min());
  co_await timer.async_wait(af::use_future).async_wait();
  const af::future<int> f = asio::co_spawn(ex, answer(), af::use_future);
  BOOST_TEST(co_await f.async_wait() == 42);
}

BOOST_AUTO_TEST_CASE(post_becomes_a_future_void) {
  asio::io_context ioc;
  const af::future<void> f = asio::post(ioc, af::use_future);
  BOOST_TEST(!f.done());
  BOOST_TEST(aft::run_until(ioc, [&] { return f.done(); }));
  BOOST_CHECK_NO_THROW(f.result());
}

BOOST_AUTO_TEST_CASE(cancelling_before_a_non_cancellable_operation_completes_keeps_it_cancelled) {
  asio::io_context ioc;
  const af::future<void> f = asio::post(ioc, af::use_future); // post ignores cancellation
  BOOST_TEST(f.cancel());
  aft::poll(ioc); // the late completion is dropped
  BOOST_TEST(f.cancelled());
  BOOST_CHECK_THROW(f.result(), af::cancelled_error);
  BOOST_TEST(!aft::has_outstanding_work(ioc));
}

BOOST_AUTO_TEST_CASE(socket_read_becomes_a_future_of_the_byte_count) {
  asio::io_context ioc;
  socket_pair pair(ioc);
  std::array<char, 16> buffer{};
  const af::future<std::size_t> f =
      pair.server.async_read_some(asio::buffer(buffer), af::use_future);
  aft::poll(ioc);
  BOOST_TEST(!f.done());
  asio::write(pair.client, asio::buffer(std::string("hello")));
  BOOST_TEST(aft::run_until(ioc, [&] { return f.done(); }));
  const std::size_t n = f.result();
  BOOST_TEST_REQUIRE(n >= 1u);
  BOOST_TEST_REQUIRE(n <= 5u);
  BOOST_TEST(std::string(buffer.data(), n) == std::string("hello").substr(0, n));
}

BOOST_AUTO_TEST_CASE(socket_read_error_becomes_a_system_error) {
  asio::io_context ioc;
  socket_pair pair(ioc);
  std::array<char, 16> buffer{};
  const af::future<std::size_t> f =
      pair.server.async_read_some(asio::buffer(buffer), af::use_future);
  pair.client.close(); // the read sees end of file
  BOOST_TEST(aft::run_until(ioc, [&] { return f.done(); }));
  BOOST_TEST(!f.cancelled());
  BOOST_TEST((error_code_of(f) == std::optional<boost::system::error_code>(asio::error::eof)));
}

BOOST_AUTO_TEST_CASE(cancelling_the_future_cancels_the_socket_read) {
  asio::io_context ioc;
  socket_pair pair(ioc);
  std::array<char, 16> buffer{};
  const af::future<std::size_t> f =
      pair.server.async_read_some(asio::buffer(buffer), af::use_future);
  aft::poll(ioc);
  BOOST_TEST(aft::has_outstanding_work(ioc)); // the read is pending in the reactor
  BOOST_TEST(f.cancel());
  BOOST_TEST(runs_out_of_work(ioc)); // the read was aborted
  BOOST_TEST(f.cancelled());
  // The socket is still usable: a new read gets the data.
  const af::future<std::size_t> g =
      pair.server.async_read_some(asio::buffer(buffer), af::use_future);
  asio::write(pair.client, asio::buffer(std::string("x")));
  BOOST_TEST(aft::run_until(ioc, [&] { return g.done(); }));
  BOOST_TEST(g.result() == 1u);
}

BOOST_AUTO_TEST_CASE(co_spawn_becomes_a_future_of_the_coroutine_result) {
  asio::io_context ioc;
  const af::future<int> ok = asio::co_spawn(ioc, answer(), af::use_future);
  const af::future<int> failed = asio::co_spawn(ioc, fail_after_a_turn(), af::use_future);
  BOOST_TEST(aft::run_until(ioc, [&] { return ok.done() && failed.done(); }));
  BOOST_TEST(ok.result() == 42);
  BOOST_CHECK_THROW(failed.result(), std::out_of_range);
}

BOOST_AUTO_TEST_CASE(cancelling_the_future_cancels_a_spawned_coroutine) {
  asio::io_context ioc;
  const af::future<int> f = asio::co_spawn(ioc, sleep_forever(), af::use_future);
  aft::poll(ioc);
  BOOST_TEST(aft::has_outstanding_work(ioc));
  BOOST_TEST(f.cancel());
  BOOST_TEST(runs_out_of_work(ioc)); // the coroutine's timer was aborted, it finished
  BOOST_TEST(f.cancelled());
}

BOOST_AUTO_TEST_CASE(value_only_signature_becomes_a_future_of_the_value) {
  asio::io_context ioc;
  // deferred.values completes inside its initiation; the future is done at once.
  const af::future<int> f = asio::deferred.values(7)(af::use_future);
  BOOST_TEST(aft::run_until(ioc, [&] { return f.done(); }));
  BOOST_TEST(f.result() == 7);
  const af::future<std::tuple<int, std::string>> pair =
      asio::deferred.values(1, std::string("two"))(af::use_future);
  BOOST_TEST(aft::run_until(ioc, [&] { return pair.done(); }));
  BOOST_TEST(std::get<1>(pair.result()) == "two");
}

BOOST_AUTO_TEST_CASE(an_operation_destroyed_with_its_context_ends_the_future_cancelled) {
  // The operation's handler is destroyed unrun (its context shut down): the future ends
  // cancelled, and a coroutine awaiting it on another context resumes.
  asio::io_context other;
  af::future<void> timed;
  af::future<void> posted;
  std::optional<std::exception_ptr> seen;
  {
    asio::io_context io;
    asio::steady_timer timer(io, std::chrono::hours(1));
    timed = timer.async_wait(af::use_future);
    posted = asio::post(io, af::use_future); // never run
    asio::co_spawn(
        other,
        [timed, &seen]() -> asio::awaitable<void> {
          try {
            co_await timed.async_wait();
            seen = nullptr;
          } catch (...) {
            seen = std::current_exception();
          }
        },
        asio::detached);
    aft::poll(other);
    BOOST_TEST(!seen.has_value());
  } // the timer (its wait aborted, queued), then the context: the handlers die unrun
  BOOST_TEST(timed.cancelled());
  BOOST_TEST(posted.cancelled());
  BOOST_TEST(aft::run_until(other, [&] { return seen.has_value(); }));
  BOOST_TEST(aft::holds<af::cancelled_error>(*seen));
  BOOST_CHECK_THROW(posted.get(), af::cancelled_error); // no hang
}

BOOST_AUTO_TEST_CASE(an_initiation_without_an_executor_gives_the_system_executor) {
  // Asio's default association before 1.37 (which made it inline_executor): named
  // explicitly, so every Asio gives the same future.
  const af::future<int> f = asio::async_initiate<const af::use_future_t&, void(int)>(
      [](auto handler) { std::move(handler)(5); }, af::use_future);
  BOOST_TEST(f.get_executor().target<asio::system_executor>() != nullptr);
  BOOST_TEST(f.get() == 5);
}

BOOST_AUTO_TEST_CASE(throwing_value_copy_fails_the_future_instead_of_leaving_it_pending) {
  // The completion's arguments are copied into the future. If a copy throws, the future
  // fails with that exception: it neither stays pending nor makes the completion throw.
  aft::copy_control control;
  const aft::throwing_copy value(control, 1);
  const auto complete_with_value = [&](auto handler) {
    control.fail_after(0);
    std::move(handler)(value); // an lvalue: the token must copy it
  };
  const auto complete_with_pair = [&](auto handler) {
    control.fail_after(0);
    std::move(handler)(value, 2);
  };
  af::future<aft::throwing_copy> single;
  BOOST_CHECK_NO_THROW(single =
                           (asio::async_initiate<const af::use_future_t, void(aft::throwing_copy)>(
                               complete_with_value, af::use_future)));
  BOOST_TEST((single.valid() && single.done()));
  BOOST_TEST((single.valid() &&
              aft::holds<aft::copy_error>(aft::thrown_by([&] { (void)single.result(); }))));
  // Several arguments make a tuple, constructed in the future as well.
  af::future<std::tuple<aft::throwing_copy, int>> pair;
  BOOST_CHECK_NO_THROW(
      pair = (asio::async_initiate<const af::use_future_t, void(aft::throwing_copy, int)>(
          complete_with_pair, af::use_future)));
  BOOST_TEST((pair.valid() && pair.done()));
  BOOST_TEST(
      (pair.valid() && aft::holds<aft::copy_error>(aft::thrown_by([&] { (void)pair.result(); }))));
}

BOOST_AUTO_TEST_SUITE_END()
