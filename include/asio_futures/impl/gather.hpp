//
// asio_futures/impl/gather.hpp
//
// The bookkeeping behind gather: one shared object per gather, with a list node per child
// embedded in it, run inline by whoever completes a child.
//
#ifndef ASIO_FUTURES_IMPL_GATHER_HPP
#define ASIO_FUTURES_IMPL_GATHER_HPP

#include <asio_futures/detail/state.hpp>

#include <boost/asio/system_executor.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <optional>
#include <string>
#include <tuple>
#include <utility>

namespace asio_futures {
namespace detail {

// --- reading a done child ---------------------------------------------------------------------
// These run inline in the completer of the child (see gather_node), or on the initiating
// thread for a child that is already done.

/// Constructs `slot` from the value of the done child `cs` (which holds a value): a copy, or
/// for a move-only `T` the value moved out (throws invalid_state_error if someone else took it
/// first), or `std::monostate` for void. Marks the child retrieved.
template <class T> void store_child_value(state<T>& cs, value_storage<gather_value_t<T>>& slot) {
  cs.mark_retrieved();
  if constexpr (std::is_void_v<T>) {
    slot.construct();
  } else if constexpr (is_copyable_v<T>) {
    slot.construct(cs.value());
  } else {
    if (!cs.take_value())
      throw_result_taken();
    slot.construct(std::move(cs.value()));
  }
}

/// Constructs `slot` from the whole outcome of the done child `cs`; never throws (a failure to
/// read the value becomes the outcome's exception).
template <class T>
void store_child_outcome(state<T>& cs, value_storage<::asio_futures::outcome<T>>& slot) noexcept {
  using result = ::asio_futures::outcome<T>;
  cs.mark_retrieved();
  if (cs.get_outcome() != outcome::value) {
    slot.construct(cs.error()); // a cancelled child holds its cancelled_error here
    return;
  }
  try {
    if constexpr (std::is_void_v<T>) {
      slot.construct(std::in_place);
    } else if constexpr (is_copyable_v<T>) {
      slot.construct(std::in_place, cs.value());
    } else {
      if (!cs.take_value())
        throw_result_taken();
      slot.construct(std::in_place, std::move(cs.value()));
    }
  } catch (...) {
    slot.construct(result(std::current_exception()));
  }
}

/// Takes the outcome of the done child `cs` for a gather whose result is `out`: into `slot`
/// (then `filled` is set), or, for the plain form, a failure into the result. The first
/// failure fails the gather (a cancelled child gives its cancelled_error, as an exception: the
/// gather is not cancelled); later ones are only retrieved.
template <bool Collect, class T, class R, class Slot>
void store_child(state<T>& cs, state<R>& out, Slot& slot, bool& filled) noexcept {
  if constexpr (Collect) {
    store_child_outcome(cs, slot);
    filled = true;
  } else if (cs.get_outcome() != outcome::value) {
    cs.mark_retrieved();
    resolve_exception(out, cs.error());
  } else if (!out.done()) {
    try {
      store_child_value(cs, slot);
      filled = true;
    } catch (...) {
      resolve_exception(out, std::current_exception());
    }
  }
}

/// The message of the cancelled_error in `e` (empty if it is something else).
std::string cancel_message_of(const std::exception_ptr& e) noexcept;

/// Requests cancellation of the state `s` with `msg` if it is not done; never throws (a
/// failing cancel hook leaves that child running).
inline void cancel_child(state_base& s, const std::string& msg) noexcept {
  if (s.done())
    return;
  try {
    s.cancel(std::string(msg));
  } catch (...) {
  }
}

// --- the gather object ------------------------------------------------------------------------

/// The counting of a gather, whatever its shape (tuple or vector): one atomic word.
///
///   count_ = (children not yet processed) * child + (other references)
///
/// A child's node holds its reference through the high part: while it is linked in the
/// child's list the gather (and the node embedded in it) stays alive. The other references
/// (the low two bits, at most 3) are the result's node, the initiating call while it links
/// the nodes, and the last child while it builds the result.
///
/// Processing a child is a single compare-and-swap: it removes the child's share, and the
/// last child converts its share into an ordinary reference in the same step, because it
/// still reads the slots after that (a concurrent release by the result's node must not
/// destroy the gather meanwhile). Every update is acq_rel: each child's completer writes its
/// slot before its update (release), and the last one reads every slot after its own
/// (acquire on the release sequence of the word). Destruction happens when the word reaches
/// zero, which only an ordinary reference's release can do.
///
/// The result is resolved exactly once by whoever wins its claim: the last child (values),
/// the first failing child (plain form), or a canceller of the result.
class gather_counts {
public:
  explicit gather_counts(std::size_t children) noexcept : count_(children * child + 2) {}

protected:
  /// A child was processed (completed, or its state died unresolved after the gather let go
  /// of it). True for the last one, which then holds an ordinary reference: it builds the
  /// result, then calls drop().
  bool child_processed() noexcept {
    std::uint64_t cur = count_.load(std::memory_order_relaxed);
    for (;;) {
      const std::uint64_t next = cur / child == 1 ? cur - child + 1 : cur - child;
      if (count_.compare_exchange_weak(cur, next, std::memory_order_acq_rel,
                                       std::memory_order_relaxed))
        return cur / child == 1;
    }
  }

