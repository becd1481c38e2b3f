"""What each ``lpn-arc`` command does (the command line itself is :mod:`lpn_arc.cli`).

Every ``run_*`` function takes the parsed arguments and returns the exit status. The
packages they use are imported inside them, so ``lpn-arc --help`` stays quick.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lpn_arc.allocator import allocator

__all__ = [
    "QUICKSTART_SEARCHES",
    "load_arc",
    "run_data",
    "run_eval",
    "run_explore",
    "run_models",
    "run_quickstart",
    "run_solve",
    "run_train",
]


def _evaluate_all(
    graphdef,
    params,
    tasks,
    searches,
    *,
    lr,
    scale,
    batch_size,
    progress,
    optimizer="clip-adam",
    start="mean",
    attempt2="distinct",
    holdout="last",
    stop="none",
    seed=0,
):
    """Each search of ``searches`` on the stacked ``tasks``: ``(metrics rows, outputs)``."""
    import jax

    from lpn_arc.config import parse_search
    from lpn_arc.evaluation import evaluate_tasks

    rows, outputs = [], {}
    for text in searches:
        spec = parse_search(text, lr=lr, scale=scale, optimizer=optimizer)
        out = evaluate_tasks(
            graphdef,
            params,
            tasks,
            spec,
            jax.random.key(seed),
            batch_size=batch_size,
            start=start,
            attempt2=attempt2,
            holdout=holdout,
            stop=stop,
            progress=progress,
        )
        rows.append(out.metrics)
        outputs[text] = out
    return rows, outputs


def _data_summary(data) -> str:
    """``arc1-train (train pairs) + re-arc FOLDER`` or ``pattern``."""
    if data.is_pattern:
        return "pattern"
    pairs = "train+test pairs" if data.include_test_pairs else "train pairs only"
    parts = [f"{', '.join(data.sources)} ({pairs})"] if data.sources else []
    return " + ".join(parts + ([f"re-arc {data.rearc}"] if data.rearc else []))


def run_train(args: argparse.Namespace) -> int:
    """``lpn-arc train``: a preset (or a saved config) with overrides, trained (or printed
    with ``--dry-run``)."""
    import jax

    from lpn_arc.config import apply_overrides, config_to_dict
    from lpn_arc.model import count_params
    from lpn_arc.training import init_params, train

    if args.distributed:
        jax.distributed.initialize()
    config = apply_overrides(_base_config(args), args)
    _, shapes = jax.eval_shape(lambda: init_params(config))
    if args.dry_run:
        print(json.dumps(config_to_dict(config), indent=2))
        print(f"parameters: {count_params(shapes):,}")
        return 0
    _clear_run(Path(args.out), args)
    m, d = config.model, config.data
    print(
        f"{args.preset or args.config}: {count_params(shapes):,} parameters (enc "
        f"{m.encoder_layers} / dec {m.decoder_layers} layers, {m.num_heads}x{m.head_dim}, "
        f"latent {m.latent_dim}, {m.max_rows}x{m.max_cols}, {m.dtype}); data "
        f"{_data_summary(d)}; {config.steps} steps of batch {config.batch_size} on "
        f"{jax.device_count()} device(s); allocator {allocator()}"
    )
    result = train(
        config,
        args.out,
        resume=args.resume,
        progress=not args.no_progress,
        log_lines=args.no_progress,
        check_memory=not args.no_memory_check,
        validate=_validator(config),
        tensorboard=args.tensorboard,
    )
    if result.interrupted:
        print(
            f"lpn-arc train: interrupted at step {result.step}; checkpoint written to "
            f"{args.out}; continue with --resume",
            file=sys.stderr,
        )
        return 130
    print(f"trained to step {result.step} in {result.seconds:.1f} s; checkpoints in {args.out}")
    return 0


def _base_config(args):
    """The preset of ``--preset``, or the saved configuration of ``--config``."""
    from lpn_arc.config import PRESETS, config_from_dict, get_preset

    if args.preset and args.config:
        raise ValueError("give --preset or --config, not both")
    if args.config:
        try:
            payload = json.loads(Path(args.config).read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"--config {args.config}: cannot read it ({err})") from None
        return config_from_dict(payload)
    if not args.preset:
        raise ValueError(
            "choose what to train with --preset (quickstart: minutes on a CPU; arc-cpu: about "
            "two hours; pattern, pattern-ood, arc-paper, arc-repo, arc-small, arc-overfit: the "
            f"paper-scale ones need an accelerator; all: {', '.join(sorted(PRESETS))}; "
            "--dry-run prints one's configuration and parameter count) or --config RUN/config.json"
        )
    return get_preset(args.preset)


def _clear_run(out: Path, args) -> None:
    """``--overwrite``: removes the run's checkpoints; otherwise nothing is ever deleted."""
    import shutil

    if getattr(args, "overwrite", False):
        if args.resume:
            raise ValueError("give --resume or --overwrite, not both")
        for name in ("checkpoints", "best", "corrupt_checkpoints", "tensorboard"):
            if (out / name).exists():
                shutil.rmtree(out / name)


