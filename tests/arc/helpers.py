"""Test-only code of ``lpn_arc`` and what several test modules share.

Nothing here is needed for training or evaluation, so it lives with the tests: the
uncached reference decoder, shape forcing (the benchmarks import both from here to time
full-size outputs), tiny configurations and random data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from lpn_arc.config import TrainConfig, get_preset
from lpn_arc.data import ArcTask, Pair, training_batch
from lpn_arc.model import (
    LPNModel,
    ModelConfig,
    encode_fn,
    generate_fn,
    log_likelihood_fn,
    split_model,
)
from lpn_arc.training import init_training, make_train_step

__all__ = [
    "EVAL_MODEL",
    "EVAL_TASKS",
    "GRID_A",
    "GRID_B",
    "TINY",
    "exact_matches",
    "generate_uncached",
    "make_task",
    "one_train_step",
    "pair_at",
    "random_arc_tasks",
    "random_pairs",
    "scale_config",
    "shape_forcer",
    "tiny_config",
    "tiny_model_fixture",
]


def generate_uncached(
    model: LPNModel, z: jax.Array, inputs: jax.Array, input_shape: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Reference greedy decoding that reruns the full decoder for every step.

    Slow (``rows * cols + 2`` full teacher-forced passes over the whole sequence, no
    cache); the reference that :meth:`lpn_arc.model.LPNModel.generate` is tested against.

    Args:
        model: the model.
        z: latent ``(d,)``.
        inputs: padded input grid ``(R, C)``.
        input_shape: ``[rows, cols]`` of the input.

    Returns:
        ``(grid, shape)`` as :meth:`lpn_arc.model.LPNModel.generate`.

    Raises:
        ValueError: on wrong shapes.
    """
    model.check_generate_args(z, inputs, input_shape)
    decoder = model.decoder
    rows_n, cols_n = decoder.cfg.max_rows, decoder.cfg.max_cols
    pair = Pair(
        inputs,
        jnp.asarray(input_shape, jnp.int32),
        jnp.zeros((rows_n, cols_n), jnp.int32),
        jnp.ones((2,), jnp.int32),
    )
    rows = jnp.argmax(decoder.logits(z, pair)["rows"]).astype(jnp.int32) + 1
    pair = pair._replace(output_shapes=jnp.stack([rows, jnp.ones((), jnp.int32)]))
    cols = jnp.argmax(decoder.logits(z, pair)["cols"]).astype(jnp.int32) + 1
    shape = jnp.stack([rows, cols])
    pair = pair._replace(output_shapes=shape)

    # One full decoder pass per cell of the predicted shape, in raster order.
    def body(k: jax.Array, grid: jax.Array) -> jax.Array:
        r, c = k // cols, k % cols
        cells = decoder.logits(z, pair._replace(outputs=grid))["cells"]
        return grid.at[r, c].set(jnp.argmax(cells[r, c]).astype(jnp.int32))

    grid = jax.lax.fori_loop(0, rows * cols, body, pair.outputs)
    return grid, shape


def shape_forcer(graphdef: nnx.GraphDef) -> Callable[..., Any]:
    """``force(params, z, inputs, input_shape, shape)``: parameters whose rows/cols heads
    make greedy decoding of this input predict ``shape`` (e.g. a 30x30 output to time).

    The gradient of a head logit with respect to its kernel column is the LayerNormed
    hidden state the head reads; writing it into the target class's column and zeroing the
    others makes the target logit ``|LN(h)|^2 > 0`` and every other logit 0. Only the two
    shape heads change; the cells are decoded by the untouched decoder.

    Args:
        graphdef: the model graph from :func:`lpn_arc.model.split_model`.

    Returns:
        The function ``force``; ``shape`` is ``[rows, cols]``.
    """

    @jax.jit
    def head_inputs(params, z, inputs, input_shape, shape):
        pair = Pair(inputs, input_shape, jnp.zeros_like(inputs), shape)

        def first_logits(params):
            logits = nnx.merge(graphdef, params).decode_logits(z, pair)
            return logits["rows"][0] + logits["cols"][0]

        grads = nnx.to_pure_dict(jax.grad(first_logits)(params))["decoder"]
        return grads["rows_head"]["kernel"][:, 0], grads["cols_head"]["kernel"][:, 0]

    def force(params, z, inputs, input_shape, shape):
        shape = jnp.asarray(shape, jnp.int32)
        columns = head_inputs(params, z, inputs, input_shape, shape)
        forced = nnx.to_pure_dict(params)
        for head, column, target in zip(
            ("rows_head", "cols_head"), columns, shape - 1, strict=True
        ):
            kernel = jnp.zeros_like(forced["decoder"][head]["kernel"])
            forced["decoder"][head]["kernel"] = kernel.at[:, target].set(column)
        new_params = jax.tree.map(lambda x: x, params)
        nnx.replace_by_pure_dict(new_params, forced)
        return new_params

    return force


TINY = ModelConfig(
    max_rows=5,
    max_cols=5,
    latent_dim=4,
    encoder_layers=1,
    decoder_layers=2,
    num_heads=2,
    head_dim=8,
    mlp_factor=2.0,
)


