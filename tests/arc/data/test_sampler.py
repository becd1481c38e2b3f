"""The training sampler: shapes, determinism, pair choice, whole-task augmentation, speed."""

import time

import numpy as np
import pytest
from lpn_arc.data import Augmentation, DataError, TaskSampler, load_tasks

from tests.arc.helpers import make_task


def _distinct_tasks(num_tasks=3, num_pairs=5, rng=None):
    """Tasks whose grids all differ (non-square, random shapes up to 6x5)."""
    rng = rng or np.random.default_rng(3)
    tasks = []
    for t in range(num_tasks):
        pairs = []
        for _ in range(num_pairs):
            shape_in = tuple(rng.integers(1, [7, 6]))
            shape_out = tuple(rng.integers(1, [7, 6]))
            pairs.append((rng.integers(0, 10, shape_in), rng.integers(0, 10, shape_out)))
        tasks.append(make_task(f"t{t}", pairs))
    return tasks


def _crop(batch, b, n, key):
    rows, cols = getattr(batch.pairs, key[:-1] + "_shapes")[b, n]
    return getattr(batch.pairs, key)[b, n, :rows, :cols]


def _check_padding(batch):
    for key in ("inputs", "outputs"):
        grids, shapes = getattr(batch.pairs, key), getattr(batch.pairs, key[:-1] + "_shapes")
        rows = np.arange(grids.shape[2])[:, None] < shapes[..., 0, None, None]
        cols = np.arange(grids.shape[3])[None, :] < shapes[..., 1, None, None]
        assert np.all(grids[~(rows & cols)] == 0)
        assert np.all(shapes >= 1) and np.all((grids >= 0) & (grids <= 9))


def test_sampler_shapes_dtypes_and_determinism():
    sampler = TaskSampler(tasks=load_tasks("arc1-train", limit=20), num_pairs=3)
    assert sampler.num_programs == 20
    batch = sampler.sample(np.random.default_rng(5), 16)
    assert batch.pairs.inputs.shape == batch.pairs.outputs.shape == (16, 3, 30, 30)
    assert batch.pairs.input_shapes.shape == batch.pairs.output_shapes.shape == (16, 3, 2)
    assert all(v.dtype == np.int32 for v in batch.pairs.arrays().values())
    assert batch.mask.dtype == bool
    _check_padding(batch)
    again = sampler.sample(np.random.default_rng(5), 16)
    assert all(np.array_equal(*pair) for pair in zip(batch.pairs, again.pairs, strict=True))
    assert np.array_equal(batch.mask, again.mask)
    other = sampler.sample(np.random.default_rng(6), 16)
    assert not np.array_equal(batch.pairs.inputs, other.pairs.inputs)


def test_sampler_without_augmentation_draws_distinct_pairs_of_one_task():
    tasks = _distinct_tasks()
    index = {
        (a.tobytes(), a.shape, b.tobytes(), b.shape): (t, i)
        for t, task in enumerate(tasks)
        for i, (a, b) in enumerate(task.train)
    }
    sampler = TaskSampler(tasks=tasks, num_pairs=4, max_rows=6, max_cols=5, augment=False)
    batch = sampler.sample(np.random.default_rng(0), 64)
    _check_padding(batch)
    programs, seen = set(), set()
    for b in range(64):
        found = []
        for n in range(4):
            a = _crop(batch, b, n, "inputs").astype(np.int8)
            o = _crop(batch, b, n, "outputs").astype(np.int8)
            found.append(index[(a.tobytes(), a.shape, o.tobytes(), o.shape)])
        assert len({t for t, _ in found}) == 1  # one program
        assert len({i for _, i in found}) == 4  # distinct pairs
        programs.add(found[0][0])
        seen.update(found)
    assert programs == {0, 1, 2} and len(seen) == 15


