/*
 * task_gate.pml -- Promela model of a task's gate word (task_gate::word_) and of the
 * cancellation emissions that go through it.
 *
 * WHAT IS MODELLED
 *   include/asio_futures/detail/task_gate.hpp
 *     word_ layout, lines 126-136 ...... writer_bit 1, pending_bit 2, started_bit 4,
 *                                        owner_lock_bit 8, closed_bit 16, readers from bit 5,
 *                                        generation in the top bits (see GENERATION below).
 *     gate_section, lines 193-212 ....... a reader: enter(gen); if entered, leave().
 *   src/task.cpp
 *     task_core::task_core, 41-56 ....... a task takes the gate from the pool, reads its
 *                                        generation (relaxed), publish_owner() last.
 *     request_cancel, 85-133 ............ from inside (running_here): try_write_as_sole_reader
 *                                        -> emit -> end_sole_write, else defer() (+add_ref
 *                                        when the mark is new); from outside: add_ref and
 *                                        post an `emitter` that runs emit_or_defer().
 *     emit_or_defer / write / perform_pending, 159-196: the writer's loop
 *                                        emit; while (!try_end_write) { emit; release_hooked }.
 *     enter 231-250, try_write_as_sole_reader 252-262, end_sole_write 264-268 (fetch_and),
 *     leave 270-289, write_or_defer 291-309, defer 311-314 (fetch_or), try_end_write 316-331,
 *     first_submission 333-342, update_unlocked/lock_owner/unlock_owner 344-365 (fetch_and),
 *     owner_info 367-380 (current_task()), retire 549-567 (lock_owner; owner_ = null; one CAS
 *     that advances the generation -- or sets closed_bit after the last one -- and drops the
 *     owner lock; back to the pool unless closed).
 *   The task's reference count (state_base::refs_): the handle, the emitter, every pending
 *   mark and a canceller inside the task each hold one; the last drop destroys the task,
 *   whose ~task_core calls retire() (task.cpp 67-69) on whichever thread dropped it --
 *   possibly a reader leaving the gate, inside perform_pending().
 *
 * PROCESSES (3 threads)
 *   Life: creates the tasks that use this gate, one after the other (each waits until the
 *     previous one retired the gate into the pool); for each: first_submission, up to NREQ
 *     cancels from outside (each posts an emitter, run later by Life or by a Reader thread,
 *     in any order relative to the handle's release), then drops the handle. Stops when
 *     the gate closed.
 *   Reader(1), Reader(2): ROUNDS times: copy the executor (gate, generation) of the newest
 *     task -- with or without holding a reference to the task -- or (ROUNDS > 1) keep the
 *     executor copied in an earlier round; then, at any later time (the task may be gone by
 *     then: a stale executor), run a function through it: enter(gen); if entered:
 *     optionally (holding a reference) cancel the task from inside, optionally (with
 *     -DOWNER_INFO) call current_task() = owner_info(gen), then leave(). Instead of a
 *     gated function, a round may run a posted emitter (the executor's threads run both).
 *     A reader that has nothing left to run stops (`timeout`).
 *
 * GENERATION ABSTRACTION
 *   The C++ generation has 22 bits (bits 42..63); the model has GENBITS (default 2) at bits
 *   7..(6+GENBITS), so the gate has 2^GENBITS generations: gens 0..GEN_MAX, then closed.
 *   The protocol only compares generations for equality, increments them, and tests
 *   gen == gate_gen_mask in retire(); none of that depends on the width, and gate_ref packs
 *   exactly the same 22 bits (static_assert, task_gate.hpp 138), so a smaller width only
 *   shortens the road to the last generation: with 2 bits the model runs every generation
 *   of a gate, its closing, and (mutant MUT_RETIRE_WRAPS) the ABA a wrap-around would cause
 *   after 2^22 tasks, within 5 tasks. The reader count has 2 bits (bits 5-6): at most 2
 *   readers exist, and the model asserts the count never overflows.
 *
 * OTHER ABSTRACTIONS
 *   - Sequential consistency (see future_state.pml); each atomic RMW/load/store is one
 *     statement; compare_exchange_weak's spurious failures are stutter steps, not modelled.
 *   - Spinning (enter() yielding while writer_bit is set, update_unlocked() while
 *     owner_lock_bit is set) is one blocking "wait until clear, then load" statement (same
 *     reachable states; a waiter that could spin forever becomes an invalid end state).
 *   - An emission (signal_.emit) is one step, which asserts that its thread holds the writer
 *     role (ghost `writers`, updated in the same step as the CAS that takes or leaves the
 *     role) and that no other reader is inside (ghost `inside`, idem). Its
 *     `state_.done() || !body_started_` early return and its content are not modelled (they
 *     do not touch the gate). writing_frame / entry::nested (an emission dispatching back
 *     into its own task on the same thread) and the thread-local position are left out,
 *     except that "running_here()" is given by construction: a reader cancels "from inside"
 *     only while it is entered in the gate of the task it holds a reference to.
 *   - The gate pool is a flag: a retired (not closed) gate is free and the next task takes
 *     it. skip_generations_for_testing and collect_owner are not modelled (owner_info is).
 *
 * PROPERTIES (assertions + invalid end states, exhaustive)
 *   G1 mutual exclusion: at most one thread holds the writer role; it takes the role only
 *      with no reader inside (the sole-reader writer: exactly itself); no reader enters
 *      while the role is held; every emission runs in the writer role, for a live task that
 *      has not retired; while try_end_write() runs the reader count is 0 (the claim of
 *      task.cpp 319: "only a pending mark can have appeared").
 *   G2 no stale entry: enter() succeeds only for the generation of a task that has not
 *      retired (ghost `retired[task]`); owner_info() reads only a live owner of its generation.
 *   G3 pending is never lost: every cancel request is followed by an emission of its task
 *      that begins after it (ghost need_emit[], cleared when an emission begins), every
 *      pending mark is consumed by the writer/last reader for the task whose reference it
 *      holds, and at the end no mark, writer or reader is left, every reference was dropped
 *      and every task retired (no leak).
 *   G4 closes for good: retire() never runs with an emission pending or running (the claim
 *      of task.cpp 552-553), the generation only grows by one per retire, after the last
 *      generation the gate is closed, its generation stays the last one and no task takes
 *      it again (final state), and LTL `closed_stays`: [] (closed -> [] closed).
 *   LTL `pending_served`: [] (pending -> <> !pending); `requests_served`:
 *      [] (outstanding > 0 -> <> outstanding == 0).
 *
 * MUTANTS (-D macro; each must make the check fail, see check.sh --mutants)
 *   MUT_ENTER_IGNORES_WRITER   a reader enters while an emission runs.
 *   MUT_ENTER_NO_GEN_CHECK     enter() does not compare the generation.
 *   MUT_RETIRE_WRAPS           the last generation wraps around to 0 instead of closing.
 *   MUT_LEAVE_IGNORES_PENDING  the last reader out does not perform the pending emission.
 *   MUT_END_WRITE_IGNORES_PENDING try_end_write drops the writer role despite a new mark.
 *   MUT_WRITE_IGNORES_READERS  write_or_defer takes the writer role with readers inside.
 *   MUT_SOLE_IGNORES_COUNT     try_write_as_sole_reader does not check the reader count.
 */


