"""LPN encoder and decoder transformers (Flax NNX), mirroring the official architecture.

Both networks are stacks of pre-LayerNorm transformer blocks (LayerNorm without scale or
bias, eps 1e-6; multi-head attention with bias-free E->E projections and a float32 softmax;
a bias-free MLP ``E -> mlp_factor * E -> E``). Positions are learned row and column tables.

* The encoder reads one (input, output) pair as ``[CLS, rows_in, rows_out, cols_in,
  cols_out, cells...]`` with the cells of both grids interleaved (``in(0,0), out(0,0),
  in(0,1), ...``) and maps the CLS output to a diagonal Gaussian over the latent ``z``.
* The decoder reads ``[rows_in, cols_in, input cells, latent token, rows_out, cols_out,
  output cells]``; ``z`` enters only through the latent token. It predicts the number of
  output rows (at the latent token), then columns (at the rows token), then the cells in
  raster order (the cols token predicts cell 0, each valid cell predicts the next valid cell,
  wrapping from the last valid column of a row to the first cell of the next row). Output
  cell tokens carry the position embedding of the cell they predict ("next-position").

Every method works on ONE pair (no pair or batch axis); callers ``jax.vmap``. The functional
adapters (:func:`split_model`, :func:`encode_fn`, :func:`log_likelihood_fn`,
:func:`generate_fn`) expose the model as pure functions of an explicit parameter pytree.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from latentsearch import DiagGaussian
from lpn_arc.grids import NUM_COLOURS, PAIR_KEYS

Pair = dict[str, jax.Array]
KVCache = list[tuple[jax.Array, jax.Array]]

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "silu": jax.nn.silu,
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
}
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
_NORMALISATIONS = ("mean", "sum")
_LN_EPS = 1e-6


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the LPN encoder and decoder.

    Attributes:
        max_rows: padded grid height R.
        max_cols: padded grid width C.
        latent_dim: latent dimension d.
        encoder_layers: number of encoder blocks (0 allowed).
        decoder_layers: number of decoder blocks (0 allowed).
        num_heads: attention heads (shared by encoder and decoder).
        head_dim: dimension per head; the model width is ``E = num_heads * head_dim``.
        mlp_factor: MLP hidden width as a multiple of E.
        dropout: dropout rate on embeddings, attention outputs and MLP outputs.
        activation: MLP activation, ``"silu"`` (official), ``"relu"`` or ``"gelu"``.
        dtype: activation dtype, ``"float32"`` or ``"bfloat16"`` (parameters, softmax,
            logits and latents stay float32).
        cell_normalisation: ``"mean"`` (official: mean over valid output cells of the cell
            log-probs) or ``"sum"`` (plain sequence log-likelihood).
    """

    max_rows: int
    max_cols: int
    latent_dim: int
    encoder_layers: int
    decoder_layers: int
    num_heads: int
    head_dim: int
    mlp_factor: float
    dropout: float = 0.0
    activation: str = "silu"
    dtype: str = "float32"
    cell_normalisation: str = "mean"

    def __post_init__(self) -> None:
        positive = ("max_rows", "max_cols", "latent_dim", "num_heads", "head_dim")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")
        for name in ("encoder_layers", "decoder_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"ModelConfig.{name} must be an int >= 0, got {value!r}")
        if not self.mlp_factor > 0 or self.mlp_dim < 1:
            raise ValueError(f"ModelConfig.mlp_factor must be > 0, got {self.mlp_factor!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"ModelConfig.activation must be one of {sorted(_ACTIVATIONS)}, "
                f"got {self.activation!r}"
            )
        if self.dtype not in _DTYPES:
            raise ValueError(
                f"ModelConfig.dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}"
            )
        if self.cell_normalisation not in _NORMALISATIONS:
            raise ValueError(
                f"ModelConfig.cell_normalisation must be one of {_NORMALISATIONS}, "
                f"got {self.cell_normalisation!r}"
            )

    @property
    def embed_dim(self) -> int:
        """Model width ``E = num_heads * head_dim``."""
        return self.num_heads * self.head_dim

    @property
    def mlp_dim(self) -> int:
        """MLP hidden width ``int(mlp_factor * E)``."""
        return int(self.mlp_factor * self.embed_dim)

    @property
    def compute_dtype(self) -> jnp.dtype:
        """The activation dtype as a JAX dtype."""
        return _DTYPES[self.dtype]

    @classmethod
    def pattern(cls, **overrides: Any) -> ModelConfig:
        """Paper Table 13 (Pattern): 2+2 layers, 6 heads x 16, MLP 1, d 32, 10x10 grids."""
        base = dict(
            max_rows=10,
            max_cols=10,
            latent_dim=32,
            encoder_layers=2,
            decoder_layers=2,
            num_heads=6,
            head_dim=16,
            mlp_factor=1.0,
        )
        return cls(**{**base, **overrides})

    @classmethod
    def arc_repo(cls, **overrides: Any) -> ModelConfig:
        """Official repo ``arc_train.yaml``: 4+4 layers, 8 heads x 32, MLP 4, d 128, 30x30."""
        base = dict(
            max_rows=30,
            max_cols=30,
            latent_dim=128,
            encoder_layers=4,
            decoder_layers=4,
            num_heads=8,
            head_dim=32,
            mlp_factor=4.0,
            dtype="bfloat16",
        )
        return cls(**{**base, **overrides})

    @classmethod
    def arc_paper(cls, **overrides: Any) -> ModelConfig:
        """Paper Table 16 (learned positions, no RoPE): enc 8 / dec 6 layers, 8 x 64, d 256."""
        base = dict(
            max_rows=30,
            max_cols=30,
            latent_dim=256,
            encoder_layers=8,
            decoder_layers=6,
            num_heads=8,
            head_dim=64,
            mlp_factor=4.0,
            dtype="bfloat16",
        )
        return cls(**{**base, **overrides})


# --------------------------------------------------------------------------------------
# Building blocks


def _layer_norm(x: jax.Array) -> jax.Array:
    """LayerNorm without scale or bias (eps 1e-6), computed in float32."""
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    return ((x32 - mean) * jax.lax.rsqrt(var + _LN_EPS)).astype(x.dtype)


def _dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Inverted dropout; the identity when ``key`` is None or ``rate`` is 0."""
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def _split(key: jax.Array | None, num: int) -> list[jax.Array | None]:
    if key is None:
        return [None] * num
    return list(jax.random.split(key, num))


def _linear(cfg: ModelConfig, fan_in: int, fan_out: int, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(
        fan_in, fan_out, use_bias=False, dtype=cfg.compute_dtype, param_dtype=jnp.float32, rngs=rngs
    )


def _embed(cfg: ModelConfig, num: int, rngs: nnx.Rngs) -> nnx.Embed:
    return nnx.Embed(
        num, cfg.embed_dim, dtype=cfg.compute_dtype, param_dtype=jnp.float32, rngs=rngs
    )


def _lookup(table: nnx.Embed, index: jax.Array) -> jax.Array:
    """Embedding lookup with indices clipped into the table (no NaN fill)."""
    num = table.embedding.shape[0]
    return table(jnp.clip(jnp.asarray(index, jnp.int32), 0, num - 1))


class Attention(nnx.Module):
    """Multi-head attention with bias-free q/k/v/out projections and float32 softmax."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs) -> None:
        """Builds the four ``E -> E`` projections.

        Args:
            cfg: the model configuration.
            rngs: parameter initialisation RNGs.
        """
        width = cfg.embed_dim
        self.num_heads = cfg.num_heads
        self.head_dim = cfg.head_dim
        self.query = _linear(cfg, width, width, rngs)
        self.key = _linear(cfg, width, width, rngs)
        self.value = _linear(cfg, width, width, rngs)
        self.out = _linear(cfg, width, width, rngs)

    def qkv(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Projects ``(n, E)`` tokens to queries, keys and values ``(n, H, Dh)``."""
        heads = (x.shape[0], self.num_heads, self.head_dim)
        return (
            self.query(x).reshape(heads),
            self.key(x).reshape(heads),
            self.value(x).reshape(heads),
        )

    def attend(
        self,
        q: jax.Array,
        k: jax.Array,
        v: jax.Array,
        mask: jax.Array,
        *,
        dropout_rate: float = 0.0,
        dropout_key: jax.Array | None = None,
    ) -> jax.Array:
        """Scaled dot-product attention of ``n`` queries over ``T`` keys.

        Args:
            q: queries ``(n, H, Dh)``.
            k: keys ``(T, H, Dh)``.
            v: values ``(T, H, Dh)``.
            mask: boolean, broadcastable to ``(n, T)``; True = may attend.
            dropout_rate: dropout on the attention weights.
            dropout_key: dropout key (None = no dropout).

        Returns:
            The projected attention output ``(n, E)``.
        """
        mask = jnp.broadcast_to(mask, (q.shape[0], k.shape[0]))
        if dropout_key is None or dropout_rate == 0.0:
            # Float32 logits and softmax; faster than the explicit version below on CPU.
            out = jax.nn.dot_product_attention(q, k, v, mask=mask[None])
        else:
            q = q / jnp.asarray(math.sqrt(self.head_dim), q.dtype)
            logits = jnp.einsum("nhd,thd->hnt", q, k, preferred_element_type=jnp.float32)
            logits = jnp.where(mask[None], logits, jnp.finfo(jnp.float32).min)
            weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
            weights = _dropout(weights, dropout_rate, dropout_key)
            out = jnp.einsum("hnt,thd->nhd", weights, v)
        return self.out(out.reshape(out.shape[0], -1))


class Block(nnx.Module):
    """Pre-LayerNorm transformer block: ``x += MHA(LN(x)); x += MLP(LN(x))``."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs) -> None:
        """Builds attention and MLP.

        Args:
            cfg: the model configuration.
            rngs: parameter initialisation RNGs.
        """
        self.dropout = cfg.dropout
        self.activation = cfg.activation
        self.attention = Attention(cfg, rngs=rngs)
        self.mlp_in = _linear(cfg, cfg.embed_dim, cfg.mlp_dim, rngs)
        self.mlp_out = _linear(cfg, cfg.mlp_dim, cfg.embed_dim, rngs)

    def __call__(
        self,
        x: jax.Array,
        mask: jax.Array,
        *,
        cache: tuple[jax.Array, jax.Array] | None = None,
        index: jax.Array | int = 0,
        dropout_key: jax.Array | None = None,
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        """Applies the block to ``n`` tokens.

        Args:
            x: tokens ``(n, E)``.
            mask: attention mask broadcastable to ``(n, T)``; without a cache ``T = n``.
            cache: optional ``(keys, values)`` of shape ``(T, H, Dh)``; the new tokens' keys
                and values are written at ``index`` and attention runs over the whole cache.
            index: first cache slot of the new tokens.
            dropout_key: dropout key (None = deterministic).

        Returns:
            ``(y, (keys, values))``: the new tokens ``(n, E)`` and the keys/values attended
            over (the updated cache, or the tokens' own keys/values without a cache).
        """
        attn_key, res_key, mlp_key = _split(dropout_key, 3)
        q, k, v = self.attention.qkv(_layer_norm(x))
        if cache is not None:
            k = jax.lax.dynamic_update_slice(cache[0], k.astype(cache[0].dtype), (index, 0, 0))
            v = jax.lax.dynamic_update_slice(cache[1], v.astype(cache[1].dtype), (index, 0, 0))
        attended = self.attention.attend(
            q, k, v, mask, dropout_rate=self.dropout, dropout_key=attn_key
        )
        x = x + _dropout(attended, self.dropout, res_key)
        hidden = _ACTIVATIONS[self.activation](self.mlp_in(_layer_norm(x)))
        x = x + _dropout(self.mlp_out(hidden), self.dropout, mlp_key)
        return x, (k, v)


def _check_shape(name: str, value: jax.Array, expected: tuple[int, ...]) -> None:
    if tuple(jnp.shape(value)) != expected:
        raise ValueError(
            f"{name} must have shape {expected} (one pair; vmap over batches), "
            f"got {tuple(jnp.shape(value))}"
        )


def _check_pair(cfg: ModelConfig, pair: Pair) -> None:
    if not isinstance(pair, dict):
        raise ValueError(f"pair must be a dict in the pair format, got {type(pair).__name__}")
    missing = [key for key in PAIR_KEYS if key not in pair]
    if missing:
        raise ValueError(f"pair is missing keys {missing}")
    grid = (cfg.max_rows, cfg.max_cols)
    _check_shape("pair['inputs']", pair["inputs"], grid)
    _check_shape("pair['input_shapes']", pair["input_shapes"], (2,))
    _check_shape("pair['outputs']", pair["outputs"], grid)
    _check_shape("pair['output_shapes']", pair["output_shapes"], (2,))


def _cell_positions(rows: int, cols: int) -> tuple[jax.Array, jax.Array]:
    """Row and column index of every padded cell, ``(R, C)`` each."""
    return jnp.meshgrid(jnp.arange(rows), jnp.arange(cols), indexing="ij")


def _valid_cells(shape: jax.Array, max_rows: int, max_cols: int) -> jax.Array:
    """Boolean ``(R, C)``: True inside the ``[rows, cols]`` top-left corner."""
    r, c = _cell_positions(max_rows, max_cols)
    return (r < shape[0]) & (c < shape[1])


def _next_position(
    r: jax.Array, c: jax.Array, cols: jax.Array, max_rows: int
) -> tuple[jax.Array, jax.Array]:
    """Position of the cell predicted by the cell at ``(r, c)`` for an output ``cols`` wide."""
    wrap = c + 1 >= cols
    next_r = jnp.where(wrap, jnp.minimum(r + 1, max_rows - 1), r)
    next_c = jnp.where(wrap, 0, c + 1)
    return next_r, next_c


# --------------------------------------------------------------------------------------
# Encoder


class Encoder(nnx.Module):
    """Transformer encoder q(z | x, y) of one pair to a diagonal Gaussian."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs) -> None:
        """Builds embeddings, blocks and the mean / log-variance heads.

        Args:
            cfg: the model configuration.
            rngs: parameter initialisation RNGs.
        """
        self.cfg = cfg
        self.colour = _embed(cfg, NUM_COLOURS, rngs)
        self.row_position = _embed(cfg, cfg.max_rows, rngs)
        self.col_position = _embed(cfg, cfg.max_cols, rngs)
        self.channel = _embed(cfg, 2, rngs)
        self.shape_rows = _embed(cfg, cfg.max_rows, rngs)
        self.shape_cols = _embed(cfg, cfg.max_cols, rngs)
        self.cls = _embed(cfg, 1, rngs)
        self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.encoder_layers)])
        self.mean = _linear(cfg, cfg.embed_dim, cfg.latent_dim, rngs)
        self.log_var = _linear(cfg, cfg.embed_dim, cfg.latent_dim, rngs)

    def __call__(self, pair: Pair, *, dropout_key: jax.Array | None = None) -> DiagGaussian:
        """Encodes one pair.

        Args:
            pair: one pair (no leading axis) in the pair format.
            dropout_key: dropout key (None = deterministic).

        Returns:
            The posterior ``DiagGaussian`` with float32 mean and log-variance ``(d,)``.
        """
        cfg = self.cfg
        rows, cols = cfg.max_rows, cfg.max_cols
        in_shape = jnp.asarray(pair["input_shapes"], jnp.int32)
        out_shape = jnp.asarray(pair["output_shapes"], jnp.int32)
        channel = self.channel(jnp.arange(2))  # (2, E)

        shape_tokens = jnp.stack(
            [
                _lookup(self.shape_rows, in_shape[0] - 1) + channel[0],
                _lookup(self.shape_rows, out_shape[0] - 1) + channel[1],
                _lookup(self.shape_cols, in_shape[1] - 1) + channel[0],
                _lookup(self.shape_cols, out_shape[1] - 1) + channel[1],
            ]
        )
        grids = jnp.stack([pair["inputs"], pair["outputs"]], axis=-1)  # (R, C, 2)
        r, c = _cell_positions(rows, cols)
        position = self.row_position(r) + self.col_position(c)  # (R, C, E)
        cells = _lookup(self.colour, grids) + position[:, :, None] + channel  # (R, C, 2, E)
        tokens = jnp.concatenate(
            [self.cls(jnp.zeros((1,), jnp.int32)), shape_tokens, cells.reshape(-1, cfg.embed_dim)]
        )
        cell_valid = jnp.stack(
            [_valid_cells(in_shape, rows, cols), _valid_cells(out_shape, rows, cols)], axis=-1
        )
        key_valid = jnp.concatenate([jnp.ones((5,), bool), cell_valid.reshape(-1)])

        keys = _split(dropout_key, len(self.blocks) + 1)
        x = _dropout(tokens, cfg.dropout, keys[0])
        for block, key in zip(self.blocks, keys[1:], strict=True):
            x, _ = block(x, key_valid[None, :], dropout_key=key)
        head = _layer_norm(x[0])
        return DiagGaussian(
            mean=self.mean(head).astype(jnp.float32),
            log_var=self.log_var(head).astype(jnp.float32),
        )


# --------------------------------------------------------------------------------------
# Decoder


class Decoder(nnx.Module):
    """Autoregressive transformer decoder p(y | x, z) over output shape then cells."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs) -> None:
        """Builds embeddings, the latent projection, blocks and the three heads.

        Args:
            cfg: the model configuration.
            rngs: parameter initialisation RNGs.
        """
        self.cfg = cfg
        self.colour = _embed(cfg, NUM_COLOURS, rngs)
        self.row_position = _embed(cfg, cfg.max_rows, rngs)
        self.col_position = _embed(cfg, cfg.max_cols, rngs)
        self.segment = _embed(cfg, 2, rngs)
        self.shape_rows = _embed(cfg, cfg.max_rows, rngs)
        self.shape_cols = _embed(cfg, cfg.max_cols, rngs)
        self.latent = _linear(cfg, cfg.latent_dim, cfg.embed_dim, rngs)
        self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.decoder_layers)])
        self.rows_head = _linear(cfg, cfg.embed_dim, cfg.max_rows, rngs)
        self.cols_head = _linear(cfg, cfg.embed_dim, cfg.max_cols, rngs)
        self.grid_head = _linear(cfg, cfg.embed_dim, NUM_COLOURS, rngs)

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

    def _prefix_tokens(
        self, z: jax.Array, inputs: jax.Array, input_shape: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Input-side tokens plus the latent token, and their key validity ``(RC + 3,)``."""
        cfg = self.cfg
        segment = self.segment(jnp.zeros((), jnp.int32))
        r, c = _cell_positions(cfg.max_rows, cfg.max_cols)
        cells = _lookup(self.colour, inputs) + self.row_position(r) + self.col_position(c) + segment
        tokens = jnp.concatenate(
            [
                (_lookup(self.shape_rows, input_shape[0] - 1) + segment)[None],
                (_lookup(self.shape_cols, input_shape[1] - 1) + segment)[None],
                cells.reshape(-1, cfg.embed_dim),
                self.latent(z.astype(jnp.float32))[None],
            ]
        )
        valid = _valid_cells(input_shape, cfg.max_rows, cfg.max_cols).reshape(-1)
        key_valid = jnp.concatenate([jnp.ones((2,), bool), valid, jnp.ones((1,), bool)])
        return tokens, key_valid

    def _output_cell_tokens(
        self, colours: jax.Array, r: jax.Array, c: jax.Array, cols: jax.Array
    ) -> jax.Array:
        """Output cell tokens: colour + next-position embedding + output segment."""
        next_r, next_c = _next_position(r, c, cols, self.cfg.max_rows)
        return (
            _lookup(self.colour, colours)
            + self.row_position(next_r)
            + self.col_position(next_c)
            + self.segment(jnp.ones((), jnp.int32))
        )

    def _row_token(self, rows: jax.Array) -> jax.Array:
        return _lookup(self.shape_rows, rows - 1) + self.segment(jnp.ones((), jnp.int32))

    def _col_token(self, cols: jax.Array) -> jax.Array:
        return _lookup(self.shape_cols, cols - 1) + self.segment(jnp.ones((), jnp.int32))

    def _head(self, head: nnx.Linear, hidden: jax.Array) -> jax.Array:
        return head(_layer_norm(hidden)).astype(jnp.float32)

    # Teacher forcing -------------------------------------------------------------------

    def logits(
        self, z: jax.Array, pair: Pair, *, dropout_key: jax.Array | None = None
    ) -> dict[str, jax.Array]:
        """Teacher-forced logits of one pair's output given ``z`` and the input.

        Args:
            z: latent ``(d,)``.
            pair: one pair in the pair format (the output is the teacher-forced target).
            dropout_key: dropout key (None = deterministic).

        Returns:
            ``{"rows": (R,), "cols": (C,), "cells": (R, C, 10)}`` float32 logits; ``rows[k]``
            scores ``k + 1`` rows; ``cells[r, c]`` is the distribution of output cell
            ``(r, c)`` (meaningful inside the output shape only).
        """
        cfg = self.cfg
        rows_n, cols_n = cfg.max_rows, cfg.max_cols
        out_shape = jnp.asarray(pair["output_shapes"], jnp.int32)
        prefix, prefix_valid = self._prefix_tokens(
            z, pair["inputs"], jnp.asarray(pair["input_shapes"], jnp.int32)
        )
        r, c = _cell_positions(rows_n, cols_n)
        cells = self._output_cell_tokens(pair["outputs"], r, c, out_shape[1])
        tokens = jnp.concatenate(
            [
                prefix,
                self._row_token(out_shape[0])[None],
                self._col_token(out_shape[1])[None],
                cells.reshape(-1, cfg.embed_dim),
            ]
        )
        out_valid = _valid_cells(out_shape, rows_n, cols_n).reshape(-1)
        key_valid = jnp.concatenate([prefix_valid, jnp.ones((2,), bool), out_valid])

        lat = self.latent_index
        pos = jnp.arange(self.sequence_length)
        query, key = pos[:, None], pos[None, :]
        mask = key_valid[None, :] & ((key < lat) | (key == lat) | ((query >= lat) & (key <= query)))

        keys = _split(dropout_key, len(self.blocks) + 1)
        x = _dropout(tokens, cfg.dropout, keys[0])
        for block, block_key in zip(self.blocks, keys[1:], strict=True):
            x, _ = block(x, mask, dropout_key=block_key)

        # Cell (r, c) is predicted by the previous valid cell in raster order: (r, c - 1),
        # else the last valid cell of row r - 1, else (for (0, 0)) the output-cols token.
        first_cell = lat + 3
        source = jnp.where(
            c > 0,
            first_cell + r * cols_n + c - 1,
            jnp.where(r > 0, first_cell + (r - 1) * cols_n + out_shape[1] - 1, lat + 2),
        )
        return {
            "rows": self._head(self.rows_head, x[lat]),
            "cols": self._head(self.cols_head, x[lat + 1]),
            "cells": self._head(self.grid_head, x[source.reshape(-1)]).reshape(
                rows_n, cols_n, NUM_COLOURS
            ),
        }

    # Cached greedy generation ----------------------------------------------------------

    def _step(
        self,
        token: jax.Array,
        cache: KVCache,
        key_valid: jax.Array,
        index: jax.Array | int,
        active: jax.Array | bool = True,
    ) -> tuple[jax.Array, KVCache, jax.Array]:
        """Runs one new token at cache slot ``index`` through all blocks."""
        key_valid = key_valid.at[index].set(active)
        x = token[None]
        new_cache = []
        for block, layer_cache in zip(self.blocks, cache, strict=True):
            x, layer_cache = block(x, key_valid[None, :], cache=layer_cache, index=index)
            new_cache.append(layer_cache)
        return x[0], new_cache, key_valid

    def generate(
        self,
        z: jax.Array,
        inputs: jax.Array,
        input_shape: jax.Array,
        *,
        stop_early: bool = False,
    ) -> tuple[jax.Array, jax.Array]:
        """Greedy decoding with a key/value cache (one token of work per new cell).

        Args:
            z: latent ``(d,)``.
            inputs: padded input grid ``(R, C)``.
            input_shape: ``[rows, cols]`` of the input.
            stop_early: loop only over the predicted ``rows * cols`` cells (a while loop)
                instead of a fixed ``R * C - 1`` steps; faster for a single small output,
                slower under ``vmap`` (see the comment in the code).

        Returns:
            ``(grid, shape)``: the ``int32`` ``(R, C)`` output, zero outside the predicted
            shape, and the predicted ``int32`` ``[rows, cols]``.
        """
        cfg = self.cfg
        rows_n, cols_n = cfg.max_rows, cfg.max_cols
        total = self.sequence_length
        prefix, prefix_valid = self._prefix_tokens(z, inputs, jnp.asarray(input_shape, jnp.int32))
        num_prefix = prefix.shape[0]  # R*C + 3, the latent token last

        # Prefill: input tokens see valid input tokens and the latent token; the latent
        # token sees the same, so one key mask serves all prefix queries.
        x = prefix
        cache: KVCache = []
        for block in self.blocks:
            x, (k, v) = block(x, prefix_valid[None, :])
            padding = ((0, total - num_prefix), (0, 0), (0, 0))
            cache.append((jnp.pad(k, padding), jnp.pad(v, padding)))
        key_valid = jnp.concatenate([prefix_valid, jnp.zeros((total - num_prefix,), bool)])
        rows = jnp.argmax(self._head(self.rows_head, x[-1])).astype(jnp.int32) + 1

        hidden, cache, key_valid = self._step(
            self._row_token(rows), cache, key_valid, jnp.asarray(num_prefix)
        )
        cols = jnp.argmax(self._head(self.cols_head, hidden)).astype(jnp.int32) + 1
        hidden, cache, key_valid = self._step(
            self._col_token(cols), cache, key_valid, jnp.asarray(num_prefix + 1)
        )
        colour = jnp.argmax(self._head(self.grid_head, hidden)).astype(jnp.int32)
        num_out = rows * cols

        # Fixed-length loop over the R*C - 1 cell tokens that can precede a predicted cell
        # (static trip count, so cache slots are unbatched under vmap); step j feeds valid
        # cell j (raster order inside the predicted shape) and predicts valid cell j + 1.
        # Steps with j + 1 >= rows * cols are inert: their key stays masked.
        def body(j: jax.Array, carry: tuple) -> tuple:
            colours, cache, key_valid = carry
            active = j + 1 < num_out
            token = self._output_cell_tokens(colours[j], j // cols, j % cols, cols)
            hidden, cache, key_valid = self._step(
                token, cache, key_valid, num_prefix + 2 + j, active
            )
            colour = jnp.argmax(self._head(self.grid_head, hidden)).astype(jnp.int32)
            colours = colours.at[j + 1].set(jnp.where(active, colour, 0))
            return colours, cache, key_valid

        colours = jnp.zeros((rows_n * cols_n,), jnp.int32).at[0].set(colour)
        # A traced bound turns the loop into a while loop that stops after the predicted
        # shape: less work for a single small output, but under vmap every step then
        # selects between old and new caches, which costs more than the inert steps.
        num_steps = num_out - 1 if stop_early else rows_n * cols_n - 1
        colours, _, _ = jax.lax.fori_loop(0, num_steps, body, (colours, cache, key_valid))
        r, c = _cell_positions(rows_n, cols_n)
        inside = (r < rows) & (c < cols)
        grid = jnp.where(inside, colours[jnp.where(inside, r * cols + c, 0)], 0)
        return grid, jnp.stack([rows, cols])

    def generate_uncached(
        self, z: jax.Array, inputs: jax.Array, input_shape: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Reference greedy decoding that reruns the full decoder for every step.

        Slow (``R * C + 2`` full passes); used to test :meth:`generate`.

        Args:
            z: latent ``(d,)``.
            inputs: padded input grid ``(R, C)``.
            input_shape: ``[rows, cols]`` of the input.

        Returns:
            ``(grid, shape)`` as :meth:`generate`.
        """
        cfg = self.cfg
        rows_n, cols_n = cfg.max_rows, cfg.max_cols
        pair = {
            "inputs": inputs,
            "input_shapes": jnp.asarray(input_shape, jnp.int32),
            "outputs": jnp.zeros((rows_n, cols_n), jnp.int32),
            "output_shapes": jnp.ones((2,), jnp.int32),
        }
        rows = jnp.argmax(self.logits(z, pair)["rows"]).astype(jnp.int32) + 1
        pair["output_shapes"] = jnp.stack([rows, jnp.ones((), jnp.int32)])
        cols = jnp.argmax(self.logits(z, pair)["cols"]).astype(jnp.int32) + 1
        shape = jnp.stack([rows, cols])
        pair["output_shapes"] = shape

        def body(grid: jax.Array, k: jax.Array) -> tuple[jax.Array, None]:
            r, c = k // cols_n, k % cols_n
            cells = self.logits(z, {**pair, "outputs": grid})["cells"]
            colour = jnp.argmax(cells[r, c]).astype(jnp.int32)
            inside = (r < rows) & (c < cols)
            return grid.at[r, c].set(jnp.where(inside, colour, 0)), None

        grid, _ = jax.lax.scan(body, pair["outputs"], jnp.arange(rows_n * cols_n))
        return grid, shape


# --------------------------------------------------------------------------------------
# Full model


class LPNModel(nnx.Module):
    """The LPN encoder and decoder.

    Example:
        >>> from flax import nnx
        >>> cfg = ModelConfig(5, 5, 4, 1, 1, num_heads=2, head_dim=8, mlp_factor=1.0)
        >>> model = LPNModel(cfg, rngs=nnx.Rngs(0))
        >>> graphdef, params = split_model(model)
    """

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs) -> None:
        """Builds the encoder and decoder.

        Args:
            config: the model configuration.
            rngs: parameter initialisation RNGs (``nnx.Rngs(seed)``).
        """
        if not isinstance(config, ModelConfig):
            raise ValueError(f"config must be a ModelConfig, got {type(config).__name__}")
        self.config = config
        self.encoder = Encoder(config, rngs=rngs)
        self.decoder = Decoder(config, rngs=rngs)

    def encode(self, pair: Pair, *, dropout_key: jax.Array | None = None) -> DiagGaussian:
        """Posterior q(z | x, y) of ONE pair (no leading axis).

        Args:
            pair: one pair in the pair format.
            dropout_key: dropout key (None = deterministic).

        Returns:
            ``DiagGaussian`` with float32 ``mean`` and ``log_var`` of shape ``(d,)``.

        Raises:
            ValueError: if the pair's arrays do not have single-pair shapes.
        """
        _check_pair(self.config, pair)
        return self.encoder(pair, dropout_key=dropout_key)

    def decode_logits(
        self, z: jax.Array, pair: Pair, *, dropout_key: jax.Array | None = None
    ) -> dict[str, jax.Array]:
        """Teacher-forced decoder logits (see :meth:`Decoder.logits`).

        Args:
            z: latent ``(d,)``.
            pair: one pair in the pair format.
            dropout_key: dropout key (None = deterministic).

        Returns:
            ``{"rows": (R,), "cols": (C,), "cells": (R, C, 10)}`` float32 logits.

        Raises:
            ValueError: on wrong shapes.
        """
        _check_pair(self.config, pair)
        _check_shape("z", z, (self.config.latent_dim,))
        return self.decoder.logits(z, pair, dropout_key=dropout_key)

    def log_likelihood_terms(
        self, z: jax.Array, pair: Pair, *, dropout_key: jax.Array | None = None
    ) -> dict[str, jax.Array]:
        """The three terms of the decoder log-likelihood of one pair's output.

        Args:
            z: latent ``(d,)``.
            pair: one pair in the pair format.
            dropout_key: dropout key (None = deterministic).

        Returns:
            ``{"rows": log p(rows), "cols": log p(cols | rows), "cells": cell term}`` float32
            scalars; the cell term is the mean (``cell_normalisation="mean"``) or the sum
            (``"sum"``) over valid output cells of ``log p(cell | previous cells)``.

        Raises:
            ValueError: on wrong shapes.
        """
        cfg = self.config
        logits = self.decode_logits(z, pair, dropout_key=dropout_key)
        out_shape = jnp.asarray(pair["output_shapes"], jnp.int32)
        rows_lp = jax.nn.log_softmax(logits["rows"])[
            jnp.clip(out_shape[0] - 1, 0, cfg.max_rows - 1)
        ]
        cols_lp = jax.nn.log_softmax(logits["cols"])[
            jnp.clip(out_shape[1] - 1, 0, cfg.max_cols - 1)
        ]
        cell_lp = jnp.take_along_axis(
            jax.nn.log_softmax(logits["cells"]),
            jnp.clip(jnp.asarray(pair["outputs"], jnp.int32), 0, NUM_COLOURS - 1)[..., None],
            axis=-1,
        )[..., 0]
        valid = _valid_cells(out_shape, cfg.max_rows, cfg.max_cols)
        cells = jnp.sum(jnp.where(valid, cell_lp, 0.0))
        if cfg.cell_normalisation == "mean":
            cells = cells / jnp.maximum(jnp.sum(valid), 1).astype(jnp.float32)
        return {"rows": rows_lp, "cols": cols_lp, "cells": cells}

    def log_likelihood(
        self, z: jax.Array, pair: Pair, *, dropout_key: jax.Array | None = None
    ) -> jax.Array:
        """Teacher-forced ``log p(rows) + log p(cols) + cell term`` of one pair's output.

        Args:
            z: latent ``(d,)``.
            pair: one pair in the pair format.
            dropout_key: dropout key (None = deterministic).

        Returns:
            A float32 scalar (<= 0).

        Raises:
            ValueError: on wrong shapes.
        """
        terms = self.log_likelihood_terms(z, pair, dropout_key=dropout_key)
        return terms["rows"] + terms["cols"] + terms["cells"]

    def _check_generate_args(self, z: jax.Array, inputs: jax.Array, input_shape: jax.Array) -> None:
        cfg = self.config
        _check_shape("z", z, (cfg.latent_dim,))
        _check_shape("inputs", inputs, (cfg.max_rows, cfg.max_cols))
        _check_shape("input_shape", input_shape, (2,))

    def generate(
        self,
        z: jax.Array,
        inputs: jax.Array,
        input_shape: jax.Array,
        *,
        stop_early: bool = False,
    ) -> tuple[jax.Array, jax.Array]:
        """Greedy output for one input given ``z``, with a key/value cache (jit-able).

        Args:
            z: latent ``(d,)``.
            inputs: padded input grid ``(R, C)``.
            input_shape: ``[rows, cols]`` of the input.
            stop_early: stop after the predicted number of cells (a while loop) instead of
                running a fixed ``R * C - 1`` steps; helps single calls on large grids,
                hurts under ``vmap``. The result is the same.

        Returns:
            ``(grid, shape)``: ``int32`` ``(R, C)`` grid, zero outside the predicted shape,
            and the predicted ``int32`` ``[rows, cols]``.

        Raises:
            ValueError: on wrong shapes.
        """
        self._check_generate_args(z, inputs, input_shape)
        return self.decoder.generate(z, inputs, input_shape, stop_early=stop_early)

    def generate_uncached(
        self, z: jax.Array, inputs: jax.Array, input_shape: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Reference greedy decoding without a cache (full decoder per step; slow).

        Args:
            z: latent ``(d,)``.
            inputs: padded input grid ``(R, C)``.
            input_shape: ``[rows, cols]`` of the input.

        Returns:
            ``(grid, shape)`` as :meth:`generate`.

        Raises:
            ValueError: on wrong shapes.
        """
        self._check_generate_args(z, inputs, input_shape)
        return self.decoder.generate_uncached(z, inputs, input_shape)


# --------------------------------------------------------------------------------------
# Functional adapters


def split_model(model: LPNModel) -> tuple[nnx.GraphDef, nnx.State]:
    """Splits a model into its static graph and its parameter pytree.

    Args:
        model: an :class:`LPNModel` (concrete or from ``nnx.eval_shape``).

    Returns:
        ``(graphdef, params)``: ``params`` holds the ``nnx.Param`` state only.

    Raises:
        ValueError: if the model holds variables other than parameters.
    """
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    if jax.tree.leaves(rest):
        raise ValueError("LPNModel unexpectedly holds non-Param variables; split them apart")
    return graphdef, params


def _merge(graphdef: nnx.GraphDef, params: nnx.State) -> LPNModel:
    return nnx.merge(graphdef, params)


def encode_fn(
    graphdef: nnx.GraphDef,
) -> Callable[..., DiagGaussian]:
    """Pure encoder ``encode(params, pair, dropout_key=None) -> DiagGaussian`` (one pair).

    Args:
        graphdef: the graph from :func:`split_model`.

    Returns:
        A function usable under ``jax.jit``, ``jax.vmap`` and ``jax.grad``.
    """

    def encode(params: nnx.State, pair: Pair, dropout_key: jax.Array | None = None):
        return _merge(graphdef, params).encode(pair, dropout_key=dropout_key)

    return encode


def log_likelihood_fn(graphdef: nnx.GraphDef) -> Callable[..., jax.Array]:
    """Pure ``log_likelihood(params, z, pair, dropout_key=None) -> scalar`` (one pair).

    Args:
        graphdef: the graph from :func:`split_model`.

    Returns:
        A function usable under ``jax.jit``, ``jax.vmap`` and ``jax.grad``.
    """

    def log_likelihood(
        params: nnx.State, z: jax.Array, pair: Pair, dropout_key: jax.Array | None = None
    ) -> jax.Array:
        return _merge(graphdef, params).log_likelihood(z, pair, dropout_key=dropout_key)

    return log_likelihood


def generate_fn(
    graphdef: nnx.GraphDef, *, stop_early: bool = False
) -> Callable[..., tuple[jax.Array, jax.Array]]:
    """Pure cached greedy ``generate(params, z, inputs, input_shape) -> (grid, shape)``.

    Args:
        graphdef: the graph from :func:`split_model`.
        stop_early: see :meth:`LPNModel.generate`.

    Returns:
        A function usable under ``jax.jit`` and ``jax.vmap``.
    """

    def generate(
        params: nnx.State, z: jax.Array, inputs: jax.Array, input_shape: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        return _merge(graphdef, params).generate(z, inputs, input_shape, stop_early=stop_early)

    return generate


def count_params(params: Any) -> int:
    """Number of scalars in a parameter pytree (arrays or ``ShapeDtypeStruct`` leaves).

    Args:
        params: a parameter pytree (e.g. from :func:`split_model`) or an ``nnx.Module``.

    Returns:
        The total number of parameters.
    """
    if isinstance(params, nnx.Module):
        params = nnx.state(params, nnx.Param)
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params))
