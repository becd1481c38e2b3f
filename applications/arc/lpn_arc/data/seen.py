"""What a PATTERN run saw in training, computed from the data rather than assumed.

A run's training batches are a pure function of its configuration and step
(:class:`lpn_arc.data.TrainingData`), so its training programs are found by generating its
batches again; the evaluated programs are read from the evaluated tasks' grids
(:func:`lpn_arc.data.pattern.task_programs`). ``seen_programs`` is the fraction of the
distinct evaluated programs that training drew: 0 under the program-disjoint split; when
training and evaluation draw from every program (``pattern_split="none"``, the draws of
lpn-arc 0.1), 0.86 of 64 held-out programs of the 6x6 / 2x2 variant after 900 steps of 16
tasks (1 - (1 - 1/6561)^14400 = 0.89 expected).
"""

from __future__ import annotations

from typing import Any

from lpn_arc.config import TrainConfig
from lpn_arc.data.batches import TrainingData
from lpn_arc.data.grids import Pair
from lpn_arc.data.pattern import SPLIT_RULE, program_text, task_programs

__all__ = ["seen_programs", "split_record", "training_programs"]


def training_programs(config: TrainConfig, steps: int) -> set[str]:
    """The programs (:func:`~lpn_arc.data.pattern.program_text`) of a PATTERN run's first
    ``steps`` training batches, generated again from its configuration."""
    if not config.data.is_pattern:
        raise ValueError("training_programs reads PATTERN runs; ARC runs record pair digests")
    data = TrainingData(config)
    return {program_text(p) for s in range(steps) for p in data.pattern_batch(s)[1]}


def split_record(config: TrainConfig) -> dict[str, str]:
    """How a PATTERN configuration splits programs: ``{"split", "rule"}``."""
    split = config.data.pattern_split
    rule = SPLIT_RULE if split == "program" else "none: training and evaluation draw every program"
    return {"split": split, "rule": rule}


def seen_programs(config: TrainConfig, steps: int, tasks: Pair) -> dict[str, Any]:
    """What a PATTERN run trained for ``steps`` steps saw of the programs of ``tasks``.

    Returns:
        ``{"split", "rule", "evaluated_programs": distinct programs of tasks,
        "seen_programs": the fraction of them that training drew}``.

    Example:
        >>> import dataclasses
        >>> from lpn_arc.config import get_preset
        >>> from lpn_arc.data import pattern_test_tasks
        >>> config = get_preset("quickstart")
        >>> seen_programs(config, 900, pattern_test_tasks(config, 64))["seen_programs"]
        0.0
        >>> old = dataclasses.replace(config, data=dataclasses.replace(config.data,
        ...                                                      pattern_split="none"))
        >>> round(seen_programs(old, 900, pattern_test_tasks(old, 64))["seen_programs"], 2)
        0.86
    """
    evaluated = set(task_programs(tasks, config.data.pattern_size))
    trained = training_programs(config, steps)
    return {
        **split_record(config),
        "evaluated_programs": len(evaluated),
        "seen_programs": len(evaluated & trained) / len(evaluated),
    }
