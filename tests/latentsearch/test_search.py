import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import latentsearch as ls


def quadratic(z, a_diag, c):
    """Concave quadratic with maximiser ``c`` and maximum 0."""
    return -0.5 * jnp.sum(a_diag * (z - c) ** 2)


def _problem(d, seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    a = jax.random.uniform(k1, (d,), minval=0.5, maxval=2.0)
    c = jax.random.normal(k2, (d,))
    return a, c


def multimodal(z):
    """Many local maxima; the global maximum 1.0 is at z = 0."""
    return jnp.sum(jnp.cos(3.0 * z)) / z.shape[0] - 0.05 * jnp.sum(z**2)


SEARCHERS = {
    "gradient": lambda: ls.gradient_ascent(optax.adam(0.1, b2=0.9)),
    "random": lambda: ls.random_search(16, 0.5, chunk_size=5),
    "es": lambda: ls.evolution_strategy(8, 0.1),
    "hybrid": lambda: ls.hybrid(ls.random_search(16, 0.5), ls.gradient_ascent(optax.sgd(0.1)), 2),
}


@pytest.mark.parametrize("d", [1, 4, 32])
def test_gradient_ascent_reaches_closed_form_maximiser_batched(d):
    a, _ = _problem(d)
    cs = jax.random.normal(jax.random.key(d), (5, d))
    searcher = ls.gradient_ascent(optax.sgd(0.5))

    def run(c, key):
        return ls.search(searcher, quadratic, jnp.zeros(d), key=key, num_steps=200, args=(a, c))

    result = jax.vmap(run)(cs, jax.random.split(jax.random.key(1), 5))
    np.testing.assert_allclose(result.latents[:, 0], cs, atol=1e-4)
    np.testing.assert_allclose(result.scores[:, 0], 0.0, atol=1e-6)


@pytest.mark.parametrize("name", ["random", "es"])
def test_gradient_free_searchers_improve_and_never_report_worse_than_start(name):
    a, c = _problem(6, seed=3)
    z0 = jnp.zeros(6)
    start = quadratic(z0, a, c)
    result = ls.search(
        SEARCHERS[name](), quadratic, z0, key=jax.random.key(0), num_steps=40, args=(a, c)
    )
    assert result.scores[0] >= start
    assert result.scores[0] > start + 0.1 * abs(start)  # a real improvement
    np.testing.assert_allclose(result.scores[0], quadratic(result.latents[0], a, c), rtol=1e-5)


def test_es_works_on_a_non_differentiable_objective():
    def staircase(z):
        return -jnp.sum(jnp.abs(jnp.round(4 * (z - 1.5)) / 4))  # gradient 0 almost everywhere

    ga = ls.search(
        ls.gradient_ascent(optax.adam(0.1)),
        staircase,
        jnp.zeros(3),
        key=jax.random.key(0),
        num_steps=50,
    )
    es = ls.search(
        ls.evolution_strategy(16, 0.3, optax.adam(0.1)),
        staircase,
        jnp.zeros(3),
        key=jax.random.key(0),
        num_steps=50,
    )
    assert ga.scores[0] == staircase(jnp.zeros(3))  # gradients are useless here
    assert es.scores[0] >= -0.25


def test_hybrid_beats_its_sampler_alone_on_multimodal_objective():
    sampler = ls.random_search(32, 1.5)
    z0 = jnp.full((2,), 2.2)  # near a local maximum
    wins = 0
    for seed in range(5):
        key = jax.random.key(seed)
        alone = ls.search(sampler, multimodal, z0, key=key, num_steps=1)
        hyb = ls.search(
            ls.hybrid(sampler, ls.gradient_ascent(optax.adam(0.05)), 4),
            multimodal,
            z0,
            key=key,
            num_steps=60,
        )
        assert hyb.scores[0] >= alone.scores[0]
        wins += bool(hyb.scores[0] > alone.scores[0] + 1e-3)
    assert wins >= 4
    assert hyb.scores[0] > 0.99


@pytest.mark.parametrize("name", list(SEARCHERS))
def test_invariants_trace_sorted_distinct(name):
    a, c = _problem(3, seed=1)
    result = ls.search(
        SEARCHERS[name](),
        quadratic,
        jnp.zeros((2, 3)),
        key=jax.random.key(0),
        num_steps=12,
        args=(a, c),
        keep=3,
    )
    assert result.trace.shape == (12,)
    assert bool(jnp.all(jnp.diff(result.trace) >= 0))
    assert bool(jnp.all(jnp.diff(result.scores) <= 0))
    assert result.trace[-1] == result.scores[0]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not bool(jnp.all(result.latents[i] == result.latents[j]))
    for i in range(3):
        np.testing.assert_allclose(result.scores[i], quadratic(result.latents[i], a, c), rtol=1e-5)


def test_keep_distinct_even_when_the_search_stands_still():
    # The starts are all the same point and the gradient is zero there: the second best
    # must still be a different point (here: none exists, so it is flagged with -inf).
    result = ls.search(
        ls.gradient_ascent(optax.sgd(0.1)),
        lambda z: -jnp.sum(z**2),
        jnp.zeros((3, 2)),
        key=jax.random.key(0),
        num_steps=5,
        keep=2,
    )
    assert result.scores[0] == 0.0
    assert result.scores[1] == -jnp.inf


def test_best_is_taken_over_the_whole_trajectory_including_the_start():
    # Too large a learning rate diverges: the start remains the best point.
    result = ls.search(
        ls.gradient_ascent(optax.sgd(3.0)),
        lambda z: -jnp.sum((z - 0.1) ** 2),
        jnp.zeros(2),
        key=jax.random.key(0),
        num_steps=10,
    )
    np.testing.assert_array_equal(result.latents[0], jnp.zeros(2))


@pytest.mark.parametrize(
    ("name", "expected", "gradients"),
    [
        # S=2 starts, K=7 steps
        ("gradient", 2 * 7 + 2, 2 * 7),  # K*S value-and-grads + S final scores
        ("random", 2 + 7 * 16, 0),  # starts + K*num_samples
        ("es", 2 + 7 * 2 * 8 + 2, 0),  # starts + K*S*population + S final means
        ("hybrid", 2 + 16 + 7 * 2 + 2, 7 * 2),  # starts + samples + refiner
    ],
)
def test_num_evaluations_is_exact(name, expected, gradients):
    calls = []

    def counting(z, c):
        jax.debug.callback(lambda z: calls.append(1), z)
        return -jnp.sum((z - c) ** 2)

    result = ls.search(
        SEARCHERS[name](),
        counting,
        jnp.zeros((2, 3)),
        key=jax.random.key(0),
        num_steps=7,
        args=(jnp.ones(3),),
    )
    jax.effects_barrier()
    assert int(result.num_evaluations) == expected
    assert int(result.num_gradient_evaluations) == gradients
    assert len(calls) == expected


@pytest.mark.parametrize("name", list(SEARCHERS))
def test_batch_independence_bit_for_bit(name):
    d = 5
    cs = jax.random.normal(jax.random.key(7), (64, d)) * 3.0
    a = jnp.linspace(0.5, 2.0, d)
    keys = jax.random.split(jax.random.key(0), 64)
    searcher = SEARCHERS[name]()
    if name == "gradient":  # clipping must act per task, never across the batch
        searcher = ls.gradient_ascent(
            optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1, b2=0.9))
        )

    @jax.jit
    @jax.vmap
    def run(c, key):
        return ls.search(searcher, quadratic, jnp.zeros((2, d)), key=key, num_steps=20, args=(a, c))

    batch = run(cs, keys)
    for i in (0, 13, 63):
        alone = run(cs[i : i + 1], keys[i : i + 1])
        np.testing.assert_array_equal(batch.latents[i], alone.latents[0])
        if name == "gradient":
            np.testing.assert_array_equal(batch.scores[i], alone.scores[0])
            np.testing.assert_array_equal(batch.trace[i], alone.trace[0])
        else:
            # The same latents; XLA may vectorise the objective's own reduction differently
            # for another batch size, which moves a score by one ulp.
            np.testing.assert_allclose(batch.scores[i], alone.scores[0], rtol=1e-6)
            np.testing.assert_allclose(batch.trace[i], alone.trace[0], rtol=1e-6)


