"""Where a run's training data came from, and the guard that keeps test outputs out of it.

ARC tasks carry demonstration (``train``) pairs and test pairs. Training samples only the
demonstration pairs unless ``--include-test-pairs`` is given, and that flag is refused for
a split whose test outputs are hidden in the ARC Prize setting
(:func:`lpn_arc.config.hides_test_outputs`): an accuracy measured on answers the model was
trained on is memorisation, not reasoning.

Every run records its data provenance in ``RUN/run.json`` under ``"data"``
(:func:`provenance`): each source, whether ``train`` or ``train+test`` pairs were used, the
task ids and a digest of them. :func:`check_no_test_leak` refuses to evaluate a checkpoint
on a task whose test pairs it was trained on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lpn_arc.config import DataConfig, TrainConfig
from lpn_arc.data.arc import ArcTask, load_tasks

__all__ = [
    "TestLeakError",
    "check_no_test_leak",
    "leaked_tasks",
    "pattern_provenance",
    "provenance",
    "run_provenance",
]


class TestLeakError(ValueError):
    """Training used test pairs that must stay hidden, or evaluation would score on them."""

    __test__ = False  # not a pytest test class


def _digest(task_ids: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(task_ids)).encode()).hexdigest()


def _entry(source: str, pairs: str, task_ids: Sequence[str], num_pairs: int) -> dict[str, Any]:
    return {
        "source": source,
        "pairs": pairs,
        "tasks": len(task_ids),
        "pair_count": num_pairs,
        "task_ids": sorted(task_ids),
        "task_ids_sha256": _digest(task_ids),
    }


def provenance(
    tasks_by_source: dict[str, Sequence[ArcTask]],
    *,
    include_test_pairs: bool,
    rearc: tuple[str, dict[str, Sequence[Any]]] | None = None,
    augment: bool = True,
) -> dict[str, Any]:
    """The provenance record of ARC training data (the ``"data"`` field of ``run.json``).

    Args:
        tasks_by_source: ``{source: [ArcTask, ...]}``, the tasks kept from each source.
        include_test_pairs: whether the tasks' test pairs were sampled too.
        rearc: ``(folder, {task_id: pairs})`` of re-arc pools, if any.
        augment: whether augmentation was on.

    Returns:
        ``{"sources": [{"source", "pairs": "train" | "train+test" | "re-arc", "tasks",
        "pair_count", "task_ids", "task_ids_sha256"}, ...], "augment"}``.
    """
    pairs = "train+test" if include_test_pairs else "train"
    sources = [
        _entry(
            source,
            pairs,
            [t.task_id for t in tasks],
            sum(len(t.training_pairs(include_test_pairs=include_test_pairs)) for t in tasks),
        )
        for source, tasks in tasks_by_source.items()
    ]
    if rearc is not None:
        folder, pools = rearc
        sources.append(_entry(folder, "re-arc", list(pools), sum(len(p) for p in pools.values())))
    return {"sources": sources, "augment": augment}


def pattern_provenance(data: DataConfig) -> dict[str, Any]:
    """The provenance record of generated PATTERN training tasks."""
    return {
        "sources": [
            {
                "source": "pattern",
                "pairs": "generated",
                "grid_size": data.grid_size,
                "pattern_size": data.pattern_size,
                "density": data.density,
                "num_pairs": data.num_pairs,
            }
        ]
    }


def run_provenance(run_dir: str | Path, config: TrainConfig) -> dict[str, Any]:
    """The training-data provenance of a run folder.

    Read from ``RUN/run.json``. A run written before provenance was recorded has none; its
    ARC tasks were then sampled with their test pairs (the behaviour of that version), so
    the record is rebuilt from its configuration as ``train+test`` of every source.

    Args:
        run_dir: the run folder.
        config: the run's ``TrainConfig`` (used for runs without a record).
    """
    path = Path(run_dir) / "run.json"
    if path.is_file():
        try:
            record = json.loads(path.read_text()).get("data")
        except (ValueError, AttributeError):
            record = None
        if isinstance(record, dict) and isinstance(record.get("sources"), list):
            return record
    data = config.data
    if data.is_pattern:
        return pattern_provenance(data)
    legacy = {source: load_tasks(source) for source in data.sources}
    ids = set(data.task_id_list)
    if ids:
        legacy = {s: [t for t in ts if t.task_id in ids] for s, ts in legacy.items()}
    return provenance(legacy, include_test_pairs=True) | {"legacy": True}


def leaked_tasks(record: dict[str, Any], task_ids: Iterable[str]) -> dict[str, list[str]]:
    """``{source: [task ids]}`` of ``task_ids`` whose test pairs the recorded training used."""
    wanted = set(task_ids)
    leaks: dict[str, list[str]] = {}
    for entry in record.get("sources", []):
        if entry.get("pairs") != "train+test":
            continue
        hit = sorted(wanted & set(entry.get("task_ids", [])))
        if hit:
            leaks[entry.get("source", "?")] = hit
    return leaks


def check_no_test_leak(run_dir: str | Path, config: TrainConfig, tasks: Sequence[ArcTask]) -> None:
    """Refuses to evaluate a checkpoint on tasks whose test pairs it was trained on.

    Args:
        run_dir: the checkpoint's run folder.
        config: its ``TrainConfig``.
        tasks: the ARC tasks to evaluate (``ArcTask``).

    Raises:
        TestLeakError: naming the tasks, the training source and the flag that caused it.
    """
    record = run_provenance(run_dir, config)
    leaks = leaked_tasks(record, (t.task_id for t in tasks))
    if not leaks:
        return
    parts = []
    for source, ids in leaks.items():
        shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
        parts.append(f"{len(ids)} task(s) of {source} ({shown})")
    cause = (
        "it was trained before lpn-arc kept test pairs out of training (retrain it)"
        if record.get("legacy")
        else "it was trained with --include-test-pairs"
    )
    raise TestLeakError(
        f"{run_dir}: this checkpoint was trained on the test pairs of {'; '.join(parts)}: "
        f"{cause}; its accuracy on them would be memorisation, so it is not evaluated. "
        "Evaluate other tasks, or train without --include-test-pairs"
    )
