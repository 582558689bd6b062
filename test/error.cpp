// Tests for <asio_futures/error.hpp>: the library's exception types.
#include <asio_futures/error.hpp>

#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>
#include <boost/test/unit_test.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace asio = boost::asio;
namespace af = asio_futures;

// The derivations are the contract: Asio code that handles operation_aborted / timed_out
// system errors handles ours.
static_assert(std::is_base_of_v<boost::system::system_error, af::cancelled_error>);
static_assert(std::is_base_of_v<std::logic_error, af::invalid_state_error>);
static_assert(std::is_base_of_v<boost::system::system_error, af::timeout_error>);
static_assert(std::is_base_of_v<std::exception, af::exception_group>);
static_assert(
    std::is_nothrow_invocable_r_v<const std::string&, decltype(&af::cancelled_error::message),
                                  const af::cancelled_error&>);
static_assert(std::is_same_v<decltype(std::declval<const af::exception_group&>().exceptions()),
                             const std::vector<std::exception_ptr>&>);
static_assert(std::is_copy_constructible_v<af::cancelled_error>);
static_assert(std::is_copy_constructible_v<af::exception_group>);

namespace {

// A cancelled_error may be made during static destruction: a context destroyed at exit (the
// default thread pool of to_thread) cancels the futures still pending on it. This handler is
// registered before main, so before the first cancelled_error of the process: it runs after
// every function-local static that cancelled_error set up on first use has been destroyed.
void make_cancelled_errors_at_exit() noexcept {
  const std::string plain = af::cancelled_error().what();
  const std::string with_message = af::cancelled_error("at exit").what();
  if (plain != boost::system::system_error(asio::error::operation_aborted, "cancelled").what() ||
      with_message !=
          boost::system::system_error(asio::error::operation_aborted, "at exit").what()) {
    std::fprintf(stderr, "cancelled_error during static destruction: what() is '%s' / '%s'\n",
                 plain.c_str(), with_message.c_str());
    std::_Exit(1);
  }
}

const int at_exit_registered = std::atexit(make_cancelled_errors_at_exit);

} // namespace

BOOST_AUTO_TEST_SUITE(error_)

BOOST_AUTO_TEST_CASE(cancelled_error_can_be_made_during_static_destruction) {
  // The check itself runs at exit (make_cancelled_errors_at_exit); here: it is registered,
  // and this process has made a cancelled_error since (which set up its statics).
  BOOST_TEST(at_exit_registered == 0);
  BOOST_TEST(std::string(af::cancelled_error("now").what()).starts_with("now: "));
}

BOOST_AUTO_TEST_CASE(cancelled_error_is_operation_aborted_system_error) {
  const af::cancelled_error e;
  BOOST_TEST((e.code() == asio::error::operation_aborted));
  BOOST_TEST(e.message().empty());
}

BOOST_AUTO_TEST_CASE(cancelled_error_carries_the_cancel_message) {
  const af::cancelled_error e("shutting down");
  BOOST_TEST(e.message() == "shutting down");
  BOOST_TEST((e.code() == asio::error::operation_aborted));
  // Copies keep the message (exceptions are copied into exception_ptrs).
  const af::cancelled_error copy = e;
  BOOST_TEST(copy.message() == "shutting down");
}

BOOST_AUTO_TEST_CASE(cancelled_error_what_is_what_system_error_would_say) {
  // cancelled_error copies a prebuilt prototype instead of formatting (a speed measure); its
  // what() must still be exactly system_error(operation_aborted, prefix)'s.
  const boost::system::system_error plain(asio::error::operation_aborted, "cancelled");
  const boost::system::system_error with_message(asio::error::operation_aborted, "bye now");
  BOOST_TEST(std::string(af::cancelled_error().what()) == plain.what());
  BOOST_TEST(std::string(af::cancelled_error("").what()) == plain.what());
  BOOST_TEST(std::string(af::cancelled_error("bye now").what()) == with_message.what());
  BOOST_TEST(af::cancelled_error("bye now").message() == "bye now");
  BOOST_TEST((af::cancelled_error("bye now").code() == asio::error::operation_aborted));
}

BOOST_AUTO_TEST_CASE(cancelled_error_is_caught_by_asio_style_handlers) {
  bool caught = false;
  try {
    throw af::cancelled_error("bye");
  } catch (const boost::system::system_error& e) {
    caught = e.code() == asio::error::operation_aborted;
  }
  BOOST_TEST(caught);
}

BOOST_AUTO_TEST_CASE(invalid_state_error_is_a_logic_error_with_what) {
  bool caught = false;
  try {
    throw af::invalid_state_error("future is pending");
  } catch (const std::logic_error& e) {
    caught = std::string(e.what()) == "future is pending";
  }
  BOOST_TEST(caught);
}

BOOST_AUTO_TEST_CASE(timeout_error_is_timed_out_system_error) {
  const af::timeout_error e;
  BOOST_TEST((e.code() == asio::error::timed_out));
  const af::timeout_error with_what("wait_for expired");
  BOOST_TEST((with_what.code() == asio::error::timed_out));
  BOOST_TEST(std::string(with_what.what()).find("wait_for expired") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(exception_group_keeps_exceptions_in_order) {
  std::vector<std::exception_ptr> errors{std::make_exception_ptr(std::runtime_error("first")),
                                         std::make_exception_ptr(std::out_of_range("second")),
                                         std::make_exception_ptr(af::timeout_error())};
  const af::exception_group group(errors);
  BOOST_TEST_REQUIRE(group.exceptions().size() == 3u);
  for (std::size_t i = 0; i < errors.size(); ++i)
    BOOST_TEST((group.exceptions()[i] == errors[i]));
  BOOST_CHECK_THROW(std::rethrow_exception(group.exceptions()[1]), std::out_of_range);
}

BOOST_AUTO_TEST_CASE(exception_group_what_mentions_the_first_exception) {
  const af::exception_group group({std::make_exception_ptr(std::runtime_error("boom")),
                                   std::make_exception_ptr(std::runtime_error("bang"))});
  const std::string what = group.what();
  BOOST_TEST(what.find("boom") != std::string::npos);
  BOOST_TEST(what.find('2') != std::string::npos);
}

BOOST_AUTO_TEST_CASE(exception_group_find_and_contains_match_derived_types) {
  const af::exception_group group({std::make_exception_ptr(std::out_of_range("range")),
                                   std::make_exception_ptr(af::timeout_error())});
  BOOST_TEST(group.contains<std::logic_error>()); // out_of_range is a logic_error
  BOOST_TEST(group.contains<boost::system::system_error>());
  BOOST_TEST(!group.contains<af::cancelled_error>());
  const auto* found = group.find<std::out_of_range>();
  BOOST_TEST_REQUIRE(found != nullptr);
  BOOST_TEST(std::string(found->what()) == "range");
}

BOOST_AUTO_TEST_CASE(empty_exception_group_is_allowed) {
  const af::exception_group group({});
  BOOST_TEST(group.exceptions().empty());
  BOOST_TEST(group.what() != nullptr);
}

BOOST_AUTO_TEST_SUITE_END()
