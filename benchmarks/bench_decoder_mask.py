"""Benchmark: accuracy of the two decoder masks on the quickstart recipe.

The ``input-only`` decoder mask (input tokens never attend to the latent, so their keys and
values are computed once per pair; ``lpn_arc/input_cache.py``) is faster; is it as
accurate as the official mask? For each mask and each ``--seeds`` seed, the quickstart
recipe (Table-13 architecture on 6x6 grids with 2x2 patterns, batch 16, Grad 1 training,
900 steps) is trained, then evaluated on the same 256 held-out tasks with ``mean`` (Grad 0)
and ``grad:100`` (top-1 exact match, last pair predicted). Run folders go to
``benchmarks/results/runs/`` and are reused. Writes ``results/decoder_mask.json``: rows
``variant="<mask>/seed<s>/<search>"`` (``top1``, ``eval_seconds``), ``variant=
"<mask>/seed<s>"`` (``train_seconds``) and ``variant="<mask>/<search>"`` (``top1`` mean
over seeds, with ``std`` and ``seeds`` in the extra table). Each finished (mask, seed) run
is appended to ``results/decoder_mask_runs.jsonl`` and reused by a later invocation with
the same steps and tasks (``--fresh`` ignores it), so an interrupted study resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys

from benchmarks import common

NAME = "decoder_mask"
RUNS_FILE = common.RESULTS_DIR / "decoder_mask_runs.jsonl"  # finished runs, for resuming
MASKS = ("official", "input-only")
SEARCHES = ("mean", "grad:100")


def trained(mask: str, seed: int, steps: int):
    """``(graphdef, params, config, train_seconds or None when reused)``."""
    from lpn_arc.config import get_preset

    base = get_preset("quickstart")
    model = dataclasses.replace(base.model, decoder_mask=mask)
    config = dataclasses.replace(base, model=model, seed=seed, steps=steps)
    run_dir = common.RESULTS_DIR / "runs" / f"quickstart-{mask}-{steps}steps-seed{seed}"
    ckpt, seconds = common.trained_run(config, run_dir)
    if ckpt.step < steps:  # never score a half-trained model (an interrupted run)
        raise SystemExit(f"training of {run_dir.name} stopped at step {ckpt.step}; "
                         "rerun to resume it")  # fmt: skip
    return ckpt.graphdef, ckpt.params, config, seconds


def finished_runs(steps: int, tasks: int) -> dict[tuple[str, int], dict]:
    """Runs an earlier (interrupted) invocation finished, from ``RUNS_FILE``."""
    if not RUNS_FILE.exists():
        return {}
    done = {}
    for line in RUNS_FILE.read_text().splitlines():
        run = json.loads(line) if line.strip() else None
        if run and run["steps"] == steps and run["tasks"] == tasks:
            done[(run["mask"], run["seed"])] = run
    return done


def train_and_evaluate(mask: str, seed: int, args) -> dict:
    """Trains (or reuses) one model and scores it with each of ``SEARCHES``."""
    import jax
    from lpn_arc.config import parse_search
    from lpn_arc.data import pattern_test_tasks
    from lpn_arc.evaluation import evaluate_tasks

    graphdef, params, config, seconds = trained(mask, seed, args.steps)
    tasks = pattern_test_tasks(config, args.tasks)
    run = {"mask": mask, "seed": seed, "steps": args.steps, "tasks": args.tasks,
           "train_seconds": seconds, "top1": {}, "eval_seconds": {}}  # fmt: skip
    for text in SEARCHES:
        out = evaluate_tasks(graphdef, params, tasks, parse_search(text), jax.random.key(0),
                             progress=True)  # fmt: skip
        run["top1"][text] = out.metrics["top1"]
        run["eval_seconds"][text] = out.metrics["seconds"]
    return run


def bench(args) -> tuple[list[dict], dict]:
    rows, table, runs = [], {}, []
    done = {} if args.fresh else finished_runs(args.steps, args.tasks)
    for mask in args.masks:
        for seed in args.seeds:
            run = done.get((mask, seed))
            if run is None:
                run = train_and_evaluate(mask, seed, args)
                with RUNS_FILE.open("a") as f:
                    f.write(json.dumps(run) + "\n")
            if run["train_seconds"] is not None:
                rows.append(common.record(NAME, f"{mask}/seed{seed}", "train_seconds",
                                          run["train_seconds"], "s"))  # fmt: skip
            for text in SEARCHES:
                table.setdefault(f"{mask}/{text}", []).append(run["top1"][text])
                variant = f"{mask}/seed{seed}/{text}"
                rows.append(common.record(NAME, variant, "top1", run["top1"][text], "fraction"))
                if text in run.get("eval_seconds", {}):
                    rows.append(common.record(NAME, variant, "eval_seconds",
                                              run["eval_seconds"][text], "s"))  # fmt: skip
            runs.append(run)
            print(run, file=sys.stderr, flush=True)
    summary = {}
    for key, values in table.items():
        mean = statistics.mean(values)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        summary[key] = {"mean": mean, "std": std, "seeds": len(values)}
        rows.append(common.record(NAME, key, "top1", mean, "fraction"))
    extra = {"recipe": "quickstart", "steps": args.steps, "tasks": args.tasks, "runs": runs,
             "table": summary}  # fmt: skip
    return rows, extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--masks", nargs="+", choices=MASKS, default=list(MASKS))
    parser.add_argument("--steps", type=int, default=900, help="training steps per run")
    parser.add_argument("--tasks", type=int, default=256, help="held-out tasks")
    parser.add_argument("--fresh", action="store_true",
                        help="ignore the runs an interrupted invocation finished "
                        "(results/decoder_mask_runs.jsonl)")  # fmt: skip
    args = parser.parse_args(argv)
    common.rerun_with_fast_allocator(__file__, argv)
    rows, extra = bench(args)
    path = common.write_results(NAME, rows, seed=args.seeds[0], extra=extra)
    print("| mask | search | top-1 (mean ± std over seeds) |")
    print("|---|---|---|")
    for key, m in extra["table"].items():
        mask, search = key.split("/")
        print(f"| {mask} | {search} | {100 * m['mean']:.1f} ± {100 * m['std']:.1f} "
              f"({m['seeds']} seeds) |")  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
