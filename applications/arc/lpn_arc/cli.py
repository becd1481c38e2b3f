"""The ``lpn-arc`` command: ``train``, ``eval`` and ``quickstart`` on the PATTERN task."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lpn_arc.allocator import allocator, reexec_with_fast_allocator

__all__ = ["allocator", "main"]


def _parser() -> argparse.ArgumentParser:
    from lpn_arc.config import PRESETS, add_override_arguments

    parser = argparse.ArgumentParser(
        prog="lpn-arc",
        description="Latent Program Networks on the PATTERN task: train, evaluate, quickstart.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train",
        help="train an LPN (Orbax checkpoints, resumable)",
        description="Train an LPN. Every configuration field can be overridden below.",
    )
    train.add_argument("--preset", default="pattern", choices=sorted(PRESETS))
    train.add_argument("--out", default="runs/train", help="run folder (default: runs/train)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument(
        "--dry-run", action="store_true", help="print the config and parameter count, then exit"
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_override_arguments(train)

    ev = sub.add_parser(
        "eval",
        help="evaluate a checkpoint with any search",
        description="Evaluate a trained run on held-out generated pattern tasks.",
    )
    ev.add_argument("--checkpoint", required=True, help="run folder written by train")
    ev.add_argument(
        "--search",
        action="append",
        help="mean | grad:K | sample:N | es:P:K | hybrid:N:K (repeatable; default mean)",
    )
    ev.add_argument("--lr", type=float, default=0.1, help="Adam lr of gradient search")
    ev.add_argument("--scale", type=float, default=0.5, help="std of sample/hybrid candidates")
    ev.add_argument("--tasks", type=int, default=None, help="number of test tasks")
    ev.add_argument("--density", type=float, default=None, help="pattern density of test tasks")
    ev.add_argument("--batch-size", type=int, default=32)
    ev.add_argument("--out", default=None, help="folder for results.json and plots")

    qs = sub.add_parser(
        "quickstart",
        help="train a small LPN on CPU and compare searches (make demo)",
        description="Train the quickstart recipe, then evaluate mean, grad:1/5/20/100 and "
        "sample:250 on held-out tasks; write results.json and plots.",
    )
    qs.add_argument("--out", default="runs/quickstart")
    qs.add_argument(
        "--minutes",
        type=float,
        default=9.5,
        help="training time limit in minutes (default 9.5; the 900 steps take ~8.5 on 2 cores)",
    )
    qs.add_argument("--tasks", type=int, default=None, help="number of test tasks")
    qs.add_argument("--no-progress", action="store_true")
    add_override_arguments(qs)
    return parser


def _test_tasks(config, num_tasks=None, density=None):
    import numpy as np

    from lpn_arc.pattern import generate_pattern_tasks
    from lpn_arc.train import pad_to_model

    data = config.data
    rng = np.random.default_rng(data.test_seed)
    tasks, _ = generate_pattern_tasks(
        rng,
        num_tasks or data.test_tasks,
        num_pairs=data.num_pairs,
        grid_size=data.grid_size,
        pattern_size=data.pattern_size,
        density=data.test_densities[-1] if density is None else density,
    )
    return pad_to_model(tasks, config)


def _evaluate_all(graphdef, params, tasks, searches, *, lr, scale, batch_size, progress):
    import jax

    from lpn_arc.evaluate import evaluate_tasks
    from lpn_arc.searchspec import parse_search

    rows, outputs = [], {}
    for text in searches:
        spec = parse_search(text, lr=lr, scale=scale)
        out = evaluate_tasks(
            graphdef,
            params,
            tasks,
            spec,
            jax.random.key(0),
            batch_size=batch_size,
            progress=progress,
        )
        rows.append(out.metrics)
        outputs[text] = out
    return rows, outputs


def _cmd_train(args) -> int:
    from lpn_arc.config import apply_overrides, config_to_dict, get_preset
    from lpn_arc.model import count_params
    from lpn_arc.train import init_params, train

    config = apply_overrides(get_preset(args.preset), args)
    if args.dry_run:
        import jax

        _, params = jax.eval_shape(lambda: init_params(config))
        print(json.dumps(config_to_dict(config), indent=2))
        print(f"parameters: {count_params(params):,}")
        return 0
    print(f"allocator: {allocator()}")
    result = train(config, args.out, resume=args.resume, progress=not args.no_progress)
    print(f"trained to step {result.step} in {result.seconds:.1f} s; checkpoints in {args.out}")
    return 0


def _cmd_eval(args) -> int:
    from lpn_arc.evaluate import format_table
    from lpn_arc.train import load_run

    config, graphdef, params, _, step = load_run(args.checkpoint)
    tasks = _test_tasks(config, args.tasks, args.density)
    searches = args.search or ["mean"]
    rows, _ = _evaluate_all(
        graphdef,
        params,
        tasks,
        searches,
        lr=args.lr,
        scale=args.scale,
        batch_size=args.batch_size,
        progress=True,
    )
    print(
        f"checkpoint {args.checkpoint} (step {step}), {len(tasks['inputs'])} test tasks, "
        f"allocator {allocator()}"
    )
    print(format_table(rows))
    report = {"checkpoint": str(args.checkpoint), "step": step, "rows": rows}
    print(json.dumps(report))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "results.json").write_text(json.dumps(report, indent=2))
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
    from lpn_arc.train import train

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
    }
    (out / "results.json").write_text(json.dumps(report, indent=2))
    plot_accuracy_vs_steps(rows, out / "accuracy_vs_steps.png")
    shown = interesting_tasks(outputs["mean"], outputs["grad:100"])
    plot_tasks(tasks, outputs["grad:100"], out / "tasks.png", indices=shown)
    plot_search_traces(outputs["grad:100"].traces, out / "search_traces.png")
    print(f"wrote {out / 'results.json'}, accuracy_vs_steps.png, tasks.png, search_traces.png")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lpn-arc`` console script."""
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = parser.parse_args(argv)  # --help and usage errors exit here, before the re-exec
    if from_command_line:  # never replace a calling Python program (tests, notebooks)
        reexec_with_fast_allocator([sys.executable, "-m", "lpn_arc", *argv])
    from lpn_arc.train import TrainingError

    started = time.perf_counter()
    try:
        command = {"train": _cmd_train, "eval": _cmd_eval, "quickstart": _cmd_quickstart}
        return command[args.command](args)
    except (ValueError, FileNotFoundError, TrainingError) as err:
        print(f"lpn-arc {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"lpn-arc {args.command}: interrupted after {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )
        return 130
