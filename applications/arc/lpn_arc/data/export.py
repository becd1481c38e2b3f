"""Generated PATTERN tasks written as an ARC task file (``lpn-arc data pattern``).

The file is ``{task_id: {"train": [{"input", "output"}, ...], "test": [{"input",
"output"}]}}``, the format of ARC task files and challenges, so any ARC solver can be scored
on our tasks and anyone can check our split: each task's program is the pattern pasted at
the marker (:func:`lpn_arc.data.pattern.task_programs`), and its split follows from it
(:func:`lpn_arc.data.pattern.program_split`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lpn_arc.config import DataConfig
from lpn_arc.data.grids import check_int
from lpn_arc.data.pattern import SPLITS, generate_pattern_tasks

__all__ = ["pattern_task_file"]


def pattern_task_file(data: DataConfig, split: str, num_tasks: int, seed: int) -> dict[str, Any]:
    """``num_tasks`` PATTERN tasks of ``split`` as an ARC task file's contents.

    Each task holds ``data.num_pairs`` pairs: the first ``num_pairs - 1`` are its
    demonstrations (``"train"``), the last its test pair. Task ids are
    ``pattern-<split>-<seed>-<index>``.

    Args:
        data: the variant (grid size, pattern size, density, pairs per task).
        split: ``"train"`` or ``"test"`` programs.
        num_tasks: how many tasks (>= 1).
        seed: the seed of the draw.

    Example:
        >>> tasks = pattern_task_file(DataConfig(grid_size=6, pattern_size=2), "test", 2, 0)
        >>> list(tasks), len(tasks["pattern-test-0-00000"]["train"])
        (['pattern-test-0-00000', 'pattern-test-0-00001'], 3)
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
    check_int("num_tasks", num_tasks, 1)
    check_int("seed", seed, 0)
    pairs, _ = generate_pattern_tasks(
        np.random.default_rng(seed),
        num_tasks,
        num_pairs=data.num_pairs,
        grid_size=data.grid_size,
        pattern_size=data.pattern_size,
        density=data.density,
        split=split,
    )
    out = {}
    for t in range(num_tasks):
        grids = [
            {"input": pairs.inputs[t, i].tolist(), "output": pairs.outputs[t, i].tolist()}
            for i in range(data.num_pairs)
        ]
        out[f"pattern-{split}-{seed}-{t:05d}"] = {"train": grids[:-1], "test": grids[-1:]}
    return out
