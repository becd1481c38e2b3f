"""Tasks at the explorer's boundary: the ARC format in, clear messages for bad files."""

import json

import numpy as np
import pytest
from lpn_arc.explorer import TaskError, parse_task_file, pattern_tasks, task_arrays
from lpn_arc.explorer.tasks import MAX_SPEC_PAIRS

from tests.arc.helpers import tiny_config

TASK = {
    "train": [{"input": [[1, 0], [0, 0]], "output": [[2, 2], [2, 0]]}] * 2,
    "test": [{"input": [[0, 1]], "output": [[3]]}],
}


def test_pattern_tasks_are_the_held_out_set_in_the_arc_format():
    config = tiny_config()
    tasks = pattern_tasks(config, 3)
    assert len(tasks) == 3
    for task in tasks:
        assert len(task["train"]) == config.data.num_pairs - 1 and len(task["test"]) == 1
        grid = np.array(task["test"][0]["input"])
        assert grid.shape == (config.data.grid_size,) * 2 and (grid == 1).sum() == 1  # the marker
    assert pattern_tasks(config, 3) == tasks  # fixed: the configuration's test seed


def test_task_arrays_pad_pairs_to_a_bucket_and_keep_the_truth():
    arrays = task_arrays(TASK, 4, 4)
    assert arrays.mask.tolist() == [True, True, False]
    assert arrays.pairs.inputs.shape == (3, 4, 4)
    assert arrays.pairs.output_shapes[:2].tolist() == [[2, 2], [2, 2]]
    assert arrays.query_shape.tolist() == [1, 2] and arrays.truth == [[3]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"train": [', "the file is not valid JSON"),
        ("[1, 2]", 'a task is an object with "train" and "test"'),
        ('{"train": [], "test": []}', 'non-empty list "train"'),
        (
            json.dumps({**TASK, "test": [{"output": [[1]]}]}),
            'test pair 0 must be an object with an "input"',
        ),
        (
            json.dumps({**TASK, "train": [{"input": [[1]], "output": [[1, 2], [3]]}]}),
            "train, pair 0, output: row 1 has 1 cells",
        ),
        (
            json.dumps({**TASK, "train": [{"input": [[1]], "output": [[12]]}]}),
            "colour 12, expected 0-9",
        ),
        (
            json.dumps({**TASK, "train": [{"input": [[1] * 5], "output": [[1]]}]}),
            "larger than the maximum 4x4",
        ),
        (json.dumps({**TASK, "train": TASK["train"] * 6}), f"at most {MAX_SPEC_PAIRS}"),
    ],
)
def test_bad_files_give_a_message_that_says_what_is_wrong(text, message):
    with pytest.raises(TaskError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_task_file(text, 4, 4)


def test_a_task_file_keeps_its_first_test_pair_and_a_challenges_file_of_one_task_is_read():
    task = {**TASK, "test": TASK["test"] + [{"input": [[5]]}]}
    assert parse_task_file(json.dumps(task), 4, 4)["test"] == TASK["test"]
    assert parse_task_file(json.dumps({"abc": TASK}), 4, 4) == TASK