def random_pairs(seed, num, max_rows=5, max_cols=5):
    """Random pairs of random shapes, with junk (non-zero) colours in the padding."""
    rng = np.random.default_rng(seed)
    grids = rng.integers(0, 10, size=(num, 2, max_rows, max_cols)).astype(np.int32)
    shapes = np.stack(
        [rng.integers(1, max_rows + 1, size=(num, 2)), rng.integers(1, max_cols + 1, (num, 2))],
        axis=-1,
    ).astype(np.int32)
    return Pair(grids[:, 0], shapes[:, 0], grids[:, 1], shapes[:, 1])


def pair_at(pairs, i):
    """Pair ``i`` of stacked pairs."""
    return jax.tree.map(lambda x: x[i], pairs)


def tiny_model_fixture(config):
    """A model of ``config`` (seed 0) and its jitted functions (the model tests' fixtures)."""
    model = LPNModel(config, rngs=nnx.Rngs(0))
    graphdef, params = split_model(model)
    return {
        "model": model,
        "params": params,
        "encode": jax.jit(encode_fn(graphdef)),
        "ll": jax.jit(log_likelihood_fn(graphdef)),
        "generate": jax.jit(jax.vmap(generate_fn(graphdef), in_axes=(None, 0, 0, 0))),
        "uncached": jax.jit(
            jax.vmap(lambda z, x, s: generate_uncached(model, z, x, s), in_axes=(0, 0, 0))
        ),
        "logits": jax.jit(lambda z, pair: model.decode_logits(z, pair)),
    }


def tiny_config(**overrides) -> TrainConfig:
    """A tiny model trained with the quickstart recipe (its decoder mask included)."""
    base = get_preset("quickstart")
    model = ModelConfig(
        max_rows=4,
        max_cols=4,
        latent_dim=4,
        encoder_layers=1,
        decoder_layers=1,
        num_heads=2,
        head_dim=4,
        mlp_factor=1.0,
        decoder_mask=base.model.decoder_mask,
    )
    data = dataclasses.replace(base.data, grid_size=4, pattern_size=2, test_tasks=8)
    fields = dict(batch_size=4, steps=6, checkpoint_every=2, log_every=1, warmup_steps=2)
    return dataclasses.replace(base, model=model, data=data, **{**fields, **overrides})


def scale_config(**overrides):
    """:func:`tiny_config` with a batch of 8 over 4 steps (sharding and accumulation tests)."""
    fields = dict(batch_size=8, steps=4, warmup_steps=1)
    return tiny_config(**{**fields, **overrides})


def one_train_step(config, mesh=None, jaxpr=False):
    """One step from the seed on batch 0: ``(params, opt_state, metrics)``, or its jaxpr."""
    graphdef, params, optimizer, opt_state = init_training(config)
    step = make_train_step(graphdef, config, optimizer, mesh=mesh)
    batch = training_batch(config, 0)
    args = (params, opt_state, batch, jax.random.key(3))
    return str(jax.make_jaxpr(step)(*args)) if jaxpr else step(*args)


def exact_matches(attempt, shapes, outputs, output_shapes):
    """Per task: the attempt's shape and every cell of the true output are right (a
    plain loop, independent of the evaluator's vectorised metric)."""
    hits = []
    for grid, shape, truth, (rows, cols) in zip(
        attempt, shapes, outputs, output_shapes, strict=True
    ):
        same_shape = tuple(shape) == (rows, cols)
        hits.append(same_shape and np.array_equal(grid[:rows, :cols], truth[:rows, :cols]))
    return np.array(hits)


def random_arc_tasks(num_tasks=3):
    """Random ARC tasks in memory: 2, 3, 4... train pairs, two test inputs (task 1 without
    solutions)."""
    rng = np.random.default_rng(5)
    tasks = []
    for t in range(num_tasks):
        num_train = 2 + t  # 2, 3, 4 spec pairs

        def grid(top=3 + t):  # task t's grids have at most 2 + t rows and columns
            return rng.integers(0, 10, size=tuple(rng.integers(1, top, size=2))).astype(np.int8)

        train = tuple((grid(), grid()) for _ in range(num_train))
        tests = (grid(), grid())
        outputs = (grid(), grid()) if t != 1 else None
        tasks.append(ArcTask(f"task{t}", train, tests, outputs, "memory"))
    return tasks


EVAL_MODEL = ModelConfig(
    max_rows=5,
    max_cols=5,
    latent_dim=4,
    encoder_layers=1,
    decoder_layers=1,
    num_heads=2,
    head_dim=8,
    mlp_factor=1.0,
)
EVAL_TASKS = 5
"""The evaluations of ``tests/arc/conftest.py``: the model, and the number of tasks."""


GRID_A = [[1, 2, 3], [4, 5, 6]]
GRID_B = [[7, 0], [0, 8], [9, 9]]
"""Two small grids of different shapes (the data tests' examples)."""


def make_task(task_id, pairs, test=()):
    """An in-memory ARC task of ``(input, output)`` grid lists (``int8``)."""
    to = lambda g: np.asarray(g, dtype=np.int8)  # noqa: E731
    return ArcTask(
        task_id,
        tuple((to(i), to(o)) for i, o in pairs),
        tuple(to(i) for i, _ in test),
        tuple(to(o) for _, o in test),
        "memory",
    )
