"""Per-task stopping (``stop``, ``has_aux``) and the step-wise driver."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import latentsearch as ls


def close(z, c):
    """The negative squared distance, and whether every coordinate is within 0.1."""
    return -jnp.sum((z - c) ** 2), jnp.max(jnp.abs(z - c)) < 0.1


def near(value, within):
    return within


SGD = ls.gradient_ascent(optax.sgd(0.25))


def _search(c, **kwargs):
    return ls.search(SGD, close, jnp.zeros(2), key=jax.random.key(0), num_steps=40,
                     args=(c,), has_aux=True, stop=near, **kwargs)  # fmt: skip


def test_tasks_stop_at_different_steps_and_never_depend_on_their_batch_mates():
    targets = jnp.array([[0.05, 0.0], [1.0, 1.0], [8.0, -8.0], [1e13, 1e13]])
    batch = jax.jit(jax.vmap(_search))(targets)
    assert batch.stopped.tolist() == [True, True, True, False]
    assert batch.num_evaluations.tolist()[:3] == [1, 5, 8] and batch.num_evaluations[3] == 41
    for i in range(4):
        alone = jax.jit(_search)(targets[i])
        np.testing.assert_array_equal(batch.latents[i], alone.latents)
        np.testing.assert_array_equal(batch.scores[i], alone.scores)
        assert int(batch.num_evaluations[i]) == int(alone.num_evaluations)
    # the point where it stopped is returned, and it satisfies the rule
    for i in range(3):
        assert jnp.max(jnp.abs(batch.latents[i, 0] - targets[i])) < 0.1
        assert batch.trace[i, -1] == batch.scores[i, 0]


def test_the_loop_ends_when_every_task_has_stopped():
    calls = []

    def counted(z, c):
        jax.debug.callback(lambda: calls.append(1))
        return close(z, c)

    def run(c, steps):
        return ls.search(SGD, counted, jnp.zeros(2), key=jax.random.key(0), num_steps=steps,
                         args=(c,), has_aux=True, stop=near)  # fmt: skip

    targets = jnp.array([[0.5, 0.5], [1.0, 1.0]])  # both reproduced within 5 steps
    jax.block_until_ready(jax.vmap(lambda c: run(c, 200))(targets))
    few = len(calls)
    calls.clear()
    jax.block_until_ready(jax.vmap(lambda c: ls.search(
        SGD, lambda z, c: (counted(z, c)[0], False), jnp.zeros(2), key=jax.random.key(0),
        num_steps=200, args=(c,), has_aux=True, stop=near))(targets))  # fmt: skip
    assert few * 10 < len(calls)  # 200 steps ran only when nothing stopped


def test_keep_returns_the_stopping_point_first_then_the_best_others():
    result = _search(jnp.array([1.0, 1.0]), keep=3)
    assert bool(result.stopped)
    assert jnp.max(jnp.abs(result.latents[0] - 1.0)) < 0.1
    assert result.scores[0] >= result.scores[1] >= result.scores[2]
    assert len({tuple(np.asarray(z).tolist()) for z in result.latents}) == 3


def test_a_searcher_without_aux_still_stops_by_evaluating_again():
    plain = ls.Searcher(SGD.init, lambda s, f, a, k: SGD.step(s, lambda z, *x: f(z, *x), a, k),
                        finalize=SGD.finalize, score_starts=False)  # fmt: skip
    result = ls.search(plain, close, jnp.zeros(2), key=jax.random.key(0), num_steps=40,
                       args=(jnp.ones(2),), has_aux=True, stop=near)  # fmt: skip
    assert bool(result.stopped) and int(result.num_evaluations) == 5


@pytest.mark.parametrize("name", ["gradient", "random", "hybrid"])
def test_step_by_step_reproduces_search(name):
    searcher = {
        "gradient": SGD,
        "random": ls.random_search(8, 0.5),
        "hybrid": ls.hybrid(ls.random_search(8, 0.5), SGD, num_starts=2),
    }[name]
    c = jnp.array([0.7, -0.3])
    kwargs = dict(key=jax.random.key(4), num_steps=6, args=(c,), keep=2, history=True)
    whole = ls.search(searcher, close, jnp.zeros(2), has_aux=True, stop=near, **kwargs)
    state = ls.search_init(searcher, close, jnp.zeros(2), has_aux=True, stop=near, **kwargs)
    for _ in range(8):  # steps after the budget or a stop change nothing
        state = ls.search_step(searcher, close, state, args=(c,))
    stepped = ls.search_finish(searcher, close, state, args=(c,))
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(stepped), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_infer_and_lpn_loss_take_a_stop_rule():
    encode = lambda p, pair: ls.DiagGaussian(jnp.zeros(2), jnp.zeros(2))  # noqa: E731

    def loglik(p, z, pair):
        return -jnp.sum((z - pair) ** 2), jnp.max(jnp.abs(z - pair)) < 0.1

    def every_pair(value, a):
        return jnp.all(a.aux | ~a.mask)

    pairs = jnp.array([[1.0, 1.0], [1.0, 1.0], [9.0, 9.0]])
    mask = jnp.array([True, True, False])
    r = ls.infer(None, loglik, pairs, jax.random.key(0), encode=encode, searcher=SGD,
                 num_steps=50, pair_mask=mask, has_aux=True, stop=every_pair)  # fmt: skip
    assert bool(r.stopped) and int(r.num_evaluations) < 10
    loss, _ = ls.lpn_loss(None, encode, loglik, pairs[:2], jax.random.key(0), searcher=SGD,
                          num_steps=50, has_aux=True, stop=every_pair)  # fmt: skip
    assert jnp.isfinite(loss)
