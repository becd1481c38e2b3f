"""Where a run's training data came from, and the guard that keeps test outputs out of it.

ARC tasks carry demonstration (``train``) pairs and test pairs. Training samples only the
demonstration pairs unless ``--include-test-pairs`` is given, and that flag is refused for
a split whose test outputs are hidden in the ARC Prize setting
(:func:`lpn_arc.config.hides_test_outputs`): an accuracy measured on answers the model was
trained on is memorisation, not reasoning.

**The guard compares content, not names** (:mod:`lpn_arc.data.digests`):

* :func:`check_training_pairs` refuses training data of any source (dataset names,
  folders, files, challenges files, re-arc pools) that holds a test pair of ARC-AGI-1 or
  ARC-AGI-2 evaluation, whatever the file or task is called;
* every run records the digest of every pair training may sample in ``RUN/run.json``
  (``"data"``, :func:`provenance`), and :func:`check_no_test_leak` refuses to score a
  checkpoint on a task whose test pair is among them, naming the tasks;
* a scored task whose **demonstrations** are among them is the test-time-training setting:
  allowed, but counted and reported (:func:`demonstrations_in_training`), never silent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lpn_arc.config import HIDDEN_TEST_SPLITS, DataConfig, TrainConfig
from lpn_arc.data.arc import ArcTask, load_rearc, load_tasks
from lpn_arc.data.digests import (
    demonstration_digests,
    hidden_test_pairs,
    pair_digest,
    test_pair_digests,
)
from lpn_arc.data.grids import GridPair

__all__ = [
    "TestLeakError",
    "check_no_test_leak",
    "check_training_pairs",
    "demonstrations_in_training",
    "leaked_tasks",
    "pattern_provenance",
    "provenance",
    "run_provenance",
    "training_pair_digests",
]


class TestLeakError(ValueError):
    """Training used test pairs that must stay hidden, or evaluation would score on them."""

    __test__ = False  # not a pytest test class


def _ids_digest(task_ids: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(task_ids)).encode()).hexdigest()


def _entry(source: str, pairs: str, task_ids: Sequence[str], num_pairs: int) -> dict[str, Any]:
    return {
        "source": source,
        "pairs": pairs,
        "tasks": len(task_ids),
        "pair_count": num_pairs,
        "task_ids": sorted(task_ids),
        "task_ids_sha256": _ids_digest(task_ids),
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
        "pair_count", "task_ids", "task_ids_sha256"}, ...], "augment", "pair_digests": the
        sorted digests of every pair training may sample, "demonstrations_of": {hidden
        evaluation set: how many of its tasks have a demonstration pair among them}}``.
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
    pairs = _training_pairs(tasks_by_source, include_test_pairs, rearc)
    digests = sorted({pair_digest(pair) for _, _, pair in pairs})
    record = {"sources": sources, "augment": augment, "pair_digests": digests}
    return record | {"demonstrations_of": _hidden_demonstrations(set(digests))}


def _training_pairs(
    tasks_by_source: Mapping[str, Sequence[ArcTask]],
    include_test_pairs: bool,
    rearc: tuple[str, Mapping[str, Sequence[GridPair]]] | None,
) -> Iterable[tuple[str, str, GridPair]]:
    """``(source, "task T, pair I", pair)`` for every pair training may sample."""
    for source, tasks in tasks_by_source.items():
        for task in tasks:
            pairs = task.training_pairs(include_test_pairs=include_test_pairs)
            for i, pair in enumerate(pairs):
                yield source, f"task {task.task_id}, pair {i}", pair
    if rearc is not None:
        folder, pools = rearc
        for task_id, pairs in pools.items():
            for i, pair in enumerate(pairs):
                yield folder, f"re-arc task {task_id}, pair {i}", pair


def check_training_pairs(
    tasks_by_source: Mapping[str, Sequence[ArcTask]],
    *,
    include_test_pairs: bool,
    rearc: tuple[str, Mapping[str, Sequence[GridPair]]] | None = None,
) -> None:
    """Refuses training data that holds a test pair of a hidden evaluation set.

    Every pair training may sample is compared, by digest, with the test pairs of
    ARC-AGI-1 and ARC-AGI-2 evaluation (:func:`lpn_arc.data.digests.hidden_test_pairs`),
    whatever its source is called: a dataset name, a folder, a file, a challenges file or
    a re-arc pool.

    Raises:
        TestLeakError: naming the training pairs and the evaluation tasks they answer.
    """
    hidden = hidden_test_pairs()
    hits = []
    for source, where, pair in _training_pairs(tasks_by_source, include_test_pairs, rearc):
        found = hidden.get(pair_digest(pair))
        if found is not None:
            hits.append(f"{source}: {where} is the test pair of {found[0]} task {found[1]}")
    if hits:
        shown = "; ".join(hits[:5]) + (f"; and {len(hits) - 5} more" if len(hits) > 5 else "")
        raise TestLeakError(
            f"the training data holds {len(hits)} test pair(s) of the hidden evaluation sets "
            f"({', '.join(HIDDEN_TEST_SPLITS)}): {shown}. A model trained on them can only be "
            "scored on memorised answers; leave out --include-test-pairs or those tasks"
        )


def exclude_tasks(
    tasks_by_source: Mapping[str, Sequence[ArcTask]],
    rearc: Mapping[str, Sequence[GridPair]] | None,
    excluded_sources: Sequence[str],
) -> tuple[dict[str, list[ArcTask]], dict[str, list[GridPair]] | None, dict[str, Any]]:
    """Training tasks (and re-arc pools) without those that share a pair with a task of
    ``excluded_sources``, compared by digest (demonstration and test pairs alike).

    Returns:
        ``(tasks_by_source, rearc, record)``; ``record`` is ``{"sources": excluded_sources,
        "dropped": {source: [task ids]}}`` for ``run.json``.
    """
    banned = set()
    for source in excluded_sources:
        for task in load_tasks(source):
            banned |= set(demonstration_digests(task)) | set(test_pair_digests(task))
    kept, dropped = {}, {}
    for source, tasks in tasks_by_source.items():
        kept[source] = []
        for task in tasks:
            pairs = task.training_pairs(include_test_pairs=task.test_outputs is not None)
            if banned & {pair_digest(p) for p in pairs}:
                dropped.setdefault(source, []).append(task.task_id)
            else:
                kept[source].append(task)
    if rearc is not None:
        pools = {k: v for k, v in rearc.items() if not banned & {pair_digest(p) for p in v}}
        if len(pools) < len(rearc):
            dropped["re-arc"] = sorted(set(rearc) - set(pools))
        rearc = pools
    return kept, rearc, {"sources": list(excluded_sources), "dropped": dropped}


def _hidden_demonstrations(digests: set[str]) -> dict[str, int]:
    """``{hidden set: how many of its tasks have a demonstration among digests}``."""
    return {
        split: sum(bool(digests & set(demonstration_digests(t))) for t in load_tasks(split))
        for split in HIDDEN_TEST_SPLITS
    }


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
    the record is rebuilt from its configuration as ``train+test`` of every source. A record
    written before pair digests were kept gets them from its configuration's data.

    Args:
        run_dir: the run folder.
        config: the run's ``TrainConfig`` (used for runs without a record).
    """
    path = Path(run_dir) / "run.json"
    record = None
    if path.is_file():
        try:
            record = json.loads(path.read_text()).get("data")
        except (ValueError, AttributeError):
            record = None
    data = config.data
    if isinstance(record, dict) and isinstance(record.get("sources"), list):
        if data.is_pattern or "pair_digests" in record:
            return record
        return record | {"pair_digests": training_pair_digests(config, record)}
    if data.is_pattern:
        return pattern_provenance(data)
    legacy = _config_tasks(data)
    return provenance(legacy, include_test_pairs=True) | {"legacy": True}


