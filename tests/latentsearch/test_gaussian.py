import jax
import jax.numpy as jnp
import numpy as np
import pytest

import latentsearch as ls


def _rand_gaussian(key, shape):
    k1, k2 = jax.random.split(key)
    return ls.DiagGaussian(jax.random.normal(k1, shape), 0.5 * jax.random.normal(k2, shape))


def test_sample_moments_match_parameters():
    q = ls.DiagGaussian(jnp.array([1.0, -2.0]), jnp.log(jnp.array([0.25, 4.0])))
    samples = jax.vmap(q.sample)(jax.random.split(jax.random.key(0), 20000))
    np.testing.assert_allclose(samples.mean(0), [1.0, -2.0], atol=0.05)
    np.testing.assert_allclose(samples.std(0), [0.5, 2.0], rtol=0.03)


def test_sample_is_reparameterised():
    def f(mean):
        return ls.DiagGaussian(mean, jnp.zeros(3)).sample(jax.random.key(1)).sum()

    np.testing.assert_allclose(jax.grad(f)(jnp.zeros(3)), jnp.ones(3))


def test_kl_standard_normal_matches_closed_form_and_monte_carlo():
    q = _rand_gaussian(jax.random.key(2), (5, 4))
    expected = 0.5 * np.sum(q.variance + q.mean**2 - 1.0 - q.log_var, axis=-1)
    np.testing.assert_allclose(q.kl_standard_normal(), expected, rtol=1e-6)
    prior = ls.DiagGaussian(jnp.zeros(4), jnp.zeros(4))
    np.testing.assert_allclose(q.kl(prior), expected, rtol=1e-5)
    # Monte Carlo estimate of KL(q || p) = E_q[log q - log p]
    one = ls.DiagGaussian(q.mean[0], q.log_var[0])
    z = jax.vmap(one.sample)(jax.random.split(jax.random.key(3), 200000))
    mc = jnp.mean(one.log_prob(z) - prior.log_prob(z))
    np.testing.assert_allclose(mc, expected[0], rtol=0.03, atol=0.01)


def test_log_prob_matches_scipy_formula():
    q = _rand_gaussian(jax.random.key(4), (3,))
    z = jnp.array([0.3, -1.0, 2.0])
    sd = np.exp(0.5 * np.asarray(q.log_var))
    expected = np.sum(
        -0.5 * ((np.asarray(z) - np.asarray(q.mean)) / sd) ** 2 - np.log(sd * np.sqrt(2 * np.pi))
    )
    np.testing.assert_allclose(q.log_prob(z), expected, rtol=1e-5)


def test_pairwise_kl_matches_loop_and_is_zero_on_diagonal():
    q = _rand_gaussian(jax.random.key(5), (2, 4, 3))
    out = ls.pairwise_kl(q)
    assert out.shape == (2, 4, 4)
    for b in range(2):
        for i in range(4):
            for j in range(4):
                qi = ls.DiagGaussian(q.mean[b, i], q.log_var[b, i])
                qj = ls.DiagGaussian(q.mean[b, j], q.log_var[b, j])
                np.testing.assert_allclose(out[b, i, j], qi.kl(qj), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jnp.diagonal(out, axis1=-2, axis2=-1), 0.0, atol=1e-6)


def test_pairwise_kl_rejects_unbatched():
    with pytest.raises(ValueError, match="pairwise_kl needs"):
        ls.pairwise_kl(ls.DiagGaussian(jnp.zeros(3), jnp.zeros(3)))


def test_gaussian_is_a_pytree_under_jit_and_vmap():
    q = _rand_gaussian(jax.random.key(6), (7, 2))
    kl = jax.jit(jax.vmap(lambda g: g.kl_standard_normal()))(q)
    np.testing.assert_allclose(kl, q.kl_standard_normal(), rtol=1e-6)
