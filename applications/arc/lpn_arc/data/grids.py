"""ARC grids <-> zero-padded integer arrays, with validation, and THE pair type.

An ARC grid has 1 to 30 rows and 1 to 30 columns of colours 0-9. Models work on
zero-padded ``(max_rows, max_cols)`` ``int32`` arrays plus the true ``[rows, cols]``.

:class:`Pair`, the pair format used by the whole package (data, model, training and
evaluation), is a named tuple, so a JAX pytree::

    Pair(inputs=(..., R, C) int32, input_shapes=(..., 2) int32,
         outputs=(..., R, C) int32, output_shapes=(..., 2) int32, cache=None)

with any leading axes (pair axis, task axis) first; a single pair has no leading axis.
``cache`` is what the model prepares once per pair (the input-only decoder mask's input
keys and values, :meth:`lpn_arc.model.LPNModel.precompute`); None, an empty pytree, until
then. Pairs padded to a fixed count travel as :class:`PaddedPairs`: the pairs and the mask
of the real ones. ``np.savez(path, **pairs.arrays())`` writes pairs and
``Pair(**np.load(path))`` reads them back. Before padding, an ARC task's example is a
:data:`GridPair`: its ``(input, output)`` grids as they were loaded (``int8`` arrays of
their own sizes).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from numbers import Integral
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "MAX_GRID_SIZE",
    "NUM_COLOURS",
    "DataError",
    "Grid",
    "GridError",
    "GridPair",
    "PaddedPairs",
    "Pair",
    "as_grid",
    "check_int",
    "decode_grid",
    "encode_grid",
    "make_pairs",
    "pairs_from_sides",
]

MAX_GRID_SIZE = 30
NUM_COLOURS = 10


class Pair(NamedTuple):
    """The pair format (see the module docstring): NumPy or JAX arrays of one pair or of
    pairs stacked on leading axes.

    Example:
        >>> pairs = make_pairs([([[1, 2]], [[3], [4]])], 2, 2)
        >>> pairs.inputs.shape, pairs.output_shapes.tolist(), pairs.cache
        ((1, 2, 2), [[2, 1]], None)
        >>> sorted(pairs.arrays())
        ['input_shapes', 'inputs', 'output_shapes', 'outputs']
    """

    inputs: Any
    """``(..., R, C)`` padded input grids."""
    input_shapes: Any
    """``(..., 2)`` the inputs' ``[rows, cols]``."""
    outputs: Any
    """``(..., R, C)`` padded output grids."""
    output_shapes: Any
    """``(..., 2)`` the outputs' ``[rows, cols]``."""
    cache: Any = None
    """What the model prepared once per pair (the input-only mask's input cache), or None."""

    def arrays(self) -> dict[str, Any]:
        """The grids and shapes by field name, the cache left out: ``np.savez(path,
        **pairs.arrays())`` writes pairs that ``Pair(**np.load(path))`` reads back."""
        return {name: getattr(self, name) for name in self._fields if name != "cache"}


class PaddedPairs(NamedTuple):
    """Pairs padded to a fixed count per task and which of them are real.

    Padded slots repeat a real pair of their task and must never be scored: ``mask`` is
    False there. A JAX pytree, like :class:`Pair`.
    """

    pairs: Pair
    """The pairs, ``(..., P, R, C)`` grids."""
    mask: Any
    """``(..., P)`` bool, True for a real pair; None: every pair is real."""


GridPair = tuple[np.ndarray, np.ndarray]
"""One unpadded ``(input, output)`` example of an ARC task, as loaded."""
Grid = Sequence[Sequence[int]] | np.ndarray
_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


class GridError(ValueError):
    """An ARC grid is malformed (ragged, empty, too large or with a bad colour)."""


class DataError(ValueError):
    """An ARC data file or task is malformed; the message names the path, task and pair."""


