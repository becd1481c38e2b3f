"""Evaluation of stacked tasks of ``N >= 2`` pairs (generated PATTERN tasks).

The first ``N - 1`` pairs are the specification and the last pair is the query
(``holdout="last"``), or each pair in turn is the query (``holdout="all"``, the official
protocol). Metrics are averaged over queries (see :mod:`lpn_arc.evaluation.metrics`).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import numpy as np
from flax import nnx

from lpn_arc.config import SearchSpec
from lpn_arc.data import Pair
from lpn_arc.evaluation.inference import check_choice, run_queries
from lpn_arc.evaluation.metrics import ATTEMPT2_RULES, SECOND_ATTEMPT, score_attempts

__all__ = ["HOLDOUTS", "EvalOutput", "evaluate_tasks"]

HOLDOUTS = ("last", "all")
"""Which pairs of a generated task are predicted: the last, or each in turn."""


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


def _check_tasks(tasks: Pair) -> Pair:
    if not isinstance(tasks, Pair):
        raise ValueError(f"tasks must be a lpn_arc.data.Pair, got {type(tasks).__name__}")
    arrays = {name: np.asarray(value) for name, value in tasks.arrays().items()}
    grids = arrays["inputs"]
    if grids.ndim != 4:
        raise ValueError(f"tasks.inputs must have shape (T, N, R, C), got {grids.shape}")
    num_tasks, num_pairs = grids.shape[:2]
    expected = {
        "inputs": grids.shape,
        "outputs": grids.shape,
        "input_shapes": (num_tasks, num_pairs, 2),
        "output_shapes": (num_tasks, num_pairs, 2),
    }
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise ValueError(f"tasks.{name} must have shape {shape}, got {arrays[name].shape}")
    if num_tasks < 1:
        raise ValueError("tasks holds no task")
    if num_pairs < 2:
        raise ValueError(
            f"each task needs >= 2 pairs (specification + query), got {num_pairs} pair(s)"
        )
    return Pair(**{name: value.astype(np.int32) for name, value in arrays.items()})


def _holdout_queries(tasks: Pair, holdout: str) -> tuple[dict[str, Any], ...]:
    """Queries of stacked tasks: ``(queries, truth, ids)``; with ``"all"`` each pair of a
    task is predicted from the others (task-major order), with ``"last"`` the last pair."""
    num_tasks, num_pairs = tasks.inputs.shape[:2]
    held = [num_pairs - 1] if holdout == "last" else list(range(num_pairs))
    others = np.array([[j for j in range(num_pairs) if j != i] for i in held])  # (H, N-1)
    queries = {
        "spec_pairs": jax.tree.map(  # (T * H, N - 1, ...)
            lambda x: x[:, others].reshape(-1, num_pairs - 1, *x.shape[2:]), tasks
        ),
        "spec_mask": np.ones((num_tasks * len(held), num_pairs - 1), bool),
        "query_inputs": tasks.inputs[:, held].reshape(-1, *tasks.inputs.shape[2:]),
        "query_input_shapes": tasks.input_shapes[:, held].reshape(-1, 2),
    }
    truth = (
        tasks.outputs[:, held].reshape(-1, *tasks.outputs.shape[2:]),
        tasks.output_shapes[:, held].reshape(-1, 2),
    )
    # Keys: task t (holdout "last") keeps key fold_in(key, t); pair i of task t gets t*N + i.
    ids = np.arange(num_tasks) if holdout == "last" else np.arange(num_tasks * num_pairs)
    return queries, truth, ids


def evaluate_tasks(
    graphdef: nnx.GraphDef,
    params: Any,
    tasks: Pair,
    spec: SearchSpec,
    key: jax.Array,
    *,
    batch_size: int = 32,
    candidates: int = 2,
    start: str = "mean",
    attempt2: str = "distinct",
    holdout: str = "last",
    stop: str = "none",
    progress: bool = False,
) -> EvalOutput:
    """Searches, decodes two attempts and scores them for every task.

    Tasks run in batches of ``batch_size`` through one jitted, ``vmap``-ed function (the
    last batch is padded to the same size, so it compiles once per spec and batch size).
    Query ``q`` uses the key ``fold_in(key, q)``, so results do not depend on ``batch_size``.

    Args:
        graphdef: the model graph from :func:`lpn_arc.model.split_model`.
        params: the parameter pytree from ``split_model``.
        tasks: a :class:`~lpn_arc.data.Pair` with a leading task axis: ``inputs`` and
            ``outputs`` ``(T, N, R, C)``, ``input_shapes`` and ``output_shapes`` ``(T, N, 2)``.
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
        stop: ``"none"``: every search spends its budget; ``"exact"``: a query's search ends
            at the first latent whose greedy decoding reproduces every specification pair
            (read off the logits the search computes anyway; that latent is attempt 1);
            ``"exact:P"``: ... and gives every specification pair a probability of at
            least ``P`` (:data:`lpn_arc.evaluation.inference.STOPS`).
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
    tasks = _check_tasks(tasks)
    check_choice("attempt2", attempt2, ATTEMPT2_RULES)
    check_choice("holdout", holdout, HOLDOUTS)
    start_time = time.perf_counter()
    queries, (outputs, output_shapes), ids = _holdout_queries(tasks, holdout)
    results = run_queries(
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
        stop=stop,
    )
    seconds = time.perf_counter() - start_time

    per_task = score_attempts(results, outputs, output_shapes, attempt2)
    per_task["evaluations"] = results["evaluations"]
    second = SECOND_ATTEMPT[attempt2]
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
