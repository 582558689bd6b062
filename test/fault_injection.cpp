// Allocation failure inside every public operation: the k-th allocation the operation makes
// fails, for every k, until it makes no more. Each call either throws std::bad_alloc at the
// caller, leaving nothing behind (no registration, no task, no job, no invocation later), or
// succeeds and then behaves exactly as without the fault (its result arrives, exactly once,
// with the right value). A hang fails the case (bounded waits); a leak fails the ASan build
// (LeakSanitizer at exit); a std::terminate fails the run.
//
// The operation runs on a fresh thread: Asio recycles small blocks per thread (handlers,
// coroutine frames), and a fresh thread's cache is empty, so every allocation reaches the
// test executable's operator new (support/alloc_fault.hpp).
//
// The completing side (set_result, set_exception, cancel, a lock handed over) is swept too, at
// the end: a waiter's completion is reserved when its wait starts, so completing a future
// whose waiters run on io_contexts or thread_pools allocates nothing.
#include "support/alloc_fault.hpp"
#include "support/checks.hpp"
#include "support/co_test.hpp"

#include <asio_futures/future.hpp>
#include <asio_futures/gather.hpp>
#include <asio_futures/shield.hpp>
#include <asio_futures/sleep.hpp>
#include <asio_futures/sync.hpp>
#include <asio_futures/task.hpp>
#include <asio_futures/task_group.hpp>
#include <asio_futures/thread.hpp>
#include <asio_futures/use_future.hpp>
#include <asio_futures/wait.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <new>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <utility>
#include <vector>

namespace asio = boost::asio;
namespace af = asio_futures;
namespace aft = asio_futures_test;
using namespace std::chrono_literals;

namespace {

/// What one call under an injected fault did.
struct fault_result {
  bool fired = false; // the armed allocation happened (false: the call made fewer)
  bool threw = false; // the call threw std::bad_alloc
};

/// Runs `call` on a fresh thread whose k-th allocation fails. Any exception other than
/// bad_alloc fails the case (join_for rethrows it); a hang fails it too.
template <class Call> fault_result under_fault(std::size_t k, Call&& call) {
  fault_result r;
  aft::bounded_thread t([&] {
    aft::allocation_fault fault(k);
    try {
      call();
    } catch (const std::bad_alloc&) {
      r.threw = true;
    }
    r.fired = fault.fired();
  });
  BOOST_TEST_REQUIRE(t.join_for());
  return r;
}

/// Calls `round(k)` for k = 1, 2, ... until a round's armed allocation no longer happens
/// (the operation succeeded with every allocation it makes); returns how many rounds had a
/// failure injected. `round` checks its own outcome.
template <class Round> std::size_t sweep(Round&& round) {
  for (std::size_t k = 1; k < 2000; ++k) {
    if (!round(k).fired) {
      BOOST_TEST_MESSAGE("allocation failures injected: " << k - 1);
      return k - 1;
    }
  }
  BOOST_FAIL("the operation never stopped allocating");
  return 0;
}

} // namespace

BOOST_AUTO_TEST_SUITE(fault_injection_)

BOOST_AUTO_TEST_CASE(constructing_a_future) {
  asio::io_context ioc;
  const std::size_t faults = sweep([&](std::size_t k) {
    std::optional<af::future<int>> f;
    const fault_result r = under_fault(k, [&] { f.emplace(ioc.get_executor()); });
    BOOST_TEST(r.threw != f.has_value());
    if (f) {
      f->set_result(int(k));
      BOOST_TEST(f->result() == int(k));
    }
    return r;
  });
  BOOST_TEST(faults >= 1); // the state
}

BOOST_AUTO_TEST_CASE(adding_a_done_callback) {
  const std::size_t faults = sweep([&](std::size_t k) {
    asio::io_context ioc;
    af::future<int> f(ioc.get_executor());
    int calls = 0;
    const fault_result r = under_fault(k, [&] {
      f.add_done_callback([&](const af::future<int>& g) {
        ++calls;
        BOOST_TEST(g.result() == 5);
      });
    });
    f.set_result(5);
    aft::poll(ioc);
    BOOST_TEST(calls == (r.threw ? 0 : 1));
    BOOST_TEST(!aft::has_outstanding_work(ioc));
    return r;
  });
  BOOST_TEST(faults >= 1);
}

