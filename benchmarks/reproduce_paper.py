"""Reproduce the paper's central result at CPU scale: training with search makes search work.

The LPN paper (Table 1) trains the PATTERN model with the encoder mean (``mean``, "Grad 0"
training), with one gradient step inside the loss (``grad:1``), with exact gradients through
that step (``grad:1:unrolled``, the paper's "Grad 1 ⋆⋆") and with the best of 5 samples
(``sample:5``), then evaluates each model with 0 to 100 test-time gradient steps and with 250
samples. Its OOD table (Table 6) trains at pattern density 0.5 and tests at 0.5, 0.75 and 1.0.

This script repeats both on a pattern variant a 2-core CPU trains in minutes: the quickstart
recipe (Table 13 architecture, 6x6 grids, 2x2 patterns, batch 16, AdamW 1e-3 with warm-up
and cosine decay, input-only decoder mask), every training method for the same number of
steps (the paper's protocol: each row of its tables is 20k steps), each seed a separate
run. Every model is evaluated on the same held-out tasks, every pair of a task predicted in
turn from the others (the paper's protocol), test-time Adam at lr 0.1 and samples at scale
0.5 as in the paper. Training draws only train programs and evaluation only test programs
(the program-disjoint split, ``lpn_arc.data.pattern.program_split``), and every row records
``seen_programs``, the fraction of its evaluated programs that training drew, computed by
generating the runs' training batches again.

Parts: ``table1`` writes ``results/table1.json`` and ``table1.png``; ``ood`` writes
``results/table6.json`` and ``table6.png``. Run folders go to ``results/runs/`` and are
reused when their saved configuration is the one asked for (another one is an error): a
finished run is not trained again, an interrupted one resumes, and each evaluation is cached
in the run folder (``reproduce_eval.json``) under every setting that changes its number
(search, lr, scale, start, optimiser, held-out protocol, tasks, density, test seed, split,
package versions), so adding a seed only costs that seed. ``make reproduce`` runs both
parts with the defaults (seeds 0 and 1 of each; about 2 hours here); by hand,
``python -m benchmarks.reproduce_paper [--parts table1 ood] ...`` from the repository root.
The runs are ``reproduce_runs``'s, the tables, the paper's numbers and the plots
``reproduce_report``'s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from benchmarks import common
from benchmarks.reproduce_report import (
    OOD_METHODS,
    OOD_SEARCHES,
    OOD_TEST_DENSITIES,
    OOD_TRAIN_DENSITY,
    PAPER_TABLE1,
    PAPER_TABLE6,
    TABLE1_METHODS,
    TABLE1_SEARCHES,
    plot_table1,
    plot_table6,
    table1_markdown,
    table6_markdown,
)
from benchmarks.reproduce_runs import Run, export_model, model_name, run_name, variant_config


def _summary(values: list[float]) -> tuple[float, float]:
    mean = statistics.mean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def _row(
    name: str, variant: str, values: list[float], seeds: list[int], tasks: int, seen: list[float]
) -> dict:
    """A result row: ``value`` the mean over seeds, plus ``std``, ``seeds``, ``per_seed``, the
    number of held-out tasks and ``seen_programs`` (the largest over the seeds' runs)."""
    mean, std = _summary(values)
    row = common.record(
        name,
        variant,
        "top1",
        mean,
        "fraction",
        repeats=len(values),
        min=min(values),
        median=statistics.median(values),
        max=max(values),
    )
    return {**row, "std": std, "seeds": list(seeds), "per_seed": list(values), "tasks": tasks,
            "seen_programs": max(seen)}  # fmt: skip


def run_table1(args) -> dict:
    """Trains every method x seed and evaluates each model with every test search."""
    per_seed: dict[str, dict[str, list[float]]] = {}
    seen: dict[str, list[float]] = {}
    seeds: dict[str, list[int]] = {}
    runs = []
    for seed in args.seeds:  # seed-major: an interrupted study has whole seeds done
        for method in args.methods:
            if method in args.first_seed_only and seed != args.seeds[0]:
                continue
            seeds.setdefault(method, []).append(seed)
            config = variant_config(args, method, seed, 1.0, (1.0,), args.tasks)
            run_dir = common.RESULTS_DIR / "runs" / run_name(args, "table1", method, seed, 1.0)
            print(f"table1: train={method} seed {seed} -> {run_dir}", file=sys.stderr, flush=True)
            run = Run(config, run_dir, args.minutes, shipped=model_name("table1", method))
            scores = {s: run.top1(s, 1.0, args.tasks) for s in TABLE1_SEARCHES}
            for search, value in scores.items():
                per_seed.setdefault(method, {}).setdefault(search, []).append(value)
            seen.setdefault(method, []).append(run.seen(1.0, args.tasks))
            runs.append(run.record(method, seed, scores, {"density=1": seen[method][-1]}))
            print(f"  top-1 {scores}, seen {seen[method][-1]}", file=sys.stderr, flush=True)
            if args.export and seed == args.seeds[0] and run.shipped is None:
                export_model(args, "table1", method, runs[-1], run)
    rows = [
        _row(
            "table1",
            f"train={method}/infer={search}",
            values,
            seeds[method],
            args.tasks,
            seen[method],
        )
        for method, by_search in per_seed.items()
        for search, values in by_search.items()
    ]
    return {"rows": rows, "runs": runs}


def run_ood(args) -> dict:
    """Trains at density 0.5; tests at 0.5, 0.75 and 1.0 with Grad 0 / 10 / 100."""
    per_seed: dict[str, dict[tuple[float, str], list[float]]] = {}
    seen: dict[tuple[str, float], list[float]] = {}
    runs = []
    for seed in args.ood_seeds:
        for method in args.ood_methods:
            config = variant_config(
                args, method, seed, OOD_TRAIN_DENSITY, OOD_TEST_DENSITIES, args.ood_tasks
            )
            name = run_name(args, "ood", method, seed, OOD_TRAIN_DENSITY)
            run_dir = common.RESULTS_DIR / "runs" / name
            print(f"ood: train={method} seed {seed} -> {run_dir}", file=sys.stderr, flush=True)
            run = Run(config, run_dir, args.minutes, shipped=model_name("ood", method))
            scores, run_seen = {}, {}
            for density in OOD_TEST_DENSITIES:
                run_seen[f"density={density:g}"] = run.seen(density, args.ood_tasks)
                seen.setdefault((method, density), []).append(run_seen[f"density={density:g}"])
                for search in OOD_SEARCHES:
                    value = run.top1(search, density, args.ood_tasks)
                    scores[f"density={density:g}/{search}"] = value
                    per_seed.setdefault(method, {}).setdefault((density, search), []).append(value)
            runs.append(run.record(method, seed, scores, run_seen))
            print(f"  top-1 {scores}, seen programs {run_seen}", file=sys.stderr, flush=True)
            if args.export and seed == args.ood_seeds[0] and run.shipped is None:
                export_model(args, "ood", method, runs[-1], run)
    rows = [
        _row(
            "table6",
            f"train={method}/test_density={density:g}/infer={search}",
            values,
            args.ood_seeds,
            args.ood_tasks,
            seen[(method, density)],
        )
        for method, by_key in per_seed.items()
        for (density, search), values in by_key.items()
    ]
    return {"rows": rows, "runs": runs}


def _variant_info(args) -> dict:
    return {
        "recipe": "quickstart preset (lpn_arc.config.presets)",
        "grid_size": 6,
        "pattern_size": 2,
        "steps": args.steps,
        "batch_size": 16,
        "budget": "equal training steps for every method (the paper's protocol)",
        "tasks": args.tasks,
        "holdout": "all (every pair predicted in turn from the others)",
        "test_lr": 0.1,
        "sample_scale": 0.5,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["table1", "ood"],
        choices=["table1", "ood"],
        help="what to run (default both)",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1], help="training seeds (Table 1)"
    )
    parser.add_argument(
        "--ood-seeds", type=int, nargs="+", default=[0, 1], help="training seeds (OOD)"
    )
    parser.add_argument("--steps", type=int, default=900, help="training steps per run")
    parser.add_argument("--minutes", type=float, default=30.0, help="time cap per run")
    parser.add_argument("--tasks", type=int, default=128, help="held-out tasks (Table 1)")
    parser.add_argument("--ood-tasks", type=int, default=64, help="held-out tasks per density")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(TABLE1_METHODS),
        choices=list(TABLE1_METHODS),
        help="Table 1 training searches",
    )
    parser.add_argument(
        "--first-seed-only",
        nargs="*",
        default=[],
        choices=list(TABLE1_METHODS),
        help="Table 1 methods trained on the first seed only (their rows say so)",
    )
    parser.add_argument(
        "--ood-methods",
        nargs="+",
        default=list(OOD_METHODS),
        choices=list(OOD_METHODS),
        help="OOD training searches",
    )
    parser.add_argument(
        "--export",
        action="store_true",
        help="write the first seed's models into lpn_arc's shipped pretrained "
        "models (lpn-arc models), with their cards",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    common.rerun_with_fast_allocator(__file__, argv)

    start = time.perf_counter()
    if "table1" in args.parts:
        out = run_table1(args)
        extra = {
            "variant_info": _variant_info(args),
            "seeds": args.seeds,
            "runs": out["runs"],
            "paper": PAPER_TABLE1,
        }
        path = common.write_results("table1", out["rows"], seed=args.seeds[0], extra=extra)
        plot_table1(out["rows"], args.methods, common.RESULTS_DIR / "table1.png")
        print(table1_markdown(out["rows"], args.methods, TABLE1_SEARCHES))
        print(f"wrote {path}")
    if "ood" in args.parts:
        out = run_ood(args)
        paper = {m: {f"{d:g}": v for d, v in by_d.items()} for m, by_d in PAPER_TABLE6.items()}
        extra = {
            "variant_info": {
                **_variant_info(args),
                "tasks": args.ood_tasks,
                "train_density": OOD_TRAIN_DENSITY,
            },
            "seeds": args.ood_seeds,
            "runs": out["runs"],
            "paper": paper,
        }
        path = common.write_results("table6", out["rows"], seed=args.ood_seeds[0], extra=extra)
        plot_table6(out["rows"], args.ood_methods, common.RESULTS_DIR / "table6.png")
        print(table6_markdown(out["rows"], args.ood_methods))
        print(f"wrote {path}")
    print(f"wall time {(time.perf_counter() - start) / 60:.1f} min", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
