"""Building blocks of the LPN transformers: normalisation, dropout, projections, lookups and
the grid positions of cell tokens."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from lpn_arc.config import ModelConfig
from lpn_arc.data import NUM_COLOURS

__all__ = [
    "ACTIVATION_FUNCTIONS",
    "LayerNorm",
    "cell_positions",
    "apply_dropout",
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


class LayerNorm(nnx.LayerNorm):
    """:class:`flax.nnx.LayerNorm` computed in float32 whose output has the input's dtype.

    The input is cast to float32 once (``dtype=float32``) and the output back once, so a
    bfloat16 model sums its gradients in the order of one float32 function: with the
    default ``dtype=None`` the input reaches the statistics and the centring apart (two
    roundings of its gradient), and a float32 output makes each projection reading it
    round its own share.
    """

    def __call__(self, x: jax.Array, *, mask: jax.Array | None = None) -> jax.Array:
        return super().__call__(x, mask=mask).astype(x.dtype)


def layer_norm(width: int, rngs: nnx.Rngs) -> LayerNorm:
    """LayerNorm over the last axis without scale or bias (eps 1e-6, the official model's),
    in float32 (``E[(x - mean)^2]``, not the faster ``E[x^2] - mean^2``).

    It holds no parameters: nothing is drawn from ``rngs`` or added to the checkpoint.
    """
    return LayerNorm(
        width,
        epsilon=_LN_EPS,
        dtype=jnp.float32,
        use_scale=False,
        use_bias=False,
        use_fast_variance=False,
        rngs=rngs,
    )


def dropout(cfg: ModelConfig) -> nnx.Dropout:
    """Inverted dropout at ``cfg.dropout``, applied with an explicit key
    (:func:`apply_dropout`); it holds no random state of its own."""
    return nnx.Dropout(cfg.dropout)


def apply_dropout(layer: nnx.Dropout, x: jax.Array, key: jax.Array | None) -> jax.Array:
    """``layer`` on ``x`` with the per-call ``key``; the identity when ``key`` is None (no
    dropout: inference, the search inside the loss) or the rate is 0."""
    return layer(x, deterministic=key is None, rngs=key)


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


def add_grid_embeddings(module: nnx.Module, cfg: ModelConfig, rngs: nnx.Rngs, segment: str):
    """The grid embeddings the encoder and the decoder share, set on ``module`` in one
    order (which fixes the parameters' initial values): ``colour``, with learned positions
    ``row_position`` and ``col_position``, then the two-entry table ``segment`` (the
    encoder's input/output channel, the decoder's input/output segment), ``shape_rows``
    and ``shape_cols``."""
    module.colour = embed(cfg, NUM_COLOURS, rngs)
    if cfg.positions == "learned":
        module.row_position = embed(cfg, cfg.max_rows, rngs)
        module.col_position = embed(cfg, cfg.max_cols, rngs)
    setattr(module, segment, embed(cfg, 2, rngs))
    module.shape_rows = embed(cfg, cfg.max_rows, rngs)
    module.shape_cols = embed(cfg, cfg.max_cols, rngs)


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
