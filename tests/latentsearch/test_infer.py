"""ls.infer, start_latents, Anchor, pytree latents, evaluation budgets, best_distinct and the
searcher protocol (score_starts)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import latentsearch as ls

D = 3


def quadratic(z, c):
    return -jnp.sum((z - c) ** 2)


SEARCHERS = {
    "gradient": lambda: ls.gradient_ascent(optax.adam(0.1)),
    "random": lambda: ls.random_search(6, 0.5),
    "es": lambda: ls.evolution_strategy(4, 0.1),
    "hybrid": lambda: ls.hybrid(ls.random_search(8, 0.5), ls.gradient_ascent(optax.sgd(0.1)), 2),
}


# ---------------------------------------------------------------------------- budgets


@pytest.mark.parametrize("name", list(SEARCHERS))
@pytest.mark.parametrize("budget", [40, 101, 250])
def test_max_evaluations_is_the_largest_search_within_the_budget(name, budget):
    searcher, c = SEARCHERS[name](), jnp.ones(D)
    kwargs = dict(key=jax.random.key(0), args=(c,), keep=1)
    z0 = jnp.zeros((2, D))
    result = ls.search(searcher, quadratic, z0, max_evaluations=budget, **kwargs)
    spent = int(result.num_evaluations)
    assert spent <= budget
    # one more step would not fit: the same search with one more step spends more
    steps = result.trace.shape[0]
    longer = ls.search(searcher, quadratic, z0, num_steps=steps + 1, **kwargs)
    assert int(longer.num_evaluations) > budget
    same = ls.search(searcher, quadratic, z0, num_steps=steps, **kwargs)
    np.testing.assert_array_equal(result.latents, same.latents)


def test_gradient_ascent_budget_counts_the_final_evaluation():
    r = ls.search(
        ls.gradient_ascent(optax.sgd(0.1)),
        quadratic,
        jnp.zeros(D),
        key=jax.random.key(0),
        max_evaluations=101,
        args=(jnp.ones(D),),
    )
    assert r.trace.shape == (100,) and int(r.num_evaluations) == 101
    assert int(r.num_gradient_evaluations) == 100


# ---------------------------------------------------------------------- best_distinct


def test_best_distinct_skips_repeats_and_non_finite_points():
    points = jnp.array([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [2.0, jnp.inf], [3.0, 3.0]])
    scores = jnp.array([1.0, 5.0, 5.0, 9.0, jnp.nan])
    latents, top = ls.best_distinct(points, scores, 4)
    np.testing.assert_array_equal(top, [5.0, 1.0, -jnp.inf, -jnp.inf])
    np.testing.assert_array_equal(latents, [[1.0, 1.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="k must be a positive int"):
        ls.best_distinct(points, scores, 0)


# ------------------------------------------------------------------------ protocol


def test_evaluations_num_gradients_is_a_static_int():
    with pytest.raises(TypeError, match="num_gradients must be a non-negative Python int"):
        ls.Evaluations(jnp.zeros((2, 1)), jnp.zeros(2), jnp.asarray(2))
    ev = ls.Evaluations(jnp.zeros((2, 1)), jnp.zeros(2), 2)
    leaves = jax.tree_util.tree_leaves(ev)
    assert len(leaves) == 2  # points and scores; num_gradients is static
    stacked = jax.lax.scan(lambda c, _: (c, ev), 0, None, length=3)[1]
    assert stacked.points.shape == (3, 2, 1) and stacked.num_gradients == 2


def _counting_searcher(score_starts):
    """A searcher that never scores anything itself: only the driver's starts are scored."""

    def step(state, objective, args, key):
        return state, ls.Evaluations(state + 10.0, ls.evaluate(objective, state + 10.0, args))

    return ls.Searcher(lambda z0, key: z0, step, score_starts=score_starts)


