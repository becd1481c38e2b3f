"""ls.langevin (MALA) and ls.evosax_strategy: correctness properties, budgets, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import latentsearch as ls


def gaussian_log_density(z, mean, scale):
    return -0.5 * jnp.sum(((z - mean) / scale) ** 2)


def _run_chains(searcher, objective, z0, args, steps, key):
    """The chains' positions after every step, driving the searcher by hand."""
    k_init, k_prep, k_steps = jax.random.split(key, 3)
    state = searcher.init(z0, k_init)
    state, _ = searcher.prepare(state, objective, args, k_prep)

    def body(state, k):
        state, _ = searcher.step(state, objective, args, k)
        return state, state.z

    _, path = jax.lax.scan(body, state, jax.random.split(k_steps, steps))
    return path  # (steps, chains, D)


def test_mala_samples_the_target_distribution():
    mean, scale = jnp.array([1.0, -2.0]), jnp.array([0.5, 2.0])
    searcher = ls.langevin(0.2, num_chains=64)
    path = _run_chains(
        searcher, gaussian_log_density, jnp.zeros((1, 2)), (mean, scale), 2000, jax.random.key(0)
    )
    samples = np.asarray(path[500:]).reshape(-1, 2)  # after burn-in
    np.testing.assert_allclose(samples.mean(0), mean, atol=0.1)
    np.testing.assert_allclose(samples.std(0), scale, rtol=0.08)


def test_temperature_concentrates_the_chains():
    args = (jnp.zeros(2), jnp.ones(2))
    key = jax.random.key(1)
    hot = _run_chains(
        ls.langevin(0.1, num_chains=32), gaussian_log_density, jnp.zeros((1, 2)), args, 800, key
    )
    cold = _run_chains(
        ls.langevin(0.01, temperature=0.05, num_chains=32),
        gaussian_log_density,
        jnp.zeros((1, 2)),
        args,
        800,
        key,
    )
    # the tempered target exp(J / T) has standard deviation sqrt(T)
    np.testing.assert_allclose(np.asarray(cold[300:]).std(), np.sqrt(0.05), rtol=0.15)
    assert np.asarray(hot[300:]).std() > 3 * np.asarray(cold[300:]).std()


def test_unadjusted_langevin_takes_every_finite_move():
    searcher = ls.langevin(0.05, adjust=False, num_chains=4)
    path = _run_chains(
        searcher,
        gaussian_log_density,
        jnp.zeros((1, 2)),
        (jnp.zeros(2), jnp.ones(2)),
        20,
        jax.random.key(2),
    )
    assert bool(jnp.all(jnp.any(path[1:] != path[:-1], axis=-1)))


def test_langevin_never_moves_into_non_finite_regions():
    def walled(z):  # -inf beyond z[0] > 0.5
        return jnp.where(z[0] > 0.5, -jnp.inf, -jnp.sum(z**2))

    searcher = ls.langevin(0.3, num_chains=16)
    path = _run_chains(searcher, walled, jnp.zeros((1, 2)), (), 300, jax.random.key(3))
    assert float(jnp.max(path[..., 0])) <= 0.5
    result = ls.search(searcher, walled, jnp.zeros(2), key=jax.random.key(3), num_steps=50)
    assert bool(jnp.isfinite(result.scores[0]))


def test_langevin_budget_and_best_points():
    objective = lambda z: gaussian_log_density(z, jnp.ones(3), jnp.ones(3))  # noqa: E731
    r = ls.search(
        ls.langevin(0.002, temperature=0.01, num_chains=2),
        objective,
        jnp.zeros((2, 3)),
        key=jax.random.key(0),
        max_evaluations=202,
    )
    # prepare: the 2 starts; each step: 2 starts x 2 chains
    assert int(r.num_evaluations) == 2 + 50 * 4 == int(r.num_gradient_evaluations)
    assert float(r.scores[0]) > -0.01


def test_langevin_arguments():
    for bad in (
        dict(step_size=0.0),
        dict(step_size=0.1, temperature=-1.0),
        dict(step_size=0.1, num_chains=0),
    ):
        with pytest.raises(ValueError):
            ls.langevin(**bad)


# ------------------------------------------------------------------------------ evosax

evosax = pytest.importorskip("evosax")
from evosax.algorithms import CMA_ES, SNES, SimpleGA  # noqa: E402


def quadratic(z, c):
    return -jnp.sum((z - c) ** 2)


@pytest.mark.parametrize("algorithm", [CMA_ES, SNES])
def test_evosax_strategies_find_the_maximum(algorithm):
    c = jnp.array([1.0, -0.5, 2.0, 0.0])
    strategy = algorithm(population_size=16, solution=jnp.zeros(4))
    r = ls.search(
        ls.evosax_strategy(strategy),
        quadratic,
        jnp.zeros((2, 4)),
        key=jax.random.key(0),
        num_steps=80,
        args=(c,),
    )
    assert float(r.scores[0]) > -1e-2
    # the starts, then 16 per start per step, then the 2 final means
    assert int(r.num_evaluations) == 2 + 80 * 2 * 16 + 2
    assert int(r.num_gradient_evaluations) == 0


def test_evosax_strategies_are_independent_per_task_under_vmap():
    strategy = CMA_ES(population_size=8, solution=jnp.zeros(3))
    searcher = ls.evosax_strategy(strategy, strategy.default_params.replace(std_init=0.5))
    targets = jnp.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]])
    keys = jax.random.split(jax.random.key(1), 2)

    def one(c, k):
        return ls.search(searcher, quadratic, jnp.zeros(3), key=k, num_steps=30, args=(c,))

    batched = jax.vmap(one)(targets, keys)
    alone = one(targets[1], keys[1])
    np.testing.assert_allclose(batched.latents[1], alone.latents, rtol=1e-5, atol=1e-6)


def test_evosax_tolerates_non_finite_scores():
    def holey(z, c):
        return jnp.where(z[0] > 1.5, jnp.nan, quadratic(z, c))

    strategy = CMA_ES(population_size=8, solution=jnp.zeros(2))
    r = ls.search(
        ls.evosax_strategy(strategy),
        holey,
        jnp.zeros(2),
        key=jax.random.key(2),
        num_steps=60,
        args=(jnp.array([1.0, 1.0]),),
    )
    assert bool(jnp.isfinite(r.scores[0])) and float(r.scores[0]) > -1e-2


def test_evosax_strategy_errors():
    with pytest.raises(TypeError, match="distribution-based"):
        ls.evosax_strategy(SimpleGA(population_size=8, solution=jnp.zeros(2)))
    with pytest.raises(TypeError, match="distribution-based"):
        ls.evosax_strategy(optax.adam(0.1))
    strategy = CMA_ES(population_size=8, solution=jnp.zeros(3))
    with pytest.raises(ValueError, match="built for 3-dimensional solutions"):
        ls.search(
            ls.evosax_strategy(strategy),
            quadratic,
            jnp.zeros(5),
            key=jax.random.key(0),
            num_steps=2,
            args=(jnp.zeros(5),),
        )
