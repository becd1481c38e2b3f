"""An adapter that runs evosax's distribution-based strategies (CMA-ES, SNES, ...) as a
searcher (``pip install latentsearch[evosax]``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from latentsearch._src.core import Searcher, scored

__all__ = ["evosax_strategy"]


class EvosaxState(NamedTuple):
    """State of :func:`evosax_strategy`: one evosax state per start."""

    strategy_state: Any


def _fitness(scores: jax.Array) -> jax.Array:
    """evosax minimises: the negated scores, a non-finite score tied with the worst."""
    fitness = -scores
    finite = jnp.isfinite(fitness)
    worst = jnp.max(jnp.where(finite, fitness, -jnp.inf))
    worst = jnp.where(jnp.isfinite(worst), worst, 0.0)
    return jnp.where(finite, fitness, worst)


def evosax_strategy(strategy: Any, params: Any = None) -> Searcher:
    """Runs an evosax distribution-based strategy (CMA-ES, Sep-CMA-ES, SNES, xNES, PGPE,
    Open-ES, ...) as a latentsearch searcher, one independent strategy per start.

    The strategy's mean starts at each start; every step asks for a population, scores it
    (evosax minimises, so it is told the negated scores; a non-finite score counts as the
    generation's worst), and tells the strategy; ``finalize`` scores the final means. All
    of evosax's algorithms come with no code of ours, and the driver keeps the best distinct
    points, counts evaluations and batches tasks as for the built-in searchers.

    Args:
        strategy: an instance from ``evosax.algorithms`` built for flat latents, e.g.
            ``CMA_ES(population_size=16, solution=jnp.zeros(D))`` (the ``solution``
            template fixes ``D``, which must match the latent's flattened size).
        params: the strategy's parameters (default ``strategy.default_params``), e.g. with
            a different initial standard deviation: ``strategy.default_params.replace(
            std_init=0.5)``.

    Raises:
        ImportError: when evosax is not installed.
        TypeError: for a strategy that is not distribution-based.

    Example:
        >>> import jax, jax.numpy as jnp, latentsearch as ls
        >>> from evosax.algorithms import CMA_ES
        >>> objective = lambda z: -jnp.sum((z - 1.0) ** 2)
        >>> cma = CMA_ES(population_size=8, solution=jnp.zeros(3))
        >>> r = ls.search(ls.evosax_strategy(cma), objective, jnp.zeros(3),
        ...               key=jax.random.key(0), num_steps=40)
        >>> bool(r.scores[0] > -1e-3), int(r.num_evaluations)   # 1 start + 40 x 8 + 1 mean
        (True, 322)
    """
    try:
        from evosax.algorithms.distribution_based.base import DistributionBasedAlgorithm
    except ImportError as err:  # pragma: no cover - exercised without the extra
        raise ImportError(
            "evosax_strategy needs evosax: pip install 'latentsearch[evosax]'"
        ) from err
    if not isinstance(strategy, DistributionBasedAlgorithm):
        raise TypeError(
            "strategy must be an evosax distribution-based algorithm instance (e.g. "
            f"evosax.algorithms.CMA_ES(population_size=16, solution=jnp.zeros(D))); got "
            f"{type(strategy).__name__}"
        )
    strategy_params = strategy.default_params if params is None else params
    dims = strategy.num_dims

    def init(z0, key):
        if z0.shape[-1] != dims:
            raise ValueError(
                f"the strategy was built for {dims}-dimensional solutions; the latent has "
                f"{z0.shape[-1]} dimensions (build it with solution=jnp.zeros({z0.shape[-1]}))"
            )
        keys = jax.random.split(key, z0.shape[0])
        return EvosaxState(
            jax.vmap(lambda k, mean: strategy.init(k, mean, strategy_params))(keys, z0)
        )

    def step(state, objective, args, key):
        k_ask, k_tell = jax.random.split(key)
        s = jax.tree_util.tree_leaves(state.strategy_state)[0].shape[0]
        population, asked = jax.vmap(lambda k, st: strategy.ask(k, st, strategy_params))(
            jax.random.split(k_ask, s), state.strategy_state
        )
        flat = population.reshape(-1, population.shape[-1])
        evaluated = scored(objective, flat, args)
        fitness = jax.vmap(_fitness)(evaluated.scores.reshape(population.shape[:2]))
        told, _ = jax.vmap(lambda k, pop, fit, st: strategy.tell(k, pop, fit, st, strategy_params))(
            jax.random.split(k_tell, s), population, fitness, asked
        )
        return EvosaxState(told), evaluated

    def finalize(state, objective, args):
        return scored(objective, jax.vmap(strategy.get_mean)(state.strategy_state), args)

    return Searcher(init, step, finalize=finalize)
