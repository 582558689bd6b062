/*
 * future_state.pml -- Promela model of the state word of a future (state_base::list_).
 *
 * WHAT IS MODELLED (include/asio_futures/detail/state.hpp unless noted)
 *   list_ encoding, lines 89-98 ........ `list`: bit 0 done_bit, bit 1 lock_bit, the node
 *                                        pointer in the other bits (here: node index << 2).
 *   try_claim(), lines 162-166 ......... claimed_.exchange(true): one atomic statement.
 *   finish_*() + publish(), 169-194 .... the outcome write (plain), then publish()'s CAS loop:
 *                                        spin while lock_bit, CAS(cur -> done_bit).
 *   complete_nodes(), lines 306-320 .... reversal of the LIFO (reads/writes next_), then the
 *                                        FIFO walk that reads next_ BEFORE calling fn_.
 *   push(), lines 209-229 .............. load; done -> false; lock -> spin+reload;
 *                                        n->next_ = cur; CAS(cur -> n); retry on failure.
 *   remove()/remove_if(), lines 232-267  CAS(cur -> cur|lock_bit) loop (done -> nullptr,
 *                                        lock -> spin), walk through a pointer-to-pointer
 *                                        starting at the local copy `head`, unlink, then the
 *                                        plain store(head) that drops lock_bit.
 *   the callers' ownership rule ........ ops.hpp wait_op::start (415-421, push failure ->
 *                                        the initiator completes), wait_op cancel_handler
 *                                        (472-473, remove -> do_fn(detach)), inline_op.hpp
 *                                        on_done_inline / detach_inline (42-60), future.hpp
 *                                        add_done_callback (189-201), impl/future.hpp
 *                                        remove_done_callback (252-262), wait (264-274) and
 *                                        wait_for (278-297): a blocking_node on the waiter's
 *                                        stack; after a successful remove it is dropped
 *                                        WITHOUT calling fn_, after a failed one the waiter
 *                                        blocks until the completer signalled it.
 *
 * PROCESSES
 *   Waiter(k), k = 1..NW: ROUNDS times: allocate node k (the same index every round, i.e.
 *     the allocator reuses the address: this exercises ABA on push), choose its kind
 *     (ASYNC: fn_ frees it -- wait_op/callback_op/inline_op; BLOCKING: fn_ only signals, the
 *     waiter frees it when it returns), push it; if the push fails, complete it itself (the
 *     fast path); else either leave it to the completer or remove() it (a partial/total
 *     cancellation, detach_inline, remove_done_callback, a wait_for timeout).
 *   Completer(c), c = 1..NC: try_claim(); the winner writes the outcome and publish()es.
 *     With NC = 2 the two compete through try_claim (set_result vs cancel, etc.).
 *
 * ABSTRACTIONS (and why they are sound for the properties below)
 *   - Sequential consistency. Spin interleaves atomic statements; C++ memory orders are not
 *     modelled. The model proves the protocol logic (who owns which node when); the
 *     acquire/release pairing is a separate argument (docs/design-core.md, "Memory orders").
 *   - Every shared access is one Promela statement (the granularity of a C++ atomic
 *     operation). Accesses to node fields are separate statements so that use-after-free is
 *     observable, except in the completer's list reversal where one node's next_ read and
 *     write are merged (the completer owns the taken list exclusively; a foreign write
 *     there is caught by the freed/linked assertions anyway).
 *   - Spin-waiting (`spin_pause(); cur = load()` while lock_bit) is modelled as one blocking
 *     statement "wait until lock_bit is clear, then load". A spinning iteration that sees
 *     the bit changes no state, so the two have the same reachable states; a spinner that
 *     could wait forever shows up as an invalid end state instead of a non-progress cycle.
 *   - compare_exchange_weak's spurious failures are not modelled: a spurious failure only
 *     reloads `cur` with the current value and retries, i.e. it is a stutter step.
 *   - Memory: `freed[k]` is set when a node is freed (fn_ of an ASYNC node, the waiter's
 *     return for a BLOCKING node); every node access asserts !freed. Reuse of the address is
 *     the next round of the same waiter.
 *   - Left out: refs_ (state lifetime; the completer and waiters are assumed to hold
 *     references), the waiter_service registry and its lock (it only decides WHICH thread
 *     calls remove(); the model lets the owner do it), destroy_nodes() (only called by the
 *     sole owner of the state: no concurrency), the outcome contents, the posted part of
 *     the completion (after fn_ returns the node belongs to the executor).
 *
 * PROPERTIES (assertions; checked exhaustively together with invalid end states)
 *   P1 no double completion: each incarnation of a node is disposed of (fn_ called, or taken
 *      back by its owner) at most once -- assert in dispose().
 *   P2 no lost node: at every list-taking step the nodes reachable from the word are exactly
 *      the ghost set of linked nodes (the completer takes exactly the linked nodes, a remover
 *      leaves exactly the others); at the end every incarnation was disposed of exactly once
 *      and every node was freed; no process is stuck (invalid end state).
 *   P3 no use after free: every read/write of a node asserts it is not freed.
 *   P4 the outcome is written and published exactly once, by the claim winner, and a waiter
 *      that sees done_bit reads a written outcome.
 *   P5 the word is well formed: while a remover holds lock_bit nobody else changes the
 *      word (so its plain unlocking store loses nothing: the claim of state.hpp 263-264);
 *      publish() never finds done_bit already set; the final word is exactly done_bit.
 *   LTL `all_done`: <> (finished == NW + NC) (every thread eventually finishes).
 *
 * MUTANTS (-D macro; each must make the check fail, see check.sh --mutants)
 *   MUT_PUBLISH_LOAD_STORE  completion reads the list and stores done_bit separately
 *                           (no CAS/exchange): a push in between is lost.
 *   MUT_PUBLISH_IGNORES_LOCK completion CASes even while a remover holds lock_bit.
 *   MUT_PUSH_IGNORES_LOCK   push links while a remover holds the list.
 *   MUT_REMOVE_NO_LOCK      remove walks and stores without taking lock_bit.
 *   MUT_NEXT_AFTER_FN       complete_nodes reads next_ after calling fn_ (use after free).
 *   MUT_NEXT_AFTER_PUBLISH  push writes n->next_ after the CAS that published n.
 *   MUT_CLAIM_LOAD_STORE    try_claim as load + store instead of exchange (needs NC = 2).
 */

