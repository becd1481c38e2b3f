"""Multi-head attention (with its key/value cache for generation) and the transformer block."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lpn_arc.config import ModelConfig
from lpn_arc.model.layers import (
    ACTIVATION_FUNCTIONS,
    apply_dropout,
    dropout,
    layer_norm,
    linear,
    split_key,
)
from lpn_arc.model.rope import Rope, rotate

__all__ = ["Attention", "Block", "KVCache", "add_transformer_trunk", "cache_dtype"]

KVCache = list[tuple[jax.Array, jax.Array]]
"""Per decoder layer: keys ``(H, Dh, T)`` and values ``(H, T, Dh)`` of ``T`` cache slots."""
# The masked-logit value of jax.nn.dot_product_attention (float32 softmax).
_LARGE_NEGATIVE = -0.7 * float(np.finfo(np.float32).max)


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
        self.query = linear(cfg, width, width, rngs)
        self.key = linear(cfg, width, width, rngs)
        self.value = linear(cfg, width, width, rngs)
        self.out = linear(cfg, width, width, rngs)
        self.weight_dropout = dropout(cfg)  # of the attention weights, in training

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
        dropout_key: jax.Array | None = None,
    ) -> jax.Array:
        """Scaled dot-product attention of ``n`` queries over ``T`` keys.

        Args:
            q: queries ``(n, H, Dh)``.
            k: keys ``(T, H, Dh)``.
            v: values ``(T, H, Dh)``.
            mask: boolean, broadcastable to ``(n, T)``; True = may attend.
            dropout_key: key of the dropout on the attention weights (None = no dropout).

        Returns:
            The projected attention output ``(n, E)``.
        """
        mask = jnp.broadcast_to(mask, (q.shape[0], k.shape[0]))
        if dropout_key is None or self.weight_dropout.rate == 0.0:
            # Float32 logits and softmax; faster than the explicit version below on CPU.
            out = jax.nn.dot_product_attention(q, k, v, mask=mask[None])
        else:
            q = q / jnp.asarray(math.sqrt(self.head_dim), q.dtype)
            logits = jnp.einsum("nhd,thd->hnt", q, k, preferred_element_type=jnp.float32)
            logits = jnp.where(mask[None], logits, jnp.finfo(jnp.float32).min)
            weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
            weights = apply_dropout(self.weight_dropout, weights, dropout_key)
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
        self.activation = cfg.activation
        self.attention_norm = layer_norm(cfg.embed_dim, rngs)
        self.attention = Attention(cfg, rngs=rngs)
        self.dropout = dropout(cfg)  # of the attention and MLP outputs
        self.mlp_norm = layer_norm(cfg.embed_dim, rngs)
        self.mlp_in = linear(cfg, cfg.embed_dim, cfg.mlp_dim, rngs)
        self.mlp_out = linear(cfg, cfg.mlp_dim, cfg.embed_dim, rngs)

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
        attn_key, res_key, mlp_key = split_key(dropout_key, 3)
        q, k, v = self.attention.qkv(self.attention_norm(x))
        if rope is not None:
            q, k = rotate(q, rope), rotate(k, rope)
        keys, values = (k, v)
        if prefix is not None:
            keys = jnp.concatenate([prefix[0].astype(k.dtype), k])
            values = jnp.concatenate([prefix[1].astype(v.dtype), v])
        if split is None:
            attended = self.attention.attend(q, keys, values, mask, dropout_key=attn_key)
        else:
            mask = jnp.broadcast_to(mask, (q.shape[0], keys.shape[0]))
            head_key, tail_key = split_key(attn_key, 2)
            head = self.attention.attend(
                q[:split], keys[:split], values[:split], mask[:split, :split],
                dropout_key=head_key,
            )  # fmt: skip
            tail = self.attention.attend(
                q[split:], keys, values, mask[split:], dropout_key=tail_key
            )  # fmt: skip
            attended = jnp.concatenate([head, tail])
        x = x + apply_dropout(self.dropout, attended, res_key)
        return self._mlp(x, mlp_key), (k, v)

    def _mlp(self, x: jax.Array, dropout_key: jax.Array | None = None) -> jax.Array:
        """The residual MLP half of the block: ``x + MLP(LN(x))``."""
        hidden = ACTIVATION_FUNCTIONS[self.activation](self.mlp_in(self.mlp_norm(x)))
        return x + apply_dropout(self.dropout, self.mlp_out(hidden), dropout_key)

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
        q, k, v = self.attention.qkv(self.attention_norm(x))
        if rope is not None:
            q, k = rotate(q, rope), rotate(k, rope)
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


def cache_dtype(cfg: ModelConfig) -> jnp.dtype:
    """The key/value cache dtype of cached generation: float32, also for bfloat16 models.

    A cached bfloat16 key is stored exactly (bfloat16 values are float32 values), so this
    changes no result; but XLA:CPU has no native bfloat16 update-slice and rewrites each
    in-place write into a convert-update-convert of the whole cache, which made bfloat16
    decoding 7x slower per step (measured, repo-size ARC model at 30x30).
    """
    del cfg
    return jnp.float32


def add_transformer_trunk(module: nnx.Module, cfg: ModelConfig, rngs: nnx.Rngs, layers: int):
    """The stack the encoder and the decoder share after their embeddings, set on
    ``module``: ``embed_dropout``, ``layers`` transformer ``blocks`` and the ``head_norm``
    before the output heads."""
    module.embed_dropout = dropout(cfg)
    module.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(layers)])
    module.head_norm = layer_norm(cfg.embed_dim, rngs)