def _validator(config):
    """The held-out validation of a run that asks for it."""
    if not config.validate_every:
        return None
    from lpn_arc.evaluation import validator

    return validator(config)


def load_arc(source: str, solutions: str | None = None, limit: int | None = None) -> list[Any]:
    """:func:`lpn_arc.data.load_tasks`, plus ``DATASET/TASK_ID`` (``arc1-eval/00576224``)."""
    from lpn_arc.data import DATASETS, load_tasks

    if "/" in source and source.split("/", 1)[0] in DATASETS:  # DATASET/TASK_ID
        dataset, task_id = source.split("/", 1)
        tasks = [t for t in load_tasks(dataset) if t.task_id == task_id]
        if not tasks:
            raise ValueError(f"task {task_id!r} is not in {dataset}")
        return tasks
    return load_tasks(source, solutions=solutions, limit=limit)


def run_eval(args: argparse.Namespace) -> int:
    """``lpn-arc eval``: a checkpoint on held-out PATTERN tasks, or on ARC tasks (``--data``)."""
    from lpn_arc.data import pattern_test_tasks, seen_programs
    from lpn_arc.evaluation import format_table
    from lpn_arc.pretrained import load_checkpoint
    from lpn_arc.training import run_info

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    config, graphdef, params, step = load_checkpoint(args.checkpoint)
    searches = args.search or ["mean"]
    if args.data is not None:
        return _eval_arc(args, config, graphdef, params, step, searches)
    tasks = pattern_test_tasks(config, args.tasks, args.density)
    rows, _ = _evaluate_all(
        graphdef,
        params,
        tasks,
        searches,
        lr=args.lr,
        scale=args.scale,
        batch_size=args.batch_size or 32,
        progress=not args.no_progress,
        seed=args.seed,
        **_inference_options(args),
        holdout=args.holdout,
    )
    seen = seen_programs(config, step, tasks)
    print(
        f"checkpoint {args.checkpoint} (step {step}), {len(tasks['inputs'])} test tasks "
        f"(holdout {args.holdout}), start {args.start}, optimizer {args.optimizer}, "
        f"allocator {allocator()}"
    )
    print(_programs_line(seen))
    print(format_table(rows, _columns(args)))
    report = {
        "checkpoint": str(args.checkpoint),
        "step": step,
        "seen_in_training": seen,
        "inference": {**_inference_options(args), "holdout": args.holdout, "lr": args.lr},
        "rows": rows,
    }
    print(json.dumps(report))
    report["environment"] = {**run_info(config), "eval_seed": args.seed}
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "results.json").write_text(json.dumps(report, indent=2))
    return 0


ARC_COLUMNS = ("search", "tasks", "top1", "pass2", "pixel", "shape", "evaluations", "seconds")
PATTERN_COLUMNS = ("search", "top1", "pass2", "pixel", "shape", "evaluations")


def _inference_options(args) -> dict:
    """The inference choices of eval: start latent, optimiser, attempt-2 rule and stopping."""
    return {"start": args.start, "optimizer": args.optimizer, "attempt2": args.attempt2,
            "stop": args.stop}  # fmt: skip


def _columns(args, columns=PATTERN_COLUMNS) -> tuple[str, ...]:
    """The table's columns, with the official rule's pass@2 after pass2 when asked."""
    if args.attempt2 != "both":
        return columns
    at = columns.index("pass2") + 1
    return (*columns[:at], "pass2_official", *columns[at:])