def test_score_starts_decides_whether_the_driver_scores_the_starts():
    z0 = jnp.zeros((3, D))
    kwargs = dict(key=jax.random.key(0), num_steps=1, args=(jnp.zeros(D),), keep=1)
    scored = ls.search(_counting_searcher(True), quadratic, z0, **kwargs)
    unscored = ls.search(_counting_searcher(False), quadratic, z0, **kwargs)
    assert int(scored.num_evaluations) == 6 and int(unscored.num_evaluations) == 3
    assert float(scored.scores[0]) == 0.0  # a start (the optimum) was a candidate
    assert float(unscored.scores[0]) == -300.0  # only the stepped points were


def test_a_searcher_from_the_protocol_alone():
    """The custom searcher of the docs: a (1+1) local search written on the protocol."""

    def init(z0, key):
        return z0

    def step(state, objective, args, key):
        proposal = state + 0.3 * jax.random.normal(key, state.shape)
        scores = ls.evaluate(objective, proposal, args)
        better = scores > ls.evaluate(objective, state, args)
        return jnp.where(better[:, None], proposal, state), ls.Evaluations(proposal, scores)

    r = ls.search(
        ls.Searcher(init, step),
        quadratic,
        jnp.zeros(D),
        key=jax.random.key(1),
        num_steps=300,
        args=(jnp.ones(D),),
    )
    assert float(r.scores[0]) > -0.05


# --------------------------------------------------------------------------- pytrees


def part_objective(z, c):
    return -jnp.sum((z["w"] - c) ** 2) - jnp.sum((z["b"] + 1.0) ** 2)


@pytest.mark.parametrize("name", list(SEARCHERS))
def test_pytree_latents_match_the_flat_search(name):
    searcher, c = SEARCHERS[name](), jnp.arange(4.0).reshape(2, 2)
    tree = {"b": jnp.full((1,), 0.5), "w": jnp.zeros((2, 2))}  # flattened: b first, then w

    def flat_objective(z, c):
        return part_objective({"b": z[:1], "w": z[1:].reshape(2, 2)}, c)

    kwargs = dict(key=jax.random.key(0), num_steps=7, args=(c,), keep=2, history=True)
    got = ls.search(searcher, part_objective, tree, **kwargs)
    flat = ls.search(
        searcher, flat_objective, jnp.concatenate([tree["b"], tree["w"].ravel()]), **kwargs
    )
    assert got.latents["w"].shape == (2, 2, 2) and got.latents["b"].shape == (2, 1)
    assert got.best["w"].shape == (2, 2)
    np.testing.assert_allclose(got.latents["w"].reshape(2, 4), flat.latents[:, 1:], rtol=1e-6)
    np.testing.assert_allclose(got.latents["b"], flat.latents[:, :1], rtol=1e-6)
    np.testing.assert_allclose(got.scores, flat.scores, rtol=1e-6)
    assert got.history.best_latents["w"].shape == (8, 2, 2)


def test_stacked_pytree_starts_and_vmap():
    c = jnp.ones((2, 2))
    starts = {"b": jnp.zeros((3, 1)), "w": jnp.stack([jnp.zeros((2, 2))] * 3)}
    searcher = ls.gradient_ascent(optax.sgd(0.2))
    r = ls.search(
        searcher,
        part_objective,
        starts,
        key=jax.random.key(0),
        num_steps=50,
        args=(c,),
        stacked=True,
        keep=1,
    )
    np.testing.assert_allclose(r.best["w"], c, atol=1e-4)
    np.testing.assert_allclose(r.best["b"], [-1.0], atol=1e-4)
    batched = jax.vmap(
        lambda t: ls.search(
            searcher, part_objective, t, key=jax.random.key(0), num_steps=50, args=(c,), keep=1
        )
    )({"b": jnp.zeros((4, 1)), "w": jnp.zeros((4, 2, 2))})
    assert batched.best["w"].shape == (4, 2, 2)
    np.testing.assert_allclose(batched.best["b"], -np.ones((4, 1)), atol=1e-4)


