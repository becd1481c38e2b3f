"""Evaluation on ARC tasks: every test input, the task's train pairs as the specification.

**Size buckets.** A task is padded to the smallest rows and the smallest columns of a fixed
ladder (default: a third, two thirds and all of the model's size, so 10, 20, 30 for a
30 x 30 model and 4, 7, 10 for a 10 x 10 one; rows and columns separately) that hold all
its grids: its demonstrations and its test inputs. Its specification is scored and its
output generated in that size (the same values as at the model's full size, less work: a
10 x 10 bucket is a 205-token decoder sequence instead of 1,805 at 30 x 30), and its
number of pairs is padded (with a mask) to a few pair buckets, so tasks share at most
``pair buckets x ladder^2`` compilations. An unknown test output may be larger than its
bucket (3 of the 419 test inputs of ARC-AGI-1 evaluation): when the model predicts a shape
the bucket cannot hold, that test input is solved again at the model's full size, so the
results equal those of full padding. :func:`evaluate_arc` returns per-task metrics and an
ARC Prize submission (checked by :func:`lpn_arc.evaluation.validate_submission`).
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
from lpn_arc.data import ArcTask, Pair, decode_grid, evaluation_arrays
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
    size_buckets: Sequence[int] | None = None,
    buckets: bool = True,
    larger: str = "error",
    stop: str = "none",
    max_pairs: int | None = None,
    start: str = "mean",
    attempt2: str = "distinct",
    progress: bool = False,
) -> ArcEvalOutput:
    """Solves every test input of ARC tasks: search from all train pairs, two attempts.

    The specification of a test input is all of its task's train pairs, padded with a mask
    (:func:`lpn_arc.data.evaluation_arrays`) to the smallest of ``pair_buckets`` that holds
    them, so any number of pairs compiles at most once per bucket (padded pairs cost
    compute: one bucket of 10 would make a 2-pair task 5 times dearer). With ``buckets``
    the task's grids are padded to its size bucket (see the module docstring): the
    results are those of full padding, for less work.

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
        size_buckets: the ladder of padded rows and columns (each capped at the model's);
            None: :func:`default_ladder` of the model.
        buckets: pad each task to its size bucket (default); False pads every grid to the
            model's ``max_rows x max_cols``.
        larger: a task with a grid larger than the model's: ``"error"`` (default, a
            :class:`~lpn_arc.data.DataError` naming it) or ``"unsolved"``: not run, every
            test input answered with a 1 x 1 black grid and scored wrong, and counted in
            ``metrics["too_large"]`` (a small model scored on a whole evaluation set).
        stop: ``"none"``, ``"exact"`` or ``"exact:P"``: see
            :func:`lpn_arc.evaluation.evaluate_tasks`.
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
    check_choice("larger", larger, ("error", "unsolved"))
    tasks = [task for task in tasks if task.num_test > 0]  # nothing to predict otherwise
    if len(tasks) == 0:
        raise ValueError("no ARC test inputs to evaluate")
    start_time = time.perf_counter()
    config = nnx.merge(graphdef, params).config
    too_large = [] if larger == "error" else [t for t in tasks if not _fits(t, config)]
    if too_large:
        tasks = [t for t in tasks if _fits(t, config)]
        if not tasks:
            return _with_unsolved(None, too_large, spec.text, time.perf_counter() - start_time)
    if size_buckets is None:
        size_buckets = default_ladder(config)
    ladder = _ladder(size_buckets) if buckets else ()
    groups = _bucket_groups(tasks, config, pair_buckets, ladder, max_pairs)
    # Query ids in task order (they pick the search keys), then one run per bucket.
    first_query = np.cumsum([0] + [task.num_test for task in tasks])
    full = (config.max_rows, config.max_cols)

    def run(members, size, bucket):
        ids = np.concatenate([np.arange(first_query[t], first_query[t + 1]) for t in members])
        ids = ids.astype(np.int32)
        arrays, queries = _bucket_queries([tasks[t] for t in members], config, size, bucket)
        results = run_queries(
            graphdef, params, queries, spec, key, batch_size=batch_size,
            candidates=candidates, start=start, progress=progress, ids=ids, stop=stop,
        )  # fmt: skip
        results = {**results, "grids": _pad_grids(results["grids"], full)}
        truth = {n: arrays[n] for n in ("query_outputs", "query_output_shapes", "has_truth")}
        return ids, {**results, **truth}

    parts = []
    for (size, *bucket), members in sorted(groups.items()):
        ids, results = run(members, size, tuple(bucket))
        owners = np.repeat(members, [tasks[t].num_test for t in members])
        overflow = np.any(results["shapes"] > np.asarray(bucket), axis=(1, 2))
        redo = sorted(set(owners[overflow].tolist()))
        if redo:  # an output larger than the bucket: those tasks again, at the full size
            keep = ~np.isin(owners, redo)
            parts.append((ids[keep], {n: v[keep] for n, v in results.items()}))
            ids, results = run(redo, size, full)
        parts.append((ids, results))
    order = np.argsort(np.concatenate([ids for ids, _ in parts]))
    results = {
        name: np.concatenate([part[name] for _, part in parts])[order] for name in parts[0][1]
    }
    seconds = time.perf_counter() - start_time
    output = _arc_output(tasks, results, spec.text, attempt2, seconds)
    return _with_unsolved(output, too_large, spec.text, seconds) if larger != "error" else output