BOOST_AUTO_TEST_CASE(waiting_with_a_callback) {
  const std::size_t faults = sweep([&](std::size_t k) {
    asio::io_context ioc;
    af::future<int> f(ioc.get_executor());
    int calls = 0;
    const fault_result r = under_fault(k, [&] {
      f.async_wait([&](std::exception_ptr e, int v) {
        ++calls;
        BOOST_TEST(!e);
        BOOST_TEST(v == 6);
      });
    });
    f.set_result(6);
    BOOST_TEST(aft::run_until(ioc, [&] { return calls > 0 || r.threw; }));
    aft::poll(ioc);
    BOOST_TEST(calls == (r.threw ? 0 : 1));
    BOOST_TEST(!aft::has_outstanding_work(ioc));
    return r;
  });
  BOOST_TEST(faults >= 1); // the waiter's node
}

BOOST_AUTO_TEST_CASE(waiting_with_a_cancellation_slot) {
  // A coroutine's await is this initiation with its cancellation slot bound (the slot's
  // handler is allocated too). After a successful call, the wait completes exactly once:
  // by a terminal cancellation (odd k) or by the value (even k).
  const std::size_t faults = sweep([&](std::size_t k) {
    asio::io_context ioc;
    af::future<int> f(ioc.get_executor());
    asio::cancellation_signal signal;
    int calls = 0;
    std::exception_ptr error;
    const fault_result r = under_fault(k, [&] {
      f.async_wait(asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e, int v) {
        ++calls;
        error = e;
        if (!e)
          BOOST_TEST(v == 8);
      }));
    });
    const bool by_cancel = k % 2 == 1;
    if (by_cancel)
      signal.emit(asio::cancellation_type::terminal);
    else
      f.set_result(8);
    BOOST_TEST(aft::run_until(ioc, [&] { return calls > 0 || r.threw; }));
    aft::poll(ioc);
    BOOST_TEST(calls == (r.threw ? 0 : 1));
    if (!r.threw && by_cancel)
      BOOST_TEST(aft::holds<af::cancelled_error>(error));
    BOOST_TEST(!aft::has_outstanding_work(ioc));
    return r;
  });
  BOOST_TEST(faults >= 2); // the waiter's node and the slot's handler
}

BOOST_AUTO_TEST_CASE(then) {
  const std::size_t faults = sweep([&](std::size_t k) {
    asio::io_context ioc;
    af::future<int> f(ioc.get_executor());
    std::optional<af::future<int>> next;
    int calls = 0;
    const fault_result r = under_fault(k, [&] {
      next = f.then([&](int v) {
        ++calls;
        return v + 1;
      });
    });
    BOOST_TEST(r.threw != next.has_value());
    f.set_result(1);
    if (next) {
      BOOST_TEST(aft::run_until(ioc, [&] { return next->done(); }));
      BOOST_TEST(next->result() == 2);
    }
    aft::poll(ioc);
    BOOST_TEST(calls == (next ? 1 : 0));
    return r;
  });
  BOOST_TEST(faults >= 2); // the result's state and the continuation's node
}

/// Sweeps one combinator over two pending futures: `start(a, b)` (the faulted call) throws
/// bad_alloc, and the inputs are untouched (they complete as if it had never been called), or
/// it returns a result that `check(ioc, result)` finds correct once the inputs are set. Only
/// the combinator's own call is faulted: its result is stored in place, without allocating.
template <class Start, class Check>
void sweep_combinator(const char* name, Start&& start, Check&& check) {
  BOOST_TEST_CONTEXT(name) {
    const std::size_t faults = sweep([&](std::size_t k) {
      asio::io_context ioc;
      af::future<int> a(ioc.get_executor());
      af::future<int> b(ioc.get_executor());
      std::optional<decltype(start(a, b))> result;
      const fault_result r = under_fault(k, [&] { result.emplace(start(a, b)); });
      BOOST_TEST(r.threw != result.has_value());
      a.set_result(1);
      // first_completed cancels the other inputs once one is done: b may be cancelled.
      BOOST_TEST((b.try_set_result(2) || (result && b.cancelled())));
      if (result)
        check(ioc, *result);
      aft::poll(ioc);
      BOOST_TEST(a.result() == 1);
      if (!b.cancelled())
        BOOST_TEST(b.result() == 2);
      BOOST_TEST(!aft::has_outstanding_work(ioc));
      return r;
    });
    BOOST_TEST(faults >= 1);
  }
}

