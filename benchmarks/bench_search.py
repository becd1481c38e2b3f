"""Benchmark: latent search throughput, and the cost of differentiating through the search.

1. ``search_throughput``: steps per second of ``latentsearch.search`` with
   ``gradient_ascent(optax.adam(0.1, b2=0.9))`` (``lax.scan`` inside one jitted call) versus
   a Python loop of calls to one jitted gradient-ascent step, on an MLP decoder objective,
   for a batch of 1 and of 32 tasks.
2. ``search_methods``: objective evaluations per second of every searcher (gradient ascent,
   random search, evolution strategy, hybrid) on the lpn-arc PATTERN decoder (the paper's
   Table 13 architecture at the quickstart's 6x6 grids, freshly initialised: speed does not
   depend on training; objective = log-likelihood of 3 specification pairs) for batches of
   1, 32 and 128 tasks (``vmap``; ``--quick``: 1 and 128, one timed call), about 8
   evaluations per task per call, and the compile time of each.
3. ``lpn_loss_backward``: XLA's static peak-memory estimate of ``jax.grad`` of
   ``lpn_loss`` on a toy LPN, for K = 1, 10, 100 search steps and every ``gradient_flow``,
   plus the time of one backward pass.

Run ``python benchmarks/bench_search.py [--quick] [--seed N]``; writes
``benchmarks/results/search.json`` (schema: ``benchmarks/common.py``).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time

import common  # benchmarks/common.py
import jax
import jax.numpy as jnp
import numpy as np
import optax

import latentsearch as ls

NAME = "search"
METHOD_BATCHES = (1, 32, 128)
LATENT, HIDDEN, CELLS, COLOURS = 32, 256, 100, 10
SEARCH_STEPS = 100
BATCHES = (1, 32)
LPN_TASKS, LPN_PAIRS = 8, 4
LPN_STEPS = (1, 10, 100)
BACKWARD_REPEATS = 3
MAX_SECONDS_PER_BACKWARD = 10.0  # above this (one call), 3 timed repeats would pass ~30 s

OPTIMIZER = optax.adam(0.1, b2=0.9)
SEARCHER = ls.gradient_ascent(OPTIMIZER)


# --- models -------------------------------------------------------------------------------


def _dense(key, n_in, n_out, bias=True):
    layer = {"w": jax.random.normal(key, (n_in, n_out)) / np.sqrt(n_in)}
    if bias:
        layer["b"] = jnp.zeros((n_out,))
    return layer


def init_decoder(key, conditioned=False):
    """MLP ``latent 32 -> 256 -> 256 -> 100 cells x 10 colours`` (optionally + input grid)."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    params = {
        "l1": _dense(k1, LATENT, HIDDEN),
        "l2": _dense(k2, HIDDEN, HIDDEN),
        "out": _dense(k3, HIDDEN, CELLS * COLOURS),
    }
    if conditioned:
        params["grid_in"] = _dense(k4, CELLS * COLOURS, HIDDEN, bias=False)
    return params


def decoder_logits(params, z, grid=None):
    """``(CELLS, COLOURS)`` logits for latent ``z`` (and, if conditioned, an input grid)."""
    h = z @ params["l1"]["w"] + params["l1"]["b"]
    if grid is not None:
        h = h + jax.nn.one_hot(grid, COLOURS).reshape(-1) @ params["grid_in"]["w"]
    h = jax.nn.gelu(h)
    h = jax.nn.gelu(h @ params["l2"]["w"] + params["l2"]["b"])
    return (h @ params["out"]["w"] + params["out"]["b"]).reshape(CELLS, COLOURS)


def grid_log_prob(logits, grid):
    """Mean over cells of ``log p(grid[cell])``."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.mean(jnp.take_along_axis(logp, grid[:, None], axis=-1))


def objective(z, params, target):
    """The search objective: mean cell log-probability of ``target`` under the decoder."""
    return grid_log_prob(decoder_logits(params, z), target)


def init_lpn(key):
    """Toy LPN: encoder MLP (input, output) -> DiagGaussian; decoder conditioned on input."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    encoder = {
        "l1": _dense(k1, 2 * CELLS * COLOURS, HIDDEN),
        "mean": _dense(k2, HIDDEN, LATENT),
        "log_var": _dense(k3, HIDDEN, LATENT),
    }
    return {"encoder": encoder, "decoder": init_decoder(k4, conditioned=True)}


