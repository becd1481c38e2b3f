"""Benchmark: the lpn-arc PATTERN model — training step, test-time search, generation.

On the paper's pattern configuration (Table 13: 2+2 layers, 6 heads x 16, MLP 1, latent 32,
10x10 grids; 243,360 parameters), with freshly initialised parameters (speed does not
depend on training):

1. ``train_step``: one optimiser step on a batch of 32 tasks x 4 pairs for the training
   searches ``mean``, ``grad:1`` (stop-gradient), ``grad:5``, ``grad:1:unrolled``,
   ``grad:1:implicit`` and ``sample:5``, timed one after the other; plus XLA's static memory
   estimate of each compiled step and its ratios to the stop-gradient ``grad:1`` step.
   ``train_memory_vs_k``: the same estimate for ``grad:K:unrolled`` (each search step
   rematerialised) and ``grad:K:implicit`` at K = 1, 5, 20, 100 (compiled, not run), and
   the ratio K=100 / K=1.
2. ``search``: test-time ``grad:100`` (Adam lr 0.1, b2 0.9) on the 3 specification pairs of
   32 tasks in one batch (``latentsearch.search`` under ``vmap``), seconds per task.
3. ``evaluate``: the whole per-task evaluation (encode, search, greedy decoding of both
   attempts) for ``mean`` and ``grad:100``, batches of 32, seconds per task.
4. ``generate``: cached greedy generation of one 10x10 output per task, batch of 32,
   seconds per task.

The script re-executes itself with tcmalloc (or jemalloc) preloaded where one is installed,
as ``lpn-arc`` does (``LPN_ARC_ALLOCATOR=glibc`` keeps glibc malloc); the allocator is
recorded in the results. Run ``python -m benchmarks.bench_lpn [--quick]``; writes
``benchmarks/results/lpn.json`` (schema: ``benchmarks/common.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from benchmarks import common

NAME = "lpn"
BATCH = 32
# The implicit step last: it takes 18.6 GB, which tcmalloc keeps after the step, and a
# variant timed after it ran this 24 GB machine out of memory.
TRAIN_SEARCHES = ("mean", "grad:1", "grad:5", "grad:1:unrolled", "sample:5", "grad:1:implicit")
QUICK_TRAIN_SEARCHES = ("mean", "grad:1", "grad:1:unrolled")  # the ones with targets
MEMORY_KS = (1, 5, 20, 100)
MEMORY_FLOWS = ("unrolled", "implicit")
SEARCH = "grad:100"


def _config():
    from lpn_arc.config import get_preset

    return dataclasses.replace(get_preset("pattern"), batch_size=BATCH)


def bench_train_step(config, repeats: int, searches=TRAIN_SEARCHES, warmup: int = 1) -> list[dict]:
    import jax
    from lpn_arc.config import parse_search
    from lpn_arc.data import training_batch
    from lpn_arc.training import init_training, make_train_step

    graphdef, params, optimizer, opt_state = init_training(config)
    batch = training_batch(config, 0)
    key = jax.random.key(0)
    fns, memory = {}, {}
    for search in searches:
        step = make_train_step(graphdef, config, optimizer, search=parse_search(search))
        compiled = step.lower(params, opt_state, batch, key).compile()
        memory[search] = common.compiled_memory(compiled)["total_bytes"]
        fns[search] = lambda c=compiled: c(params, opt_state, batch, key)
    # One variant after the other: interleaved with the unrolled step (gigabytes allocated
    # and freed per call), the cheap steps pay its page faults and their times double.
    timings = {}
    for search, fn in fns.items():
        print(f"train_step {search}: timing", file=sys.stderr, flush=True)
        timings[search] = common.time_fn(fn, repeats=repeats, warmup=warmup)
    rows = []
    for search, t in timings.items():
        rows.append(common.timing_record("train_step", search, "seconds", t))
        rows.append(common.record("train_step", search, "peak_memory", memory[search], "bytes"))
    for search in (s for s in searches if s != "grad:1"):
        rows.append(
            common.record(
                "train_step",
                f"{search}/grad:1",
                "time_ratio",
                timings[search].median / timings["grad:1"].median,
                "x",
            )
        )
        rows.append(
            common.record(
                "train_step",
                f"{search}/grad:1",
                "peak_memory_ratio",
                memory[search] / memory["grad:1"],
                "x",
            )
        )
    return rows


def bench_memory_vs_k(config) -> list[dict]:
    """XLA's memory estimate of the training step against the number of search steps."""
    import jax
    from lpn_arc.config import parse_search
    from lpn_arc.data import training_batch
    from lpn_arc.training import init_training, make_train_step

    graphdef, params, optimizer, opt_state = init_training(config)
    batch = training_batch(config, 0)
    key = jax.random.key(0)
    rows, memory = [], {}
    for flow in MEMORY_FLOWS:
        for k in MEMORY_KS:
            spec = parse_search(f"grad:{k}:{flow}")
            step = make_train_step(graphdef, config, optimizer, search=spec)
            compiled = step.lower(params, opt_state, batch, key).compile()
            memory[flow, k] = common.compiled_memory(compiled)["total_bytes"]
            rows.append(
                common.record(
                    "train_memory_vs_k", f"{flow}/K{k}", "peak_memory", memory[flow, k], "bytes"
                )
            )
            print(
                f"train_memory_vs_k {flow} K={k}: {memory[flow, k] / 1e9:.2f} GB",
                file=sys.stderr,
                flush=True,
            )
        first, last = MEMORY_KS[0], MEMORY_KS[-1]
        rows.append(
            common.record(
                "train_memory_vs_k",
                f"{flow}/K{last}/K{first}",
                "peak_memory_ratio",
                memory[flow, last] / memory[flow, first],
                "x",
            )
        )
    return rows


