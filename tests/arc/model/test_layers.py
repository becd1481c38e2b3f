"""Layers: rotary embeddings, attention by blocks, LayerNorm and dropout."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from lpn_arc.model import apply_rope
from lpn_arc.model.layers import apply_dropout, dropout, layer_norm

from tests.arc.helpers import TINY


def test_rope_attention_logits_depend_on_offsets_only():
    """q(r, c) . k(r', c') after rotation is a function of (r - r', c - c')."""
    q, k = jax.random.normal(jax.random.key(0), (2, 1, 3, 16))

    def logits(query_pos, key_pos):
        rq = apply_rope(q, jnp.array([query_pos[0]]), jnp.array([query_pos[1]]))
        rk = apply_rope(k, jnp.array([key_pos[0]]), jnp.array([key_pos[1]]))
        return np.asarray(jnp.einsum("nhd,nhd->h", rq, rk))

    base = logits((3, 5), (1, 9))
    for shift in ((0, 0), (7, 0), (0, 13), (20, 2), (-3, -5)):
        moved = logits((3 + shift[0], 5 + shift[1]), (1 + shift[0], 9 + shift[1]))
        np.testing.assert_allclose(moved, base, rtol=1e-4, atol=1e-4)
    # Rows and columns are separate: transposing the offset changes the logits, and so
    # does changing either offset alone.
    assert not np.allclose(logits((5, 3), (9, 1)), base, atol=1e-3)
    assert not np.allclose(logits((4, 5), (1, 9)), base, atol=1e-3)
    assert not np.allclose(logits((3, 6), (1, 9)), base, atol=1e-3)
    # (0, 0) is the identity; rotations keep norms; bfloat16 in, bfloat16 out.
    np.testing.assert_array_equal(apply_rope(q, jnp.zeros(1), jnp.zeros(1)), q)
    rotated = apply_rope(q, jnp.array([29]), jnp.array([17]))
    np.testing.assert_allclose(
        jnp.linalg.norm(rotated, axis=-1), jnp.linalg.norm(q, axis=-1), rtol=1e-5
    )
    assert apply_rope(q.astype(jnp.bfloat16), jnp.ones(1), jnp.ones(1)).dtype == jnp.bfloat16


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_attention_by_blocks_equals_the_dense_product(dropout):
    """``Block(split=s)``: the first ``s`` queries attend within the first ``s`` keys; the
    values and gradients equal one dense masked product (without dropout), and with
    dropout the split keeps the block's output finite and key-dependent."""
    from lpn_arc.model import Block

    cfg = dataclasses.replace(TINY, dropout=dropout)
    block = Block(cfg, rngs=nnx.Rngs(0))
    n, split = 9, 4
    x = jax.random.normal(jax.random.key(1), (n, cfg.embed_dim))
    valid = jnp.array([1, 1, 0, 1, 1, 1, 0, 1, 1], bool)
    head = jnp.pad(jnp.broadcast_to(valid[:split], (split, split)), ((0, 0), (0, n - split)))
    tail = valid[None, :] & (jnp.arange(n)[None, :] <= jnp.arange(split, n)[:, None])
    mask = jnp.concatenate([head, tail])

    # compiled (split static): op by op, the block and its gradient dispatch far longer
    @functools.partial(jax.jit, static_argnums=1)
    def out(x, split, key=None):
        return block(x, mask, split=split, dropout_key=key)[0]

    np.testing.assert_allclose(out(x, split), out(x, None), rtol=1e-5, atol=1e-5)
    grad = jax.jit(jax.grad(lambda x, s: jnp.sum(out(x, s) ** 2)), static_argnums=1)
    np.testing.assert_allclose(grad(x, split), grad(x, None), rtol=1e-4, atol=1e-4)
    if dropout:
        a, b = out(x, split, jax.random.key(2)), out(x, split, jax.random.key(3))
        assert np.all(np.isfinite(a)) and not np.allclose(a, b)
    with pytest.raises(ValueError, match="exclusive"):
        block(x, mask, split=split, prefix=(x[:2], x[:2]))


def _former_layer_norm(x):
    """The hand-written LayerNorm that ``lpn_arc.model.layers.LayerNorm`` replaced."""
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    return ((x32 - mean) * jax.lax.rsqrt(var + 1e-6)).astype(x.dtype)


def _former_dropout(x, rate, key):
    """The hand-written dropout that ``nnx.Dropout`` replaced."""
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_layer_norm_is_the_former_function_values_and_gradients(dtype):
    """Bit for bit, also the bfloat16 gradient when three projections read the output (as
    the attention's query, key and value do): one cast in, one cast out."""
    width = 16
    norm = layer_norm(width, nnx.Rngs(0))
    assert not jax.tree.leaves(nnx.state(norm, nnx.Param))  # no parameters
    projections = [
        nnx.Linear(width, 8, use_bias=False, dtype=dtype, rngs=nnx.Rngs(i)) for i in range(3)
    ]
    x = (3.0 * jax.random.normal(jax.random.key(1), (7, width)) + 1.0).astype(dtype)

    def loss(normalise, x):
        y = normalise(x)
        return sum(jnp.sum(p(y).astype(jnp.float32) ** 2) for p in projections)

    assert norm(x).dtype == x.dtype
    np.testing.assert_array_equal(norm(x), _former_layer_norm(x))
    for fn in (jax.grad, lambda f: jax.jit(jax.grad(f))):
        np.testing.assert_array_equal(
            fn(lambda x: loss(norm, x))(x), fn(lambda x: loss(_former_layer_norm, x))(x)
        )


def test_layer_norm_draws_no_random_numbers():
    rngs = nnx.Rngs(0)
    layer_norm(16, rngs)
    assert int(rngs.params.count[...]) == 0  # the parameters after it initialise unchanged


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_dropout_is_the_former_function_with_the_same_key(dtype):
    layer = dropout(dataclasses.replace(TINY, dropout=0.3))
    x = jax.random.normal(jax.random.key(1), (5, 16)).astype(dtype)
    key = jax.random.key(7)
    np.testing.assert_array_equal(apply_dropout(layer, x, key), _former_dropout(x, 0.3, key))
    assert apply_dropout(layer, x, None) is x  # no key: no dropout
    off = dropout(dataclasses.replace(TINY, dropout=0.0))
    assert apply_dropout(off, x, key) is x

    def grad(fn):
        return jax.grad(lambda x: jnp.sum(fn(x).astype(jnp.float32) ** 2))(x)

    np.testing.assert_array_equal(
        grad(lambda x: apply_dropout(layer, x, key)), grad(lambda x: _former_dropout(x, 0.3, key))
    )
    assert not np.array_equal(
        apply_dropout(layer, x, jax.random.key(8)), apply_dropout(layer, x, key)
    )