def test_pytree_latent_errors():
    searcher = ls.gradient_ascent(optax.sgd(0.1))
    kwargs = dict(key=jax.random.key(0), num_steps=1, args=(jnp.ones((2, 2)),))
    with pytest.raises(TypeError, match=r"z0\['b'\] has dtype int32"):
        ls.search(
            searcher,
            part_objective,
            {"b": jnp.zeros(1, jnp.int32), "w": jnp.zeros((2, 2))},
            **kwargs,
        )
    with pytest.raises(ValueError, match="same leading"):
        ls.search(
            searcher,
            part_objective,
            {"b": jnp.zeros((3, 1)), "w": jnp.zeros((2, 2, 2))},
            stacked=True,
            **kwargs,
        )
    with pytest.raises(ValueError, match="empty pytree"):
        ls.search(searcher, part_objective, {}, **kwargs)


def test_pytree_search_compiles_once():
    searcher, c = ls.gradient_ascent(optax.sgd(0.1)), jnp.ones((2, 2))
    tree = {"b": jnp.zeros(1), "w": jnp.zeros((2, 2))}
    ls.search(searcher, part_objective, tree, key=jax.random.key(0), num_steps=3, args=(c,))
    with jax.log_compiles(True):
        import logging

        records = []
        handler = logging.Handler()
        handler.emit = records.append
        logging.getLogger("jax").addHandler(handler)
        try:
            ls.search(
                searcher, part_objective, tree, key=jax.random.key(1), num_steps=3, args=(c + 1,)
            )
        finally:
            logging.getLogger("jax").removeHandler(handler)
    assert not [r for r in records if "_search" in r.getMessage()]


# ----------------------------------------------------------------------------- infer


def encode(params, pair):
    return ls.DiagGaussian(params["e"] * pair["y"], jnp.full((D,), -2.0))


def loglik(params, z, pair):
    return -0.5 * jnp.sum((pair["y"] - params["w"] * z) ** 2)


def _task(n=4, seed=0):
    y = 1.0 + 0.1 * jax.random.normal(jax.random.key(seed), (n, D))
    return {"y": y}


PARAMS = {"e": jnp.array(0.3), "w": jnp.array(2.0)}  # the start is not the optimum


def test_infer_is_encode_aggregate_search():
    pairs, key = _task(), jax.random.key(3)
    searcher = ls.gradient_ascent(optax.sgd(0.05))
    got = ls.infer(
        PARAMS, loglik, pairs, key, encode=encode, searcher=searcher, num_steps=30, keep=2
    )
    z0 = jnp.mean(PARAMS["e"] * pairs["y"], axis=0)

    def objective(z, params, pairs):
        return jnp.sum(jax.vmap(loglik, in_axes=(None, None, 0))(params, z, pairs))

    by_hand = ls.search(
        searcher, objective, z0, key=key, num_steps=30, args=(PARAMS, pairs), keep=2
    )
    np.testing.assert_allclose(got.latents, by_hand.latents, rtol=1e-6)
    np.testing.assert_allclose(got.scores, by_hand.scores, rtol=1e-6)
    # the optimum of sum_i -(y_i - w z)^2 / 2 is mean(y) / w
    np.testing.assert_allclose(got.best, jnp.mean(pairs["y"], 0) / 2.0, atol=1e-3)


