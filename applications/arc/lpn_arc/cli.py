"""The ``lpn-arc`` command: ``train``, ``eval``, ``solve``, ``models``, ``quickstart``,
``explore`` and ``data``.

This module builds the command line (one parser per command) and runs a command with the
error handling every command shares (:func:`main`); what each command does is in
:mod:`lpn_arc.commands`.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

from lpn_arc import commands
from lpn_arc.allocator import allocator, reexec_with_fast_allocator
from lpn_arc.config import PRESETS, add_override_arguments

__all__ = ["allocator", "main"]


CHECKPOINT_HELP = (
    "run folder written by train, or pretrained:NAME for a shipped model (lpn-arc models)"
)

_SHARED: dict[str, dict] = {
    "checkpoint": {"required": True, "help": CHECKPOINT_HELP},
    "resume": {"action": "store_true", "help": "continue the run in --out"},
    "overwrite": {"action": "store_true", "help": "delete the run in --out and start again"},
    "no-progress": {"action": "store_true", "help": "no progress bars"},
    "tasks": {"type": int, "default": None, "help": "number of test tasks"},
    "seed": {"type": int, "default": 0, "help": "seed of sampled starts and searches (default 0)"},
    "lr": {"type": float, "default": 0.1, "help": "Adam lr of gradient search"},
    "scale": {"type": float, "default": 0.5, "help": "std of sampled candidates"},
}
"""The options several commands declare, by name: one meaning (type, default, help) each,
which a command may change (:func:`_shared`)."""


def _shared(parser: argparse.ArgumentParser, name: str, **changes) -> None:
    """Adds the shared option ``--name`` (:data:`_SHARED`) to ``parser``, with ``changes``
    (another default or help) applied."""
    parser.add_argument(f"--{name}", **{**_SHARED[name], **changes})


_COMMANDS: dict[str, tuple[str, str]] = {
    "train": (
        "train an LPN (Orbax checkpoints, resumable)",
        "Train an LPN. Every configuration field can be overridden below. "
        "Ctrl-C stops after the current step with a checkpoint (exit status 130).",
    ),
    "eval": (
        "evaluate a checkpoint with any search (ARC: writes submission.json)",
        "Evaluate a trained run. With --data, every test input of ARC tasks "
        "(spec = all train pairs) and write DIR/submission.json and DIR/results.json; "
        "without it, held-out generated PATTERN tasks of the run's configuration.",
    ),
    "solve": (
        "solve one ARC task and render it",
        "Search, decode both attempts for every test input of one task, print "
        "them (and the truth when known) and render a PNG per test input.",
    ),
    "models": (
        "list the pretrained models shipped with lpn-arc (offline)",
        "List the pretrained models shipped inside the package, one line each; "
        "use one with --checkpoint pretrained:NAME.",
    ),
    "quickstart": (
        "train a small LPN on CPU and compare searches (make demo)",
        "Train the quickstart recipe, then evaluate mean, grad:1/5/20/100 and "
        "sample:250 on held-out tasks; write results.json and plots.",
    ),
    "explore": (
        "an interactive latent-space explorer in the browser (local web app)",
        "Serve a local web page to explore a model's latent space: pick a "
        "held-out task (or load an ARC task file, or edit the grids by clicking cells), see "
        "the pairs' latents and their aggregate in a 2-D PCA view, run gradient, random, ES "
        "or hybrid search step by step, click the view to decode any latent and show the "
        "log-likelihood landscape. Runs offline; stop it with Ctrl-C.",
    ),
    "data": (
        "write generated tasks as an ARC task file",
        "Write generated tasks in the ARC task-file format, to score other "
        "systems on them or to check the program split.",
    ),
}
"""Each command's one-line help (``lpn-arc --help``) and description (``lpn-arc COMMAND
--help``), in the order listed."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lpn-arc",
        description="Latent Program Networks on ARC-AGI and the PATTERN task: train, "
        "evaluate (with an ARC Prize submission), solve one task, list the shipped "
        "pretrained models, quickstart, explore latent space in the browser.",
        epilog="Exit status: 0 on success; 1 on an error in the data, options, checkpoints "
        "or memory, printed as one line (--debug shows the traceback); 2 on a usage error; "
        "130 when interrupted (train and quickstart write a checkpoint first).",
    )
    debug_help = "show the full traceback of an error instead of a one-line message"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    common = argparse.ArgumentParser(add_help=False)  # --debug also after the command
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    options = {
        "train": _train_options,
        "eval": _eval_options,
        "solve": _solve_options,
        "models": _models_options,
        "quickstart": _quickstart_options,
        "explore": _explore_options,
        "data": lambda parser: _data_options(parser, common),
    }
    for name, (summary, description) in _COMMANDS.items():
        command = sub.add_parser(name, parents=[common], help=summary, description=description)
        options[name](command)
    return parser