def test_global_clip_is_per_task():
    # With a global-norm clip applied across the batch, a task's step would shrink when a
    # batch-mate has a huge gradient. Here each task must take exactly its own clipped step.
    searcher = ls.gradient_ascent(optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1)))
    cs = jnp.array([[1.0, 0.0], [1000.0, 0.0]])

    def run(c):
        return ls.search(
            searcher,
            lambda z, c: -jnp.sum((z - c) ** 2),
            jnp.zeros(2),
            key=jax.random.key(0),
            num_steps=1,
            args=(c,),
        )

    result = jax.vmap(run)(cs)
    # task 0: gradient 2 -> clipped to norm 1 -> step 0.1; its best is that step.
    np.testing.assert_allclose(result.latents[0, 0], [0.1, 0.0], atol=1e-7)


@pytest.mark.parametrize("name", list(SEARCHERS))
def test_jit_and_no_jit_agree(name):
    a, c = _problem(3, seed=2)

    def run():
        return ls.search(
            SEARCHERS[name](),
            quadratic,
            jnp.zeros(3),
            key=jax.random.key(0),
            num_steps=4,
            args=(a, c),
        )

    jitted = run()
    with jax.disable_jit():
        eager = run()
    np.testing.assert_allclose(jitted.latents, eager.latents, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jitted.trace, eager.trace, rtol=1e-5, atol=1e-6)
    assert int(jitted.num_evaluations) == int(eager.num_evaluations)


