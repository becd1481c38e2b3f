"""Evaluation on ARC tasks: every test input, the task's train pairs as the specification.

Specifications of any number of pairs and any grid size are padded (with a mask) to a few
pair-count and size buckets, so tasks share a few compilations; test inputs are decoded at
the model's full size. :func:`evaluate_arc` returns per-task metrics and an ARC Prize
submission (checked by :func:`lpn_arc.evaluation.validate_submission`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

from lpn_arc.config import ModelConfig, SearchSpec
from lpn_arc.data import ArcTask, decode_grid, evaluation_arrays
from lpn_arc.evaluation.inference import check_choice, run_queries
from lpn_arc.evaluation.metrics import ATTEMPT2_RULES, SECOND_ATTEMPT, score_attempts

__all__ = ["ArcEvalOutput", "evaluate_arc"]


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
    tasks: Sequence[ArcTask],
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
        tasks: :class:`lpn_arc.data.ArcTask` objects (:func:`lpn_arc.data.load_tasks`).
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
    check_choice("attempt2", attempt2, ATTEMPT2_RULES)
    tasks = [task for task in tasks if task.num_test > 0]  # nothing to predict otherwise
    if len(tasks) == 0:
        raise ValueError("no ARC test inputs to evaluate")
    start_time = time.perf_counter()
    config = nnx.merge(graphdef, params).config
    groups = _bucket_groups(tasks, config, pair_buckets, size_buckets, max_pairs)
    # Query ids in task order (they pick the search keys), then one run per bucket.
    first_query = np.cumsum([0] + [task.num_test for task in tasks])
    parts = []
    for (size, side), members in sorted(groups.items()):
        ids = np.concatenate(
            [np.arange(first_query[t], first_query[t + 1]) for t in members]
        ).astype(np.int32)
        arrays, queries = _bucket_queries([tasks[t] for t in members], config, size, side)
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
        )
        truth = {
            name: arrays[name] for name in ("query_outputs", "query_output_shapes", "has_truth")
        }
        parts.append((ids, {**results, **truth}))
    order = np.argsort(np.concatenate([ids for ids, _ in parts]))
    results = {
        name: np.concatenate([part[name] for _, part in parts])[order] for name in parts[0][1]
    }
    seconds = time.perf_counter() - start_time
    return _arc_output(tasks, results, spec.text, attempt2, seconds)


def _bucket_groups(
    tasks: Sequence[ArcTask],
    config: ModelConfig,
    pair_buckets: Sequence[int],
    size_buckets: Sequence[int],
    max_pairs: int | None,
) -> dict[tuple[int, int], list[int]]:
    """``{(padded pair count, padded grid side): [task index, ...]}``: the smallest bucket
    of each kind that holds a task's train pairs and grids."""
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
    return groups


def _bucket_queries(
    group: Sequence[ArcTask], config: ModelConfig, size: int, side: int
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The evaluation arrays of a bucket's tasks and its queries: the specification scored
    at the bucket's size (the same values, less work), the test input at the model's."""
    arrays, _ = evaluation_arrays(group, config.max_rows, config.max_cols, max_pairs=size)
    rows, cols = min(side, config.max_rows), min(side, config.max_cols)
    queries = {
        "spec_pairs": {
            "inputs": arrays["spec_inputs"][..., :rows, :cols],
            "input_shapes": arrays["spec_input_shapes"],
            "outputs": arrays["spec_outputs"][..., :rows, :cols],
            "output_shapes": arrays["spec_output_shapes"],
        },
        "spec_mask": arrays["spec_mask"],
        "query_inputs": arrays["query_inputs"],  # generated at the model's full size
        "query_input_shapes": arrays["query_input_shapes"],
    }
    return arrays, queries


def _arc_output(
    tasks: Sequence[ArcTask],
    results: dict[str, np.ndarray],
    search: str,
    attempt2: str,
    seconds: float,
) -> ArcEvalOutput:
    """Scores the queries' attempts (in task order) and builds the submission, the query
    records and the per-task metrics."""
    index = [(task.task_id, i) for task in tasks for i in range(task.num_test)]
    per_query = score_attempts(
        results,
        results["query_outputs"],
        np.maximum(results["query_output_shapes"], 1),
        attempt2,
    )
    chosen = (0, SECOND_ATTEMPT[attempt2])
    scored = [n for n in ("top1", "pass2", "pass2_official", "shape", "pixel") if n in per_query]
    has_truth = np.asarray(results["has_truth"], bool)

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
        "search": search,
        "tasks": len(submission),
        "queries": len(index),
        "scored_tasks": len(per_task),
        **{name: task_average(name) for name in ("top1", "pass2", "pixel", "shape")},
        "evaluations": round(float(results["evaluations"].mean())),
        "seconds": seconds,
        "seconds_per_task": seconds / len(submission),
    }
    if "pass2_official" in scored:
        metrics["pass2_official"] = task_average("pass2_official")
    return ArcEvalOutput(metrics=metrics, submission=submission, queries=records)
