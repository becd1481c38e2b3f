"""ARC tasks with fewer distinct pairs than N: the masked slots never reach the loss."""

import dataclasses

import jax
import numpy as np
from lpn_arc.data import TaskSampler

from tests.arc.helpers import make_task, tiny_config


def _pairs(seed, num):
    rng = np.random.default_rng(seed)
    shape = lambda: tuple(rng.integers(1, 5, 2))  # noqa: E731
    return [(rng.integers(0, 10, shape()), rng.integers(0, 10, shape())) for _ in range(num)]


def test_masked_slots_change_nothing_in_the_training_loss():
    config = tiny_config(batch_size=4, train_search="mean")
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, num_pairs=4))
    from lpn_arc.training import init_training, make_train_step

    pairs = _pairs(0, 5)
    tasks = [make_task("two", pairs[:2]), make_task("three", pairs[2:5])]
    sampler = TaskSampler(tasks=tasks, num_pairs=4, max_rows=4, max_cols=4, augment=False)
    batch = sampler.sample(np.random.default_rng(0), 4)
    assert not batch["pair_mask"].all() and batch["pair_mask"].sum(axis=1).min() >= 2
    garbled = {k: v.copy() for k, v in batch.items()}  # other grids in every masked slot
    hidden = ~batch["pair_mask"]
    garbled["outputs"][hidden] = (garbled["outputs"][hidden] + 3) % 10
    garbled["inputs"][hidden] = (garbled["inputs"][hidden] + 5) % 10
    garbled["output_shapes"][hidden] = 1

    graphdef, params, optimizer, opt_state = init_training(config)
    step = make_train_step(graphdef, config, optimizer)
    key = jax.random.key(3)
    _, _, out = step(params, opt_state, batch, key)
    _, _, garbled_out = step(params, opt_state, garbled, key)
    _, _, unmasked = step(params, opt_state, {**garbled, "pair_mask": np.ones_like(hidden)}, key)
    np.testing.assert_allclose(garbled_out["loss"], out["loss"], rtol=1e-6)
    assert abs(float(unmasked["loss"]) - float(out["loss"])) > 1e-3  # the mask is what hides them