#ifndef GENBITS
#define GENBITS 2
#endif
#ifndef NREQ
#define NREQ 1
#endif
#ifndef ROUNDS
#define ROUNDS 1
#endif

#define GEN_MAX ((1 << GENBITS) - 1)
/* tasks one gate can serve: one per generation (one more lets the wrap mutant show ABA) */
#ifdef MUT_RETIRE_WRAPS
#define NT (GEN_MAX + 2)
#else
#define NT (GEN_MAX + 1)
#endif
#define NTA 10            /* ghost array size (Promela needs a literal); NT < NTA */

#define WRITER 1
#define PENDING 2
#define STARTED 4
#define OLOCK 8
#define CLOSED 16
#define ONE_READER 32
#define GEN_SHIFT 7
#define ONE_GEN (1 << GEN_SHIFT)
#define COUNT_MASK ((ONE_GEN - 1) & ~(ONE_READER - 1))
#define WORD_MASK ((1 << (GEN_SHIFT + GENBITS)) - 1)
#define GEN_OF(w) ((w) >> GEN_SHIFT)

/* the decisions the mutants change */
#ifdef MUT_ENTER_NO_GEN_CHECK
#define STALE(w, g) (((w) & CLOSED) != 0)
#else
#define STALE(w, g) (GEN_OF(w) != (g) || ((w) & CLOSED) != 0)
#endif
#ifdef MUT_ENTER_IGNORES_WRITER
#define ENTER_WAITS(w) 0
#else
#define ENTER_WAITS(w) (((w) & WRITER) != 0)
#endif
#ifdef MUT_LEAVE_IGNORES_PENDING
#define LEAVE_PERFORMS(w) 0
#else
#define LEAVE_PERFORMS(w) (((w) & COUNT_MASK) == ONE_READER && ((w) & PENDING) != 0)
#endif
#ifdef MUT_END_WRITE_IGNORES_PENDING
#define END_SEES_PENDING(w) 0
#else
#define END_SEES_PENDING(w) (((w) & PENDING) != 0)
#endif
#ifdef MUT_WRITE_IGNORES_READERS
#define GATE_FREE(w) (((w) & WRITER) == 0)
#else
#define GATE_FREE(w) (((w) & (COUNT_MASK | WRITER)) == 0)
#endif
#ifdef MUT_SOLE_IGNORES_COUNT
#define SOLE_OK(w) (((w) & (WRITER | PENDING)) == 0)
#else
#define SOLE_OK(w) (((w) & (COUNT_MASK | WRITER | PENDING)) == ONE_READER)
#endif

