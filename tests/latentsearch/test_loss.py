"""lpn_loss on a linear-Gaussian toy model whose optimum and its derivative are known."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import latentsearch as ls

try:  # newer JAX; the declared lower bound (JAX 0.5) has only the experimental one
    from jax import enable_x64
except ImportError:
    from jax.experimental import enable_x64

D, N, C = 3, 4, 0.5


@pytest.fixture(autouse=True)
def x64():
    with enable_x64(True):
        yield


def _data():
    return {"y": jax.random.normal(jax.random.key(0), (N, D), jnp.float64)}


def _params():
    w = jnp.eye(D) + 0.2 * jax.random.normal(jax.random.key(2), (D, D), jnp.float64)
    return {"W": w, "b": jnp.array(0.3, jnp.float64)}


def encode(params, pair):
    # The start depends on the data only (near-deterministic), not on params.
    return ls.DiagGaussian(0.5 * pair["y"], jnp.full((D,), -40.0, pair["y"].dtype))


def loglik(params, z, pair):
    return -0.5 * jnp.sum((pair["y"] - params["W"] @ z - params["b"]) ** 2) - 0.5 * C * jnp.sum(
        z**2
    ) / (N - 1)


def optimum(params, others):
    """argmax_z sum_j loglik(z, pair_j) over the given pairs, in closed form."""
    w = params["W"]
    m = others.shape[0] * (w.T @ w) + C * others.shape[0] / (N - 1) * jnp.eye(D)
    return jnp.linalg.solve(m, w.T @ jnp.sum(others - params["b"], axis=0))


def analytic_loss(params, data):
    """The loss when the search finds the exact optimum (what implicit differentiates)."""
    y = data["y"]
    total = 0.0
    for i in range(N):
        others = jnp.concatenate([y[:i], y[i + 1 :]])
        total += -loglik(params, optimum(params, others), {"y": y[i]})
    return total / N


def stop_gradient_loss(params, data):
    """Same value, with the optimum held constant (the start does not depend on params)."""
    y = data["y"]
    total = 0.0
    for i in range(N):
        others = jnp.concatenate([y[:i], y[i + 1 :]])
        z = jax.lax.stop_gradient(optimum(params, others))
        total += -loglik(params, z, {"y": y[i]})
    return total / N


FLOWS = {
    "stop_gradient": ls.StopGradient(),
    "unrolled": ls.Unrolled(checkpoint=True),
    "implicit": ls.Implicit(),
}


def loss_fn(flow, num_steps, lr=0.15, encode=encode):
    flow = FLOWS.get(flow, flow)

    def f(params):
        loss, _ = ls.lpn_loss(
            params,
            encode,
            loglik,
            _data(),
            jax.random.key(1),
            searcher=ls.gradient_ascent(optax.sgd(lr)),
            num_steps=num_steps,
            gradient_flow=flow,
            prior_kl=0.0,
        )
        return loss

    return f


def _flat(tree):
    return jnp.concatenate([jnp.ravel(x) for x in jax.tree_util.tree_leaves(tree)])


def test_converged_search_gives_the_analytic_loss():
    params = _params()
    np.testing.assert_allclose(
        loss_fn("stop_gradient", 400)(params), analytic_loss(params, _data()), rtol=1e-9
    )


def test_implicit_matches_the_analytic_gradient():
    params = _params()
    got = jax.grad(loss_fn("implicit", 400))(params)
    expected = jax.grad(analytic_loss)(params, _data())
    np.testing.assert_allclose(_flat(got), _flat(expected), rtol=1e-3, atol=1e-4)


def test_unrolled_approaches_the_analytic_gradient_with_more_steps():
    params = _params()
    expected = _flat(jax.grad(analytic_loss)(params, _data()))
    errors = [
        float(jnp.max(jnp.abs(_flat(jax.grad(loss_fn("unrolled", k))(params)) - expected)))
        for k in (2, 10, 400)
    ]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-6


def test_stop_gradient_matches_its_own_analytic_form():
    params = _params()
    got = jax.grad(loss_fn("stop_gradient", 400))(params)
    expected = jax.grad(stop_gradient_loss)(params, _data())
    np.testing.assert_allclose(_flat(got), _flat(expected), rtol=1e-6, atol=1e-8)
    # and it really differs from the full gradient
    full = _flat(jax.grad(analytic_loss)(params, _data()))
    assert float(jnp.max(jnp.abs(_flat(got) - full))) > 1e-2


@pytest.mark.parametrize(
    ("flow", "steps"), [("unrolled", 5), ("implicit", 400), ("stop_gradient", 5)]
)
def test_gradients_match_finite_differences(flow, steps):
    params = _params()
    f = loss_fn(flow, steps)
    grad = jax.grad(f)(params)
    direction = jax.tree_util.tree_map(
        lambda x: jax.random.normal(jax.random.key(3), x.shape, x.dtype), params
    )
    eps = 1e-5
    plus = jax.tree_util.tree_map(lambda p, d: p + eps * d, params, direction)
    minus = jax.tree_util.tree_map(lambda p, d: p - eps * d, params, direction)
    fd = (f(plus) - f(minus)) / (2 * eps)
    directional = jnp.dot(_flat(grad), _flat(direction))
    if flow == "stop_gradient":
        # The surrogate's gradient is not the loss's derivative (that is the point of it).
        assert abs(float(fd - directional)) > 1e-4
    else:
        # implicit: the solve's damping (1e-3) bounds its agreement
        np.testing.assert_allclose(directional, fd, rtol=1e-4 if flow == "unrolled" else 1e-3)


def encode_p(params, pair):
    """An encoder with a parameter: the start depends on params["e"]."""
    return ls.DiagGaussian(params["e"] * pair["y"], jnp.full((D,), -40.0, pair["y"].dtype))


def test_encoder_gets_gradient_through_the_start():
    params = {**_params(), "e": jnp.array(0.5, jnp.float64)}
    flows = [
        ls.StopGradient(),
        ls.Unrolled(),
        ls.Unrolled(checkpoint=True),
        ls.Implicit(start_path=True),
    ]
    for flow in flows:
        grad = jax.grad(loss_fn(flow, 2, lr=0.05, encode=encode_p))(params)
        assert abs(float(grad["e"])) > 1e-6, flow
    # the implicit-function theorem alone: the optimum does not depend on the start
    grad = jax.grad(loss_fn(ls.Implicit(), 2, lr=0.05, encode=encode_p))(params)
    assert float(grad["e"]) == 0.0


def test_implicit_is_the_exact_gradient_when_the_start_depends_on_params():
    """At a converged search, Implicit() equals the exact gradient (the analytic loss's, in
    which the start plays no part), and Unrolled approaches it; the start path is an
    addition that makes Implicit differ from it."""
    params = {**_params(), "e": jnp.array(0.5, jnp.float64)}
    exact = jax.grad(analytic_loss)(params, _data())
    assert float(exact["e"]) == 0.0
    implicit = jax.grad(loss_fn(ls.Implicit(damping=0.0), 400, encode=encode_p))(params)
    np.testing.assert_allclose(_flat(implicit), _flat(exact), rtol=1e-6, atol=1e-9)
    unrolled = jax.grad(loss_fn(ls.Unrolled(), 400, encode=encode_p))(params)
    np.testing.assert_allclose(_flat(unrolled), _flat(exact), rtol=1e-5, atol=1e-8)
    with_start = jax.grad(loss_fn(ls.Implicit(start_path=True), 400, encode=encode_p))(params)
    assert abs(float(with_start["e"])) > 1e-3


def test_pair_mask_ignores_padding_pairs():
    data = _data()
    params = _params()
    padded = {"y": jnp.concatenate([data["y"], 100.0 + jnp.zeros((2, D))])}
    mask = jnp.array([True] * N + [False, False])
    kwargs = dict(searcher=ls.gradient_ascent(optax.sgd(0.15)), num_steps=400, prior_kl=0.0)
    loss_pad, _ = ls.lpn_loss(
        params, encode, loglik, padded, jax.random.key(1), pair_mask=mask, **kwargs
    )
    np.testing.assert_allclose(loss_pad, analytic_loss(params, data), rtol=1e-9)


def test_metrics_and_prior_kl_weight():
    params = _params()
    kwargs = dict(searcher=ls.gradient_ascent(optax.sgd(0.1)), num_steps=3)
    loss0, m = ls.lpn_loss(
        params, encode, loglik, _data(), jax.random.key(1), prior_kl=0.0, **kwargs
    )
    loss1, _ = ls.lpn_loss(
        params, encode, loglik, _data(), jax.random.key(1), prior_kl=0.5, **kwargs
    )
    np.testing.assert_allclose(loss1 - loss0, 0.5 * m["prior_kl"], rtol=1e-9)
    # more steps of the same trajectory raise the best objective on the other pairs
    _, m1 = ls.lpn_loss(
        params,
        encode,
        loglik,
        _data(),
        jax.random.key(1),
        prior_kl=0.0,
        searcher=ls.gradient_ascent(optax.sgd(0.1)),
        num_steps=1,
    )
    assert float(m["search_score"]) > float(m1["search_score"])
    # Grad 0 scores nothing: the start is used as is
    loss_0, m_0 = ls.lpn_loss(
        params,
        encode,
        loglik,
        _data(),
        jax.random.key(1),
        prior_kl=0.0,
        searcher=ls.gradient_ascent(optax.sgd(0.1)),
        num_steps=0,
    )
    assert "search_score" not in m_0 and set(m_0) == set(m) - {"search_score"}
    np.testing.assert_allclose(m_0["reconstruction"], loss_0, rtol=1e-12)
    assert abs(float(loss_0) - float(loss0)) > 1e-3  # the 3 search steps moved the latents
    np.testing.assert_allclose(m["reconstruction"], loss0, rtol=1e-12)


def test_poe_aggregation_runs_and_differs_from_mean():
    def encode_var(params, pair):  # pairs of very different certainty
        return ls.DiagGaussian(pair["y"], 3.0 * pair["y"])

    params = _params()
    kwargs = dict(searcher=ls.gradient_ascent(optax.sgd(0.1)), num_steps=0)
    mean_loss, _ = ls.lpn_loss(params, encode_var, loglik, _data(), jax.random.key(1), **kwargs)
    poe_loss, _ = ls.lpn_loss(
        params, encode_var, loglik, _data(), jax.random.key(1), aggregation="poe", **kwargs
    )
    assert bool(jnp.isfinite(poe_loss)) and float(abs(poe_loss - mean_loss)) > 1e-6


class TestErrors:
    kwargs = dict(searcher=ls.gradient_ascent(optax.sgd(0.1)), num_steps=1)

    @pytest.mark.parametrize("num_steps", [0, 1])
    def test_not_a_searcher(self, num_steps):
        with pytest.raises(TypeError, match="searcher must be a latentsearch.Searcher"):
            ls.lpn_loss(
                _params(),
                encode,
                loglik,
                _data(),
                jax.random.key(0),
                searcher=optax.sgd(0.1),
                num_steps=num_steps,
            )

    @pytest.mark.parametrize("flow", ["implicit", "second_order", 3])
    def test_not_a_gradient_flow(self, flow):
        with pytest.raises(TypeError, match="gradient_flow"):
            ls.lpn_loss(
                _params(),
                encode,
                loglik,
                _data(),
                jax.random.key(0),
                gradient_flow=flow,
                **self.kwargs,
            )

    def test_single_pair(self):
        with pytest.raises(ValueError, match="at least 2 pairs"):
            ls.lpn_loss(
                _params(),
                encode,
                loglik,
                {"y": jnp.zeros((1, D))},
                jax.random.key(0),
                **self.kwargs,
            )

    def test_inconsistent_pair_axis(self):
        with pytest.raises(ValueError, match="same leading"):
            ls.lpn_loss(
                _params(),
                encode,
                loglik,
                {"y": jnp.zeros((4, D)), "x": jnp.zeros(3)},
                jax.random.key(0),
                **self.kwargs,
            )

    def test_bad_mask(self):
        with pytest.raises(ValueError, match=r"pair_mask must have shape \(4,\)"):
            ls.lpn_loss(
                _params(),
                encode,
                loglik,
                _data(),
                jax.random.key(0),
                pair_mask=jnp.ones(3, bool),
                **self.kwargs,
            )


def test_held_out_log_likelihood_scores_the_reconstruction_only():
    """A separate held-out score changes the reconstruction, never the search."""
    params, data = _params(), _data()
    kwargs = dict(searcher=ls.gradient_ascent(optax.sgd(0.15)), num_steps=400, prior_kl=0.0)
    plain, m = ls.lpn_loss(params, encode, loglik, data, jax.random.key(1), **kwargs)
    shifted = lambda p, z, pair: loglik(p, z, pair) - jnp.sum(pair["y"] ** 2)  # noqa: E731
    loss, m2 = ls.lpn_loss(
        params, encode, loglik, data, jax.random.key(1), held_out_log_likelihood=shifted, **kwargs
    )
    np.testing.assert_allclose(loss - plain, jnp.sum(data["y"] ** 2) / N, rtol=1e-9)
    np.testing.assert_allclose(m2["search_score"], m["search_score"], rtol=1e-12)
    np.testing.assert_allclose(plain, analytic_loss(params, data), rtol=1e-9)


def test_dropout_key_gives_each_pair_a_key_for_encode_and_held_out_scoring_only():
    """``dropout_key`` is split into one key per pair, passed as ``dropout_key=`` to the
    pair's ``encode`` and held-out scoring; the search's objective (``loglik``, which has no
    such keyword) never gets one, and without ``dropout_key`` nothing is passed."""
    params, data = _params(), _data()

    def noisy_encode(p, pair, dropout_key=None):
        shift = 0.0 if dropout_key is None else jax.random.uniform(dropout_key, (D,))
        return encode(p, {"y": pair["y"] + shift})

    def noisy_held_out(p, z, pair, dropout_key=None):
        noise = 0.0 if dropout_key is None else jax.random.normal(dropout_key, ())
        return loglik(p, z, pair) + noise * pair["y"][0]  # which pair got which key

    kwargs = dict(searcher=ls.gradient_ascent(optax.sgd(0.15)), num_steps=3, prior_kl=0.0)

    def loss(dropout_key, encoder=noisy_encode, held_out=noisy_held_out):
        return ls.lpn_loss(
            params, encoder, loglik, data, jax.random.key(1), dropout_key=dropout_key,
            held_out_log_likelihood=held_out, **kwargs,
        )  # fmt: skip

    plain, plain_metrics = loss(None, encode, loglik)  # callables without the keyword
    unkeyed, unkeyed_metrics = loss(None)
    assert unkeyed == plain and unkeyed_metrics == plain_metrics
    keys = jax.random.split(jax.random.key(5), N)
    # the held-out scoring of pair i gets keys[i]; the encoder's key leaves it unchanged
    held_out_only, _ = loss(jax.random.key(5), lambda p, pair, dropout_key: encode(p, pair))
    noise = jnp.mean(jnp.stack([jax.random.normal(k, ()) for k in keys]) * data["y"][:, 0])
    np.testing.assert_allclose(held_out_only, plain - noise, rtol=1e-12)
    # the encoder of pair i gets keys[i] too
    both, metrics = loss(jax.random.key(5))
    shifted = data["y"] + jnp.stack([jax.random.uniform(k, (D,)) for k in keys])
    want_norm = jnp.mean(jnp.linalg.norm(0.5 * shifted, axis=-1))
    np.testing.assert_allclose(metrics["latent_norm"], want_norm, rtol=1e-12)
    assert both != held_out_only and loss(jax.random.key(6))[0] != both
    assert loss(jax.random.key(5))[0] == both