using int_futures = std::vector<af::future<int>>;

BOOST_AUTO_TEST_CASE(combinators) {
  sweep_combinator(
      "gather(a, b)", [](const auto& a, const auto& b) { return af::gather(a, b); },
      [](asio::io_context& ioc, const auto& g) {
        BOOST_TEST(aft::run_until(ioc, [&] { return g.done(); }));
        BOOST_TEST((g.result() == std::tuple<int, int>(1, 2)));
      });
  sweep_combinator(
      "gather(return_exceptions, a, b)",
      [](const auto& a, const auto& b) { return af::gather(af::return_exceptions, a, b); },
      [](asio::io_context& ioc, const auto& g) {
        BOOST_TEST(aft::run_until(ioc, [&] { return g.done(); }));
        BOOST_TEST(std::get<0>(g.result()).value() == 1);
        BOOST_TEST(std::get<1>(g.result()).value() == 2);
      });
  // The input vector is built inside the faulted call: its failure is one more bad_alloc
  // before the combinator starts.
  const auto vector_of = [](const auto& a, const auto& b) { return int_futures{a, b}; };
  sweep_combinator(
      "gather(vector)", [&](const auto& a, const auto& b) { return af::gather(vector_of(a, b)); },
      [](asio::io_context& ioc, const auto& g) {
        BOOST_TEST(aft::run_until(ioc, [&] { return g.done(); }));
        BOOST_TEST((g.result() == std::vector<int>{1, 2}));
      });
  sweep_combinator(
      "wait(vector)", [&](const auto& a, const auto& b) { return af::wait(vector_of(a, b)); },
      [](asio::io_context& ioc, const auto& w) {
        BOOST_TEST(aft::run_until(ioc, [&] { return w.done(); }));
        BOOST_TEST(w.result().done.size() == 2u);
        BOOST_TEST(w.result().pending.empty());
      });
  sweep_combinator(
      "wait_for(a, 1h)",
      [](const auto& a, const auto&) { return af::wait_for(a, std::chrono::hours(1)); },
      [](asio::io_context& ioc, const auto& w) {
        BOOST_TEST(aft::run_until(ioc, [&] { return w.done(); }));
        BOOST_TEST(w.result() == 1);
      });
  sweep_combinator(
      "first_completed(vector)",
      [&](const auto& a, const auto& b) { return af::first_completed(vector_of(a, b)); },
      [](asio::io_context& ioc, const auto& w) {
        BOOST_TEST(aft::run_until(ioc, [&] { return w.done(); }));
        BOOST_TEST(w.result() == 1);
      });
  sweep_combinator(
      "shield(a)", [](const auto& a, const auto&) { return af::shield(a); },
      [](asio::io_context& ioc, const auto& s) {
        BOOST_TEST(aft::run_until(ioc, [&] { return s.done(); }));
        BOOST_TEST(s.result() == 1);
      });
  sweep_combinator(
      "as_completed(vector)",
      [&](const auto& a, const auto& b) { return af::as_completed(vector_of(a, b)); },
      [](asio::io_context& ioc, const auto& it) {
        int sum = 0;
        int got = 0;
        for (int i = 1; i <= 2; ++i) { // one async_next outstanding at a time
          it.async_next([&](std::exception_ptr e, af::future<int> f) {
            BOOST_TEST(!e);
            sum += f.result();
            ++got;
          });
          BOOST_TEST(aft::run_until(ioc, [&] { return got == i; }));
        }
        BOOST_TEST(sum == 3);
      });
}

