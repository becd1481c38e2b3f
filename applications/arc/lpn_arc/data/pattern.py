"""The PATTERN task family of the LPN paper (a marker pixel says where to paste a pattern).

Each task ("program") is a random ``pattern_size x pattern_size`` pattern whose cells are,
independently, a colour uniform in ``1..9`` with probability ``density`` and black otherwise.
Each pair's input is a black ``grid_size x grid_size`` grid with one colour-1 marker at
``(r, c)``, ``r, c`` uniform in ``[0, grid_size - pattern_size]``; the output is a black grid
with the pattern pasted with its top-left corner at ``(r, c)``.

**Program-disjoint splits.** Every program belongs to exactly one split, ``train`` or
``test``, by a fixed rule on its content (:func:`program_split`: a quarter of all programs
are test programs). Training draws train programs only and every evaluation test programs
only, so an evaluated program was never trained on, however many tasks training draws (a
2x2 pattern has only 9^4 = 6,561 programs at density 1). :func:`task_programs` reads the
programs back from the grids of any tasks, which is how a run's ``seen_programs`` is
computed from the data (:mod:`lpn_arc.data.provenance`).

:func:`pattern_test_tasks` is a configuration's fixed held-out set (its own seed), padded to
the model's grids like the training batches (:func:`lpn_arc.data.training_batch`).
"""

from __future__ import annotations

import hashlib
from numbers import Real

import numpy as np

from lpn_arc.config import TrainConfig
from lpn_arc.data.grids import MAX_GRID_SIZE, Pair, check_int

__all__ = [
    "MARKER_COLOUR",
    "SPLITS",
    "SPLIT_RULE",
    "generate_pattern_tasks",
    "pad_to_model",
    "pattern_test_tasks",
    "program_split",
    "program_text",
    "task_programs",
]

MARKER_COLOUR = 1
SPLITS = ("train", "test")
"""The two program splits (:func:`program_split`)."""
_TEST_BELOW = 64  # a program is a test program when its digest's first byte is below this
SPLIT_RULE = "sha256(program_text)[0] < 64: test (a quarter of the programs), else train"
"""The rule of :func:`program_split`, as results files and model cards state it."""
_MAX_DRAW_ROUNDS = 1000


def program_text(pattern: np.ndarray) -> str:
    """A pattern's canonical text: ``"RxC:"`` then its cells row by row.

    Example:
        >>> program_text(np.array([[3, 0], [5, 1]]))
        '2x2:3051'
    """
    pattern = np.asarray(pattern)
    if pattern.ndim != 2:
        raise ValueError(f"a pattern is a 2-D array; got shape {pattern.shape}")
    cells = "".join(str(int(v)) for v in pattern.ravel())
    return f"{pattern.shape[0]}x{pattern.shape[1]}:{cells}"


def program_split(pattern: np.ndarray) -> str:
    """The split of a PATTERN program, by a fixed rule on its content (:data:`SPLIT_RULE`).

    A program is a ``"test"`` program when the first byte of the SHA-256 digest of its
    :func:`program_text` is below 64 (a quarter of all programs), else a ``"train"``
    program. The rule needs no list and no seed; in any language it reads
    ``sha256("2x2:1234")[0] < 64``.

    Example:
        >>> program_split(np.array([[1, 2], [3, 4]])), program_split(np.array([[3, 0], [5, 1]]))
        ('test', 'train')
    """
    digest = hashlib.sha256(program_text(pattern).encode()).digest()
    return "test" if digest[0] < _TEST_BELOW else "train"


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None (every program); got {split!r}")


def _draw_patterns(
    rng: np.random.Generator, num_tasks: int, pattern_size: int, density: float, split: str | None
) -> np.ndarray:
    """``(T, P, P)`` patterns; with a ``split``, redrawn until every one belongs to it."""
    shape = (pattern_size, pattern_size)
    kept, have = [], 0
    for _ in range(_MAX_DRAW_ROUNDS):
        need = num_tasks - have
        coloured = rng.random((need, *shape)) < density
        colours = rng.integers(1, 10, size=(need, *shape))
        patterns = np.where(coloured, colours, 0).astype(np.int32)
        if split is not None:
            patterns = patterns[[program_split(p) == split for p in patterns]]
        kept.append(patterns)
        have += len(patterns)
        if have == num_tasks:
            return np.concatenate(kept)
    raise ValueError(
        f"no {split} program drawn in {_MAX_DRAW_ROUNDS} rounds: {pattern_size}x{pattern_size} "
        f"patterns at density {density:g} hardly ever fall in the {split} split "
        f"({SPLIT_RULE}); use a larger pattern or another density"
    )


