"""Benchmark: the paper's training-method result at CPU scale (mean vs Grad 1 training).

The LPN paper (Table 1) trains the PATTERN model with the encoder mean ("mean"), with one
gradient step inside the loss ("grad:1", stop-gradient) and with exact gradients through
that step ("grad:1:unrolled"), then evaluates each with 0 to 100 test-time gradient steps:
models trained with a search in the loss are worse with the encoder alone and better once
searched. This benchmark repeats that on a pattern variant small enough for a CPU: every
training method x every seed is trained with the quickstart recipe (Table 13 architecture,
batch 16, AdamW with warm-up and cosine decay; ``--steps`` steps, at most ``--minutes`` per
run) and evaluated on the same held-out tasks with each ``--search`` (top-1 exact match,
every pair of a task predicted in turn from the others, as the paper's tables).

The variant (``--grid-size``, ``--pattern-size``, ``--density``) must be hard enough that
the encoder alone does not solve it yet learnable in the time: 6x6 grids with 2x2 patterns
are solved by mean training alone; 6x6 with 3x3 patterns learns nothing in 10 minutes on
one core. Run folders go to ``benchmarks/results/runs/`` and are reused (a finished run is
evaluated again, an interrupted one resumes). Writes ``results/training_methods.json`` and
``results/training_methods.png``. Part of ``make bench`` only (hours of CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

import common  # benchmarks/common.py

NAME = "training_methods"
METHODS = ("mean", "grad:1", "grad:1:unrolled")
SEARCHES = ("mean", "grad:5", "grad:20", "grad:100")


def variant_config(args, method: str, seed: int):
    from lpn_arc.config import DataConfig, get_preset
    from lpn_arc.model import ModelConfig

    base = get_preset("quickstart")
    size = args.grid_size
    model = ModelConfig.pattern(max_rows=size, max_cols=size)
    data = DataConfig(
        grid_size=size,
        pattern_size=args.pattern_size,
        density=args.density,
        test_densities=(args.density,),
        test_tasks=args.tasks,
    )
    return dataclasses.replace(
        base,
        model=model,
        data=data,
        steps=args.steps,
        seed=seed,
        train_search=method,
        checkpoint_every=max(args.steps // 4, 1),
    )


def run_name(args, method: str, seed: int) -> str:
    flat = method.replace(":", "-")
    return (
        f"methods-{args.grid_size}x{args.grid_size}-p{args.pattern_size}-d{args.density:g}-"
        f"{args.steps}steps-{flat}-seed{seed}"
    )


def train_or_reuse(config, run_dir: Path, minutes: float):
    _, graphdef, params, step, seconds = common.trained_run(
        config, run_dir, max_seconds=60 * minutes
    )
    return graphdef, params, step, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid-size", type=int, default=5, help="grid side")
    parser.add_argument("--pattern-size", type=int, default=3, help="pattern side")
    parser.add_argument("--density", type=float, default=1.0, help="pattern density")
    parser.add_argument("--steps", type=int, default=3000, help="training steps per run")
    parser.add_argument("--minutes", type=float, default=60.0, help="time cap per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), help="training searches")
    parser.add_argument("--searches", nargs="+", default=list(SEARCHES), help="test searches")
    parser.add_argument("--tasks", type=int, default=256, help="held-out tasks")
    args = parser.parse_args(argv)
    common.rerun_with_fast_allocator(__file__, argv)
    import jax
    from lpn_arc.config import parse_search
    from lpn_arc.data import pattern_test_tasks
    from lpn_arc.evaluation import evaluate_tasks

    rows, runs = [], []
    accuracy: dict[str, dict[str, list[float]]] = {}
    for method in args.methods:
        for seed in args.seeds:
            config = variant_config(args, method, seed)
            run_dir = common.RESULTS_DIR / "runs" / run_name(args, method, seed)
            print(f"{method} seed {seed} -> {run_dir}", file=sys.stderr, flush=True)
            graphdef, params, step, seconds = train_or_reuse(config, run_dir, args.minutes)
            tasks = pattern_test_tasks(config)
            run = {"method": method, "seed": seed, "steps": step, "train_seconds": seconds,
                   "run_dir": str(run_dir), "top1": {}}  # fmt: skip
            for text in args.searches:
                spec = parse_search(text, lr=0.1)
                out = evaluate_tasks(  # every pair held out in turn: the paper's protocol
                    graphdef, params, tasks, spec, jax.random.key(seed), holdout="all"
                )
                run["top1"][text] = out.metrics["top1"]
                accuracy.setdefault(method, {}).setdefault(text, []).append(out.metrics["top1"])
                rows.append(
                    common.record(NAME, f"{method}/seed{seed}/{text}", "top1",
                                  out.metrics["top1"], "fraction")
                )  # fmt: skip
            print(f"  trained {step} steps; top-1 {run['top1']}", file=sys.stderr, flush=True)
            runs.append(run)
    table = {
        method: {text: statistics.mean(values) for text, values in by_search.items()}
        for method, by_search in accuracy.items()
    }
    for method, by_search in table.items():
        for text, value in by_search.items():
            rows.append(common.record(NAME, f"{method}/mean_over_seeds/{text}", "top1", value,
                                      "fraction"))  # fmt: skip
    extra = {
        "variant": {
            "grid_size": args.grid_size,
            "pattern_size": args.pattern_size,
            "density": args.density,
            "steps": args.steps,
            "minutes_cap": args.minutes,
            "tasks": args.tasks,
        },
        "seeds": args.seeds,
        "runs": runs,
        "table": table,
    }
    path = common.write_results(NAME, rows, seed=args.seeds[0], extra=extra)
    plot(table, args.searches, common.RESULTS_DIR / f"{NAME}.png", extra["variant"])
    print("| training | " + " | ".join(args.searches) + " |")
    print("|---|" + "---|" * len(args.searches))
    for method, by_search in table.items():
        print(f"| {method} | " + " | ".join(f"{100 * by_search[s]:.1f}" for s in args.searches)
              + " |")  # fmt: skip
    print(f"wrote {path}")
    return 0


def plot(table: dict, searches: list[str], path: Path, variant: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [0 if s == "mean" else int(s.split(":")[1]) for s in searches]
    fig, ax = plt.subplots(figsize=(6, 4))
    for method, by_search in table.items():
        ax.plot(range(len(steps)), [100 * by_search[s] for s in searches], marker="o",
                label=f"{method} training")  # fmt: skip
    ax.set_xticks(range(len(steps)), [str(k) for k in steps])
    ax.set_xlabel("test-time gradient steps")
    ax.set_ylabel("top-1 exact match (%, mean over seeds)")
    ax.set_title(
        f"PATTERN {variant['grid_size']}x{variant['grid_size']}, "
        f"{variant['pattern_size']}x{variant['pattern_size']} patterns, {variant['steps']} steps"
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
