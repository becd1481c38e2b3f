"""Augmentation of ARC tasks: the 8 rotations and flips and the permutations of colours 1-9.

Every transform has an exact inverse (:meth:`Augmentation.invert`). :class:`TaskSampler`
applies one random augmentation per sampled task through precomputed index maps
(:func:`dihedral_maps`), so a batch is augmented without a Python loop over grids.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from lpn_arc.data.arc import ArcTask
from lpn_arc.data.grids import NUM_COLOURS, check_int

__all__ = ["KEEPS_SHAPE", "SWAPS_SHAPE", "Augmentation", "augment_task", "dihedral_maps"]

# Dihedral transforms that swap the numbers of rows and columns (see Augmentation).
SWAPS_SHAPE = np.array([False, True, False, True, True, False, True, False])
KEEPS_SHAPE = np.flatnonzero(~SWAPS_SHAPE)  # 0, 2, 5, 7


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
        check_int("dihedral", self.dihedral, 0, 7)
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
        >>> from lpn_arc.data import load_tasks
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
def dihedral_maps(rows: int, cols: int) -> np.ndarray:
    """Index maps of the 8 transforms for :class:`lpn_arc.data.TaskSampler`.

    ``maps[k, h-1, w-1]``: for each cell of the transformed, top-left packed ``h x w``
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