int word = 0;              /* task_gate::word_ */
byte owner = 0;            /* task_gate::owner_ (task number, 0 = nullptr) */
bool pool_free = 1;        /* the gate is in the pool */

/* ghosts */
byte ntasks = 0;           /* tasks created; task t in 1..ntasks */
byte newest = 0;           /* the task whose executor a reader can copy now */
byte gen_[NTA];            /* task_core::gen_ */
byte refs[NTA];            /* the task state's reference count */
bool alive[NTA];           /* the task object exists */
bool retired[NTA];         /* its retire() CAS happened */
bool need_emit[NTA];       /* a cancel request not yet followed by an emission */
byte outstanding = 0;      /* number of t with need_emit[t] */
byte inside = 0;           /* readers entered and not yet left */
byte writers = 0;          /* threads holding the writer role */
byte mark_of = 0;          /* the task whose reference the pending mark holds */
byte posted = 0;           /* emitters posted and not yet run (all for task `posted_for`) */
byte posted_for = 0;
byte finished = 0;

#define closed ((word & CLOSED) != 0)
#define pending ((word & PENDING) != 0)

/* A CAS is written as two guarded atomic options: success (guard includes word == w) and
 * failure (word != w: w = the current value), i.e. compare_exchange. The loops are do-loops
 * because inlines are expanded several times per process (no labels in them). */

/* task_core::emit() (signal_.emit) for task t, by the holder of the writer role; `sole`:
 * the writer is also a reader inside (try_write_as_sole_reader) */
inline emit(t, sole) {
  d_step {
    assert(writers == 1 && inside == sole);          /* G1 */
    assert(alive[t] && refs[t] > 0 && !retired[t]);
    if
    :: need_emit[t] -> need_emit[t] = 0; outstanding--
    :: else
    fi
  }
}

/* update_unlocked(w | owner_lock_bit) */
inline lock_owner(w) {
  w = word;
  do
  :: atomic { (w & OLOCK) && (word & OLOCK) == 0 -> w = word }    /* yield; reload */
  :: atomic { !(w & OLOCK) && word == w -> word = w | OLOCK; w = 0 }; break
  :: atomic { !(w & OLOCK) && word != w -> w = word }
  od
}

/* ~task_core -> task_gate::retire() */
inline retire(t, w, last) {
  lock_owner(w);
  owner = 0;
  d_step { w = word; last = (GEN_OF(w) == GEN_MAX) };
  do
  :: atomic {
       word == w ->
       assert((w & (WRITER | PENDING)) == 0);      /* G4: nothing pending or running */
#ifdef MUT_RETIRE_WRAPS
       word = ((w + ONE_GEN) & WORD_MASK) & ~(STARTED | OLOCK);   /* 64-bit overflow */
       last = 0;
#else
       if
       :: last -> word = (w | CLOSED) & ~OLOCK
       :: else -> word = (w + ONE_GEN) & ~(STARTED | OLOCK);
                  assert(GEN_OF(word) == GEN_OF(w) + 1)             /* G4 */
       fi;
#endif
       retired[t] = 1; w = 0
     };
     break
  :: atomic { word != w -> w = word }
  od;
  atomic {     /* (a break may not jump to a d_step) */
    if
    :: !last -> pool_free = 1       /* gate_pool::put */
    :: else
    fi;
    alive[t] = 0;                   /* the rest of the destruction */
    last = 0
  }
}

/* drop a reference to task t (state_base::drop_ref / release_hooked); the last one
 * destroys the task, which retires the gate */
inline drop_ref(t, w, last) {
  if
  :: atomic { refs[t] == 1 -> refs[t] = 0 }; retire(t, w, last)
  :: atomic { refs[t] > 1 -> refs[t]-- }
  :: else -> assert(0)
  fi
}