def bench_search_and_generation(config, repeats: int, batch: int = BATCH) -> list[dict]:
    import jax
    import jax.numpy as jnp
    from lpn_arc.config import parse_search
    from lpn_arc.data import pattern_test_tasks
    from lpn_arc.evaluation import evaluate_tasks
    from lpn_arc.model import encode_fn, generate_fn, log_likelihood_fn
    from lpn_arc.search import build_search
    from lpn_arc.training import init_params

    import latentsearch as ls

    graphdef, params = init_params(config)
    tasks = jax.tree.map(jnp.asarray, pattern_test_tasks(config, batch))
    spec_pairs = jax.tree.map(lambda x: x[:, :-1], tasks)
    query = jax.tree.map(lambda x: x[:, -1], tasks)
    encode, log_likelihood = encode_fn(graphdef), log_likelihood_fn(graphdef)
    generate = generate_fn(graphdef)
    spec = parse_search(SEARCH, lr=0.1)

    @jax.jit
    def search_batch(params, pairs, keys):
        def one(pairs, key):
            result = ls.infer(
                params,
                log_likelihood,
                pairs,
                key,
                encode=encode,
                searcher=build_search(spec).searcher,
                num_steps=spec.num_steps,
                keep=2,
            )
            return result.latents

        return jax.vmap(one)(pairs, keys)

    @jax.jit
    def generate_batch(params, z, inputs, input_shapes):
        return jax.vmap(lambda z, x, s: generate(params, z, x, s))(z, inputs, input_shapes)

    keys = jax.random.split(jax.random.key(0), batch)
    latents = search_batch(params, spec_pairs, keys)[:, 0]
    fns = {
        "search": lambda: search_batch(params, spec_pairs, keys),
        "generate": lambda: generate_batch(params, latents, query.inputs, query.input_shapes),
    }
    for text in ("mean", SEARCH):
        evaluation_spec = parse_search(text, lr=0.1)
        fns[f"evaluate/{text}"] = lambda s=evaluation_spec: (
            evaluate_tasks(
                graphdef, params, tasks, s, jax.random.key(0), batch_size=batch
            ).attempt_1
        )
    print("search, evaluate, generate: timing", file=sys.stderr, flush=True)
    timings = common.time_interleaved(fns, repeats=repeats, warmup=1)
    rows = []
    for label, t in timings.items():
        name, _, variant = label.partition("/")
        variant = variant or (SEARCH if name == "search" else "10x10")
        variant = f"{variant}/batch{batch}"
        rows.append(common.timing_record(name, variant, "seconds_per_task", t, per=batch))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="training steps mean, grad:1 and grad:1:unrolled only, 2 repeats instead of 5 "
        "and no warm-up call, no memory-vs-K compilations; search and evaluation on 4 tasks "
        "instead of 32",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="timed calls per variant in a full run (default 5; the implicit training step "
        "takes minutes per call on 2 cores)",
    )
    parser.add_argument("--seed", type=int, default=0, help="recorded; data seeds are fixed")
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=("train", "memory", "search"),
        default=("train", "memory", "search"),
        help="run only these parts (full run); the results go to lpn_<parts>.json",
    )
    args = parser.parse_args(argv)
    common.rerun_with_fast_allocator(__file__, argv)
    config = _config()
    if args.quick:
        # compiled ahead of time, so the first call is timed too (no warm-up call)
        rows = bench_train_step(config, 2, QUICK_TRAIN_SEARCHES, warmup=0)
        rows += bench_search_and_generation(config, 2, batch=4)
    else:
        if args.repeats < 1:
            parser.error(f"--repeats must be >= 1; got {args.repeats}")
        # compiled ahead of time: no warm-up call; the median absorbs a cold first call
        train = "train" in args.parts
        rows = bench_train_step(config, args.repeats, warmup=0) if train else []
        rows += bench_memory_vs_k(config) if "memory" in args.parts else []
        rows += bench_search_and_generation(config, args.repeats) if "search" in args.parts else []
    name = NAME
    if not args.quick and set(args.parts) != {"train", "memory", "search"}:
        name = "_".join([NAME, *sorted(args.parts)])
    path = common.write_results(name, rows, seed=args.seed)
    common.print_table(rows)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