def test_early_stopping_flat_trace_and_budget_not_counted():
    a, c = _problem(4, seed=4)
    kwargs = dict(key=jax.random.key(0), num_steps=100, args=(a, c))
    searcher = ls.gradient_ascent(optax.sgd(0.5))
    full = ls.search(searcher, quadratic, jnp.zeros(4), **kwargs)
    stopped = ls.search(searcher, quadratic, jnp.zeros(4), target=-1e-2, **kwargs)
    first = int(jnp.argmax(stopped.trace >= -1e-2))
    assert 0 < first < 50
    assert bool(jnp.all(stopped.trace[first:] == stopped.trace[first]))
    assert int(stopped.num_evaluations) == first + 1  # one value-and-grad per step taken
    assert int(stopped.num_evaluations) < int(full.num_evaluations)
    assert stopped.scores[0] >= -1e-2


def test_early_stopping_is_per_task_under_vmap():
    cs = jnp.array([[0.1, 0.0], [5.0, 5.0]])

    def run(c):
        return ls.search(
            ls.gradient_ascent(optax.sgd(0.2)),
            lambda z, c: -jnp.sum((z - c) ** 2),
            jnp.zeros(2),
            key=jax.random.key(0),
            num_steps=30,
            args=(c,),
            target=-0.05,
        )

    result = jax.vmap(run)(cs)
    assert int(result.num_evaluations[0]) == 1  # the start already meets the target
    assert int(result.num_evaluations[1]) > 5


def test_nan_and_inf_never_become_best_points():
    def nasty(z):
        value = -jnp.sum((z - 1.0) ** 2)
        value = jnp.where(z[0] > 0.5, jnp.nan, value)
        return jnp.where(z[1] > 0.5, jnp.inf, value)

    for name in SEARCHERS:
        result = ls.search(
            SEARCHERS[name](),
            nasty,
            jnp.zeros((2, 2)),
            key=jax.random.key(1),
            num_steps=10,
            keep=2,
        )
        assert bool(jnp.all(jnp.isfinite(result.scores))), name
        assert bool(jnp.all(result.latents <= 0.5)), name
        assert bool(jnp.all(jnp.isfinite(result.trace))), name


