"""Helpers for tests and benchmarks of the model (not needed for training or evaluation)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["shape_forcer"]


def shape_forcer(graphdef: nnx.GraphDef) -> Callable[..., Any]:
    """``force(params, z, inputs, input_shape, shape)``: parameters whose rows/cols heads
    make greedy decoding of this input predict ``shape`` (e.g. a 30x30 output to time).

    The gradient of a head logit with respect to its kernel column is the LayerNormed
    hidden state the head reads; writing it into the target class's column and zeroing the
    others makes the target logit ``|LN(h)|^2 > 0`` and every other logit 0. Only the two
    shape heads change; the cells are decoded by the untouched decoder.

    Args:
        graphdef: the model graph from ``lpn_arc.model.split_model``.

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
