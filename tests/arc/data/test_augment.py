"""Augmentation: the eight rotations and flips, colour permutations, exact inverses."""

import numpy as np
import pytest
from lpn_arc.data import Augmentation, augment_task, load_tasks


def test_augmentation_inverts_exactly_on_non_square_grids():
    rng = np.random.default_rng(0)
    for k in range(8):
        for shape in [(1, 5), (3, 7), (6, 2), (4, 4)]:
            grid = rng.integers(0, 10, size=shape).astype(np.int8)
            aug = Augmentation(k, Augmentation.random(rng).colours)
            out = aug.apply(grid)
            assert out.dtype == grid.dtype
            assert out.shape == (shape[::-1] if k in (1, 3, 4, 6) else shape)
            np.testing.assert_array_equal(aug.invert(out), grid)
            np.testing.assert_array_equal(aug.apply(aug.invert(grid)), grid)


def test_dihedral_transforms_are_the_eight_symmetries():
    grid = np.arange(6).reshape(2, 3)  # no symmetry: the 8 images must differ
    images = [Augmentation(k, np.arange(10)).apply(grid) for k in range(8)]
    assert len({(im.shape, im.tobytes()) for im in images}) == 8
    expected = [grid, np.rot90(grid), np.rot90(grid, 2), np.rot90(grid, 3), grid.T]
    expected += [np.flipud(grid), np.rot90(grid, 2).T, np.fliplr(grid)]
    for image, want in zip(images, expected, strict=True):
        np.testing.assert_array_equal(image, want)


def test_colour_permutations_keep_black():
    rng = np.random.default_rng(1)
    grid = rng.integers(0, 10, size=(5, 7))
    seen = set()
    for _ in range(20):
        aug = Augmentation.random(rng, dihedral=False)
        seen.add(tuple(aug.colours))
        out = aug.apply(grid)
        assert aug.colours[0] == 0
        np.testing.assert_array_equal(out == 0, grid == 0)
        np.testing.assert_array_equal(out, aug.colours[grid])
    assert len(seen) == 20
    assert Augmentation.random(rng, dihedral=False, colours=False) == Augmentation.identity()
    assert {Augmentation.random(rng, colours=False).dihedral for _ in range(100)} == set(range(8))


def test_augmentation_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"dihedral must be in \[0, 7\], got 8"):
        Augmentation(8, np.arange(10))
    with pytest.raises(ValueError, match=r"colours must be a permutation of 0..9 with colours"):
        Augmentation(0, np.array([1, 0, 2, 3, 4, 5, 6, 7, 8, 9]))
    with pytest.raises(ValueError, match="colours must be a permutation"):
        Augmentation(0, np.array([0, 1, 1, 3, 4, 5, 6, 7, 8, 9]))
    with pytest.raises(ValueError, match="colours must be a permutation"):
        Augmentation(0, np.arange(9))
    with pytest.raises(ValueError, match="grid colours must be in 0..9"):
        Augmentation.identity().apply(np.array([[10]]))


def test_augmented_task_predictions_map_back():
    task = load_tasks("arc1-eval", limit=5)[4]
    rng = np.random.default_rng(2)
    for _ in range(8):
        aug = Augmentation.random(rng)
        augmented = augment_task(task, aug)
        assert augmented.task_id == task.task_id and len(augmented.train) == len(task.train)
        for (i, o), (ai, ao) in zip(task.train, augmented.train, strict=True):
            np.testing.assert_array_equal(ai, aug.apply(i))
            np.testing.assert_array_equal(aug.invert(ao), o)
        # A model solving the augmented task predicts the augmented truth; undoing the
        # augmentation on that prediction gives the original task's answer.
        prediction = augmented.test_outputs[0].copy()
        np.testing.assert_array_equal(aug.invert(prediction), task.test_outputs[0])
        np.testing.assert_array_equal(aug.invert(augmented.test_inputs[0]), task.test_inputs[0])
