"""Metrics on hand-made predictions: exact match, pass@2, shape and shape-gated pixel accuracy."""

import numpy as np
import pytest
from lpn_arc.evaluation import prediction_metrics


def _grid(rows):
    out = np.zeros((3, 3), np.int32)
    rows = np.asarray(rows, np.int32)
    out[: rows.shape[0], : rows.shape[1]] = rows
    return out


def test_metrics_exact_shape_and_pixel():
    truth = np.stack([_grid([[1, 2], [3, 4]]), _grid([[1, 2], [3, 4]]), _grid([[5, 5, 5]])])
    truth_shapes = np.array([[2, 2], [2, 2], [1, 3]])
    attempt_1 = np.stack(
        [
            _grid([[1, 2], [3, 4]]),  # exact
            _grid([[1, 2, 0], [3, 4, 0]]),  # right cells, wrong shape (2x3)
            _grid([[5, 5, 1]]),  # right shape, 2 of 3 cells
        ]
    )
    attempt_shapes = np.array([[[2, 2], [2, 2]], [[2, 3], [2, 2]], [[1, 3], [1, 3]]])
    attempt_2 = np.stack([_grid([[0]]), truth[1], _grid([[5, 5, 0]])])
    m = prediction_metrics(attempt_1, attempt_2, attempt_shapes, truth, truth_shapes)
    assert m["top1"].tolist() == [True, False, False]
    assert m["pass2"].tolist() == [True, True, False]
    assert m["shape"].tolist() == [True, False, True]
    # pixel counts only with the right shape (the official metric): task 1 scores 0
    np.testing.assert_allclose(m["pixel"], [1.0, 0.0, 2.0 / 3.0])


def test_pixel_counts_only_with_the_right_shape():
    truth = _grid([[1, 1, 1], [1, 1, 1], [1, 1, 1]])[None]
    # The padding holds the right colour, but only a 1x3 output was predicted.
    prediction = np.ones((1, 3, 3), np.int32)
    shapes = np.array([[[1, 3], [1, 3]]])
    m = prediction_metrics(prediction, prediction, shapes, truth, np.array([[3, 3]]))
    np.testing.assert_allclose(m["pixel"], [0.0])
    assert not m["top1"][0] and not m["shape"][0]
    right = prediction_metrics(prediction, prediction, np.array([[[3, 3], [3, 3]]]), truth,
                               np.array([[3, 3]]))  # fmt: skip
    assert right["top1"][0] and right["pixel"][0] == 1.0


def test_metrics_ignore_truth_padding():
    truth = np.full((1, 3, 3), 7, np.int32)
    truth[0, :2, :2] = 2
    prediction = np.zeros((1, 3, 3), np.int32)
    prediction[0, :2, :2] = 2
    shapes = np.array([[[2, 2], [2, 2]]])
    m = prediction_metrics(prediction, prediction, shapes, truth, np.array([[2, 2]]))
    assert m["top1"][0] and m["pass2"][0]


def test_metrics_reject_bad_shapes():
    with pytest.raises(ValueError, match="attempt_shapes"):
        prediction_metrics(
            np.zeros((2, 3, 3)), np.zeros((2, 3, 3)), np.zeros((2, 2)), np.zeros((2, 3, 3)),
            np.ones((2, 2)),
        )  # fmt: skip
