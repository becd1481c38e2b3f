"""The training loop: checkpoints and resume, fine-tuning stages, metrics files."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from lpn_arc.training import TrainingError, load_run, train

from tests.arc.helpers import scale_config, tiny_config


def test_resume_gives_the_same_parameters_as_an_uninterrupted_run(tmp_path):
    config = tiny_config()
    full = train(config, tmp_path / "full", progress=False)
    train(config, tmp_path / "killed", progress=False, stop_at=3)  # checkpoint at 3, stop
    resumed = train(config, tmp_path / "killed", progress=False, resume=True)
    assert full.step == resumed.step == 6
    for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(resumed.params), strict=True):
        np.testing.assert_array_equal(a, b)
    saved = load_run(tmp_path / "killed")
    assert saved.step == 6 and saved.config == config
    for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(saved.params), strict=True):
        np.testing.assert_array_equal(a, b)
    records = [
        json.loads(x) for x in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert (tmp_path / "killed" / "metrics.csv").read_text().startswith("step,")
    with pytest.raises(TrainingError, match="already holds checkpoints"):
        train(config, tmp_path / "full", progress=False)
    with pytest.raises(TrainingError, match="configuration differs"):
        train(dataclasses.replace(config, lr=0.5), tmp_path / "full", progress=False, resume=True)


def test_finetune_stage_switches_the_training_search(tmp_path):
    config = scale_config(train_search="mean", finetune_search="grad:1", finetune_steps=2)
    train(config, tmp_path / "run", progress=False)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    # lpn_loss reports the search score only when it searches (Grad 1 steps 3 and 4)
    assert ["search_score" in r for r in records] == [False, False, True, True]
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "search_score" in header and "loss" in header