BOOST_AUTO_TEST_CASE(create_task) {
  const std::size_t faults = sweep([&](std::size_t k) {
    asio::io_context ioc;
    std::atomic<int> ran{0};
    std::optional<af::task<int>> t;
    const fault_result r = under_fault(k, [&] {
      t.emplace(af::create_task(ioc.get_executor(), [&]() -> asio::awaitable<int> {
        ++ran;
        co_return 3;
      }));
    });
    BOOST_TEST(r.threw != t.has_value());
    aft::poll(ioc);
    BOOST_TEST(ran.load() == (t ? 1 : 0));
    if (t) {
      BOOST_TEST_REQUIRE(t->done());
      BOOST_TEST(t->result() == 3);
    }
    BOOST_TEST(af::all_tasks(ioc).empty());
    return r;
  });
  BOOST_TEST(faults >= 2); // the task's state and its coroutine
}

BOOST_AUTO_TEST_CASE(timeout_forms_never_leave_their_body_running) {
  // timeout, timeout_at and timeout_scope::run start the body as a child task, then set up
  // the cancellation handler and the deadline: a failure there must cancel the child and wait
  // for it before propagating (review finding: the body ran on behind the call). The whole
  // run happens on the faulted thread, so the coroutine frames' allocations fail too.
  for (int form = 0; form < 3; ++form) {
    const std::size_t faults = sweep([&](std::size_t k) {
      asio::io_context ioc;
      bool body_started = false, body_ended = false;
      bool call_done = false, body_ended_before_call = false;
      std::exception_ptr call_error;
      const auto body = [&]() -> asio::awaitable<int> {
        struct on_exit {
          bool* flag;
          ~on_exit() { *flag = true; }
        } guard{&body_ended};
        body_started = true;
        co_await aft::yield_n(3);
        co_return 7;
      };
      const fault_result r = under_fault(k, [&] {
        asio::co_spawn(
            ioc,
            [&]() -> asio::awaitable<int> {
              switch (form) {
              case 0:
                co_return co_await af::timeout(1h, body());
              case 1:
                co_return co_await af::timeout_at(std::chrono::steady_clock::now() + 1h, body());
              default: {
                af::timeout_scope scope(1h);
                co_return co_await scope.run(body());
              }
              }
            },
            [&](std::exception_ptr e, int) {
              call_done = true;
              call_error = e;
              body_ended_before_call = !body_started || body_ended;
            });
        ioc.run();
      });
      if (call_done) {
        BOOST_TEST(body_ended_before_call); // nothing outlived the call
        if (call_error)
          BOOST_TEST(aft::holds<std::bad_alloc>(call_error));
      }
      aft::poll(ioc);
      BOOST_TEST(af::all_tasks(ioc).empty());
      return r;
    });
    BOOST_TEST(faults >= 3);
  }
}

BOOST_AUTO_TEST_CASE(run_in_executor) {
  asio::thread_pool pool(1);
  const std::size_t faults = sweep([&](std::size_t k) {
    std::atomic<int> ran{0};
    std::optional<af::future<int>> f;
    const fault_result r = under_fault(k, [&] {
      f.emplace(af::run_in_executor(pool, [&] {
        ++ran;
        return 4;
      }));
    });
    BOOST_TEST(r.threw != f.has_value());
    if (f) {
      BOOST_TEST(f->wait_for(aft::default_timeout));
      BOOST_TEST(f->result() == 4);
      BOOST_TEST(ran.load() == 1);
    } else {
      // A job that was never submitted never runs: a later job on the same single thread
      // runs after anything queued before it.
      af::run_in_executor(pool, [] {}).wait();
      BOOST_TEST(ran.load() == 0);
    }
    return r;
  });
  BOOST_TEST(faults >= 2); // the future's state and the job
}

BOOST_AUTO_TEST_CASE(use_future) {
  const std::size_t faults = sweep([&](std::size_t k) {
    asio::io_context ioc;
    asio::steady_timer timer(ioc, 0ms);
    std::optional<af::future<void>> f;
    const fault_result r = under_fault(k, [&] { f.emplace(timer.async_wait(af::use_future)); });
    BOOST_TEST(r.threw != f.has_value());
    if (f) {
      BOOST_TEST(aft::run_until(ioc, [&] { return f->done(); }));
      BOOST_TEST(!f->exception());
    }
    aft::poll(ioc);
    BOOST_TEST(!aft::has_outstanding_work(ioc));
    return r;
  });
  BOOST_TEST(faults >= 2); // the future's state and the timer's operation
}

