"""``lpn-arc quickstart``: train the CPU recipe, compare searches, plot them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lpn_arc.allocator import allocator
from lpn_arc.commands.common import (
    clear_run,
    evaluate_all,
    programs_line,
)

QUICKSTART_SEARCHES = ("mean", "grad:1", "grad:5", "grad:20", "grad:100", "sample:250")
EVAL_SEED = 0  # the key of the quickstart's evaluation (its --seed is the training seed)


def run_quickstart(args: argparse.Namespace) -> int:
    """``lpn-arc quickstart``: train the quickstart recipe, compare searches, plot them."""

    from lpn_arc.config import apply_overrides, get_preset
    from lpn_arc.data import pattern_test_tasks, seen_programs
    from lpn_arc.evaluation import format_table
    from lpn_arc.model import count_params
    from lpn_arc.plots import (
        interesting_tasks,
        plot_accuracy_vs_steps,
        plot_search_traces,
        plot_tasks,
    )
    from lpn_arc.training import run_info, train

    config = apply_overrides(get_preset("quickstart"), args)
    out = Path(args.out)
    clear_run(out, args)
    if (out / "checkpoints").exists() and not args.resume:
        raise ValueError(
            f"{out} already holds a run: continue it with --resume, start again with "
            "--overwrite, or choose another --out"
        )
    d, m = config.data, config.model
    print(
        f"quickstart: PATTERN {d.grid_size}x{d.grid_size} grids, {d.pattern_size}x"
        f"{d.pattern_size} patterns; model {m.encoder_layers}+{m.decoder_layers} layers, "
        f"{m.num_heads}x{m.head_dim}, latent {m.latent_dim}; batch {config.batch_size}, AdamW "
        f"{config.lr:g} ({config.lr_schedule}), training search {config.train_search}; "
        f"up to {config.steps} steps / {args.minutes:g} min; allocator {allocator()}"
    )
    result = train(config, out, resume=args.resume, progress=not args.no_progress,
                   log_lines=args.no_progress, max_seconds=60 * args.minutes)  # fmt: skip
    if result.interrupted:
        print(
            f"lpn-arc quickstart: interrupted at step {result.step}; checkpoint written to {out}",
            file=sys.stderr,
        )
        return 130
    if result.step < config.steps:
        print(
            f"quickstart: training stopped at step {result.step} of {config.steps}, cut short "
            f"by the {args.minutes:g}-minute cap (--minutes); the numbers below are of a "
            "shorter run (continue it with --resume)",
            flush=True,
        )
    tasks = pattern_test_tasks(config, args.tasks)
    rows, outputs = evaluate_all(result.graphdef, result.params, tasks, QUICKSTART_SEARCHES,
                                 lr=0.1, scale=0.5, batch_size=32, seed=EVAL_SEED,
                                 progress=not args.no_progress)  # fmt: skip
    seen = seen_programs(config, result.step, tasks)
    print(
        f"\n{len(tasks.inputs)} held-out tasks, trained {result.step} steps in "
        f"{result.seconds:.0f} s"
    )
    print(programs_line(seen))
    print(format_table(rows))
    report = {
        "params": count_params(result.params),
        "seen_in_training": seen,
        "train_seconds": result.seconds,
        "train_steps": result.step,
        "allocator": allocator(),
        "rows": [
            {k: r[k] for k in ("search", "top1", "pass2", "pixel", "shape", "evaluations")}
            for r in rows
        ],
        "environment": {**run_info(config), "eval_seed": EVAL_SEED},
    }
    (out / "results.json").write_text(json.dumps(report, indent=2))
    plot_accuracy_vs_steps(rows, out / "accuracy_vs_steps.png")
    shown = interesting_tasks(outputs["mean"], outputs["grad:100"])
    plot_tasks(tasks, outputs["grad:100"], out / "tasks.png", indices=shown)
    plot_search_traces(outputs["grad:100"].traces, out / "search_traces.png")
    print(f"wrote {out / 'results.json'}, accuracy_vs_steps.png, tasks.png, search_traces.png")
    return 0