def test_all_non_finite_gives_minus_inf_scores():
    result = ls.search(
        ls.random_search(4, 1.0),
        lambda z: jnp.nan * z[0],
        jnp.zeros(2),
        key=jax.random.key(0),
        num_steps=2,
    )
    assert bool(jnp.all(result.scores == -jnp.inf))


def test_zero_steps_scores_the_starts_only():
    starts = jnp.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    result = ls.search(
        ls.gradient_ascent(optax.sgd(0.1)),
        lambda z: -jnp.sum((z - 0.9) ** 2),
        starts,
        key=jax.random.key(0),
        num_steps=0,
        keep=2,
    )
    assert result.trace.shape == (0,)
    assert int(result.num_evaluations) == 3
    np.testing.assert_array_equal(result.latents, starts[jnp.array([1, 0])])


def test_multi_start_layout():
    mean = jnp.arange(3.0)
    pairs = jnp.ones((2, 3))
    starts = ls.multi_start(mean, pairs, num_random=4, scale=0.1, key=jax.random.key(0))
    assert starts.shape == (7, 3)
    np.testing.assert_array_equal(starts[0], mean)
    np.testing.assert_array_equal(starts[1:3], pairs)
    assert bool(jnp.all(jnp.abs(starts[3:] - mean) < 1.0))
    with pytest.raises(ValueError, match="needs a key"):
        ls.multi_start(mean, num_random=2)


def test_custom_searcher_plugs_into_the_driver():
    """A coordinate-wise hill climber written against the public protocol."""

    def init(z0, key):
        return z0

    def step(z, objective, args, key):
        direction = jax.random.normal(key, z.shape) * 0.3
        candidates = jnp.concatenate([z + direction, z - direction])
        scores = ls.evaluate(objective, candidates, args)
        half = z.shape[0]
        better = scores[:half] > scores[half:]
        z_new = jnp.where(better[:, None], candidates[:half], candidates[half:])
        return z_new, ls.Evaluations(candidates, scores)

    climber = ls.Searcher(init, step)
    result = ls.search(
        climber,
        lambda z: -jnp.sum((z - 2.0) ** 2),
        jnp.zeros(2),
        key=jax.random.key(0),
        num_steps=50,
    )
    assert result.scores[0] > -0.5
    assert int(result.num_evaluations) == 1 + 50 * 2


