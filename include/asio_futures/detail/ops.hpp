//
// asio_futures/detail/ops.hpp
//
// The nodes a future's list holds: async waiters (wait_op), done-callbacks (callback_op) and
// blocking waiters (blocking_node), and how each one completes.
//
#ifndef ASIO_FUTURES_DETAIL_OPS_HPP
#define ASIO_FUTURES_DETAIL_OPS_HPP

#include <asio_futures/detail/service.hpp>
#include <asio_futures/detail/state.hpp>
#include <asio_futures/error.hpp>

#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/detail/executor_op.hpp>
#include <boost/asio/detail/operation.hpp>
#include <boost/asio/execution/allocator.hpp>
#include <boost/asio/execution/blocking.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/execution/relationship.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/require.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/version.hpp>
#if BOOST_ASIO_VERSION >= 102800
#include <boost/asio/associated_immediate_executor.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/dispatch.hpp>
#endif

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <typeinfo>
#include <utility>

namespace asio_futures::detail {

namespace asio = boost::asio;

/// Asio's default for operation storage: std::allocator becomes the per-thread recycling
/// allocator (what Asio's own operations do).
template <class Alloc> struct default_op_allocator {
  using type = Alloc;
  static type get(const Alloc& a) noexcept { return a; }
};
template <class T> struct default_op_allocator<std::allocator<T>> {
  using type = asio::recycling_allocator<void>;
  static type get(const std::allocator<T>&) noexcept { return {}; }
};

template <class Handler>
using handler_allocator_t = typename default_op_allocator<
    asio::associated_allocator_t<Handler, std::allocator<void>>>::type;

template <class Handler> handler_allocator_t<Handler> get_handler_allocator(const Handler& h) {
  return default_op_allocator<asio::associated_allocator_t<Handler, std::allocator<void>>>::get(
      asio::get_associated_allocator(h, std::allocator<void>()));
}

/// `ex.target<T>()` if `ex` holds a T, tested by type_info *identity*: for optional fast paths
/// only. libstdc++ compares two distinct type_info objects by name (a strcmp of two long
/// mangled names per failed check); identity is one pointer comparison. A T whose type_info
/// comes from another shared object may be missed, so the caller's other path must be
/// correct for it too.
template <class T, class Executor> const T* target_fast(const Executor& ex) noexcept {
  return &ex.target_type() == &typeid(T) ? ex.template target<T>() : nullptr;
}

/// The default given to associated_executor to learn whether a type has its own executor.
struct no_associated_executor {};

/// Memory set aside when a wait starts for the record its executor makes when the wait's
/// completion is submitted: an io_context's or thread_pool's executor allocates one queued
/// operation per submitted function (with the allocator it is given), and that submission
/// happens on the completing thread, inside a `noexcept` path (set_result, cancel, a task
/// finishing). Handing the executor this block instead makes the completion itself allocate
/// nothing, so it cannot fail for lack of memory; the failure, if any, is reported where the
/// wait starts. Asio's own operations are built the same way (their completion record is
/// the operation's memory).
template <std::size_t N, std::size_t Align> struct completion_reserve {
  alignas(Align) unsigned char bytes[N];
  unsigned char used = 0; // reserve_allocator's bits: reserve_used, spare_used
};

inline constexpr unsigned char reserve_used = 1;
inline constexpr unsigned char spare_used = 2;

/// A spare block for a second record (see spare_block), in units of max_align_t.
inline std::size_t spare_units(std::size_t bytes) noexcept {
  return (bytes + sizeof(std::max_align_t) - 1) / sizeof(std::max_align_t);
}

template <class Under> void* allocate_spare(const Under& under, std::size_t bytes) {
  using a_type = typename std::allocator_traits<Under>::template rebind_alloc<std::max_align_t>;
  a_type a(under);
  return std::allocator_traits<a_type>::allocate(a, spare_units(bytes));
}

template <class Under>
void deallocate_spare(const Under& under, void* p, std::size_t bytes) noexcept {
  using a_type = typename std::allocator_traits<Under>::template rebind_alloc<std::max_align_t>;
  a_type a(under);
  std::allocator_traits<a_type>::deallocate(a, static_cast<std::max_align_t*>(p),
                                            spare_units(bytes));
}

/// An allocator that hands out its completion_reserve once (for a request that fits), then
/// its spare block once if it has one (a strand's second record), and allocates everything
/// else with `Under`. Copies and rebinds share the reserve. The spare, once handed out,
/// belongs to the record built in it: deallocating it frees it (with `Under`), and the
/// owner of the reserve no longer does. Small (three words with an empty `Under`): every
/// record queued with it stores a copy.
template <class T, class Under> class reserve_allocator {
  template <class U>
  using under_for = typename std::allocator_traits<Under>::template rebind_alloc<U>;

public:
  using value_type = T;
  template <class U> struct rebind { using other = reserve_allocator<U, Under>; };

  template <std::size_t N, std::size_t Align>
  reserve_allocator(completion_reserve<N, Align>& r, const Under& under, void* spare = nullptr,
                    std::size_t spare_bytes = 0) noexcept
      : data_(r.bytes), spare_(static_cast<unsigned char*>(spare)),
        size_(static_cast<std::uint32_t>(N)), spare_size_(static_cast<std::uint16_t>(spare_bytes)),
        align_(static_cast<std::uint16_t>(Align)), under_(under) {
    // The bits live right after the bytes (found from data_ and size_, not stored).
    using reserve_type = completion_reserve<N, Align>;
    static_assert(offsetof(reserve_type, used) == N);
    static_assert(N <= UINT32_MAX && Align <= UINT16_MAX);
  }
  template <class U>
  reserve_allocator(const reserve_allocator<U, Under>& o) noexcept
      : data_(o.data_), spare_(o.spare_), size_(o.size_), spare_size_(o.spare_size_),
        align_(o.align_), under_(o.under_) {}

  /// Only called while the reserve's owner is alive: it is submitting its completion.
  T* allocate(std::size_t n) {
    unsigned char& used = data_[size_];
    if (!(used & reserve_used) && n <= size_ / sizeof(T) && alignof(T) <= align_) {
      used |= reserve_used; // never handed out again: a wait submits its completion once
      return reinterpret_cast<T*>(data_);
    }
    if (spare_ && !(used & spare_used) && n <= spare_size_ / sizeof(T) &&
        alignof(T) <= alignof(std::max_align_t)) {
      used |= spare_used;
      return reinterpret_cast<T*>(spare_);
    }
    under_for<T> a(under_);
    return std::allocator_traits<under_for<T>>::allocate(a, n);
  }
  /// May be called after the reserve's owner is gone (a queued record destroyed by its
  /// context's shutdown): compares with the owner's memory, never dereferences it.
  void deallocate(T* p, std::size_t n) noexcept {
    if (static_cast<void*>(p) == static_cast<void*>(data_))
      return; // the reserve: part of its owner, freed with it
    if (spare_ && static_cast<void*>(p) == static_cast<void*>(spare_)) {
      deallocate_spare(under_, spare_, spare_size_);
      return;
    }
    under_for<T> a(under_);
    std::allocator_traits<under_for<T>>::deallocate(a, p, n);
  }

  friend bool operator==(const reserve_allocator& a, const reserve_allocator& b) noexcept {
    return a.data_ == b.data_ && a.under_ == b.under_;
  }
  friend bool operator!=(const reserve_allocator& a, const reserve_allocator& b) noexcept {
    return !(a == b);
  }

private:
  template <class, class> friend class reserve_allocator;
  unsigned char* data_;
  unsigned char* spare_;
  std::uint32_t size_;
  std::uint16_t spare_size_;
  std::uint16_t align_;
  [[no_unique_address]] Under under_;
};

/// What a strand's service queues on the strand's inner executor when the strand has work
/// and is not yet scheduled: an invoker holding the strand's implementation and that
/// executor (Asio 1.81 to 1.89). Only its size matters (a spare too small is not used).
template <class Inner> struct strand_invoker_shape {
  std::shared_ptr<void> impl;
  Inner ex;
};

/// Whether `E` is an `asio::strand<...>`.
template <class E> struct is_strand : std::false_type {};
template <class Inner> struct is_strand<asio::strand<Inner>> : std::true_type {};

/// A block set aside when a wait on a strand starts, for the second record submitting its
/// completion makes (the strand queues the completion in one record, then, if it was idle,
/// schedules itself on its inner executor in another). Freed here unless handed out.
template <class Alloc, std::size_t Bytes> class spare_block {
public:
  spare_block(const Alloc& a, const unsigned char& used)
      : alloc_(a), used_(&used), p_(allocate_spare(alloc_, Bytes)) {}
  spare_block(const spare_block&) = delete;
  spare_block& operator=(const spare_block&) = delete;
  ~spare_block() {
    if (!(*used_ & spare_used))
      deallocate_spare(alloc_, p_, Bytes);
  }
  void* get() const noexcept { return p_; }
  const Alloc& allocator() const noexcept { return alloc_; }

private:
  Alloc alloc_;
  const unsigned char* used_;
  void* p_;
};
template <class Alloc> class spare_block<Alloc, 0> {
public:
  spare_block(const Alloc&, const unsigned char&) noexcept {}
  void* get() const noexcept { return nullptr; }
};

/// The record an io_context's or thread_pool's executor allocates for a submitted `F` when
/// given the allocator `A` (Asio 1.81 to 1.89 queue an `executor_op`). Sizing the reserve is
/// all it is used for: were it too small, the allocator would fall back to allocating.
template <class F, class A>
using executor_record = asio::detail::executor_op<F, A, asio::detail::operation>;

/// The reserve for submitting an `F` with a reserve_allocator over `Under`.
template <class F, class Under>
using reserve_for = completion_reserve<sizeof(executor_record<F, reserve_allocator<void, Under>>),
                                       alignof(executor_record<F, reserve_allocator<void, Under>>)>;

/// The spare a prepared executor `E` needs: the strand's invoker record for a strand, none
/// for anything else.
template <class E, class Under> constexpr std::size_t spare_bytes_for() {
  if constexpr (is_strand<E>::value) {
    using inner = typename E::inner_executor_type;
    if constexpr (asio::can_query<const inner&, asio::execution::allocator_t<void>>::value) {
      // Only a strand whose inner executor took the reserve's allocator allocates with it
      // (a type-erased inner executor takes none).
      using inner_alloc = std::decay_t<decltype(asio::query(std::declval<const inner&>(),
                                                            asio::execution::allocator))>;
      if constexpr (std::is_same_v<inner_alloc, reserve_allocator<void, Under>>) {
        // The invoker keeps the inner executor with outstanding work tracked.
        using tracked = std::decay_t<decltype(asio::prefer(
            std::declval<const inner&>(), asio::execution::outstanding_work.tracked))>;
        constexpr std::size_t bytes =
            sizeof(executor_record<strand_invoker_shape<tracked>, reserve_allocator<void, Under>>);
        static_assert(bytes <= UINT16_MAX);
        return bytes;
      }
    }
  }
  return 0;
}

/// `E` as post_to submits to it with a reserve_allocator over `Under`.
template <class E, class Under>
using post_prepared = std::decay_t<decltype(asio::prefer(
    asio::require(std::declval<const E&>(), asio::execution::blocking.never),
    asio::execution::relationship.continuation,
    asio::execution::allocator(std::declval<const reserve_allocator<void, Under>&>())))>;

/// The spare (bytes) a completion post_to submits to `ex` needs: a strand's invoker record
/// for a strand of an io_context or thread_pool, concrete or inside an any_io_executor; none
/// for anything else (0).
template <class Under, class Executor> std::size_t post_spare_bytes(const Executor& ex) {
  if constexpr (std::is_same_v<Executor, asio::any_io_executor>) {
    using strand_io = asio::strand<asio::io_context::executor_type>;
    using strand_pool = asio::strand<asio::thread_pool::executor_type>;
    if (target_fast<strand_io>(ex))
      return spare_bytes_for<post_prepared<strand_io, Under>, Under>();
    if (target_fast<strand_pool>(ex))
      return spare_bytes_for<post_prepared<strand_pool, Under>, Under>();
    return 0;
  } else {
    return spare_bytes_for<post_prepared<Executor, Under>, Under>();
  }
}

/// Submit `f` to `ex` for later execution: never inline (blocking.never), using `alloc` for the
/// executor's own bookkeeping. This is `asio::post` without the handler-executor indirection.
/// relationship.continuation: what is posted (a waiter's or callback's completion) continues
/// the work of the poster; on a thread that runs the same scheduler it goes to the
/// thread-private queue, without the scheduler's mutex.
template <class Executor, class Alloc, class F>
void post_to(const Executor& ex, const Alloc& alloc, F&& f) {
  if constexpr (std::is_same_v<Executor, asio::any_io_executor>) {
    // An io_context or thread_pool target is unwrapped: no type-erased property calls, no
    // second allocation for the type-erased function object, and `alloc` is used.
    if (const auto* io = target_fast<asio::io_context::executor_type>(ex)) {
      asio::prefer(asio::require(*io, asio::execution::blocking.never),
                   asio::execution::relationship.continuation, asio::execution::allocator(alloc))
          .execute(std::forward<F>(f));
      return;
    }
    if (const auto* pool = target_fast<asio::thread_pool::executor_type>(ex)) {
      asio::prefer(asio::require(*pool, asio::execution::blocking.never),
                   asio::execution::relationship.continuation, asio::execution::allocator(alloc))
          .execute(std::forward<F>(f));
      return;
    }
    // Strands of those too: the allocator reaches their records (an any_io_executor has no
    // allocator property).
    if (const auto* s = target_fast<asio::strand<asio::io_context::executor_type>>(ex)) {
      asio::prefer(asio::require(*s, asio::execution::blocking.never),
                   asio::execution::relationship.continuation, asio::execution::allocator(alloc))
          .execute(std::forward<F>(f));
      return;
    }
    if (const auto* s = target_fast<asio::strand<asio::thread_pool::executor_type>>(ex)) {
      asio::prefer(asio::require(*s, asio::execution::blocking.never),
                   asio::execution::relationship.continuation, asio::execution::allocator(alloc))
          .execute(std::forward<F>(f));
      return;
    }
  }
  asio::prefer(asio::require(ex, asio::execution::blocking.never),
               asio::execution::relationship.continuation, asio::execution::allocator(alloc))
      .execute(std::forward<F>(f));
}

/// Allocates and constructs a `T` with a rebound `alloc`.
template <class T, class Alloc, class... A> T* allocate_node(const Alloc& alloc, A&&... a) {
  using traits = typename std::allocator_traits<Alloc>::template rebind_traits<T>;
  typename traits::allocator_type a2(alloc);
  T* p = traits::allocate(a2, 1);
  try {
    traits::construct(a2, p, std::forward<A>(a)...);
  } catch (...) {
    traits::deallocate(a2, p, 1);
    throw;
  }
  return p;
}

template <class T, class Alloc> void deallocate_node(const Alloc& alloc, T* p) noexcept {
  using traits = typename std::allocator_traits<Alloc>::template rebind_traits<T>;
  typename traits::allocator_type a2(alloc);
  traits::destroy(a2, p);
  traits::deallocate(a2, p, 1);
}

/// The exception a waiter sees when a move-only result was already moved out.
std::exception_ptr result_taken_error();

/// The exception a detached (partial/total-cancelled) waiter sees.
std::exception_ptr detached_error();

/// Invokes `h` with no exception and the value `v`, as a waiter of a future<T> receives it
/// (boxed in an optional if T is not default-constructible: wait_value_t).
template <class T, class Handler, class V> void give_value(Handler& h, V&& v) {
  if constexpr (std::is_same_v<wait_value_t<T>, T>)
    std::move(h)(std::exception_ptr(), std::forward<V>(v));
  else
    std::move(h)(std::exception_ptr(), wait_value_t<T>(std::forward<V>(v)));
}

/// Invoke `h` with the outcome of the done state `st`: `(exception_ptr, T)` (T boxed in an
/// optional if it is not default-constructible: wait_value_t) or `(exception_ptr)` for void.
/// Copyable values are copied to every waiter; a move-only value goes to the first one and later
/// ones get "result already taken". A copy that throws completes the waiter with that exception
/// (and `T()`).
template <class T, class Handler>
void deliver(state<T>& st, Handler& h, std::exception_ptr override_error = nullptr) {
  auto fail = [&](std::exception_ptr e) {
    if constexpr (std::is_void_v<T>)
      std::move(h)(std::move(e));
    else
      std::move(h)(std::move(e), wait_value_t<T>());
  };

  if (override_error)
    return fail(std::move(override_error));
  st.mark_retrieved();
  if (st.get_outcome() != outcome::value)
    return fail(st.error());
  if constexpr (std::is_void_v<T>) {
    std::move(h)(std::exception_ptr());
  } else if constexpr (is_copyable_v<T> && std::is_nothrow_copy_constructible_v<T>) {
    give_value<T>(h, T(st.value()));
  } else if constexpr (is_copyable_v<T>) {
    // Copy before the upcall: a throwing copy must still complete the waiter (a handler
    // destroyed uninvoked is a lost completion), while what the handler itself throws is
    // not caught here. Costs one move of the copy into the handler's argument.
    std::optional<T> copy;
    try {
      copy.emplace(st.value());
    } catch (...) {
      return fail(std::current_exception());
    }
    give_value<T>(h, std::move(*copy));
  } else {
    if (st.take_value())
      give_value<T>(h, std::move(st.value()));
    else
      fail(result_taken_error());
  }
}

/// Owns a posted node until it runs; destroys it if the executor drops the function
/// (e.g. the context shut down with the completion still queued).
template <class Op> class posted {
public:
  explicit posted(Op* op) noexcept : op_(op) {}
  posted(posted&& o) noexcept : op_(std::exchange(o.op_, nullptr)) {}
  posted& operator=(posted&&) = delete;
  ~posted() {
    if (op_)
      op_->destroy();
  }
  void operator()() { std::exchange(op_, nullptr)->invoke(); }

private:
  Op* op_;
};

/// Destroys a node at the end of its scope unless dismissed. An invoke() holds one while it
/// moves the handler out of the node, so that a throwing move still frees it (Asio's own
/// operations do the same with their `ptr`).
template <class Op> class node_guard {
public:
  explicit node_guard(Op* op) noexcept : op_(op) {}
  node_guard(const node_guard&) = delete;
  node_guard& operator=(const node_guard&) = delete;
  ~node_guard() {
    if (op_)
      op_->destroy();
  }
  void dismiss() noexcept { op_ = nullptr; }

private:
  Op* op_;
};

/// The handler's executor as a waiter submits its completion (an `F`) to it: never blocking,
/// counting outstanding work while the wait is pending, allocating with the handler's
/// allocator — and, for io_context and thread_pool executors, submitting into memory
/// reserved here (completion_reserve), so that completing allocates nothing. Prepared once
/// at initiation, so that completing costs no property conversions (each tracked copy is an
/// atomic increment and decrement of the context's work count).
///
/// relationship.continuation: resuming the waiter continues the setter's work (Asio's own
/// hint for completions): on a thread that runs the same scheduler, the completion goes to
/// the thread-private queue, without the scheduler's mutex.
///
/// outstanding_work.tracked is applied last: every property applied after it would copy a
/// tracked executor (an extra atomic increment and decrement of the work count).
template <class Executor, class Alloc, class F> class completion_executor {
  using alloc_type = reserve_allocator<void, Alloc>;

public:
  completion_executor(const Executor& ex, const Alloc& alloc)
      : spare_(alloc, reserve_.used),
        ex_(asio::prefer(
            asio::require(ex, asio::execution::blocking.never),
            asio::execution::relationship.continuation,
            asio::execution::allocator(alloc_type(reserve_, alloc, spare_.get(), spare)),
            asio::execution::outstanding_work.tracked)) {}
  completion_executor(const completion_executor&) = delete;
  completion_executor& operator=(const completion_executor&) = delete;

  /// Submits `f` and releases the work. The executor is moved out first (a move transfers
  /// the count without touching it): `f` may run, and free our owner, before execute()
  /// returns. The scheduler counts the queued `f` as work, so the count never drops to zero
  /// in between.
  void post_and_release(F&& f) {
    type ex(std::move(ex_));
    ex.execute(std::move(f));
  }

private:
  using type = std::decay_t<decltype(asio::prefer(
      asio::require(std::declval<const Executor&>(), asio::execution::blocking.never),
      asio::execution::relationship.continuation,
      asio::execution::allocator(std::declval<const alloc_type&>()),
      asio::execution::outstanding_work.tracked))>;
  static constexpr std::size_t spare = spare_bytes_for<type, Alloc>();
  reserve_for<F, Alloc> reserve_;
  [[no_unique_address]] spare_block<Alloc, spare> spare_;
  type ex_;
};

/// For `any_io_executor` (every awaitable's executor), an io_context or thread_pool target is
/// unwrapped: the concrete executor needs no type-erased property calls, no second
/// allocation for the type-erased function object, and submits into the reserve. Another
/// target (a strand, a user's executor) is submitted to through the wrapper, which
/// allocates.
template <class Alloc, class F> class completion_executor<asio::any_io_executor, Alloc, F> {
  using alloc_type = reserve_allocator<void, Alloc>;
  template <class Ex>
  using prepared = std::decay_t<decltype(asio::prefer(
      asio::require(std::declval<const Ex&>(), asio::execution::blocking.never),
      asio::execution::relationship.continuation,
      asio::execution::allocator(std::declval<const alloc_type&>()),
      asio::execution::outstanding_work.tracked))>;
  using io_type = prepared<asio::io_context::executor_type>;
  using pool_type = prepared<asio::thread_pool::executor_type>;
  enum class kind : unsigned char { io, pool, strand_io, strand_pool, any };

  template <class Ex>
  auto prepare(const Ex& ex, const Alloc& alloc, void* spare = nullptr, std::size_t bytes = 0) {
    return asio::prefer(asio::require(ex, asio::execution::blocking.never),
                        asio::execution::relationship.continuation,
                        asio::execution::allocator(alloc_type(reserve_, alloc, spare, bytes)),
                        asio::execution::outstanding_work.tracked);
  }

  /// A strand of an io_context or thread_pool, prepared, with the spare for its second
  /// record; allocated apart (with the handler's allocator), so that waiters on anything
  /// else do not grow.
  template <class Strand> struct on_strand {
    using type = prepared<Strand>;
    static constexpr std::size_t spare_size = spare_bytes_for<type, Alloc>();
    on_strand(completion_executor& owner, const Strand& s, const Alloc& alloc)
        : spare(alloc, owner.reserve_.used), ex(owner.prepare(s, alloc, spare.get(), spare_size)) {}
    spare_block<Alloc, spare_size> spare;
    type ex;
  };
  using strand_io_type = on_strand<asio::strand<asio::io_context::executor_type>>;
  using strand_pool_type = on_strand<asio::strand<asio::thread_pool::executor_type>>;

public:
  completion_executor(const asio::any_io_executor& ex, const Alloc& alloc) {
    if (const auto* io = target_fast<asio::io_context::executor_type>(ex)) {
      std::construct_at(&io_, prepare(*io, alloc));
      kind_ = kind::io;
    } else if (const auto* pool = target_fast<asio::thread_pool::executor_type>(ex)) {
      std::construct_at(&pool_, prepare(*pool, alloc));
      kind_ = kind::pool;
    } else if (const auto* sio = target_fast<asio::strand<asio::io_context::executor_type>>(ex)) {
      strand_io_ = allocate_node<strand_io_type>(alloc, *this, *sio, alloc);
      kind_ = kind::strand_io;
    } else if (const auto* spool =
                   target_fast<asio::strand<asio::thread_pool::executor_type>>(ex)) {
      strand_pool_ = allocate_node<strand_pool_type>(alloc, *this, *spool, alloc);
      kind_ = kind::strand_pool;
    } else {
      std::construct_at(&any_, asio::prefer(asio::require(ex, asio::execution::blocking.never),
                                            asio::execution::relationship.continuation,
                                            asio::execution::outstanding_work.tracked));
    }
  }
  completion_executor(const completion_executor&) = delete;
  completion_executor& operator=(const completion_executor&) = delete;
  ~completion_executor() {
    switch (kind_) {
    case kind::io:
      std::destroy_at(&io_);
      break;
    case kind::pool:
      std::destroy_at(&pool_);
      break;
    case kind::strand_io:
      deallocate_node(Alloc(strand_io_->spare.allocator()), strand_io_);
      break;
    case kind::strand_pool:
      deallocate_node(Alloc(strand_pool_->spare.allocator()), strand_pool_);
      break;
    case kind::any:
      std::destroy_at(&any_);
      break;
    }
  }

  void post_and_release(F&& f) {
    switch (kind_) {
    case kind::io: {
      io_type ex(std::move(io_));
      ex.execute(std::move(f));
      break;
    }
    case kind::pool: {
      pool_type ex(std::move(pool_));
      ex.execute(std::move(f));
      break;
    }
    case kind::strand_io: {
      typename strand_io_type::type ex(std::move(strand_io_->ex));
      ex.execute(std::move(f));
      break;
    }
    case kind::strand_pool: {
      typename strand_pool_type::type ex(std::move(strand_pool_->ex));
      ex.execute(std::move(f));
      break;
    }
    case kind::any: {
      asio::any_io_executor ex(std::move(any_));
      ex.execute(std::move(f));
      break;
    }
    }
  }

private:
  reserve_for<F, Alloc> reserve_;
  union {
    io_type io_;
    pool_type pool_;
    strand_io_type* strand_io_;
    strand_pool_type* strand_pool_;
    asio::any_io_executor any_;
  };
  kind kind_ = kind::any;
};

/// The execution context of `ex`, or nullptr if `ex` cannot tell it. Unwraps an
/// `any_io_executor` holding an io_context executor without a type-erased call.
template <class Executor> asio::execution_context* context_of(const Executor& ex) {
  if constexpr (std::is_same_v<Executor, asio::any_io_executor>) {
    if (const auto* io = target_fast<asio::io_context::executor_type>(ex))
      return &io->context();
    return &asio::query(ex, asio::execution::context);
  } else if constexpr (asio::can_query<const Executor&, asio::execution::context_t>::value) {
    return &asio::query(ex, asio::execution::context);
  } else if constexpr (requires { ex.context(); }) {
    return &ex.context();
  } else {
    return nullptr;
  }
}

template <class Executor> waiter_service* service_for(const Executor& ex) {
  asio::execution_context* ctx = context_of(ex);
  return ctx ? &waiter_service::of(*ctx) : nullptr;
}

/// The serial of `svc` for a state's context_serial (0 without a service).
inline std::uint32_t serial_of(const waiter_service* svc) noexcept {
  return svc ? svc->serial() : 0;
}

/// Whether the context a state was made on still exists (true when it cannot tell). Never
/// touches the context: a future may outlive it.
inline bool context_alive(const state_base& s) noexcept {
  const std::uint32_t serial = s.context_serial();
  return serial == 0 || waiter_service::alive(context_of(s.executor()), serial);
}

/// Before anything is made on the executor of `s` (a combinator's result, a timer): throws
/// invalid_state_error if its context was destroyed.
inline void require_live_context(const state_base& s) {
  if (!context_alive(s))
    throw_invalid_state("asio_futures: the future's execution context was destroyed");
}

#if BOOST_ASIO_VERSION >= 102800
/// A private executor type, given as the default to associated_immediate_executor: a
/// handler whose immediate executor comes out as this one has none of its own. Never
/// submitted to.
struct no_immediate_executor {
  template <class F> void execute(F&&) const noexcept {}
  no_immediate_executor require(asio::execution::blocking_t::never_t) const noexcept {
    return *this;
  }
  static constexpr asio::execution::blocking_t query(asio::execution::blocking_t) noexcept {
    return asio::execution::blocking.never;
  }
  friend bool operator==(no_immediate_executor, no_immediate_executor) noexcept { return true; }
  friend bool operator!=(no_immediate_executor, no_immediate_executor) noexcept { return false; }
};

/// Whether `Handler` has an associated immediate executor (Asio >= 1.28). Asio names the
/// default as a reference type (`require`'s result): compared without it.
template <class Handler>
inline constexpr bool has_immediate_executor_v = !std::is_same_v<
    std::remove_cvref_t<asio::associated_immediate_executor_t<Handler, no_immediate_executor>>,
    no_immediate_executor>;

/// The completion of a wait on a done future, dispatched through the handler's immediate
/// executor: forwards the handler's associations (the dispatch then runs it on the handler's
/// own executor, as Asio's immediate completions do).
template <class T, class Handler> struct immediate_completion {
  Handler handler;
  state_ptr<T> state;
  void operator()() { deliver(*state, handler); }
};
#else
template <class Handler> inline constexpr bool has_immediate_executor_v = false;
#endif

/// An async waiter: the storage of one `async_wait` while the future is pending.
template <class T, class Handler> class wait_op final : public wait_node {
public:
  using allocator_type = handler_allocator_t<Handler>;
  using handler_executor = asio::associated_executor_t<Handler, asio::any_io_executor>;
  using slot_type = asio::associated_cancellation_slot_t<Handler>;

  /// Starts a wait on `st` for handler `h`. Never completes inline, unless the future is
  /// done and the handler's immediate executor runs it inline (Asio >= 1.28).
  static void start(state_ptr<T> st, Handler h) {
    auto ex = asio::get_associated_executor(h, st->executor());
    waiter_service* svc = service_for(ex);
    allocator_type alloc = get_handler_allocator(h);
    if (st->done()) {
      if (svc && svc->closed())
        throw_invalid_state("async_wait: the execution context has shut down");
#if BOOST_ASIO_VERSION >= 102800
      if constexpr (has_immediate_executor_v<Handler>) {
        // Completes at once through the handler's immediate executor, as Asio's own
        // operations do (Asio 1.28): a dispatch, which may run the handler inline here.
        auto iex = asio::get_associated_immediate_executor(h, st->executor());
        asio::dispatch(iex, immediate_completion<T, Handler>{std::move(h), std::move(st)});
        return;
      }
#endif
      // Fast path: no node, no registration; the outcome is already there.
      post_to(ex, alloc, [h = std::move(h), st = std::move(st)]() mutable { deliver(*st, h); });
      return;
    }
    state<T>* s = st.get();
    wait_op* op = allocate_node<wait_op>(alloc, std::move(st), std::move(h), ex);
    // Whatever can throw (installing the cancellation handler allocates; a shut-down
    // context refuses the registration) comes before the op is linked in the future, and a
    // throw destroys it: the initiator gets the exception, and no registration, handler or
    // outstanding work is left behind.
    try {
      slot_type slot = asio::get_associated_cancellation_slot(op->handler_);
      if (slot.is_connected()) {
        op->slot_ = slot;
        slot.template emplace<cancel_handler>(op);
      }
      if (svc)
        svc->add(op);
    } catch (...) {
      op->destroy();
      throw;
    }
    if (!s->push(op)) {
      // Became done meanwhile. Submit the completion here, not through the noexcept do_fn:
      // a submission failure then reaches the initiator, as on the fast path (`posted`
      // destroys the op if it does).
      waiter_service* flying = unregister_for_flight(op);
      try {
        op->work_.post_and_release(posted<wait_op>(op));
      } catch (...) {
        if (flying)
          flying->end_flight();
        throw;
      }
      if (flying)
        flying->end_flight();
    }
  }

  /// Runs on the handler's executor: clear the slot, free the node, then invoke.
  void invoke() {
    node_guard<wait_op> guard(this);
    clear_slot();
    Handler h(std::move(handler_));
    state_ptr<T> st(std::move(state_));
    std::exception_ptr err = detached_ ? detached_error() : nullptr;
    guard.dismiss();
    allocator_type alloc(alloc_);
    deallocate_node(alloc, this); // Asio's rule: free the operation before the upcall
    deliver(*st, h, std::move(err));
  }

  /// Destroys without invoking (shutdown, or the posted function was dropped).
  void destroy() noexcept {
    clear_slot();
    allocator_type alloc(alloc_);
    deallocate_node(alloc, this);
  }

  wait_op(state_ptr<T>&& st, Handler&& h, const handler_executor& ex)
      : wait_node(&do_fn), handler_(std::move(h)), alloc_(get_handler_allocator(handler_)),
        work_(ex, alloc_), state_(std::move(st)) {
    owner_ = state_.get();
  }

private:
  struct cancel_handler {
    // A constructor, not an aggregate: emplace() constructs it with parentheses, which
    // clang 14 does not accept for aggregates.
    explicit cancel_handler(wait_op* o) noexcept : op(o) {}

    wait_op* op;
    void operator()(asio::cancellation_type type) {
      // Runs where the signal is emitted: Asio's rule is that this is the handler's
      // executor, never concurrently with invoke(), which clears the slot first.
      if (op->detached_)
        return; // an earlier partial/total signal detached the waiter: it waits no more
      // Our own reference: cancelling publishes, which may post `op` and let it (and the
      // reference it holds) be freed on another thread while we still walk the list.
      const state_ptr<T> keep = op->state_;
      state<T>* s = keep.get();
      if ((type & asio::cancellation_type::terminal) != asio::cancellation_type::none) {
        // asyncio: cancelling the awaiter cancels the awaited, with the awaiter's message.
        const std::string* msg = current_cancel_message();
        s->cancel(msg ? std::string(*msg) : std::string());
      } else if ((type & (asio::cancellation_type::partial | asio::cancellation_type::total)) !=
                 asio::cancellation_type::none) {
        if (s->remove(op))
          do_fn(op, node_action::detach, s);
      }
    }
  };

  static void do_fn(node* n, node_action a, state_base*) noexcept {
    auto* op = static_cast<wait_op*>(n);
    if (a == node_action::destroy) {
      unregister(op);
      op->destroy();
      return;
    }
    if (a == node_action::detach)
      op->detached_ = true; // on the emitting thread (the completer never writes it)
    // In flight until submitted: a shutdown of the handler's context running meanwhile on
    // another thread waits for the submission instead of destroying the service and the
    // scheduler under it.
    waiter_service* flying = unregister_for_flight(op);
    op->work_.post_and_release(posted<wait_op>(op));
    if (flying)
      flying->end_flight();
  }

  void clear_slot() noexcept {
    if (slot_.is_connected())
      slot_.clear();
  }

  Handler handler_;
  allocator_type alloc_;
  completion_executor<handler_executor, allocator_type, posted<wait_op>> work_;
  state_ptr<T> state_;
  slot_type slot_{};
  bool detached_ = false;
};

/// A done-callback. It does not keep the context's work count up while the future is pending
/// (asyncio's callbacks do not keep a loop running either); once scheduled it does. It is
/// registered with the waiter service of the context it runs on, as waiters are: that
/// context's shutdown destroys it uninvoked, and a completer scheduling it from another
/// thread meanwhile is waited for.
template <class T, class F, class Future> class callback_op final : public wait_node {
public:
  using allocator_type = handler_allocator_t<F>;

  callback_op(F&& f, std::uint64_t serial, std::uint32_t target)
      : wait_node(&do_fn, serial), f_(std::move(f)), alloc_(get_handler_allocator(f_)),
        target_(target) {}

  /// `s` is the future's state: `f` runs on its executor unless it has its own. The node is
  /// registered, not yet linked in `s`.
  static callback_op* create(F f, std::uint64_t serial, const state_base& s) {
    allocator_type alloc = get_handler_allocator(f);
    waiter_service* svc = nullptr;
    std::uint32_t target = s.context_serial();
    if constexpr (!std::is_same_v<asio::associated_executor_t<F, no_associated_executor>,
                                  no_associated_executor>) {
      svc = service_for(asio::get_associated_executor(f));
      target = serial_of(svc);
    } else if (context_alive(s)) {
      // (A destroyed context is never touched: the callback then stays unregistered, and
      // schedule() destroys it uninvoked.)
      svc = service_for(s.executor());
    }
    // A strand's completion makes two records: the second one's memory is set aside now.
    const std::size_t spare =
        post_spare_bytes<allocator_type>(asio::get_associated_executor(f, s.executor()));
    void* spare_block = spare ? allocate_spare(alloc, spare) : nullptr;
    callback_op* op;
    try {
      op = allocate_node<callback_op>(alloc, std::move(f), serial, target);
    } catch (...) {
      if (spare_block)
        deallocate_spare(alloc, spare_block, spare);
      throw;
    }
    op->spare_ = spare_block;
    op->spare_size_ = spare;
    op->owner_ = const_cast<state_base*>(&s);
    // A context already shut down takes no registration; it will not run the callback
    // either (its scheduler destroys what is posted to it).
    if (svc)
      svc->try_add(op);
    return op;
  }

  void invoke() {
    node_guard<callback_op> guard(this);
    F f(std::move(f_));
    state_ptr<T> st(std::move(state_));
    guard.dismiss();
    destroy();
    std::move(f)(Future(std::move(st)));
  }

  void destroy() noexcept {
    allocator_type alloc(alloc_);
    if (spare_ && !(reserve_.used & spare_used)) // not handed out: still ours
      deallocate_spare(alloc, spare_, spare_size_);
    deallocate_node(alloc, this);
  }

  /// Schedule `f(future)` now that the future is done. Takes ownership of the node: if the
  /// submission throws, the node (and `f`) has already been destroyed, exactly once, by the
  /// `posted` wrapper owning it, and the exception propagates.
  void schedule(state<T>* s) {
    // In flight until submitted: a shutdown of the target context running meanwhile on
    // another thread waits for the submission instead of destroying the scheduler under it.
    struct flight {
      waiter_service* svc;
      ~flight() {
        if (svc)
          svc->end_flight();
      }
    } const flying{unregister_for_flight(this)};
    posted<callback_op> self(this); // destroyed (with the node, if unsent) before the flight ends
    auto ex = asio::get_associated_executor(f_, s->executor());
    // Unregistered (no service, or it had shut down): the context that would run it may be
    // gone; then `self` destroys it uninvoked (as that context's shutdown destroys its
    // waiters), instead of submitting to the dead one.
    if (!flying.svc && target_ != 0 && !waiter_service::alive(context_of(ex), target_))
      return;
    state_ = state_ptr<T>::share(s);
    // Into the reserve (io_context and thread_pool executors): scheduling allocates nothing.
    post_to(ex, reserve_allocator<void, allocator_type>(reserve_, alloc_, spare_, spare_size_),
            std::move(self));
  }

private:
  static void do_fn(node* n, node_action a, state_base* s) noexcept {
    auto* op = static_cast<callback_op*>(n);
    if (a == node_action::destroy) {
      unregister(op);
      op->destroy();
    } else {
      op->schedule(static_cast<state<T>*>(s));
    }
  }

  F f_;
  allocator_type alloc_;
  std::uint32_t target_; // the serial of the context it runs on (0: unknown)
  state_ptr<T> state_;   // set once scheduled
  reserve_for<posted<callback_op>, allocator_type> reserve_;
  void* spare_ = nullptr; // a strand's second record (see create)
  std::size_t spare_size_ = 0;
};

/// A thread blocked in wait()/wait_for()/get(). Lives on that thread's stack; completed
/// inline by the completer (waking a thread runs no user code).
class blocking_node final : public node {
public:
  blocking_node() noexcept : node(&do_fn) {}

