"""Tasks as the explorer's page sees them: ARC-format JSON, checked at the boundary.

The page, the held-out PATTERN tasks and uploaded files all speak one format, the ARC task
file's: ``{"train": [{"input": grid, "output": grid}, ...], "test": [{"input": grid,
"output": grid}]}`` with grids as lists of rows of colours ``0..9``. The demonstration
(``train``) pairs are the specification; the first test pair is the query (its output,
when given, is the truth the decoded grid is compared with).

Every task that comes from the page is checked here, so that a malformed file, a grid
larger than the model's or a colour out of range becomes a :class:`TaskError` whose
message says what and where, never a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from lpn_arc.config import TrainConfig
from lpn_arc.data import (
    DataError,
    GridError,
    Pair,
    encode_grid,
    load_tasks,
    make_pairs,
    pattern_test_tasks,
)

__all__ = [
    "MAX_SPEC_PAIRS",
    "TaskArrays",
    "TaskError",
    "offered_tasks",
    "parse_task_file",
    "pattern_tasks",
    "task_arrays",
]

MAX_SPEC_PAIRS = 10
"""The most demonstration pairs the explorer takes (ARC tasks have 2 to 10)."""

PAIR_BUCKETS = (3, 5, MAX_SPEC_PAIRS)
"""Specifications are padded to one of these sizes: one compilation each."""

MAX_FILE_BYTES = 2_000_000


class TaskError(ValueError):
    """A task the explorer cannot use; the message is shown in the page as it is."""


@dataclass(frozen=True)
class TaskArrays:
    """A checked task, padded to the model.

    Attributes:
        pairs: the specification, a :class:`~lpn_arc.data.Pair` of ``P`` pairs padded to a
            bucket.
        mask: ``(P,)`` which of the padded pairs are real.
        query_input: ``(R, C)`` the padded query input.
        query_shape: ``(2,)`` its ``[rows, cols]``.
        truth: the query's expected output grid (rows of colours) or None.
    """

    pairs: Pair
    mask: np.ndarray
    query_input: np.ndarray
    query_shape: np.ndarray
    truth: list[list[int]] | None


def _entry(task: Any, key: str) -> list:
    if not isinstance(task, dict):
        raise TaskError(f'a task is an object with "train" and "test", got {type(task).__name__}')
    value = task.get(key)
    if not isinstance(value, list) or not value:
        raise TaskError(f'the task needs a non-empty list "{key}" of pairs')
    for i, pair in enumerate(value):
        if not isinstance(pair, dict) or "input" not in pair:
            raise TaskError(f'{key} pair {i} must be an object with an "input" grid')
        if key == "train" and "output" not in pair:
            raise TaskError(f'train pair {i} has no "output" grid')
    return value


def task_arrays(task: Any, max_rows: int, max_cols: int) -> TaskArrays:
    """Checks an ARC-format task and pads it to the model's grids.

    Args:
        task: ``{"train": [...], "test": [...]}`` (only the first test pair is used).
        max_rows: the model's padded rows.
        max_cols: the model's padded columns.

    Raises:
        TaskError: naming the pair and grid that is wrong (shape, size, colours).

    Example:
        >>> t = {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1]]}]}
        >>> arrays = task_arrays(t, 3, 3)
        >>> arrays.mask.tolist(), arrays.query_shape.tolist(), arrays.truth
        ([True, False, False], [1, 1], None)
    """
    train, test = _entry(task, "train"), _entry(task, "test")
    if len(train) > MAX_SPEC_PAIRS:
        raise TaskError(
            f"the task has {len(train)} train pairs; the explorer takes at most {MAX_SPEC_PAIRS}"
        )
    grids = [(pair["input"], pair["output"]) for pair in train]
    try:
        pairs = make_pairs(grids, max_rows, max_cols, where="train")
        query, shape = encode_grid(test[0]["input"], max_rows, max_cols, where="test pair 0, input")
        truth = test[0].get("output")
        if truth is not None:
            encode_grid(truth, max_rows, max_cols, where="test pair 0, output")
            truth = [[int(v) for v in row] for row in truth]
    except (GridError, DataError) as err:
        raise TaskError(str(err)) from None
    count = len(train)
    size = next(b for b in PAIR_BUCKETS if b >= count)

    def pad(v: np.ndarray) -> np.ndarray:  # the bucket's slots repeat the last real pair
        return np.concatenate([v, np.repeat(v[-1:], size - count, axis=0)])

    padded = pairs._replace(**{name: pad(v) for name, v in pairs.arrays().items()})
    return TaskArrays(padded, np.arange(size) < count, query, shape, truth)


def parse_task_file(text: str, max_rows: int, max_cols: int) -> dict[str, Any]:
    """The task in an uploaded ARC task file, checked against the model's grid size.

    Args:
        text: the file's content (one task: ``{"train": ..., "test": ...}``).
        max_rows: the model's padded rows.
        max_cols: the model's padded columns.

    Returns:
        The task with its first test pair only.

    Raises:
        TaskError: for text that is not JSON, not a task, or a task the model cannot read.

    Example:
        >>> try:
        ...     parse_task_file('{"train": [', 6, 6)
        ... except TaskError as err:
        ...     print(err)
        the file is not valid JSON: Expecting value (line 1, column 12)
    """
    if len(text) > MAX_FILE_BYTES:
        raise TaskError(
            f"the file is larger than {MAX_FILE_BYTES // 1_000_000} MB; is it one task?"
        )
    try:
        task = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        message = err.msg if isinstance(err, json.JSONDecodeError) else "nested too deeply"
        where = f" (line {err.lineno}, column {err.colno})" if hasattr(err, "lineno") else ""
        raise TaskError(f"the file is not valid JSON: {message}{where}") from None
    if isinstance(task, dict) and "train" not in task and len(task) == 1:
        task = next(iter(task.values()))  # a challenges file holding a single task
    task_arrays(task, max_rows, max_cols)
    test = task["test"][0]
    query = {"input": test["input"], **({"output": test["output"]} if "output" in test else {})}
    return {
        "train": [{"input": p["input"], "output": p["output"]} for p in task["train"]],
        "test": [query],
    }


def _crop(grid: np.ndarray, shape: np.ndarray) -> list[list[int]]:
    return grid[: shape[0], : shape[1]].astype(int).tolist()


def pattern_tasks(config: TrainConfig, count: int) -> list[dict[str, Any]]:
    """The first ``count`` held-out PATTERN tasks of ``config`` in the ARC format.

    The held-out set of :func:`lpn_arc.data.pattern_test_tasks` (the configuration's test
    seed): the first ``num_pairs - 1`` pairs of a task are its specification, the last its
    query, as ``lpn-arc eval`` scores them.

    Example:
        >>> from lpn_arc.config import get_preset
        >>> task = pattern_tasks(get_preset("quickstart"), 2)[1]
        >>> len(task["train"]), len(task["test"][0]["output"])  # 3 pairs -> 1, 6x6 grids
        (3, 6)
    """
    arrays = pattern_test_tasks(config)
    tasks = []
    for t in range(min(count, arrays.inputs.shape[0])):
        pairs = [
            {
                "input": _crop(arrays.inputs[t, i], arrays.input_shapes[t, i]),
                "output": _crop(arrays.outputs[t, i], arrays.output_shapes[t, i]),
            }
            for i in range(arrays.inputs.shape[1])
        ]
        tasks.append({"train": pairs[:-1], "test": pairs[-1:]})
    return tasks


def _arc_task(task) -> dict[str, Any]:
    """An :class:`lpn_arc.data.ArcTask` in the explorer's format (its first test pair)."""
    query = {"input": task.test_inputs[0].tolist()}
    if task.test_outputs is not None:
        query["output"] = task.test_outputs[0].tolist()
    return {
        "train": [{"input": x.tolist(), "output": y.tolist()} for x, y in task.train],
        "test": [query],
    }


