"""Benchmark: the test-time inference choices where we and the official code differ.

On a PATTERN model trained with the ``quickstart`` recipe (or any run folder given with
``--checkpoint``), evaluates the same held-out tasks with every combination of

- the start latent: ``mean`` (the mean of the specification pairs' encoder means, ours) or
  ``sample`` (the mean of latents sampled from each pair's posterior, the official code);
- the latent optimiser of gradient search: ``adam`` (Adam lr 0.1, b2 0.9) or ``clip-adam``
  (gradient clipped to norm 1 per task, then Adam lr 0.1, b2 0.9, eps_root 1e-8: the
  official chain, without its coupling across a device batch);

for the searches ``mean`` (Grad 0), ``grad:5``, ``grad:20`` and ``grad:100``. Every run
reports top-1 exact match, pass@2 under both attempt-2 rules (``pass2``: the best candidate
that decodes differently from attempt 1, ours; ``pass2_official``: the second-best latent
visited), the shape-gated pixel accuracy and its wall time. ``--holdout all`` predicts
every pair of each task from the others (the official protocol) instead of the last.

Writes ``results/inference.json`` (rows ``name="inference"``, ``variant=
"<search>/start=<start>/optimizer=<optimizer>"``, metrics ``top1``, ``pass2``,
``pass2_official``, ``pixel``, ``seconds``) and prints the table.
"""

from __future__ import annotations

import argparse

from benchmarks import common

NAME = "inference"
SEARCHES = ("mean", "grad:5", "grad:20", "grad:100")
STARTS = ("mean", "sample")
OPTIMIZERS = ("adam", "clip-adam")
METRICS = ("top1", "pass2", "pass2_official", "pixel")


def variants(searches):
    """``(search, start, optimizer)`` for every combination (one optimiser for ``mean``)."""
    for search in searches:
        for start in STARTS:
            for optimizer in OPTIMIZERS if search != "mean" else ("clip-adam",):
                yield search, start, optimizer


def bench(args) -> tuple[list[dict], dict]:
    import jax
    from bench_efficiency import trained_model
    from lpn_arc.config import parse_search
    from lpn_arc.data import pattern_test_tasks
    from lpn_arc.evaluation import evaluate_tasks

    config, graphdef, params, model = trained_model(args)
    tasks = pattern_test_tasks(config, args.tasks)
    rows, table = [], {}
    for search, start, optimizer in variants(args.searches):
        spec = parse_search(search, lr=args.lr, optimizer=optimizer)
        out = evaluate_tasks(
            graphdef,
            params,
            tasks,
            spec,
            jax.random.key(args.seed),
            start=start,
            attempt2="both",
            holdout=args.holdout,
            progress=True,
        )
        variant = f"{search}/start={start}/optimizer={optimizer}"
        table[variant] = {name: out.metrics[name] for name in (*METRICS, "seconds")}
        for name in METRICS:
            rows.append(common.record(NAME, variant, name, out.metrics[name], "fraction"))
        rows.append(common.record(NAME, variant, "seconds", out.metrics["seconds"], "s"))
        print(f"{variant}: " + ", ".join(f"{k} {v:.3f}" for k, v in table[variant].items()))
    extra = {
        "model": model,
        "tasks": int(tasks.inputs.shape[0]),
        "holdout": args.holdout,
        "lr": args.lr,
        "table": table,
    }
    return rows, extra


def print_summary(extra: dict) -> None:
    """The table (percent): one row per search, start and optimiser."""
    print(f"{extra['tasks']} held-out tasks, holdout {extra['holdout']}, lr {extra['lr']}")
    print("| search | start | optimizer | top-1 | pass@2 | pass@2 (official) | pixel |")
    print("|---|---|---|---|---|---|---|")
    for variant, m in extra["table"].items():
        search, start, optimizer = (part.split("=")[-1] for part in variant.split("/"))
        cells = " | ".join(f"{100 * m[k]:.1f}" for k in METRICS)
        print(f"| {search} | {start} | {optimizer} | {cells} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="a PATTERN run folder (default: the quickstart "
                        "model of bench_efficiency.py, trained if absent)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="32 tasks, mean and grad:20")
    parser.add_argument("--train-steps", type=int, help="steps of the quickstart recipe")
    parser.add_argument("--tasks", type=int, help="held-out tasks (default 256; 32 quick)")
    parser.add_argument("--holdout", choices=("last", "all"), default="last")
    parser.add_argument("--lr", type=float, default=0.1, help="learning rate of the search")
    parser.add_argument("--seed", type=int, default=0, help="training and search seed")
    args = parser.parse_args(argv)
    args.tasks = args.tasks or (32 if args.quick else 256)
    args.searches = ("mean", "grad:20") if args.quick else SEARCHES
    common.rerun_with_fast_allocator(__file__, argv)
    rows, extra = bench(args)
    name = NAME if args.holdout == "last" else f"{NAME}_holdout_all"
    name = f"{name}_quick" if args.quick else name
    path = common.write_results(name, rows, seed=args.seed, extra=extra)
    print_summary(extra)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