def test_sampler_pair_choice():
    pairs = [(np.full((2, 2), c), np.full((1, 3), c)) for c in range(1, 6)]
    rng = np.random.default_rng(0)
    # fewer pairs than N: each of them once, the other slots masked out
    short = TaskSampler(rearc={"short": pairs[:2]}, num_pairs=5, max_rows=4, augment=False)
    batch = short.sample(rng, 50)
    firsts = batch.pairs.inputs[:, :, 0, 0]
    assert batch.mask.tolist() == [[True, True, False, False, False]] * 50
    assert all(sorted(row[:2]) == [1, 2] for row in firsts.tolist())
    # exactly N pairs: each task is a permutation of all of them
    exact = TaskSampler(rearc={"exact": pairs}, num_pairs=5, max_rows=4, augment=False)
    firsts = exact.sample(rng, 50).pairs.inputs[:, :, 0, 0]
    assert all(sorted(row) == [1, 2, 3, 4, 5] for row in firsts.tolist())
    assert len({tuple(row) for row in firsts.tolist()}) > 10  # in random orders
    # more pairs than N: distinct pairs, each pair equally likely
    many = TaskSampler(rearc={"many": pairs}, num_pairs=2, max_rows=4, augment=False)
    firsts = many.sample(rng, 2000).pairs.inputs[:, :, 0, 0]
    assert np.all(firsts[:, 0] != firsts[:, 1])
    counts = np.bincount(firsts.ravel(), minlength=6)[1:]
    assert np.all(np.abs(counts - 800) < 100), counts


def _undo(grid, k):
    return Augmentation(k, np.arange(10)).invert(grid)


def _matches(sampled, originals):
    """Is there one dihedral k and one colour permutation (0 fixed) mapping some original
    pair onto each sampled pair?"""
    for k in range(8):
        mapping, ok = {0: 0}, True
        for pair in sampled:
            undone = [_undo(g, k) for g in pair]
            candidates = [
                p
                for p in originals
                if all(u.shape == g.shape for u, g in zip(undone, p, strict=True))
            ]
            hit = False
            for cand in candidates:
                trial = dict(mapping)
                good = True
                for u, g in zip(undone, cand, strict=True):
                    for src, dst in zip(g.ravel().tolist(), u.ravel().tolist(), strict=True):
                        if trial.setdefault(src, dst) != dst:
                            good = False
                if good and len(set(trial.values())) == len(trial):
                    mapping, hit = trial, True
                    break
            if not hit:
                ok = False
                break
        if ok:
            return True
    return False


def test_sampler_augments_whole_tasks_consistently():
    tasks = _distinct_tasks(num_tasks=2, num_pairs=4)
    sampler = TaskSampler(tasks=tasks, num_pairs=3, max_rows=6, max_cols=6)
    batch = sampler.sample(np.random.default_rng(7), 40)
    _check_padding(batch)
    originals = [[(a, b) for a, b in task.train] for task in tasks]
    for b in range(40):
        sampled = [(_crop(batch, b, n, "inputs"), _crop(batch, b, n, "outputs")) for n in range(3)]
        assert any(_matches(sampled, pool) for pool in originals), b
    # the shapes follow the transforms: a 2x5 grid appears as 2x5 and as 5x2
    wide = make_task("wide", [(np.ones((2, 5)), np.ones((2, 5)))] * 2)
    shapes = (
        TaskSampler(tasks=[wide], num_pairs=2, max_rows=6, max_cols=6)
        .sample(np.random.default_rng(0), 32)
        .pairs.input_shapes
    )
    assert {tuple(s) for s in shapes.reshape(-1, 2).tolist()} == {(2, 5), (5, 2)}


def test_sampler_non_square_limits_keep_grids_fitting():
    tall = make_task("tall", [(np.ones((6, 2)), np.ones((6, 2)))] * 2)
    small = make_task("small", [(np.ones((3, 4)), np.ones((2, 2)))] * 2)
    sampler = TaskSampler(tasks=[tall, small], num_pairs=2, max_rows=6, max_cols=4)
    batch = sampler.sample(np.random.default_rng(0), 64)
    _check_padding(batch)
    shapes = batch.pairs.input_shapes
    assert np.all(shapes[..., 0] <= 6) and np.all(shapes[..., 1] <= 4)
    assert {tuple(s) for s in shapes.reshape(-1, 2).tolist()} == {
        (6, 2),
        (3, 4),
        (4, 3),
    }


