"""The PATTERN task family of the LPN paper (a marker pixel says where to paste a pattern).

Each task ("program") is a random ``pattern_size x pattern_size`` pattern whose cells are,
independently, a colour uniform in ``1..9`` with probability ``density`` and black otherwise.
Each pair's input is a black ``grid_size x grid_size`` grid with one colour-1 marker at
``(r, c)``, ``r, c`` uniform in ``[0, grid_size - pattern_size]``; the output is a black grid
with the pattern pasted with its top-left corner at ``(r, c)``.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from lpn_arc.grids import MAX_GRID_SIZE

MARKER_COLOUR = 1


def _check_int(name: str, value: int, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")


def generate_pattern_tasks(
    rng: np.random.Generator,
    num_tasks: int,
    num_pairs: int = 4,
    grid_size: int = 10,
    pattern_size: int = 4,
    density: float = 1.0,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Samples pattern tasks in the pair format with a leading task axis.

    Args:
        rng: the NumPy random generator (the only source of randomness).
        num_tasks: number of tasks T (>= 1).
        num_pairs: pairs per task N (>= 1).
        grid_size: side G of the square grids, in ``1..30``; also the padded size.
        pattern_size: side P of the pattern, in ``1..grid_size``.
        density: probability that a pattern cell is coloured (``1..9``), in ``[0, 1]``.

    Returns:
        ``(pairs, patterns)``: ``pairs`` is ``{"inputs": (T, N, G, G), "input_shapes":
        (T, N, 2), "outputs": (T, N, G, G), "output_shapes": (T, N, 2)}`` (``int32``, all
        shapes ``[G, G]``) and ``patterns`` is the ``int32`` ``(T, P, P)`` array of patterns.

    Raises:
        ValueError: if an argument is out of range (the message names it).
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    _check_int("num_tasks", num_tasks, 1)
    _check_int("num_pairs", num_pairs, 1)
    _check_int("grid_size", grid_size, 1, MAX_GRID_SIZE)
    _check_int("pattern_size", pattern_size, 1, grid_size)
    if isinstance(density, bool) or not isinstance(density, Real) or not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be a number in [0, 1], got {density!r}")

    coloured = rng.random((num_tasks, pattern_size, pattern_size)) < density
    colours = rng.integers(1, 10, size=(num_tasks, pattern_size, pattern_size))
    patterns = np.where(coloured, colours, 0).astype(np.int32)

    span = grid_size - pattern_size + 1
    rows = rng.integers(0, span, size=(num_tasks, num_pairs))
    cols = rng.integers(0, span, size=(num_tasks, num_pairs))
    t_idx = np.arange(num_tasks)[:, None]
    n_idx = np.arange(num_pairs)[None, :]

    inputs = np.zeros((num_tasks, num_pairs, grid_size, grid_size), dtype=np.int32)
    inputs[t_idx, n_idx, rows, cols] = MARKER_COLOUR

    outputs = np.zeros_like(inputs)
    offsets = np.arange(pattern_size)
    out_rows = rows[:, :, None, None] + offsets[:, None]  # (T, N, P, 1)
    out_cols = cols[:, :, None, None] + offsets[None, :]  # (T, N, 1, P)
    outputs[t_idx[:, :, None, None], n_idx[:, :, None, None], out_rows, out_cols] = patterns[
        :, None, :, :
    ]

    shapes = np.full((num_tasks, num_pairs, 2), grid_size, dtype=np.int32)
    pairs = {
        "inputs": inputs,
        "input_shapes": shapes,
        "outputs": outputs,
        "output_shapes": shapes.copy(),
    }
    return pairs, patterns