def offered_tasks(config: TrainConfig, count: int, source: str | None = None) -> list[dict]:
    """The tasks the explorer offers: the first ``count`` held-out PATTERN tasks of a
    pattern configuration, or the first ``count`` ARC tasks of ``source`` (a dataset name,
    a task file or a folder; default ``arc1-eval``) that fit the model's grids.

    Raises:
        ValueError: for ``count < 1``, or when no task of ``source`` fits the model.

    Example:
        >>> from lpn_arc.config import get_preset
        >>> config = get_preset("quickstart")
        >>> offered_tasks(config, 4) == pattern_tasks(config, 4)
        True
    """
    if count < 1:
        raise ValueError(f"--tasks must be >= 1, got {count}")
    if config.data.is_pattern and source is None:
        return pattern_tasks(config, count)
    rows, cols = config.model.max_rows, config.model.max_cols
    offered = []
    for task in load_tasks(source or "arc1-eval"):
        if task.num_test == 0:
            continue
        item = _arc_task(task)
        try:
            task_arrays(item, rows, cols)
        except TaskError:
            continue  # larger than the model's grids, or too many pairs
        offered.append(item)
        if len(offered) == count:
            break
    if not offered:
        raise ValueError(f"no task of {source or 'arc1-eval'} fits the model's {rows}x{cols} grids")
    return offered
