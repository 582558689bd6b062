//
// asio_futures/impl/shield.hpp
//
// The two inline nodes behind shield: one on the inner future forwards its outcome, one on
// the result detaches the first when the result is cancelled.
//
#ifndef ASIO_FUTURES_IMPL_SHIELD_HPP
#define ASIO_FUTURES_IMPL_SHIELD_HPP

#include <asio_futures/detail/state.hpp>

#include <atomic>
#include <cstdint>
#include <utility>

namespace asio_futures {
namespace detail {

/// Moves or copies the outcome of the done `from` into `to`, claiming `to` first: if `to` is
/// already done (the shield's result was cancelled), `from`'s value stays where it is for its
/// other consumers. Never throws.
template <class T> void forward_outcome(state<T>& from, state<T>& to) noexcept {
  from.mark_retrieved(); // asyncio's shield retrieves the inner's exception in every case
  if (!to.try_claim())
    return;
  if (from.get_outcome() != outcome::value) {
    to.finish_exception(from.error(), from.get_outcome());
    return;
  }
  try {
    if constexpr (std::is_void_v<T>) {
      to.finish_value();
    } else if constexpr (is_copyable_v<T>) {
      to.finish_value(from.value());
    } else if (from.take_value()) {
      to.finish_value(std::move(from.value()));
    } else {
      to.finish_exception(result_taken_error(), outcome::exception);
    }
  } catch (...) {
    // finish_value failed `to` with this exception (a throwing copy): it stays there.
  }
}

/// One shield: the inner future, the result, and a node on each.
///
/// Reference count: one per linked node plus one for the initiating call. Both nodes live in
/// this object, so neither's memory is reused while the other may still try to unlink it
/// (no ABA on the inner's list). The references to `inner_` and `out_` are dropped only when
/// the object dies, i.e. once both nodes ran: after `inner` completed (which resolves the
/// result) or after the result was cancelled and the inner node was unlinked — except that a
/// result abandoned by its last observer drops `inner_` at once (on_out).
template <class T> class shield_link {
  struct link_node : node {
    link_node(node::fn_type fn, shield_link* owner) noexcept : node(fn), owner_(owner) {}
    shield_link* owner_;
  };

public:
  static future<T> start(const future<T>& inner) {
    state<T>& is = *access<T>::get(inner);
    if (is.done())
      return inner;
    require_live_context(is);
    future<T> out(is.executor());
    access<T>::get(out)->make_abandonable();
    auto* sh =
        new shield_link(access<T>::share(inner), internal_ptr<T>::share(access<T>::get(out)));
    if (!is.push(&sh->inner_node_))
      on_inner(&sh->inner_node_, node_action::complete, &is);
    state<T>& os = *sh->out_;
    if (!os.push(&sh->out_node_))
      on_out(&sh->out_node_, node_action::complete, &os);
    sh->release();
    return out;
  }

private:
  shield_link(state_ptr<T> inner, internal_ptr<T> out) noexcept
      : inner_(std::move(inner)), out_(std::move(out)), inner_node_(&on_inner, this),
        out_node_(&on_out, this) {}

  void release() noexcept {
    // acq_rel: the last dropper sees every node's writes before destroying the object.
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1)
      delete this;
  }

  /// Inline in the inner's completer: forward the outcome (unless the result is done).
  static void on_inner(node* n, node_action a, state_base* s) noexcept {
    auto* sh = static_cast<link_node*>(n)->owner_;
    if (a != node_action::destroy)
      forward_outcome(static_cast<state<T>&>(*s), *sh->out_);
    sh->release();
  }

  /// Inline in the result's completer: a result done before the inner lets go of it (asyncio's
  /// shield removes its done-callback from the inner the same way when cancelled): whatever
  /// ended it (cancelled, resolved through a handle, or abandoned), so that an inner that is
  /// itself a combinator result sees no node of ours. After the inner completed there is
  /// nothing to remove. `destroy` comes from the result's last observer leaving it pending
  /// (state_base::abandon): the inner's handle is also dropped at once.
  static void on_out(node* n, node_action a, state_base*) noexcept {
    auto* sh = static_cast<link_node*>(n)->owner_;
    if (sh->inner_->remove(&sh->inner_node_))
      on_inner(&sh->inner_node_, node_action::destroy, sh->inner_.get());
    if (a == node_action::destroy)
      sh->inner_.reset(); // on_inner never reads inner_; the destructor runs after us
    sh->release();
  }

  std::atomic<std::uint32_t> refs_{3};
  state_ptr<T> inner_;
  internal_ptr<T> out_;  // our own hold on the result
  link_node inner_node_; // linked in inner_'s list
  link_node out_node_;   // linked in out_'s list
};

} // namespace detail

template <future_like F> future<typename F::value_type> shield(const F& inner) {
  using T = typename F::value_type;
  if (!inner.valid())
    detail::throw_invalid_state("asio_futures::shield: empty future handle");
  return detail::shield_link<T>::start(inner);
}

} // namespace asio_futures

#endif // ASIO_FUTURES_IMPL_SHIELD_HPP
