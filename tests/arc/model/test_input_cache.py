"""The input-only decoder mask: its input cache gives the full pass's values and gradients."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from lpn_arc.model import (
    LPNModel,
    ModelConfig,
    input_cache,
    log_likelihood_fn,
    precompute_fn,
    split_model,
)

import latentsearch as ls
from tests.arc.helpers import TINY, pair_at, random_pairs

INPUT_ONLY = dataclasses.replace(TINY, decoder_mask="input-only")


@pytest.fixture(scope="module", params=["learned", "rope"])
def model(request):
    cfg = dataclasses.replace(INPUT_ONLY, positions=request.param)
    return LPNModel(cfg, rngs=nnx.Rngs(1))


def test_cached_logits_equal_the_full_pass(model):
    pairs = random_pairs(4, 6)  # random shapes, junk colours in the padding
    zs = jax.random.normal(jax.random.key(0), (6, TINY.latent_dim))
    full = jax.jit(jax.vmap(lambda z, pair: model.decode_logits(z, pair)))
    cached = jax.jit(jax.vmap(lambda z, pair: model.decode_logits(z, model.precompute(pair))))
    a, b = full(zs, pairs), cached(zs, pairs)
    np.testing.assert_allclose(a["rows"], b["rows"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a["cols"], b["cols"], rtol=1e-4, atol=1e-5)
    rows = np.arange(5)[None, :, None] < pairs.output_shapes[:, 0, None, None]
    cols = np.arange(5)[None, None, :] < pairs.output_shapes[:, 1, None, None]
    inside = (rows & cols)[..., None]
    np.testing.assert_allclose(
        np.where(inside, a["cells"], 0), np.where(inside, b["cells"], 0), rtol=1e-4, atol=1e-5
    )


def test_precomputed_log_likelihood_and_its_gradient_equal_the_full_pass():
    graphdef, params = split_model(LPNModel(INPUT_ONLY, rngs=nnx.Rngs(2)))
    log_likelihood, precompute = log_likelihood_fn(graphdef), precompute_fn(graphdef)
    pair = pair_at(random_pairs(5, 1), 0)
    z = jnp.linspace(-1.0, 1.0, TINY.latent_dim)

    # one compiled value-and-gradient per variant (op-by-op it dispatches far longer)
    full = jax.jit(jax.value_and_grad(lambda p: log_likelihood(p, z, pair)))
    cached = jax.jit(jax.value_and_grad(lambda p: log_likelihood(p, z, precompute(p, pair))))

    (v_full, g_full), (v_cached, g_cached) = full(params), cached(params)
    np.testing.assert_allclose(v_full, v_cached, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g_full), jax.tree.leaves(g_cached), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    # the decoder's input-side parameters get their gradient through the cache
    colour = jax.tree.leaves(g_cached["decoder"]["colour"])
    assert sum(float(jnp.abs(leaf).sum()) for leaf in colour) > 0


def test_lpn_loss_with_the_input_cache_equals_without():
    graphdef, params = split_model(LPNModel(INPUT_ONLY, rngs=nnx.Rngs(3)))
    import optax
    from lpn_arc.model import encode_fn

    encode, log_likelihood = encode_fn(graphdef), log_likelihood_fn(graphdef)
    pairs = random_pairs(6, 4)

    def loss_fn(precompute):
        def loss(p):
            return ls.lpn_loss(
                p, encode, log_likelihood, pairs, jax.random.key(0),
                searcher=ls.gradient_ascent(optax.adam(0.1)), num_steps=2, precompute=precompute,
            )[0]  # fmt: skip

        # one compilation per variant: op by op, value and gradient take twice as long
        return jax.jit(jax.value_and_grad(loss))

    plain, g_plain = loss_fn(None)(params)
    cached, g_cached = loss_fn(precompute_fn(graphdef))(params)
    np.testing.assert_allclose(plain, cached, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g_plain), jax.tree.leaves(g_cached), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-5)


def test_input_tokens_ignore_the_latent_only_with_the_input_only_mask():
    pair = pair_at(random_pairs(7, 1), 0)._replace(input_shapes=np.array([4, 4], np.int32))
    z1, z2 = jnp.zeros(TINY.latent_dim), jnp.ones(TINY.latent_dim)
    lat = 5 * 5 + 2
    for mask, moves in (("input-only", False), ("official", True)):
        model = LPNModel(dataclasses.replace(TINY, decoder_mask=mask), rngs=nnx.Rngs(0))
        a = model.decoder.hidden_states(z1, pair)
        b = model.decoder.hidden_states(z2, pair)
        assert bool(jnp.any(jnp.abs(a[:lat] - b[:lat]) > 1e-6)) == moves, mask
        assert bool(jnp.all(jnp.any(jnp.abs(a[lat:] - b[lat:]) > 1e-6, axis=-1)))


def test_official_mask_has_no_input_cache():
    model = LPNModel(TINY, rngs=nnx.Rngs(0))
    pair = pair_at(random_pairs(8, 1), 0)
    assert model.precompute(pair) is pair
    with pytest.raises(ValueError, match="needs decoder_mask='input-only'"):
        input_cache(model.decoder, pair)
    with pytest.raises(ValueError, match="decoder_mask must be one of"):
        dataclasses.replace(TINY, decoder_mask="causal")
    assert ModelConfig.pattern().decoder_mask == "official"
