"""Numerical faults: objectives that are NaN/inf on parts of latent space, exploding
gradients, diverging iterates and log-variances far out of range.

The contract (``latentsearch.SearchResult``): returned latents are always finite; scores
are finite or ``-inf`` (a slot for which no finite point was found), never NaN or ``+inf``;
a NaN/inf-scored point or a point with a non-finite coordinate is never returned.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import latentsearch as ls

D = 3
SETTINGS = settings(max_examples=10, deadline=None)

# Built once so that every hypothesis example reuses the compiled searches (the searcher
# and the objective are static arguments of the jitted driver; the rest is traced).
SEARCHERS = {
    "gradient": ls.gradient_ascent(optax.sgd(0.5)),
    "random": ls.random_search(8, 1.0, chunk_size=3),
    "es-raw": ls.evolution_strategy(6, 0.5, optax.sgd(0.5), centered_ranks=False),
    "hybrid": ls.hybrid(ls.random_search(8, 1.0), ls.gradient_ascent(optax.adam(0.3)), 2),
}
BAD = jnp.array([jnp.nan, jnp.inf, -jnp.inf])


def holey(z, centre, normal, offset, bad):
    """A concave quadratic, replaced by NaN, +inf or -inf on the half-space z.n > offset."""
    value = -jnp.sum((z - centre) ** 2)
    return jnp.where(jnp.dot(z, normal) > offset, BAD[bad], value)


def steep(z, centre, gain):
    """Bounded (|f| <= D) but with gradients up to ``gain``: SGD iterates overflow to inf,
    where the value is still finite (tanh(inf) = 1)."""
    return jnp.sum(jnp.tanh(gain * (z - centre)))


def _check_result(result, objective, args):
    latents, scores = np.asarray(result.latents), np.asarray(result.scores)
    assert np.isfinite(latents).all(), latents
    assert not np.isnan(scores).any() and not (scores == np.inf).any(), scores
    assert (scores[:-1] >= scores[1:]).all(), scores  # best first
    trace = np.asarray(result.trace)
    assert not np.isnan(trace).any() and not (trace == np.inf).any()
    values = np.asarray(_values(objective, result.latents, args))
    finite = np.isfinite(scores)  # a returned score is the objective's value at its latent
    np.testing.assert_allclose(values[finite], scores[finite], rtol=1e-5)


@jax.jit(static_argnums=0)
def _values(objective, latents, args):
    return jax.vmap(lambda z: objective(z, *args))(latents)


vectors = st.lists(st.floats(-2, 2), min_size=D, max_size=D).map(
    lambda v: jnp.asarray(v, jnp.float32)
)


@SETTINGS
@given(
    centre=vectors,
    normal=vectors,
    offset=st.floats(-1.5, 1.5),
    bad=st.integers(0, 2),
    start=vectors,
    seed=st.integers(0, 2**16),
)
@pytest.mark.parametrize("name", list(SEARCHERS))
def test_searchers_never_return_non_finite_points(name, centre, normal, offset, bad, start, seed):
    args = (centre, normal, jnp.float32(offset), jnp.int32(bad))
    z0 = jnp.stack([start, -start])
    result = ls.search(
        SEARCHERS[name], holey, z0, key=jax.random.key(seed), num_steps=6, args=args, keep=2
    )
    _check_result(result, holey, args)
    latents, scores = np.asarray(result.latents), np.asarray(result.scores)
    normal_np = np.asarray(normal)
    for z, score in zip(latents, scores, strict=True):
        if np.isfinite(score):  # never a point of the bad half-space
            assert float(np.dot(z, normal_np)) <= offset + 1e-6


@SETTINGS
@given(
    gain=st.floats(1.0, 3e38),
    centre=vectors,
    start=vectors,
    at_centre=st.booleans(),  # where the gradient is largest
    seed=st.integers(0, 2**16),
)
@pytest.mark.parametrize("name", ["gradient", "hybrid", "es-raw"])
def test_exploding_gradients_never_return_a_diverged_iterate(
    name, gain, centre, start, at_centre, seed
):
    args = (centre, jnp.float32(gain))
    start = centre if at_centre else start
    result = ls.search(
        SEARCHERS[name], steep, start[None], key=jax.random.key(seed), num_steps=5, args=args
    )
    _check_result(result, steep, args)


def test_a_diverged_iterate_with_a_finite_score_is_not_kept():
    """From the centre, where the gradient is 3e38, one SGD step jumps to +inf, where tanh
    is exactly 1: the best score possible, at a point that is not a latent. The finite
    start (score 0) must be returned instead."""
    result = ls.search(
        ls.gradient_ascent(optax.sgd(10.0)),
        steep,
        jnp.zeros(D),
        key=jax.random.key(0),
        num_steps=3,
        args=(jnp.zeros(D), jnp.float32(3e38)),
        keep=1,
    )
    assert np.isfinite(np.asarray(result.latents)).all()
    assert float(result.scores[0]) == 0.0


def test_everything_non_finite_gives_the_documented_minus_inf_slots():
    everywhere = (jnp.zeros(D), jnp.zeros(D), jnp.float32(-1.0), jnp.int32(0))  # 0 > -1: NaN
    for name, searcher in SEARCHERS.items():
        result = ls.search(
            searcher,
            holey,
            jnp.ones((2, D)),
            key=jax.random.key(0),
            num_steps=6,
            args=everywhere,
            keep=2,
        )
        assert (np.asarray(result.scores) == -np.inf).all(), name
        np.testing.assert_array_equal(result.latents, jnp.ones((2, D)))  # the first start


def test_multi_start_search_skips_nan_regions():
    pair_latents = jnp.array([[3.0, 0.0, 0.0], [0.0, 0.5, 0.0]])
    starts = ls.multi_start(jnp.zeros(D), pair_latents, num_random=3, key=jax.random.key(2))
    args = (jnp.ones(D), jnp.array([1.0, 0.0, 0.0]), jnp.float32(2.0), jnp.int32(0))
    result = ls.search(
        SEARCHERS["gradient"], holey, starts, key=jax.random.key(3), num_steps=10, args=args
    )
    _check_result(result, holey, args)
    assert float(result.latents[0, 0]) <= 2.0


@pytest.mark.parametrize(
    ("value", "message"),
    [(0.0, "> 0"), (-1.0, "> 0"), (float("nan"), "> 0"), (float("inf"), "finite")],
)
def test_non_finite_scales_are_rejected(value, message):
    with pytest.raises(ValueError, match=f"scale must be .*{message}"):
        ls.random_search(4, value)
    with pytest.raises(ValueError, match=f"sigma must be .*{message}"):
        ls.evolution_strategy(4, value)


# ------------------------------------------------------ log-variances far out of range

log_vars = st.floats(-1e4, 80.0, width=32)


@jax.jit
def _gaussian_quantities(mean, lv_a, lv_b):
    a = ls.DiagGaussian(mean, lv_a)
    b = ls.DiagGaussian(jnp.zeros_like(mean), lv_b)
    stacked = ls.DiagGaussian(jnp.stack([a.mean, b.mean]), jnp.stack([a.log_var, b.log_var]))
    poe = [ls.product_of_experts(stacked, include_prior=prior) for prior in (False, True)]
    return {
        "kl_prior": a.kl_standard_normal(),
        "log_prob_at_mean": a.log_prob(a.mean),
        "kl_ab": a.kl(b),
        "kl_aa": a.kl(ls.DiagGaussian(mean, lv_a)),
        "poe_mean": jnp.stack([p.mean for p in poe]),
        "poe_log_var": jnp.stack([p.log_var for p in poe]),
        "grad_kl_prior": jax.grad(lambda lv: ls.DiagGaussian(mean, lv).kl_standard_normal())(lv_a),
        "grad_log_prob": jax.grad(lambda m: ls.DiagGaussian(m, lv_a).log_prob(mean))(mean),
    }


@SETTINGS
@given(
    lv_a=st.lists(log_vars, min_size=D, max_size=D),
    lv_b=st.lists(log_vars, min_size=D, max_size=D),
    mean=st.lists(st.floats(-3, 3, width=32), min_size=D, max_size=D),
)
def test_gaussian_quantities_stay_finite_for_extreme_log_variances(lv_a, lv_b, mean):
    out = jax.tree.map(np.asarray, _gaussian_quantities(*map(jnp.asarray, (mean, lv_a, lv_b))))
    for name in ("kl_prior", "log_prob_at_mean", "poe_mean", "poe_log_var", "grad_kl_prior"):
        assert np.isfinite(out[name]).all(), (name, out[name])
    assert not np.isnan(out["kl_ab"])  # +inf only where the true KL overflows float32
    assert out["kl_aa"] == pytest.approx(0.0, abs=1e-3)
    assert np.isfinite(out["grad_log_prob"]).all()  # at the mean itself: no 0 * inf
    # the product is at least as precise as its most precise expert
    tightest = np.minimum(np.asarray(lv_a), np.asarray(lv_b))
    assert (out["poe_log_var"] <= tightest + 1e-3).all()


def test_known_values_at_extreme_log_variances():
    tiny = ls.DiagGaussian(jnp.ones(2), jnp.full(2, -200.0))  # variance underflows to 0
    assert float(tiny.log_prob(jnp.ones(2))) == pytest.approx(-(np.log(2 * np.pi) - 200.0))
    assert float(tiny.kl(tiny)) == 0.0
    assert float(tiny.log_prob(jnp.zeros(2))) == -np.inf  # infinitely far in std units
    poe = ls.product_of_experts(
        ls.DiagGaussian(jnp.array([[0.0], [5.0]]), jnp.array([[-300.0], [0.0]]))
    )
    assert float(poe.mean[0]) == 0.0 and float(poe.log_var[0]) == pytest.approx(-300.0)
    huge = ls.DiagGaussian(jnp.zeros(1), jnp.full(1, 100.0))  # variance overflows float32
    assert float(huge.kl_standard_normal()) == np.inf  # a fault to detect, not hide


@jax.jit(static_argnames="aggregation")
def _toy_loss(log_var, aggregation):
    def encode(params, pair):
        return ls.DiagGaussian(pair["x"] * params["a"], jnp.full(2, log_var) + 0 * params["a"])

    def log_likelihood(params, z, pair):
        return -jnp.sum((pair["x"] - params["b"] * z) ** 2)

    pairs = {"x": jnp.arange(8.0).reshape(4, 2) / 8}
    params = {"a": jnp.ones(()), "b": jnp.ones(())}

    def loss(params):
        return ls.lpn_loss(
            params,
            encode,
            log_likelihood,
            pairs,
            jax.random.key(0),
            searcher=ls.gradient_ascent(optax.sgd(0.1)),
            num_steps=2,
            aggregation=aggregation,
        )[0]

    return jax.value_and_grad(loss)(params)


@pytest.mark.parametrize("aggregation", ["mean", "poe"])
def test_lpn_loss_is_finite_for_extreme_but_representable_log_variances(aggregation):
    for log_var in (-1e4, -300.0, -80.0, 0.0, 30.0):
        value, grads = _toy_loss(jnp.float32(log_var), aggregation)
        assert np.isfinite(float(value)), (log_var, value)
        assert all(np.isfinite(float(g)) for g in jax.tree.leaves(grads)), (log_var, grads)
    # exp(200) overflows float32: the KL is infinite and the loss must say so (training
    # then stops with a clear error) rather than silently clip it to something finite
    value, _ = _toy_loss(jnp.float32(200.0), aggregation)
    assert not np.isfinite(float(value))