def _train_options(train: argparse.ArgumentParser) -> None:
    train.add_argument(
        "--preset",
        default=None,
        choices=sorted(PRESETS),
        help="the configuration to start from (required unless --config): quickstart and "
        "arc-cpu train on this CPU in minutes to hours; pattern, pattern-ood, arc-paper and "
        "arc-repo are the paper's and take days to weeks without an accelerator",
    )
    train.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="re-run a saved configuration (RUN/config.json); the overrides below apply on top",
    )
    train.add_argument("--out", default="runs/train", help="run folder (default: runs/train)")
    _shared(train, "resume")
    _shared(train, "overwrite", help="delete the checkpoints already in --out and start again "
            "(never done otherwise)")  # fmt: skip
    train.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard events to OUT/tensorboard (pip install "
        "'lpn-arc[tensorboard]'); metrics.jsonl and metrics.csv are always written",
    )
    train.add_argument(
        "--dry-run", action="store_true", help="print the config and parameter count, then exit"
    )
    _shared(train, "no-progress", help="no progress bar: a plain line (step, loss, tasks/s, "
            "time left) per metrics record")  # fmt: skip
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


def _eval_options(ev: argparse.ArgumentParser) -> None:
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
        default=None,
        help="ARC: the ladder of padded rows and columns (default: a third, two thirds and "
        "all of the model's size: 10,20,30 at 30x30, 4,7,10 at 10x10)",
    )
    ev.add_argument(
        "--larger-tasks",
        choices=("error", "unsolved"),
        default="unsolved",
        help="ARC: a task with a grid larger than the model's is answered with a 1x1 grid and "
        "scored wrong (unsolved, default; counted and printed as too_large), or is an error",
    )
    ev.add_argument(
        "--candidates",
        type=int,
        default=4,
        help="ARC: distinct best latents decoded per test input for attempt 2 (default 4)",
    )
    _add_search_options(ev, default=None, repeatable=True)
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
    _shared(ev, "tasks")
    ev.add_argument("--density", type=float, default=None, help="pattern density of test tasks")
    ev.add_argument(
        "--batch-size", type=int, default=None, help="queries per compiled call (32; ARC 4)"
    )
    ev.add_argument("--out", default=None, help="folder for results.json (and ARC submission.json)")


def _solve_options(solve: argparse.ArgumentParser) -> None:
    solve.add_argument(
        "task",
        help="a task JSON file, DATASET/TASK_ID such as arc1-eval/00576224, or pattern:K "
        "(held-out PATTERN task K of a pattern checkpoint)",
    )
    _add_search_options(solve, default="grad:100", repeatable=False)
    solve.add_argument("--out", default=None, help="folder of the PNGs (default: beside the run)")


def _models_options(models: argparse.ArgumentParser) -> None:
    models.add_argument(
        "--json", action="store_true", help="print each model's card (config, training "
        "command, data, measured accuracy) as JSON",
    )  # fmt: skip


def _quickstart_options(qs: argparse.ArgumentParser) -> None:
    qs.add_argument("--out", default="runs/quickstart")
    qs.add_argument(
        "--minutes",
        type=float,
        default=9.5,
        help="training time limit in minutes (default 9.5; the 900 steps take ~4.5 on 2 cores)",
    )
    _shared(qs, "tasks")
    _shared(qs, "no-progress", help="plain log lines instead of progress bars")
    _shared(qs, "resume")
    _shared(qs, "overwrite")
    add_override_arguments(qs)


