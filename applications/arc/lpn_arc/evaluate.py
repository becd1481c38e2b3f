"""Evaluation of an LPN model on tasks: latent search, two attempts and accuracy metrics.

Every task is a stack of ``N >= 2`` pairs; the first ``N - 1`` pairs are the specification
and the last pair is the query (its input is given, its output is predicted). Per task:

1. encode the specification pairs; the start latent is the mean of the encoder *means*
   (deterministic inference, no sampling);
2. search latent space with ``latentsearch.search``, maximising the sum over the
   specification pairs of the decoder log-likelihood;
3. decode attempt 1 from the best latent and attempt 2 from the second best latent (equal
   to attempt 1 when the search visits a single point: ``mean``, ``grad:0``).

Metrics (per task, then averaged over tasks): ``top1`` (attempt 1 matches the truth
exactly: shape and every cell), ``pass2`` (attempt 1 or attempt 2 does), ``shape``
(attempt 1 has the true shape) and ``pixel`` (fraction of the true output's cells that
attempt 1 gets right; a cell outside the predicted shape counts as wrong).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import latentsearch as ls
from lpn_arc.grids import PAIR_KEYS
from lpn_arc.model import encode_fn, generate_fn, log_likelihood_fn
from lpn_arc.searchspec import SearchSpec

__all__ = [
    "METRIC_KEYS",
    "EvalOutput",
    "evaluate_tasks",
    "format_table",
    "prediction_metrics",
]

METRIC_KEYS = ("search", "top1", "pass2", "pixel", "shape", "evaluations", "seconds")
_PERCENT_KEYS = ("top1", "pass2", "pixel", "shape")


@dataclasses.dataclass
class EvalOutput:
    """The result of :func:`evaluate_tasks` on ``T`` tasks.

    Attributes:
        metrics: ``{"search": spec text, "top1", "pass2", "pixel", "shape": fractions in
            [0, 1] averaged over tasks, "evaluations": mean objective evaluations per task
            (int), "seconds": wall-clock time of the whole evaluation, compilation included}``.
        attempt_1: ``int32`` ``(T, R, C)`` predictions from the best latent (zero outside
            the predicted shape).
        attempt_2: ``int32`` ``(T, R, C)`` predictions from the second best latent.
        attempt_shapes: ``int32`` ``(T, 2, 2)``; ``attempt_shapes[t, a]`` is ``[rows, cols]``
            of attempt ``a + 1``.
        scores: ``float32`` ``(T, 2)`` objective values of the two latents.
        traces: ``float32`` ``(T, K)`` best score so far after each of the ``K`` search steps.
        per_task: per-task metrics ``{"top1", "pass2", "shape": bool (T,), "pixel": float
            (T,), "evaluations": int (T,)}``.
    """

    metrics: dict[str, Any]
    attempt_1: np.ndarray
    attempt_2: np.ndarray
    attempt_shapes: np.ndarray
    scores: np.ndarray
    traces: np.ndarray
    per_task: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------------------
# Metrics


def _valid(shapes: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Boolean ``(T, R, C)``: True inside each task's ``[rows, cols]`` corner."""
    r = np.arange(rows)[None, :, None]
    c = np.arange(cols)[None, None, :]
    return (r < shapes[:, 0, None, None]) & (c < shapes[:, 1, None, None])


def _exact(
    prediction: np.ndarray, shape: np.ndarray, truth: np.ndarray, truth_shape: np.ndarray
) -> np.ndarray:
    same_shape = np.all(shape == truth_shape, axis=-1)
    inside = _valid(truth_shape, truth.shape[1], truth.shape[2])
    same_cells = np.all((prediction == truth) | ~inside, axis=(1, 2))
    return same_shape & same_cells


