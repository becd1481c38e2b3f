"""Figures of an evaluation: accuracy vs search budget, example tasks and search traces.

Figures are drawn on a ``matplotlib.figure.Figure`` with an Agg canvas (no pyplot, no
window, no global backend change) and saved as files; every function returns the path it
wrote and creates missing parent folders.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter, NullLocator, ScalarFormatter

from lpn_arc.config import SearchSpec, parse_search
from lpn_arc.data import GridPair, Pair
from lpn_arc.evaluation import EvalOutput, prediction_metrics

__all__ = [
    "ARC_COLOURS",
    "ARC_CMAP",
    "interesting_tasks",
    "plot_accuracy_vs_steps",
    "plot_arc_solution",
    "plot_search_traces",
    "plot_tasks",
    "search_steps",
]

ARC_COLOURS = (
    "#000000",  # 0 black
    "#0074D9",  # 1 blue
    "#FF4136",  # 2 red
    "#2ECC40",  # 3 green
    "#FFDC00",  # 4 yellow
    "#AAAAAA",  # 5 grey
    "#F012BE",  # 6 magenta
    "#FF851B",  # 7 orange
    "#7FDBFF",  # 8 light blue
    "#870C25",  # 9 maroon
)
ARC_CMAP = ListedColormap(list(ARC_COLOURS), name="arc")


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    return path


def search_steps(search: str | SearchSpec) -> int | None:
    """Number of gradient steps of a search, or None if it is not a gradient search.

    Args:
        search: a :class:`lpn_arc.config.SearchSpec`, or its text (``"mean"``,
            ``"grad:100"``, ``"sample:250"``...), parsed by :func:`lpn_arc.config.parse_search`.

    Returns:
        ``0`` for ``mean``, ``K`` for ``grad:K`` (and ``grad:K:<flow>``), None for other
        searches and for a text that is not a search specification (a row's free label).

    Example:
        >>> search_steps("mean"), search_steps("grad:10:unrolled"), search_steps("sample:5")
        (0, 10, None)
    """
    if isinstance(search, SearchSpec):
        return search.gradient_steps
    try:
        return parse_search(str(search)).gradient_steps
    except ValueError:
        return None


def plot_accuracy_vs_steps(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Top-1 and pass@2 accuracy against the number of gradient steps.

    Gradient rows (``mean`` at 0 steps, ``grad:K`` at ``K``) are drawn as curves on a
    symlog x axis; every other row (``sample:N``, ``es:P:K``, ``hybrid:N:K``) is a
    horizontal dashed line labelled with its search name.

    Args:
        rows: metrics dicts (``EvalOutput.metrics``) with keys ``search``, ``top1``,
            ``pass2`` (fractions in [0, 1]).
        path: output image file (e.g. ``.png``).

    Returns:
        ``path`` as a ``Path``.
    """
    gradient = [(search_steps(row["search"]), row) for row in rows]
    gradient = sorted(
        ((step, row) for step, row in gradient if step is not None), key=lambda item: item[0]
    )
    others = [row for row in rows if search_steps(row["search"]) is None]
    figure = _new_figure(10.0, 4.0)
    axes = figure.subplots(1, 2, sharey=True)
    colours = [f"C{i}" for i in range(2, 10)]
    for ax, metric, title in zip(axes, ("top1", "pass2"), ("top-1", "pass@2"), strict=True):
        if gradient:
            steps = [step for step, _ in gradient]
            values = [100.0 * row[metric] for _, row in gradient]
            ax.plot(steps, values, "o-", color="C0", label="gradient ascent")
        for i, row in enumerate(others):
            ax.axhline(
                100.0 * row[metric],
                linestyle="--",
                color=colours[i % len(colours)],
                label=str(row["search"]),
            )
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(left=-0.2, right=max([1, *(step for step, _ in gradient)]) * 1.5)
        if gradient:
            ticks = sorted({step for step, _ in gradient})
            ax.set_xticks(ticks, [str(step) for step in ticks])
            ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("gradient steps")
        ax.set_title(f"{title} accuracy")
        ax.grid(alpha=0.3)
        if gradient or others:
            ax.legend(fontsize="small")
    axes[0].set_ylabel("accuracy (%)")
    return _save(figure, path)


def _draw_grid(ax: Any, grid: np.ndarray, shape: np.ndarray, title: str, colour: str) -> None:
    rows, cols = int(shape[0]), int(shape[1])
    cropped = np.asarray(grid)[: max(rows, 0), : max(cols, 0)]
    if cropped.size:
        ax.imshow(cropped, cmap=ARC_CMAP, vmin=0, vmax=9, interpolation="nearest")
        ax.set_xticks(np.arange(-0.5, cols, 1.0), minor=True)
        ax.set_yticks(np.arange(-0.5, rows, 1.0), minor=True)
        ax.grid(which="minor", color="#555555", linewidth=0.5)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8, color=colour)