BOOST_AUTO_TEST_CASE(task_group_and_its_join) {
  const std::size_t faults = sweep([&](std::size_t k) {
    asio::io_context ioc;
    std::atomic<int> ran{0};
    std::optional<std::exception_ptr> joined;
    const fault_result r = under_fault(k, [&] {
      af::task_group tg(ioc);
      tg.create_task([&]() -> asio::awaitable<void> {
        ++ran;
        co_return;
      });
      tg.async_join([&](std::exception_ptr e) { joined = e; });
      aft::poll(ioc); // the child and the join run on the faulted thread
    });
    // The group lived in the faulted call: whatever failed, its destructor cancelled and
    // released what was left; nothing is pending and nothing runs later.
    aft::poll(ioc);
    BOOST_TEST(ran.load() <= 1);
    BOOST_TEST(af::all_tasks(ioc).empty());
    BOOST_TEST(!aft::has_outstanding_work(ioc));
    if (!r.threw) {
      BOOST_TEST_REQUIRE(joined.has_value());
      if (!*joined) {
        BOOST_TEST(ran.load() == 1);
      } else {
        // The child failed to start (its coroutine frame could not be allocated: on newer
        // Asio that allocation comes later, inside the poll): the join reports that failure.
        BOOST_TEST(ran.load() == 0);
        bool only_bad_alloc = false;
        try {
          std::rethrow_exception(*joined);
        } catch (const af::exception_group& g) {
          only_bad_alloc = !g.exceptions().empty();
          for (const auto& e : g.exceptions())
            only_bad_alloc = only_bad_alloc && aft::holds<std::bad_alloc>(e);
        } catch (...) {
        }
        BOOST_TEST(only_bad_alloc);
      }
    }
    return r;
  });
  BOOST_TEST(faults >= 3);
}

// --- sync.hpp: a wait that fails to start takes nothing and leaves nothing behind ----------

/// Sweeps one wait on a synchronisation primitive with a cancellation slot bound (as in a
/// coroutine): `setup(ioc)` makes the primitive (busy), `wait(handler)` starts the wait under
/// the fault, `free()` makes the resource available, `check(threw)` checks the state after
/// and destroys the primitive.
template <class Setup, class Wait, class Free, class Check>
std::size_t sweep_sync_wait(Setup&& setup, Wait&& wait, Free&& free, Check&& check) {
  return sweep([&](std::size_t k) {
    asio::cancellation_signal signal; // outlives the context: a waiter it destroys clears it
    asio::io_context ioc;
    setup(ioc);
    int calls = 0;
    std::exception_ptr error;
    auto handler = asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e, auto...) {
      ++calls;
      error = e;
    });
    const fault_result r = under_fault(k, [&] { wait(std::move(handler)); });
    free();
    BOOST_TEST(aft::run_until(ioc, [&] { return calls > 0 || r.threw; }));
    aft::poll(ioc);
    BOOST_TEST(calls == (r.threw ? 0 : 1));
    if (!r.threw)
      BOOST_TEST(!error);
    check(r.threw);
    BOOST_TEST(!aft::has_outstanding_work(ioc));
    return r;
  });
}

/// Makes `l` on `ioc` and takes it.
void make_held_lock(std::optional<af::lock>& l, asio::io_context& ioc) {
  l.emplace(ioc.get_executor());
  l->async_acquire([](std::exception_ptr) {});
  aft::poll(ioc);
  BOOST_TEST_REQUIRE(l->locked());
}