def _fits(task: ArcTask, config: ModelConfig) -> bool:
    """Whether every grid of the task (demonstrations, test inputs, known test outputs)
    fits the model: a larger answer is one the model cannot give."""
    grids = [g for pair in task.train for g in pair] + list(task.test_inputs)
    grids += list(task.test_outputs or ())
    return all(g.shape[0] <= config.max_rows and g.shape[1] <= config.max_cols for g in grids)


def _with_unsolved(
    output: ArcEvalOutput | None, too_large: Sequence[ArcTask], search: str, seconds: float
) -> ArcEvalOutput:
    """``output`` with the tasks too large for the model answered by a black 1 x 1 grid and
    scored wrong; the accuracies averaged over every scored task, ``too_large`` counted."""
    submission = dict(output.submission) if output else {}
    queries = list(output.queries) if output else []
    blank = [[0]]
    for task in too_large:
        known = task.test_outputs is not None
        submission[task.task_id] = [{"attempt_1": blank, "attempt_2": blank}] * task.num_test
        for i in range(task.num_test):
            queries.append({
                "task_id": task.task_id, "test_index": i, "attempt_1": blank,
                "attempt_2": blank, "scores": [float("-inf")] * 2, "too_large": True,
                **{n: (False if n != "pixel" else 0.0) if known else None
                   for n in ("top1", "pass2", "shape", "pixel")},
            })  # fmt: skip
    per_task: dict[str, list[dict]] = {}
    for record in queries:
        if record.get("top1") is not None:
            per_task.setdefault(record["task_id"], []).append(record)

    def average(name: str) -> float | None:
        if not per_task:
            return None
        return float(np.mean([np.mean([float(r[name]) for r in rs]) for rs in per_task.values()]))

    metrics = dict(output.metrics) if output else {"search": search, "evaluations": 0}
    metrics.update(
        tasks=len(submission),
        queries=len(queries),
        scored_tasks=len(per_task),
        too_large=len(too_large),
        seconds=seconds,
        seconds_per_task=seconds / len(submission),
        **{name: average(name) for name in ("top1", "pass2", "pixel", "shape")},
    )
    if "pass2_official" in metrics:
        metrics["pass2_official"] = None  # not defined for tasks that were not run
    return ArcEvalOutput(metrics=metrics, submission=submission, queries=queries)