def encode(params, pair):
    p = params["encoder"]
    x = jnp.concatenate(
        [
            jax.nn.one_hot(pair["input"], COLOURS).reshape(-1),
            jax.nn.one_hot(pair["output"], COLOURS).reshape(-1),
        ]
    )
    h = jax.nn.gelu(x @ p["l1"]["w"] + p["l1"]["b"])
    mean = h @ p["mean"]["w"] + p["mean"]["b"]
    log_var = h @ p["log_var"]["w"] + p["log_var"]["b"] - 2.0
    return ls.DiagGaussian(mean, log_var)


def log_likelihood(params, z, pair):
    return grid_log_prob(decoder_logits(params["decoder"], z, pair["input"]), pair["output"])


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


# --- 1. search throughput -----------------------------------------------------------------


def _search(z0, key, params, target):
    return ls.search(
        SEARCHER, objective, z0, key=key, num_steps=SEARCH_STEPS, args=(params, target)
    )


def _ga_step(z, opt_state, params, target):
    value, grad = jax.value_and_grad(objective)(z, params, target)
    updates, opt_state = OPTIMIZER.update(-grad, opt_state, z)
    return optax.apply_updates(z, updates), opt_state, value


def _python_loop(step, z, opt_state, params, target):
    value = None
    for _ in range(SEARCH_STEPS):
        z, opt_state, value = step(z, opt_state, params, target)
    return z, value


def bench_throughput(key, repeats):
    rows, sanity = [], {}
    k_params, k_data = jax.random.split(key)
    params = init_decoder(k_params)
    for batch in BATCHES:
        kz, kt, ks = jax.random.split(jax.random.fold_in(k_data, batch), 3)
        z0 = jax.random.normal(kz, (batch, LATENT))
        targets = jax.random.randint(kt, (batch, CELLS), 0, COLOURS)
        keys = jax.random.split(ks, batch)
        if batch == 1:
            z0, targets, keys = z0[0], targets[0], keys[0]
            scan_fn = jax.jit(_search)
            step = jax.jit(_ga_step)
            opt_state = OPTIMIZER.init(z0)
        else:
            scan_fn = jax.jit(jax.vmap(_search, in_axes=(0, 0, None, 0)))
            step = jax.jit(jax.vmap(_ga_step, in_axes=(0, 0, None, 0)))
            opt_state = jax.vmap(OPTIMIZER.init)(z0)

        scan_args = (z0, keys, params, targets)
        loop_args = (step, z0, opt_state, params, targets)
        timings = common.time_interleaved(
            {
                "scan": functools.partial(scan_fn, *scan_args),
                "python_loop": functools.partial(_python_loop, *loop_args),
            },
            repeats,
            warmup=2,
        )
        scan_t, loop_t = timings["scan"], timings["python_loop"]
        variant = f"batch{batch}"
        for label, t in (("scan", scan_t), ("python_loop", loop_t)):
            rows.append(
                common.record(
                    "search_throughput",
                    f"{label}/{variant}",
                    "steps_per_s",
                    SEARCH_STEPS / t.median,
                    "steps/s",
                    repeats=t.repeats,
                    min=SEARCH_STEPS / t.max,
                    median=SEARCH_STEPS / t.median,
                    max=SEARCH_STEPS / t.min,
                )
            )
        rows.append(
            common.record(
                "search_throughput",
                variant,
                "speedup_scan_vs_python",
                loop_t.median / scan_t.median,
                "x",
            )
        )
        # Both run the same optimiser from the same starts: their final scores should agree.
        result = scan_fn(*scan_args)
        _, loop_values = _python_loop(*loop_args)
        sanity[variant] = {
            "scan_best_score_mean": float(jnp.mean(result.scores[..., 0])),
            "python_loop_last_step_score_mean": float(jnp.mean(loop_values)),
        }
    return rows, sanity


# --- 2. lpn_loss backward memory and time -------------------------------------------------


def _method_searchers():
    """``{name: (searcher, num_steps)}``, each spending about 8 evaluations per task."""
    adam = optax.adam(0.1, b2=0.9)
    return {
        "gradient": (ls.gradient_ascent(adam), 7),  # 7 steps + the final iterate
        "random": (ls.random_search(7, 0.5), 1),  # the start + 7 samples
        "es": (ls.evolution_strategy(6, 0.1, adam), 1),  # start, 6, the final mean
        "hybrid": (ls.hybrid(ls.random_search(4, 0.5), ls.gradient_ascent(adam), 2), 1),
    }


