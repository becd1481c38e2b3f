"""The test-leak guard compares pair content: names, files and folders never matter."""

import dataclasses
import json

import numpy as np
import pytest
from lpn_arc.config import DataConfig
from lpn_arc.data import TestLeakError, TrainingData, hidden_test_pairs, load_tasks, pair_digest

from tests.arc.helpers import tiny_config


def _config(source="", **data):
    config = tiny_config()
    model = dataclasses.replace(config.model, max_rows=30, max_cols=30)
    return dataclasses.replace(
        config, model=model, data=DataConfig(source=source, num_pairs=3, **data)
    )


def _entry(pair):
    return {"input": np.asarray(pair[0]).tolist(), "output": np.asarray(pair[1]).tolist()}


def _renamed_copy(folder, tasks, *, answers_as_demonstrations=False):
    """The tasks under made-up ids; optionally each test pair moved among the demonstrations."""
    folder.mkdir()
    for i, task in enumerate(tasks):
        test = list(zip(task.test_inputs, task.test_outputs, strict=True))
        train = [_entry(p) for p in task.train]
        if answers_as_demonstrations:
            train, test = train + [_entry(p) for p in test], test[:0]
        content = {"train": train, "test": [_entry(p) for p in test] or [train[0]]}
        (folder / f"renamed{i:03d}.json").write_text(json.dumps(content))
    return folder


def test_the_hidden_sets_are_every_test_pair_of_both_evaluation_sets():
    hidden = hidden_test_pairs()
    arc1 = load_tasks("arc1-eval")
    assert sum(len(t.test_inputs) for t in arc1) == 419
    first = zip(arc1[0].test_inputs, arc1[0].test_outputs, strict=True)
    assert {hidden[pair_digest(p)] for p in first} == {("arc1-eval", arc1[0].task_id)}


def test_a_renamed_copy_of_evaluation_tasks_is_refused_with_its_test_pairs(tmp_path):
    tasks = load_tasks("arc1-eval", limit=3)
    folder = _renamed_copy(tmp_path / "mine", tasks)
    with pytest.raises(TestLeakError, match=r"renamed000, pair \d+ is the test pair of arc1-eval"):
        TrainingData(_config(str(folder), include_test_pairs=True))
    TrainingData(_config(str(folder)))  # their demonstrations alone are allowed


def test_an_answer_hidden_among_demonstrations_is_refused(tmp_path):
    folder = _renamed_copy(
        tmp_path / "x", load_tasks("arc1-eval", limit=2), answers_as_demonstrations=True
    )
    with pytest.raises(TestLeakError, match="2 test pair"):
        TrainingData(_config(str(folder)))


def test_a_rearc_pool_holding_an_answer_is_refused(tmp_path):
    task = load_tasks("arc1-eval", limit=1)[0]
    pool = [_entry(p) for p in task.train] + [_entry((task.test_inputs[0], task.test_outputs[0]))]
    (tmp_path / "pools").mkdir()
    (tmp_path / "pools" / "00000000.json").write_text(json.dumps(pool))
    with pytest.raises(TestLeakError, match="re-arc task 00000000"):
        TrainingData(_config(rearc=str(tmp_path / "pools")))


def test_arc2_training_with_its_test_pairs_is_refused_and_without_them_recorded():
    with pytest.raises(TestLeakError, match="395 test pair"):
        TrainingData(_config("arc2-train", include_test_pairs=True))
    record = TrainingData(_config("arc2-train")).provenance
    assert record["demonstrations_of"] == {"arc1-eval": 376, "arc2-eval": 0}
    assert len(record["pair_digests"]) == len(set(record["pair_digests"])) > 3000
    excluded = TrainingData(_config("arc2-train", exclude="arc1-eval")).provenance
    assert excluded["demonstrations_of"] == {"arc1-eval": 0, "arc2-eval": 0}
    assert len(excluded["excluded"]["dropped"]["arc2-train"]) == 376
    assert excluded["sources"][0]["tasks"] == 624