/* task_core::write() for task t: the caller holds the writer role and a reference.
 *   emit(); while (!try_end_write()) { emit(); state_.release_hooked(); } */
inline write(t, w, last) {
  emit(t, 0);
  w = word;
  do
  :: atomic { END_SEES_PENDING(w) && word == w ->
              assert((w & COUNT_MASK) == 0);   /* task.cpp 319: only a mark can appear */
              word = w & ~PENDING; assert(mark_of == t); mark_of = 0; w = 0 };    /* G3 */
     emit(t, 0);
     drop_ref(t, w, last);        /* the mark's reference */
     w = word
  :: atomic { END_SEES_PENDING(w) && word != w -> w = word }
  :: atomic { !END_SEES_PENDING(w) && word == w ->
              assert((w & COUNT_MASK) == 0);   /* (idem) */
              word = w & ~WRITER; writers--; w = 0 };
     break
  :: atomic { !END_SEES_PENDING(w) && word != w -> w = word }
  od
}

/* a posted `emitter` runs (any thread of the executor): emit_or_defer() -> write_or_defer();
 * it holds a reference to task t */
inline run_emitter(t, w, last) {
  w = word;
  do
  :: atomic { GATE_FREE(w) && word == w ->
              word = w | WRITER; assert(writers == 0 && inside == 0); writers = 1; w = 0 };
     write(t, w, last);                  /* wrote */
     drop_ref(t, w, last);               /* ~emitter */
     break
  :: atomic { GATE_FREE(w) && word != w -> w = word }
  :: atomic { !GATE_FREE(w) && (w & PENDING) -> w = 0 };
     drop_ref(t, w, last);               /* already_pending; ~emitter */
     break
  :: atomic { !GATE_FREE(w) && !(w & PENDING) && word == w ->
              word = w | PENDING; mark_of = t; w = 0 };
     break                               /* deferred: the mark holds our reference */
  :: atomic { !GATE_FREE(w) && !(w & PENDING) && word != w -> w = word }
  od
}

proctype Life() {
  byte t, nreq;
  int w;
  bool last, handle;

  do
  :: ntasks < NT ->
     (pool_free || closed);
     if
     :: closed -> break
     :: else
     fi;
     /* task_core(): acquire() (from the pool), gen_ = generation() */
     d_step {
       pool_free = 0; ntasks++; t = ntasks;
       gen_[t] = GEN_OF(word); refs[t] = 1; alive[t] = 1; handle = 1; nreq = 0
     };
     /* publish_owner(this); from now on the task can be shared */
     d_step { owner = t; newest = t };
     /* first_submission(gen_) in create_task: it must win */
     w = word;
     do
     :: atomic { word == w ->
                 assert(!(w & STARTED) && GEN_OF(w) == gen_[t]); word = w | STARTED; w = 0 };
        break
     :: atomic { word != w -> w = word }
     od;

     do
     :: handle && nreq < NREQ ->
        /* request_cancel from outside: record it, post an emitter (which holds a reference) */
        d_step {
          nreq++; refs[t]++; posted++; posted_for = t;
          if
          :: !need_emit[t] -> need_emit[t] = 1; outstanding++
          :: else
          fi
        }
     :: atomic { posted > 0 -> posted-- };
        run_emitter(t, w, last)
     :: handle -> handle = 0; drop_ref(t, w, last)      /* the last handle goes */
     :: !handle && posted == 0 -> break
     od;
     atomic { t = 0; nreq = 0; posted_for = 0 }
  :: else -> break
  od;
  finished++
}

