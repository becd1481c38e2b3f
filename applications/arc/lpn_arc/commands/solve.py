"""``lpn-arc solve`` (one task, printed and rendered) and ``lpn-arc models``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lpn_arc.commands.common import (
    load_arc,
    output_folder,
    seen_line,
)


def _pattern_task(config, text: str):
    """``pattern:K``: the K-th held-out PATTERN task of ``config`` as an ``ArcTask`` (its
    last pair is the test pair)."""
    import numpy as np

    from lpn_arc.data import ArcTask, pattern_test_tasks

    index = text.removeprefix("pattern:")
    if not index.isdigit():
        raise ValueError(f"task {text!r}: expected pattern:K with K a task number (0, 1...)")
    if not config.data.is_pattern:
        raise ValueError(f"task {text!r}: this checkpoint was not trained on PATTERN tasks")
    k = int(index)
    tasks = pattern_test_tasks(config, k + 1)
    grids = []
    for i in range(tasks.inputs.shape[1]):
        (ri, ci), (ro, co) = tasks.input_shapes[k, i], tasks.output_shapes[k, i]
        grids.append((np.asarray(tasks.inputs[k, i, :ri, :ci], np.int8),
                      np.asarray(tasks.outputs[k, i, :ro, :co], np.int8)))  # fmt: skip
    return ArcTask(f"pattern-{k}", tuple(grids[:-1]), (grids[-1][0],), (grids[-1][1],), text)


def _format_grid(grid) -> str:
    return "\n".join("  " + " ".join(str(v) for v in row) for row in grid)


def run_solve(args: argparse.Namespace) -> int:
    """``lpn-arc solve``: one ARC task, printed and rendered (a PNG per test input)."""
    import jax
    import numpy as np

    from lpn_arc.config import parse_search
    from lpn_arc.data import check_no_test_leak
    from lpn_arc.evaluation import evaluate_arc
    from lpn_arc.plots import plot_arc_solution
    from lpn_arc.pretrained import checkpoint_folder, load_checkpoint

    if args.task.startswith("pattern:"):  # a held-out task of the checkpoint's own kind
        ckpt = load_checkpoint(args.checkpoint)
        task = _pattern_task(ckpt.config, args.task)
    else:
        tasks = load_arc(args.task)
        if len(tasks) != 1:
            raise ValueError(f"{args.task} holds {len(tasks)} tasks; solve takes one task")
        task = tasks[0]
        ckpt = load_checkpoint(args.checkpoint)
        folder = checkpoint_folder(args.checkpoint)
        print(seen_line(check_no_test_leak(folder, ckpt.config, [task])))
    spec = parse_search(args.search, lr=args.lr, scale=args.scale, optimizer=args.optimizer)
    result = evaluate_arc(
        ckpt.graphdef, ckpt.params, [task], spec, jax.random.key(args.seed), batch_size=1,
        start=args.start, buckets=args.buckets == "on", stop=args.stop,
    )  # fmt: skip
    out = Path(args.out) if args.out else output_folder(args.checkpoint, "solve")
    print(
        f"task {task.task_id}: {len(task.train)} spec pairs, search {spec.text}, "
        f"checkpoint step {ckpt.step}"
    )
    for i, (x, y) in enumerate(task.train):
        print(f"spec {i} input:\n{_format_grid(x)}\nspec {i} output:\n{_format_grid(y)}")
    for q, record in enumerate(result.queries):
        truth = None if task.test_outputs is None else task.test_outputs[q]
        print(f"test {q} input:\n{_format_grid(task.test_inputs[q])}")
        for name in ("attempt_1", "attempt_2"):
            print(f"test {q} {name.replace('_', ' ')}:\n{_format_grid(record[name])}")
        if truth is not None:
            print(f"test {q} truth:\n{_format_grid(truth)}")
            print(
                f"test {q}: top-1 {'right' if record['top1'] else 'wrong'}, pass@2 "
                f"{'right' if record['pass2'] else 'wrong'}"
            )
        path = plot_arc_solution(
            task.train,
            task.test_inputs[q],
            [np.asarray(record["attempt_1"]), np.asarray(record["attempt_2"])],
            out / f"{task.task_id}_test{q}.png",
            truth=truth,
            title=f"{task.task_id} test {q} ({spec.text})",
        )
        print(f"wrote {path}")
    return 0


def run_models(args: argparse.Namespace) -> int:
    """``lpn-arc models``: the shipped pretrained models, one line each (``--json``: cards)."""
    from lpn_arc.pretrained import list_pretrained

    cards = list_pretrained()
    if args.json:
        print(json.dumps(cards, indent=2))
        return 0
    if not cards:
        print("no pretrained models are installed")
        return 0
    width = max(len(card["name"]) for card in cards)
    for card in cards:
        print(f"{card['name']:<{width}}  {card['summary']}")
    print("use one with --checkpoint pretrained:NAME (lpn-arc eval, solve); "
          "lpn-arc models --json prints each card")  # fmt: skip
    return 0