  /// Drops an ordinary reference; true if it was the last one (the caller destroys the object).
  bool drop() noexcept { return count_.fetch_sub(1, std::memory_order_acq_rel) == 1; }

private:
  static constexpr std::uint64_t child = 4;
  std::atomic<std::uint64_t> count_;
};

template <class Owner> struct gather_node : node {
  gather_node(node::fn_type fn, Owner* owner) noexcept : node(fn), owner_(owner) {}
  Owner* owner_;
};

/// Resolves `out` with the value built by `build()`, if nobody resolved it first. Never
/// throws: a failure to build the result (bad_alloc, a throwing move) fails it instead.
template <class R, class Build> void finish_gather(state<R>& out, Build&& build) noexcept {
  if (out.done() || !out.try_claim())
    return; // failed early or cancelled: the slots are destroyed with the gather object
  std::optional<R> built;
  try {
    built.emplace(std::forward<Build>(build)());
  } catch (...) {
    out.finish_exception(std::current_exception(), outcome::exception);
    return;
  }
  try {
    out.finish_value(std::move(*built));
  } catch (...) {
    // finish_value already failed `out` with this exception.
  }
}

/// The variadic gather: the children, their result slots and their nodes in one object.
template <bool Collect, class Indices, class... Ts> class gather_tuple;

template <bool Collect, std::size_t... Is, class... Ts>
class gather_tuple<Collect, std::index_sequence<Is...>, Ts...> final : gather_counts {
  template <class T>
  using slot_t = std::conditional_t<Collect, ::asio_futures::outcome<T>, gather_value_t<T>>;

public:
  using result_type = std::tuple<slot_t<Ts>...>;

  /// The whole gather call: validates, allocates, links, returns the result future.
  template <class... Fs> static future<result_type> start(const Fs&... children) {
    if ((!children.valid() || ...))
      throw_invalid_state("asio_futures::gather: empty future handle");
    future<result_type> out(first_executor(children...));
    access<result_type>::get(out)->make_abandonable();
    auto* g = new gather_tuple(internal_ptr<result_type>::share(access<result_type>::get(out)),
                               children...);
    (g->template link<Is>(), ...);
    // The result's node last: until now nobody else could read children_ (the result is not
    // handed out yet, and a child failing meanwhile resolves it without running this node).
    state<result_type>& os = *g->out_;
    if (!os.push(&g->out_node_))
      on_out(&g->out_node_, node_action::complete, &os);
    g->release();
    return out;
  }

private:
  template <class... Fs>
  gather_tuple(internal_ptr<result_type> out, const Fs&... children)
      : gather_counts(sizeof...(Ts)), out_(std::move(out)),
        children_(future<Ts>(access<Ts>::share(children))...), nodes_{{gather_node<gather_tuple>(
                                                                   &on_child<Is>, this)...}},
        out_node_(&on_out, this) {}

