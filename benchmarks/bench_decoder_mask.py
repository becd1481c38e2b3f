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
over seeds, with ``std`` and ``seeds`` in the extra table).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import common  # benchmarks/common.py; also puts the repository root on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "applications" / "arc"))

NAME = "decoder_mask"
MASKS = ("official", "input-only")
SEARCHES = ("mean", "grad:100")


def trained(mask: str, seed: int, steps: int):
    """``(graphdef, params, config, train_seconds or None when reused)``."""
    from lpn_arc.config import get_preset
    from lpn_arc.train import load_run, train

    base = get_preset("quickstart")
    model = dataclasses.replace(base.model, decoder_mask=mask)
    config = dataclasses.replace(base, model=model, seed=seed, steps=steps)
    run_dir = common.RESULTS_DIR / "runs" / f"quickstart-{mask}-{steps}steps-seed{seed}"
    try:
        _, graphdef, params, _, step = load_run(run_dir)
        if step >= steps:
            return graphdef, params, config, None
    except FileNotFoundError:
        pass
    start = time.perf_counter()
    result = train(config, run_dir, resume=True, progress=True)
    return result.graphdef, result.params, config, time.perf_counter() - start


def bench(args) -> tuple[list[dict], dict]:
    import jax
    from lpn_arc.evaluate import evaluate_tasks
    from lpn_arc.searchspec import parse_search
    from lpn_arc.train import pattern_test_tasks

    rows, table, runs = [], {}, []
    for mask in args.masks:
        for seed in args.seeds:
            graphdef, params, config, seconds = trained(mask, seed, args.steps)
            if seconds is not None:
                rows.append(common.record(NAME, f"{mask}/seed{seed}", "train_seconds",
                                          seconds, "s"))  # fmt: skip
            tasks = pattern_test_tasks(config, args.tasks)
            run = {"mask": mask, "seed": seed, "train_seconds": seconds, "top1": {}}
            for text in SEARCHES:
                out = evaluate_tasks(graphdef, params, tasks, parse_search(text),
                                     jax.random.key(0), progress=True)  # fmt: skip
                run["top1"][text] = out.metrics["top1"]
                table.setdefault(f"{mask}/{text}", []).append(out.metrics["top1"])
                variant = f"{mask}/seed{seed}/{text}"
                rows.append(common.record(NAME, variant, "top1", out.metrics["top1"], "fraction"))
                rows.append(common.record(NAME, variant, "eval_seconds",
                                          out.metrics["seconds"], "s"))  # fmt: skip
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
    args = parser.parse_args(argv)
    from lpn_arc.allocator import reexec_with_fast_allocator

    if argv is None:
        reexec_with_fast_allocator([sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]])
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