def task_programs(tasks: Pair, pattern_size: int) -> list[str]:
    """The program of each of ``T`` PATTERN tasks, read from its grids (:func:`program_text`).

    The pattern is the ``pattern_size x pattern_size`` block of a task's first output at
    the marker of its first input. This reads any PATTERN tasks (generated, padded, or
    loaded from an exported file), so what a run saw is computed from the data.

    Raises:
        ValueError: if a task's first input does not hold exactly one marker with room for
            the pattern.

    Example:
        >>> tasks, patterns = generate_pattern_tasks(np.random.default_rng(0), 2, 3, 5, 2)
        >>> task_programs(tasks, 2) == [program_text(p) for p in patterns]
        True
    """
    inputs = np.asarray(tasks.inputs)[:, 0]
    outputs = np.asarray(tasks.outputs)[:, 0]
    programs = []
    for t, (grid, output) in enumerate(zip(inputs, outputs, strict=True)):
        marks = np.argwhere(grid == MARKER_COLOUR)
        if len(marks) != 1 or np.count_nonzero(grid) != 1:
            raise ValueError(f"task {t}: its first input has no single marker cell")
        r, c = marks[0]
        block = output[r : r + pattern_size, c : c + pattern_size]
        if block.shape != (pattern_size, pattern_size):
            raise ValueError(f"task {t}: the marker at ({r}, {c}) leaves no room for the pattern")
        programs.append(program_text(block))
    return programs


def generate_pattern_tasks(
    rng: np.random.Generator,
    num_tasks: int,
    num_pairs: int = 4,
    grid_size: int = 10,
    pattern_size: int = 4,
    density: float = 1.0,
    split: str | None = None,
) -> tuple[Pair, np.ndarray]:
    """Samples pattern tasks in the pair format with a leading task axis.

    Args:
        rng: the NumPy random generator (the only source of randomness).
        num_tasks: number of tasks T (>= 1).
        num_pairs: pairs per task N (>= 1).
        grid_size: side G of the square grids, in ``1..30``; also the padded size.
        pattern_size: side P of the pattern, in ``1..grid_size``.
        density: probability that a pattern cell is coloured (``1..9``), in ``[0, 1]``.
        split: ``"train"`` or ``"test"``: draw programs of that split only
            (:func:`program_split`); ``None``: every program (the draws of lpn-arc 0.1).

    Returns:
        ``(pairs, patterns)``: ``pairs`` is a :class:`~lpn_arc.data.Pair` of ``inputs``
        ``(T, N, G, G)``, ``input_shapes`` ``(T, N, 2)``, ``outputs`` ``(T, N, G, G)`` and
        ``output_shapes`` ``(T, N, 2)`` (``int32``, all shapes ``[G, G]``) and ``patterns``
        is the ``int32`` ``(T, P, P)`` array of patterns.

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
    _check_split(split)

    patterns = _draw_patterns(rng, num_tasks, pattern_size, density, split)

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
    return Pair(inputs, shapes, outputs, shapes.copy()), patterns


def pad_to_model(tasks: Pair, config: TrainConfig) -> Pair:
    """Zero-pads generated grids to the model's ``max_rows x max_cols``."""
    rows, cols = config.model.max_rows, config.model.max_cols

    def pad(grid: np.ndarray) -> np.ndarray:
        extra = [(0, rows - grid.shape[-2]), (0, cols - grid.shape[-1])]
        return np.pad(grid, [(0, 0)] * (grid.ndim - 2) + extra)

    return tasks._replace(inputs=pad(tasks.inputs), outputs=pad(tasks.outputs))


def pattern_test_tasks(
    config: TrainConfig, num_tasks: int | None = None, density: float | None = None
) -> Pair:
    """The held-out PATTERN tasks of ``config`` (seed ``data.test_seed``), padded to the model.

    Under ``data.pattern_split="program"`` (the default) they are test programs only, which
    training never draws.

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
        split="test" if data.pattern_split == "program" else None,
    )
    return pad_to_model(tasks, config)
