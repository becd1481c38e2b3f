"""The PATTERN task family of the LPN paper (a marker pixel says where to paste a pattern).

Each task ("program") is a random ``pattern_size x pattern_size`` pattern whose cells are,
independently, a colour uniform in ``1..9`` with probability ``density`` and black otherwise.
Each pair's input is a black ``grid_size x grid_size`` grid with one colour-1 marker at
``(r, c)``, ``r, c`` uniform in ``[0, grid_size - pattern_size]``; the output is a black grid
with the pattern pasted with its top-left corner at ``(r, c)``.

:func:`pattern_test_tasks` is a configuration's fixed held-out set (its own seed), padded to
the model's grids like the training batches (:func:`lpn_arc.data.training_batch`).
"""

from __future__ import annotations

from numbers import Real

import numpy as np

from lpn_arc.config import TrainConfig
from lpn_arc.data.grids import MAX_GRID_SIZE, Pair, check_int

__all__ = ["MARKER_COLOUR", "generate_pattern_tasks", "pad_to_model", "pattern_test_tasks"]

MARKER_COLOUR = 1


def generate_pattern_tasks(
    rng: np.random.Generator,
    num_tasks: int,
    num_pairs: int = 4,
    grid_size: int = 10,
    pattern_size: int = 4,
    density: float = 1.0,
) -> tuple[Pair, np.ndarray]:
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
    check_int("num_tasks", num_tasks, 1)
    check_int("num_pairs", num_pairs, 1)
    check_int("grid_size", grid_size, 1, MAX_GRID_SIZE)
    check_int("pattern_size", pattern_size, 1, grid_size)
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


def pad_to_model(tasks: Pair, config: TrainConfig) -> Pair:
    """Zero-pads generated grids to the model's ``max_rows x max_cols``."""
    rows, cols = config.model.max_rows, config.model.max_cols
    out = dict(tasks)
    for name in ("inputs", "outputs"):
        grid = tasks[name]
        pad = [(0, 0)] * (grid.ndim - 2) + [(0, rows - grid.shape[-2]), (0, cols - grid.shape[-1])]
        out[name] = np.pad(grid, pad)
    return out


def pattern_test_tasks(
    config: TrainConfig, num_tasks: int | None = None, density: float | None = None
) -> Pair:
    """The held-out PATTERN tasks of ``config`` (seed ``data.test_seed``), padded to the model.

    Args:
        config: a pattern configuration (its ``data`` gives grid, pattern size and pairs).
        num_tasks: how many (default ``data.test_tasks``).
        density: pattern density (default the last of ``data.test_densities``).
    """
    data = config.data
    tasks, _ = generate_pattern_tasks(
        np.random.default_rng(data.test_seed),
        num_tasks or data.test_tasks,
        num_pairs=data.num_pairs,
        grid_size=data.grid_size,
        pattern_size=data.pattern_size,
        density=data.test_densities[-1] if density is None else density,
    )
    return pad_to_model(tasks, config)