def test_sampler_rejects_bad_sources():
    big = make_task("big", [(np.ones((7, 2)), np.ones((2, 2)))] * 2)
    with pytest.raises(
        DataError,
        match=r"task big \(memory\), pair 0, input: grid is 7x2, larger "
        r"than the sampler's 6x6; use a 30x30 model",
    ):
        TaskSampler(tasks=[big], max_rows=6, max_cols=6)
    with pytest.raises(DataError, match="at least one ARC task or re-arc pool"):
        TaskSampler()
    with pytest.raises(DataError, match=r"re-arc task one: 1 pair\(s\), a program needs at least"):
        TaskSampler(rearc={"one": [(np.ones((2, 2), int), np.ones((2, 2), int))]})
    good, bad = (np.ones((2, 2), int),) * 2, (np.ones((2, 2), int), np.full((1, 1), -1))
    with pytest.raises(DataError, match=r"re-arc task bad, pair 1, output: cell \(0, 0\) has"):
        TaskSampler(rearc={"bad": [good, bad]})


def test_sampler_is_fast():
    sampler = TaskSampler(tasks=load_tasks("arc1-train"), num_pairs=4)
    rng = np.random.default_rng(0)
    sampler.sample(rng, 256)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        sampler.sample(rng, 256)
        times.append(time.perf_counter() - start)
    assert min(times) < 0.1, times


def test_a_task_with_two_demonstrations_never_holds_a_held_out_pair_in_its_specification():
    """Held out in turn (the loss's leave-one-out), no real pair of a sampled task has a
    copy among the task's other real pairs, with and without augmentation."""
    tasks = [t for t in load_tasks("arc1-train") if len(t.train) == 2][:20]
    assert len(tasks) == 20
    for augment in (False, True):
        sampler = TaskSampler(tasks=tasks, num_pairs=4, augment=augment)
        batch = sampler.sample(np.random.default_rng(1), 200)
        assert batch.mask.sum(axis=1).tolist() == [2] * 200
        for b in range(200):
            real = [
                (_crop(batch, b, n, "inputs").tobytes(), _crop(batch, b, n, "outputs").tobytes())
                for n in np.flatnonzero(batch.mask[b])
            ]
            for i, held_out in enumerate(real):
                assert held_out not in real[:i] + real[i + 1 :]


def test_a_bucketed_batch_is_padded_to_the_smallest_ladder_size_that_holds_it():
    tasks = load_tasks("arc1-train", limit=60)
    sampler = TaskSampler(tasks=tasks, num_pairs=3, ladder=(10, 20, 30))
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(300):
        batch = sampler.sample(rng, 8)
        rows, cols = batch.pairs.inputs.shape[-2:]
        pairs = batch.pairs
        extent = np.concatenate([pairs.input_shapes, pairs.output_shapes], 1).max((0, 1))
        assert rows == min(b for b in (10, 20, 30) if b >= extent[0])
        assert cols == min(b for b in (10, 20, 30) if b >= extent[1])
        seen.add((rows, cols))
        _check_padding(batch)
    assert len(seen) >= 3  # batches of several buckets


def test_bucketed_batches_keep_every_program_equally_likely():
    """Programs of three sizes (two of each): a bucket is drawn in proportion to its
    programs, so each program is still drawn with probability 1/6."""
    rng = np.random.default_rng(4)
    sizes = (3, 3, 12, 12, 25, 25)
    tasks = [
        make_task(
            f"p{t}", [(np.full((s, s), t + 1), rng.integers(0, 10, (s, 2))) for _ in range(3)]
        )
        for t, s in enumerate(sizes)
    ]
    sampler = TaskSampler(tasks=tasks, num_pairs=2, augment=False, ladder=(10, 20, 30))
    counts = np.zeros(len(tasks))
    for _ in range(1500):
        batch = sampler.sample(rng, 2)
        for first in batch.pairs.inputs[:, 0, 0, 0]:
            counts[first - 1] += 1
        inputs = batch.pairs.inputs
        assert inputs.shape[-2] == {1: 10, 2: 10, 3: 20, 4: 20, 5: 30, 6: 30}[inputs[0, 0, 0, 0]]
    np.testing.assert_allclose(counts / counts.sum(), 1 / 6, atol=0.02)
