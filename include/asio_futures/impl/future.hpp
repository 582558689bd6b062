//
// asio_futures/impl/future.hpp
//
// Member templates of future<T>.
//
#ifndef ASIO_FUTURES_IMPL_FUTURE_HPP
#define ASIO_FUTURES_IMPL_FUTURE_HPP

#include <boost/asio/bind_executor.hpp>

#include <stdexcept>

namespace asio_futures {
namespace detail {

/// Privileged access to a future's state, for the library's own composition code.
template <class T> struct access {
  static state<T>* get(const future<T>& f) noexcept { return f.state_.get(); }
  static state_ptr<T> share(const future<T>& f) noexcept { return f.state_; }
};

/// Resolve `s` with `v`; false if it was already done. No task check (internal). If
/// constructing the value throws, `s` fails with that exception, which then propagates.
template <class T, class... A> bool resolve_value(state<T>& s, A&&... a) {
  if (!s.try_claim())
    return false;
  s.finish_value(std::forward<A>(a)...);
  return true;
}

/// resolve_value for an outcome the library passes on (a transferred outcome, an
/// operation's completion): if constructing the value throws, `s` fails with that
/// exception, and it stays there, where the outcome was going, instead of also escaping
/// into the scheduler that runs the code passing it on.
template <class T, class... A> bool forward_value(state<T>& s, A&&... a) noexcept {
  try {
    return resolve_value(s, std::forward<A>(a)...);
  } catch (...) {
    return true; // finish_value failed `s` with this exception
  }
}

inline bool resolve_exception(state_base& s, std::exception_ptr e) {
  if (!s.try_claim())
    return false;
  s.finish_exception(std::move(e), outcome::exception);
  return true;
}

/// Copy the failure (exception or cancellation, with its message) of done `from` into `to`.
inline bool transfer_failure(state_base& from, state_base& to) {
  from.mark_retrieved();
  if (!to.try_claim())
    return false;
  to.finish_exception(from.error(), from.get_outcome());
  return true;
}

/// Copy (or, for move-only types, move) the whole outcome of done `from` into `to`.
template <class T> void transfer_outcome(state<T>& from, state<T>& to) {
  if (from.get_outcome() != outcome::value) {
    transfer_failure(from, to);
    return;
  }
  from.mark_retrieved();
  if constexpr (std::is_void_v<T>) {
    resolve_value(to);
  } else if constexpr (detail::is_copyable_v<T>) {
    forward_value(to, from.value());
  } else if (from.take_value()) {
    forward_value(to, std::move(from.value()));
  } else {
    resolve_exception(to, result_taken_error());
  }
}

template <class Handler, class T>
void initiate_wait::operator()(Handler&& h, state_ptr<T> s) const {
  wait_op<T, std::decay_t<Handler>>::start(std::move(s), std::forward<Handler>(h));
}

/// Cancels `s` because the continuation that would have resolved it was dropped.
void cancel_dropped(state_base& s) noexcept;

/// A continuation (a done-callback) that resolves `out`: `fn(arg, out)`. If it is destroyed
/// without having run — its future was destroyed unresolved, or the context that would run
/// it was destroyed — `out` ends cancelled instead of pending forever.
template <class U, class Fn> class resolver {
public:
  resolver(future<U> out, Fn fn) : fn_(std::move(fn)), out_(std::move(out)) {}
  resolver(resolver&&) = default; // leaves out_ empty
  resolver& operator=(resolver&&) = delete;
  ~resolver() {
    if (out_.valid())
      cancel_dropped(*access<U>::get(out_));
  }

  template <class A> void operator()(A&& arg) {
    future<U> out(std::move(out_));
    fn_(std::forward<A>(arg), out);
  }

private:
  Fn fn_;
  future<U> out_;
};

template <class U, class Fn> resolver<U, Fn> make_resolver(future<U> out, Fn fn) {
  return resolver<U, Fn>(std::move(out), std::move(fn));
}

/// The executor of `f`, for making a combinator's result or timer on it: throws
/// invalid_state_error if `f` is empty or its context was destroyed.
template <class F> asio::any_io_executor live_executor(const F& f) {
  const state_base* s = access<typename F::value_type>::get(f);
  if (!s)
    throw_invalid_state("asio_futures::future: empty handle");
  require_live_context(*s);
  return s->executor();
}

void throw_not_settable();
void throw_already_done();
void throw_not_ready();
void throw_result_taken();
void throw_would_deadlock();

template <class R> struct then_value { using type = R; };
template <class R>
requires is_future<R>::value struct then_value<R> {
  using type = typename R::value_type;
};

template <class F, class T> struct then_result { using type = std::invoke_result_t<F, T>; };
template <class F> struct then_result<F, void> { using type = std::invoke_result_t<F>; };

} // namespace detail

template <class T> template <class Executor>
requires std::is_convertible_v<const Executor&, asio::any_io_executor> &&
    (!std::is_base_of_v<asio::execution_context, Executor>)&&(!is_future<Executor>::value)
        future<T>::future(const Executor& ex) {
  if constexpr (std::is_constructible_v<bool, const Executor&>) {
    if (!ex)
      throw std::invalid_argument("asio_futures::future: empty executor");
  }
  // Make sure the context has its waiter service (a per-thread cache hit after the first
  // time), so that its shutdown is known to later waits even if none was registered before,
  // and remember which one it is: the state may outlive the context.
  const std::uint32_t serial = detail::serial_of(detail::service_for(ex));
  state_ = detail::state_ptr<T>(new detail::state<T>(ex));
  state_->set_context_serial(serial);
}

template <class T> detail::state<T>& future<T>::checked_state() const {
  if (!state_)
    detail::throw_invalid_state("asio_futures::future: empty handle");
  return *state_;
}

template <class T> bool future<T>::done() const {
  return checked_state().done();
}

template <class T> bool future<T>::cancelled() const {
  auto& s = checked_state();
  return s.done() && s.get_outcome() == detail::outcome::cancelled;
}

template <class T>
void future<T>::set_result(detail::value_arg<T> v) const requires(!std::is_void_v<T>) {
  if (!try_set_result(std::move(v)))
    detail::throw_already_done();
}

template <class T> void future<T>::set_result() const requires std::is_void_v<T> {
  if (!try_set_result())
    detail::throw_already_done();
}

template <class T> void future<T>::set_exception(std::exception_ptr e) const {
  if (!try_set_exception(std::move(e)))
    detail::throw_already_done();
}

template <class T>
bool future<T>::try_set_result(detail::value_arg<T> v) const requires(!std::is_void_v<T>) {
  auto& s = checked_state();
  if (s.hooks() && !s.hooks()->user_settable)
    detail::throw_not_settable();
  try {
    return detail::resolve_value(s, std::move(v));
  } catch (...) {
    // Constructing the value threw after the claim: the future failed with the exception
    // (its waiters see it) and the setter sees it thrown, so it is not a lost exception.
    s.mark_retrieved();
    throw;
  }
}

template <class T> bool future<T>::try_set_result() const requires std::is_void_v<T> {
  auto& s = checked_state();
  if (s.hooks() && !s.hooks()->user_settable)
    detail::throw_not_settable();
  return detail::resolve_value(s);
}

template <class T> bool future<T>::try_set_exception(std::exception_ptr e) const {
  auto& s = checked_state();
  if (s.hooks() && !s.hooks()->user_settable)
    detail::throw_not_settable();
  if (!e)
    throw std::invalid_argument("asio_futures::future::set_exception: null exception_ptr");
  return detail::resolve_exception(s, std::move(e));
}

template <class T> bool future<T>::cancel(std::string msg) const {
  return checked_state().cancel(std::move(msg));
}

template <class T> typename detail::result_ref<T>::type future<T>::result() const {
  auto& s = checked_state();
  if (!s.done())
    detail::throw_not_ready();
  s.mark_retrieved();
  if (s.get_outcome() != detail::outcome::value)
    std::rethrow_exception(s.error());
  if constexpr (!std::is_void_v<T>) {
    if constexpr (!detail::is_copyable_v<T>) {
      if (s.value_taken())
        detail::throw_result_taken();
    }
    return s.value();
  }
}

template <class T> std::exception_ptr future<T>::exception() const {
  auto& s = checked_state();
  if (!s.done())
    detail::throw_not_ready();
  switch (s.get_outcome()) {
  case detail::outcome::cancelled:
    std::rethrow_exception(s.error());
  case detail::outcome::exception:
    s.mark_retrieved();
    return s.error();
  default:
    return nullptr;
  }
}

template <class T> std::size_t future<T>::remove_done_callback(callback_id id) const {
  auto& s = checked_state();
  if (id.serial_ == 0)
    return 0;
  detail::node* n =
      s.remove_if([&](detail::node* x) { return x == id.node_ && x->serial_ == id.serial_; });
  if (!n)
    return 0;
  n->fn_(n, detail::node_action::destroy, &s);
  return 1;
}

template <class T> void future<T>::wait() const {
  auto& s = checked_state();
  if (s.done())
    return;
  // A destroyed context runs on no thread: the check must not touch it.
  if (detail::context_alive(s) && detail::running_in_this_thread(s.executor()))
    detail::throw_would_deadlock();
  detail::blocking_node n;
  if (s.push(&n))
    n.wait();
}

template <class T>
template <class Rep, class Period>
bool future<T>::wait_for(std::chrono::duration<Rep, Period> d) const {
  auto& s = checked_state();
  if (s.done())
    return true;
  // A destroyed context runs on no thread: the check must not touch it.
  if (detail::context_alive(s) && detail::running_in_this_thread(s.executor()))
    detail::throw_would_deadlock();
  if (d <= d.zero())
    return false;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::ceil<std::chrono::steady_clock::duration>(d);
  detail::blocking_node n;
  if (!s.push(&n))
    return true;
  if (n.wait_until(deadline))
    return true;
  if (s.remove(&n))
    return false;
  n.wait(); // the completer owns the node now and is about to signal it
  return true;
}

template <class T> T future<T>::get() const {
  wait();
  auto& s = *state_;
  if constexpr (std::is_void_v<T> || detail::is_copyable_v<T>) {
    return T(result());
  } else {
    s.mark_retrieved();
    if (s.get_outcome() != detail::outcome::value)
      std::rethrow_exception(s.error());
    if (!s.take_value())
      detail::throw_result_taken();
    return std::move(s.value());
  }
}

template <class T> asio::any_io_executor future<T>::get_executor() const {
  return checked_state().executor();
}

template <class T> template <class F> auto future<T>::then(F f) const {
  auto& s = checked_state();
  using R0 = typename detail::then_result<F&, T>::type;
  constexpr bool flatten = is_future<R0>::value;
  using RR = typename detail::then_value<R0>::type;
  detail::require_live_context(s);
  future<RR> out(s.executor());
  // f's own associated executor, if it has one (bound below); otherwise the callback runs on
  // the future's executor, the done-callbacks' default, with no executor copy to carry.
  constexpr bool own_executor =
      !std::is_same_v<asio::associated_executor_t<F, detail::no_associated_executor>,
                      detail::no_associated_executor>;
  auto ex = asio::get_associated_executor(f, s.executor());
  auto step =
      detail::make_resolver(out, [f = std::move(f)](future<T> src, const future<RR>& out) mutable {
        auto& from = *detail::access<T>::get(src);
        auto& to = *detail::access<RR>::get(out);
        if (to.done())
          return; // the result was cancelled: skip f
        if (from.get_outcome() != detail::outcome::value) {
          detail::transfer_failure(from, to);
          return;
        }
        from.mark_retrieved();
        try {
          auto call = [&]() -> R0 {
            if constexpr (std::is_void_v<T>) {
              return f();
            } else if constexpr (detail::is_copyable_v<T>) {
              return f(from.value());
            } else {
              if (!from.take_value())
                detail::throw_result_taken();
              return f(std::move(from.value()));
            }
          };
          if constexpr (flatten) {
            R0 inner = call();
            if (!inner.valid())
              detail::throw_invalid_state("then: the continuation returned an empty future");
            inner.add_done_callback(
                detail::make_resolver(out, [](future<RR> in, const future<RR>& result) {
                  detail::transfer_outcome(*detail::access<RR>::get(in),
                                           *detail::access<RR>::get(result));
                }));
          } else if constexpr (std::is_void_v<R0>) {
            call();
            detail::resolve_value(to);
          } else {
            detail::resolve_value(to, call());
          }
        } catch (...) {
          detail::resolve_exception(to, std::current_exception());
        }
      });
  if constexpr (own_executor)
    add_done_callback(asio::bind_executor(ex, std::move(step)));
  else
    add_done_callback(std::move(step));
  return out;
}

template <class T> auto future<T>::unwrap() const requires is_future<T>::value {
  using U = typename T::value_type;
  auto& s = checked_state();
  detail::require_live_context(s);
  future<U> out(s.executor());
  add_done_callback(detail::make_resolver(out, [](future<T> outer, const future<U>& out) {
    auto& from = *detail::access<T>::get(outer);
    auto& to = *detail::access<U>::get(out);
    if (from.get_outcome() != detail::outcome::value) {
      detail::transfer_failure(from, to);
      return;
    }
    from.mark_retrieved();
    future<U> inner = from.value();
    if (!inner.valid()) {
      detail::resolve_exception(
          to, std::make_exception_ptr(invalid_state_error("unwrap: the inner future is empty")));
      return;
    }
    inner.add_done_callback(detail::make_resolver(out, [](future<U> in, const future<U>& result) {
      detail::transfer_outcome(*detail::access<U>::get(in), *detail::access<U>::get(result));
    }));
  }));
  return out;
}

template <class Executor, class V>
requires(!std::is_convertible_v<Executor&, asio::execution_context&>)
    future<std::decay_t<V>> make_ready_future(const Executor& ex, V&& v) {
  future<std::decay_t<V>> f{asio::any_io_executor(ex)};
  f.set_result(std::forward<V>(v));
  return f;
}

template <class T>
future<T> make_exceptional_future(const asio::any_io_executor& ex, std::exception_ptr e) {
  future<T> f(ex);
  f.set_exception(std::move(e));
  return f;
}

template <class T>
future<T> make_cancelled_future(const asio::any_io_executor& ex, std::string msg) {
  future<T> f(ex);
  f.cancel(std::move(msg));
  return f;
}

} // namespace asio_futures

#endif // ASIO_FUTURES_IMPL_FUTURE_HPP