#ifndef NW
#define NW 2
#endif
#ifndef NC
#define NC 1
#endif
#ifndef ROUNDS
#define ROUNDS 2
#endif

#define DONE 1
#define LOCK 2
#define PTR(w) ((w) >> 2)
#define WORD(p) ((p) << 2)
#define BIT(k) (1 << (k))

byte list = 0;            /* state_base::list_ */
byte next[NW + 1];        /* node::next_ (node index, 0 = nullptr) */
bool freed[NW + 1];       /* ghost: the node's memory is free (initially: not allocated) */
bool blocking[NW + 1];    /* ghost: node kind of the current incarnation */
bool signalled[NW + 1];   /* blocking_node::signalled_ */
byte disposed[NW + 1];    /* ghost: fn_ calls / take-backs of the current incarnation */
byte linked = 0;          /* ghost: bit k = node k is linked in the list */
bool claimed = 0;         /* state_base::claimed_ */
byte outcome = 0;         /* 0 = none, else the id of the completer that wrote it */
byte publishes = 0;       /* ghost */
byte finished = 0;        /* ghost: processes that ran to completion */

/* The set of nodes reachable from pointer p through next_, as a bit mask; asserts that the
 * list is acyclic and touches no freed node. Runs inside an atomic/d_step (ghost check). */
inline reach(p, mask, steps, q) {
  mask = 0; steps = 0; q = p;
  do
  :: q != 0 ->
     assert(!freed[q]);
     assert(steps < NW);
     mask = mask | BIT(q); steps++; q = next[q]
  :: else -> break
  od
}