def _int_list(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise ValueError(f"{option} must be positive integers separated by commas, got {text!r}")
    return values


def _eval_arc(args, config, graphdef, params, step, searches) -> int:
    """``lpn-arc eval --data``: every test input of ARC tasks, a submission per search."""
    import jax

    from lpn_arc.config import parse_search
    from lpn_arc.data import check_no_test_leak
    from lpn_arc.evaluation import evaluate_arc, format_table, validate_submission
    from lpn_arc.pretrained import checkpoint_folder
    from lpn_arc.training import run_info

    tasks = load_arc(args.data, args.solutions, args.limit)
    seen = check_no_test_leak(checkpoint_folder(args.checkpoint), config, tasks)
    out = Path(args.out) if args.out else _output_folder(args.checkpoint, "eval")
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"checkpoint {args.checkpoint} (step {step}); {len(tasks)} tasks from {args.data}, "
        f"{sum(t.num_test for t in tasks)} test inputs; allocator {allocator()}"
    )
    print(_seen_line(seen))
    rows, queries = [], {}
    for text in searches:
        result = evaluate_arc(
            graphdef,
            params,
            tasks,
            parse_search(text, lr=args.lr, scale=args.scale, optimizer=args.optimizer),
            jax.random.key(args.seed),
            batch_size=args.batch_size or 4,
            candidates=args.candidates,
            pair_buckets=_int_list(args.pair_buckets, "--pair-buckets"),
            size_buckets=_int_list(args.size_buckets, "--size-buckets"),
            buckets=args.buckets == "on",
            larger=args.larger_tasks,
            stop=args.stop,
            start=args.start,
            attempt2=args.attempt2,
            progress=not args.no_progress,
        )
        validate_submission(result.submission, tasks)
        folder = out if len(searches) == 1 else out / text.replace(":", "_")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "submission.json").write_text(json.dumps(result.submission))
        rows.append(result.metrics)
        queries[text] = result.queries
        print(f"wrote {folder / 'submission.json'}")
    print(format_table(rows, _columns(args, ARC_COLUMNS)))
    report = {
        "checkpoint": str(args.checkpoint),
        "step": step,
        "data": args.data,
        "seen_in_training": seen,
        "inference": {**_inference_options(args), "lr": args.lr},
        "allocator": allocator(),
        "rows": rows,
        "queries": queries,
        "environment": {**run_info(config), "eval_seed": args.seed},
    }
    (out / "results.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {out / 'results.json'}")
    return 0


def _programs_line(seen: dict) -> str:
    """What a PATTERN run's training drew of the evaluated programs, in one line."""
    share = seen["seen_programs"]
    kind = "held-out programs" if share == 0 else "NOT a generalisation result: seen programs"
    return (
        f"{seen['evaluated_programs']} evaluated programs, {100 * share:.1f}% drawn in training "
        f"(split {seen['split']}): {kind}"
    )


def _seen_line(seen: dict) -> str:
    """What training saw of the scored ARC tasks, in one line."""
    k, n = seen["demonstrations_in_training"], seen["tasks"]
    if k == 0:
        return f"training saw no pair of the {n} scored task(s): a held-out result"
    return (
        f"training saw the demonstrations of {k} of the {n} scored task(s) (never their test "
        "pairs): the test-time-training setting"
    )