class TestErrors:
    searcher = ls.gradient_ascent(optax.sgd(0.1))

    @staticmethod
    def objective(z):
        return -jnp.sum(z**2)

    def _search(self, **kwargs):
        base = dict(z0=jnp.zeros(3), key=jax.random.key(0), num_steps=3)
        base.update(kwargs)
        z0 = base.pop("z0")
        objective = base.pop("objective", self.objective)
        return ls.search(self.searcher, objective, z0, **base)

    @pytest.mark.parametrize("z0", [jnp.zeros(()), jnp.zeros((2, 2, 2)), jnp.zeros((0, 3))])
    def test_bad_z0_shape(self, z0):
        with pytest.raises(ValueError, match=r"z0 must have shape.*got shape"):
            self._search(z0=z0)

    def test_integer_z0(self):
        with pytest.raises(TypeError, match="floating"):
            self._search(z0=jnp.zeros(3, jnp.int32))

    def test_keep_larger_than_visited_fills_with_minus_inf(self):
        result = self._search(z0=jnp.array([1.0, 2.0, 3.0]), keep=9)  # 4 points visited
        scores = np.asarray(result.scores)
        assert np.all(np.isfinite(scores[:4])) and np.all(scores[4:] == -np.inf)
        np.testing.assert_array_equal(result.latents[4:], np.repeat(result.latents[:1], 5, 0))

    def test_budget_arguments(self):
        with pytest.raises(ValueError, match="exactly one of num_steps"):
            self._search(max_evaluations=10)
        with pytest.raises(ValueError, match="exactly one of num_steps"):
            self._search(num_steps=None)
        with pytest.raises(ValueError, match=r"max_evaluations=1 is smaller than the 2"):
            self._search(num_steps=None, max_evaluations=1, z0=jnp.zeros((2, 3)))
        with pytest.raises(TypeError, match="max_evaluations must be a Python int"):
            self._search(num_steps=None, max_evaluations=10.0)

    def test_gradient_flow_strings_are_rejected(self):
        with pytest.raises(TypeError, match="gradient flows are objects"):
            self._search(gradient_flow="unrolled")

    def test_negative_budget(self):
        with pytest.raises(ValueError, match="num_steps must be >= 0; got -1"):
            self._search(num_steps=-1)

    def test_non_scalar_objective(self):
        with pytest.raises(TypeError, match=r"must return a scalar for z of shape \(3,\); got"):
            self._search(objective=lambda z: z)

    def test_wrong_arity_objective(self):
        with pytest.raises(TypeError, match="objective"):
            self._search(objective=lambda z, extra: -jnp.sum(z))

    def test_not_a_searcher(self):
        with pytest.raises(TypeError, match="latentsearch.Searcher"):
            ls.search(
                optax.adam(0.1), self.objective, jnp.zeros(3), key=jax.random.key(0), num_steps=1
            )

    def test_searcher_arguments(self):
        with pytest.raises(ValueError, match="population must be even"):
            ls.evolution_strategy(5, 0.1)
        with pytest.raises(ValueError, match="scale must be > 0"):
            ls.random_search(4, 0.0)
        with pytest.raises(TypeError, match="optax.GradientTransformation"):
            ls.gradient_ascent(0.1)
        with pytest.raises(ValueError, match="num_starts"):
            ls.hybrid(ls.random_search(4, 1.0), self.searcher, 0)


def test_history_read_at_a_budget_equals_the_shorter_search():
    a, c = _problem(3)
    searcher = ls.gradient_ascent(optax.adam(0.2))
    z0, key = jnp.array([0.5, -1.0, 2.0]), jax.random.key(3)
    run = ls.search(searcher, quadratic, z0, key=key, num_steps=12, args=(a, c), history=True)
    h = run.history
    assert h.best_latents.shape == (13, 3) and h.evaluations.shape == (13,)
    # gradient ascent scores its iterate in each step, and the final one in finalize
    np.testing.assert_array_equal(h.evaluations, [*range(12), 13])
    np.testing.assert_array_equal(h.best_latents[-1], run.best)
    assert int(h.evaluations[-1]) == int(run.num_evaluations)
    assert np.all(np.diff(np.asarray(h.best_scores)[1:]) >= 0)
    np.testing.assert_allclose(h.best_scores[1:], run.trace, rtol=1e-6)
    for k in (1, 4, 9):
        short = ls.search(searcher, quadratic, z0, key=key, num_steps=k, args=(a, c))
        assert short.history is None
        # entry k + 1 has spent the short search's k + 1 evaluations and holds its best point
        assert int(h.evaluations[k + 1]) == int(short.num_evaluations)
        np.testing.assert_allclose(h.best_latents[k + 1], short.best, rtol=1e-6)


def test_history_counts_samplers_and_zero_steps():
    a, c = _problem(2)
    sampler = ls.random_search(3, 0.5)
    run = ls.search(
        sampler, quadratic, jnp.zeros(2), key=jax.random.key(0), num_steps=4, args=(a, c),
        history=True,
    )  # fmt: skip
    np.testing.assert_array_equal(run.history.evaluations, [1, 4, 7, 10, 13])
    assert run.history.best_scores[0] == quadratic(jnp.zeros(2), a, c)
    batched = jax.vmap(
        lambda z: ls.search(
            sampler,
            quadratic,
            z,
            key=jax.random.key(0),
            num_steps=0,
            args=(a, c),
            keep=1,
            history=True,
        )
    )(jnp.zeros((5, 2)))
    assert batched.history.best_latents.shape == (5, 1, 2)
    np.testing.assert_array_equal(batched.history.evaluations, np.ones((5, 1)))
