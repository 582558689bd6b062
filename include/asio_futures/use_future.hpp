//
// asio_futures/use_future.hpp
//
// A completion token that turns any Asio asynchronous operation into a future<T>.
//
#ifndef ASIO_FUTURES_USE_FUTURE_HPP
#define ASIO_FUTURES_USE_FUTURE_HPP

#include <asio_futures/future.hpp>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/system/error_code.hpp>

#include <exception>
#include <string>
#include <tuple>
#include <type_traits>

namespace asio_futures {

/// Completion token type of `use_future`.
struct use_future_t {
  constexpr use_future_t() noexcept = default;
};

/// A completion token that makes any Asio operation return a `future<T>`:
///
///     af::future<std::size_t> f = sock.async_read_some(buf, af::use_future);
///
/// `T` follows the completion signature: `void()`, `void(error_code)` and
/// `void(std::exception_ptr)` give `future<void>`; `void(error_code, A)`,
/// `void(std::exception_ptr, A)` and `void(A)` give `future<A>`; more values give a
/// `future<std::tuple<...>>`. A non-zero error code fails the future with
/// `boost::system::system_error` (`operation_aborted` cancels it instead).
///
/// Unlike `asio::use_future` there is no `std::promise`, nothing blocks, and the future is
/// cancellable: `f.cancel()` marks it cancelled at once and emits `terminal` cancellation
/// into the operation's cancellation slot, on the operation's I/O executor (Asio's
/// cancellation signals are not thread-safe; as with any Asio object used from several
/// threads, use a strand executor for the I/O object when its context runs several threads).
/// Because the future is cancelled *before* the operation has completed, a cancelled future
/// says nothing about the operation's buffers and I/O object: they must stay alive until the
/// operation's own completion (keep them alive by other means, or run the operation in a
/// task, whose end is the operation's end).
/// The future's executor (for its done-callbacks) is the operation's I/O executor: the one
/// its initiation object names with `get_executor()`, as Asio's own initiations do. An
/// initiation that names none gets `asio::system_executor` (Asio's default association), whose
/// functions run on a system thread: a hand-written operation should name its executor (see
/// examples/seed_custom_awaitable.cpp).
inline constexpr use_future_t use_future{};

namespace detail {

enum class error_kind { none, code, exception };

template <class... A> struct pack_value { using type = std::tuple<A...>; };
template <> struct pack_value<> { using type = void; };
template <class A> struct pack_value<A> { using type = A; };

template <class... A> struct use_future_args {
  static constexpr error_kind error = error_kind::none;
  using value_type = typename pack_value<A...>::type;
};
template <class... A> struct use_future_args<boost::system::error_code, A...> {
  static constexpr error_kind error = error_kind::code;
  using value_type = typename pack_value<A...>::type;
};
template <class... A> struct use_future_args<std::exception_ptr, A...> {
  static constexpr error_kind error = error_kind::exception;
  using value_type = typename pack_value<A...>::type;
};

template <class Sig> struct use_future_signature;
template <class R, class... A>
struct use_future_signature<R(A...)> : use_future_args<std::decay_t<A>...> {};

/// The state of a future made by use_future: it also owns the operation's cancellation
/// signal, and its cancel hook aborts the operation.
template <class T> class operation_state final : public state<T> {
public:
  operation_state(asio::any_io_executor ex) : state<T>(ex, &hooks_), io_ex_(std::move(ex)) {}

  asio::cancellation_slot slot() noexcept { return signal_.slot(); }

private:
  static bool cancel(state_base* b, std::string&& msg) {
    auto* self = static_cast<operation_state*>(b);
    if (!self->cancel_state(std::move(msg)))
      return false;
    // Abort the operation where it runs. The handler clears the slot when it runs on the
    // same executor, so a late emit finds no stale cancellation handler.
    asio::dispatch(self->io_ex_, [keep = state_ptr<T>::share(self)] {
      static_cast<operation_state*>(keep.get())->signal_.emit(asio::cancellation_type::terminal);
    });
    return true;
  }
  static void destroy(state_base* b) noexcept { delete static_cast<operation_state*>(b); }

  static constexpr state_hooks hooks_{&operation_state::cancel, &operation_state::destroy, true,
                                      nullptr};

  asio::cancellation_signal signal_;
  asio::any_io_executor io_ex_;
};

/// The completion handler that resolves the future. Destroyed without being invoked (the
/// operation's execution context shut down with it pending, or the initiation threw), it
/// ends the future cancelled: nothing will ever resolve it otherwise.
template <class T, class Sig> class use_future_handler {
public:
  using cancellation_slot_type = asio::cancellation_slot;

  explicit use_future_handler(operation_state<T>* s) noexcept : state_(state_ptr<T>::share(s)) {}
  use_future_handler(use_future_handler&&) noexcept = default;
  use_future_handler& operator=(use_future_handler&&) = delete;
  ~use_future_handler() {
    if (state_) {
      std::string msg;
      try {
        msg = "the operation was destroyed before it completed (its execution context shut "
              "down)";
      } catch (...) { // bad_alloc: cancelled without a message
      }
      state_->cancel_state(std::move(msg));
    }
  }

  cancellation_slot_type get_cancellation_slot() const noexcept { return op_state().slot(); }

  template <class... A> void operator()(A&&... args) {
    op_state().slot().clear();
    if constexpr (use_future_signature<Sig>::error == error_kind::none)
      set_value(std::forward<A>(args)...);
    else
      set_checked(std::forward<A>(args)...);
    state_.reset(); // resolved: the destructor has nothing left to do
  }

private:
  operation_state<T>& op_state() const noexcept {
    return static_cast<operation_state<T>&>(*state_);
  }

  template <class E, class... A> void set_checked(E&& e, A&&... args) {
    if constexpr (use_future_signature<Sig>::error == error_kind::code) {
      if (e == asio::error::operation_aborted) {
        state_->cancel_state(std::string());
        return;
      }
      if (e) {
        resolve_exception(*state_, make_error_exception(e));
        return;
      }
    } else if (e) {
      resolve_exception(*state_, std::forward<E>(e));
      return;
    }
    set_value(std::forward<A>(args)...);
  }

  template <class... A> void set_value(A&&... args) {
    // The value (a tuple for several arguments) is constructed in the claimed state: if
    // that throws, the future fails with the exception instead of staying pending forever.
    forward_value(*state_, std::forward<A>(args)...);
  }

  state_ptr<T> state_;
};

} // namespace detail
} // namespace asio_futures

template <class R, class... A>
class boost::asio::async_result<asio_futures::use_future_t, R(A...)> {
  using traits = asio_futures::detail::use_future_signature<R(A...)>;
  using value_type = typename traits::value_type;

public:
  using return_type = asio_futures::future<value_type>;

  template <class Initiation, class... InitArgs>
  static return_type initiate(Initiation&& init, asio_futures::use_future_t, InitArgs&&... args) {
    using state_type = asio_futures::detail::operation_state<value_type>;
    const boost::asio::any_io_executor ex(boost::asio::get_associated_executor(
        init, boost::asio::system_executor())); // system: the default before Asio 1.37
    const std::uint32_t serial =
        asio_futures::detail::serial_of(asio_futures::detail::service_for(ex));
    auto* s = new state_type(ex);
    s->set_context_serial(serial);
    return_type f{asio_futures::detail::state_ptr<value_type>(s)};
    std::forward<Initiation>(init)(asio_futures::detail::use_future_handler<value_type, R(A...)>(s),
                                   std::forward<InitArgs>(args)...);
    return f;
  }
};

#endif // ASIO_FUTURES_USE_FUTURE_HPP
