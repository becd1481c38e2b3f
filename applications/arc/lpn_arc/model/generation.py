"""Greedy decoding with a key/value cache: one token of work per new output cell.

The output is generated in the padded size of the input (the model's ``R x C``, or a
smaller size bucket ``R' x C'`` that holds the input: the same values, less work). One
pass over the ``R' * C' + 3`` input-side tokens (the prefix: input shape tokens, input
cells, the latent token) fills the cache; then every new token (output rows, output cols,
each output cell) runs alone through the blocks: its key and value are written into a
preallocated cache slot in place and its query attends over the fixed-size cache under a
validity mask (no prefix recomputation, no cache copies). Keys are cached as ``(H, Dh, T)``
and values as ``(H, T, Dh)``, the layouts the per-step products read without a transpose.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lpn_arc.model.attention import KVCache, cache_dtype
from lpn_arc.model.decoder import Decoder
from lpn_arc.model.layers import cell_positions

__all__ = ["greedy_generate"]


def greedy_generate(
    decoder: Decoder,
    z: jax.Array,
    inputs: jax.Array,
    input_shape: jax.Array,
    *,
    stop_early: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """Greedy output of ``decoder`` for one input given ``z`` (see the module docstring).

    Args:
        decoder: the :class:`~lpn_arc.model.decoder.Decoder`.
        z: latent ``(d,)``.
        inputs: padded input grid ``(R', C')``: the model's ``R x C`` or a smaller bucket.
        input_shape: ``[rows, cols]`` of the input.
        stop_early: loop over the predicted ``rows * cols`` cells only (default), or
            over a fixed ``R * C - 1`` steps. Under ``vmap`` the loop runs as many steps
            as the largest predicted output in the batch (the bound is reduced over the
            batch, so the loop condition stays unbatched and no per-step select of the
            caches is needed); elements with smaller outputs run inert steps. The
            result is the same either way.

    Returns:
        ``(grid, shape)``: the ``int32`` ``(R', C')`` output, zero outside the predicted
        shape, and the predicted ``int32`` ``[rows, cols]``. In a bucket smaller than the
        model's, a predicted shape larger than the bucket is returned as it was predicted
        (its grid, cut to the bucket, is then not the model's answer): such an output is
        decoded again at the model's size (:func:`lpn_arc.evaluation.evaluate_arc`).
    """
    rows_n, cols_n = jnp.shape(inputs)
    hidden, cache, key_valid, num_prefix = _prefill(decoder, z, inputs, input_shape)
    rows = jnp.argmax(decoder.head_logits(decoder.rows_head, hidden)).astype(jnp.int32) + 1
    fed_rows = jnp.minimum(rows, rows_n)  # within the bucket (an overflow is decoded again)

    origin = (jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
    hidden, cache, key_valid = _step(
        decoder, decoder.row_token(fed_rows), cache, key_valid, num_prefix, origin
    )
    cols = jnp.argmax(decoder.head_logits(decoder.cols_head, hidden)).astype(jnp.int32) + 1
    fed_cols = jnp.minimum(cols, cols_n)
    hidden, cache, key_valid = _step(
        decoder, decoder.col_token(fed_cols), cache, key_valid, num_prefix + 1, origin
    )
    colour = jnp.argmax(decoder.head_logits(decoder.grid_head, hidden)).astype(jnp.int32)
    colours = _cells(
        decoder, colour, (fed_rows, fed_cols), (rows_n, cols_n), (cache, key_valid),
        num_prefix, stop_early=stop_early,
    )  # fmt: skip
    r, c = cell_positions(rows_n, cols_n)
    inside = (r < fed_rows) & (c < fed_cols)
    grid = jnp.where(inside, colours[jnp.where(inside, r * fed_cols + c, 0)], 0)
    return grid, jnp.stack([rows, cols])


def _prefill(
    decoder: Decoder, z: jax.Array, inputs: jax.Array, input_shape: jax.Array
) -> tuple[jax.Array, KVCache, jax.Array, int]:
    """Runs the prefix: ``(latent token's last state, cache, key validity, prefix length)``.

    Input tokens see valid input tokens and (official mask) the latent token; the latent
    token sees all of them. The cache has a slot for every token of the sequence, whose
    output part is the input's padded size.
    """
    total = 2 * jnp.size(inputs) + 5
    prefix, prefix_valid, prefix_positions = decoder.prefix_tokens(
        z, inputs, jnp.asarray(input_shape, jnp.int32)
    )
    num_prefix = prefix.shape[0]  # R*C + 3, the latent token last
    dtype = cache_dtype(decoder.cfg)
    x = prefix
    rope = decoder.rope(*prefix_positions)
    prefill_mask = decoder.prefix_mask(prefix_valid)
    cache: KVCache = []
    for block in decoder.blocks:
        x, (k, v) = block(x, prefill_mask, rope=rope)
        padding = total - num_prefix
        keys = jnp.pad(jnp.transpose(k, (1, 2, 0)), ((0, 0), (0, 0), (0, padding)))
        values = jnp.pad(jnp.transpose(v, (1, 0, 2)), ((0, 0), (0, padding), (0, 0)))
        cache.append((keys.astype(dtype), values.astype(dtype)))
    key_valid = jnp.concatenate([prefix_valid, jnp.zeros((total - num_prefix,), bool)])
    return x[-1], cache, key_valid, num_prefix


def _step(
    decoder: Decoder,
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
    rope = decoder.rope(jnp.reshape(position[0], (1,)), jnp.reshape(position[1], (1,)))
    x = token[None]
    new_cache = []
    for block, layer_cache in zip(decoder.blocks, cache, strict=True):
        x, layer_cache = block.step(x, layer_cache, index, key_valid, rope=rope)
        new_cache.append(layer_cache)
    return x[0], new_cache, key_valid


def _cells(
    decoder: Decoder,
    first_colour: jax.Array,
    shape: tuple[jax.Array, jax.Array],
    padded: tuple[int, int],
    state: tuple[KVCache, jax.Array],
    num_prefix: int,
    *,
    stop_early: bool,
) -> jax.Array:
    """The colours of the output's ``shape = (rows, cols)`` cells in raster order,
    ``(R' * C',)`` for the ``padded = (R', C')`` size.

    Step ``j`` feeds valid cell ``j`` (raster order inside the predicted shape) and predicts
    valid cell ``j + 1``. Steps with ``j + 1 >= rows * cols`` are inert: their key stays
    masked and their prediction is discarded.
    """
    rows, cols = shape
    rows_n, cols_n = padded
    num_out = rows * cols

    def body(j: jax.Array, carry: tuple) -> tuple:
        colours, cache, key_valid = carry
        active = j + 1 < num_out
        token, position = decoder.output_cell_tokens(colours[j], j // cols, j % cols, cols)
        hidden, cache, key_valid = _step(
            decoder, token, cache, key_valid, num_prefix + 2 + j, position, active
        )
        colour = jnp.argmax(decoder.head_logits(decoder.grid_head, hidden)).astype(jnp.int32)
        colours = colours.at[j + 1].set(jnp.where(active, colour, 0))
        return colours, cache, key_valid

    colours = jnp.zeros((rows_n * cols_n,), jnp.int32).at[0].set(first_colour)
    # A fixed trip count (stop_early=False) is a static loop; the stop-early bound is a
    # traced value made unbatched under vmap by _batch_max (see its docstring).
    num_steps = _batch_max(num_out - 1) if stop_early else rows_n * cols_n - 1
    colours, _, _ = jax.lax.fori_loop(0, num_steps, body, (colours, *state))
    return colours


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