def bench_methods(seed: int, repeats: int, batches=METHOD_BATCHES) -> list[dict]:
    """Evaluations per second and compile seconds of each searcher on the pattern decoder."""
    from lpn_arc.config import get_preset
    from lpn_arc.data import pattern_test_tasks
    from lpn_arc.model import log_likelihood_fn
    from lpn_arc.training import init_params

    config = get_preset("quickstart")
    graphdef, params = init_params(config)
    log_likelihood = log_likelihood_fn(graphdef)
    tasks = pattern_test_tasks(config, max(batches))
    spec = jax.tree.map(lambda x: jnp.asarray(x[:, :-1]), tasks)

    def pattern_objective(z, params, pairs):
        return jnp.sum(jax.vmap(lambda pair: log_likelihood(params, z, pair))(pairs))

    rows = []
    for method, (searcher, num_steps) in _method_searchers().items():
        for batch in batches:

            def run(params, pairs, z0, keys, searcher=searcher, num_steps=num_steps):
                def one(pairs, z, key):
                    r = ls.search(
                        searcher, pattern_objective, z, key=key, num_steps=num_steps,
                        args=(params, pairs), keep=1,
                    )  # fmt: skip
                    return r.latents, r.scores, r.num_evaluations

                return jax.vmap(one)(pairs, z0, keys)

            pairs = jax.tree.map(lambda x, b=batch: x[:b], spec)
            z0 = jax.random.normal(jax.random.key(seed), (batch, config.model.latent_dim))
            keys = jax.random.split(jax.random.key(seed), batch)
            start = time.perf_counter()
            compiled = jax.jit(run).lower(params, pairs, z0, keys).compile()
            compile_s = time.perf_counter() - start
            evaluations = int(jnp.sum(compiled(params, pairs, z0, keys)[2]))
            t = common.time_fn(lambda c=compiled, p=pairs, z=z0, k=keys: c(params, p, z, k),
                               repeats=repeats, warmup=0)  # fmt: skip
            variant = f"{method}/batch{batch}"
            rows.append(
                common.record(
                    "search_methods", variant, "evaluations_per_s", evaluations / t.median,
                    "evals/s", t.repeats, evaluations / t.max, evaluations / t.median,
                    evaluations / t.min,
                )
            )  # fmt: skip
            rows.append(common.record("search_methods", variant, "compile_seconds", compile_s, "s"))
            print(
                f"search_methods {variant}: {evaluations / t.median:.0f} evals/s "
                f"({evaluations // batch} per task), compile {compile_s:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    return rows


def _lpn_batch(key):
    k_in, k_shift = jax.random.split(key)
    inputs = jax.random.randint(k_in, (LPN_TASKS, LPN_PAIRS, CELLS), 0, COLOURS)
    shift = jax.random.randint(k_shift, (LPN_TASKS, 1, 1), 1, COLOURS)
    return {"input": inputs, "output": (inputs + shift) % COLOURS}


def bench_lpn_backward(key, time_k100):
    rows, details, notes = [], {}, []
    k_params, k_data, k_loss = jax.random.split(key, 3)
    params = init_lpn(k_params)
    pairs = _lpn_batch(k_data)
    keys = jax.random.split(k_loss, LPN_TASKS)
    timed_steps = LPN_STEPS if time_k100 else LPN_STEPS[:-1]
    if not time_k100:
        notes.append("--quick: backward passes timed at K=1 and K=10 only")
    memory = {}
    for flow in FLOWS:
        for k in LPN_STEPS:
            variant = f"{flow}/K={k}"
            start = time.perf_counter()
            compiled = jax.jit(make_lpn_grad(FLOWS[flow], k)).lower(params, pairs, keys).compile()
            compile_s = time.perf_counter() - start
            mem = common.compiled_memory(compiled)
            memory[flow, k] = mem["total_bytes"]
            details[variant] = {"compile_s": round(compile_s, 3), "memory_analysis": mem}
            rows.append(
                common.record(
                    "lpn_loss_backward", variant, "peak_memory", mem["total_bytes"], "bytes"
                )
            )
            if k not in timed_steps:
                continue
            start = time.perf_counter()
            grads = jax.block_until_ready(compiled(params, pairs, keys))
            first_s = time.perf_counter() - start
            details[variant]["first_call_s"] = round(first_s, 3)
            details[variant]["grads_finite"] = bool(
                all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))
            )
            if first_s > MAX_SECONDS_PER_BACKWARD:
                notes.append(
                    f"{variant}: backward not timed, one call took {first_s:.1f} s "
                    f"(> {MAX_SECONDS_PER_BACKWARD:.0f} s)"
                )
                continue
            t = common.time_fn(
                functools.partial(compiled, params, pairs, keys), BACKWARD_REPEATS, 0
            )
            rows.append(
                common.record(
                    "lpn_loss_backward",
                    variant,
                    "backward_time",
                    t.median,
                    "s",
                    repeats=t.repeats,
                    min=t.min,
                    median=t.median,
                    max=t.max,
                )
            )
    # How memory scales with the batch: the same K=10 backward for a single task.
    mid = LPN_STEPS[1]
    one_task = jax.tree_util.tree_map(lambda x: x[:1], (pairs, keys))
    for flow in FLOWS:
        compiled = jax.jit(make_lpn_grad(FLOWS[flow], mid)).lower(params, *one_task).compile()
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

    ratios = {}
    lo, hi = LPN_STEPS[0], LPN_STEPS[-1]
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
    return rows, details, notes, ratios


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 timing repeats instead of 5; do not time the K=100 backward passes; "
        "searchers at batch 1 and 128 only",
    )
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed of all data and params")
    parser.add_argument(
        "--results-dir",
        default=str(common.RESULTS_DIR),
        help="where to write search.json",
    )
    args = parser.parse_args(argv)
    common.rerun_with_fast_allocator(__file__, argv)
    repeats = 3 if args.quick else 5
    key = jax.random.key(args.seed)
    k_throughput, k_lpn = jax.random.split(key)
    wall = time.perf_counter()

    rows, sanity = bench_throughput(k_throughput, repeats)
    if args.quick:  # batch 32 only in the full run: each batch size compiles anew
        rows += bench_methods(args.seed, 1, (1, 128))
    else:
        rows += bench_methods(args.seed, 5)
    lpn_rows, details, notes, ratios = bench_lpn_backward(k_lpn, time_k100=not args.quick)
    rows += lpn_rows

    speedups = {r["variant"]: r["value"] for r in rows if r["metric"] == "speedup_scan_vs_python"}
    summary = (
        "scan vs python loop: "
        + ", ".join(f"{v:.1f}x ({b.replace('batch', 'batch ')})" for b, v in speedups.items())
        + f"; lpn_loss backward peak memory K={LPN_STEPS[-1]}/K={LPN_STEPS[0]}: "
        + ", ".join(f"{flow} {r:.2f}x" for flow, r in ratios.items())
    )
    extra = {
        "quick": args.quick,
        "summary": summary,
        "config": {
            "latent": LATENT,
            "hidden": HIDDEN,
            "cells": CELLS,
            "colours": COLOURS,
            "optimizer": "optax.adam(0.1, b2=0.9)",
            "search_steps": SEARCH_STEPS,
            "batches": list(BATCHES),
            "timing_repeats": repeats,
            "lpn_tasks": LPN_TASKS,
            "lpn_pairs_per_task": LPN_PAIRS,
            "lpn_search_steps": list(LPN_STEPS),
            "backward_repeats": BACKWARD_REPEATS,
        },
        "definitions": {
            "steps_per_s": "search steps per second for the whole batch (median of repeats); "
            "one step updates every task's latent",
            "speedup_scan_vs_python": "scan steps/s / python_loop steps/s (medians)",
            "evaluations_per_s": "objective evaluations (a value-and-gradient counts as one) "
            "of the whole batch per second; min/max from the slowest/fastest call",
            "compile_seconds": "jit(...).lower(...).compile() of the batched search",
            "python_loop": "100 calls of one jitted step (value_and_grad + optax update), "
            "blocking only on the last; it does not track the best point as search does",
            "peak_memory": "jit(grad).lower(...).compile().memory_analysis(): "
            "argument_size_in_bytes + output_size_in_bytes + temp_size_in_bytes "
            "- alias_size_in_bytes (XLA's static buffer assignment; nothing is run)",
            "peak_memory_per_extra_step": "(peak_memory[K=100] - peak_memory[K=10]) / 90; "
            "K=10 rather than K=1 because XLA compiles a length-1 scan without a loop",
            "peak_memory_per_extra_task": "(peak_memory[K=10, 8 tasks] - "
            "peak_memory[K=10, 1 task]) / 7",
            "backward_time": "one call of the compiled jax.grad of the batch-mean lpn_loss "
            "(8 tasks x 4 pairs), median of 3",
        },
        "memory_fields_used": [
            "argument_size_in_bytes",
            "output_size_in_bytes",
            "temp_size_in_bytes",
            "alias_size_in_bytes",
        ],
        "memory_fields_not_used": {
            "peak_memory_in_bytes": "kept in lpn_backward_details; on the CPU backend it is "
            "about argument + output size and leaves out temp buffers, so it does not see "
            "what the search adds"
        },
        "lpn_backward_details": details,
        "throughput_sanity": sanity,
        "notes": notes,
        "wall_s": round(time.perf_counter() - wall, 1),
    }
    path = common.write_results(NAME, rows, args.seed, extra, results_dir=args.results_dir)
    common.print_table(rows)
    for note in notes:
        print("note:", note)
    print(summary)
    print(f"wrote {path} ({extra['wall_s']} s)")


if __name__ == "__main__":
    main()
