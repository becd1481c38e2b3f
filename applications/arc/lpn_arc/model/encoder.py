"""The encoder q(z | x, y): one (input, output) pair to a diagonal Gaussian over z.

The encoder reads one pair as ``[CLS, rows_in, rows_out, cols_in, cols_out, cells...]`` with
the cells of both grids interleaved (``in(0,0), out(0,0), in(0,1), ...``) and maps the CLS
output to a diagonal Gaussian over the latent ``z``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from latentsearch import DiagGaussian
from lpn_arc.config import ModelConfig
from lpn_arc.data import Pair
from lpn_arc.model.attention import add_transformer_trunk
from lpn_arc.model.layers import (
    add_grid_embeddings,
    apply_dropout,
    cell_positions,
    embed,
    linear,
    lookup,
    split_key,
    valid_cells,
)
from lpn_arc.model.rope import rope_tables

__all__ = ["Encoder"]


class Encoder(nnx.Module):
    """Transformer encoder q(z | x, y) of one pair to a diagonal Gaussian."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs) -> None:
        """Builds embeddings, blocks and the mean / log-variance heads.

        Args:
            cfg: the model configuration.
            rngs: parameter initialisation RNGs.
        """
        self.cfg = cfg
        add_grid_embeddings(self, cfg, rngs, segment="channel")
        self.cls = embed(cfg, 1, rngs)
        add_transformer_trunk(self, cfg, rngs, cfg.encoder_layers)
        self.mean = linear(cfg, cfg.embed_dim, cfg.latent_dim, rngs)
        self.log_var = linear(cfg, cfg.embed_dim, cfg.latent_dim, rngs)

    def __call__(self, pair: Pair, *, dropout_key: jax.Array | None = None) -> DiagGaussian:
        """Encodes one pair.

        Args:
            pair: one pair (no leading axis) in the pair format.
            dropout_key: dropout key (None = deterministic).

        Returns:
            The posterior ``DiagGaussian`` with float32 mean and log-variance ``(d,)``.
        """
        cfg = self.cfg
        rows, cols = jnp.shape(pair.inputs)
        if jnp.shape(pair.outputs) != (rows, cols):
            raise ValueError(
                f"the encoder needs inputs and outputs padded alike, got {(rows, cols)} and "
                f"{jnp.shape(pair.outputs)}"
            )
        in_shape = jnp.asarray(pair.input_shapes, jnp.int32)
        out_shape = jnp.asarray(pair.output_shapes, jnp.int32)
        channel = self.channel(jnp.arange(2))  # (2, E)

        shape_tokens = jnp.stack(
            [
                lookup(self.shape_rows, in_shape[0] - 1) + channel[0],
                lookup(self.shape_rows, out_shape[0] - 1) + channel[1],
                lookup(self.shape_cols, in_shape[1] - 1) + channel[0],
                lookup(self.shape_cols, out_shape[1] - 1) + channel[1],
            ]
        )
        grids = jnp.stack([pair.inputs, pair.outputs], axis=-1)  # (R, C, 2)
        r, c = cell_positions(rows, cols)
        cells = lookup(self.colour, grids)  # (R, C, 2, E)
        rope = None
        if cfg.positions == "learned":
            cells = cells + (self.row_position(r) + self.col_position(c))[:, :, None]
        else:  # both cells of grid position (r, c) rotate with it; CLS and shapes at (0, 0)
            rope = rope_tables(
                jnp.concatenate([jnp.zeros((5,), jnp.int32), jnp.repeat(r.reshape(-1), 2)]),
                jnp.concatenate([jnp.zeros((5,), jnp.int32), jnp.repeat(c.reshape(-1), 2)]),
                cfg.head_dim,
                cfg.rope_max_freq,
            )
        cells = cells + channel
        tokens = jnp.concatenate(
            [self.cls(jnp.zeros((1,), jnp.int32)), shape_tokens, cells.reshape(-1, cfg.embed_dim)]
        )
        cell_valid = jnp.stack(
            [valid_cells(in_shape, rows, cols), valid_cells(out_shape, rows, cols)], axis=-1
        )
        key_valid = jnp.concatenate([jnp.ones((5,), bool), cell_valid.reshape(-1)])

        keys = split_key(dropout_key, len(self.blocks) + 1)
        x = apply_dropout(self.embed_dropout, tokens, keys[0])
        for block, key in zip(self.blocks, keys[1:], strict=True):
            x, _ = block(x, key_valid[None, :], rope=rope, dropout_key=key)
        head = self.head_norm(x[0])
        return DiagGaussian(
            mean=self.mean(head).astype(jnp.float32),
            log_var=self.log_var(head).astype(jnp.float32),
        )
