"""``init_from``: a run that starts from another run's parameters (a fresh optimiser)."""

import dataclasses

import jax
import numpy as np
import pytest
from lpn_arc.training import TrainingError, load_run, train

from tests.arc.helpers import tiny_config


def test_a_run_starts_from_the_parameters_of_another(tmp_path):
    first = tiny_config(steps=2, checkpoint_every=2, train_search="mean")
    train(first, tmp_path / "first", progress=False, check_memory=False)
    trained = load_run(tmp_path / "first").params
    further = dataclasses.replace(first, steps=1, init_from=str(tmp_path / "first"), seed=3)
    stopped = train(further, tmp_path / "further", progress=False, check_memory=False, stop_at=0)
    for a, b in zip(jax.tree.leaves(stopped.params), jax.tree.leaves(trained), strict=True):
        np.testing.assert_array_equal(a, b)  # step 0 holds the loaded parameters
    other = dataclasses.replace(further, model=dataclasses.replace(first.model, latent_dim=8))
    with pytest.raises(TrainingError, match="its model differs"):
        train(other, tmp_path / "other", progress=False, check_memory=False)
