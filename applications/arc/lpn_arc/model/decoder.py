"""The decoder p(y | x, z): teacher-forced logits of the output's shape and cells.

The decoder reads ``[rows_in, cols_in, input cells, latent token, rows_out, cols_out, output
cells]``; ``z`` enters only through the latent token. It predicts the number of output rows
(at the latent token), then columns (at the rows token), then the cells in raster order
(the cols token predicts cell 0, each valid cell predicts the next valid cell, wrapping from
the last valid column of a row to the first cell of the next row). Output cell tokens carry
the position of the cell they predict ("next-position").

The token builders (:meth:`Decoder.prefix_tokens`, :meth:`Decoder.output_cell_tokens`...)
are shared with greedy generation (:mod:`lpn_arc.model.generation`) and the input-only
mask's cache (:mod:`lpn_arc.model.input_cache`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lpn_arc.config import ModelConfig
from lpn_arc.data import NUM_COLOURS, Pair
from lpn_arc.model.attention import add_transformer_trunk
from lpn_arc.model.layers import (
    add_grid_embeddings,
    apply_dropout,
    cell_positions,
    linear,
    lookup,
    next_position,
    split_key,
    valid_cells,
)
from lpn_arc.model.rope import Rope, rope_tables

__all__ = ["Decoder"]


class Decoder(nnx.Module):
    """Autoregressive transformer decoder p(y | x, z) over output shape then cells."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs) -> None:
        """Builds embeddings, the latent projection, blocks and the three heads.

        Args:
            cfg: the model configuration.
            rngs: parameter initialisation RNGs.
        """
        self.cfg = cfg
        add_grid_embeddings(self, cfg, rngs, segment="segment")
        self.latent = linear(cfg, cfg.latent_dim, cfg.embed_dim, rngs)
        add_transformer_trunk(self, cfg, rngs, cfg.decoder_layers)
        self.rows_head = linear(cfg, cfg.embed_dim, cfg.max_rows, rngs)
        self.cols_head = linear(cfg, cfg.embed_dim, cfg.max_cols, rngs)
        self.grid_head = linear(cfg, cfg.embed_dim, NUM_COLOURS, rngs)

    # Layout helpers --------------------------------------------------------------------

    @property
    def num_cells(self) -> int:
        """Cells per padded grid ``R * C``."""
        return self.cfg.max_rows * self.cfg.max_cols

    @property
    def latent_index(self) -> int:
        """Sequence position of the latent token (``R * C + 2``)."""
        return self.num_cells + 2

    @property
    def sequence_length(self) -> int:
        """Full decoder sequence length ``2 * R * C + 5``."""
        return 2 * self.num_cells + 5

    def rope(self, rows: jax.Array, cols: jax.Array) -> Rope | None:
        """Rotary tables for tokens at ``(rows, cols)``; None with learned positions."""
        cfg = self.cfg
        if cfg.positions == "learned":
            return None
        return rope_tables(rows, cols, cfg.head_dim, cfg.rope_max_freq)

    def input_tokens(
        self, inputs: jax.Array, input_shape: jax.Array
    ) -> tuple[jax.Array, jax.Array, tuple[jax.Array, jax.Array]]:
        """Input-side tokens ``(RC + 2, E)`` (shape tokens, then cells), their key validity
        and their ``(rows, cols)`` grid positions (``(0, 0)`` for the shape tokens)."""
        cfg = self.cfg
        segment = self.segment(jnp.zeros((), jnp.int32))
        rows_n, cols_n = jnp.shape(inputs)
        r, c = cell_positions(rows_n, cols_n)
        cells = lookup(self.colour, inputs)
        if cfg.positions == "learned":
            cells = cells + self.row_position(r) + self.col_position(c)
        cells = cells + segment
        zeros = jnp.zeros((2,), jnp.int32)
        positions = (
            jnp.concatenate([zeros, r.reshape(-1)]),
            jnp.concatenate([zeros, c.reshape(-1)]),
        )
        tokens = jnp.concatenate(
            [
                (lookup(self.shape_rows, input_shape[0] - 1) + segment)[None],
                (lookup(self.shape_cols, input_shape[1] - 1) + segment)[None],
                cells.reshape(-1, cfg.embed_dim),
            ]
        )
        valid = valid_cells(input_shape, rows_n, cols_n).reshape(-1)
        return tokens, jnp.concatenate([jnp.ones((2,), bool), valid]), positions

    def latent_token(self, z: jax.Array) -> jax.Array:
        """The latent token ``(1, E)``: the only way z enters the decoder."""
        return self.latent(z.astype(jnp.float32))[None]

    def prefix_tokens(
        self, z: jax.Array, inputs: jax.Array, input_shape: jax.Array
    ) -> tuple[jax.Array, jax.Array, tuple[jax.Array, jax.Array]]:
        """Input-side tokens plus the latent token ``(RC + 3, E)``, their key validity and
        their ``(rows, cols)`` grid positions (``(0, 0)`` for the shape and latent tokens)."""
        tokens, valid, (rows, cols) = self.input_tokens(inputs, input_shape)
        zero = jnp.zeros((1,), jnp.int32)
        return (
            jnp.concatenate([tokens, self.latent_token(z)]),
            jnp.concatenate([valid, jnp.ones((1,), bool)]),
            (jnp.concatenate([rows, zero]), jnp.concatenate([cols, zero])),
        )

    def output_cell_tokens(
        self, colours: jax.Array, r: jax.Array, c: jax.Array, cols: jax.Array
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        """Output cell tokens (colour + next-position embedding + output segment) and their
        next positions ``(rows, cols)`` (the cells they predict)."""
        next_r, next_c = next_position(r, c, cols, self.cfg.max_rows)
        tokens = lookup(self.colour, colours)
        if self.cfg.positions == "learned":
            tokens = tokens + self.row_position(next_r) + self.col_position(next_c)
        return tokens + self.segment(jnp.ones((), jnp.int32)), (next_r, next_c)

    def row_token(self, rows: jax.Array) -> jax.Array:
        """The output rows token ``(E,)`` of an output with ``rows`` rows."""
        return lookup(self.shape_rows, rows - 1) + self.segment(jnp.ones((), jnp.int32))

    def col_token(self, cols: jax.Array) -> jax.Array:
        """The output cols token ``(E,)`` of an output with ``cols`` columns."""
        return lookup(self.shape_cols, cols - 1) + self.segment(jnp.ones((), jnp.int32))

    def head_logits(self, head: nnx.Linear, hidden: jax.Array) -> jax.Array:
        """Float32 logits of ``head`` (rows, cols or grid) read off the normalised state."""
        return head(self.head_norm(hidden)).astype(jnp.float32)

    # Teacher forcing -------------------------------------------------------------------

    def prefix_mask(self, prefix_valid: jax.Array) -> jax.Array:
        """``(P, P)`` attention of the prefix tokens (input tokens, the latent token last)
        over each other: valid tokens only; with ``decoder_mask="input-only"`` the input
        tokens do not see the latent token (the latent token sees everything)."""
        num = prefix_valid.shape[0]
        mask = jnp.broadcast_to(prefix_valid[None, :], (num, num))
        if self.cfg.decoder_mask == "input-only":
            latent_key = jnp.arange(num)[None, :] == num - 1
            latent_query = jnp.arange(num)[:, None] == num - 1
            mask = mask & (~latent_key | latent_query)
        return mask

    def output_tokens(self, pair: Pair) -> tuple[jax.Array, jax.Array, tuple[jax.Array, jax.Array]]:
        """Output-side tokens ``(2 + R'C', E)`` of a teacher-forced pair (rows and cols
        tokens, then the cells), their key validity and their rotary positions (``(0, 0)``
        for the shape tokens, the next cell's for a cell token)."""
        rows_n, cols_n = jnp.shape(pair.outputs)  # the model's R x C, or a smaller bucket
        out_shape = jnp.asarray(pair.output_shapes, jnp.int32)
        r, c = cell_positions(rows_n, cols_n)
        cells, (next_r, next_c) = self.output_cell_tokens(pair.outputs, r, c, out_shape[1])
        zeros = jnp.zeros((2,), jnp.int32)
        tokens = jnp.concatenate(
            [
                self.row_token(out_shape[0])[None],
                self.col_token(out_shape[1])[None],
                cells.reshape(-1, self.cfg.embed_dim),
            ]
        )
        valid = jnp.concatenate(
            [jnp.ones((2,), bool), valid_cells(out_shape, rows_n, cols_n).reshape(-1)]
        )
        return (
            tokens,
            valid,
            (
                jnp.concatenate([zeros, next_r.reshape(-1)]),
                jnp.concatenate([zeros, next_c.reshape(-1)]),
            ),
        )

    def hidden_states(
        self, z: jax.Array, pair: Pair, *, dropout_key: jax.Array | None = None
    ) -> jax.Array:
        """The last block's token states of one teacher-forced pair, ``(2 R'C' + 5, E)``.

        Token order: input rows and cols tokens, the ``R' x C'`` input cells (raster),
        the latent token, output rows and cols tokens, the ``R' x C'`` output cells. The
        attention mask (the official one): input tokens attend to valid input tokens and
        to the latent; the latent and output tokens attend to every valid token up to
        themselves; a cell outside its grid's shape is never attended.

        Args:
            z: latent ``(d,)``.
            pair: one pair in the pair format (see :meth:`logits`).
            dropout_key: dropout key (None = deterministic).
        """
        prefix, prefix_valid, (prefix_r, prefix_c) = self.prefix_tokens(
            z, pair.inputs, jnp.asarray(pair.input_shapes, jnp.int32)
        )
        out, out_valid, (out_r, out_c) = self.output_tokens(pair)
        rope = self.rope(jnp.concatenate([prefix_r, out_r]), jnp.concatenate([prefix_c, out_c]))
        tokens = jnp.concatenate([prefix, out])
        key_valid = jnp.concatenate([prefix_valid, out_valid])

        # Prefix queries (input tokens, then the latent) attend within the prefix; output
        # queries attend to every valid token up to themselves. Attention runs by blocks
        # (``split``): the prefix queries' scores are only computed against prefix keys.
        num_prefix, num_tokens = prefix.shape[0], tokens.shape[0]
        prefix_rows = jnp.pad(
            self.prefix_mask(prefix_valid), ((0, 0), (0, num_tokens - num_prefix))
        )
        pos = jnp.arange(num_tokens)
        output_rows = key_valid[None, :] & (pos[None, :] <= pos[num_prefix:, None])
        mask = jnp.concatenate([prefix_rows, output_rows])

        keys = split_key(dropout_key, len(self.blocks) + 1)
        x = apply_dropout(self.embed_dropout, tokens, keys[0])
        for block, block_key in zip(self.blocks, keys[1:], strict=True):
            x, _ = block(x, mask, rope=rope, dropout_key=block_key, split=num_prefix)
        return x

    def logits(
        self, z: jax.Array, pair: Pair, *, dropout_key: jax.Array | None = None
    ) -> dict[str, jax.Array]:
        """Teacher-forced logits of one pair's output given ``z`` and the input.

        Args:
            z: latent ``(d,)``.
            pair: one pair in the pair format (the output is the teacher-forced target).
            dropout_key: dropout key (None = deterministic).

        Returns:
            ``{"rows": (R,), "cols": (C,), "cells": (R', C', 10)}`` float32 logits; ``rows[k]``
            scores ``k + 1`` rows; ``cells[r, c]`` is the distribution of output cell
            ``(r, c)`` (meaningful inside the output shape only). ``R' x C'`` is the padded
            size of ``pair.outputs``: the model's ``R x C`` or any smaller size that
            holds the grids (a size bucket: the same values for the valid cells, less work).
        """
        x = self.hidden_states(z, pair, dropout_key=dropout_key)
        return self.heads(x, pair, latent_index=jnp.size(pair.inputs) + 2)

    def heads(self, x: jax.Array, pair: Pair, *, latent_index: int) -> dict[str, jax.Array]:
        """The rows, cols and cell logits read off token states ``x`` whose latent token
        sits at ``latent_index`` (followed by the output rows, cols and cell tokens)."""
        rows_n, cols_n = jnp.shape(pair.outputs)
        out_shape = jnp.asarray(pair.output_shapes, jnp.int32)
        r, c = cell_positions(rows_n, cols_n)
        lat = latent_index

        # Cell (r, c) is predicted by the previous valid cell in raster order: (r, c - 1),
        # else the last valid cell of row r - 1, else (for (0, 0)) the output-cols token.
        first_cell = lat + 3
        source = jnp.where(
            c > 0,
            first_cell + r * cols_n + c - 1,
            jnp.where(r > 0, first_cell + (r - 1) * cols_n + out_shape[1] - 1, lat + 2),
        )
        return {
            "rows": self.head_logits(self.rows_head, x[lat]),
            "cols": self.head_logits(self.cols_head, x[lat + 1]),
            "cells": self.head_logits(self.grid_head, x[source.reshape(-1)]).reshape(
                rows_n, cols_n, NUM_COLOURS
            ),
        }

    # Cached greedy generation ----------------------------------------------------------
