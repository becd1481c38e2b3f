"""Building blocks of the LPN transformers: normalisation, dropout, projections, lookups and
the grid positions of cell tokens."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from lpn_arc.config import ModelConfig

__all__ = [
    "ACTIVATION_FUNCTIONS",
    "cell_positions",
    "dropout",
    "embed",
    "layer_norm",
    "linear",
    "lookup",
    "next_position",
    "split_key",
    "valid_cells",
]

ACTIVATION_FUNCTIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "silu": jax.nn.silu,
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
}
"""The function of each of :data:`lpn_arc.config.ACTIVATIONS`."""
_LN_EPS = 1e-6


def layer_norm(x: jax.Array) -> jax.Array:
    """LayerNorm without scale or bias (eps 1e-6), computed in float32."""
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    return ((x32 - mean) * jax.lax.rsqrt(var + _LN_EPS)).astype(x.dtype)


def dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Inverted dropout; the identity when ``key`` is None or ``rate`` is 0."""
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def split_key(key: jax.Array | None, num: int) -> list[jax.Array | None]:
    """``num`` keys split from ``key``, or ``num`` Nones without a key (no dropout)."""
    if key is None:
        return [None] * num
    return list(jax.random.split(key, num))


def linear(cfg: ModelConfig, fan_in: int, fan_out: int, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(
        fan_in, fan_out, use_bias=False, dtype=cfg.compute_dtype, param_dtype=jnp.float32, rngs=rngs
    )


def embed(cfg: ModelConfig, num: int, rngs: nnx.Rngs) -> nnx.Embed:
    return nnx.Embed(
        num, cfg.embed_dim, dtype=cfg.compute_dtype, param_dtype=jnp.float32, rngs=rngs
    )


def lookup(table: nnx.Embed, index: jax.Array) -> jax.Array:
    """Embedding lookup with indices clipped into the table (no NaN fill)."""
    num = table.embedding.shape[0]
    return table(jnp.clip(jnp.asarray(index, jnp.int32), 0, num - 1))


# Grid positions of cell tokens ---------------------------------------------------------


def cell_positions(rows: int, cols: int) -> tuple[jax.Array, jax.Array]:
    """Row and column index of every padded cell, ``(R, C)`` each."""
    return jnp.meshgrid(jnp.arange(rows), jnp.arange(cols), indexing="ij")


def valid_cells(shape: jax.Array, max_rows: int, max_cols: int) -> jax.Array:
    """Boolean ``(R, C)``: True inside the ``[rows, cols]`` top-left corner."""
    r, c = cell_positions(max_rows, max_cols)
    return (r < shape[0]) & (c < shape[1])


def next_position(
    r: jax.Array, c: jax.Array, cols: jax.Array, max_rows: int
) -> tuple[jax.Array, jax.Array]:
    """Position of the cell predicted by the cell at ``(r, c)`` for an output ``cols`` wide."""
    wrap = c + 1 >= cols
    next_r = jnp.where(wrap, jnp.minimum(r + 1, max_rows - 1), r)
    next_c = jnp.where(wrap, 0, c + 1)
    return next_r, next_c
