"""Tests of lpn_arc.data.grids: padding round trip and validation messages."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lpn_arc.data import GridError, Pair, decode_grid, encode_grid, make_pairs


@st.composite
def grids_and_sizes(draw):
    max_rows = draw(st.integers(1, 30))
    max_cols = draw(st.integers(1, 30))
    rows = draw(st.integers(1, max_rows))
    cols = draw(st.integers(1, max_cols))
    cells = draw(st.lists(st.integers(0, 9), min_size=rows * cols, max_size=rows * cols))
    grid = [cells[r * cols : (r + 1) * cols] for r in range(rows)]
    return grid, max_rows, max_cols


@settings(max_examples=60, deadline=None)
@given(grids_and_sizes(), st.booleans())
def test_round_trip(case, as_array):
    grid, max_rows, max_cols = case
    source = np.array(grid, dtype=np.int64) if as_array else grid
    padded, shape = encode_grid(source, max_rows, max_cols)
    assert padded.shape == (max_rows, max_cols) and padded.dtype == np.int32
    assert shape.dtype == np.int32 and shape.tolist() == [len(grid), len(grid[0])]
    rows, cols = shape
    assert not padded[rows:].any() and not padded[:, cols:].any()
    assert decode_grid(padded, shape) == grid
    assert all(type(v) is int for row in decode_grid(padded, shape) for v in row)


WHERE = "task 0a1b2c3d, train pair 2, output"


@pytest.mark.parametrize(
    ("grid", "max_size", "fragment"),
    [
        (
            [[1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [0] * 5, [1, 2, 3, 4]],
            30,
            "row 3 has 4 cells, expected 5",
        ),
        ([[0, 10], [1, 2]], 30, "cell (0, 1) has colour 10, expected 0-9"),
        ([[0, 1], [-1, 2]], 30, "cell (1, 0) has colour -1"),
        ([], 30, "grid is empty"),
        ([[]], 30, "grid is empty"),
        (np.zeros((0, 3), dtype=int), 30, "grid is empty"),
        ([[0] * 31] * 2, 40, "grid is 2x31, ARC grids have at most 30"),
        ([[0] * 6] * 3, 5, "grid is 3x6, larger than the maximum 5x5"),
        ([[0, 1.5]], 30, "cell (0, 1) is 1.5, not an integer colour"),
        (np.zeros((2, 2), dtype=float), 30, "must hold integers"),
        (np.zeros((2, 2, 2), dtype=int), 30, "must be 2-D"),
        ("0123", 30, "must be a list of rows"),
    ],
)
def test_grid_errors_name_where(grid, max_size, fragment):
    with pytest.raises(GridError) as info:
        encode_grid(grid, max_size, max_size, where=WHERE)
    message = str(info.value)
    assert message.startswith(WHERE + ": ")
    assert fragment in message
    assert isinstance(info.value, ValueError)


def test_error_without_where_has_no_prefix():
    with pytest.raises(GridError, match=r"^row 1 has 1 cells, expected 2$"):
        encode_grid([[1, 2], [3]], 5, 5)


def test_bad_max_size():
    with pytest.raises(ValueError, match="max_cols"):
        encode_grid([[1]], 5, 0)


def test_make_pairs_layout_and_where():
    pairs = [([[1, 2]], [[3], [4]]), ([[5]], [[6, 7, 8]])]
    batch = make_pairs(pairs, 4, 5, where="task x")
    assert isinstance(batch, Pair) and batch.cache is None
    assert set(batch.arrays()) == {"inputs", "input_shapes", "outputs", "output_shapes"}
    assert batch.inputs.shape == (2, 4, 5) and batch.outputs.shape == (2, 4, 5)
    assert batch.input_shapes.tolist() == [[1, 2], [1, 1]]
    assert batch.output_shapes.tolist() == [[2, 1], [1, 3]]
    assert all(v.dtype == np.int32 for v in batch.arrays().values())
    assert decode_grid(batch.outputs[1], batch.output_shapes[1]) == [[6, 7, 8]]
    with pytest.raises(GridError, match=r"^task x, pair 1, output: cell \(0, 0\) has colour 12"):
        make_pairs([pairs[0], ([[1]], [[12]])], 4, 5, where="task x")
    with pytest.raises(ValueError, match="no pairs"):
        make_pairs([], 4, 5)


def test_pairs_round_trip_through_npz(tmp_path):
    pairs = make_pairs([([[1, 2]], [[3], [4]]), ([[5]], [[6, 7, 8]])], 4, 5)
    np.savez(tmp_path / "pairs.npz", **pairs._replace(cache={"unsaved": 1}).arrays())
    with np.load(tmp_path / "pairs.npz") as data:
        loaded = Pair(**data)
    assert loaded.cache is None
    for want, got in zip(pairs.arrays().values(), loaded.arrays().values(), strict=True):
        np.testing.assert_array_equal(want, got)


def test_decode_grid_errors():
    with pytest.raises(ValueError, match="does not fit"):
        decode_grid(np.zeros((3, 3), np.int32), [4, 1])
    with pytest.raises(ValueError, match="2-D"):
        decode_grid(np.zeros((3,), np.int32), [1, 1])