def test_infer_pair_mask_and_posterior_input():
    pairs = _task(6)
    padded = {"y": pairs["y"].at[4:].set(100.0)}
    mask = jnp.array([True] * 4 + [False] * 2)
    kwargs = dict(searcher=ls.gradient_ascent(optax.sgd(0.05)), num_steps=40)
    masked = ls.infer(
        PARAMS, loglik, padded, jax.random.key(0), encode=encode, pair_mask=mask, **kwargs
    )
    real = ls.infer(
        PARAMS, loglik, {"y": pairs["y"][:4]}, jax.random.key(0), encode=encode, **kwargs
    )
    np.testing.assert_allclose(masked.best, real.best, rtol=1e-6)
    posterior = jax.vmap(encode, in_axes=(None, 0))(PARAMS, padded)
    given = ls.infer(
        PARAMS, loglik, padded, jax.random.key(0), posterior=posterior, pair_mask=mask, **kwargs
    )
    np.testing.assert_array_equal(given.latents, masked.latents)
    with pytest.raises(ValueError, match="exactly one of encode"):
        ls.infer(PARAMS, loglik, padded, jax.random.key(0), **kwargs)
    with pytest.raises(ValueError, match=r"pair_mask must have shape \(6,\)"):
        ls.infer(
            PARAMS, loglik, padded, jax.random.key(0), encode=encode, pair_mask=mask[:3], **kwargs
        )


def test_infer_precompute_is_applied_once_per_pair_and_gives_the_same_result():
    pairs = _task()
    calls = []

    def precompute(params, pair):
        calls.append(1)  # traced once (under vmap), not once per evaluation
        return {**pair, "scaled": pair["y"] / params["w"]}

    def loglik_cached(params, z, pair):
        return -0.5 * params["w"] ** 2 * jnp.sum((pair["scaled"] - z) ** 2)

    kwargs = dict(encode=encode, searcher=ls.gradient_ascent(optax.sgd(0.05)), num_steps=20)
    cached = ls.infer(
        PARAMS, loglik_cached, pairs, jax.random.key(0), precompute=precompute, **kwargs
    )
    plain = ls.infer(PARAMS, loglik, pairs, jax.random.key(0), **kwargs)
    np.testing.assert_allclose(cached.latents, plain.latents, rtol=1e-5)
    assert len(calls) == 1


def test_start_latents_mix_and_order():
    posterior = ls.DiagGaussian(jnp.array([[0.0, 2.0], [2.0, 4.0], [7.0, 7.0]]), jnp.zeros((3, 2)))
    mask = jnp.array([True, True, False])
    key = jax.random.key(5)
    starts = ls.start_latents(
        posterior, key, pair_mask=mask, starts=ls.Starts(pairs=True, random=2, scale=0.1)
    )
    assert starts.shape == (1 + 3 + 2, 2)
    np.testing.assert_allclose(starts[0], [1.0, 3.0])  # aggregate of the real means
    np.testing.assert_allclose(starts[1:3], posterior.mean[:2])
    np.testing.assert_allclose(starts[3], [1.0, 3.0])  # the padding pair: the aggregate
    assert float(jnp.max(jnp.abs(starts[4:] - starts[0]))) < 0.5
    sampled = ls.start_latents(posterior, key, pair_mask=mask, starts=ls.Starts("sample"))
    expected = jnp.mean(posterior.sample(key)[:2], axis=0)
    np.testing.assert_allclose(sampled[0], expected, rtol=1e-6)
    poe = ls.start_latents(posterior, key, pair_mask=mask, aggregation="poe")
    np.testing.assert_allclose(
        poe[0], ls.product_of_experts(posterior, mask, include_prior=True, axis=0).mean
    )
    only_pairs = ls.start_latents(posterior, key, starts=ls.Starts(aggregate=None, pairs=True))
    np.testing.assert_array_equal(only_pairs, posterior.mean)
    with pytest.raises(ValueError, match="chooses no start"):
        ls.start_latents(posterior, key, starts=ls.Starts(aggregate=None))
    with pytest.raises(ValueError, match="aggregation must be one of"):
        ls.start_latents(posterior, key, aggregation="median")


