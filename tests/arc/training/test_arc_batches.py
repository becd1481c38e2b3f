"""ARC training batches: masked slots (tasks with fewer distinct pairs than N) never reach
the loss, and a batch in its size bucket has the loss of the same batch fully padded."""

import dataclasses

import jax
import numpy as np
from lpn_arc.data import TaskSampler

from tests.arc.helpers import make_task, tiny_config


def _pairs(seed, num):
    rng = np.random.default_rng(seed)
    shape = lambda: tuple(rng.integers(1, 5, 2))  # noqa: E731
    return [(rng.integers(0, 10, shape()), rng.integers(0, 10, shape())) for _ in range(num)]


def _setup(**model):
    config = tiny_config(batch_size=4, train_search="mean")
    config = dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, num_pairs=4),
        model=dataclasses.replace(config.model, **model),
    )
    from lpn_arc.training import init_training, make_train_step

    graphdef, params, optimizer, opt_state = init_training(config)
    return params, opt_state, make_train_step(graphdef, config, optimizer)


def test_masked_slots_change_nothing_in_the_training_loss():
    pairs = _pairs(0, 5)
    tasks = [make_task("two", pairs[:2]), make_task("three", pairs[2:5])]
    sampler = TaskSampler(tasks=tasks, num_pairs=4, max_rows=4, max_cols=4, augment=False)
    batch = sampler.sample(np.random.default_rng(0), 4)
    assert not batch.mask.all() and batch.mask.sum(axis=1).min() >= 2
    garbled = jax.tree.map(np.copy, batch)  # other grids in every masked slot
    hidden = ~batch.mask
    garbled.pairs.outputs[hidden] = (garbled.pairs.outputs[hidden] + 3) % 10
    garbled.pairs.inputs[hidden] = (garbled.pairs.inputs[hidden] + 5) % 10
    garbled.pairs.output_shapes[hidden] = 1

    params, opt_state, step = _setup()
    key = jax.random.key(3)
    _, _, out = step(params, opt_state, batch, key)
    _, _, garbled_out = step(params, opt_state, garbled, key)
    _, _, unmasked = step(params, opt_state, garbled._replace(mask=np.ones_like(hidden)), key)
    np.testing.assert_allclose(garbled_out["loss"], out["loss"], rtol=1e-6)
    assert abs(float(unmasked["loss"]) - float(out["loss"])) > 1e-3  # the mask is what hides them


def test_a_batch_in_its_size_bucket_has_the_loss_of_full_padding():
    params, opt_state, step = _setup(max_rows=12, max_cols=12)
    tasks = [make_task(f"t{i}", _pairs(i, 4)) for i in range(3)]  # grids up to 4 x 4
    sampler = TaskSampler(tasks=tasks, num_pairs=4, max_rows=12, max_cols=12, ladder=(5, 12))
    batch = sampler.sample(np.random.default_rng(0), 4)
    assert batch.pairs.inputs.shape[-2:] == (5, 5)
    grow = [(0, 0), (0, 0), (0, 7), (0, 7)]
    pairs = batch.pairs._replace(
        inputs=np.pad(batch.pairs.inputs, grow), outputs=np.pad(batch.pairs.outputs, grow)
    )
    padded = batch._replace(pairs=pairs)
    key = jax.random.key(5)
    _, _, small = step(params, opt_state, batch, key)
    _, _, full = step(params, opt_state, padded, key)
    np.testing.assert_allclose(small["loss"], full["loss"], rtol=1e-5)
    np.testing.assert_allclose(small["grad_norm"], full["grad_norm"], rtol=1e-4)
