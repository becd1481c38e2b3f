"""``lpn-arc eval``: a checkpoint on held-out PATTERN tasks or on ARC tasks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lpn_arc.allocator import allocator
from lpn_arc.commands.common import (
    ARC_COLUMNS,
    columns_of,
    evaluate_all,
    inference_options,
    int_list,
    load_arc,
    output_folder,
    programs_line,
    seen_line,
)


def run_eval(args: argparse.Namespace) -> int:
    """``lpn-arc eval``: a checkpoint on held-out PATTERN tasks, or on ARC tasks (``--data``)."""
    from lpn_arc.data import pattern_test_tasks, seen_programs
    from lpn_arc.evaluation import format_table
    from lpn_arc.pretrained import load_checkpoint
    from lpn_arc.training import run_info

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    ckpt = load_checkpoint(args.checkpoint)
    searches = args.search or ["mean"]
    if args.data is not None:
        return _eval_arc(args, ckpt, searches)
    tasks = pattern_test_tasks(ckpt.config, args.tasks, args.density)
    rows, _ = evaluate_all(
        ckpt.graphdef,
        ckpt.params,
        tasks,
        searches,
        lr=args.lr,
        scale=args.scale,
        batch_size=args.batch_size or 32,
        progress=not args.no_progress,
        seed=args.seed,
        **inference_options(args),
        holdout=args.holdout,
    )
    seen = seen_programs(ckpt.config, ckpt.step, tasks)
    print(
        f"checkpoint {args.checkpoint} (step {ckpt.step}), {len(tasks.inputs)} test tasks "
        f"(holdout {args.holdout}), start {args.start}, optimizer {args.optimizer}, "
        f"allocator {allocator()}"
    )
    print(programs_line(seen))
    print(format_table(rows, columns_of(args)))
    report = {
        "checkpoint": str(args.checkpoint),
        "step": ckpt.step,
        "seen_in_training": seen,
        "inference": {**inference_options(args), "holdout": args.holdout, "lr": args.lr},
        "rows": rows,
    }
    print(json.dumps(report))
    report["environment"] = {**run_info(ckpt.config), "eval_seed": args.seed}
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "results.json").write_text(json.dumps(report, indent=2))
    return 0


def _eval_arc(args, ckpt, searches) -> int:
    """``lpn-arc eval --data``: every test input of ARC tasks, a submission per search."""
    import jax

    from lpn_arc.config import parse_search
    from lpn_arc.data import check_no_test_leak
    from lpn_arc.evaluation import evaluate_arc, format_table, validate_submission
    from lpn_arc.pretrained import checkpoint_folder
    from lpn_arc.training import run_info

    tasks = load_arc(args.data, args.solutions, args.limit)
    seen = check_no_test_leak(checkpoint_folder(args.checkpoint), ckpt.config, tasks)
    out = Path(args.out) if args.out else output_folder(args.checkpoint, "eval")
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"checkpoint {args.checkpoint} (step {ckpt.step}); {len(tasks)} tasks from {args.data}, "
        f"{sum(t.num_test for t in tasks)} test inputs; allocator {allocator()}"
    )
    print(seen_line(seen))
    rows, queries = [], {}
    for text in searches:
        result = evaluate_arc(
            ckpt.graphdef,
            ckpt.params,
            tasks,
            parse_search(text, lr=args.lr, scale=args.scale, optimizer=args.optimizer),
            jax.random.key(args.seed),
            batch_size=args.batch_size or 4,
            candidates=args.candidates,
            pair_buckets=int_list(args.pair_buckets, "--pair-buckets"),
            size_buckets=None
            if args.size_buckets is None
            else int_list(args.size_buckets, "--size-buckets"),
            buckets=args.buckets == "on",
            larger=args.larger_tasks,
            stop=args.stop,
            start=args.start,
            attempt2=args.attempt2,
            progress=not args.no_progress,
        )
        validate_submission(result.submission, tasks)
        if result.metrics.get("too_large"):
            model = f"{ckpt.config.model.max_rows}x{ckpt.config.model.max_cols}"
            print(f"{text}: {result.metrics['too_large']} of {len(tasks)} tasks have a grid "
                  f"larger than the model's {model}: answered 1x1, scored wrong")  # fmt: skip
        folder = out if len(searches) == 1 else out / text.replace(":", "_")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "submission.json").write_text(json.dumps(result.submission))
        rows.append(result.metrics)
        queries[text] = result.queries
        print(f"wrote {folder / 'submission.json'}")
    print(format_table(rows, columns_of(args, ARC_COLUMNS)))
    report = {
        "checkpoint": str(args.checkpoint),
        "step": ckpt.step,
        "data": args.data,
        "seen_in_training": seen,
        "inference": {**inference_options(args), "lr": args.lr},
        "allocator": allocator(),
        "rows": rows,
        "queries": queries,
        "environment": {**run_info(ckpt.config), "eval_seed": args.seed},
    }
    (out / "results.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {out / 'results.json'}")
    return 0