def prediction_metrics(
    attempt_1: np.ndarray,
    attempt_2: np.ndarray,
    attempt_shapes: np.ndarray,
    outputs: np.ndarray,
    output_shapes: np.ndarray,
    *,
    pixel_requires_shape: bool = False,
) -> dict[str, np.ndarray]:
    """Per-task correctness of two attempts against the true outputs.

    Args:
        attempt_1: ``(T, R, C)`` predicted grids of attempt 1.
        attempt_2: ``(T, R, C)`` predicted grids of attempt 2.
        attempt_shapes: ``(T, 2, 2)`` predicted ``[rows, cols]`` of attempts 1 and 2.
        outputs: ``(T, R, C)`` true grids (values outside the true shape are ignored).
        output_shapes: ``(T, 2)`` true ``[rows, cols]``.
        pixel_requires_shape: if True, ``pixel`` is 0 whenever the predicted shape is wrong
            (the official pattern evaluation); by default cells of the true output that lie
            inside the predicted shape still count.

    Returns:
        ``{"top1", "pass2", "shape": bool (T,), "pixel": float64 (T,)}``.

    Raises:
        ValueError: if the array shapes are inconsistent.

    Example:
        >>> import numpy as np
        >>> truth = np.array([[[1, 2], [3, 4]]])
        >>> guess = np.array([[[1, 2], [3, 0]]])
        >>> m = prediction_metrics(guess, truth, np.array([[[2, 2], [2, 2]]]), truth,
        ...                        np.array([[2, 2]]))
        >>> bool(m["top1"][0]), bool(m["pass2"][0]), float(m["pixel"][0])
        (False, True, 0.75)
    """
    a1, a2 = np.asarray(attempt_1), np.asarray(attempt_2)
    shapes = np.asarray(attempt_shapes)
    truth, truth_shape = np.asarray(outputs), np.asarray(output_shapes)
    if truth.ndim != 3:
        raise ValueError(f"outputs must have shape (T, R, C), got {truth.shape}")
    num, rows, cols = truth.shape
    for name, value, expected in (
        ("attempt_1", a1, truth.shape),
        ("attempt_2", a2, truth.shape),
        ("attempt_shapes", shapes, (num, 2, 2)),
        ("output_shapes", truth_shape, (num, 2)),
    ):
        if value.shape != expected:
            raise ValueError(f"{name} must have shape {expected}, got {value.shape}")

    top1 = _exact(a1, shapes[:, 0], truth, truth_shape)
    second = _exact(a2, shapes[:, 1], truth, truth_shape)
    shape_ok = np.all(shapes[:, 0] == truth_shape, axis=-1)
    true_cells = _valid(truth_shape, rows, cols)
    predicted_cells = _valid(shapes[:, 0], rows, cols)
    correct = true_cells & predicted_cells & (a1 == truth)
    pixel = correct.sum(axis=(1, 2)) / np.maximum(true_cells.sum(axis=(1, 2)), 1)
    if pixel_requires_shape:
        pixel = np.where(shape_ok, pixel, 0.0)
    return {
        "top1": top1,
        "pass2": top1 | second,
        "shape": shape_ok,
        "pixel": pixel.astype(np.float64),
    }


# --------------------------------------------------------------------------------------
# Batched search and decoding


def _task_fn(
    graphdef: nnx.GraphDef, spec: SearchSpec
) -> Callable[[Any, dict[str, jax.Array], jax.Array], dict[str, jax.Array]]:
    """The per-task computation ``(params, task, key) -> results`` (one task, no batch axis)."""
    encode = encode_fn(graphdef)
    log_likelihood = log_likelihood_fn(graphdef)
    generate = generate_fn(graphdef)

    def objective(z: jax.Array, params: Any, spec_pairs: dict[str, jax.Array]) -> jax.Array:
        values = jax.vmap(lambda pair: log_likelihood(params, z, pair))(spec_pairs)
        return jnp.sum(values)

    def run_search(start, params, spec_pairs, key, keep):
        return ls.search(
            spec.searcher,
            objective,
            start,
            key=key,
            num_steps=spec.num_steps,
            args=(params, spec_pairs),
            keep=keep,
        )

    def one_task(params: Any, task: dict[str, jax.Array], key: jax.Array) -> dict[str, jax.Array]:
        spec_pairs = {name: task[name][:-1] for name in PAIR_KEYS}
        query = {name: task[name][-1] for name in PAIR_KEYS}
        posterior = jax.vmap(lambda pair: encode(params, pair))(spec_pairs)
        start = jnp.mean(posterior.mean, axis=0)
        try:
            result = run_search(start, params, spec_pairs, key, 2)
        except ValueError:
            # The search visits a single point (mean / grad:0): one latent, used twice.
            result = run_search(start, params, spec_pairs, key, 1)

        def decode(z):
            return generate(params, z, query["inputs"], query["input_shapes"])

        grids, shapes = jax.vmap(decode)(result.latents)
        scores = result.scores
        if result.latents.shape[0] == 1:
            grids, shapes = jnp.concatenate([grids, grids]), jnp.concatenate([shapes, shapes])
            scores = jnp.concatenate([scores, scores])
        return {
            "grids": grids.astype(jnp.int32),
            "shapes": shapes.astype(jnp.int32),
            "scores": scores.astype(jnp.float32),
            "trace": result.trace.astype(jnp.float32),
            "evaluations": result.num_evaluations.astype(jnp.int32),
        }

    return one_task