proctype Reader(byte me) {
  byte t = 0, g = 0, o = 0, r = 0;
  int w = 0;
  bool last = 0, hasref = 0;

  do
  :: r < ROUNDS ->
     /* which executor runs the function */
     if
     :: atomic { newest > 0 && alive[newest] -> t = newest; g = gen_[t]; r++ }
     :: atomic { newest > 0 && alive[newest] && refs[newest] > 0 ->
                 t = newest; g = gen_[t]; refs[t]++; hasref = 1; r++ }
     :: atomic { t > 0 -> r++ }        /* an executor copied in an earlier round */
     :: atomic { posted > 0 -> posted--; o = posted_for; r++ };
        run_emitter(o, w, last);       /* a posted emitter, not a gated function */
        o = 0;
        goto round_end
     :: timeout -> break               /* nothing left to run */
     fi;

     /* ---- gate_section: enter(g) ---- */
     w = word;
     do
     :: atomic { STALE(w, g) -> w = 0 }; goto round_end      /* run outside any gate */
     :: atomic { !STALE(w, g) && ENTER_WAITS(w) && (word & WRITER) == 0 -> w = word }  /* yield */
     :: atomic { !STALE(w, g) && !ENTER_WAITS(w) && word == w ->
                 assert((w & COUNT_MASK) != COUNT_MASK);    /* the count never overflows */
                 word = w + ONE_READER; inside++; w = 0;
                 assert(writers == 0);                      /* G1 */
                 assert(!retired[t] && gen_[t] == g)        /* G2 */
               };
        break
     :: atomic { !STALE(w, g) && !ENTER_WAITS(w) && word != w -> w = word }
     od;

     /* ---- the function's body ---- */
     if
     :: hasref ->
        /* request_cancel from inside (running_here()) */
        d_step {
          if
          :: !need_emit[t] -> need_emit[t] = 1; outstanding++
          :: else
          fi;
          w = word
        };
        /* try_write_as_sole_reader() */
        do
        :: atomic { !SOLE_OK(w) -> w = 0 };
           /* defer(): fetch_or; a new mark gets a reference (a separate step) */
           atomic {
             w = ((word & PENDING) == 0);
             if
             :: w -> mark_of = t
             :: else
             fi;
             word = word | PENDING
           };
           if
           :: w -> d_step { refs[t]++; w = 0 }
           :: else
           fi;
           break
        :: atomic { SOLE_OK(w) && word == w ->
                    word = w | WRITER; assert(writers == 0 && inside == 1); writers = 1; w = 0 };
           emit(t, 1);
           atomic { word = word & ~WRITER; writers-- };     /* end_sole_write: fetch_and */
           break
        :: atomic { SOLE_OK(w) && word != w -> w = word }
        od
     :: skip
     fi;
#ifdef OWNER_INFO
     if
     :: /* current_task() -> owner_info(g) */
        lock_owner(w);
        atomic {
          if
          :: GEN_OF(word) == g ->
             assert(owner == 0 || (owner == t && alive[t] && !retired[t]))   /* G2 */
          :: else
          fi
        };
        word = word & ~OLOCK                              /* unlock_owner: fetch_and */
     :: skip
     fi;
#endif

     /* ---- leave() ---- */
     w = word;
     do
     :: atomic { LEAVE_PERFORMS(w) && word == w ->
                 assert((w & WRITER) == 0);
                 word = (w & ~(COUNT_MASK | PENDING)) | WRITER; inside--;
                 assert(writers == 0 && inside == 0); writers = 1;
                 o = mark_of; mark_of = 0; w = 0 };
        /* owner_.load()->perform_pending(): the mark's reference keeps the owner alive */
        d_step { assert(o != 0 && owner == o && alive[o] && refs[o] > 0) };     /* G3 */
        write(o, w, last);
        drop_ref(o, w, last);
        o = 0;
        break
     :: atomic { LEAVE_PERFORMS(w) && word != w -> w = word }
     :: atomic { !LEAVE_PERFORMS(w) && word == w -> word = w - ONE_READER; inside--; w = 0 };
        break
     :: atomic { !LEAVE_PERFORMS(w) && word != w -> w = word }
     od;

round_end:
     if
     :: hasref -> hasref = 0; drop_ref(t, w, last)
     :: else
     fi;
     if
     :: r == ROUNDS -> d_step { t = 0; g = 0 }
     :: else
     fi
  :: else -> break
  od;
  finished++
}

init {
  byte i;
  assert(NT < NTA && GENBITS + GEN_SHIFT <= 30);
  atomic {
    run Life();
    run Reader(1);
    run Reader(2)
  }
  finished == 3;
  d_step {
    /* G3: nothing left behind */
    assert((word & (PENDING | WRITER | OLOCK | COUNT_MASK)) == 0);
    assert(inside == 0 && writers == 0 && outstanding == 0 && mark_of == 0 && posted == 0);
    i = 1;
    do
    :: i <= ntasks -> assert(refs[i] == 0 && !alive[i] && retired[i] && !need_emit[i]); i++
    :: else -> break
    od;
#ifndef MUT_RETIRE_WRAPS
    /* G4: every generation was used once, then the gate closed for good */
    assert(ntasks == GEN_MAX + 1 && closed && GEN_OF(word) == GEN_MAX && !pool_free);
#endif
    i = 0
  }
}

ltl closed_stays { [] (closed -> [] closed) }
ltl pending_served { [] (pending -> <> !pending) }
ltl requests_served { [] (outstanding > 0 -> <> (outstanding == 0)) }