def plot_tasks(
    tasks: Pair,
    output: EvalOutput,
    path: str | Path,
    num_tasks: int = 4,
    indices: Sequence[int] | None = None,
) -> Path:
    """Draws tasks: specification pairs, query input, truth and both attempts.

    One row per task; columns are each specification pair's input and output, the query
    input, the true query output, attempt 1 and attempt 2, every grid cropped to its shape
    and drawn with the ARC palette. Attempt titles say whether the attempt is correct.

    Args:
        tasks: the :class:`~lpn_arc.data.Pair` given to :func:`lpn_arc.evaluation.evaluate_tasks`.
        output: its :class:`lpn_arc.evaluation.EvalOutput`.
        path: output image file.
        num_tasks: number of tasks (rows) to draw, at most the number evaluated.
        indices: which tasks to draw (default: the first ``num_tasks``), e.g. from
            :func:`interesting_tasks`.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ValueError: if ``num_tasks`` < 1, an index is out of range, or ``tasks`` and
            ``output`` disagree on shapes.
    """
    inputs = np.asarray(tasks.inputs)
    outputs = np.asarray(tasks.outputs)
    input_shapes = np.asarray(tasks.input_shapes)
    output_shapes = np.asarray(tasks.output_shapes)
    total, num_pairs = inputs.shape[:2]
    if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
        raise ValueError(f"num_tasks must be a positive int, got {num_tasks!r}")
    if output.attempt_1.shape != (total, *inputs.shape[2:]):
        raise ValueError(
            f"output holds attempts of shape {output.attempt_1.shape}, tasks give "
            f"{(total, *inputs.shape[2:])}"
        )
    if indices is None:
        chosen = np.arange(min(num_tasks, total))
    else:
        chosen = np.asarray(indices, dtype=np.int64).reshape(-1)
        if chosen.size == 0 or np.any((chosen < 0) | (chosen >= total)):
            raise ValueError(f"indices must be non-empty and lie in [0, {total}), got {indices}")
    ok_1, ok_2 = _verdicts(output, outputs[:, -1], output_shapes[:, -1])
    num_cols = 2 * (num_pairs - 1) + 4
    figure = _new_figure(1.6 * num_cols, 1.8 * len(chosen))
    axes = np.asarray(figure.subplots(len(chosen), num_cols, squeeze=False))
    for i, t in enumerate(chosen):
        grids = [(inputs[t, j], input_shapes[t, j], outputs[t, j], output_shapes[t, j])
                 for j in range(num_pairs)]  # fmt: skip
        attempts = [
            (output.attempt_1[t], output.attempt_shapes[t, 0], ok_1[t]),
            (output.attempt_2[t], output.attempt_shapes[t, 1], ok_2[t]),
        ]
        _draw_task_row(axes[i], grids, attempts)
        axes[i][0].set_ylabel(f"task {t}", fontsize=8)
    return _save(figure, path)