def check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    """Raises ValueError unless ``value`` is an int in ``[low, high]`` (``high`` None: no bound)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")


def _fail(where: str, problem: str) -> GridError:
    return GridError(f"{where}: {problem}" if where else problem)


def _check_max(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _too_large(rows: int, cols: int) -> str:
    return f"grid is {rows}x{cols}, ARC grids have at most {MAX_GRID_SIZE} rows and cols"


def _to_array(grid: Grid, where: str) -> np.ndarray:
    """Converts a nested list or an array to a validated 2-D int64 array (colours unchecked)."""
    if isinstance(grid, np.ndarray):
        if grid.ndim != 2:
            raise _fail(where, f"grid must be 2-D, got an array of shape {grid.shape}")
        if grid.dtype == np.bool_ or not np.issubdtype(grid.dtype, np.integer):
            raise _fail(where, f"grid must hold integers, got dtype {grid.dtype}")
        if grid.shape[0] == 0 or grid.shape[1] == 0:
            raise _fail(where, f"grid is empty (shape {grid.shape})")
        return grid.astype(np.int64)
    if isinstance(grid, (str, bytes)) or not isinstance(grid, Sequence):
        raise _fail(where, f"grid must be a list of rows, got {type(grid).__name__}")
    if len(grid) == 0:
        raise _fail(where, "grid is empty (no rows)")
    width = None
    for r, row in enumerate(grid):  # the shape first: an oversize grid fails before its cells
        if isinstance(row, (str, bytes)) or not isinstance(row, (Sequence, np.ndarray)):
            raise _fail(where, f"row {r} must be a list of cells, got {type(row).__name__}")
        if width is None:
            width = len(row)
            if width == 0:
                raise _fail(where, "grid is empty (row 0 has no cells)")
        elif len(row) != width:
            raise _fail(where, f"row {r} has {len(row)} cells, expected {width}")
    if len(grid) > MAX_GRID_SIZE or width > MAX_GRID_SIZE:
        raise _fail(where, _too_large(len(grid), width))
    for r, row in enumerate(grid):
        for c, value in enumerate(row):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
                raise _fail(where, f"cell ({r}, {c}) is {value!r}, not an integer colour")
            if not _INT64_MIN <= value <= _INT64_MAX:  # would overflow the array below
                raise _fail(where, f"cell ({r}, {c}) has colour {value}, expected 0-9")
    return np.asarray(grid, dtype=np.int64)


def encode_grid(
    grid: Grid, max_rows: int, max_cols: int, *, where: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """Validates an ARC grid and zero-pads it to ``(max_rows, max_cols)``.

    Args:
        grid: a rectangular nested list of ints or a 2-D integer array; rows and columns
            in ``1..30``, colours in ``0..9``.
        max_rows: padded number of rows (the grid must fit).
        max_cols: padded number of columns (the grid must fit).
        where: a description of the grid's origin used as the prefix of error messages,
            e.g. ``"task 0a1b2c3d, train pair 2, output"``.

    Returns:
        ``(array, shape)``: the ``int32`` ``(max_rows, max_cols)`` zero-padded grid and the
        ``int32`` ``[rows, cols]`` of the original grid.

    Raises:
        GridError: if the grid is ragged, empty, too large, not integer or has a colour
            outside ``0..9``; the message starts with ``where``.
        ValueError: if ``max_rows`` or ``max_cols`` is not a positive integer.
    """
    _check_max("max_rows", max_rows)
    _check_max("max_cols", max_cols)
    array = _to_array(grid, where)
    rows, cols = array.shape
    if rows > MAX_GRID_SIZE or cols > MAX_GRID_SIZE:
        raise _fail(where, _too_large(rows, cols))
    if rows > max_rows or cols > max_cols:
        raise _fail(where, f"grid is {rows}x{cols}, larger than the maximum {max_rows}x{max_cols}")
    bad = (array < 0) | (array >= NUM_COLOURS)
    if bad.any():
        r, c = (int(i) for i in np.argwhere(bad)[0])
        raise _fail(where, f"cell ({r}, {c}) has colour {int(array[r, c])}, expected 0-9")
    padded = np.zeros((max_rows, max_cols), dtype=np.int32)
    padded[:rows, :cols] = array
    return padded, np.array([rows, cols], dtype=np.int32)


def decode_grid(array: np.ndarray, shape: np.ndarray | Sequence[int]) -> list[list[int]]:
    """Crops a padded grid to its shape and returns it as a nested list of Python ints.

    Args:
        array: a 2-D padded grid (NumPy or JAX array).
        shape: ``[rows, cols]`` of the grid inside ``array``.

    Returns:
        The grid as ``rows`` lists of ``cols`` ints.

    Raises:
        ValueError: if ``array`` is not 2-D or ``shape`` does not fit inside it.
    """
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"array must be 2-D, got shape {array.shape}")
    shape = np.asarray(shape)
    if shape.shape != (2,):
        raise ValueError(f"shape must be [rows, cols], got {shape.tolist()}")
    rows, cols = int(shape[0]), int(shape[1])
    if not (1 <= rows <= array.shape[0] and 1 <= cols <= array.shape[1]):
        raise ValueError(f"shape {rows}x{cols} does not fit an array of shape {array.shape}")
    return array[:rows, :cols].astype(int).tolist()


def make_pairs(
    pairs: Sequence[tuple[Grid, Grid]], max_rows: int, max_cols: int, where: str = ""
) -> Pair:
    """Validates and stacks (input, output) grid pairs into the pair format.

    Args:
        pairs: a non-empty sequence of ``(input_grid, output_grid)``.
        max_rows: padded number of rows.
        max_cols: padded number of columns.
        where: prefix for error messages (e.g. ``"task 0a1b2c3d, train"``); each grid is
            reported as ``"<where>, pair <i>, input|output"``.

    Returns:
        A :class:`Pair` of ``inputs`` ``(N, R, C)``, ``input_shapes`` ``(N, 2)``, ``outputs``
        ``(N, R, C)`` and ``output_shapes`` ``(N, 2)``, all ``int32``.

    Raises:
        GridError: if any grid is invalid.
        ValueError: if ``pairs`` is empty or an element is not a 2-tuple.
    """
    if len(pairs) == 0:
        raise ValueError(f"{where}: no pairs" if where else "no pairs")
    prefix = f"{where}, " if where else ""
    inputs, input_shapes, outputs, output_shapes = [], [], [], []
    for i, pair in enumerate(pairs):
        if len(pair) != 2:
            raise ValueError(f"{prefix}pair {i}: expected (input, output), got {len(pair)} items")
        grid, shape = encode_grid(pair[0], max_rows, max_cols, where=f"{prefix}pair {i}, input")
        inputs.append(grid)
        input_shapes.append(shape)
        grid, shape = encode_grid(pair[1], max_rows, max_cols, where=f"{prefix}pair {i}, output")
        outputs.append(grid)
        output_shapes.append(shape)
    return Pair(
        np.stack(inputs), np.stack(input_shapes), np.stack(outputs), np.stack(output_shapes)
    )


def pairs_from_sides(grids: np.ndarray, shapes: np.ndarray) -> Pair:
    """The pair format from stacked ``(2, ...)`` input/output grids and shapes."""
    return Pair(grids[0], shapes[0], grids[1], shapes[1])


def as_grid(obj: Any, where: str) -> np.ndarray:
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