def _output_folder(checkpoint: str, name: str) -> Path:
    """Where a command writes by default: inside the run folder, or ``pretrained-NAME/``
    in the current folder for a shipped model (never inside the installed package)."""
    from lpn_arc.pretrained import pretrained_name

    shipped = pretrained_name(checkpoint)
    return (Path(f"pretrained-{shipped}") if shipped else Path(checkpoint)) / name


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
    for i in range(tasks["inputs"].shape[1]):
        (ri, ci), (ro, co) = tasks["input_shapes"][k, i], tasks["output_shapes"][k, i]
        grids.append((np.asarray(tasks["inputs"][k, i, :ri, :ci], np.int8),
                      np.asarray(tasks["outputs"][k, i, :ro, :co], np.int8)))  # fmt: skip
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
        config, graphdef, params, step = load_checkpoint(args.checkpoint)
        task = _pattern_task(config, args.task)
    else:
        tasks = load_arc(args.task)
        if len(tasks) != 1:
            raise ValueError(f"{args.task} holds {len(tasks)} tasks; solve takes one task")
        task = tasks[0]
        config, graphdef, params, step = load_checkpoint(args.checkpoint)
        print(_seen_line(check_no_test_leak(checkpoint_folder(args.checkpoint), config, [task])))
    spec = parse_search(args.search, lr=args.lr, scale=args.scale, optimizer=args.optimizer)
    result = evaluate_arc(
        graphdef, params, [task], spec, jax.random.key(args.seed), batch_size=1, start=args.start,
        buckets=args.buckets == "on", stop=args.stop,
    )  # fmt: skip
    out = Path(args.out) if args.out else _output_folder(args.checkpoint, "solve")
    print(
        f"task {task.task_id}: {len(task.train)} spec pairs, search {spec.text}, "
        f"checkpoint step {step}"
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


QUICKSTART_SEARCHES = ("mean", "grad:1", "grad:5", "grad:20", "grad:100", "sample:250")


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
    _clear_run(out, args)
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
    rows, outputs = _evaluate_all(
        result.graphdef,
        result.params,
        tasks,
        QUICKSTART_SEARCHES,
        lr=0.1,
        scale=0.5,
        batch_size=32,
        progress=not args.no_progress,
    )
    seen = seen_programs(config, result.step, tasks)
    print(
        f"\n{len(tasks['inputs'])} held-out tasks, trained {result.step} steps in "
        f"{result.seconds:.0f} s"
    )
    print(_programs_line(seen))
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
        "environment": {**run_info(config), "eval_seed": args.seed},
    }
    (out / "results.json").write_text(json.dumps(report, indent=2))
    plot_accuracy_vs_steps(rows, out / "accuracy_vs_steps.png")
    shown = interesting_tasks(outputs["mean"], outputs["grad:100"])
    plot_tasks(tasks, outputs["grad:100"], out / "tasks.png", indices=shown)
    plot_search_traces(outputs["grad:100"].traces, out / "search_traces.png")
    print(f"wrote {out / 'results.json'}, accuracy_vs_steps.png, tasks.png, search_traces.png")
    return 0


def run_data(args: argparse.Namespace) -> int:
    """``lpn-arc data pattern``: generated PATTERN tasks of one split as an ARC task file."""
    import dataclasses

    from lpn_arc.config import get_preset
    from lpn_arc.data import SPLIT_RULE
    from lpn_arc.data.export import pattern_task_file

    data = get_preset(args.preset).data
    changes = {k: getattr(args, k) for k in ("grid_size", "pattern_size", "density", "num_pairs")}
    data = dataclasses.replace(data, **{k: v for k, v in changes.items() if v is not None})
    tasks = pattern_task_file(data, args.split, args.tasks, args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(tasks))
    print(
        f"wrote {len(tasks)} {args.split} tasks ({data.grid_size}x{data.grid_size} grids, "
        f"{data.pattern_size}x{data.pattern_size} patterns, density {data.density:g}, "
        f"{data.num_pairs} pairs) to {out}; split rule: {SPLIT_RULE}"
    )
    return 0


def run_explore(args: argparse.Namespace) -> int:
    """``lpn-arc explore``: the latent-space explorer, served until Ctrl-C."""
    import time
    import webbrowser

    try:
        from lpn_arc.explorer import Explorer, offered_tasks, serve
    except ImportError as err:
        raise ValueError(
            f"lpn-arc explore needs its web server ({err.name} is missing): "
            "pip install 'lpn-arc[explore]'"
        ) from None
    from lpn_arc.pretrained import checkpoint_folder, load_checkpoint

    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port must be in 1..65535, got {args.port}")
    started = time.perf_counter()
    config, graphdef, params, step = load_checkpoint(args.checkpoint)
    tasks = offered_tasks(config, args.tasks, args.data)
    if not config.data.is_pattern or args.data is not None:  # ARC tasks with their answers
        from lpn_arc.data import check_no_test_leak

        offered = load_arc(args.data or "arc1-eval")
        print(_seen_line(check_no_test_leak(checkpoint_folder(args.checkpoint), config, offered)))
    explorer = Explorer(config, graphdef, params, tasks, name=args.checkpoint, step=step)
    url = f"http://{'localhost' if args.host in ('127.0.0.1', '::1') else args.host}:{args.port}/"

    def ready():
        print(
            f"explorer of {args.checkpoint} (step {step}, {len(tasks)} tasks) ready in "
            f"{time.perf_counter() - started:.1f} s at {url} (Ctrl-C stops it)",
            flush=True,
        )
        if args.open:
            webbrowser.open(url)

    serve(explorer, args.host, args.port, on_ready=ready)
    return 0
