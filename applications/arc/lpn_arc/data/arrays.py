"""ARC tasks as padded arrays: the train pairs of tasks, and evaluation rows with their query."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lpn_arc.data.arc import ArcTask
from lpn_arc.data.grids import (
    DataError,
    GridError,
    PaddedPairs,
    check_int,
    encode_grid,
    pairs_from_sides,
)

__all__ = ["evaluation_arrays", "tasks_to_arrays"]


def tasks_to_arrays(
    tasks: Sequence[ArcTask], max_rows: int, max_cols: int, *, max_pairs: int | None = None
) -> PaddedPairs:
    """The train pairs of each task in the pair format, padded to P pairs with a mask.

    Args:
        tasks: the tasks T.
        max_rows: padded rows R.
        max_cols: padded columns C.
        max_pairs: P; by default the largest number of train pairs among the tasks.

    Returns:
        ``PaddedPairs(pairs, mask)``: ``pairs`` a :class:`~lpn_arc.data.Pair` of ``inputs``
        ``(T, P, R, C)``, ``input_shapes`` ``(T, P, 2)``, ``outputs`` and ``output_shapes``,
        and ``mask`` ``(T, P)`` bool; padded pairs repeat the task's first pair, mask False.

    Raises:
        DataError: if there are no tasks, a task has more than ``max_pairs`` train pairs or a
            grid does not fit ``max_rows x max_cols``.
    """
    if not tasks:
        raise DataError("no tasks")
    if max_pairs is not None:
        check_int("max_pairs", max_pairs, 1)
    p = max_pairs or max(len(t.train) for t in tasks)
    grids = np.zeros((2, len(tasks), p, max_rows, max_cols), np.int32)
    shapes = np.zeros((2, len(tasks), p, 2), np.int32)
    mask = np.zeros((len(tasks), p), bool)
    for t, task in enumerate(tasks):
        if len(task.train) > p:
            raise DataError(
                f"{task.source}: task {task.task_id}: {len(task.train)} train pairs, "
                f"more than max_pairs={p}"
            )
        for i in range(p):
            pair = task.train[i if i < len(task.train) else 0]
            for side, key in enumerate(("input", "output")):
                where = f"{task.source}: task {task.task_id}, train pair {i}, {key}"
                grids[side, t, i], shapes[side, t, i] = _encode(
                    pair[side], *grids.shape[-2:], where
                )
        mask[t, : len(task.train)] = True
    return PaddedPairs(pairs_from_sides(grids, shapes), mask)


def _encode(grid: np.ndarray, max_rows: int, max_cols: int, where: str) -> tuple:
    try:
        return encode_grid(grid, max_rows, max_cols, where=where)
    except GridError as err:
        raise DataError(str(err)) from None


def evaluation_arrays(
    tasks: Sequence[ArcTask], max_rows: int, max_cols: int, *, max_pairs: int | None = None
) -> tuple[dict[str, np.ndarray], list[tuple[str, int]]]:
    """One padded row per (task, test input): the spec pairs with a mask and the query.

    Args:
        tasks: the evaluation tasks.
        max_rows: padded rows R.
        max_cols: padded columns C.
        max_pairs: P, the number of spec pairs per row; by default the largest number of
            train pairs among the tasks (a fixed P compiles once for any task).

    Returns:
        ``(arrays, rows)``: ``arrays`` holds ``"spec_inputs"`` (Q, P, R, C),
        ``"spec_input_shapes"`` (Q, P, 2), ``"spec_outputs"``, ``"spec_output_shapes"``,
        ``"spec_mask"`` (Q, P) bool (padded pairs repeat the first pair), ``"query_inputs"``
        (Q, R, C), ``"query_input_shapes"`` (Q, 2), ``"query_outputs"`` and
        ``"query_output_shapes"`` (zeros when unknown) and ``"has_truth"`` (Q,) bool;
        ``rows`` is the ``(task_id, test_index)`` of each row.

    Raises:
        DataError: if there are no tasks, a task has more train pairs than ``max_pairs`` or
            a grid does not fit ``max_rows x max_cols`` (the message names the task).

    Example:
        >>> from lpn_arc.data import load_tasks
        >>> arrays, rows = evaluation_arrays(load_tasks("arc1-eval", limit=3), 30, 30)
        >>> arrays["spec_mask"].shape, rows[0]
        ((3, 5), ('00576224', 0))
    """
    spec = tasks_to_arrays(tasks, max_rows, max_cols, max_pairs=max_pairs)
    rows = [(t, task.task_id, i) for t, task in enumerate(tasks) for i in range(task.num_test)]
    q = len(rows)
    which = np.array([t for t, _, _ in rows], dtype=np.int64)
    arrays = {f"spec_{key}": value[which] for key, value in spec.pairs.arrays().items()}
    arrays["spec_mask"] = spec.mask[which]
    grids, shapes = np.zeros((2, q, max_rows, max_cols), np.int32), np.zeros((2, q, 2), np.int32)
    has_truth = np.array([tasks[t].test_outputs is not None for t, _, _ in rows], dtype=bool)
    for r, (t, task_id, i) in enumerate(rows):
        task, where = tasks[t], f"{tasks[t].source}: task {task_id}, test pair {i}"
        grids[0, r], shapes[0, r] = _encode(
            task.test_inputs[i], max_rows, max_cols, f"{where}, input"
        )
        if has_truth[r]:
            grids[1, r], shapes[1, r] = _encode(
                task.test_outputs[i], max_rows, max_cols, f"{where}, output"
            )
    query = pairs_from_sides(grids, shapes)
    arrays.update({f"query_{key}": v for key, v in query.arrays().items()}, has_truth=has_truth)
    return arrays, [(task_id, i) for _, task_id, i in rows]