BOOST_AUTO_TEST_CASE(sync_waits) {
  std::optional<af::lock> l;
  BOOST_TEST(sweep_sync_wait([&](asio::io_context& ioc) { make_held_lock(l, ioc); },
                             [&](auto h) { l->async_acquire(std::move(h)); }, [&] { l->release(); },
                             [&](bool threw) {
                               // Handed to the waiter, or (never waiting) simply free.
                               BOOST_TEST(l->locked() == !threw);
                               l.reset();
                             }) >= 1u);

  std::optional<af::semaphore> s;
  BOOST_TEST(sweep_sync_wait([&](asio::io_context& ioc) { s.emplace(ioc.get_executor(), 0); },
                             [&](auto h) { s->async_acquire(std::move(h)); }, [&] { s->release(); },
                             [&](bool threw) {
                               BOOST_TEST(s->locked() == !threw); // taken, or still there
                               s.reset();
                             }) >= 1u);

  std::optional<af::event> ev;
  BOOST_TEST(sweep_sync_wait([&](asio::io_context& ioc) { ev.emplace(ioc.get_executor()); },
                             [&](auto h) { ev->async_wait(std::move(h)); }, [&] { ev->set(); },
                             [&](bool) { ev.reset(); }) >= 1u);

  std::optional<af::queue<int>> q;
  BOOST_TEST(sweep_sync_wait([&](asio::io_context& ioc) { q.emplace(ioc.get_executor()); },
                             [&](auto h) { q->async_get(std::move(h)); },
                             [&] { BOOST_TEST(q->try_put(7)); },
                             [&](bool threw) {
                               // Taken by the getter, or still in the queue.
                               BOOST_TEST(q->size() == (threw ? 1u : 0u));
                               q.reset();
                             }) >= 1u);

  BOOST_TEST(sweep_sync_wait(
                 [&](asio::io_context& ioc) {
                   q.emplace(ioc.get_executor(), 1);
                   BOOST_TEST_REQUIRE(q->try_put(1));
                 },
                 [&](auto h) { q->async_put(2, std::move(h)); }, // waits for room
                 [&] { BOOST_TEST((q->try_get() == std::optional<int>(1))); },
                 [&](bool threw) {
                   BOOST_TEST(q->size() == (threw ? 0u : 1u)); // put, or never
                   q.reset();
                 }) >= 1u);

  // A condition wait that fails to start must not have released the lock.
  std::optional<af::condition> c;
  bool held_after_failure = false; // written on the fault's thread, read after its join
  BOOST_TEST(sweep_sync_wait(
                 [&](asio::io_context& ioc) {
                   make_held_lock(l, ioc);
                   c.emplace(*l);
                 },
                 [&](auto h) {
                   try {
                     c->async_wait(std::move(h));
                   } catch (const std::bad_alloc&) {
                     held_after_failure = l->locked(); // checked on the test's thread
                     throw;
                   }
                 },
                 [&] {
                   auto notify = [&] {
                     c->notify(); // a waiter, if any, re-acquires after the release
                     l->release();
                   };
                   if (l->locked()) // the wait never started: the lock is still ours
                     notify();
                   else // the wait released it: notify holding it, as the rule is
                     l->async_acquire([notify](std::exception_ptr) { notify(); });
                 },
                 [&](bool threw) {
                   if (threw)
                     BOOST_TEST(held_after_failure); // the failed wait kept the lock ours
                   held_after_failure = false;
                   BOOST_TEST(l->locked() == !threw); // the waiter holds it again, or free
                   c.reset();
                   l.reset();
                 }) >= 1u);
}

// ---- The completing side -------------------------------------------------------------------
// A future with waiters of every kind whose executors are io_contexts, thread_pools or
// strands of them (a handler on the future's executor, a coroutine, a handler bound to a
// thread_pool, a done-callback, a `then` step, a combinator's waiter; a handler bound to a
// strand, a coroutine on a strand, a done-callback bound to a strand of the pool, a handler
// bound to that strand inside an any_io_executor) is completed on a fresh thread whose k-th
// allocation fails, for every k. Each waiter's completion was reserved when its wait
// started (for a strand: its record and the strand's own): completing allocates nothing (no
// fault fires), and every waiter receives the outcome exactly once. Before completions were
// reserved, the first fault here ended the program in std::terminate (the submission failed
// inside the noexcept completion path); before strands had their second record reserved,
// the strand waiters did the same.