def test_infer_multiple_starts_find_the_better_mode():
    # two maxima: z = -2 (value 0) and z = +2 (value 1); the aggregate start sits in the
    # worse basin and a pair's own latent in the better one
    def bimodal(params, z, pair):
        return jnp.maximum(-jnp.sum((z + 2.0) ** 2), 1.0 - jnp.sum((z - 2.0) ** 2)) / 2

    posterior = ls.DiagGaussian(jnp.array([[-3.0], [-3.0], [1.5]]), jnp.zeros((3, 1)))
    pairs = {"y": jnp.zeros((3, 1))}
    kwargs = dict(posterior=posterior, searcher=ls.gradient_ascent(optax.sgd(0.2)), num_steps=30)
    one = ls.infer(None, bimodal, pairs, jax.random.key(0), **kwargs)
    many = ls.infer(None, bimodal, pairs, jax.random.key(0), starts=ls.Starts(pairs=True), **kwargs)
    np.testing.assert_allclose(one.best, [-2.0], atol=1e-3)
    np.testing.assert_allclose(many.best, [2.0], atol=1e-3)


def test_anchor_pulls_the_search_towards_the_prior_or_the_posterior():
    pairs = _task()
    # curvature up to 16 + 4 / 0.033 (the posterior anchor): a step small enough for it
    kwargs = dict(encode=encode, searcher=ls.gradient_ascent(optax.sgd(0.005)), num_steps=400)
    free = ls.infer(PARAMS, loglik, pairs, jax.random.key(0), **kwargs).best
    prior = ls.infer(
        PARAMS, loglik, pairs, jax.random.key(0), anchor=ls.Anchor(4.0, "prior"), **kwargs
    ).best
    # sum_i -(y_i - 2z)^2/2 - 4 z^2/2: z = 2 sum(y) / (4 n + 4) in closed form
    total = jnp.sum(pairs["y"], axis=0)
    np.testing.assert_allclose(prior, 2 * total / (4 * 4 + 4), rtol=1e-3)
    assert float(jnp.linalg.norm(prior)) < float(jnp.linalg.norm(free))
    posterior = ls.infer(
        PARAMS, loglik, pairs, jax.random.key(0), anchor=ls.Anchor(4.0, "posterior"), **kwargs
    ).best
    product = ls.product_of_experts(
        jax.vmap(encode, in_axes=(None, 0))(PARAMS, pairs), include_prior=True, axis=0
    )
    precision = 4.0 / product.variance
    expected = (2 * total + precision * product.mean) / (4 * 4 + precision)
    np.testing.assert_allclose(posterior, expected, rtol=1e-3)
    zero = ls.infer(PARAMS, loglik, pairs, jax.random.key(0), anchor=ls.Anchor(0.0), **kwargs)
    np.testing.assert_allclose(zero.best, free, rtol=1e-6)
    with pytest.raises(ValueError, match="anchor must be"):
        ls.infer(PARAMS, loglik, pairs, jax.random.key(0), anchor=ls.Anchor(1.0, "data"), **kwargs)


def test_infer_is_differentiable_with_each_gradient_flow():
    pairs = _task()

    def found(params, flow):
        return ls.infer(
            params,
            loglik,
            pairs,
            jax.random.key(0),
            encode=encode,
            searcher=ls.gradient_ascent(optax.sgd(0.05)),
            num_steps=200,
            gradient_flow=flow,
        ).best.sum()

    # z* = mean(y) / w: d/dw = -mean(y) / w^2 summed; no dependence on e
    exact = -jnp.sum(jnp.mean(pairs["y"], 0)) / 4.0
    for flow in (ls.Unrolled(), ls.Implicit(damping=0.0)):
        grad = jax.grad(found)(PARAMS, flow)
        np.testing.assert_allclose(grad["w"], exact, rtol=1e-3)
        assert abs(float(grad["e"])) < 1e-4  # float32 ties may pick an iterate a few steps early
    grad = jax.grad(found)(PARAMS, ls.StopGradient())
    assert float(grad["w"]) == 0.0
    np.testing.assert_allclose(grad["e"], jnp.sum(jnp.mean(pairs["y"], 0)), rtol=1e-6)
