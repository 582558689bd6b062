//
// asio_futures/detail/service.hpp
//
// The execution_context service that owns pending async waiters for shutdown.
//
#ifndef ASIO_FUTURES_DETAIL_SERVICE_HPP
#define ASIO_FUTURES_DETAIL_SERVICE_HPP

#include <asio_futures/detail/state.hpp>

#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/query.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace asio_futures::detail {

class waiter_service;

/// A node that is an async waiter or a done-callback: besides the future's list it is linked in
/// the registry of the service of its handler executor's context, so that destroying that
/// context destroys it (and the coroutine frame it holds) instead of leaking the frame <->
/// state cycle, and so that a completer on another thread submitting it meanwhile is waited
/// for (begin_flight) instead of submitting into a destroyed context.
struct wait_node : node {
  using node::node;

  // Registry links; guarded by the service's lock.
  wait_node* reg_prev_ = nullptr;
  wait_node* reg_next_ = nullptr;
  waiter_service* svc_ = nullptr; // null when not registered
  state_base* owner_ = nullptr;   // the state whose list holds (or held) this node
};

/// One per execution_context (Asio's `use_service`). Like Asio's own timer and reactor
/// services it keeps every pending operation reachable, so that `shutdown()` can destroy
/// them without invoking them.
///
/// Lock: a spin lock held for a few pointer writes (register/unregister) or for the shutdown
/// walk. Lock order: service lock, then a state's list lock (never the reverse: nobody takes
/// the service lock while holding a list lock).
class waiter_service final : public boost::asio::execution_context::service {
public:
  using key_type = waiter_service;
  static boost::asio::execution_context::id id;

  explicit waiter_service(boost::asio::execution_context& ctx);
  ~waiter_service() override;

  /// The service of `ctx`; cached per thread (use_service takes a mutex).
  static waiter_service& of(boost::asio::execution_context& ctx) {
    // acquire: pairs with the release increment in ~waiter_service.
    const std::uint64_t epoch = epoch_.load(std::memory_order_acquire);
    cache& c = cache_;
    if (c.ctx == &ctx && c.epoch == epoch) [[likely]]
      return *c.svc;
    return lookup(ctx, epoch);
  }

  /// True once the context has shut down: no new waits are accepted.
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

  /// This service's number, unique among the waiter services of the process (a 32-bit count,
  /// never 0): what a future's state remembers of its context, to tell later whether that
  /// context still exists without touching it.
  std::uint32_t serial() const noexcept { return serial_; }

  /// Whether `ctx` still exists with the service numbered `serial`. Never dereferences `ctx`.
  static bool alive(const boost::asio::execution_context* ctx, std::uint32_t serial) noexcept {
    // acquire: pairs with the release increment in ~waiter_service (the cached service is
    // alive while the epoch is unchanged).
    const std::uint64_t epoch = epoch_.load(std::memory_order_acquire);
    const cache& c = cache_;
    if (c.ctx == ctx && c.epoch == epoch) [[likely]]
      return c.svc->serial_ == serial;
    return registered(ctx, serial);
  }

  /// Registers a waiter; throws invalid_state_error if the context has shut down.
  void add(wait_node* n) {
    if (!try_add(n)) [[unlikely]]
      throw_closed();
  }

  /// Registers a waiter unless the context has shut down (then false: not registered).
  bool try_add(wait_node* n) noexcept {
    lock();
    const bool open = !closed_.load(std::memory_order_relaxed);
    if (open) {
      n->svc_ = this;
      n->reg_prev_ = nullptr;
      n->reg_next_ = head_;
      if (head_)
        head_->reg_prev_ = n;
      head_ = n;
    }
    unlock();
    return open;
  }

  /// Unregisters a waiter (its owner calls this before destroying it).
  void remove(wait_node* n) noexcept {
    lock();
    if (n->svc_ == this)
      unlink(n);
    unlock();
  }

  /// A completer took `n` out of its future's list and is about to submit its completion to
  /// this context: unregisters it and counts it *in flight* until end_flight(), in one step
  /// under the lock, so that shutdown() — which cannot take such a waiter — sees it either
  /// registered or in flight, and waits for its submission to be over.
  void begin_flight(wait_node* n) noexcept {
    lock();
    if (n->svc_ == this)
      unlink(n);
    // relaxed: read by shutdown() under the lock.
    in_flight_.fetch_add(1, std::memory_order_relaxed);
    unlock();
  }

  /// The submission that begin_flight() announced is over; the service (and its context) may
  /// be destroyed from here on.
  void end_flight() noexcept {
    // release: the submission happens before shutdown() returns (its acquire load).
    in_flight_.fetch_sub(1, std::memory_order_release);
  }

private:
  struct cache {
    boost::asio::execution_context* ctx = nullptr;
    waiter_service* svc = nullptr;
    std::uint64_t epoch = 0;
  };
  // Bumped whenever a waiter_service dies, so that a per-thread cache keyed by context
  // address never returns the service of a destroyed context whose address was reused.
  static std::atomic<std::uint64_t> epoch_;
  static thread_local cache cache_;

  static waiter_service& lookup(boost::asio::execution_context& ctx, std::uint64_t epoch);
  /// alive() without the cache: the process-wide registry of live services.
  static bool registered(const boost::asio::execution_context* ctx, std::uint32_t serial) noexcept;
  [[noreturn]] static void throw_closed();

  void shutdown() override;

  void unlink(wait_node* n) noexcept {
    if (n->reg_prev_)
      n->reg_prev_->reg_next_ = n->reg_next_;
    else
      head_ = n->reg_next_;
    if (n->reg_next_)
      n->reg_next_->reg_prev_ = n->reg_prev_;
    n->svc_ = nullptr;
    n->reg_prev_ = n->reg_next_ = nullptr;
  }

  void lock() noexcept {
    unsigned spins = 0;
    // acquire: the registry links written under the previous holder are visible.
    while (locked_.exchange(true, std::memory_order_acquire))
      [[unlikely]] spin_pause(spins);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

  std::atomic<bool> locked_{false};
  std::atomic<bool> closed_{false};
  std::atomic<std::size_t> in_flight_{0}; // completions being submitted (begin_flight)
  wait_node* head_ = nullptr;
  const std::uint32_t serial_;
};

/// The service for the context of executor `ex`, or nullptr if `ex` cannot tell its context
/// (defined in ops.hpp, beside context_of).
template <class Executor> waiter_service* service_for(const Executor& ex);

/// Unregister `n` from its service if it is registered.
inline void unregister(wait_node* n) noexcept {
  if (waiter_service* s = n->svc_)
    s->remove(n);
}

/// Before submitting the completion of a waiter taken out of its future's list: unregisters
/// it and counts it in flight (waiter_service::begin_flight). The caller calls end_flight()
/// on the returned service (if any) once the submission is over, whether or not it threw.
inline waiter_service* unregister_for_flight(wait_node* n) noexcept {
  // The completer owns `n` now: shutdown() never writes its svc_ (it writes only the links
  // of waiters it took itself).
  waiter_service* s = n->svc_;
  if (s)
    s->begin_flight(n);
  return s;
}

} // namespace asio_futures::detail

#endif // ASIO_FUTURES_DETAIL_SERVICE_HPP
