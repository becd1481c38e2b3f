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
   plus the time of one backward pass (``search_backward``; the toy models of 1 and 3 are
   ``search_models``').

Run ``python -m benchmarks.bench_search [--quick] [--seed N]``; writes
``benchmarks/results/search.json`` (schema: ``benchmarks/common.py``).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time

import jax
import jax.numpy as jnp
import optax

import latentsearch as ls
from benchmarks import common
from benchmarks.search_backward import (
    BACKWARD_REPEATS,
    LPN_PAIRS,
    LPN_STEPS,
    LPN_TASKS,
    bench_lpn_backward,
)
from benchmarks.search_models import (
    CELLS,
    COLOURS,
    HIDDEN,
    LATENT,
    OPTIMIZER,
    SEARCHER,
    init_decoder,
    objective,
)

NAME = "search"
METHOD_BATCHES = (1, 32, 128)
SEARCH_STEPS = 100
BATCHES = (1, 32)


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
                common.rate_record(
                    "search_throughput", f"{label}/{variant}", "steps_per_s", t, SEARCH_STEPS,
                    "steps/s",
                )
            )  # fmt: skip
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


# --- 2. searchers on the pattern decoder ------------------------------------------------


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
            compiled, compile_s = common.compile_timed(run, params, pairs, z0, keys)
            evaluations = int(jnp.sum(compiled(params, pairs, z0, keys)[2]))
            t = common.time_fn(lambda c=compiled, p=pairs, z=z0, k=keys: c(params, p, z, k),
                               repeats=repeats, warmup=0)  # fmt: skip
            variant = f"{method}/batch{batch}"
            rows.append(
                common.rate_record(
                    "search_methods", variant, "evaluations_per_s", t, evaluations, "evals/s"
                )
            )
            rows.append(common.record("search_methods", variant, "compile_seconds", compile_s, "s"))
            print(
                f"search_methods {variant}: {evaluations / t.median:.0f} evals/s "
                f"({evaluations // batch} per task), compile {compile_s:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    return rows


DEFINITIONS = {
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
    "peak_memory_per_extra_task": "(peak_memory[K=10, 8 tasks] - peak_memory[K=10, 1 task]) / 7",
    "backward_time": "one call of the compiled jax.grad of the batch-mean lpn_loss "
    "(8 tasks x 4 pairs), median of 3",
}
"""What each metric and variant of ``search.json`` means (its ``definitions``)."""


def _summary(rows: list[dict], ratios: dict[str, float]) -> str:
    speedups = {r["variant"]: r["value"] for r in rows if r["metric"] == "speedup_scan_vs_python"}
    return (
        "scan vs python loop: "
        + ", ".join(f"{v:.1f}x ({b.replace('batch', 'batch ')})" for b, v in speedups.items())
        + f"; lpn_loss backward peak memory K={LPN_STEPS[-1]}/K={LPN_STEPS[0]}: "
        + ", ".join(f"{flow} {r:.2f}x" for flow, r in ratios.items())
    )


def _config(repeats: int) -> dict:
    return {
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
    }


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

    summary = _summary(rows, ratios)
    extra = {
        "quick": args.quick,
        "summary": summary,
        "config": _config(repeats),
        "definitions": DEFINITIONS,
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