def default_ladder(config: ModelConfig) -> tuple[int, ...]:
    """A third, two thirds and all of the model's larger side (rounded up): at most three
    sizes per axis, so at most nine size buckets and their compilations.

    Example:
        >>> from lpn_arc.config import ModelConfig
        >>> small = ModelConfig(10, 10, 32, 2, 2, num_heads=4, head_dim=16, mlp_factor=2.0)
        >>> default_ladder(ModelConfig.arc_repo()), default_ladder(small)
        ((10, 20, 30), (4, 7, 10))
    """
    side = max(config.max_rows, config.max_cols)
    return tuple(sorted({-(-side // 3), -(-2 * side // 3), side}))


def _ladder(size_buckets: Sequence[int]) -> tuple[int, ...]:
    if not size_buckets or any(
        isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in size_buckets
    ):
        raise ValueError(f"size_buckets must be positive ints, got {size_buckets!r}")
    return tuple(sorted(set(size_buckets)))


def _pad_grids(grids: np.ndarray, full: tuple[int, int]) -> np.ndarray:
    """``(..., R', C')`` grids zero-padded to the model's ``(R, C)``."""
    rows, cols = grids.shape[-2:]
    pad = [(0, 0)] * (grids.ndim - 2) + [(0, full[0] - rows), (0, full[1] - cols)]
    return np.pad(grids, pad)


def bucket_of(task: ArcTask, ladder: Sequence[int], config: ModelConfig) -> tuple[int, int]:
    """The smallest ``(rows, cols)`` of ``ladder`` (each capped at the model's) that hold
    every demonstration grid and test input of ``task``; the model's size without a ladder.

    Example:
        >>> from lpn_arc.config import ModelConfig
        >>> from lpn_arc.data import load_tasks
        >>> task = load_tasks("arc1-eval", limit=1)[0]  # 00576224: 2x2 inputs, 6x6 outputs
        >>> bucket_of(task, (10, 20, 30), ModelConfig.arc_repo())
        (10, 10)
    """
    grids = [g for pair in task.train for g in pair] + list(task.test_inputs)
    out = []
    for axis, limit in ((0, config.max_rows), (1, config.max_cols)):
        extent = max(g.shape[axis] for g in grids)
        fits = [min(b, limit) for b in ladder if min(b, limit) >= extent]
        out.append(min(fits) if fits else limit)
    return out[0], out[1]


def _bucket_groups(
    tasks: Sequence[ArcTask],
    config: ModelConfig,
    pair_buckets: Sequence[int],
    ladder: Sequence[int],
    max_pairs: int | None,
) -> dict[tuple[int, int, int], list[int]]:
    """``{(padded pair count, rows, cols): [task index, ...]}``: the smallest pair bucket
    that holds a task's train pairs, and its size bucket (:func:`bucket_of`)."""
    if not pair_buckets or any(
        isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in pair_buckets
    ):
        raise ValueError(f"pair_buckets must be positive ints, got {pair_buckets!r}")
    largest = max(len(task.train) for task in tasks)
    groups: dict[tuple[int, int, int], list[int]] = {}
    for t, task in enumerate(tasks):
        # max_pairs pads every task alike (evaluation_arrays reports one with more pairs)
        size = max_pairs or next((b for b in sorted(pair_buckets) if b >= len(task.train)), largest)
        groups.setdefault((size, *bucket_of(task, ladder, config)), []).append(t)
    return groups


def _bucket_queries(
    group: Sequence[ArcTask], config: ModelConfig, size: int, bucket: tuple[int, int]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The evaluation arrays of a bucket's tasks and its queries, cut to the bucket's
    ``(rows, cols)``: the same values as at the model's size, less work."""
    arrays, _ = evaluation_arrays(group, config.max_rows, config.max_cols, max_pairs=size)
    rows, cols = bucket
    queries = {
        "spec_pairs": Pair(
            arrays["spec_inputs"][..., :rows, :cols],
            arrays["spec_input_shapes"],
            arrays["spec_outputs"][..., :rows, :cols],
            arrays["spec_output_shapes"],
        ),
        "spec_mask": arrays["spec_mask"],
        "query_inputs": arrays["query_inputs"][..., :rows, :cols],
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
