"""The input-side key/value cache of the ``input-only`` decoder mask.

With ``ModelConfig(decoder_mask="input-only")`` the decoder's input tokens (the input
shape tokens and cells) attend to input tokens only, never to the latent token. Their
states, keys and values in every layer then depend on the pair's input alone, not on z, so
they are computed once per pair (:func:`input_cache`) and every log-likelihood of that pair,
at any latent, runs only the latent token and the output tokens (:func:`cached_logits`),
which attend to the cached input keys and values and causally to each other. A search of K
steps over P specification pairs then runs the input half P times instead of K x P times,
and Grad-K training shares it between the search and the loss.

The values equal those of the full pass with the same mask
(:meth:`~lpn_arc.model.decoder.Decoder.logits`); a test checks it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lpn_arc.data import Pair
from lpn_arc.model.decoder import Decoder
from lpn_arc.model.layers import apply_dropout, split_key

__all__ = ["cached_logits", "input_cache"]


def input_cache(decoder: Decoder, pair: Pair) -> dict[str, jax.Array]:
    """Keys and values of a pair's input tokens in every decoder layer.

    Args:
        decoder: a :class:`~lpn_arc.model.decoder.Decoder` with ``decoder_mask="input-only"``.
        pair: one pair in the pair format (only the input and its shape are read).

    Returns:
        ``{"keys", "values": (L, RC + 2, H, Dh), "valid": (RC + 2,) bool}`` (rotated keys
        with RoPE; ``valid`` marks the input tokens inside the input's shape).

    Raises:
        ValueError: if the decoder uses the official mask (its input tokens see z).
    """
    if decoder.cfg.decoder_mask != "input-only":
        raise ValueError(
            "an input cache needs decoder_mask='input-only' (with the official mask the "
            "input tokens attend to the latent, so nothing of them is independent of z)"
        )
    tokens, valid, (rows, cols) = decoder.input_tokens(
        pair.inputs, jnp.asarray(pair.input_shapes, jnp.int32)
    )
    rope = decoder.rope(rows, cols)
    x, keys, values = tokens, [], []
    for block in decoder.blocks:
        x, (k, v) = block(x, valid[None, :], rope=rope)
        keys.append(k)
        values.append(v)
    if not keys:  # a decoder without blocks
        empty = jnp.zeros((0, len(tokens), decoder.cfg.num_heads, decoder.cfg.head_dim))
        return {"keys": empty, "values": empty, "valid": valid}
    return {"keys": jnp.stack(keys), "values": jnp.stack(values), "valid": valid}


def cached_logits(
    decoder: Decoder, z: jax.Array, pair: Pair, *, dropout_key: jax.Array | None = None
) -> dict[str, jax.Array]:
    """Teacher-forced logits of a pair whose ``cache`` holds its input side.

    The latent token and the output tokens (``R'C' + 3``) run through the decoder, attending
    to the cached input keys and values (valid ones only) and causally to each other, as
    in the full pass.

    Args:
        decoder: the :class:`~lpn_arc.model.decoder.Decoder` the cache was computed with.
        z: latent ``(d,)``.
        pair: one pair in the pair format with its ``cache`` (:func:`input_cache`), as
            :meth:`~lpn_arc.model.LPNModel.precompute` prepares it.
        dropout_key: dropout key (None = deterministic).

    Returns:
        The logits of :meth:`~lpn_arc.model.decoder.Decoder.logits`.
    """
    cache = pair.cache
    out, out_valid, (out_r, out_c) = decoder.output_tokens(pair)
    zero = jnp.zeros((1,), jnp.int32)
    tokens = jnp.concatenate([decoder.latent_token(z), out])
    rope = decoder.rope(jnp.concatenate([zero, out_r]), jnp.concatenate([zero, out_c]))
    new_valid = jnp.concatenate([jnp.ones((1,), bool), out_valid])
    n = tokens.shape[0]
    causal = jnp.arange(n)[None, :] <= jnp.arange(n)[:, None]
    mask = jnp.concatenate(
        [jnp.broadcast_to(cache["valid"][None, :], (n, cache["valid"].shape[0])),
         causal & new_valid[None, :]],
        axis=1,
    )  # fmt: skip
    keys = split_key(dropout_key, len(decoder.blocks) + 1)
    x = apply_dropout(decoder.embed_dropout, tokens, keys[0])
    for layer, (block, block_key) in enumerate(zip(decoder.blocks, keys[1:], strict=True)):
        prefix = (cache["keys"][layer], cache["values"][layer])
        x, _ = block(x, mask, rope=rope, dropout_key=block_key, prefix=prefix)
    return decoder.heads(x, pair, latent_index=0)
