"""LPN encoder and decoder transformers (Flax NNX), mirroring the official architecture.

Both networks are stacks of pre-LayerNorm transformer blocks (LayerNorm without scale or
bias, eps 1e-6; multi-head attention with bias-free E->E projections and a float32 softmax;
a bias-free MLP ``E -> mlp_factor * E -> E``). Positions are either learned row and column
tables added to the tokens (``positions="learned"``, the official model) or 2-D rotary
embeddings of the queries and keys in every attention layer (``positions="rope"``, see
:func:`apply_rope`).

* The encoder reads one (input, output) pair as ``[CLS, rows_in, rows_out, cols_in,
  cols_out, cells...]`` with the cells of both grids interleaved (``in(0,0), out(0,0),
  in(0,1), ...``) and maps the CLS output to a diagonal Gaussian over the latent ``z``.
* The decoder reads ``[rows_in, cols_in, input cells, latent token, rows_out, cols_out,
  output cells]``; ``z`` enters only through the latent token. It predicts the number of
  output rows (at the latent token), then columns (at the rows token), then the cells in
  raster order (the cols token predicts cell 0, each valid cell predicts the next valid cell,
  wrapping from the last valid column of a row to the first cell of the next row). Output
  cell tokens carry the position of the cell they predict ("next-position").

Greedy decoding (:meth:`LPNModel.generate`) keeps a key/value cache: after one pass over the
input-side prefix, each new token costs one token's work (its projections, MLP and one
attention row over the fixed-size cache), and the loop stops after the predicted shape.

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
_POSITIONS = ("learned", "rope")
_DECODER_MASKS = ("official", "input-only")
_LN_EPS = 1e-6
# The masked-logit value of jax.nn.dot_product_attention (float32 softmax).
_LARGE_NEGATIVE = -0.7 * float(np.finfo(np.float32).max)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the LPN encoder and decoder.

    Attributes:
        max_rows: padded grid height R.
        max_cols: padded grid width C.
        latent_dim: latent dimension d.
        encoder_layers: number of encoder blocks (0 allowed).
        decoder_layers: number of decoder blocks (0 allowed).
        num_heads: attention heads (of the encoder, and of the decoder unless
            ``decoder_num_heads`` is set).
        head_dim: dimension per head; the model width is ``E = num_heads * head_dim``.
        mlp_factor: MLP hidden width as a multiple of E.
        decoder_num_heads: the decoder's heads when it is narrower or wider than the
            encoder (paper Table 15: encoder 8 x 8, decoder 8 x 4); 0 = ``num_heads``.
        decoder_head_dim: the decoder's dimension per head; 0 = ``head_dim``.
        decoder_mlp_factor: the decoder's MLP factor; 0 = ``mlp_factor``.
        decoder_mask: ``"official"``: the decoder's input tokens attend to the latent token
            too (facts 2.4); ``"input-only"``: they attend to input tokens only, so their
            keys and values do not depend on z and are computed once per pair
            (:meth:`LPNModel.precompute`, :mod:`lpn_arc.input_cache`) and reused by every
            search step and candidate latent.
        dropout: dropout rate on embeddings, attention weights, attention outputs and MLP
            outputs, in training only: the encoder and the scoring of held-out pairs (the
            search inside the loss, test-time search and generation run without it).
        activation: MLP activation, ``"silu"`` (official), ``"relu"`` or ``"gelu"``.
        dtype: activation dtype, ``"float32"`` or ``"bfloat16"`` (parameters, softmax,
            logits and latents stay float32).
        cell_normalisation: ``"mean"`` (official: mean over valid output cells of the cell
            log-probs) or ``"sum"`` (plain sequence log-likelihood).
        positions: ``"learned"`` (official: learned row and column tables added to the cell
            tokens) or ``"rope"`` (2-D rotary embeddings of queries and keys, no position
            tables; needs ``head_dim % 4 == 0``; see :func:`apply_rope`).
        rope_max_freq: the RoPE base (``max_wavelength`` of text RoPE, 10000 there; paper
            Table 16: "RoPE, max freq 10"): rotation pair ``i`` of the ``q = head_dim / 4``
            pairs per axis turns ``rope_max_freq ** (-i / q)`` radians per cell, so the
            slowest pair's wavelength is ``2 pi rope_max_freq ** ((q - 1) / q)`` cells (47
            for ``head_dim=32``, 10). Unused with learned positions.
    """

    max_rows: int
    max_cols: int
    latent_dim: int
    encoder_layers: int
    decoder_layers: int
    num_heads: int
    head_dim: int
    mlp_factor: float
    decoder_num_heads: int = 0
    decoder_head_dim: int = 0
    decoder_mlp_factor: float = 0.0
    decoder_mask: str = "official"
    dropout: float = 0.0
    activation: str = "silu"
    dtype: str = "float32"
    cell_normalisation: str = "mean"
    positions: str = "learned"
    rope_max_freq: float = 10.0

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
        for name in ("decoder_num_heads", "decoder_head_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"ModelConfig.{name} must be an int >= 0 (0: the encoder's), got {value!r}"
                )
        if not self.decoder_mlp_factor >= 0:
            raise ValueError(
                "ModelConfig.decoder_mlp_factor must be >= 0 (0: the encoder's), got "
                f"{self.decoder_mlp_factor!r}"
            )
        if self.has_own_decoder_width:
            self.decoder_config()  # validates the decoder's width (RoPE needs head_dim % 4)
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
        if self.decoder_mask not in _DECODER_MASKS:
            raise ValueError(
                f"ModelConfig.decoder_mask must be one of {_DECODER_MASKS}, "
                f"got {self.decoder_mask!r}"
            )
        if self.positions not in _POSITIONS:
            raise ValueError(
                f"ModelConfig.positions must be one of {_POSITIONS}, got {self.positions!r}"
            )
        if self.positions == "rope" and self.head_dim % 4:
            raise ValueError(
                "ModelConfig.head_dim must be divisible by 4 with positions='rope' (half of "
                f"each head rotates with the row, half with the column), got {self.head_dim}"
            )
        freq = self.rope_max_freq
        if (
            isinstance(freq, bool)
            or not isinstance(freq, int | float)
            or not 1.0 <= freq < math.inf
        ):
            raise ValueError(f"ModelConfig.rope_max_freq must be a number >= 1, got {freq!r}")

    @property
    def has_own_decoder_width(self) -> bool:
        """True when a ``decoder_*`` width field differs from the encoder's."""
        return bool(self.decoder_num_heads or self.decoder_head_dim or self.decoder_mlp_factor)

    def decoder_config(self) -> ModelConfig:
        """The configuration the decoder is built from: the encoder's, with the
        ``decoder_*`` width fields applied (``self`` when none is set)."""
        if not self.has_own_decoder_width:
            return self
        return dataclasses.replace(
            self,
            num_heads=self.decoder_num_heads or self.num_heads,
            head_dim=self.decoder_head_dim or self.head_dim,
            mlp_factor=self.decoder_mlp_factor or self.mlp_factor,
            decoder_num_heads=0,
            decoder_head_dim=0,
            decoder_mlp_factor=0.0,
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


# Rotary position embeddings ------------------------------------------------------------

Rope = tuple[jax.Array, jax.Array]
"""Cosines and sines of the rotation angles, float32 ``(n, 1, 2, head_dim // 4)`` each."""


def rope_tables(rows: jax.Array, cols: jax.Array, head_dim: int, max_freq: float) -> Rope:
    """Rotation tables of ``n`` tokens at grid positions ``(rows[i], cols[i])``.

    Axis ``a`` (0 = row, 1 = column) of a token at position ``p_a`` turns its rotation pair
    ``i < q = head_dim // 4`` by the angle ``p_a * max_freq ** (-i / q)`` (computed in
    float32).

    Args:
        rows: row index of each token, ``(n,)`` integers (0 for tokens without a cell).
        cols: column index of each token, ``(n,)``.
        head_dim: the per-head dimension (divisible by 4).
        max_freq: the RoPE base, :attr:`ModelConfig.rope_max_freq`.

    Returns:
        ``(cos, sin)``, float32 ``(n, 1, 2, head_dim // 4)`` each (the 1 broadcasts over heads).
    """
    quarter = head_dim // 4
    inv_freq = np.power(float(max_freq), -np.arange(quarter, dtype=np.float64) / quarter)
    pos = jnp.stack([jnp.asarray(rows), jnp.asarray(cols)], axis=-1).astype(jnp.float32)
    angle = pos[:, :, None] * jnp.asarray(inv_freq, jnp.float32)  # (n, 2, q)
    return jnp.cos(angle)[:, None], jnp.sin(angle)[:, None]


def _rotate(x: jax.Array, rope: Rope) -> jax.Array:
    """Rotates queries or keys ``(n, H, Dh)`` by :func:`rope_tables` (float32 maths)."""
    cos, sin = rope
    n, heads, head_dim = x.shape
    # Dh = [row pair halves a, b | column pair halves a, b], each of Dh / 4 dimensions.
    x32 = x.astype(jnp.float32).reshape(n, heads, 2, 2, head_dim // 4)
    a, b = x32[:, :, :, 0], x32[:, :, :, 1]
    rotated = jnp.stack([a * cos - b * sin, b * cos + a * sin], axis=3)
    return rotated.reshape(x.shape).astype(x.dtype)


def apply_rope(x: jax.Array, rows: jax.Array, cols: jax.Array, max_freq: float = 10.0) -> jax.Array:
    """2-D rotary position embedding of queries or keys.

    The first half of each head's dimensions rotates with the token's row, the second half
    with its column: each half is split into two quarters ``a, b`` and the pairs
    ``(a[i], b[i])`` turn by the angle of :func:`rope_tables`. The dot product of a rotated
    query at ``(r, c)`` and a rotated key at ``(r', c')`` therefore depends on the positions
    only through the offsets ``(r - r', c - c')``. Tokens without a grid cell (CLS, shape
    and latent tokens) sit at ``(0, 0)``, the identity rotation.

    Args:
        x: queries or keys ``(n, H, Dh)`` with ``Dh % 4 == 0`` (any float dtype; the
            rotation is computed in float32 and cast back).
        rows: row index of each token, ``(n,)``.
        cols: column index of each token, ``(n,)``.
        max_freq: the RoPE base (:attr:`ModelConfig.rope_max_freq`).

    Returns:
        The rotated array, shape and dtype of ``x``.

    Raises:
        ValueError: if ``x`` is not 3-D or its last dimension is not divisible by 4.
    """
    if jnp.ndim(x) != 3 or x.shape[-1] % 4:
        raise ValueError(f"x must be (n, H, Dh) with Dh divisible by 4, got {jnp.shape(x)}")
    return _rotate(x, rope_tables(rows, cols, x.shape[-1], max_freq))


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
        self.compute_dtype = cfg.compute_dtype
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

    def attend_cached(
        self, q: jax.Array, keys: jax.Array, values: jax.Array, key_valid: jax.Array
    ) -> jax.Array:
        """Attention of ONE query over a key/value cache, in the cache's own layout.

        Follows the arithmetic of ``jax.nn.dot_product_attention`` (float32 logits scaled
        after the product, masked with ``-0.7 * float32 max``, float32 softmax, weights cast
        to the activation dtype) so that cached decoding reproduces the full pass.

        Args:
            q: the query ``(H, Dh)``.
            keys: key cache ``(H, Dh, T)`` (contraction-ready: no per-step transpose).
            values: value cache ``(H, T, Dh)``.
            key_valid: boolean ``(T,)``; True = may attend.

        Returns:
            The projected attention output ``(1, E)``.
        """
        logits = jnp.einsum(
            "hd,hdt->ht", q.astype(keys.dtype), keys, preferred_element_type=jnp.float32
        )
        logits = logits * jnp.asarray(1.0 / math.sqrt(self.head_dim), jnp.float32)
        logits = jnp.where(key_valid[None], logits, _LARGE_NEGATIVE)
        weights = jax.nn.softmax(logits, axis=-1).astype(self.compute_dtype)
        out = jnp.einsum(
            "ht,htd->hd", weights.astype(values.dtype), values, preferred_element_type=jnp.float32
        )
        return self.out(out.astype(self.compute_dtype).reshape(1, -1))


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
        rope: Rope | None = None,
        dropout_key: jax.Array | None = None,
        prefix: tuple[jax.Array, jax.Array] | None = None,
        split: int | None = None,
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        """Applies the block to ``n`` tokens attending over each other (and a prefix).

        Args:
            x: tokens ``(n, E)``.
            mask: attention mask broadcastable to ``(n, n)``, or ``(n, P + n)`` with a
                ``prefix`` of ``P`` tokens (its keys first).
            rope: rotary tables of the ``n`` tokens (None = no rotation).
            dropout_key: dropout key (None = deterministic).
            prefix: keys and values ``(P, H, Dh)`` of earlier tokens, already rotated
                (see :mod:`lpn_arc.input_cache`), that the ``n`` tokens attend to as well.
            split: attention by blocks (no ``prefix``): the first ``split`` queries attend
                to the first ``split`` keys only (their mask is False beyond), so their
                scores are computed on that ``split x split`` block and the other queries'
                on their ``(n - split) x n`` rows, instead of one dense ``n x n`` product.

        Returns:
            ``(y, (keys, values))``: the new tokens ``(n, E)`` and their (rotated) keys and
            values ``(n, H, Dh)``.
        """
        if split is not None and prefix is not None:
            raise ValueError("Block: split (attention by blocks) and prefix are exclusive")
        attn_key, res_key, mlp_key = _split(dropout_key, 3)
        q, k, v = self.attention.qkv(_layer_norm(x))
        if rope is not None:
            q, k = _rotate(q, rope), _rotate(k, rope)
        keys, values = (k, v)
        if prefix is not None:
            keys = jnp.concatenate([prefix[0].astype(k.dtype), k])
            values = jnp.concatenate([prefix[1].astype(v.dtype), v])
        if split is None:
            attended = self.attention.attend(
                q, keys, values, mask, dropout_rate=self.dropout, dropout_key=attn_key
            )
        else:
            mask = jnp.broadcast_to(mask, (q.shape[0], keys.shape[0]))
            head_key, tail_key = _split(attn_key, 2)
            head = self.attention.attend(
                q[:split], keys[:split], values[:split], mask[:split, :split],
                dropout_rate=self.dropout, dropout_key=head_key,
            )  # fmt: skip
            tail = self.attention.attend(
                q[split:], keys, values, mask[split:],
                dropout_rate=self.dropout, dropout_key=tail_key,
            )  # fmt: skip
            attended = jnp.concatenate([head, tail])
        x = x + _dropout(attended, self.dropout, res_key)
        return self._mlp(x, mlp_key), (k, v)

    def _mlp(self, x: jax.Array, dropout_key: jax.Array | None = None) -> jax.Array:
        """The residual MLP half of the block: ``x + MLP(LN(x))``."""
        hidden = _ACTIVATIONS[self.activation](self.mlp_in(_layer_norm(x)))
        return x + _dropout(self.mlp_out(hidden), self.dropout, dropout_key)

    def step(
        self,
        x: jax.Array,
        cache: tuple[jax.Array, jax.Array],
        index: jax.Array | int,
        key_valid: jax.Array,
        *,
        rope: Rope | None = None,
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        """Applies the block to ONE new token with a key/value cache (deterministic).

        The token's key and value are written into the cache slot ``index`` in place; the
        token then attends over the whole (fixed-size) cache under ``key_valid``.

        Args:
            x: the token ``(1, E)``.
            cache: ``(keys (H, Dh, T), values (H, T, Dh))``.
            index: the token's cache slot.
            key_valid: boolean ``(T,)``, True for the slots the token may attend to (its
                own slot included).
            rope: rotary tables of the token (None = no rotation).

        Returns:
            ``(y, cache)``: the new token ``(1, E)`` and the updated cache.
        """
        q, k, v = self.attention.qkv(_layer_norm(x))
        if rope is not None:
            q, k = _rotate(q, rope), _rotate(k, rope)
        zero = jnp.zeros((), jnp.int32)
        index = jnp.asarray(index, jnp.int32)
        keys = jax.lax.dynamic_update_slice(
            cache[0], k[0, :, :, None].astype(cache[0].dtype), (zero, zero, index)
        )
        values = jax.lax.dynamic_update_slice(
            cache[1], v[0, :, None, :].astype(cache[1].dtype), (zero, index, zero)
        )
        x = x + self.attention.attend_cached(q[0], keys, values, key_valid)
        return self._mlp(x), (keys, values)


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
    for name in ("inputs", "outputs"):  # any padded size up to the model's (a size bucket)
        grid = tuple(jnp.shape(pair[name]))
        if len(grid) != 2 or not (1 <= grid[0] <= cfg.max_rows and 1 <= grid[1] <= cfg.max_cols):
            raise ValueError(
                f"pair[{name!r}] must be a 2-D grid of at most {cfg.max_rows}x{cfg.max_cols} "
                f"(one pair; vmap over batches), got shape {grid}"
            )
    _check_shape("pair['input_shapes']", pair["input_shapes"], (2,))
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


def _cache_dtype(cfg: ModelConfig) -> jnp.dtype:
    """The key/value cache dtype of cached generation: float32, also for bfloat16 models.

    A cached bfloat16 key is stored exactly (bfloat16 values are float32 values), so this
    changes no result; but XLA:CPU has no native bfloat16 update-slice and rewrites each
    in-place write into a convert-update-convert of the whole cache, which made bfloat16
    decoding 7x slower per step (measured, repo-size ARC model at 30x30).
    """
    del cfg
    return jnp.float32


@jax.custom_batching.custom_vmap
def _batch_max(bound: jax.Array) -> jax.Array:
    """The identity on one loop bound; under ``vmap`` the maximum over the batch, unbatched.

    A ``fori_loop`` with a batched trip count becomes a while loop whose every step selects
    between the old and the new carry (here, the whole key/value cache) for each element;
    with the batch maximum the condition is shared and the body runs unmasked.
    """
    return bound


@_batch_max.def_vmap
def _batch_max_rule(axis_size: int, in_batched: list[bool], bound: jax.Array):
    del axis_size
    if in_batched[0]:
        return _batch_max(jnp.max(bound, axis=0)), False  # nested vmaps reduce again
    return bound, False


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
        if cfg.positions == "learned":
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
        rows, cols = jnp.shape(pair["inputs"])
        if jnp.shape(pair["outputs"]) != (rows, cols):
            raise ValueError(
                f"the encoder needs inputs and outputs padded alike, got {(rows, cols)} and "
                f"{jnp.shape(pair['outputs'])}"
            )
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
        cells = _lookup(self.colour, grids)  # (R, C, 2, E)
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
            [_valid_cells(in_shape, rows, cols), _valid_cells(out_shape, rows, cols)], axis=-1
        )
        key_valid = jnp.concatenate([jnp.ones((5,), bool), cell_valid.reshape(-1)])

        keys = _split(dropout_key, len(self.blocks) + 1)
        x = _dropout(tokens, cfg.dropout, keys[0])
        for block, key in zip(self.blocks, keys[1:], strict=True):
            x, _ = block(x, key_valid[None, :], rope=rope, dropout_key=key)
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
        if cfg.positions == "learned":
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

    def _rope(self, rows: jax.Array, cols: jax.Array) -> Rope | None:
        """Rotary tables for tokens at ``(rows, cols)``; None with learned positions."""
        cfg = self.cfg
        if cfg.positions == "learned":
            return None
        return rope_tables(rows, cols, cfg.head_dim, cfg.rope_max_freq)

    def _input_tokens(
        self, inputs: jax.Array, input_shape: jax.Array
    ) -> tuple[jax.Array, jax.Array, tuple[jax.Array, jax.Array]]:
        """Input-side tokens ``(RC + 2, E)`` (shape tokens, then cells), their key validity
        and their ``(rows, cols)`` grid positions (``(0, 0)`` for the shape tokens)."""
        cfg = self.cfg
        segment = self.segment(jnp.zeros((), jnp.int32))
        rows_n, cols_n = jnp.shape(inputs)
        r, c = _cell_positions(rows_n, cols_n)
        cells = _lookup(self.colour, inputs)
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
                (_lookup(self.shape_rows, input_shape[0] - 1) + segment)[None],
                (_lookup(self.shape_cols, input_shape[1] - 1) + segment)[None],
                cells.reshape(-1, cfg.embed_dim),
            ]
        )
        valid = _valid_cells(input_shape, rows_n, cols_n).reshape(-1)
        return tokens, jnp.concatenate([jnp.ones((2,), bool), valid]), positions

    def _latent_token(self, z: jax.Array) -> jax.Array:
        """The latent token ``(1, E)``: the only way z enters the decoder."""
        return self.latent(z.astype(jnp.float32))[None]

    def _prefix_tokens(
        self, z: jax.Array, inputs: jax.Array, input_shape: jax.Array
    ) -> tuple[jax.Array, jax.Array, tuple[jax.Array, jax.Array]]:
        """Input-side tokens plus the latent token ``(RC + 3, E)``, their key validity and
        their ``(rows, cols)`` grid positions (``(0, 0)`` for the shape and latent tokens)."""
        tokens, valid, (rows, cols) = self._input_tokens(inputs, input_shape)
        zero = jnp.zeros((1,), jnp.int32)
        return (
            jnp.concatenate([tokens, self._latent_token(z)]),
            jnp.concatenate([valid, jnp.ones((1,), bool)]),
            (jnp.concatenate([rows, zero]), jnp.concatenate([cols, zero])),
        )

    def _output_cell_tokens(
        self, colours: jax.Array, r: jax.Array, c: jax.Array, cols: jax.Array
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        """Output cell tokens (colour + next-position embedding + output segment) and their
        next positions ``(rows, cols)`` (the cells they predict)."""
        next_r, next_c = _next_position(r, c, cols, self.cfg.max_rows)
        tokens = _lookup(self.colour, colours)
        if self.cfg.positions == "learned":
            tokens = tokens + self.row_position(next_r) + self.col_position(next_c)
        return tokens + self.segment(jnp.ones((), jnp.int32)), (next_r, next_c)

    def _row_token(self, rows: jax.Array) -> jax.Array:
        return _lookup(self.shape_rows, rows - 1) + self.segment(jnp.ones((), jnp.int32))

    def _col_token(self, cols: jax.Array) -> jax.Array:
        return _lookup(self.shape_cols, cols - 1) + self.segment(jnp.ones((), jnp.int32))

    def _head(self, head: nnx.Linear, hidden: jax.Array) -> jax.Array:
        return head(_layer_norm(hidden)).astype(jnp.float32)

    # Teacher forcing -------------------------------------------------------------------

    def _prefix_mask(self, prefix_valid: jax.Array) -> jax.Array:
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

    def _output_tokens(
        self, pair: Pair
    ) -> tuple[jax.Array, jax.Array, tuple[jax.Array, jax.Array]]:
        """Output-side tokens ``(2 + R'C', E)`` of a teacher-forced pair (rows and cols
        tokens, then the cells), their key validity and their rotary positions (``(0, 0)``
        for the shape tokens, the next cell's for a cell token)."""
        rows_n, cols_n = jnp.shape(pair["outputs"])  # the model's R x C, or a smaller bucket
        out_shape = jnp.asarray(pair["output_shapes"], jnp.int32)
        r, c = _cell_positions(rows_n, cols_n)
        cells, (next_r, next_c) = self._output_cell_tokens(pair["outputs"], r, c, out_shape[1])
        zeros = jnp.zeros((2,), jnp.int32)
        tokens = jnp.concatenate(
            [
                self._row_token(out_shape[0])[None],
                self._col_token(out_shape[1])[None],
                cells.reshape(-1, self.cfg.embed_dim),
            ]
        )
        valid = jnp.concatenate(
            [jnp.ones((2,), bool), _valid_cells(out_shape, rows_n, cols_n).reshape(-1)]
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
        cfg = self.cfg
        prefix, prefix_valid, (prefix_r, prefix_c) = self._prefix_tokens(
            z, pair["inputs"], jnp.asarray(pair["input_shapes"], jnp.int32)
        )
        out, out_valid, (out_r, out_c) = self._output_tokens(pair)
        rope = self._rope(jnp.concatenate([prefix_r, out_r]), jnp.concatenate([prefix_c, out_c]))
        tokens = jnp.concatenate([prefix, out])
        key_valid = jnp.concatenate([prefix_valid, out_valid])

        # Prefix queries (input tokens, then the latent) attend within the prefix; output
        # queries attend to every valid token up to themselves. Attention runs by blocks
        # (``split``): the prefix queries' scores are only computed against prefix keys.
        num_prefix, num_tokens = prefix.shape[0], tokens.shape[0]
        prefix_rows = jnp.pad(
            self._prefix_mask(prefix_valid), ((0, 0), (0, num_tokens - num_prefix))
        )
        pos = jnp.arange(num_tokens)
        output_rows = key_valid[None, :] & (pos[None, :] <= pos[num_prefix:, None])
        mask = jnp.concatenate([prefix_rows, output_rows])

        keys = _split(dropout_key, len(self.blocks) + 1)
        x = _dropout(tokens, cfg.dropout, keys[0])
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
            size of ``pair["outputs"]``: the model's ``R x C`` or any smaller size that
            holds the grids (a size bucket: the same values for the valid cells, less work).
        """
        x = self.hidden_states(z, pair, dropout_key=dropout_key)
        return self.heads(x, pair, latent_index=jnp.size(pair["inputs"]) + 2)

    def heads(self, x: jax.Array, pair: Pair, *, latent_index: int) -> dict[str, jax.Array]:
        """The rows, cols and cell logits read off token states ``x`` whose latent token
        sits at ``latent_index`` (followed by the output rows, cols and cell tokens)."""
        rows_n, cols_n = jnp.shape(pair["outputs"])
        out_shape = jnp.asarray(pair["output_shapes"], jnp.int32)
        r, c = _cell_positions(rows_n, cols_n)
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
        position: tuple[jax.Array, jax.Array],
        active: jax.Array | bool = True,
    ) -> tuple[jax.Array, KVCache, jax.Array]:
        """Runs one new token at cache slot ``index`` and grid ``position`` through all
        blocks; its key stays masked for later tokens unless ``active``."""
        key_valid = key_valid.at[index].set(active)
        rope = self._rope(jnp.reshape(position[0], (1,)), jnp.reshape(position[1], (1,)))
        x = token[None]
        new_cache = []
        for block, layer_cache in zip(self.blocks, cache, strict=True):
            x, layer_cache = block.step(x, layer_cache, index, key_valid, rope=rope)
            new_cache.append(layer_cache)
        return x[0], new_cache, key_valid

    def generate(
        self,
        z: jax.Array,
        inputs: jax.Array,
        input_shape: jax.Array,
        *,
        stop_early: bool = True,
    ) -> tuple[jax.Array, jax.Array]:
        """Greedy decoding with a key/value cache (one token of work per new cell).

        One pass over the ``R * C + 3`` input-side tokens fills the cache; then every new
        token (output rows, output cols, each output cell) runs alone through the blocks:
        its key and value are written into a preallocated cache slot in place and its query
        attends over the fixed-size cache under a validity mask (no prefix recomputation,
        no cache copies). Keys are cached as ``(H, Dh, T)`` and values as ``(H, T, Dh)``,
        the layouts the per-step products read without a transpose.

        Args:
            z: latent ``(d,)``.
            inputs: padded input grid ``(R, C)``.
            input_shape: ``[rows, cols]`` of the input.
            stop_early: loop over the predicted ``rows * cols`` cells only (default), or
                over a fixed ``R * C - 1`` steps. Under ``vmap`` the loop runs as many steps
                as the largest predicted output in the batch (the bound is reduced over the
                batch, so the loop condition stays unbatched and no per-step select of the
                caches is needed); elements with smaller outputs run inert steps. The
                result is the same either way.

        Returns:
            ``(grid, shape)``: the ``int32`` ``(R, C)`` output, zero outside the predicted
            shape, and the predicted ``int32`` ``[rows, cols]``.
        """
        cfg = self.cfg
        rows_n, cols_n = cfg.max_rows, cfg.max_cols
        total = self.sequence_length
        prefix, prefix_valid, prefix_positions = self._prefix_tokens(
            z, inputs, jnp.asarray(input_shape, jnp.int32)
        )
        num_prefix = prefix.shape[0]  # R*C + 3, the latent token last
        cache_dtype = _cache_dtype(cfg)

        # Prefill: input tokens see valid input tokens and (official mask) the latent
        # token; the latent token sees all of them.
        x = prefix
        rope = self._rope(*prefix_positions)
        prefill_mask = self._prefix_mask(prefix_valid)
        cache: KVCache = []
        for block in self.blocks:
            x, (k, v) = block(x, prefill_mask, rope=rope)
            padding = total - num_prefix
            keys = jnp.pad(jnp.transpose(k, (1, 2, 0)), ((0, 0), (0, 0), (0, padding)))
            values = jnp.pad(jnp.transpose(v, (1, 0, 2)), ((0, 0), (0, padding), (0, 0)))
            cache.append((keys.astype(cache_dtype), values.astype(cache_dtype)))
        key_valid = jnp.concatenate([prefix_valid, jnp.zeros((total - num_prefix,), bool)])
        rows = jnp.argmax(self._head(self.rows_head, x[-1])).astype(jnp.int32) + 1

        origin = (jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
        hidden, cache, key_valid = self._step(
            self._row_token(rows), cache, key_valid, num_prefix, origin
        )
        cols = jnp.argmax(self._head(self.cols_head, hidden)).astype(jnp.int32) + 1
        hidden, cache, key_valid = self._step(
            self._col_token(cols), cache, key_valid, num_prefix + 1, origin
        )
        colour = jnp.argmax(self._head(self.grid_head, hidden)).astype(jnp.int32)
        num_out = rows * cols

        # Step j feeds valid cell j (raster order inside the predicted shape) and predicts
        # valid cell j + 1. Steps with j + 1 >= rows * cols are inert: their key stays
        # masked and their prediction is discarded.
        def body(j: jax.Array, carry: tuple) -> tuple:
            colours, cache, key_valid = carry
            active = j + 1 < num_out
            token, position = self._output_cell_tokens(colours[j], j // cols, j % cols, cols)
            hidden, cache, key_valid = self._step(
                token, cache, key_valid, num_prefix + 2 + j, position, active
            )
            colour = jnp.argmax(self._head(self.grid_head, hidden)).astype(jnp.int32)
            colours = colours.at[j + 1].set(jnp.where(active, colour, 0))
            return colours, cache, key_valid

        colours = jnp.zeros((rows_n * cols_n,), jnp.int32).at[0].set(colour)
        # A fixed trip count (stop_early=False) is a static loop; the stop-early bound is a
        # traced value made unbatched under vmap by _batch_max (see the docstring).
        num_steps = _batch_max(num_out - 1) if stop_early else rows_n * cols_n - 1
        colours, _, _ = jax.lax.fori_loop(0, num_steps, body, (colours, cache, key_valid))
        r, c = _cell_positions(rows_n, cols_n)
        inside = (r < rows) & (c < cols)
        grid = jnp.where(inside, colours[jnp.where(inside, r * cols + c, 0)], 0)
        return grid, jnp.stack([rows, cols])

    def generate_uncached(
        self, z: jax.Array, inputs: jax.Array, input_shape: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Reference greedy decoding that reruns the full decoder for every step.

        Slow (``rows * cols + 2`` full passes over the whole sequence, no cache); used to
        test :meth:`generate`.

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

        # One full decoder pass per cell of the predicted shape, in raster order.
        def body(k: jax.Array, grid: jax.Array) -> jax.Array:
            r, c = k // cols, k % cols
            cells = self.logits(z, {**pair, "outputs": grid})["cells"]
            return grid.at[r, c].set(jnp.argmax(cells[r, c]).astype(jnp.int32))

        grid = jax.lax.fori_loop(0, rows * cols, body, pair["outputs"])
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
        self.decoder = Decoder(config.decoder_config(), rngs=rngs)

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
        if "input_cache" in pair:  # from precompute: the input side is done already
            from lpn_arc.input_cache import cached_logits

            return cached_logits(self.decoder, z, pair, dropout_key=dropout_key)
        return self.decoder.logits(z, pair, dropout_key=dropout_key)

    def precompute(self, pair: Pair) -> Pair:
        """The pair with what its log-likelihood needs that does not depend on z.

        With ``decoder_mask="input-only"`` the decoder's input tokens never see the latent,
        so their keys and values in every layer are computed here once
        (``pair["input_cache"]``, see :mod:`lpn_arc.input_cache`) and every later
        :meth:`log_likelihood` of the pair, at any z, runs the latent and output tokens
        only. With the official mask there is nothing to precompute: the pair is returned
        as is. Pass it as ``precompute`` to ``latentsearch.lpn_loss``.

        Args:
            pair: one pair in the pair format.

        Returns:
            The pair, with ``"input_cache"`` for the input-only mask.
        """
        _check_pair(self.config, pair)
        if self.config.decoder_mask == "official":
            return pair
        from lpn_arc.input_cache import input_cache

        return {**pair, "input_cache": input_cache(self.decoder, pair)}

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
        valid = _valid_cells(out_shape, *jnp.shape(pair["outputs"]))
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
        stop_early: bool = True,
    ) -> tuple[jax.Array, jax.Array]:
        """Greedy output for one input given ``z``, with a key/value cache (jit-able).

        Args:
            z: latent ``(d,)``.
            inputs: padded input grid ``(R, C)``.
            input_shape: ``[rows, cols]`` of the input.
            stop_early: stop after the predicted number of cells (default; under ``vmap``
                after the largest predicted output of the batch) instead of running a fixed
                ``R * C - 1`` steps. The result is the same; see :meth:`Decoder.generate`.

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


def precompute_fn(graphdef: nnx.GraphDef) -> Callable[..., Pair]:
    """Pure ``precompute(params, pair) -> pair`` (one pair): see :meth:`LPNModel.precompute`.

    Example:
        >>> cfg = ModelConfig(3, 3, 4, 1, 1, num_heads=2, head_dim=4, mlp_factor=1.0,
        ...                   decoder_mask="input-only")
        >>> graphdef, params = split_model(LPNModel(cfg, rngs=nnx.Rngs(0)))
        >>> pair = {"inputs": jnp.zeros((3, 3), jnp.int32), "input_shapes": jnp.array([2, 3]),
        ...         "outputs": jnp.zeros((3, 3), jnp.int32), "output_shapes": jnp.array([3, 3])}
        >>> precompute_fn(graphdef)(params, pair)["input_cache"]["keys"].shape
        (1, 11, 2, 4)
    """

    def precompute(params: nnx.State, pair: Pair) -> Pair:
        return _merge(graphdef, params).precompute(pair)

    return precompute


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
    graphdef: nnx.GraphDef, *, stop_early: bool = True
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