  /// Block until completed, or until `deadline`; true if completed.
  template <class Clock, class Duration>
  bool wait_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    std::unique_lock lock(mutex_);
    return cv_.wait_until(lock, deadline, [this] { return signalled_; });
  }
  void wait() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return signalled_; });
  }

private:
  static void do_fn(node* n, node_action, state_base*) noexcept {
    auto* self = static_cast<blocking_node*>(n);
    // Notify under the lock: the waiter cannot return (and destroy us) before we are done.
    std::lock_guard lock(self->mutex_);
    self->signalled_ = true;
    self->cv_.notify_all();
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  bool signalled_ = false;
};

/// Whether the calling thread is running `ex` (an io_context, a strand, a thread pool),
/// where a blocking wait on a future of `ex` could deadlock. For a strand, also true on a
/// thread running its underlying context, unless `strict`. False when it cannot tell.
bool running_in_this_thread(const asio::any_io_executor& ex, bool strict = false) noexcept;

/// Next callback id serial (process-wide, never 0).
std::uint64_t next_callback_serial() noexcept;

} // namespace asio_futures::detail

#if BOOST_ASIO_VERSION >= 102800
/// immediate_completion forwards its handler's associations.
template <template <class, class> class Associator, class T, class Handler, class Default>
struct boost::asio::associator<Associator, asio_futures::detail::immediate_completion<T, Handler>,
                               Default> : Associator<Handler, Default> {
  static typename Associator<Handler, Default>::type
  get(const asio_futures::detail::immediate_completion<T, Handler>& c) noexcept {
    return Associator<Handler, Default>::get(c.handler);
  }
  static auto get(const asio_futures::detail::immediate_completion<T, Handler>& c,
                  const Default& d) noexcept
      -> decltype(Associator<Handler, Default>::get(c.handler, d)) {
    return Associator<Handler, Default>::get(c.handler, d);
  }
};
#endif

#endif // ASIO_FUTURES_DETAIL_OPS_HPP
