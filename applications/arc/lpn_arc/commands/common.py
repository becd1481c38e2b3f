"""What several commands share: evaluating searches, loading ARC tasks, report lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def evaluate_all(graphdef, params, tasks, searches, *, lr, scale, optimizer="clip-adam",
                 seed=0, **options):  # fmt: skip
    """Each search of ``searches`` on the stacked ``tasks``: ``(metrics rows, outputs)``;
    ``options`` go to :func:`lpn_arc.evaluation.evaluate_tasks` (batch size, start...)."""
    import jax

    from lpn_arc.config import parse_search
    from lpn_arc.evaluation import evaluate_tasks

    rows, outputs = [], {}
    for text in searches:
        spec = parse_search(text, lr=lr, scale=scale, optimizer=optimizer)
        out = evaluate_tasks(graphdef, params, tasks, spec, jax.random.key(seed), **options)
        rows.append(out.metrics)
        outputs[text] = out
    return rows, outputs


def data_summary(data) -> str:
    """``arc1-train (train pairs) + re-arc FOLDER`` or ``pattern``."""
    if data.is_pattern:
        return "pattern"
    pairs = "train+test pairs" if data.include_test_pairs else "train pairs only"
    parts = [f"{', '.join(data.sources)} ({pairs})"] if data.sources else []
    return " + ".join(parts + ([f"re-arc {data.rearc}"] if data.rearc else []))


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


ARC_COLUMNS = ("search", "tasks", "top1", "pass2", "pixel", "shape", "evaluations", "seconds")


PATTERN_COLUMNS = ("search", "top1", "pass2", "pixel", "shape", "evaluations")


def inference_options(args) -> dict:
    """The inference choices of eval: start latent, optimiser, attempt-2 rule and stopping."""
    return {"start": args.start, "optimizer": args.optimizer, "attempt2": args.attempt2,
            "stop": args.stop}  # fmt: skip


def columns_of(args, columns=PATTERN_COLUMNS) -> tuple[str, ...]:
    """The table's columns, with the official rule's pass@2 after pass2 when asked."""
    if args.attempt2 != "both":
        return columns
    at = columns.index("pass2") + 1
    return (*columns[:at], "pass2_official", *columns[at:])


def int_list(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise ValueError(f"{option} must be positive integers separated by commas, got {text!r}")
    return values


def programs_line(seen: dict) -> str:
    """What a PATTERN run's training drew of the evaluated programs, in one line."""
    share = seen["seen_programs"]
    kind = "held-out programs" if share == 0 else "NOT a generalisation result: seen programs"
    return (
        f"{seen['evaluated_programs']} evaluated programs, {100 * share:.1f}% drawn in training "
        f"(split {seen['split']}): {kind}"
    )


def seen_line(seen: dict) -> str:
    """What training saw of the scored ARC tasks, in one line."""
    k, n = seen["demonstrations_in_training"], seen["tasks"]
    if k == 0:
        return f"training saw no pair of the {n} scored task(s): a held-out result"
    return (
        f"training saw the demonstrations of {k} of the {n} scored task(s) (never their test "
        "pairs): the test-time-training setting"
    )


def output_folder(checkpoint: str, name: str) -> Path:
    """Where a command writes by default: inside the run folder, or ``pretrained-NAME/``
    in the current folder for a shipped model (never inside the installed package)."""
    from lpn_arc.pretrained import pretrained_name

    shipped = pretrained_name(checkpoint)
    return (Path(f"pretrained-{shipped}") if shipped else Path(checkpoint)) / name


def clear_run(out: Path, args) -> None:
    """``--overwrite``: removes the run's checkpoints; otherwise nothing is ever deleted."""
    import shutil

    if getattr(args, "overwrite", False):
        if args.resume:
            raise ValueError("give --resume or --overwrite, not both")
        for name in ("checkpoints", "best", "corrupt_checkpoints", "tensorboard"):
            if (out / name).exists():
                shutil.rmtree(out / name)
