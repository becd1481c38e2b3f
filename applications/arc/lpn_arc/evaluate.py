"""Evaluation of an LPN model on tasks: latent search, two attempts and accuracy metrics.

Two entry points share one compiled per-query computation:

* :func:`evaluate_tasks` for stacked tasks of ``N >= 2`` pairs (generated PATTERN tasks):
  the first ``N - 1`` pairs are the specification, the last pair is the query;
* :func:`evaluate_arc` for ARC tasks: every test input, with all of the task's train pairs
  as the specification (padded with a mask), an ARC Prize submission and per-task metrics.

Per query:

1. encode the specification pairs; the start latent is the mean of the encoder *means*
   (``start="mean"``, deterministic) or, as the official code, the mean of latents
   *sampled* from each pair's posterior (``start="sample"``);
2. search latent space with ``latentsearch.search``, maximising the sum over the
   specification pairs of the decoder log-likelihood;
3. decode attempt 1 from the best latent; attempt 2 (``attempt2="distinct"``) from the
   best-ranked of the next best distinct latents whose output differs from attempt 1, or
   (``attempt2="official"``) from the second-best latent visited, whatever it decodes to.
   Both equal attempt 1 when the search visits a single point (``mean``, ``grad:0``).

Metrics (per task, then averaged over tasks): ``top1`` (attempt 1 matches the truth
exactly: shape and every cell), ``pass2`` (attempt 1 or attempt 2 does), ``shape``
(attempt 1 has the true shape) and ``pixel`` (fraction of the true output's cells that
attempt 1 gets right, counted only when its shape is right, else 0: the official metric).
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
from lpn_arc.grids import MAX_GRID_SIZE, PAIR_KEYS, decode_grid, encode_grid
from lpn_arc.model import encode_fn, generate_fn, log_likelihood_fn, precompute_fn
from lpn_arc.searchspec import SearchSpec

__all__ = [
    "METRIC_KEYS",
    "ArcEvalOutput",
    "EvalOutput",
    "evaluate_arc",
    "evaluate_tasks",
    "validate_submission",
    "format_table",
    "prediction_metrics",
]

METRIC_KEYS = ("search", "top1", "pass2", "pixel", "shape", "evaluations", "seconds")
STARTS = ("mean", "sample")
"""Start latents: the mean of the encoder means, or of sampled per-pair latents."""
ATTEMPT2_RULES = ("distinct", "official", "both")
"""How attempt 2 is chosen (``both``: ``distinct``, with the official rule's pass@2 too)."""
HOLDOUTS = ("last", "all")
"""Which pairs of a generated task are predicted: the last, or each in turn."""
_PERCENT_KEYS = ("top1", "pass2", "pass2_official", "pixel", "shape")


@dataclasses.dataclass
class EvalOutput:
    """The result of :func:`evaluate_tasks` on ``T`` queries (one per task, or one per task
    and pair with ``holdout="all"``; "task" below means query).

    Attributes:
        metrics: ``{"search": spec text, "top1", "pass2", "pixel", "shape": fractions in
            [0, 1] averaged over tasks, "evaluations": mean objective evaluations per task
            (int), "seconds": wall-clock time of the whole evaluation, compilation included}``
            and, with ``attempt2="both"``, ``"pass2_official"``.
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
) -> dict[str, np.ndarray]:
    """Per-task correctness of two attempts against the true outputs.

    Args:
        attempt_1: ``(T, R, C)`` predicted grids of attempt 1.
        attempt_2: ``(T, R, C)`` predicted grids of attempt 2.
        attempt_shapes: ``(T, 2, 2)`` predicted ``[rows, cols]`` of attempts 1 and 2.
        outputs: ``(T, R, C)`` true grids (values outside the true shape are ignored).
        output_shapes: ``(T, 2)`` true ``[rows, cols]``.

    Returns:
        ``{"top1", "pass2", "shape": bool (T,), "pixel": float64 (T,)}``; ``pixel`` is the
        fraction of the true cells that attempt 1 gets right when its shape is right, and
        0 when it is not (as the official evaluator).

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
    correct = true_cells & (a1 == truth)
    pixel = correct.sum(axis=(1, 2)) / np.maximum(true_cells.sum(axis=(1, 2)), 1)
    pixel = np.where(shape_ok, pixel, 0.0)
    return {
        "top1": top1,
        "pass2": top1 | second,
        "shape": shape_ok,
        "pixel": pixel.astype(np.float64),
    }


# --------------------------------------------------------------------------------------
# Batched search and decoding


def _query_fn(
    graphdef: nnx.GraphDef, spec: SearchSpec, candidates: int, start: str
) -> Callable[..., dict[str, jax.Array]]:
    """The per-query computation (one query, no batch axis).

    ``(params, spec_pairs, spec_mask, query_inputs, query_input_shapes, key) -> results``:
    ``spec_pairs`` holds ``P`` (padded) specification pairs of which ``spec_mask`` marks the
    real ones, so tasks with any number of pairs share one compiled function. The results
    hold three attempts: the best latent's decoding, the distinct rule's second attempt and
    the official rule's (the second-best latent's decoding).
    """
    encode = encode_fn(graphdef)
    log_likelihood = log_likelihood_fn(graphdef)
    precompute = precompute_fn(graphdef)
    generate = generate_fn(graphdef)

    starts = ls.Starts(aggregate="mean" if start == "mean" else "sample")
    # a search without steps visits one latent: decode it once, not ``candidates`` times
    keep = 1 if spec.num_steps == 0 else candidates

    def one_query(params, spec_pairs, spec_mask, query_inputs, query_input_shapes, key):
        # the input cache of the input-only mask (precompute) is built once per pair
        result = ls.infer(
            params,
            log_likelihood,
            spec_pairs,
            key,
            encode=encode,
            pair_mask=spec_mask,
            starts=starts,
            searcher=spec.searcher,
            num_steps=spec.num_steps,
            keep=keep,
            precompute=precompute,
        )

        def decode(z):
            return generate(params, z, query_inputs, query_input_shapes)

        grids, shapes = jax.vmap(decode)(result.latents)
        found = jnp.isfinite(result.scores)
        ranks = jnp.arange(grids.shape[0])
        # Distinct rule: the best-ranked other latent whose decoding differs from attempt 1
        # (attempt 1 again when every candidate decodes to the same grid).
        differs = jnp.any(grids != grids[0], axis=(1, 2)) | jnp.any(shapes != shapes[0], axis=1)
        differs = differs & found & (ranks > 0)
        distinct = jnp.where(jnp.any(differs), jnp.argmax(differs), 0)
        # Official rule: the second-best latent visited, whatever it decodes to.
        official = jnp.where(found[1], 1, 0) if grids.shape[0] > 1 else jnp.asarray(0)
        chosen = jnp.stack([0, distinct, official])
        return {
            "grids": grids[chosen].astype(jnp.int32),
            "shapes": shapes[chosen].astype(jnp.int32),
            "scores": result.scores[chosen].astype(jnp.float32),
            "trace": result.trace.astype(jnp.float32),
            "evaluations": result.num_evaluations.astype(jnp.int32),
        }

    return one_query


def _batch_fn_uncached(
    graphdef: nnx.GraphDef, spec: SearchSpec, candidates: int, start: str
) -> Callable[..., Any]:
    one_query = _query_fn(graphdef, spec, candidates, start)
    return jax.jit(jax.vmap(one_query, in_axes=(None, 0, 0, 0, 0, 0)))


@functools.lru_cache(maxsize=32)
def _batch_fn_cached(graphdef: nnx.GraphDef, spec: SearchSpec, candidates: int, start: str):
    return _batch_fn_uncached(graphdef, spec, candidates, start)


def _batch_fn(
    graphdef: nnx.GraphDef, spec: SearchSpec, candidates: int, start: str
) -> Callable[..., Any]:
    """One jitted, query-vmapped function per (graph, spec); jit caches per batch shape."""
    try:
        return _batch_fn_cached(graphdef, spec, candidates, start)
    except TypeError:  # unhashable graph or searcher: no cross-call cache
        return _batch_fn_uncached(graphdef, spec, candidates, start)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


_QUERY_KEYS = ("spec_pairs", "spec_mask", "query_inputs", "query_input_shapes")


def _run_queries(
    graphdef: nnx.GraphDef,
    params: Any,
    queries: dict[str, Any],
    spec: SearchSpec,
    key: jax.Array,
    *,
    batch_size: int,
    candidates: int,
    start: str,
    progress: bool,
    ids: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Runs search + decoding for ``Q`` queries in padded batches; numpy results ``(Q, ...)``.

    Query ``q`` uses the key ``fold_in(key, ids[q])`` (``ids`` defaults to ``0..Q-1``), so
    results do not depend on ``batch_size``.
    """
    if not isinstance(spec, SearchSpec):
        raise ValueError(f"spec must be a SearchSpec (parse_search(...)), got {spec!r}")
    _check_choice("start", start, STARTS)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 2:
        raise ValueError(f"candidates must be an int >= 2, got {candidates!r}")
    num = queries["spec_mask"].shape[0]
    batch_size = min(batch_size, num)
    batch_fn = _batch_fn(graphdef, spec, candidates, start)
    ids = np.arange(num) if ids is None else np.asarray(ids)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.asarray(ids, jnp.int32))
    starts: Sequence[int] = range(0, num, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"eval {spec.text}", unit="batch")
    pieces: list[dict[str, np.ndarray]] = []
    for first in starts:
        last = min(first + batch_size, num)
        rows = slice(first, last)
        batch = _pad(
            jax.tree_util.tree_map(lambda x, r=rows: np.asarray(x)[r], queries), batch_size
        )
        batch_keys = keys[first:last]
        if last - first < batch_size:
            batch_keys = jnp.concatenate(
                [batch_keys, jnp.repeat(batch_keys[-1:], batch_size - (last - first), axis=0)]
            )
        out = jax.device_get(batch_fn(params, *(batch[k] for k in _QUERY_KEYS), batch_keys))
        pieces.append({name: np.asarray(value)[: last - first] for name, value in out.items()})
    return {name: np.concatenate([p[name] for p in pieces]) for name in pieces[0]}


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


def _pad(batch: Any, size: int) -> Any:
    """Pads the leading axis of every array to ``size`` by repeating the last row."""
    leaves = jax.tree_util.tree_leaves(batch)
    missing = size - leaves[0].shape[0]
    if missing == 0:
        return batch
    return jax.tree_util.tree_map(
        lambda value: np.concatenate([value, np.repeat(value[-1:], missing, axis=0)]), batch
    )


# results["grids"][:, k]: k = 0 attempt 1, 1 the distinct rule's attempt 2, 2 the official's
_SECOND = {"distinct": 1, "official": 2, "both": 1}


def _score(
    results: dict[str, np.ndarray], outputs: np.ndarray, output_shapes: np.ndarray, attempt2: str
) -> dict[str, np.ndarray]:
    """Per-query metrics of attempt 1 and the ``attempt2`` rule's attempt 2 (with
    ``"both"``, also ``pass2_official``)."""
    grids, shapes = results["grids"], results["shapes"]
    second = _SECOND[attempt2]
    per = prediction_metrics(
        grids[:, 0], grids[:, second], shapes[:, [0, second]], outputs, output_shapes
    )
    if attempt2 == "both":
        official = prediction_metrics(
            grids[:, 0], grids[:, 2], shapes[:, [0, 2]], outputs, output_shapes
        )
        per["pass2_official"] = official["pass2"]
    return per


def _holdout_queries(arrays: dict[str, np.ndarray], holdout: str) -> tuple[dict[str, Any], ...]:
    """Queries of stacked tasks: ``(queries, truth, ids)``; with ``"all"`` each pair of a
    task is predicted from the others (task-major order), with ``"last"`` the last pair."""
    num_tasks, num_pairs = arrays["inputs"].shape[:2]
    held = [num_pairs - 1] if holdout == "last" else list(range(num_pairs))
    others = np.array([[j for j in range(num_pairs) if j != i] for i in held])  # (H, N-1)
    queries = {
        "spec_pairs": {  # (T * H, N - 1, ...)
            name: arrays[name][:, others].reshape(-1, num_pairs - 1, *arrays[name].shape[2:])
            for name in PAIR_KEYS
        },
        "spec_mask": np.ones((num_tasks * len(held), num_pairs - 1), bool),
        "query_inputs": arrays["inputs"][:, held].reshape(-1, *arrays["inputs"].shape[2:]),
        "query_input_shapes": arrays["input_shapes"][:, held].reshape(-1, 2),
    }
    truth = (
        arrays["outputs"][:, held].reshape(-1, *arrays["outputs"].shape[2:]),
        arrays["output_shapes"][:, held].reshape(-1, 2),
    )
    # Keys: task t (holdout "last") keeps key fold_in(key, t); pair i of task t gets t*N + i.
    ids = np.arange(num_tasks) if holdout == "last" else np.arange(num_tasks * num_pairs)
    return queries, truth, ids


def evaluate_tasks(
    graphdef: nnx.GraphDef,
    params: Any,
    tasks: dict[str, Any],
    spec: SearchSpec,
    key: jax.Array,
    *,
    batch_size: int = 32,
    candidates: int = 2,
    start: str = "mean",
    attempt2: str = "distinct",
    holdout: str = "last",
    progress: bool = False,
) -> EvalOutput:
    """Searches, decodes two attempts and scores them for every task.

    Tasks run in batches of ``batch_size`` through one jitted, ``vmap``-ed function (the
    last batch is padded to the same size, so it compiles once per spec and batch size).
    Query ``q`` uses the key ``fold_in(key, q)``, so results do not depend on ``batch_size``.

    Args:
        graphdef: the model graph from ``lpn_arc.model.split_model``.
        params: the parameter pytree from ``split_model``.
        tasks: pair-format dict with a leading task axis: ``"inputs"``/``"outputs"``
            ``(T, N, R, C)`` and ``"input_shapes"``/``"output_shapes"`` ``(T, N, 2)``.
        spec: the search, e.g. ``parse_search("grad:100")``.
        key: PRNG key of stochastic searchers (and of ``start="sample"``).
        batch_size: queries per compiled call (>= 1).
        candidates: best distinct latents decoded per query (>= 2).
        start: ``"mean"``: the search starts at the mean of the specification pairs'
            encoder means; ``"sample"``: at the mean of latents sampled from each pair's
            posterior (the official code).
        attempt2: ``"distinct"``: attempt 2 is the best-ranked candidate after the first
            whose output differs from attempt 1; ``"official"``: the second-best latent
            visited, whatever it decodes to; ``"both"``: ``distinct``, and the metrics also
            hold the official rule's ``pass2_official``.
        holdout: ``"last"``: pairs ``0..N-2`` are the specification and pair ``N-1`` the
            query; ``"all"``: each pair in turn is the query, the others the specification
            (the official protocol: ``N`` predictions per task).
        progress: show a tqdm progress bar over batches.

    Returns:
        An :class:`EvalOutput`: one row per query, so ``T`` rows with ``holdout="last"``
        and ``T * N`` (task-major: row ``t * N + i`` predicts pair ``i`` of task ``t``)
        with ``"all"``; metrics are averaged over the queries.

    Raises:
        ValueError: for malformed tasks (fewer than 2 pairs, inconsistent shapes), a bad
            ``batch_size``, ``start``, ``attempt2`` or ``holdout``, or a ``spec`` that is
            not a ``SearchSpec``.
    """
    arrays = _check_tasks(tasks)
    _check_choice("attempt2", attempt2, ATTEMPT2_RULES)
    _check_choice("holdout", holdout, HOLDOUTS)
    start_time = time.perf_counter()
    queries, (outputs, output_shapes), ids = _holdout_queries(arrays, holdout)
    results = _run_queries(
        graphdef,
        params,
        queries,
        spec,
        key,
        batch_size=batch_size,
        candidates=candidates,
        start=start,
        progress=progress,
        ids=ids,
    )
    seconds = time.perf_counter() - start_time

    per_task = _score(results, outputs, output_shapes, attempt2)
    per_task["evaluations"] = results["evaluations"]
    second = _SECOND[attempt2]
    metrics = {
        "search": spec.text,
        "top1": float(per_task["top1"].mean()),
        "pass2": float(per_task["pass2"].mean()),
        "pixel": float(per_task["pixel"].mean()),
        "shape": float(per_task["shape"].mean()),
        "evaluations": round(float(results["evaluations"].mean())),
        "seconds": seconds,
    }
    if "pass2_official" in per_task:
        metrics["pass2_official"] = float(per_task["pass2_official"].mean())
    return EvalOutput(
        metrics=metrics,
        attempt_1=results["grids"][:, 0],
        attempt_2=results["grids"][:, second],
        attempt_shapes=results["shapes"][:, [0, second]],
        scores=results["scores"][:, [0, second]],
        traces=results["trace"],
        per_task=per_task,
    )


# --------------------------------------------------------------------------------------
# ARC tasks: every test input, any number of specification pairs, submission.json


@dataclasses.dataclass
class ArcEvalOutput:
    """The result of :func:`evaluate_arc`.

    Attributes:
        metrics: ``{"search", "tasks", "queries", "scored_tasks", "top1", "pass2", "pixel",
            "shape", "evaluations", "seconds", "seconds_per_task"}`` (and
            ``"pass2_official"`` with ``attempt2="both"``); the accuracies are
            fractions averaged per task (a task scores the fraction of its test inputs
            solved, as the paper) over the ``scored_tasks`` whose solutions are known (None
            when none are).
        submission: the ARC Prize submission ``{task_id: [{"attempt_1": grid, "attempt_2":
            grid}, ...]}`` with one entry per test input, grids cropped to their predicted
            shapes.
        queries: one record per (task, test input): ``task_id``, ``test_index``, the two
            attempts, their scores, and ``top1``/``pass2``/``shape``/``pixel`` (None when the
            solution is unknown).
    """

    metrics: dict[str, Any]
    submission: dict[str, list[dict[str, list[list[int]]]]]
    queries: list[dict[str, Any]]


def evaluate_arc(
    graphdef: nnx.GraphDef,
    params: Any,
    tasks: Sequence[Any],
    spec: SearchSpec,
    key: jax.Array,
    *,
    batch_size: int = 4,
    candidates: int = 4,
    pair_buckets: Sequence[int] = (3, 5, 10),
    size_buckets: Sequence[int] = (10, 20, 30),
    max_pairs: int | None = None,
    start: str = "mean",
    attempt2: str = "distinct",
    progress: bool = False,
) -> ArcEvalOutput:
    """Solves every test input of ARC tasks: search from all train pairs, two attempts.

    The specification of a test input is all of its task's train pairs, padded with a mask
    (:func:`lpn_arc.data.evaluation_arrays`) to the smallest of ``pair_buckets`` that holds
    them, so any number of pairs compiles at most once per bucket (padded pairs cost
    compute: one bucket of 10 would make a 2-pair task 5 times dearer). Likewise the
    specification grids are scored padded to the smallest of ``size_buckets`` that holds
    all of a task's train grids (a 10 x 10 bucket is a 205-token decoder sequence instead
    of 1805 at 30 x 30; masked padding changes no value). Test inputs are decoded at the
    model's full size, since the output's size is not known in advance.

    Attempt 1 decodes the best latent the search found; attempt 2 (``attempt2``) the
    best-ranked of the ``candidates`` best distinct latents whose output differs from
    attempt 1 (attempt 1 again when none does), or the second-best latent visited (the
    official rule).

    Args:
        graphdef: the model graph.
        params: the parameters.
        tasks: :class:`lpn_arc.data.ArcTask` objects (``lpn_arc.data.load_tasks``).
        spec: the search, e.g. ``parse_search("grad:200")``.
        key: PRNG key of stochastic searchers.
        batch_size: test inputs per compiled call.
        candidates: distinct latents decoded per test input (>= 2).
        pair_buckets: padded specification sizes (a task with more train pairs than the
            largest bucket is padded to the largest count among ``tasks``).
        size_buckets: padded grid sides of the specification (capped at the model's).
        max_pairs: one padded specification size for every task (overrides the buckets).
        start: ``"mean"`` (mean of the encoder means) or ``"sample"`` (mean of sampled
            per-pair latents, the official code); see :func:`evaluate_tasks`.
        attempt2: ``"distinct"``, ``"official"`` or ``"both"`` (``distinct`` in the
            submission, and ``pass2_official`` in the metrics); see :func:`evaluate_tasks`.
        progress: show a progress bar.

    Returns:
        An :class:`ArcEvalOutput`.

    Raises:
        lpn_arc.data.DataError: if a grid does not fit the model or a task has more train
            pairs than ``max_pairs``.
        ValueError: for an empty task list or bad arguments.
    """
    from lpn_arc.data import evaluation_arrays

    _check_choice("attempt2", attempt2, ATTEMPT2_RULES)
    tasks = [task for task in tasks if task.num_test > 0]  # nothing to predict otherwise
    if len(tasks) == 0:
        raise ValueError("no ARC test inputs to evaluate")
    start_time = time.perf_counter()
    config = nnx.merge(graphdef, params).config
    for name, values in (("pair_buckets", pair_buckets), ("size_buckets", size_buckets)):
        if not values or any(
            isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in values
        ):
            raise ValueError(f"{name} must be positive ints, got {values!r}")
    sides = sorted(
        {min(int(b), config.max_rows, config.max_cols) for b in size_buckets}
        | {max(config.max_rows, config.max_cols)}
    )
    largest = max(len(task.train) for task in tasks)
    groups: dict[tuple[int, int], list[int]] = {}
    for t, task in enumerate(tasks):
        # max_pairs pads every task alike (evaluation_arrays reports one with more pairs)
        size = max_pairs or next((b for b in sorted(pair_buckets) if b >= len(task.train)), largest)
        extent = max(max(g.shape) for pair in task.train for g in pair)
        side = next((b for b in sides if b >= extent), sides[-1])
        groups.setdefault((size, side), []).append(t)

    # Query ids in task order (they pick the search keys), then one run per bucket.
    first_query = np.cumsum([0] + [task.num_test for task in tasks])
    parts = []
    for (size, side), members in sorted(groups.items()):
        group = [tasks[t] for t in members]
        arrays, _ = evaluation_arrays(group, config.max_rows, config.max_cols, max_pairs=size)
        rows, cols = min(side, config.max_rows), min(side, config.max_cols)
        ids = np.concatenate(
            [np.arange(first_query[t], first_query[t + 1]) for t in members]
        ).astype(np.int32)
        queries = {
            "spec_pairs": {  # scored at the bucket's size: same values, less work
                "inputs": arrays["spec_inputs"][..., :rows, :cols],
                "input_shapes": arrays["spec_input_shapes"],
                "outputs": arrays["spec_outputs"][..., :rows, :cols],
                "output_shapes": arrays["spec_output_shapes"],
            },
            "spec_mask": arrays["spec_mask"],
            "query_inputs": arrays["query_inputs"],  # generated at the model's full size
            "query_input_shapes": arrays["query_input_shapes"],
        }
        results = _run_queries(
            graphdef,
            params,
            queries,
            spec,
            key,
            batch_size=batch_size,
            candidates=candidates,
            start=start,
            progress=progress,
            ids=ids,
        )
        truth = {
            name: arrays[name] for name in ("query_outputs", "query_output_shapes", "has_truth")
        }
        parts.append((ids, {**results, **truth}))
    order = np.argsort(np.concatenate([ids for ids, _ in parts]))
    merged = {
        name: np.concatenate([part[name] for _, part in parts])[order] for name in parts[0][1]
    }
    results = arrays = merged
    index = [(task.task_id, i) for task in tasks for i in range(task.num_test)]
    seconds = time.perf_counter() - start_time
    per_query = _score(
        results,
        arrays["query_outputs"],
        np.maximum(arrays["query_output_shapes"], 1),
        attempt2,
    )
    chosen = (0, _SECOND[attempt2])
    scored = [n for n in ("top1", "pass2", "pass2_official", "shape", "pixel") if n in per_query]
    has_truth = np.asarray(arrays["has_truth"], bool)

    submission: dict[str, list[dict[str, list[list[int]]]]] = {}
    records: list[dict[str, Any]] = []
    per_task: dict[str, dict[str, list[float]]] = {}
    for q, (task_id, test_index) in enumerate(index):
        attempts = [decode_grid(results["grids"][q, a], results["shapes"][q, a]) for a in chosen]
        submission.setdefault(task_id, []).append(
            {"attempt_1": attempts[0], "attempt_2": attempts[1]}
        )
        record: dict[str, Any] = {
            "task_id": task_id,
            "test_index": int(test_index),
            "attempt_1": attempts[0],
            "attempt_2": attempts[1],
            "scores": [float(results["scores"][q, a]) for a in chosen],
        }
        for name in scored:
            value = per_query[name][q]
            record[name] = (
                (bool(value) if name != "pixel" else float(value)) if has_truth[q] else None
            )
            if has_truth[q]:
                per_task.setdefault(task_id, {}).setdefault(name, []).append(float(value))
        records.append(record)

    def task_average(name: str) -> float | None:
        if not per_task:
            return None
        return float(np.mean([np.mean(scores[name]) for scores in per_task.values()]))

    metrics = {
        "search": spec.text,
        "tasks": len(submission),
        "queries": len(index),
        "scored_tasks": len(per_task),
        "top1": task_average("top1"),
        "pass2": task_average("pass2"),
        "pixel": task_average("pixel"),
        "shape": task_average("shape"),
        "evaluations": round(float(results["evaluations"].mean())),
        "seconds": seconds,
        "seconds_per_task": seconds / len(submission),
    }
    if "pass2_official" in scored:
        metrics["pass2_official"] = task_average("pass2_official")
    return ArcEvalOutput(metrics=metrics, submission=submission, queries=records)


def validate_submission(submission: Any, tasks: Sequence[Any] | None = None) -> None:
    """Checks an ARC Prize submission against the schema (and the tasks, when given).

    The schema: ``{task_id: [{"attempt_1": grid, "attempt_2": grid}, ...]}``, both attempts
    always present, every grid a non-empty rectangular list of lists of ints 0-9 of at most
    30 x 30; with ``tasks``, exactly the ids of those with test inputs, one entry per
    test input.

    Args:
        submission: the parsed ``submission.json``.
        tasks: optional :class:`lpn_arc.data.ArcTask` objects it should answer.

    Raises:
        ValueError: naming the task, the test input and the attempt that break the schema.

    Example:
        >>> validate_submission({"t": [{"attempt_1": [[1]], "attempt_2": [[2, 0]]}]})
        >>> validate_submission({"t": [{"attempt_1": [[1]]}]})
        Traceback (most recent call last):
        ...
        ValueError: submission: task t, test input 0: missing 'attempt_2'
    """
    if not isinstance(submission, dict):
        raise ValueError(f"submission: expected a JSON object, got {type(submission).__name__}")
    for task_id, entries in submission.items():
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"submission: task {task_id}: expected a non-empty list")
        for i, entry in enumerate(entries):
            where = f"submission: task {task_id}, test input {i}"
            if not isinstance(entry, dict):
                raise ValueError(f"{where}: expected an object with attempt_1 and attempt_2")
            for name in ("attempt_1", "attempt_2"):
                if name not in entry:
                    raise ValueError(f"{where}: missing {name!r}")
                encode_grid(entry[name], MAX_GRID_SIZE, MAX_GRID_SIZE, where=f"{where}, {name}")
    if tasks is not None:
        expected = {task.task_id: task.num_test for task in tasks if task.num_test > 0}
        if set(expected) != set(submission):
            missing = sorted(set(expected) - set(submission))
            extra = sorted(set(submission) - set(expected))
            raise ValueError(f"submission: missing tasks {missing}, unexpected tasks {extra}")
        for task_id, count in expected.items():
            if len(submission[task_id]) != count:
                raise ValueError(
                    f"submission: task {task_id} has {len(submission[task_id])} entries for "
                    f"{count} test inputs"
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
