//
// asio_futures/detail/inline_op.hpp
//
// Internal continuations that run on the completing thread: the bookkeeping of combinators
// (gather, wait, shield, ...). Never for user code.
//
#ifndef ASIO_FUTURES_DETAIL_INLINE_OP_HPP
#define ASIO_FUTURES_DETAIL_INLINE_OP_HPP

#include <asio_futures/detail/state.hpp>
#include <asio_futures/future.hpp>

#include <memory>
#include <utility>

namespace asio_futures::detail {

/// A node of a future's list whose function runs *inline*, on the thread that completes the
/// future, while the completer walks its list. `F` is called exactly once, as
///   - `f(true)`  when the future is done (its outcome is readable through a handle), or
///   - `f(false)` when the node is destroyed without the future completing (the future's state
///     is being destroyed, or the node was removed by `detach_inline`).
/// `f` must be short, thread-safe and noexcept in effect (it runs inside someone else's
/// set_result): bookkeeping on atomics, resolving another future (whose own waiters are
/// posted), never user code.
template <class F> class inline_op final : public node {
public:
  explicit inline_op(F f) : node(&do_fn), f_(std::move(f)) {}

private:
  static void do_fn(node* n, node_action a, state_base*) noexcept {
    std::unique_ptr<inline_op> self(static_cast<inline_op*>(n));
    std::move(self->f_)(a != node_action::destroy);
  }

  F f_;
};

/// Links `f` to `fut` (see inline_op). If `fut` is already done, calls `f(true)` here and
/// returns nullptr; otherwise returns the node, for detach_inline. Throws only bad_alloc
/// (then `f` is not called).
template <class T, class F> node* on_done_inline(const future<T>& fut, F f) {
  state<T>* s = access<T>::get(fut);
  auto* op = new inline_op<F>(std::move(f));
  if (s->push(op))
    return op;
  // Already done (the outcome was published before push() saw done_bit): run it here.
  op->fn_(op, node_action::complete, s);
  return nullptr;
}

/// Unlinks `n` (returned by on_done_inline) from `fut` if it is still linked, and destroys
/// it with `f(false)`. False if it was already taken by the completer (then `f(true)` runs or
/// has run).
template <class T> bool detach_inline(const future<T>& fut, node* n) noexcept {
  if (!n || !access<T>::get(fut)->remove(n))
    return false;
  n->fn_(n, node_action::destroy, access<T>::get(fut));
  return true;
}

} // namespace asio_futures::detail

#endif // ASIO_FUTURES_DETAIL_INLINE_OP_HPP
