"""Tests of the PATTERN task generator."""

import numpy as np
import pytest
from lpn_arc.data import generate_pattern_tasks


def _tasks(seed=0, **kwargs):
    return generate_pattern_tasks(np.random.default_rng(seed), **kwargs)


def test_layout():
    pairs, patterns = _tasks(num_tasks=5, num_pairs=3, grid_size=7, pattern_size=3)
    assert pairs["inputs"].shape == (5, 3, 7, 7) and pairs["outputs"].shape == (5, 3, 7, 7)
    assert pairs["input_shapes"].shape == (5, 3, 2) and (pairs["input_shapes"] == 7).all()
    assert (pairs["output_shapes"] == 7).all()
    assert patterns.shape == (5, 3, 3)
    assert all(v.dtype == np.int32 for v in pairs.values()) and patterns.dtype == np.int32


@pytest.mark.parametrize("density", [1.0, 0.5])
def test_marker_and_paste(density):
    size, psize = 10, 4
    pairs, patterns = _tasks(num_tasks=20, num_pairs=4, pattern_size=psize, density=density)
    seen = set()
    for t in range(20):
        for n in range(4):
            inp, out = pairs["inputs"][t, n], pairs["outputs"][t, n]
            (r, c), *rest = np.argwhere(inp != 0)
            assert not rest and inp[r, c] == 1
            assert 0 <= r <= size - psize and 0 <= c <= size - psize
            seen.update([r, c])
            expected = np.zeros((size, size), np.int32)
            expected[r : r + psize, c : c + psize] = patterns[t]
            np.testing.assert_array_equal(out, expected)
    assert seen == set(range(size - psize + 1))


def test_density_extremes():
    _, full = _tasks(num_tasks=50, density=1.0)
    assert (full >= 1).all() and (full <= 9).all()
    assert set(np.unique(full)) == set(range(1, 10))
    pairs, empty = _tasks(num_tasks=50, density=0.0)
    assert not empty.any() and not pairs["outputs"].any()
    _, half = _tasks(num_tasks=200, density=0.5)
    assert 0.4 < (half > 0).mean() < 0.6


def test_reproducible():
    a, pa = _tasks(seed=3, num_tasks=4)
    b, pb = _tasks(seed=3, num_tasks=4)
    np.testing.assert_array_equal(pa, pb)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_tasks": 0}, "num_tasks"),
        ({"num_tasks": 2, "num_pairs": 0}, "num_pairs"),
        ({"num_tasks": 2, "grid_size": 31}, "grid_size"),
        ({"num_tasks": 2, "grid_size": 5, "pattern_size": 6}, "pattern_size"),
        ({"num_tasks": 2, "density": 1.5}, "density"),
        ({"num_tasks": 2.0}, "num_tasks"),
    ],
)
def test_argument_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        _tasks(**kwargs)
    with pytest.raises(ValueError, match="rng"):
        generate_pattern_tasks(0, 2)
