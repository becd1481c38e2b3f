"""``lpn-arc data pattern``: generated PATTERN tasks of one split as an ARC task file."""

import json

import numpy as np
import pytest
from lpn_arc import cli
from lpn_arc.data import Pair, load_tasks, program_split, task_programs


def _programs(path, pattern_size):
    tasks = load_tasks(path)
    inputs = np.stack([np.stack([x for x, _ in t.train]) for t in tasks])
    outputs = np.stack([np.stack([y for _, y in t.train]) for t in tasks])
    shapes = np.full((*inputs.shape[:2], 2), inputs.shape[-1])  # square PATTERN grids
    return tasks, task_programs(Pair(inputs, shapes, outputs, shapes), pattern_size)


def test_both_splits_export_as_arc_task_files_of_disjoint_programs(tmp_path, capsys):
    for split in ("train", "test"):
        argv = ["data", "pattern", "--split", split, "--tasks", "300", "--seed", "3",
                "--out", str(tmp_path / f"{split}.json")]  # fmt: skip
        assert cli.main(argv) == 0
    assert "wrote 300 test tasks (6x6 grids, 2x2 patterns" in capsys.readouterr().out
    train_tasks, train = _programs(tmp_path / "train.json", 2)
    test_tasks, test = _programs(tmp_path / "test.json", 2)
    assert len(train_tasks) == len(test_tasks) == 300
    assert {len(t.train) for t in test_tasks} == {3} and {t.num_test for t in test_tasks} == {1}
    assert not set(train) & set(test)
    for programs, split in ((train, "train"), (test, "test")):
        blocks = [np.array(list(p.split(":")[1]), int).reshape(2, 2) for p in programs]
        assert {program_split(b) for b in blocks} == {split}
    first = json.loads((tmp_path / "test.json").read_text())["pattern-test-3-00000"]
    assert set(first) == {"train", "test"} and set(first["test"][0]) == {"input", "output"}


def test_the_variant_options_change_the_tasks(tmp_path):
    out = tmp_path / "big.json"
    argv = ["data", "pattern", "--split", "test", "--tasks", "2", "--grid-size", "8",
            "--pattern-size", "3", "--num-pairs", "5", "--density", "0.5",
            "--out", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    tasks = load_tasks(out)
    assert tasks[0].train[0][0].shape == (8, 8) and len(tasks[0].train) == 4


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--tasks", "0"], "num_tasks"), (["--pattern-size", "9"], "pattern_size")],
)
def test_bad_options_are_one_line_errors(tmp_path, capsys, extra, message):
    argv = ["data", "pattern", "--split", "test", "--out", str(tmp_path / "x.json"), *extra]
    assert cli.main(argv) == 1
    assert message in capsys.readouterr().err
