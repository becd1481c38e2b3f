"""Test-only code of ``lpn_arc``: reference implementations and shape forcing.

Nothing here is needed for training or evaluation, so it lives with the tests (the
benchmarks import :func:`shape_forcer` from here to time full-size outputs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from lpn_arc.model import LPNModel

__all__ = ["generate_uncached", "shape_forcer"]


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
    pair = {
        "inputs": inputs,
        "input_shapes": jnp.asarray(input_shape, jnp.int32),
        "outputs": jnp.zeros((rows_n, cols_n), jnp.int32),
        "output_shapes": jnp.ones((2,), jnp.int32),
    }
    rows = jnp.argmax(decoder.logits(z, pair)["rows"]).astype(jnp.int32) + 1
    pair["output_shapes"] = jnp.stack([rows, jnp.ones((), jnp.int32)])
    cols = jnp.argmax(decoder.logits(z, pair)["cols"]).astype(jnp.int32) + 1
    shape = jnp.stack([rows, cols])
    pair["output_shapes"] = shape

    # One full decoder pass per cell of the predicted shape, in raster order.
    def body(k: jax.Array, grid: jax.Array) -> jax.Array:
        r, c = k // cols, k % cols
        cells = decoder.logits(z, {**pair, "outputs": grid})["cells"]
        return grid.at[r, c].set(jnp.argmax(cells[r, c]).astype(jnp.int32))

    grid = jax.lax.fori_loop(0, rows * cols, body, pair["outputs"])
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
        pair = {
            "inputs": inputs,
            "input_shapes": input_shape,
            "outputs": jnp.zeros_like(inputs),
            "output_shapes": shape,
        }

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
