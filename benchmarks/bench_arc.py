"""Benchmark: lpn-arc at ARC scale — a training step and the evaluation throughput.

1. ``train_step``: one optimiser step of a preset (default ``arc-small`` here; ``arc-paper``
   on an accelerator) on a batch of real ARC-AGI-1 training tasks (4 pairs, augmented):
   seconds (median), XLA's static memory estimate of the compiled step, and on GPU/TPU the
   device's measured peak memory.
2. ``evaluate``: :func:`lpn_arc.evaluate.evaluate_arc` on the first ``--tasks`` tasks of
   ARC-AGI-1 evaluation (every test input, spec = all train pairs, both attempts) with the
   model of ``--eval-preset`` (default ``arc-repo``, 6.48M parameters), freshly initialised
   (speed does not depend on training, except that generation stops at the predicted
   shape). Seconds per task after compilation, and the time this gives for all 400 tasks.
   ``--search grad:100`` is measured directly when ``--direct``; otherwise (the CPU default,
   where one grad:100 task takes minutes) ``grad:K1`` and ``grad:K2`` are measured on the
   same tasks and the per-step cost extrapolates linearly to ``--search`` (recorded as
   ``extrapolated``). The full run also measures both probes one query at a time with
   size buckets on (each task padded to the smallest rows and columns of 10/20/30 that hold
   it, the default) and off (every grid at 30 x 30), extrapolated the same way: seconds per
   task, hours for 400 tasks and their ratio (``--decoder-masks official input-only`` for
   both masks).

The script re-executes itself with tcmalloc where installed (as ``lpn-arc`` does) and
records the allocator. ``python -m benchmarks.bench_arc [--quick]``; writes
``benchmarks/results/arc.json`` (``--name`` changes it; schema: ``benchmarks/common.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from benchmarks import common


def bench_train_step(preset: str, batch_size: int | None, repeats: int) -> list[dict]:
    import jax
    from lpn_arc.config import get_preset
    from lpn_arc.data import TrainingData
    from lpn_arc.model import count_params
    from lpn_arc.training import data_mesh, init_training, make_train_step, shard_batch

    config = get_preset(preset)
    if batch_size is not None:
        config = dataclasses.replace(config, batch_size=batch_size, grad_accum=1)
    mesh = data_mesh()
    graphdef, params, optimizer, opt_state = init_training(config)
    step = make_train_step(graphdef, config, optimizer, search=config.search_at(0), mesh=mesh)
    batch = shard_batch(mesh, TrainingData(config).batch(0))
    key = jax.random.key(0)
    compiled, compile_seconds = common.compile_timed(step, params, opt_state, batch, key)
    memory = common.compiled_memory(compiled)["total_bytes"]
    print(f"train_step {preset}: timing", file=sys.stderr, flush=True)
    timing = common.time_fn(lambda: compiled(params, opt_state, batch, key), repeats=repeats)
    variant = f"{preset}/batch{config.batch_size}/{config.train_search}/{jax.device_count()}dev"
    rows = [
        common.record("train_step", variant, "parameters", count_params(params), "count"),
        common.timing_record("train_step", variant, "seconds", timing),
        common.record("train_step", variant, "compile_seconds", compile_seconds, "s"),
        common.record("train_step", variant, "static_memory", memory, "bytes"),
    ]
    stats = jax.local_devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:  # GPU/TPU: measured
        rows.append(
            common.record(
                "train_step", variant, "device_peak_memory", stats["peak_bytes_in_use"], "bytes"
            )
        )
    return rows


def _evaluate_seconds(
    graphdef, params, tasks, text: str, batch_size: int, **buckets
) -> tuple[float, float]:
    """(first call incl. compilation, second call) seconds of evaluate_arc on ``tasks``."""
    import jax
    from lpn_arc.config import parse_search
    from lpn_arc.evaluation import evaluate_arc

    spec = parse_search(text, lr=0.1)
    times = []
    for _ in range(2):
        started = time.perf_counter()
        evaluate_arc(
            graphdef, params, tasks, spec, jax.random.key(0), batch_size=batch_size, **buckets
        )
        times.append(time.perf_counter() - started)
    return times[0], times[1]


def _bucket_rows(graphdef, params, tasks, preset: str, probes, target_steps: int) -> list:
    """Size buckets on and off, side by side on the same tasks, one query per call (full
    30 x 30 padding of a larger batch does not fit this machine's memory): seconds per task
    at the two probes, extrapolated to ``target_steps``, and hours for 400 tasks."""
    k1, k2 = probes
    per_task, rows = {}, []
    for label, on in (("buckets_on", True), ("buckets_off", False)):
        at = {}
        for k in probes:
            print(f"evaluate grad:{k} {label}", file=sys.stderr, flush=True)
            _, second = _evaluate_seconds(graphdef, params, tasks, f"grad:{k}", 1, buckets=on)
            at[k] = second / len(tasks)
        per_task[label] = at[k1] + (target_steps - k1) * (at[k2] - at[k1]) / (k2 - k1)
        variant = f"{preset}/grad:{target_steps}/{len(tasks)}tasks/batch1/{label}"
        rows += [common.record("evaluate", variant, "seconds_per_task", per_task[label], "s"),
                 common.record("evaluate", variant, "hours_for_400_tasks",
                               per_task[label] * 400 / 3600, "h"),
                 common.record("evaluate", variant, "extrapolated", 1, "bool")]  # fmt: skip
    ratio = per_task["buckets_off"] / per_task["buckets_on"]
    variant = f"{preset}/grad:{target_steps}/buckets_off/buckets_on"
    return [*rows, common.record("evaluate", variant, "time_ratio", ratio, "x")]


def bench_evaluate(
    preset: str,
    num_tasks: int,
    search: str,
    probes: tuple[int, int],
    direct: bool,
    batch: int,
    compare_buckets: bool = False,
    decoder_mask: str | None = None,
) -> list[dict]:
    from lpn_arc.config import get_preset, parse_search
    from lpn_arc.data import load_tasks
    from lpn_arc.model import count_params
    from lpn_arc.training import init_params

    config = get_preset(preset)
    if decoder_mask is not None:
        model = dataclasses.replace(config.model, decoder_mask=decoder_mask)
        config = dataclasses.replace(config, model=model)
    graphdef, params = init_params(config)
    tasks = load_tasks("arc1-eval", limit=num_tasks)
    target_steps = parse_search(search).num_steps
    variant = f"{preset}/{search}/{num_tasks}tasks"
    if decoder_mask is not None:
        preset = f"{preset}/{decoder_mask}"
        variant = f"{preset}/{search}/{num_tasks}tasks"
    rows = [common.record("evaluate", variant, "parameters", count_params(params), "count")]
    if direct:
        print(f"evaluate {search} on {num_tasks} tasks", file=sys.stderr, flush=True)
        first, second = _evaluate_seconds(graphdef, params, tasks, search, batch)
        per_task = second / num_tasks
        rows.append(common.record("evaluate", variant, "compile_seconds", first - second, "s"))
    else:
        measured = {}
        for k in probes:
            print(f"evaluate grad:{k} on {num_tasks} tasks", file=sys.stderr, flush=True)
            first, second = _evaluate_seconds(graphdef, params, tasks, f"grad:{k}", batch)
            measured[k] = second / num_tasks
            rows.append(
                common.record(
                    "evaluate", f"{preset}/grad:{k}", "seconds_per_task", measured[k], "s"
                )
            )
        k1, k2 = probes
        if compare_buckets:
            rows += _bucket_rows(graphdef, params, tasks, preset, probes, target_steps)
        per_step = (measured[k2] - measured[k1]) / (k2 - k1)
        per_task = measured[k1] + (target_steps - k1) * per_step
        rows.append(common.record("evaluate", variant, "seconds_per_search_step", per_step, "s"))
        rows.append(common.record("evaluate", variant, "extrapolated", 1, "bool"))
    rows.append(common.record("evaluate", variant, "seconds_per_task", per_task, "s"))
    rows.append(
        common.record("evaluate", variant, "hours_for_400_tasks", per_task * 400 / 3600, "h")
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats, 2 evaluation tasks")
    parser.add_argument("--preset", default="arc-small", help="training-step preset")
    parser.add_argument("--batch-size", type=int, default=None, help="override the batch")
    parser.add_argument("--eval-preset", default="arc-repo", help="model of the evaluation")
    parser.add_argument("--tasks", type=int, default=None, help="evaluation tasks (default 4)")
    parser.add_argument("--search", default="grad:100", help="evaluation search")
    parser.add_argument("--probes", default="2,6", help="grad:K1,K2 measured to extrapolate")
    parser.add_argument("--direct", action="store_true", help="measure --search itself")
    parser.add_argument("--eval-batch", type=int, default=4, help="queries per compiled call")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-eval", action="store_true")
    parser.add_argument("--decoder-masks", nargs="+", choices=("official", "input-only"),
                        default=["official"],
                        help="evaluate the model with each decoder mask in turn")  # fmt: skip
    parser.add_argument("--no-compare-buckets", action="store_true",
                        help="skip the size-bucket comparison of the full run")  # fmt: skip
    parser.add_argument("--name", default="arc", help="results/<name>.json")
    parser.add_argument("--seed", type=int, default=0, help="recorded; data seeds are fixed")
    args = parser.parse_args(argv)
    common.rerun_with_fast_allocator(__file__, argv)
    repeats = 3 if args.quick else 5
    num_tasks = args.tasks or (2 if args.quick else 4)
    probes = tuple(int(k) for k in args.probes.split(","))
    if len(probes) != 2 or probes[0] >= probes[1]:
        parser.error("--probes takes two increasing step counts, e.g. 2,6")
    rows: list[dict] = []
    if not args.skip_train:
        rows += bench_train_step(args.preset, args.batch_size, repeats)
    for mask in [] if args.skip_eval else args.decoder_masks:
        rows += bench_evaluate(
            args.eval_preset,
            num_tasks,
            args.search,
            probes,
            args.direct,
            args.eval_batch,
            compare_buckets=not (args.quick or args.no_compare_buckets),
            decoder_mask=None if mask == "official" else mask,
        )
    path = common.write_results(args.name, rows, seed=args.seed)
    common.print_table(rows)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