/* Dispose of node k once: fn_(k) by the completer or a remover, or the owner taking it back.
 * An ASYNC node is freed by its fn_ (inline_op deletes itself; wait_op/callback_op are
 * posted and freed by the executor at any later time: freeing at once is the strongest
 * assumption). A BLOCKING node is only signalled; its waiter frees it. */
inline dispose(k, by_fn) {
  d_step {
    assert(!freed[k]);
    assert(disposed[k] == 0);             /* P1 */
    assert((linked & BIT(k)) == 0);       /* never while the state still owns it */
    disposed[k]++;
    if
    :: blocking[k] && by_fn -> signalled[k] = 1
    :: else -> freed[k] = 1
    fi
  }
}

proctype Waiter(byte me) {
  byte cur, head, prev, x, nx, found, r = 0, mask, steps, q;
  bool ok, pushed;

  do
  :: r < ROUNDS ->
     /* allocate node `me` (the address of the previous incarnation, once free) */
     freed[me];
     d_step { freed[me] = 0; disposed[me] = 0; signalled[me] = 0; next[me] = 0 }
     if
     :: blocking[me] = 0
     :: blocking[me] = 1
     fi;

     /* ---- push(n) ---- */
     cur = list;
push_loop:
     if
     :: cur & DONE -> pushed = 0; goto push_end
     :: else
     fi;
#ifndef MUT_PUSH_IGNORES_LOCK
     if
     :: cur & LOCK -> atomic { (list & LOCK) == 0; cur = list }; goto push_loop
     :: else
     fi;
#endif
#ifndef MUT_NEXT_AFTER_PUBLISH
     d_step { assert(!freed[me]); next[me] = PTR(cur) }   /* n->next_ = cur */
#endif
     atomic {
       if
       :: list == cur ->
          list = WORD(me); linked = linked | BIT(me); ok = 1
       :: else -> cur = list; ok = 0
       fi
     }
     if
     :: !ok -> goto push_loop
     :: else
     fi;
#ifdef MUT_NEXT_AFTER_PUBLISH
     d_step { assert(!freed[me]); next[me] = PTR(cur) }
#endif
     pushed = 1;
push_end:

     if
     :: !pushed ->
        /* already done: the node is still ours; the outcome must be visible (P4) */
        assert(outcome != 0);
        dispose(me, 0);
        freed[me] = 1
     :: else ->
        if
        :: skip   /* leave it to the completer */
        :: skip ->
           /* ---- remove(n) = remove_if(x == n) ---- */
           found = 0;
           cur = list;
rm_loop:
           if
           :: cur & DONE -> goto rm_end
           :: else
           fi;
#ifndef MUT_REMOVE_NO_LOCK
           if
           :: cur & LOCK -> atomic { (list & LOCK) == 0; cur = list }; goto rm_loop
           :: else
           fi;
           atomic {
             if
             :: list == cur -> list = cur | LOCK; ok = 1
             :: else -> cur = list; ok = 0
             fi
           }
           if
           :: !ok -> goto rm_loop
           :: else
           fi;
#endif
           head = PTR(cur); prev = 0; x = head;
           do
           :: x == 0 -> break
           :: else ->
              d_step { assert(!freed[x]) }     /* pred(*pp) reads the node */
              if
              :: x == me ->
                 found = x;
                 d_step { assert(!freed[x]); nx = next[x] }   /* found->next_ */
                 if
                 :: prev == 0 -> head = nx                      /* *pp is the local head */
                 :: else -> d_step { assert(!freed[prev]); next[prev] = nx }
                 fi;
                 break
              :: else ->
                 d_step { assert(!freed[x]); prev = x; x = next[x] }
              fi
           od;
           /* list_.store(head): drops lock_bit */
           atomic {
#ifndef MUT_REMOVE_NO_LOCK
             /* state.hpp 263-264: nobody changed the word while we held lock_bit (P5) */
             assert(list == (cur | LOCK));
#endif
             list = WORD(head);
             if
             :: found -> linked = linked & ~BIT(found)
             :: else
             fi;
             reach(head, mask, steps, q);
             assert(mask == linked)                      /* P2 */
           };
rm_end:
           if
           :: found -> dispose(me, 0)   /* ours now: fn_(detach/destroy), or a blocking node dropped */
           :: else
           fi
        fi;
        /* a blocking waiter returns (freeing its stack node) once signalled or taken back */
        if
        :: blocking[me] && !freed[me] -> signalled[me]; d_step { assert(disposed[me] == 1); freed[me] = 1 }
        :: else
        fi
     fi;
     r++
  :: else -> break
  od;
  finished++
}