namespace {

/// What the waiters of one round received.
struct received {
  std::atomic<int> values{0};   // completions with the expected value
  std::atomic<int> failures{0}; // completions with an exception
  std::atomic<int> wrong{0};    // completions with another value
  int total() const { return values + failures + wrong; }
};

void record(received& r, const std::exception_ptr& e, int v, int expected) {
  if (e)
    ++r.failures;
  else if (v == expected)
    ++r.values;
  else
    ++r.wrong;
}

/// A coroutine on `ex` that awaits `f` and records what it got.
template <class Executor>
void spawn_recorder(const Executor& ex, const af::future<int>& f, received& r, int expected) {
  asio::co_spawn(
      ex,
      [f, &r, expected]() -> asio::awaitable<void> {
        try {
          const int v = co_await f.async_wait();
          record(r, nullptr, v, expected);
        } catch (...) {
          record(r, std::current_exception(), 0, expected);
        }
      },
      asio::detached);
}

/// A handler and a done-callback that record what they got.
auto recording_handler(received& r, int expected) {
  return [&r, expected](std::exception_ptr e, int v) { record(r, e, v, expected); };
}
auto recording_callback(received& r, int expected) {
  return [&r, expected](const af::future<int>& g) {
    // (exception() of a cancelled future throws its cancelled_error, as in asyncio)
    if (g.cancelled())
      ++r.failures;
    else
      record(r, g.exception(), g.exception() ? 0 : g.result(), expected);
  };
}

/// Attaches ten waiters of different kinds to `f`; returns the `then` step's future.
af::future<int> attach_waiters(asio::io_context& ioc, asio::thread_pool& pool,
                               const af::future<int>& f, received& r, int expected) {
  f.async_wait(recording_handler(r, expected));
  spawn_recorder(ioc.get_executor(), f, r, expected);
  f.async_wait(asio::bind_executor(pool.get_executor(), recording_handler(r, expected)));
  f.add_done_callback(recording_callback(r, expected));
  auto step = f.then([](int v) { return v; }); // skipped (failing alike) if `f` fails
  step.async_wait(recording_handler(r, expected));
  // A waiter through a combinator: the inner bookkeeping runs on the completing thread.
  af::shield(f).async_wait(recording_handler(r, expected));
  // On strands: a concrete strand, and strands inside an any_io_executor.
  const auto io_strand = asio::make_strand(ioc);
  const auto pool_strand = asio::make_strand(pool);
  f.async_wait(asio::bind_executor(io_strand, recording_handler(r, expected)));
  spawn_recorder(io_strand, f, r, expected);
  f.add_done_callback(asio::bind_executor(pool_strand, recording_callback(r, expected)));
  f.async_wait(
      asio::bind_executor(asio::any_io_executor(pool_strand), recording_handler(r, expected)));
  return step;
}
constexpr int waiters_attached = 10;

/// Completes a future with waiters of every kind by `complete` on a faulted thread, for every
/// k (if the completing call throws bad_alloc instead, nothing may have changed, and it is
/// called again without a fault); `check(r)` checks what the waiters received. Returns the number
/// of faults injected.
template <class Complete, class Check>
std::size_t sweep_completion(Complete&& complete, Check&& check) {
  return sweep([&](std::size_t k) {
    asio::io_context ioc;
    asio::thread_pool pool(1);
    af::future<int> f(ioc.get_executor());
    received r;
    auto step = attach_waiters(ioc, pool, f, r, 42);
    aft::poll(ioc); // the coroutine starts waiting
    const fault_result fr = under_fault(k, [&] { complete(f); });
    if (fr.threw) {
      // bad_alloc at the caller: nothing changed; completing again without a fault works.
      BOOST_TEST(!f.done());
      complete(f);
    }
    BOOST_TEST(aft::run_until(ioc, [&] { return r.total() >= waiters_attached; }));
    if (r.total() < waiters_attached)
      pool.stop(); // a lost completion: do not block in join() (the case has failed)
    pool.join();
    aft::poll(ioc);
    BOOST_TEST(r.total() == waiters_attached); // exactly once each
    BOOST_TEST(r.wrong == 0);
    check(r);
    BOOST_TEST(step.done());
    return fr;
  });
}

} // namespace

