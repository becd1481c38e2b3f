"""Metrics of two attempts against the truth: top-1, pass@2, shape and shape-gated pixel
accuracy (the official evaluator's pixel metric)."""

from __future__ import annotations

import numpy as np

__all__ = [
    "ATTEMPT2_RULES",
    "METRIC_KEYS",
    "SECOND_ATTEMPT",
    "prediction_metrics",
    "score_attempts",
]

METRIC_KEYS = ("search", "top1", "pass2", "pixel", "shape", "evaluations", "seconds")
ATTEMPT2_RULES = ("distinct", "official", "both")
"""How attempt 2 is chosen (``both``: ``distinct``, with the official rule's pass@2 too)."""
# results["grids"][:, k]: k = 0 attempt 1, 1 the distinct rule's attempt 2, 2 the official's
SECOND_ATTEMPT = {"distinct": 1, "official": 2, "both": 1}
"""Which of the three decoded attempts is attempt 2 under each rule."""


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


def score_attempts(
    results: dict[str, np.ndarray], outputs: np.ndarray, output_shapes: np.ndarray, attempt2: str
) -> dict[str, np.ndarray]:
    """Per-query metrics of attempt 1 and the ``attempt2`` rule's attempt 2 (with
    ``"both"``, also ``pass2_official``)."""
    grids, shapes = results["grids"], results["shapes"]
    second = SECOND_ATTEMPT[attempt2]
    per = prediction_metrics(
        grids[:, 0], grids[:, second], shapes[:, [0, second]], outputs, output_shapes
    )
    if attempt2 == "both":
        official = prediction_metrics(
            grids[:, 0], grids[:, 2], shapes[:, [0, 2]], outputs, output_shapes
        )
        per["pass2_official"] = official["pass2"]
    return per
