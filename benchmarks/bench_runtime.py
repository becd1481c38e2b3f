"""Benchmark: CPU runtime options (XLA flags, dispatch, allocator settings) for our steps.

Runs our side of the peer benchmark (``peer_worker.py --side ours``: the Table-13 pattern
model, a training step on 32 tasks x 4 pairs with the encoder mean or one gradient step,
and encode + grad:100 search of 8 tasks) under each runtime variant, every measurement in
its own fresh process with tcmalloc preloaded (where installed), the variants interleaved
round by round. A variant is a set of environment variables:

- ``default``: nothing set;
- ``ynn-off``: ``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=`` (XLA's YNNPACK fusions
  off: dots and their neighbours go back to XLA's own emitters and Eigen);
- ``no-concurrency-scheduler``: ``--xla_cpu_enable_concurrency_optimized_scheduler=false``
  (XLA schedules for a lower memory peak instead of for parallel operations);
- ``fast-math``: ``--xla_cpu_enable_fast_math=true`` (changes results in the last bits);
- ``sync-dispatch``: ``JAX_CPU_ENABLE_ASYNC_DISPATCH=false``;
- ``tcmalloc-decommit``: ``TCMALLOC_AGGRESSIVE_DECOMMIT=true`` (tcmalloc returns freed
  pages to the system at once);
- ``a+b``: two variants at once (``--variants default ynn-off+no-concurrency-scheduler``).

Writes ``results/runtime.json`` (``runtime_quick.json`` with ``--quick``): per
``variant="<measurement>/<variant>"`` the median ``seconds`` (per step or per task),
``compile_seconds`` and ``peak_rss_gb``, and ``time_ratio`` / ``memory_ratio`` against
``default`` in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import common

NAME = "runtime"
WORKER = Path(__file__).resolve().parent / "peer_worker.py"
MEASUREMENTS = ("train_mean", "train_grad1", "search_grad100")
VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "ynn-off": {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type="},
    "no-concurrency-scheduler": {
        "XLA_FLAGS": "--xla_cpu_enable_concurrency_optimized_scheduler=false"
    },
    "fast-math": {"XLA_FLAGS": "--xla_cpu_enable_fast_math=true"},
    "sync-dispatch": {"JAX_CPU_ENABLE_ASYNC_DISPATCH": "false"},
    "tcmalloc-decommit": {"TCMALLOC_AGGRESSIVE_DECOMMIT": "true"},
}


def variant_env(variant: str) -> dict[str, str]:
    """The environment of ``variant``; ``"a+b"`` combines variants (their XLA flags
    joined)."""
    env: dict[str, str] = {}
    for part in variant.split("+"):
        for name, value in VARIANTS[part].items():
            env[name] = f"{env[name]} {value}" if name == "XLA_FLAGS" and name in env else value
    return env


def _variant(text: str) -> str:
    unknown = [part for part in text.split("+") if part not in VARIANTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown variant {unknown[0]!r}; known: "
                                         f"{', '.join(VARIANTS)} (combine with '+')")  # fmt: skip
    return text


def run_worker(measurement: str, variant: str, tasks: Path, args, preload: str | None) -> dict:
    """One fresh ``peer_worker.py --side ours`` process under ``variant``; its JSON line."""
    command = [sys.executable, str(WORKER), "--side", "ours", "--measurement", measurement,
               "--tasks", str(tasks), "--repeats", str(args.repeats),
               "--decoder-mask", args.decoder_mask]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "XLA_FLAGS")}
    env["LPN_ARC_XLA_DEFAULTS"] = "0"  # the variant alone sets XLA_FLAGS, not lpn_arc's import
    if preload:
        env["LD_PRELOAD"] = preload
    env.update(variant_env(variant))
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{measurement} under {variant} failed with status "
                           f"{out.returncode}:\n{out.stderr[-3000:]}")  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench(args) -> tuple[list[dict], dict]:
    from lpn_arc.allocator import find_fast_allocator

    from benchmarks.bench_peer import summarise, write_tasks

    preload = find_fast_allocator()
    rows, table = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for measurement in args.measurements:
            train = measurement.startswith("train")
            tasks = Path(tmp) / f"{measurement}.npz"
            write_tasks(tasks, args.train_tasks if train else args.search_tasks, 0)
            results: dict[str, list[dict]] = {v: [] for v in args.variants}
            for r in range(args.rounds):
                order = args.variants if r % 2 == 0 else args.variants[::-1]
                for variant in order:
                    result = run_worker(measurement, variant, tasks, args, preload)
                    results[variant].append(result)
                    print(f"{measurement}/{variant} round {r}: {json.dumps(result)}",
                          file=sys.stderr, flush=True)  # fmt: skip
            summary = {}
            for variant, runs in results.items():
                new_rows, summary[variant] = summarise(NAME, f"{measurement}/{variant}", runs)
                rows += new_rows
            base = summary.get("default")
            for variant, s in summary.items():
                if base:
                    s["time_ratio"] = s["seconds"] / base["seconds"]
                    s["memory_ratio"] = s["peak_rss_gb"] / base["peak_rss_gb"]
                    key = f"{measurement}/{variant}"
                    rows.append(common.record(NAME, key, "time_ratio", s["time_ratio"], "x"))
                    rows.append(common.record(NAME, key, "memory_ratio", s["memory_ratio"], "x"))
            table[measurement] = summary
    extra = {"allocator_preloaded": preload, "decoder_mask": args.decoder_mask,
             "variants": {v: variant_env(v) for v in args.variants}, "table": table,
             "train_tasks": args.train_tasks, "search_tasks": args.search_tasks,
             "repeats": args.repeats, "rounds": args.rounds}  # fmt: skip
    return rows, extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measurements", nargs="+", choices=MEASUREMENTS,
                        default=list(MEASUREMENTS))  # fmt: skip
    parser.add_argument("--variants", nargs="+", type=_variant, default=list(VARIANTS),
                        help="variants to compare; 'a+b' combines two")  # fmt: skip
    parser.add_argument("--train-tasks", type=int, default=32)
    parser.add_argument("--search-tasks", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per process")
    parser.add_argument("--rounds", type=int, default=2, help="processes per variant")
    parser.add_argument("--decoder-mask", choices=("official", "input-only"), default="official")
    parser.add_argument("--quick", action="store_true", help="one round, two timed calls")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.repeats = 1, 2
    if "default" in args.variants:  # the reference first
        args.variants = ["default"] + [v for v in args.variants if v != "default"]
    rows, extra = bench(args)
    path = common.write_results(f"{NAME}_quick" if args.quick else NAME, rows, seed=0, extra=extra)
    print("| measurement | variant | seconds | time / default | peak RSS (GB) | "
          "memory / default | compile (s) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for measurement, summary in extra["table"].items():
        for variant, s in summary.items():
            print(f"| {measurement} | {variant} | {s['seconds']:.3g} | "
                  f"{s.get('time_ratio', float('nan')):.2f} | {s['peak_rss_gb']:.2f} | "
                  f"{s.get('memory_ratio', float('nan')):.2f} | "
                  f"{s['compile_seconds']:.1f} |")  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