  ~gather_tuple() { ((filled_[Is] ? std::get<Is>(slots_).destroy() : void()), ...); }

  template <class F, class... Rest>
  static asio::any_io_executor first_executor(const F& f, const Rest&...) {
    return live_executor(f);
  }

  void release() noexcept {
    if (drop())
      delete this;
  }

  template <std::size_t I> void link() noexcept {
    auto& cs = *access<std::tuple_element_t<I, std::tuple<Ts...>>>::get(std::get<I>(children_));
    node* n = &std::get<I>(nodes_);
    if (!cs.push(n))
      on_child<I>(n, node_action::complete, &cs); // already done: process it here
  }

  /// Runs inline in the completer of child I (or is destroyed with it, after the gather let
  /// go of it). Never throws.
  template <std::size_t I> static void on_child(node* n, node_action a, state_base* s) noexcept {
    using T = std::tuple_element_t<I, std::tuple<Ts...>>;
    auto* g = static_cast<gather_node<gather_tuple>*>(n)->owner_;
    if (a != node_action::destroy)
      g->template store<I>(static_cast<state<T>&>(*s));
    if (g->child_processed()) {
      // acquire: pairs with the release in on_out (our count update follows the abandoner's
      // own in the count's modification order whenever a child was unlinked unprocessed).
      if (!g->unwatched_.load(std::memory_order_acquire))
        finish_gather(*g->out_,
                      [g] { return result_type(std::move(std::get<Is>(g->slots_).ref())...); });
      g->release();
    }
  }

  /// Takes child I's outcome: into its slot, or (plain form, a failure) into the result.
  template <std::size_t I, class T> void store(state<T>& cs) noexcept {
    store_child<Collect>(cs, *out_, std::get<I>(slots_), filled_[I]);
  }

  /// Unlinks our node from child I if it is still there (the child then counts as processed,
  /// without an outcome): every child if `all`, else only a child that is itself a combinator
  /// result (abandonable). Before the child's handle is dropped: such a child must see no node
  /// of ours when its last observer goes. Other pending children keep our node after the
  /// result is done, so that their failures are still retrieved by us (asyncio's gather
  /// retrieves them too).
  template <std::size_t I> void unwatch(bool all) noexcept {
    auto& cs = *access<std::tuple_element_t<I, std::tuple<Ts...>>>::get(std::get<I>(children_));
    node* n = &std::get<I>(nodes_);
    if ((all || cs.abandonable()) && cs.remove(n))
      on_child<I>(n, node_action::destroy, &cs);
  }

  /// Runs inline in whoever completes the result (once): cancels the pending children if the
  /// result was cancelled, then lets go of every child. `destroy` comes from the result's
  /// last observer leaving it pending (state_base::abandon): nobody will read the result, so
  /// the children are unwatched and let go of, uncancelled (they run on for their other
  /// holders, as asyncio's gather children do when the gather is garbage).
  static void on_out(node* n, node_action a, state_base* s) noexcept {
    auto* g = static_cast<gather_node<gather_tuple>*>(n)->owner_;
    if (a == node_action::destroy) {
      // release: see on_child. No result will be built from the slots left unfilled; a child
      // failing meanwhile still fails the (unread) result, which then reports it as lost.
      g->unwatched_.store(true, std::memory_order_release);
      (g->template unwatch<Is>(true), ...);
    } else {
      if (s->get_outcome() == outcome::cancelled) {
        const std::string msg = cancel_message_of(s->error());
        (cancel_child(*access<Ts>::get(std::get<Is>(g->children_)), msg), ...);
      }
      // A pending child that is itself a combinator result must not stay observed by us.
      (g->template unwatch<Is>(false), ...);
    }
    // Dropping a child's last reference destroys it and with it our node there (on_child
    // with destroy): our own reference keeps the gather alive meanwhile.
    ((std::get<Is>(g->children_) = future<Ts>()), ...);
    g->release();
  }

