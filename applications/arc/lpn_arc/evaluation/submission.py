"""The ARC Prize submission format, checked: ``{task_id: [{"attempt_1", "attempt_2"}, ...]}``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lpn_arc.data import MAX_GRID_SIZE, ArcTask, encode_grid

__all__ = ["validate_submission"]


def validate_submission(submission: Any, tasks: Sequence[ArcTask] | None = None) -> None:
    """Checks an ARC Prize submission against the schema (and the tasks, when given).

    The schema: ``{task_id: [{"attempt_1": grid, "attempt_2": grid}, ...]}``, both attempts
    always present, every grid a non-empty rectangular list of lists of ints 0-9 of at most
    30 x 30; with ``tasks``, exactly the ids of those with test inputs, one entry per
    test input.

    Args:
        submission: the parsed ``submission.json``.
        tasks: optional :class:`lpn_arc.data.ArcTask` objects it should answer.

    Raises:
        ValueError: naming the task, the test input and the attempt that break the schema.

    Example:
        >>> validate_submission({"t": [{"attempt_1": [[1]], "attempt_2": [[2, 0]]}]})
        >>> validate_submission({"t": [{"attempt_1": [[1]]}]})
        Traceback (most recent call last):
        ...
        ValueError: submission: task t, test input 0: missing 'attempt_2'
    """
    if not isinstance(submission, dict):
        raise ValueError(f"submission: expected a JSON object, got {type(submission).__name__}")
    for task_id, entries in submission.items():
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"submission: task {task_id}: expected a non-empty list")
        for i, entry in enumerate(entries):
            where = f"submission: task {task_id}, test input {i}"
            if not isinstance(entry, dict):
                raise ValueError(f"{where}: expected an object with attempt_1 and attempt_2")
            for name in ("attempt_1", "attempt_2"):
                if name not in entry:
                    raise ValueError(f"{where}: missing {name!r}")
                encode_grid(entry[name], MAX_GRID_SIZE, MAX_GRID_SIZE, where=f"{where}, {name}")
    if tasks is not None:
        expected = {task.task_id: task.num_test for task in tasks if task.num_test > 0}
        if set(expected) != set(submission):
            missing = sorted(set(expected) - set(submission))
            extra = sorted(set(submission) - set(expected))
            raise ValueError(f"submission: missing tasks {missing}, unexpected tasks {extra}")
        for task_id, count in expected.items():
            if len(submission[task_id]) != count:
                raise ValueError(
                    f"submission: task {task_id} has {len(submission[task_id])} entries for "
                    f"{count} test inputs"
                )