def _verdicts(
    output: EvalOutput, truth: np.ndarray, truth_shapes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Whether attempt 1 and (judged on its own) attempt 2 are right, per task."""
    correct = prediction_metrics(
        output.attempt_1, output.attempt_2, output.attempt_shapes, truth, truth_shapes
    )
    # Attempt 2 judged on its own: swap the attempts and read top-1.
    swapped = prediction_metrics(
        output.attempt_2, output.attempt_1, output.attempt_shapes[:, ::-1], truth, truth_shapes
    )
    return correct["top1"], swapped["top1"]


def _draw_task_row(row: Any, pairs: list[tuple], attempts: list[tuple]) -> None:
    """One task: each specification pair's input and output, the query input and truth
    (the last of ``pairs``), then each ``(grid, shape, correct)`` attempt."""
    *spec, query = pairs
    for j, (inp, inp_shape, out, out_shape) in enumerate(spec):
        _draw_grid(row[2 * j], inp, inp_shape, f"pair {j + 1} in", "black")
        _draw_grid(row[2 * j + 1], out, out_shape, f"pair {j + 1} out", "black")
    base = 2 * len(spec)
    _draw_grid(row[base], query[0], query[1], "query in", "black")
    _draw_grid(row[base + 1], query[2], query[3], "truth", "black")
    for a, (grid, shape, ok) in enumerate(attempts):
        verdict = "correct" if ok else "wrong"
        _draw_grid(
            row[base + 2 + a], grid, shape, f"attempt {a + 1}: {verdict}", "green" if ok else "red"
        )


def interesting_tasks(baseline: EvalOutput, searched: EvalOutput, num_tasks: int = 4) -> list[int]:
    """Task indices worth drawing: fixed by search first, then still wrong, then solved.

    Args:
        baseline: the evaluation without search (e.g. ``mean``).
        searched: the evaluation of the same tasks with search.
        num_tasks: how many indices to return (fewer when fewer tasks exist).

    Returns:
        Up to ``num_tasks`` distinct indices: tasks the search turned from wrong to right
        (top-1), then at most one task still wrong after search, then any others in order.

    Raises:
        ValueError: if the two evaluations cover different numbers of tasks.
    """
    before = np.asarray(baseline.per_task["top1"], bool)
    after = np.asarray(searched.per_task["top1"], bool)
    if before.shape != after.shape:
        raise ValueError(f"evaluations differ in size: {before.shape} vs {after.shape}")
    fixed = np.flatnonzero(~before & after)
    wrong = np.flatnonzero(~after)
    order = [*fixed[: max(num_tasks - 1, 1)], *wrong[:1], *range(len(after))]
    chosen: list[int] = []
    for t in order:
        if int(t) not in chosen:
            chosen.append(int(t))
        if len(chosen) == num_tasks:
            break
    return chosen


def plot_search_traces(traces: np.ndarray, path: str | Path) -> Path:
    """Median and interquartile band over tasks of the best-so-far score per search step.

    Args:
        traces: ``(T, K)`` best score so far after each step (``EvalOutput.traces``);
            non-finite entries are ignored.
        path: output image file.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ValueError: if ``traces`` is not 2-D.
    """
    traces = np.asarray(traces, dtype=np.float64)
    if traces.ndim != 2:
        raise ValueError(f"traces must have shape (T, K), got {traces.shape}")
    figure = _new_figure(6.0, 4.0)
    ax = figure.subplots()
    finite = np.where(np.isfinite(traces), traces, np.nan)
    has_data = finite.size > 0 and not np.all(np.isnan(finite))
    if has_data:
        steps = np.arange(1, traces.shape[1] + 1)
        q25, median, q75 = np.nanpercentile(finite, [25, 50, 75], axis=0)
        ax.plot(steps, median, color="C0", label="median")
        ax.fill_between(steps, q25, q75, color="C0", alpha=0.25, label="25-75%")
        if traces.shape[1] > 20:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no search steps", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("search step")
    ax.set_ylabel("best objective so far")
    ax.set_title(f"search traces ({traces.shape[0]} tasks)")
    ax.grid(alpha=0.3)
    return _save(figure, path)


def plot_arc_solution(
    spec: Sequence[GridPair],
    test_input: Any,
    attempts: Sequence[Any],
    path: str | Path,
    *,
    truth: Any | None = None,
    title: str = "",
) -> Path:
    """Renders one ARC test input: the specification pairs, the input, both attempts, the truth.

    Row 1 shows the specification inputs, row 2 their outputs; the last column shows the
    test input over attempt 1, and (to its right) attempt 2 over the truth when known.
    Attempts are titled green when they equal the truth, red when they do not.

    Args:
        spec: the ``(input, output)`` grids of the specification (2-D arrays or lists).
        test_input: the test input grid.
        attempts: the two predicted grids (unpadded).
        path: the PNG to write.
        truth: the true output, if known.
        title: the figure title (e.g. the task id).

    Returns:
        The path written.
    """
    grids = [np.asarray(g) for pair in spec for g in pair]
    if len(grids) == 0:
        raise ValueError("spec must hold at least one (input, output) pair")
    columns = len(spec) + 2
    figure = _new_figure(1.7 * columns, 3.6)
    axes = figure.subplots(2, columns, squeeze=False)

    def draw(ax: Any, grid: Any, label: str, colour: str = "black") -> None:
        grid = np.asarray(grid)
        _draw_grid(ax, grid, np.array(grid.shape), label, colour)

    for i, (x, y) in enumerate(spec):
        draw(axes[0][i], x, f"spec {i} input")
        draw(axes[1][i], y, f"spec {i} output")
    draw(axes[0][-2], test_input, "test input")
    known = truth is not None
    for a, (ax, grid) in enumerate(zip((axes[1][-2], axes[0][-1]), attempts, strict=True)):
        grid = np.asarray(grid)
        correct = (
            known and np.shape(truth) == grid.shape and bool(np.all(np.asarray(truth) == grid))
        )
        colour = ("#2ECC40" if correct else "#FF4136") if known else "black"
        verdict = (" (right)" if correct else " (wrong)") if known else ""
        draw(ax, grid, f"attempt {a + 1}{verdict}", colour)
    if known:
        draw(axes[1][-1], truth, "truth")
    else:
        axes[1][-1].axis("off")
    if title:
        figure.suptitle(title, fontsize=10)
    return _save(figure, path)