  internal_ptr<result_type> out_;                  // our own hold on the result
  std::atomic<bool> unwatched_{false};             // abandoned: never build the result
  std::tuple<future<Ts>...> children_;             // dropped by on_out once the result is done
  std::tuple<value_storage<slot_t<Ts>>...> slots_; // slot I written once by child I's completer
  bool filled_[sizeof...(Ts)] = {};                // slot I constructed (same writer, before its
                                                   // update of the count)
  std::array<gather_node<gather_tuple>, sizeof...(Ts)> nodes_; // node I: on child I's list
  gather_node<gather_tuple> out_node_;
};

/// The ranged gather: one allocation holding this header followed by one entry per child
/// (its list node, its result slot and its filled flag).
template <bool Collect, class F> class gather_vector final : gather_counts {
  using T = typename F::value_type;
  using slot_t = std::conditional_t<Collect, ::asio_futures::outcome<T>, gather_value_t<T>>;

  struct entry : gather_node<gather_vector> {
    explicit entry(gather_vector* g) noexcept : gather_node<gather_vector>(&on_child, g) {}
    bool filled = false;
    value_storage<slot_t> slot;
  };

  // Functions, not constants: the class is complete only inside member function bodies.
  static constexpr std::size_t align() noexcept {
    return std::max(alignof(entry), alignof(gather_vector));
  }
  static constexpr std::size_t entries_offset() noexcept {
    return (sizeof(gather_vector) + alignof(entry) - 1) / alignof(entry) * alignof(entry);
  }

public:
  using result_type = std::vector<slot_t>;

  static future<result_type> start(const asio::any_io_executor& ex, std::vector<F>&& children) {
    for (const F& c : children)
      if (!c.valid())
        throw_invalid_state("asio_futures::gather: empty future handle");
    future<result_type> out(ex);
    if (children.empty()) {
      resolve_value(*access<result_type>::get(out));
      return out;
    }
    const std::size_t n = children.size();
    void* mem = ::operator new(entries_offset() + n * sizeof(entry), std::align_val_t(align()));
    access<result_type>::get(out)->make_abandonable();
    auto* g = ::new (mem) gather_vector(
        internal_ptr<result_type>::share(access<result_type>::get(out)), std::move(children));
    for (std::size_t i = 0; i < n; ++i)
      ::new (static_cast<void*>(g->entries() + i)) entry(g);
    for (std::size_t i = 0; i < n; ++i) {
      auto& cs = *access<T>::get(g->children_[i]);
      if (!cs.push(g->entries() + i))
        on_child(g->entries() + i, node_action::complete, &cs);
    }
    // The result's node last (see gather_tuple::start).
    state<result_type>& os = *g->out_;
    if (!os.push(&g->out_node_))
      on_out(&g->out_node_, node_action::complete, &os);
    g->release();
    return out;
  }

private:
  gather_vector(internal_ptr<result_type> out, std::vector<F>&& children) noexcept
      : gather_counts(children.size()), out_(std::move(out)), children_(std::move(children)),
        size_(children_.size()), out_node_(&on_out, this) {}

  ~gather_vector() {
    entry* e = entries();
    for (std::size_t i = 0; i < size_; ++i) {
      if (e[i].filled)
        e[i].slot.destroy();
      e[i].~entry();
    }
  }

  entry* entries() noexcept {
    return std::launder(reinterpret_cast<entry*>(reinterpret_cast<char*>(this) + entries_offset()));
  }

  void release() noexcept {
    if (drop()) {
      this->~gather_vector();
      ::operator delete(static_cast<void*>(this), std::align_val_t(align()));
    }
  }

  static void on_child(node* n, node_action a, state_base* s) noexcept {
    auto* e = static_cast<entry*>(n);
    gather_vector* g = e->owner_;
    if (a != node_action::destroy)
      g->store(*e, static_cast<state<T>&>(*s));
    if (g->child_processed()) {
      if (!g->unwatched_.load(std::memory_order_acquire)) // see gather_tuple::on_child
        finish_gather(*g->out_, [g] {
          result_type v;
          v.reserve(g->size_);
          entry* es = g->entries();
          for (std::size_t i = 0; i < g->size_; ++i)
            v.push_back(std::move(es[i].slot.ref()));
          return v;
        });
      g->release();
    }
  }

  /// Takes a child's outcome (see gather_tuple::store).
  void store(entry& e, state<T>& cs) noexcept { store_child<Collect>(cs, *out_, e.slot, e.filled); }

  /// See gather_tuple::on_out.
  static void on_out(node* n, node_action a, state_base* s) noexcept {
    auto* g = static_cast<gather_node<gather_vector>*>(n)->owner_;
    const bool all = a == node_action::destroy;
    if (all) {
      g->unwatched_.store(true, std::memory_order_release);
    } else if (s->get_outcome() == outcome::cancelled) {
      const std::string msg = cancel_message_of(s->error());
      for (const F& c : g->children_)
        cancel_child(*access<T>::get(c), msg);
    }
    entry* es = g->entries();
    for (std::size_t i = 0; i < g->size_; ++i) {
      state<T>& cs = *access<T>::get(g->children_[i]);
      if ((all || cs.abandonable()) && cs.remove(es + i))
        on_child(es + i, node_action::destroy, &cs);
    }
    std::vector<F>().swap(g->children_); // see gather_tuple::on_out
    g->release();
  }

  internal_ptr<result_type> out_;      // our own hold on the result
  std::atomic<bool> unwatched_{false}; // abandoned: never build the result
  std::vector<F> children_;            // dropped by on_out once the result is done
  std::size_t size_;
  gather_node<gather_vector> out_node_;
};

template <bool Collect, class... Fs>
using gather_tuple_for =
    gather_tuple<Collect, std::index_sequence_for<Fs...>, typename Fs::value_type...>;

} // namespace detail

template <future_like... Fs>
requires(sizeof...(Fs) > 0) auto gather(const Fs&... children)
    -> future<std::tuple<gather_value_t<typename Fs::value_type>...>> {
  return detail::gather_tuple_for<false, Fs...>::start(children...);
}

template <future_like... Fs>
requires(sizeof...(Fs) > 0) auto gather(return_exceptions_t, const Fs&... children)
    -> future<std::tuple<outcome<typename Fs::value_type>...>> {
  return detail::gather_tuple_for<true, Fs...>::start(children...);
}

template <future_like F>
auto gather(std::vector<F> children)
    -> future<std::vector<gather_value_t<typename F::value_type>>> {
  asio::any_io_executor ex = children.empty() ? asio::any_io_executor(asio::system_executor())
                                              : detail::live_executor(children.front());
  return detail::gather_vector<false, F>::start(ex, std::move(children));
}

template <class Executor, future_like F>
requires std::is_convertible_v<const Executor&, asio::any_io_executor> &&
    (!future_like<Executor>)auto gather(const Executor& ex, std::vector<F> children)
        -> future<std::vector<gather_value_t<typename F::value_type>>> {
  return detail::gather_vector<false, F>::start(asio::any_io_executor(ex), std::move(children));
}

template <future_like F>
auto gather(return_exceptions_t, std::vector<F> children)
    -> future<std::vector<outcome<typename F::value_type>>> {
  asio::any_io_executor ex = children.empty() ? asio::any_io_executor(asio::system_executor())
                                              : detail::live_executor(children.front());
  return detail::gather_vector<true, F>::start(ex, std::move(children));
}

template <class Executor, future_like F>
requires std::is_convertible_v<const Executor&, asio::any_io_executor> &&
    (!future_like<Executor>)auto gather(return_exceptions_t, const Executor& ex,
                                        std::vector<F> children)
        -> future<std::vector<outcome<typename F::value_type>>> {
  return detail::gather_vector<true, F>::start(asio::any_io_executor(ex), std::move(children));
}

} // namespace asio_futures

#endif // ASIO_FUTURES_IMPL_GATHER_HPP