def _batch_fn_uncached(graphdef: nnx.GraphDef, spec: SearchSpec) -> Callable[..., Any]:
    one_task = _task_fn(graphdef, spec)
    return jax.jit(jax.vmap(one_task, in_axes=(None, 0, 0)))


@functools.lru_cache(maxsize=32)
def _batch_fn_cached(graphdef: nnx.GraphDef, spec: SearchSpec) -> Callable[..., Any]:
    return _batch_fn_uncached(graphdef, spec)


def _batch_fn(graphdef: nnx.GraphDef, spec: SearchSpec) -> Callable[..., Any]:
    """One jitted, task-vmapped function per (graph, spec); jit caches per batch shape."""
    try:
        return _batch_fn_cached(graphdef, spec)
    except TypeError:  # unhashable graph or searcher: no cross-call cache
        return _batch_fn_uncached(graphdef, spec)


def _check_tasks(tasks: dict[str, Any]) -> dict[str, np.ndarray]:
    if not isinstance(tasks, dict):
        raise ValueError(f"tasks must be a dict in the pair format, got {type(tasks).__name__}")
    missing = [name for name in PAIR_KEYS if name not in tasks]
    if missing:
        raise ValueError(f"tasks is missing keys {missing}")
    arrays = {name: np.asarray(tasks[name]) for name in PAIR_KEYS}
    grids = arrays["inputs"]
    if grids.ndim != 4:
        raise ValueError(f"tasks['inputs'] must have shape (T, N, R, C), got {grids.shape}")
    num_tasks, num_pairs = grids.shape[:2]
    expected = {
        "inputs": grids.shape,
        "outputs": grids.shape,
        "input_shapes": (num_tasks, num_pairs, 2),
        "output_shapes": (num_tasks, num_pairs, 2),
    }
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise ValueError(f"tasks[{name!r}] must have shape {shape}, got {arrays[name].shape}")
    if num_tasks < 1:
        raise ValueError("tasks holds no task")
    if num_pairs < 2:
        raise ValueError(
            f"each task needs >= 2 pairs (specification + query), got {num_pairs} pair(s)"
        )
    return {name: value.astype(np.int32) for name, value in arrays.items()}


