"""ARC tasks padded for evaluation: specification pairs with a mask, one row per test input."""

import numpy as np
import pytest
from lpn_arc.data import ArcTask, DataError, PaddedPairs, Pair, evaluation_arrays, tasks_to_arrays

from tests.arc.helpers import GRID_A, GRID_B, make_task


def test_evaluation_arrays_pad_mask_and_rows():
    a = make_task(
        "A", [(GRID_A, GRID_B), (GRID_B, GRID_A)], test=[(GRID_A, [[1]]), ([[2]], GRID_B)]
    )
    b = make_task("B", [([[3]], [[4]])] * 3, test=[([[5, 5]], [[6]])])
    b = ArcTask("B", b.train, b.test_inputs, None, "memory")
    arrays, rows = evaluation_arrays([a, b], 4, 4)
    assert rows == [("A", 0), ("A", 1), ("B", 0)]
    assert arrays["spec_inputs"].shape == (3, 3, 4, 4) and arrays["spec_mask"].dtype == bool
    assert arrays["spec_mask"].tolist() == [[True, True, False]] * 2 + [[True] * 3]
    np.testing.assert_array_equal(arrays["spec_inputs"][0, 2], arrays["spec_inputs"][0, 0])
    assert arrays["spec_output_shapes"][0].tolist() == [[3, 2], [2, 3], [3, 2]]
    assert arrays["spec_inputs"][0, 1, :3, :2].tolist() == GRID_B
    assert arrays["query_inputs"][1, 0, 0] == 2 and arrays["query_input_shapes"][2].tolist() == [
        1,
        2,
    ]
    assert arrays["query_outputs"][0, :1, :1].tolist() == [[1]]
    assert arrays["has_truth"].tolist() == [True, True, False]
    assert not arrays["query_outputs"][2].any() and not arrays["query_output_shapes"][2].any()
    assert all(v.shape[0] == 3 for v in arrays.values())
    padded, _ = evaluation_arrays([a, b], 4, 4, max_pairs=6)
    assert padded["spec_mask"].shape == (3, 6) and padded["spec_mask"].sum() == 7
    with pytest.raises(DataError, match=r"task B: 3 train pairs, more than max_pairs=2"):
        evaluation_arrays([a, b], 4, 4, max_pairs=2)
    with pytest.raises(DataError, match=r"task A, train pair 0, output: grid is 3x2, larger"):
        evaluation_arrays([a], 2, 4)


def test_tasks_to_arrays_give_the_pairs_and_their_mask_apart():
    a = make_task("A", [(GRID_A, GRID_B), (GRID_B, GRID_A)])
    b = make_task("B", [([[3]], [[4]])] * 3)
    padded = tasks_to_arrays([a, b], 4, 4)
    assert isinstance(padded, PaddedPairs) and isinstance(padded.pairs, Pair)
    assert padded.pairs.inputs.shape == (2, 3, 4, 4) and padded.pairs.cache is None
    assert padded.mask.tolist() == [[True, True, False], [True, True, True]]
    np.testing.assert_array_equal(padded.pairs.outputs[0, 2], padded.pairs.outputs[0, 0])
