"""Runs the benchmarks (``make bench`` / ``make bench-quick``) and prints one summary table.

``python -m benchmarks.run_all [--quick]`` from the repository root; each benchmark runs in
its own process, as ``python -m benchmarks.<name>``. ``--quick`` (under 10 minutes on 2 CPU
cores) runs:

1. ``bench_search --quick``: search kernels (evaluations/s of every searcher at batch
   1/32/128, ``lax.scan`` vs a Python loop, compile times) and the library's backward-pass
   memory against K;
2. ``bench_lpn --quick``: pattern training steps (mean, grad:1, grad:1 unrolled), the
   100-step gradient search and whole-evaluation throughput;
3. ``bench_generate --quick``: cached vs uncached generation, 10x10 and 30x30;
4. ``bench_efficiency --quick``: accuracy against evaluations per search method.

The full run (``make bench``) runs each without ``--quick`` (all six training variants,
training-step memory against K = 1..100), and adds ``bench_inference`` (start latent,
search optimiser and attempt-2 rule, ours vs the official code's), ``bench_arc`` (ARC scale),
``bench_allocator`` (glibc vs tcmalloc vs jemalloc) and ``reproduce_paper`` (the paper's
Table 1 and OOD trend at CPU scale, about 2 hours; also ``make reproduce``).
``--only NAME ...`` runs a subset; ``--summary`` only prints the table from the JSON files
already in ``benchmarks/results``.

This module imports nothing of the ``benchmarks`` package: the docs' summary table
(``docs/_ext/benchtables.py``) loads this file alone, by its path, to call :func:`summary`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCHMARKS_DIR / "results"  # common.RESULTS_DIR
QUICK = ("search", "lpn", "generate", "efficiency")
FULL = (
    "search",
    "lpn",
    "generate",
    "efficiency",
    "inference",
    "arc",
    "allocator",
    "reproduce",
)
SCRIPTS = {  # name -> the module that runs it, python -m benchmarks.<module>
    "search": "bench_search",
    "lpn": "bench_lpn",
    "generate": "bench_generate",
    "efficiency": "bench_efficiency",
    "inference": "bench_inference",
    "arc": "bench_arc",
    "allocator": "bench_allocator",
    "reproduce": "reproduce_paper",
}
HAS_QUICK = {"search", "lpn", "generate", "efficiency", "arc"}

# (results file, row name, variant, metric, label, scale, unit shown)
PEER_TARGETS = {
    "train_mean": 0.5,
    "train_grad1": 0.4,
    "search_grad100": 0.3,
    "evaluate_grad100": 0.3,
}
SUMMARY = (
    *(
        (
            "peer",
            "peer",
            f"{measurement}/{allocator}",
            "ours_over_official",
            f"ours / official, {measurement} ({allocator}; target {target})",
            1,
            "x",
        )
        for measurement, target in PEER_TARGETS.items()
        for allocator in ("tcmalloc", "glibc")
    ),
    (
        "search",
        "search_methods",
        "gradient/batch1",
        "evaluations_per_s",
        "gradient ascent, batch 1",
        1,
        "evals/s",
    ),
    (
        "search",
        "search_methods",
        "gradient/batch128",
        "evaluations_per_s",
        "gradient ascent, batch 128",
        1,
        "evals/s",
    ),
    (
        "search",
        "search_methods",
        "random/batch128",
        "evaluations_per_s",
        "random search, batch 128",
        1,
        "evals/s",
    ),
    (
        "search",
        "search_methods",
        "es/batch128",
        "evaluations_per_s",
        "evolution strategy, batch 128",
        1,
        "evals/s",
    ),
    (
        "search",
        "search_methods",
        "hybrid/batch128",
        "evaluations_per_s",
        "hybrid, batch 128",
        1,
        "evals/s",
    ),
    (
        "search",
        "search_methods",
        "hybrid/batch128",
        "compile_seconds",
        "hybrid compile, batch 128",
        1,
        "s",
    ),
    (
        "search",
        "search_throughput",
        "batch1",
        "speedup_scan_vs_python",
        "lax.scan vs Python loop, batch 1",
        1,
        "x",
    ),
    (
        "search",
        "search_throughput",
        "batch32",
        "speedup_scan_vs_python",
        "lax.scan vs Python loop, batch 32",
        1,
        "x",
    ),
    ("lpn", "train_step", "mean", "seconds", "pattern train step, mean (target 0.6)", 1, "s"),
    ("lpn", "train_step", "grad:1", "seconds", "pattern train step, grad:1 (target 1.4)", 1, "s"),
    ("lpn", "train_step", "grad:5", "seconds", "pattern train step, grad:5", 1, "s"),
    (
        "lpn",
        "train_step",
        "grad:1:unrolled",
        "seconds",
        "pattern train step, grad:1 unrolled (target 3)",
        1,
        "s",
    ),
    (
        "lpn",
        "train_step",
        "grad:1:implicit",
        "seconds",
        "pattern train step, grad:1 implicit",
        1,
        "s",
    ),
    ("lpn", "train_step", "sample:5", "seconds", "pattern train step, sample:5", 1, "s"),
    (
        "lpn",
        "train_step",
        "grad:1:unrolled/grad:1",
        "peak_memory_ratio",
        "unrolled / grad:1 memory (target 2)",
        1,
        "x",
    ),
    (
        "lpn",
        "train_memory_vs_k",
        "unrolled/K100/K1",
        "peak_memory_ratio",
        "unrolled memory K=100 / K=1 (target 1.5)",
        1,
        "x",
    ),
    (
        "lpn",
        "train_memory_vs_k",
        "implicit/K100/K1",
        "peak_memory_ratio",
        "implicit memory K=100 / K=1 (target 1.5)",
        1,
        "x",
    ),
    ("lpn", "search", None, "seconds_per_task", "grad:100 search per task (target 0.5)", 1, "s"),
    ("lpn", "evaluate", "mean/", "seconds_per_task", "evaluation per task, mean", 1, "s"),
    ("lpn", "evaluate", "grad:100/", "seconds_per_task", "evaluation per task, grad:100", 1, "s"),
    (
        "generate",
        "pattern",
        "cached/stop_early",
        "seconds_per_grid",
        "10x10 generation, cached",
        1000,
        "ms",
    ),
    (
        "generate",
        "pattern",
        "uncached/cached/stop_early",
        "speedup",
        "10x10 generation, cached vs uncached",
        1,
        "x",
    ),
    (
        "generate",
        "arc_repo",
        "cached/stop_early/bfloat16",
        "seconds_per_grid",
        "30x30 generation, repo-size ARC model (target 3.5)",
        1,
        "s",
    ),
    (
        "generate",
        "arc_repo",
        "uncached/cached/stop_early/bfloat16",
        "speedup",
        "30x30 generation, cached vs uncached",
        1,
        "x",
    ),
    (
        "allocator",
        "train_step",
        "glibc/tcmalloc",
        "speedup",
        "train step, tcmalloc vs glibc",
        1,
        "x",
    ),
    (
        "allocator",
        "train_step",
        "glibc/jemalloc",
        "speedup",
        "train step, jemalloc vs glibc",
        1,
        "x",
    ),
    ("allocator", "search", "glibc/tcmalloc", "speedup", "search, tcmalloc vs glibc", 1, "x"),
    ("allocator", "search", "glibc/jemalloc", "speedup", "search, jemalloc vs glibc", 1, "x"),
)


def _find(rows: list[dict], name: str, variant: str | None, metric: str) -> dict | None:
    """The first row with this name and metric whose variant equals ``variant`` (any
    variant for None; a ``variant`` ending in ``/`` matches as a prefix)."""
    for row in rows:
        if row["name"] != name or row["metric"] != metric:
            continue
        if variant is None or row["variant"] == variant:
            return row
        if variant.endswith("/") and row["variant"].startswith(variant):
            return row
    return None


def summary(results_dir: Path = RESULTS_DIR) -> list[str]:
    """Markdown lines: the key figures of every results file present."""
    loaded = {}
    for name in (*SCRIPTS, "efficiency_quick", "peer"):  # peer: make bench-peer
        path = results_dir / f"{name}.json"
        if path.exists():
            loaded[name] = json.loads(path.read_text(encoding="utf-8"))
    # rows of partial full runs (bench_lpn --parts ...) complete the quick lpn.json
    for path in sorted(results_dir.glob("lpn_*.json")):
        extra = json.loads(path.read_text(encoding="utf-8"))
        base = loaded.setdefault("lpn", {**extra, "rows": []})
        have = {(r["name"], r["variant"], r["metric"]) for r in base["rows"]}
        base["rows"] += [
            r for r in extra["rows"] if (r["name"], r["variant"], r["metric"]) not in have
        ]
    efficiency_file = "efficiency.json"
    if "efficiency" not in loaded and "efficiency_quick" in loaded:
        loaded["efficiency"] = loaded["efficiency_quick"]
        efficiency_file = "efficiency_quick.json"
    loaded.pop("efficiency_quick", None)
    lines = ["| measurement | value | file |", "|---|---|---|"]
    for file, name, variant, metric, label, scale, unit in SUMMARY:
        if file not in loaded:
            continue
        row = _find(loaded[file]["rows"], name, variant, metric)
        if row is None or row["value"] is None:
            continue
        value = row["value"] * scale
        text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
        lines.append(f"| {label} | {text} {unit} | {file}.json |")
    if "efficiency" in loaded:
        table = loaded["efficiency"].get("table", {})
        budgets = loaded["efficiency"].get("budgets", [])
        lines += ["", "Top-1 exact match (%) against objective evaluations per task "
                  f"({loaded['efficiency'].get('tasks')} held-out pattern tasks; "
                  f"{efficiency_file}):",
                  "",
                  "| method (start) | " + " | ".join(str(b) for b in budgets) + " |",
                  "|---|" + "---|" * len(budgets)]  # fmt: skip
        for key, accuracy in table.items():
            method, start = key.split("/")
            cells = " | ".join(f"{100 * accuracy[str(b)]:.1f}" for b in budgets)
            lines.append(f"| {method} ({start}) | {cells} |")
    machines = {
        f"{m['machine']['cpu_model']}, {m['machine']['usable_cores']} cores, "
        f"{m['machine']['allocator']}"
        for m in loaded.values()
    }
    lines += ["", "machine: " + "; ".join(sorted(machines))]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the < 10-minute selection")
    parser.add_argument("--only", nargs="+", choices=sorted(SCRIPTS), help="run these only")
    parser.add_argument("--summary", action="store_true", help="print the table; run nothing")
    args = parser.parse_args(argv)
    if not args.summary:
        names = args.only or (QUICK if args.quick else FULL)
        timings = {}
        for name in names:
            command = [sys.executable, "-m", f"benchmarks.{SCRIPTS[name]}"]
            if args.quick and name in HAS_QUICK:
                command.append("--quick")
            print(f"=== {' '.join(command[2:])}", flush=True)
            start = time.perf_counter()
            subprocess.run(command, check=True, cwd=BENCHMARKS_DIR.parent)
            timings[name] = time.perf_counter() - start
        print("\nwall time: " + ", ".join(f"{n} {t:.0f} s" for n, t in timings.items())
              + f"; total {sum(timings.values()) / 60:.1f} min")  # fmt: skip
    print("\n".join(summary()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