def _pad(batch: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Pads the leading axis to ``size`` by repeating the last task."""
    missing = size - next(iter(batch.values())).shape[0]
    if missing == 0:
        return batch
    return {
        name: np.concatenate([value, np.repeat(value[-1:], missing, axis=0)])
        for name, value in batch.items()
    }


def evaluate_tasks(
    graphdef: nnx.GraphDef,
    params: Any,
    tasks: dict[str, Any],
    spec: SearchSpec,
    key: jax.Array,
    *,
    batch_size: int = 32,
    progress: bool = False,
) -> EvalOutput:
    """Searches, decodes two attempts and scores them for every task.

    Tasks run in batches of ``batch_size`` through one jitted, ``vmap``-ed function (the
    last batch is padded to the same size, so it compiles once per spec and batch size).
    Task ``t`` uses the key ``fold_in(key, t)``, so results do not depend on ``batch_size``.

    Args:
        graphdef: the model graph from ``lpn_arc.model.split_model``.
        params: the parameter pytree from ``split_model``.
        tasks: pair-format dict with a leading task axis: ``"inputs"``/``"outputs"``
            ``(T, N, R, C)`` and ``"input_shapes"``/``"output_shapes"`` ``(T, N, 2)``;
            pairs ``0..N-2`` are the specification, pair ``N-1`` the query.
        spec: the search, e.g. ``parse_search("grad:100")``.
        key: PRNG key of stochastic searchers.
        batch_size: tasks per compiled call (>= 1).
        progress: show a tqdm progress bar over batches.

    Returns:
        An :class:`EvalOutput`.

    Raises:
        ValueError: for malformed tasks (fewer than 2 pairs, inconsistent shapes), a bad
            ``batch_size`` or a ``spec`` that is not a ``SearchSpec``.
    """
    if not isinstance(spec, SearchSpec):
        raise ValueError(f"spec must be a SearchSpec (parse_search(...)), got {spec!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    arrays = _check_tasks(tasks)
    num_tasks = arrays["inputs"].shape[0]
    batch_size = min(batch_size, num_tasks)
    start_time = time.perf_counter()

    batch_fn = _batch_fn(graphdef, spec)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(num_tasks))
    starts: Sequence[int] = range(0, num_tasks, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"eval {spec.text}", unit="batch")

    pieces: list[dict[str, np.ndarray]] = []
    for first in starts:
        last = min(first + batch_size, num_tasks)
        batch = _pad({name: value[first:last] for name, value in arrays.items()}, batch_size)
        batch_keys = keys[first:last]
        if last - first < batch_size:
            batch_keys = jnp.concatenate(
                [batch_keys, jnp.repeat(batch_keys[-1:], batch_size - (last - first), axis=0)]
            )
        out = jax.device_get(batch_fn(params, batch, batch_keys))
        pieces.append({name: np.asarray(value)[: last - first] for name, value in out.items()})
    results = {name: np.concatenate([p[name] for p in pieces]) for name in pieces[0]}
    seconds = time.perf_counter() - start_time

    attempt_1 = results["grids"][:, 0]
    attempt_2 = results["grids"][:, 1]
    attempt_shapes = results["shapes"]
    per_task = prediction_metrics(
        attempt_1,
        attempt_2,
        attempt_shapes,
        arrays["outputs"][:, -1],
        arrays["output_shapes"][:, -1],
    )
    per_task["evaluations"] = results["evaluations"]
    metrics = {
        "search": spec.text,
        "top1": float(per_task["top1"].mean()),
        "pass2": float(per_task["pass2"].mean()),
        "pixel": float(per_task["pixel"].mean()),
        "shape": float(per_task["shape"].mean()),
        "evaluations": round(float(results["evaluations"].mean())),
        "seconds": seconds,
    }
    return EvalOutput(
        metrics=metrics,
        attempt_1=attempt_1,
        attempt_2=attempt_2,
        attempt_shapes=attempt_shapes,
        scores=results["scores"],
        traces=results["trace"],
        per_task=per_task,
    )


# --------------------------------------------------------------------------------------
# Reporting


def _cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if value is None:
        return "-"
    if column in _PERCENT_KEYS:
        return f"{100.0 * float(value):.1f}"
    if column == "seconds":
        return f"{float(value):.1f}"
    return str(value)


def format_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str] = ("search", "top1", "pass2", "pixel", "shape", "evaluations"),
) -> str:
    """Formats metrics dicts as an aligned text table.

    Accuracies (``top1``, ``pass2``, ``pixel``, ``shape``, stored as fractions) are shown as
    percentages with one decimal; missing values as ``-``. The first column is left-aligned,
    the others right-aligned.

    Args:
        rows: metrics dicts, e.g. ``[out.metrics for out in outputs]``.
        columns: the columns to show, in order.

    Returns:
        The table: a header line, a rule and one line per row (no trailing newline).

    Example:
        >>> print(format_table([{"search": "mean", "top1": 0.5, "pass2": 0.5, "pixel": 0.9,
        ...                      "shape": 1.0, "evaluations": 1}]))
        search  top1  pass2  pixel  shape  evaluations
        ------  ----  -----  -----  -----  -----------
        mean    50.0   50.0   90.0  100.0            1
    """
    header = list(columns)
    body = [[_cell(row, column) for column in columns] for row in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        parts = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = ["-" * width for width in widths]
    return "\n".join([line(header), line(rule), *(line(cells) for cells in body)])
