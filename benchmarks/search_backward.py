"""Part 3 of ``bench_search``: the cost of differentiating through the search.

``lpn_loss_backward``: XLA's static peak-memory estimate of ``jax.grad`` of ``lpn_loss`` on
the toy LPN of ``search_models``, for K = 1, 10, 100 search steps and every
``gradient_flow``, the same for a single task, how it grows per extra step and per extra
task, and the time of one backward pass.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp

import latentsearch as ls
from benchmarks import common
from benchmarks.search_models import CELLS, COLOURS, SEARCHER, encode, init_lpn, log_likelihood

LPN_TASKS, LPN_PAIRS = 8, 4
LPN_STEPS = (1, 10, 100)
BACKWARD_REPEATS = 3
MAX_SECONDS_PER_BACKWARD = 10.0  # above this (one call), 3 timed repeats would pass ~30 s

FLOWS = {
    "stop_gradient": ls.StopGradient(),
    "unrolled": ls.Unrolled(checkpoint=True),
    "implicit": ls.Implicit(),
}
"""The gradient flows compared, by the names of the result rows."""


def make_lpn_grad(gradient_flow, num_steps):
    """``grad(params, pairs, keys)`` of the mean ``lpn_loss`` over a batch of tasks."""

    def batch_loss(params, pairs, keys):
        def one(task_pairs, key):
            loss, _ = ls.lpn_loss(
                params,
                encode,
                log_likelihood,
                task_pairs,
                key,
                searcher=SEARCHER,
                num_steps=num_steps,
                gradient_flow=gradient_flow,
            )
            return loss

        return jnp.mean(jax.vmap(one)(pairs, keys))

    return jax.grad(batch_loss)


def _lpn_batch(key):
    k_in, k_shift = jax.random.split(key)
    inputs = jax.random.randint(k_in, (LPN_TASKS, LPN_PAIRS, CELLS), 0, COLOURS)
    shift = jax.random.randint(k_shift, (LPN_TASKS, 1, 1), 1, COLOURS)
    return {"input": inputs, "output": (inputs + shift) % COLOURS}


def bench_lpn_backward(key, time_k100):
    """``(rows, details, notes, ratios)``: every flow's backward memory at every K (timed
    where affordable), at K=10 for one task, and its growth with K and with the tasks."""
    rows, details, notes = [], {}, []
    k_params, k_data, k_loss = jax.random.split(key, 3)
    args = (init_lpn(k_params), _lpn_batch(k_data), jax.random.split(k_loss, LPN_TASKS))
    timed_steps = LPN_STEPS if time_k100 else LPN_STEPS[:-1]
    if not time_k100:
        notes.append("--quick: backward passes timed at K=1 and K=10 only")
    memory = {}
    for flow in FLOWS:
        for k in LPN_STEPS:
            variant = f"{flow}/K={k}"
            compiled, compile_s = common.compile_timed(make_lpn_grad(FLOWS[flow], k), *args)
            mem = common.compiled_memory(compiled)
            memory[flow, k] = mem["total_bytes"]
            details[variant] = {"compile_s": round(compile_s, 3), "memory_analysis": mem}
            rows.append(
                common.record(
                    "lpn_loss_backward", variant, "peak_memory", mem["total_bytes"], "bytes"
                )
            )
            if k in timed_steps:
                rows += _time_backward(compiled, args, variant, details[variant], notes)
    rows += _one_task_memory(args, memory, details)
    slope_rows, ratios = _memory_growth(memory)
    return rows + slope_rows, details, notes, ratios


def _time_backward(compiled, args, variant: str, details: dict, notes: list) -> list[dict]:
    """The ``backward_time`` row of one compiled backward pass (none, and a note, when one
    call takes longer than :data:`MAX_SECONDS_PER_BACKWARD`); fills ``details``."""
    start = time.perf_counter()
    grads = jax.block_until_ready(compiled(*args))
    first_s = time.perf_counter() - start
    details["first_call_s"] = round(first_s, 3)
    details["grads_finite"] = bool(
        all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))
    )
    if first_s > MAX_SECONDS_PER_BACKWARD:
        notes.append(
            f"{variant}: backward not timed, one call took {first_s:.1f} s "
            f"(> {MAX_SECONDS_PER_BACKWARD:.0f} s)"
        )
        return []
    t = common.time_fn(functools.partial(compiled, *args), BACKWARD_REPEATS, 0)
    return [common.timing_record("lpn_loss_backward", variant, "backward_time", t)]


def _one_task_memory(args, memory: dict, details: dict) -> list[dict]:
    """How memory scales with the batch: the same K=10 backward for a single task (into
    ``memory[flow, 10, 1]``)."""
    params, pairs, keys = args
    mid = LPN_STEPS[1]
    one_task = jax.tree_util.tree_map(lambda x: x[:1], (pairs, keys))
    rows = []
    for flow in FLOWS:
        compiled, _ = common.compile_timed(make_lpn_grad(FLOWS[flow], mid), params, *one_task)
        mem = common.compiled_memory(compiled)
        memory[flow, mid, 1] = mem["total_bytes"]
        details[f"{flow}/K={mid}/tasks=1"] = {"memory_analysis": mem}
        rows.append(
            common.record(
                "lpn_loss_backward",
                f"{flow}/K={mid}/tasks=1",
                "peak_memory",
                mem["total_bytes"],
                "bytes",
            )
        )
    return rows


def _memory_growth(memory: dict) -> tuple[list[dict], dict[str, float]]:
    """Rows of each flow's peak memory K=100 / K=1, per extra step and per extra task; and
    the ratios by flow."""
    rows, ratios = [], {}
    lo, mid, hi = LPN_STEPS
    for flow in FLOWS:
        ratios[flow] = memory[flow, hi] / memory[flow, lo]
        rows.append(
            common.record(
                "lpn_loss_backward", flow, f"peak_memory_ratio_K{hi}_K{lo}", ratios[flow], "x"
            )
        )
        # Slope from K=10 (not K=1: XLA compiles a length-1 scan without a loop, which
        # shifts the K=1 buffer assignment by a constant).
        rows.append(
            common.record(
                "lpn_loss_backward",
                flow,
                "peak_memory_per_extra_step",
                (memory[flow, hi] - memory[flow, mid]) / (hi - mid),
                "bytes/step",
            )
        )
        rows.append(
            common.record(
                "lpn_loss_backward",
                flow,
                "peak_memory_per_extra_task",
                (memory[flow, mid] - memory[flow, mid, 1]) / (LPN_TASKS - 1),
                "bytes/task",
            )
        )
    return rows, ratios
