//
// asio_futures/impl/sync.hpp
//
// The queues' shared state and containers (templates; the other primitives are in
// src/sync.cpp).
//
#ifndef ASIO_FUTURES_IMPL_SYNC_HPP
#define ASIO_FUTURES_IMPL_SYNC_HPP

#include <algorithm>
#include <deque>
#include <limits>
#include <utility>
#include <vector>

namespace asio_futures::detail {

std::exception_ptr queue_shut_down_error() noexcept;

/// Containers: `push` a new item (may throw if the container cannot grow; then nothing
/// changed), `pop` the next one (never throws: T's move constructor does not).
template <class T> class fifo_container {
public:
  void push(T&& v) { items_.push_back(std::move(v)); }
  T pop() noexcept {
    T v(std::move(items_.front()));
    items_.pop_front();
    return v;
  }
  std::size_t size() const noexcept { return items_.size(); }
  bool empty() const noexcept { return items_.empty(); }
  std::deque<T> take_all() noexcept { return std::exchange(items_, {}); }

private:
  std::deque<T> items_;
};

template <class T> class lifo_container {
public:
  void push(T&& v) { items_.push_back(std::move(v)); }
  T pop() noexcept {
    T v(std::move(items_.back()));
    items_.pop_back();
    return v;
  }
  std::size_t size() const noexcept { return items_.size(); }
  bool empty() const noexcept { return items_.empty(); }
  std::deque<T> take_all() noexcept { return std::exchange(items_, {}); }

private:
  std::deque<T> items_;
};

template <class T, class Compare> class heap_container {
  static_assert(std::is_nothrow_move_assignable_v<T>,
                "asio_futures::priority_queue: the item type's move assignment must not throw "
                "(items are moved under the queue's mutex, in paths that cannot fail)");

public:
  void push(T&& v) {
    items_.push_back(std::move(v));
    std::push_heap(items_.begin(), items_.end(), greater{&comp_});
  }
  /// `Compare` must not throw (it runs in paths that cannot fail, as std's heap needs).
  T pop() noexcept {
    std::pop_heap(items_.begin(), items_.end(), greater{&comp_});
    T v(std::move(items_.back()));
    items_.pop_back();
    return v;
  }
  std::size_t size() const noexcept { return items_.size(); }
  bool empty() const noexcept { return items_.empty(); }
  std::vector<T> take_all() noexcept { return std::exchange(items_, {}); }

private:
  // std's heap functions keep the greatest under their comparator at the front: reversing
  // Compare keeps the smallest there (asyncio's heapq is a min-heap).
  struct greater {
    Compare* comp;
    bool operator()(const T& a, const T& b) const { return (*comp)(b, a); }
  };
  std::vector<T> items_;
  Compare comp_{};
};

/// A queue's state. Waiter kinds: getter (granted: holds a claim on an item, `claimed_`; the
/// item stays in the container, counted against the bound, until the getter's handler runs
/// and takes the next one, as asyncio's woken getter does), putter (granted: holds a slot,
/// `reserved_`; its item enters the queue when its handler runs), joiner.
///
/// No item is destroyed under the mutex (only moved: T's move constructor must not throw);
/// items dropped by shutdown(true) and a putter's item that did not enter are destroyed
/// after the mutex is released.
template <class T, class Container> class queue_impl final : public sync_impl {
public:
  enum kind : std::uint8_t { getter, putter, joiner };

  queue_impl(asio::any_io_executor ex, std::size_t max_size)
      : sync_impl(std::move(ex), &mutex_), max_(max_size) {}

  // --- public entry points (take the mutex) -------------------------------------------------

  bool try_put(T&& item) {
    wake_list wakes;
    std::lock_guard guard(mutex_);
    if (shutdown_)
      throw queue_shut_down();
    if (!putters_.empty() || !room())
      return false;
    put_item(std::move(item), wakes);
    return true;
  }

  std::optional<T> try_get() {
    std::optional<T> v;
    wake_list wakes;
    std::lock_guard guard(mutex_);
    if (items_.size() == claimed_) { // every item is promised to a getter
      if (shutdown_)
        throw queue_shut_down();
      return v;
    }
    v.emplace(items_.pop());
    admit_putters(wakes);
    return v;
  }

  void task_done() {
    wake_list wakes;
    std::lock_guard guard(mutex_);
    if (unfinished_ == 0)
      throw_invalid_state("asio_futures::queue::task_done: called more times than there were "
                          "items");
    if (--unfinished_ == 0)
      wake_all(joiners_, wakes);
  }

  void shutdown(bool immediate) {
    wake_list wakes;
    decltype(std::declval<Container&>().take_all()) dropped; // destroyed outside the lock
    std::lock_guard guard(mutex_);
    shutdown_ = true;
    if (immediate) {
      dropped = items_.take_all();
      claimed_ = 0; // the getters granted a claim find nothing: queue_shut_down
      finish_tasks(dropped.size(), wakes);
    }
    fail_all(getters_, wakes);
    fail_all(putters_, wakes);
  }

  std::size_t size() const {
    std::lock_guard guard(mutex_);
    return items_.size();
  }
  bool empty() const {
    std::lock_guard guard(mutex_);
    return items_.empty();
  }
  bool full() const {
    std::lock_guard guard(mutex_);
    return !room();
  }
  std::size_t max_size() const noexcept { return max_; }

  // --- waiters (under the mutex) ------------------------------------------------------------

  void begin_put(value_waiter<T>& w, wake_list& wakes) {
    w.kind_ = putter;
    if (shutdown_) {
      complete(w, queue_shut_down_error(), wakes);
    } else if (putters_.empty() && room()) {
      put_item(std::move(*w.value_), wakes); // may throw: nothing changed then
      complete(w, nullptr, wakes);           // the moved-from item dies with the op, unlocked
    } else {
      putters_.push_back(&w);
    }
  }

  void begin_get(value_waiter<T>& w, wake_list& wakes) {
    w.kind_ = getter;
    if (items_.size() > claimed_) {
      ++claimed_;
      grant(w, wakes);
    } else if (shutdown_) {
      complete(w, queue_shut_down_error(), wakes);
    } else {
      getters_.push_back(&w);
    }
  }

  void begin_join(value_waiter<T>& w, wake_list& wakes) {
    w.kind_ = joiner;
    if (unfinished_ == 0)
      grant(w, wakes);
    else
      joiners_.push_back(&w);
  }

  void consume(sync_waiter& sw, wake_list& wakes) noexcept override {
    auto& w = static_cast<value_waiter<T>&>(sw);
    if (w.kind_ == getter) {
      if (claimed_ == 0) { // shutdown(true) dropped the item it was promised
        w.error_ = queue_shut_down_error();
        return;
      }
      --claimed_;
      w.value_.emplace(items_.pop());
      admit_putters(wakes);
      return;
    }
    if (w.kind_ != putter)
      return;
    --reserved_;
    if (shutdown_) {
      w.error_ = queue_shut_down_error();
      return;
    }
    try {
      put_item(std::move(*w.value_), wakes); // its moved-from item dies with the op, unlocked
    } catch (...) {
      w.error_ = std::current_exception(); // the container could not grow
      admit_putters(wakes);
    }
  }

  void close(wake_list& wakes) noexcept override {
    cancel_all(getters_, wakes);
    cancel_all(putters_, wakes);
    cancel_all(joiners_, wakes);
  }

private:
  void give_back(sync_waiter& sw, wake_list& wakes) noexcept override {
    auto& w = static_cast<value_waiter<T>&>(sw);
    if (w.kind_ == getter) {
      // Its item never left the container (where it still is, in its place): the claim
      // passes to the next getter, or lapses. None after shutdown(true), which voided it.
      if (claimed_ == 0)
        return;
      if (!getters_.empty())
        grant(*getters_.front(), wakes);
      else
        --claimed_;
    } else if (w.kind_ == putter) {
      --reserved_;
      admit_putters(wakes);
    }
  }

  bool room() const noexcept { return max_ == 0 || items_.size() + reserved_ < max_; }

  /// A new item: into the container, promised to the first getter if one waits. Throws only
  /// if the container cannot grow (then nothing changed).
  void put_item(T&& item, wake_list& wakes) {
    items_.push(std::move(item));
    ++unfinished_;
    if (!getters_.empty()) {
      ++claimed_;
      grant(*getters_.front(), wakes);
    }
  }

  /// Gives the room there is to the putters waiting.
  void admit_putters(wake_list& wakes) noexcept {
    while (!putters_.empty() && room() && !shutdown_) {
      ++reserved_;
      grant(*putters_.front(), wakes);
    }
  }

  void finish_tasks(std::size_t n, wake_list& wakes) noexcept {
    if (unfinished_ == 0)
      return;
    unfinished_ -= std::min(n, unfinished_);
    if (unfinished_ == 0)
      wake_all(joiners_, wakes);
  }

  static void wake_all(waiter_fifo& fifo, wake_list& wakes) noexcept {
    while (!fifo.empty())
      grant(*fifo.front(), wakes);
  }
  static void fail_all(waiter_fifo& fifo, wake_list& wakes) noexcept {
    while (!fifo.empty())
      complete(*fifo.front(), queue_shut_down_error(), wakes);
  }

  mutable std::mutex mutex_;
  const std::size_t max_;
  Container items_;
  std::size_t reserved_ = 0;   // slots granted to putters whose handler has not run
  std::size_t claimed_ = 0;    // items promised to getters whose handler has not run
  std::size_t unfinished_ = 0; // items put and not yet task_done()
  bool shutdown_ = false;
  waiter_fifo getters_; // non-empty only while every item is claimed
  waiter_fifo putters_; // non-empty only while there is no room
  waiter_fifo joiners_; // non-empty only while unfinished_ > 0
};

template <class T, class Container>
basic_queue<T, Container>::basic_queue(executor_type ex, std::size_t max_size) {
  if (!ex)
    throw std::invalid_argument("asio_futures::queue: empty executor");
  impl_ = sync_ptr<impl_type>(new impl_type(std::move(ex), max_size));
}

template <class T, class Container> basic_queue<T, Container>::~basic_queue() {
  wake_list wakes;
  {
    std::lock_guard guard(impl_->mutex());
    impl_->close(wakes);
  }
}

template <class T, class Container> bool basic_queue<T, Container>::try_put(T item) {
  return impl_->try_put(std::move(item));
}

template <class T, class Container> void basic_queue<T, Container>::put_nowait(T item) {
  if (!impl_->try_put(std::move(item)))
    throw queue_full();
}

template <class T, class Container> std::optional<T> basic_queue<T, Container>::try_get() {
  return impl_->try_get();
}

template <class T, class Container> T basic_queue<T, Container>::get_nowait() {
  std::optional<T> v = impl_->try_get();
  if (!v)
    throw queue_empty();
  return std::move(*v);
}

template <class T, class Container> void basic_queue<T, Container>::task_done() {
  impl_->task_done();
}

template <class T, class Container> std::size_t basic_queue<T, Container>::size() const {
  return impl_->size();
}
template <class T, class Container> bool basic_queue<T, Container>::empty() const {
  return impl_->empty();
}
template <class T, class Container> bool basic_queue<T, Container>::full() const {
  return impl_->full();
}
template <class T, class Container>
std::size_t basic_queue<T, Container>::max_size() const noexcept {
  return impl_->max_size();
}
template <class T, class Container> void basic_queue<T, Container>::shutdown(bool immediate) {
  impl_->shutdown(immediate);
}
template <class T, class Container>
typename basic_queue<T, Container>::executor_type
basic_queue<T, Container>::get_executor() const noexcept {
  return impl_->executor();
}

} // namespace asio_futures::detail

#endif // ASIO_FUTURES_IMPL_SYNC_HPP
