"""The ``lpn-arc`` command: ``train``, ``eval``, ``solve`` and ``quickstart``."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

from lpn_arc.allocator import allocator, reexec_with_fast_allocator

__all__ = ["allocator", "main"]


def _add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """``--start`` and ``--optimizer``, shared by eval and solve."""
    parser.add_argument(
        "--start",
        choices=("mean", "sample"),
        default="mean",
        help="start latent: the mean of the spec pairs' encoder means (default), or the mean "
        "of latents sampled from their posteriors (the official code)",
    )
    parser.add_argument(
        "--optimizer",
        choices=("clip-adam", "adam"),
        default="clip-adam",
        help="latent optimiser of gradient search: clip the gradient to norm 1 then Adam "
        "(b2 0.9, eps_root 1e-8; the official search, clipped per task; default), or Adam "
        "(b2 0.9) alone",
    )


def _parser() -> argparse.ArgumentParser:
    from lpn_arc.config import PRESETS, add_override_arguments

    parser = argparse.ArgumentParser(
        prog="lpn-arc",
        description="Latent Program Networks on ARC-AGI and the PATTERN task: train, "
        "evaluate (with an ARC Prize submission), solve one task, quickstart.",
        epilog="Exit status: 0 on success; 1 on an error in the data, options, checkpoints "
        "or memory, printed as one line (--debug shows the traceback); 2 on a usage error; "
        "130 when interrupted (train and quickstart write a checkpoint first).",
    )
    debug_help = "show the full traceback of an error instead of a one-line message"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    common = argparse.ArgumentParser(add_help=False)  # --debug also after the command
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train",
        parents=[common],
        help="train an LPN (Orbax checkpoints, resumable)",
        description="Train an LPN. Every configuration field can be overridden below. "
        "Ctrl-C stops after the current step with a checkpoint (exit status 130).",
    )
    train.add_argument("--preset", default="pattern", choices=sorted(PRESETS))
    train.add_argument("--out", default="runs/train", help="run folder (default: runs/train)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument(
        "--dry-run", action="store_true", help="print the config and parameter count, then exit"
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument(
        "--no-memory-check",
        action="store_true",
        help="do not stop when XLA's memory estimate of a step exceeds the memory available",
    )
    train.add_argument(
        "--data",
        dest="override_source",
        metavar="SOURCE",
        action="append",
        help="training data (repeatable; same as --source): pattern, arc1-train, arc1-eval, "
        "arc2-train, arc2-eval, a task JSON file, a folder of them or a challenges file. ARC "
        "tasks give their demonstration (train) pairs only; --include-test-pairs adds their "
        "test pairs (refused for arc1-eval and arc2-eval). --data arc1-train --data arc1-eval "
        "trains on the evaluation tasks' demonstrations (test-time training), never their "
        "test outputs",
    )
    train.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize() first (multi-host; settings from the cluster "
        "environment)",
    )
    add_override_arguments(train)

    ev = sub.add_parser(
        "eval",
        parents=[common],
        help="evaluate a checkpoint with any search (ARC: writes submission.json)",
        description="Evaluate a trained run. With --data, every test input of ARC tasks "
        "(spec = all train pairs) and write DIR/submission.json and DIR/results.json; "
        "without it, held-out generated PATTERN tasks of the run's configuration.",
    )
    ev.add_argument("--checkpoint", required=True, help="run folder written by train")
    ev.add_argument(
        "--data",
        default=None,
        help="arc1-train | arc1-eval | arc2-train | arc2-eval | a task JSON file | a folder of "
        "them | a challenges file (solutions found next to it, or --solutions)",
    )
    ev.add_argument("--solutions", default=None, help="solutions file of a challenges file")
    ev.add_argument("--limit", type=int, default=None, help="evaluate the first N tasks only")
    ev.add_argument(
        "--pair-buckets",
        default="3,5,10",
        help="ARC: padded spec sizes, one compilation each (default 3,5,10)",
    )
    ev.add_argument(
        "--size-buckets",
        default="10,20,30",
        help="ARC: padded grid sides of the spec pairs, one compilation each (default 10,20,30)",
    )
    ev.add_argument(
        "--candidates",
        type=int,
        default=4,
        help="ARC: distinct best latents decoded per test input for attempt 2 (default 4)",
    )
    ev.add_argument(
        "--search",
        action="append",
        help="mean | grad:K | sample:N | es:P:K | hybrid:N:K (repeatable; default mean)",
    )
    ev.add_argument("--lr", type=float, default=0.1, help="Adam lr of gradient search")
    ev.add_argument("--scale", type=float, default=0.5, help="std of sample/hybrid candidates")
    _add_inference_arguments(ev)
    ev.add_argument(
        "--attempt2",
        choices=("distinct", "official", "both"),
        default="distinct",
        help="attempt 2: the best candidate whose output differs from attempt 1 (distinct, "
        "default), the second-best latent visited (official), or distinct with the official "
        "rule's pass@2 reported too as pass2_official (both)",
    )
    ev.add_argument(
        "--holdout",
        choices=("last", "all"),
        default="last",
        help="PATTERN: predict the last pair of each task from the others (default), or each "
        "pair in turn (all: the official protocol, N predictions per task)",
    )
    ev.add_argument("--tasks", type=int, default=None, help="number of test tasks")
    ev.add_argument("--density", type=float, default=None, help="pattern density of test tasks")
    ev.add_argument(
        "--batch-size", type=int, default=None, help="queries per compiled call (32; ARC 4)"
    )
    ev.add_argument("--out", default=None, help="folder for results.json (and ARC submission.json)")

    solve = sub.add_parser(
        "solve",
        parents=[common],
        help="solve one ARC task and render it",
        description="Search, decode both attempts for every test input of one task, print "
        "them (and the truth when known) and render a PNG per test input.",
    )
    solve.add_argument(
        "task", help="a task JSON file, or DATASET/TASK_ID such as arc1-eval/00576224"
    )
    solve.add_argument("--checkpoint", required=True, help="run folder written by train")
    solve.add_argument("--search", default="grad:100", help="the search (default grad:100)")
    solve.add_argument("--lr", type=float, default=0.1, help="Adam lr of gradient search")
    solve.add_argument("--scale", type=float, default=0.5, help="std of sample candidates")
    _add_inference_arguments(solve)
    solve.add_argument("--out", default=None, help="folder of the PNGs (default: beside the run)")

    qs = sub.add_parser(
        "quickstart",
        parents=[common],
        help="train a small LPN on CPU and compare searches (make demo)",
        description="Train the quickstart recipe, then evaluate mean, grad:1/5/20/100 and "
        "sample:250 on held-out tasks; write results.json and plots.",
    )
    qs.add_argument("--out", default="runs/quickstart")
    qs.add_argument(
        "--minutes",
        type=float,
        default=9.5,
        help="training time limit in minutes (default 9.5; the 900 steps take ~4.5 on 2 cores)",
    )
    qs.add_argument("--tasks", type=int, default=None, help="number of test tasks")
    qs.add_argument("--no-progress", action="store_true")
    add_override_arguments(qs)
    return parser


def _test_tasks(config, num_tasks=None, density=None):
    from lpn_arc.train import pattern_test_tasks

    return pattern_test_tasks(config, num_tasks, density)


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
):
    import jax

    from lpn_arc.evaluate import evaluate_tasks
    from lpn_arc.searchspec import parse_search

    rows, outputs = [], {}
    for text in searches:
        spec = parse_search(text, lr=lr, scale=scale, optimizer=optimizer)
        out = evaluate_tasks(
            graphdef,
            params,
            tasks,
            spec,
            jax.random.key(0),
            batch_size=batch_size,
            start=start,
            attempt2=attempt2,
            holdout=holdout,
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


def _cmd_train(args) -> int:
    import jax

    from lpn_arc.config import apply_overrides, config_to_dict, get_preset
    from lpn_arc.model import count_params
    from lpn_arc.train import init_params, train

    if args.distributed:
        jax.distributed.initialize()

    config = apply_overrides(get_preset(args.preset), args)
    _, shapes = jax.eval_shape(lambda: init_params(config))
    if args.dry_run:
        print(json.dumps(config_to_dict(config), indent=2))
        print(f"parameters: {count_params(shapes):,}")
        return 0
    m, d = config.model, config.data
    print(
        f"preset {args.preset}: {count_params(shapes):,} parameters (enc {m.encoder_layers} / "
        f"dec {m.decoder_layers} layers, {m.num_heads}x{m.head_dim}, latent {m.latent_dim}, "
        f"{m.max_rows}x{m.max_cols}, {m.dtype}); data {_data_summary(d)}; batch "
        f"{config.batch_size} on {jax.device_count()} device(s); allocator {allocator()}"
    )
    result = train(
        config,
        args.out,
        resume=args.resume,
        progress=not args.no_progress,
        check_memory=not args.no_memory_check,
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


def _load_arc(source: str, solutions: str | None = None, limit: int | None = None):
    from lpn_arc.data import DATASETS, load_tasks

    if "/" in source and source.split("/", 1)[0] in DATASETS:  # DATASET/TASK_ID
        dataset, task_id = source.split("/", 1)
        tasks = [t for t in load_tasks(dataset) if t.task_id == task_id]
        if not tasks:
            raise ValueError(f"task {task_id!r} is not in {dataset}")
        return tasks
    return load_tasks(source, solutions=solutions, limit=limit)


def _cmd_eval(args) -> int:
    from lpn_arc.evaluate import format_table
    from lpn_arc.train import load_run, run_info

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    config, graphdef, params, _, step = load_run(args.checkpoint)
    searches = args.search or ["mean"]
    if args.data is not None:
        return _eval_arc(args, config, graphdef, params, step, searches)
    tasks = _test_tasks(config, args.tasks, args.density)
    rows, _ = _evaluate_all(
        graphdef,
        params,
        tasks,
        searches,
        lr=args.lr,
        scale=args.scale,
        batch_size=args.batch_size or 32,
        progress=True,
        **_inference_options(args),
        holdout=args.holdout,
    )
    print(
        f"checkpoint {args.checkpoint} (step {step}), {len(tasks['inputs'])} test tasks "
        f"(holdout {args.holdout}), start {args.start}, optimizer {args.optimizer}, "
        f"allocator {allocator()}"
    )
    print(format_table(rows, _columns(args)))
    report = {
        "checkpoint": str(args.checkpoint),
        "step": step,
        "inference": {**_inference_options(args), "holdout": args.holdout, "lr": args.lr},
        "rows": rows,
    }
    print(json.dumps(report))
    report["environment"] = {**run_info(config), "eval_seed": 0}
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "results.json").write_text(json.dumps(report, indent=2))
    return 0


ARC_COLUMNS = ("search", "tasks", "top1", "pass2", "pixel", "shape", "evaluations", "seconds")
PATTERN_COLUMNS = ("search", "top1", "pass2", "pixel", "shape", "evaluations")


def _inference_options(args) -> dict:
    """The inference choices of eval: start latent, optimiser and attempt-2 rule."""
    return {"start": args.start, "optimizer": args.optimizer, "attempt2": args.attempt2}


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
    import jax

    from lpn_arc.evaluate import evaluate_arc, format_table, validate_submission
    from lpn_arc.provenance import check_no_test_leak
    from lpn_arc.searchspec import parse_search
    from lpn_arc.train import run_info

    tasks = _load_arc(args.data, args.solutions, args.limit)
    check_no_test_leak(args.checkpoint, config, tasks)
    out = Path(args.out) if args.out else Path(args.checkpoint) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"checkpoint {args.checkpoint} (step {step}); {len(tasks)} tasks from {args.data}, "
        f"{sum(t.num_test for t in tasks)} test inputs; allocator {allocator()}"
    )
    rows, queries = [], {}
    for text in searches:
        result = evaluate_arc(
            graphdef,
            params,
            tasks,
            parse_search(text, lr=args.lr, scale=args.scale, optimizer=args.optimizer),
            jax.random.key(0),
            batch_size=args.batch_size or 4,
            candidates=args.candidates,
            pair_buckets=_int_list(args.pair_buckets, "--pair-buckets"),
            size_buckets=_int_list(args.size_buckets, "--size-buckets"),
            start=args.start,
            attempt2=args.attempt2,
            progress=True,
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
        "inference": {**_inference_options(args), "lr": args.lr},
        "allocator": allocator(),
        "rows": rows,
        "queries": queries,
        "environment": {**run_info(config), "eval_seed": 0},
    }
    (out / "results.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {out / 'results.json'}")
    return 0


def _format_grid(grid) -> str:
    return "\n".join("  " + " ".join(str(v) for v in row) for row in grid)


def _cmd_solve(args) -> int:
    import jax
    import numpy as np

    from lpn_arc.evaluate import evaluate_arc
    from lpn_arc.plots import plot_arc_solution
    from lpn_arc.provenance import check_no_test_leak
    from lpn_arc.searchspec import parse_search
    from lpn_arc.train import load_run

    tasks = _load_arc(args.task)
    if len(tasks) != 1:
        raise ValueError(f"{args.task} holds {len(tasks)} tasks; solve takes one task")
    task = tasks[0]
    config, graphdef, params, _, step = load_run(args.checkpoint)
    check_no_test_leak(args.checkpoint, config, [task])
    spec = parse_search(args.search, lr=args.lr, scale=args.scale, optimizer=args.optimizer)
    result = evaluate_arc(
        graphdef, params, [task], spec, jax.random.key(0), batch_size=1, start=args.start
    )
    out = Path(args.out) if args.out else Path(args.checkpoint) / "solve"
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


QUICKSTART_SEARCHES = ("mean", "grad:1", "grad:5", "grad:20", "grad:100", "sample:250")


def _cmd_quickstart(args) -> int:
    import shutil

    from lpn_arc.config import apply_overrides, get_preset
    from lpn_arc.evaluate import format_table
    from lpn_arc.model import count_params
    from lpn_arc.plots import (
        interesting_tasks,
        plot_accuracy_vs_steps,
        plot_search_traces,
        plot_tasks,
    )
    from lpn_arc.train import run_info, train

    config = apply_overrides(get_preset("quickstart"), args)
    out = Path(args.out)
    if (out / "checkpoints").exists():
        shutil.rmtree(out / "checkpoints")
    d, m = config.data, config.model
    print(
        f"quickstart: PATTERN {d.grid_size}x{d.grid_size} grids, {d.pattern_size}x"
        f"{d.pattern_size} patterns; model {m.encoder_layers}+{m.decoder_layers} layers, "
        f"{m.num_heads}x{m.head_dim}, latent {m.latent_dim}; batch {config.batch_size}, AdamW "
        f"{config.lr:g} ({config.lr_schedule}), training search {config.train_search}; "
        f"up to {config.steps} steps / {args.minutes:g} min; allocator {allocator()}"
    )
    result = train(config, out, progress=not args.no_progress, max_seconds=60 * args.minutes)
    if result.interrupted:
        print(
            f"lpn-arc quickstart: interrupted at step {result.step}; checkpoint written to {out}",
            file=sys.stderr,
        )
        return 130
    tasks = _test_tasks(config, args.tasks)
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
    print(
        f"\n{len(tasks['inputs'])} held-out tasks, trained {result.step} steps in "
        f"{result.seconds:.0f} s"
    )
    print(format_table(rows))
    report = {
        "params": count_params(result.params),
        "train_seconds": result.seconds,
        "train_steps": result.step,
        "allocator": allocator(),
        "rows": [
            {k: r[k] for k in ("search", "top1", "pass2", "pixel", "shape", "evaluations")}
            for r in rows
        ],
        "environment": {**run_info(config), "eval_seed": 0},
    }
    (out / "results.json").write_text(json.dumps(report, indent=2))
    plot_accuracy_vs_steps(rows, out / "accuracy_vs_steps.png")
    shown = interesting_tasks(outputs["mean"], outputs["grad:100"])
    plot_tasks(tasks, outputs["grad:100"], out / "tasks.png", indices=shown)
    plot_search_traces(outputs["grad:100"].traces, out / "search_traces.png")
    print(f"wrote {out / 'results.json'}, accuracy_vs_steps.png, tasks.png, search_traces.png")
    return 0


def _user_error(err: BaseException) -> bool:
    """Errors a user can cause (bad data, options, files, memory): one line, no traceback."""
    from lpn_arc.train import TrainingError

    if isinstance(err, (ValueError, OSError, TrainingError)):
        return True
    return "RESOURCE_EXHAUSTED" in str(err)  # XLA out of memory


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 2000 else text[:1997] + "..."


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lpn-arc`` console script.

    Exit status: 0 on success, 1 on an error a user can cause (bad data or options, a
    missing or unreadable checkpoint, a step that cannot fit in memory, a non-finite loss),
    printed as one line ``lpn-arc COMMAND: error: ...`` (``--debug`` shows the traceback);
    2 on a usage error; 130 when interrupted (training writes a checkpoint first). Anything
    else is a bug and keeps its traceback.
    """
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = parser.parse_args(argv)  # --help and usage errors exit here, before the re-exec
    if from_command_line:  # never replace a calling Python program (tests, notebooks)
        reexec_with_fast_allocator([sys.executable, "-m", "lpn_arc", *argv])
    prefix = f"lpn-arc {args.command}"

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{prefix}: warning: {_one_line(message)}", file=sys.stderr)

    started = time.perf_counter()
    try:
        command = {
            "train": _cmd_train,
            "eval": _cmd_eval,
            "solve": _cmd_solve,
            "quickstart": _cmd_quickstart,
        }
        with warnings.catch_warnings():
            if not args.debug:
                warnings.showwarning = show_warning
            return command[args.command](args)
    except KeyboardInterrupt:
        print(
            f"{prefix}: interrupted after {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )
        return 130
    except Exception as err:
        if args.debug or not _user_error(err):
            raise
        print(f"{prefix}: error: {_one_line(err)}", file=sys.stderr)
        return 1
