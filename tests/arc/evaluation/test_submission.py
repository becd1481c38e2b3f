"""The ARC Prize submission check."""

import dataclasses

import jax
import pytest
from lpn_arc.config import parse_search

from tests.arc.helpers import random_arc_tasks


def test_validate_submission_names_the_broken_entry(tiny_eval):
    from lpn_arc.evaluation import evaluate_arc, validate_submission

    tasks = random_arc_tasks(1)
    good = {"task0": [{"attempt_1": [[1]], "attempt_2": [[2]]}] * 2}
    validate_submission(good, tasks)
    empty = dataclasses.replace(tasks[0], task_id="empty", test_inputs=(), test_outputs=())
    validate_submission(good, [*tasks, empty])  # a task without test inputs has no entry
    for bad, message in [
        ([], "expected a JSON object"),
        ({"task0": [{"attempt_1": [[1]]}] * 2}, "test input 0: missing 'attempt_2'"),
        ({"task0": [{"attempt_1": [[1]], "attempt_2": [[10]]}] * 2}, "attempt_2.*colour 10"),
        ({"task0": [{"attempt_1": [[1]], "attempt_2": [[1]]}]}, "1 entries for 2 test inputs"),
        ({"other": good["task0"]}, "missing tasks"),
    ]:
        with pytest.raises(ValueError, match=message):
            validate_submission(bad, tasks)
    graphdef, params, _ = tiny_eval
    with pytest.raises(ValueError, match="no ARC test inputs"):
        evaluate_arc(graphdef, params, [empty], parse_search("mean"), jax.random.key(0))