BOOST_AUTO_TEST_CASE(completing_a_future_with_a_value_allocates_nothing) {
  const std::size_t faults =
      sweep_completion([](af::future<int>& f) { f.set_result(42); },
                       [](const received& r) { BOOST_TEST(r.values == waiters_attached); });
  BOOST_TEST(faults == 0u);
}

BOOST_AUTO_TEST_CASE(completing_a_future_with_an_exception_allocates_nothing) {
  // The exception is made before the fault is armed: set_exception itself allocates nothing.
  const std::exception_ptr e = std::make_exception_ptr(std::runtime_error("boom"));
  const std::size_t faults =
      sweep_completion([&](af::future<int>& f) { f.set_exception(e); },
                       [](const received& r) { BOOST_TEST(r.failures == waiters_attached); });
  BOOST_TEST(faults == 0u);
}

BOOST_AUTO_TEST_CASE(cancelling_a_future_under_memory_exhaustion) {
  // cancel() copies its message and builds its cancelled_error: copying the message may fail
  // (bad_alloc at the caller, nothing changed), and if building the error fails every waiter
  // sees the bad_alloc in its place; nothing else allocates.
  const std::size_t faults =
      sweep_completion([](af::future<int>& f) { f.cancel("a message that does not fit inline"); },
                       [](const received& r) { BOOST_TEST(r.failures == waiters_attached); });
  BOOST_TEST(faults >= 1u);
}

BOOST_AUTO_TEST_CASE(completing_a_combinators_input_allocates_nothing) {
  // gather over two inputs, each awaited by a coroutine and a callback; the last input is
  // completed on the faulted thread: gather's bookkeeping and its result's waiters run there.
  const std::size_t faults = sweep([&](std::size_t k) {
    asio::io_context ioc;
    af::future<int> a(ioc.get_executor());
    af::future<int> b(ioc.get_executor());
    auto g = af::gather(a, b);
    auto w = af::wait_for(b, std::chrono::hours(1));
    std::atomic<int> got{0};
    asio::co_spawn(
        ioc,
        [g, &got]() -> asio::awaitable<void> {
          const auto [x, y] = co_await g.async_wait();
          if (x == 1 && y == 2)
            ++got;
        },
        asio::detached);
    w.async_wait([&got](std::exception_ptr e, int v) {
      if (!e && v == 2)
        ++got;
    });
    aft::poll(ioc);
    a.set_result(1);
    aft::poll(ioc);
    const fault_result fr = under_fault(k, [&] { b.set_result(2); });
    BOOST_TEST(!fr.threw);
    BOOST_TEST(aft::run_until(ioc, [&] { return got == 2; }));
    return fr;
  });
  BOOST_TEST(faults == 0u);
}

BOOST_AUTO_TEST_CASE(releasing_a_lock_to_a_waiter_allocates_nothing) {
  // The waiter on the io_context, then bound to a strand of it.
  for (const bool on_strand : {false, true}) {
    BOOST_TEST_CONTEXT("on a strand: " << on_strand) {
      const std::size_t faults = sweep([&](std::size_t k) {
        asio::io_context ioc;
        af::lock l(ioc.get_executor());
        bool first = false;
        l.async_acquire([&](std::exception_ptr e) { first = !e; });
        BOOST_TEST_REQUIRE(aft::run_until(ioc, [&] { return first; }));
        std::atomic<int> got{0};
        auto waiter = [&](std::exception_ptr e) {
          if (!e)
            ++got;
        };
        if (on_strand)
          l.async_acquire(asio::bind_executor(asio::make_strand(ioc), waiter));
        else
          l.async_acquire(waiter);
        aft::poll(ioc);
        const fault_result fr = under_fault(k, [&] { l.release(); });
        BOOST_TEST(!fr.threw);
        BOOST_TEST(aft::run_until(ioc, [&] { return got == 1; }));
        BOOST_TEST(l.locked());
        return fr;
      });
      BOOST_TEST(faults == 0u);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