proctype Completer(byte me) {
  byte cur, lifo, fifo, nx, mask, steps, q;
  bool won, ok;

  /* ---- try_claim() ---- */
#ifdef MUT_CLAIM_LOAD_STORE
  won = !claimed;
  claimed = 1;
#else
  atomic { won = !claimed; claimed = 1 }
#endif
  if
  :: !won -> goto c_end
  :: else
  fi;
  /* the winner writes the outcome (plain stores), then publishes */
  assert(outcome == 0);                                  /* P4 */
  outcome = me;

  /* ---- publish() ---- */
  cur = list;
#ifdef MUT_PUBLISH_LOAD_STORE
  atomic { (list & LOCK) == 0; cur = list };
  atomic {
    list = DONE; publishes++;
    reach(PTR(cur), mask, steps, q);
    assert(mask == linked);                              /* P2 */
    linked = 0
  };
#else
pub_loop:
#ifndef MUT_PUBLISH_IGNORES_LOCK
  if
  :: cur & LOCK -> atomic { (list & LOCK) == 0; cur = list }; goto pub_loop
  :: else
  fi;
#endif
  atomic {
    if
    :: list == cur ->
       list = DONE; publishes++; ok = 1;
       assert(publishes == 1);                           /* P4 */
       assert((cur & DONE) == 0);                        /* P5 */
       reach(PTR(cur), mask, steps, q);
       assert(mask == linked);                           /* P2: we take exactly the linked nodes */
       linked = 0
    :: else -> cur = list; ok = 0
    fi
  }
  if
  :: !ok -> goto pub_loop
  :: else
  fi;
#endif

  /* ---- complete_nodes(): reverse the LIFO, then call fn_ in FIFO order ---- */
  lifo = PTR(cur); fifo = 0;
  do
  :: lifo != 0 ->
     d_step { assert(!freed[lifo]); nx = next[lifo]; next[lifo] = fifo; fifo = lifo; lifo = nx }
  :: else -> break
  od;
  do
  :: fifo != 0 ->
#ifdef MUT_NEXT_AFTER_FN
     dispose(fifo, 1);
     d_step { assert(!freed[fifo]); fifo = next[fifo] }
#else
     d_step { assert(!freed[fifo]); nx = next[fifo] }
     dispose(fifo, 1);
     fifo = nx
#endif
  :: else -> break
  od;
c_end:
  finished++
}

init {
  byte i;
  atomic {
    i = 1;
    do
    :: i <= NW -> freed[i] = 1; run Waiter(i); i++
    :: else -> break
    od;
    i = 1;
    do
    :: i <= NC -> run Completer(i); i++
    :: else -> break
    od
  }
  finished == NW + NC;
  /* final state: every incarnation disposed of exactly once and freed (P2), one
   * publication (P4), a well-formed done word (P5) */
  d_step {
    assert(publishes == 1 && outcome != 0 && claimed);
    assert(list == DONE && linked == 0);
    i = 1;
    do
    :: i <= NW -> assert(freed[i] && disposed[i] == 1); i++
    :: else -> break
    od
  }
}

ltl all_done { <> (finished == NW + NC) }
