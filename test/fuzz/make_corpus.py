#!/usr/bin/env python3
"""Writes the seed corpus of asio_futures_fuzz_api into test/fuzz/corpus/.

Each seed is a small program for the interpreter of test/fuzz/fuzz_api.cpp: an opcode byte
followed by the argument bytes that opcode reads. OPS must list the opcodes in the order of
fuzz_api.cpp's `opcode` enum. Run it again after changing that enum:

    python3 test/fuzz/make_corpus.py
"""
import os

OPS = [
    "make", "set_result", "try_set_result", "set_exception", "try_set_exception", "cancel",
    "await_coro", "await_handler", "emit", "callback", "remove_callback", "gather", "wait",
    "wait_for", "first_completed", "shield", "then", "task", "task_cancel", "group_new",
    "group_task", "group_join", "group_destroy", "group_cancel_child", "drop", "step", "poll",
    "destroy_context", "new_context", "sleep", "offload", "misuse",
]
OP = {name: i for i, name in enumerate(OPS)}

# Argument bytes, per opcode (see fuzz_api.cpp):
#   make ctx | set_result/try_set_result/set_exception/try_set_exception/cancel entry msg
#   await_coro/await_handler sel flags (1 signal, 2 total filter, 4 combinator target,
#     0x10 second context) | emit waiter type (0 terminal, 1 partial, 2 total, 3 all; +4 posted)
#   callback entry flags (1 bound, 2 second context) | remove_callback waiter
#   gather flags(n-1 in the low 2 bits, 0x10 return_exceptions) inputs...
#   wait flags(n-1, when in bits 2-3, 0x20 timed, deadline in bits 6-7) inputs...
#   wait_for flags(deadline in bits 2-3: -1 ms, 0, 1 h) entry | first_completed flags(n-1) inputs
#   shield/then flags entry | task flags(1 second context, inputs in bits 1-2) inputs...
#   task_cancel entry msg | group_new ctx | group_task group entry
#   group_join group flags(1 second context, 2 signal) | group_destroy group
#   group_cancel_child group child msg | drop entry | step b(1 second context, count in bits 2-5)
#   poll | destroy_context | new_context | sleep ctx | offload b | misuse entry b
TERMINAL, PARTIAL, TOTAL, ALL, POSTED = 0, 1, 2, 3, 4


def prog(*steps):
    out = bytearray()
    for step in steps:
        name, *args = step if isinstance(step, tuple) else (step,)
        out.append(OP[name])
        out.extend(args)
    return bytes(out)


SEEDS = {
    "01_await_value": prog(("make", 0), ("await_coro", 0, 0), ("set_result", 0, 0), "poll"),
    "02_handler_exception": prog(
        ("make", 1), ("await_handler", 0, 0x10), ("set_exception", 0, 0), "poll"),
    "03_terminal_signal": prog(
        ("make", 0), ("await_handler", 0, 1), ("emit", 0, TERMINAL), "poll",
        ("try_set_result", 0, 0), "poll"),
    "04_partial_then_terminal": prog(
        ("make", 0), ("await_handler", 0, 1), ("emit", 0, PARTIAL), ("emit", 0, TERMINAL),
        ("set_result", 0, 0), "poll"),
    "05_gather": prog(
        ("make", 0), ("make", 1), ("make", 0), ("gather", 2, 0, 1, 2),
        ("await_coro", 0, 4), ("set_result", 0, 0), ("set_result", 1, 0), ("step", 0x3c),
        ("set_exception", 2, 0), "poll"),
    "06_waiting": prog(
        ("make", 0), ("make", 0), ("wait", 0x02 | (0 << 2), 0, 1), ("wait_for", 8, 0),
        ("first_completed", 1, 0, 1), ("shield", 0, 1), ("await_handler", 0, 0x05),
        ("await_coro", 4, 0x01), ("cancel", 1, 7), ("emit", 1, TERMINAL), "poll",
        ("set_result", 0, 0), "poll"),
    "07_tasks": prog(
        ("make", 0), ("make", 1), ("task", 0x04, 0, 1), ("task", 0x03, 2), ("step", 0x04),
        ("task_cancel", 2, 3), ("set_result", 0, 0), ("step", 0x3d), ("set_result", 1, 0),
        "poll"),
    "08_task_group": prog(
        ("group_new", 0), ("make", 0), ("make", 1), ("group_task", 0, 0), ("group_task", 0, 1),
        ("group_join", 0, 2), ("step", 0x08), ("group_cancel_child", 0, 0, 5),
        ("set_exception", 1, 0), ("emit", 0, TOTAL), "poll", ("group_destroy", 0), "poll"),
    "09_destroy_context": prog(
        ("make", 1), ("await_coro", 0, 0x10), ("await_handler", 0, 0x11), ("callback", 0, 0),
        ("task", 0x03, 0), ("step", 0x05), "destroy_context", ("set_result", 0, 0),
        ("gather", 0, 0), "new_context", ("make", 1), ("await_handler", 1, 0x10), "poll",
        ("set_result", 1, 0), "poll"),
    "10_callbacks": prog(
        ("make", 0), ("callback", 0, 0), ("callback", 0, 1), ("callback", 0, 3),
        ("remove_callback", 1), ("cancel", 0, 9), ("remove_callback", 2), "poll"),
    "11_then_drop": prog(
        ("make", 0), ("then", 0, 0), ("await_coro", 1, 0), ("make", 1), ("then", 0, 2),
        ("drop", 2), ("callback", 0, 0), ("drop", 0), "poll", ("await_handler", 0, 0), "poll"),
    "12_sleep_offload_misuse": prog(
        ("sleep", 0), ("offload", 1), ("offload", 2), ("make", 0), ("wait_for", 4, 3),
        ("misuse", 0, 1), ("misuse", 4, 0), ("task", 0x02, 3), ("misuse", 5, 1), "poll",
        ("set_result", 3, 0), "poll"),
    "13_everything_destroyed": prog(
        ("make", 1), ("make", 1), ("first_completed", 1, 0, 1), ("wait", 0x22 | 0x80, 0, 1),
        ("group_new", 1), ("group_task", 0, 0), ("group_join", 0, 3), ("shield", 0, 1),
        ("await_coro", 2, 0x13), ("await_coro", 0, 0x15), ("step", 0x11), "destroy_context",
        ("cancel", 0, 1), "poll"),
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "corpus")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(SEEDS)} seeds to {out}")


if __name__ == "__main__":
    main()
