"""The ARC training sampler: augmented tasks of N pairs drawn from task files and re-arc pools."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lpn_arc.data.arc import ArcTask
from lpn_arc.data.augment import KEEPS_SHAPE, SWAPS_SHAPE, dihedral_maps
from lpn_arc.data.grids import (
    MAX_GRID_SIZE,
    NUM_COLOURS,
    DataError,
    GridPair,
    PaddedPairs,
    as_grid,
    check_int,
    pairs_from_sides,
)

__all__ = ["TaskSampler"]


def _check_ladder(ladder: Sequence[int], max_rows: int, max_cols: int) -> tuple[int, ...]:
    if not ladder or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in ladder):
        raise ValueError(f"ladder must be positive ints, got {ladder!r}")
    return tuple(sorted(set(ladder)))


class TaskSampler:
    """Samples augmented training tasks of ``num_pairs`` pairs in the pair format.

    The programs are the ARC tasks (their demonstration pairs only, unless
    ``include_test_pairs``) and the re-arc pair pools. A sampled task holds ``min(N,
    count)`` distinct pairs of its program, the rest masked out (the batch's ``mask``): 293 of the
    400 ARC-AGI-1 training tasks have only 2 or 3 demonstrations, and a copy of the
    held-out pair in its own specification would teach the model to copy. All grids are
    padded once into ``int8`` arrays (``2 * max_rows * max_cols`` bytes per pair: about
    0.7 GB for 400k re-arc pairs).

    Args:
        tasks: ARC tasks.
        rearc: re-arc pools ``{task_id: [(input, output), ...]}`` (see
            :func:`lpn_arc.data.load_rearc`).
        num_pairs: pairs per sampled task N.
        max_rows: padded rows R (every grid must fit).
        max_cols: padded columns C (every grid must fit).
        augment: apply one random :class:`lpn_arc.data.Augmentation` per sampled task. When
            ``max_rows != max_cols``, a program with a grid whose transpose does not fit is
            only given the transforms that keep rows and columns.
        include_test_pairs: also sample the tasks' test pairs (their outputs must be
            known). Off by default: a test output that reaches training makes any accuracy
            measured on it memorisation.
        ladder: size buckets (e.g. ``(10, 20, 30)``): each batch draws its programs from
            one group of programs of similar size (a group with probability proportional to
            its number of programs, so every program stays equally likely) and is padded
            to the smallest rows and the smallest columns of the ladder that hold its
            grids, instead of ``max_rows x max_cols``; ``None`` pads every batch to
            ``max_rows x max_cols``. Grouping is by rows and columns, unordered when
            augmentation may transpose a program.

    Raises:
        DataError: if there is no program, a program has fewer than 2 pairs, a grid is
            invalid or does not fit ``max_rows x max_cols``, or ``include_test_pairs`` is
            asked for a task without test outputs.
        ValueError: if ``num_pairs``, ``max_rows`` or ``max_cols`` is out of range.

    Example:
        >>> from lpn_arc.data import load_tasks
        >>> sampler = TaskSampler(tasks=load_tasks("arc1-train", limit=8), num_pairs=3)
        >>> batch = sampler.sample(np.random.default_rng(0), 2)
        >>> batch.pairs.inputs.shape, batch.pairs.output_shapes.shape, batch.mask.shape
        ((2, 3, 30, 30), (2, 3, 2), (2, 3))
    """

    def __init__(
        self,
        *,
        tasks: Sequence[ArcTask] = (),
        rearc: Mapping[str, Sequence[GridPair]] | None = None,
        num_pairs: int = 4,
        max_rows: int = MAX_GRID_SIZE,
        max_cols: int = MAX_GRID_SIZE,
        augment: bool = True,
        include_test_pairs: bool = False,
        ladder: Sequence[int] | None = None,
    ) -> None:
        check_int("num_pairs", num_pairs, 1)
        with_test = include_test_pairs
        check_int("max_rows", max_rows, 1, MAX_GRID_SIZE)
        check_int("max_cols", max_cols, 1, MAX_GRID_SIZE)
        programs = [
            (f"task {t.task_id} ({t.source})", t.training_pairs(include_test_pairs=with_test))
            for t in tasks
        ]
        programs += [(f"re-arc task {k}", list(v)) for k, v in (rearc or {}).items()]
        if not programs:
            raise DataError("TaskSampler needs at least one ARC task or re-arc pool")
        self.num_pairs, self.max_rows, self.max_cols = num_pairs, max_rows, max_cols
        self.augment = augment
        self._pack(programs)
        self._maps = dihedral_maps(max_rows, max_cols) if augment else None
        self.ladder = None if ladder is None else _check_ladder(ladder, max_rows, max_cols)
        self._groups = None if ladder is None else self._size_groups()

    def _size_groups(self) -> list[np.ndarray]:
        """The programs grouped by the buckets of their largest rows and columns."""
        ends = self._starts + self._counts
        keys = []
        for p, (first, end) in enumerate(zip(self._starts, ends, strict=True)):
            extent = self._shapes[:, first:end].reshape(-1, 2).max(axis=0)
            key = (self._bucket(extent[0], self.max_rows), self._bucket(extent[1], self.max_cols))
            keys.append(tuple(sorted(key)) if self.augment and self._transposable[p] else key)
        return [np.flatnonzero([k == key for k in keys]) for key in sorted(set(keys))]

    def _bucket(self, extent: int, limit: int) -> int:
        """The smallest ladder size (capped at ``limit``) that holds ``extent``."""
        return min([min(b, limit) for b in self.ladder if min(b, limit) >= extent] + [limit])

    def _pack(self, programs: list[tuple[str, list[GridPair]]]) -> None:
        """Validates every grid and pads it into one ``int8`` array of all pairs."""
        max_rows, max_cols = self.max_rows, self.max_cols
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
                    grid = as_grid(grid, where)
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

    @property
    def num_programs(self) -> int:
        """The number of programs (ARC tasks plus re-arc pools)."""
        return len(self._counts)

    def _choose_pairs(self, rng: np.random.Generator, counts: np.ndarray) -> np.ndarray:
        """(B, N) pair indices: the first ``min(N, count)`` of a row are distinct pairs of
        its program; the rest (when the program has fewer than N pairs) repeat the first
        pair and are masked out by :meth:`sample`."""
        n = self.num_pairs
        u = rng.random((len(counts), n))
        picks = np.zeros((len(counts), n), dtype=np.int64)
        for j in range(n):  # draw among the unchosen, then skip over the chosen ones
            r = (u[:, j] * np.maximum(counts - j, 1)).astype(np.int64)
            for chosen in np.sort(picks[:, :j], axis=1).T:
                r += r >= chosen
            picks[:, j] = r
        return np.where(np.arange(n)[None, :] < counts[:, None], picks, picks[:, :1])

    def sample(self, rng: np.random.Generator, batch_size: int) -> PaddedPairs:
        """Samples a batch of tasks (deterministic given ``rng``).

        Args:
            rng: the NumPy random generator.
            batch_size: number of tasks B.

        Returns:
            ``PaddedPairs(pairs, mask)``: ``pairs`` a :class:`~lpn_arc.data.Pair` of
            ``inputs`` ``(B, N, R, C)``, ``input_shapes`` ``(B, N, 2)``, ``outputs`` and
            ``output_shapes`` (``int32``, packed top-left, zero elsewhere; with a
            ``ladder``, ``R x C`` is the batch's size bucket) and ``mask`` ``(B, N)`` bool.
            A task never holds the same pair twice: a program with fewer than N pairs fills
            its first ``count`` slots with distinct pairs and masks the rest out (``mask``
            False; their grids repeat the first pair and are never scored), so a held-out
            pair is never in its own specification.
        """
        check_int("batch_size", batch_size, 1)
        b, n, rows, cols = batch_size, self.num_pairs, self.max_rows, self.max_cols
        if self._groups is None:
            programs = rng.integers(self.num_programs, size=b)
        else:
            sizes = np.array([len(g) for g in self._groups], dtype=np.float64)
            group = self._groups[rng.choice(len(sizes), p=sizes / sizes.sum())]
            programs = group[rng.integers(len(group), size=b)]
        counts = self._counts[programs]
        index = self._starts[programs, None] + self._choose_pairs(rng, counts)
        grids = self._grids[:, index]  # (2, B, N, R*C)
        shapes = self._shapes[:, index]  # (2, B, N, 2)
        if self.augment:
            k = rng.integers(8, size=b)
            keep = KEEPS_SHAPE[rng.integers(len(KEEPS_SHAPE), size=b)]
            k = np.where(self._transposable[programs], k, keep)
            perms = np.tile(np.arange(NUM_COLOURS, dtype=np.int8), (b, 1))
            perms[:, 1:] = rng.permuted(perms[:, 1:], axis=1)  # black stays black
            kk = np.broadcast_to(k[None, :, None], shapes.shape[:-1])
            maps = self._maps[kk, shapes[..., 0] - 1, shapes[..., 1] - 1]  # (2, B, N, R*C)
            padded = np.concatenate([grids, np.zeros((*grids.shape[:-1], 1), np.int8)], -1)
            grids = np.take_along_axis(padded, maps, axis=-1)
            grids = np.take_along_axis(perms[None], grids.reshape(2, b, -1), -1)
            shapes = np.where(SWAPS_SHAPE[k][None, :, None, None], shapes[..., ::-1], shapes)
        grids = grids.reshape(2, b, n, rows, cols).astype(np.int32)
        if self.ladder is not None:  # the batch's size bucket
            extent = shapes.reshape(-1, 2).max(axis=0)
            grids = grids[..., : self._bucket(extent[0], rows), : self._bucket(extent[1], cols)]
        mask = np.arange(n)[None, :] < counts[:, None]
        return PaddedPairs(pairs_from_sides(grids, shapes.astype(np.int32)), mask)