def _config_tasks(data: DataConfig) -> dict[str, list[ArcTask]]:
    """The ARC tasks a configuration trains on, by source."""
    by_source = {source: load_tasks(source) for source in data.sources}
    ids = set(data.task_id_list)
    if ids:
        by_source = {s: [t for t in ts if t.task_id in ids] for s, ts in by_source.items()}
    return by_source


def training_pair_digests(config: TrainConfig, record: dict[str, Any]) -> list[str]:
    """The digests of every pair a run's configuration samples, rebuilt from its data (for
    records written before digests were kept; ``record`` says whether test pairs were used)."""
    with_test = any(entry.get("pairs") == "train+test" for entry in record.get("sources", []))
    data = config.data
    rearc = None
    if data.rearc:
        rearc = (data.rearc, load_rearc(data.rearc, task_ids=data.task_id_list or None))
    pairs = _training_pairs(_config_tasks(data), with_test, rearc)
    return sorted({pair_digest(pair) for _, _, pair in pairs})


def leaked_tasks(record: dict[str, Any], tasks: Iterable[ArcTask]) -> list[str]:
    """The ids of ``tasks`` whose test pair is among the recorded training pairs."""
    trained = set(record.get("pair_digests", ()))
    return [t.task_id for t in tasks if trained & set(test_pair_digests(t))]


def demonstrations_in_training(record: dict[str, Any], tasks: Sequence[ArcTask]) -> list[str]:
    """The ids of ``tasks`` that have a demonstration pair among the recorded training pairs
    (the test-time-training setting: allowed, and reported)."""
    trained = set(record.get("pair_digests", ()))
    return [t.task_id for t in tasks if trained & set(demonstration_digests(t))]


def check_no_test_leak(
    run_dir: str | Path, config: TrainConfig, tasks: Sequence[ArcTask]
) -> dict[str, Any]:
    """Refuses to score a checkpoint on tasks whose test pairs it was trained on.

    Pairs are compared by content (digests), so a task is refused whatever name or file
    it was trained or is scored under.

    Args:
        run_dir: the checkpoint's run folder.
        config: its ``TrainConfig``.
        tasks: the ARC tasks to score (``ArcTask``).

    Returns:
        What training saw of the scored tasks: ``{"tasks": how many are scored,
        "demonstrations_in_training": how many have a demonstration pair among the
        training pairs, "task_ids": their ids}``.

    Raises:
        TestLeakError: naming the tasks and the likely cause.
    """
    record = run_provenance(run_dir, config)
    leaks = leaked_tasks(record, tasks)
    if leaks:
        shown = ", ".join(leaks[:10]) + (f" and {len(leaks) - 10} more" if len(leaks) > 10 else "")
        cause = (
            "it was trained before lpn-arc kept test pairs out of training (retrain it)"
            if record.get("legacy")
            else "its training data held these answers (--include-test-pairs, or a file or "
            "pool that contains them under another name)"
        )
        raise TestLeakError(
            f"{run_dir}: this checkpoint was trained on the test pairs of {len(leaks)} of the "
            f"{len(tasks)} scored task(s) ({shown}): {cause}; its accuracy on them would be "
            "memorisation, so it is not evaluated. Evaluate other tasks, or retrain without "
            "their test pairs"
        )
    seen = demonstrations_in_training(record, tasks)
    return {"tasks": len(tasks), "demonstrations_in_training": len(seen), "task_ids": seen}