def _explore_options(ex: argparse.ArgumentParser) -> None:
    default = "pretrained:pattern-6x6-grad1"
    _shared(ex, "checkpoint", required=False, default=default,
            help=f"{CHECKPOINT_HELP} (default {default})")  # fmt: skip
    ex.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it "
        "to the network)",
    )
    ex.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    _shared(ex, "tasks", default=32, help="held-out tasks offered in the page, also the set "
            "the 2-D view is fitted on (default 32)")  # fmt: skip
    ex.add_argument(
        "--data",
        default=None,
        help="ARC checkpoints: the tasks to offer (arc1-eval, a task file or a folder; "
        "default arc1-eval); PATTERN checkpoints use their held-out tasks",
    )
    ex.add_argument("--open", action="store_true", help="open the page in the web browser")


def _data_options(data: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    kinds = data.add_subparsers(dest="kind", required=True, metavar="KIND")
    pattern = kinds.add_parser(
        "pattern",
        parents=[common],
        help="PATTERN tasks of the train or the test programs",
        description="Write PATTERN tasks as {task_id: {train: [...], test: [...]}}: the first "
        "num_pairs - 1 pairs are a task's demonstrations, the last its test pair. Every "
        "program is in one split by a fixed rule on its content (a quarter are test "
        "programs): training draws only train programs, every evaluation only test programs.",
    )
    pattern.add_argument("--split", choices=("train", "test"), required=True)
    _shared(pattern, "tasks", default=100, help="number of tasks (default 100)")
    _shared(pattern, "seed", help="seed of the draw (default 0)")
    pattern.add_argument("--out", required=True, help="the JSON file to write")
    pattern.add_argument(
        "--preset",
        default="quickstart",
        choices=sorted(name for name in PRESETS if name.startswith(("pattern", "quickstart"))),
        help="the variant whose data options are the defaults below (default quickstart)",
    )
    for option, kind in (("grid-size", int), ("pattern-size", int), ("density", float),
                         ("num-pairs", int)):  # fmt: skip
        pattern.add_argument(f"--{option}", type=kind, default=None, help="default: the preset's")


def _add_search_options(
    parser: argparse.ArgumentParser, *, default: str | None, repeatable: bool
) -> None:
    """The options eval and solve share: the checkpoint, the search and how it runs."""
    _shared(parser, "checkpoint")
    grammar = "mean | grad:K | sample:N | es:P:K | hybrid:N:K"
    parser.add_argument(
        "--search",
        action="append" if repeatable else "store",
        default=default,
        help=f"{grammar} ({'repeatable; ' if repeatable else ''}default {default or 'mean'})",
    )
    for name in ("lr", "scale"):
        _shared(parser, name)
    _add_inference_arguments(parser)
    _add_buckets_argument(parser)
    _shared(parser, "seed")
    _shared(parser, "no-progress")


def _add_buckets_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--buckets",
        choices=("on", "off"),
        default="on",
        help="ARC: pad each task to the smallest rows and columns of the --size-buckets "
        "ladder that hold its grids (on, default: the same results, less work), or every "
        "grid to the model's size (off)",
    )


def _add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """``--start``, ``--optimizer`` and ``--stop``, shared by eval and solve."""
    parser.add_argument(
        "--stop",
        default="exact:0.99",
        metavar="{exact:0.99,exact:P,exact,none}",
        help="end a task's search at the first latent whose greedy decoding reproduces every "
        "specification pair and gives each a probability of at least P (default exact:0.99: "
        "as accurate as the whole budget on the shipped pattern models, grad:100 of the "
        "Grad-1 model 28%% of its evaluations and 2.9 points better); exact: at the first "
        "that reproduces them (4-9 points worse); none: spend the whole budget "
        "(docs/choosing)",
    )
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


def _user_error(err: BaseException) -> bool:
    """Errors a user can cause (bad data, options, files, memory): one line, no traceback."""
    from lpn_arc.training import TrainingError  # imported late: it loads Orbax

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
        command = {  # looked up at each call (tests replace a command)
            "train": commands.run_train,
            "eval": commands.run_eval,
            "solve": commands.run_solve,
            "models": commands.run_models,
            "quickstart": commands.run_quickstart,
            "explore": commands.run_explore,
            "data": commands.run_data,
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
