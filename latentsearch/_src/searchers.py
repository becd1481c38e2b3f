"""Built-in searchers: gradient ascent, random search, evolution strategies, hybrids."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from latentsearch._src.core import (
    Evaluations,
    Searcher,
    best_distinct,
    concat_evaluations,
    scored,
    value_grad_aux,
)

__all__ = [
    "evolution_strategy",
    "gradient_ascent",
    "hybrid",
    "multi_start",
    "random_search",
]


def _finite_or_zero(x: Array) -> Array:
    return jnp.where(jnp.isfinite(x), x, jnp.zeros_like(x))


class GradientAscentState(NamedTuple):
    """State of :func:`gradient_ascent`: the current iterates and one optimiser state each."""

    z: Float[Array, "S D"]
    opt_state: Any


def gradient_ascent(optimizer: optax.GradientTransformation) -> Searcher:
    """Gradient ascent on the objective with any optax optimiser, one per start.

    Each step evaluates the value and gradient at the current iterates (so the starts are
    scored by the first step) and applies ``optimizer`` to ``-grad`` (optax minimises).
    The optimiser runs independently per start (``vmap``), so transformations that look at
    the whole update, such as ``optax.clip_by_global_norm``, act on one trajectory of one
    task and never couple tasks or starts. The final iterates are scored by ``finalize``:
    ``K`` steps from ``S`` starts cost ``K * S`` value-and-gradient evaluations plus ``S``
    plain ones. Non-finite gradients are replaced by zeros (the iterate stays put).

    Args:
        optimizer: e.g. ``optax.adam(0.1, b2=0.9)``, ``optax.sgd(0.5)``, a schedule, or
            ``optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1))``.

    Example:
        >>> import jax, jax.numpy as jnp, optax, latentsearch as ls
        >>> objective = lambda z: -jnp.sum((z - 3.0) ** 2)
        >>> r = ls.search(ls.gradient_ascent(optax.adam(0.5)), objective, jnp.zeros(1),
        ...               key=jax.random.key(0), num_steps=100)
        >>> round(float(r.best[0]), 2)
        3.0
    """
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"optimizer must be an optax.GradientTransformation; got {type(optimizer).__name__}"
        )

    def init(z0, key):
        del key
        return GradientAscentState(z0, jax.vmap(optimizer.init)(z0))

    def step(state, objective, args, key):
        del key
        values, grads, aux = value_grad_aux(objective, state.z, args)
        grads = jnp.where(jnp.isfinite(values)[:, None], _finite_or_zero(grads), 0.0)
        updates, opt_state = jax.vmap(optimizer.update)(-grads, state.opt_state, state.z)
        z = optax.apply_updates(state.z, updates)
        scored_now = Evaluations(state.z, values, state.z.shape[0], aux)
        return GradientAscentState(z, opt_state), scored_now

    def finalize(state, objective, args):
        return scored(objective, state.z, args)

    return Searcher(init, step, finalize=finalize, score_starts=False)


class RandomSearchState(NamedTuple):
    """State of :func:`random_search`: the fixed centres of the samples."""

    starts: Float[Array, "S D"]


def _spread(starts: Array, count: int) -> Array:
    """``count`` rows cycling over the starts, so samples are spread evenly among them."""
    return starts[jnp.arange(count) % starts.shape[0]]


def random_search(num_samples: int, scale: float, chunk_size: int | None = None) -> Searcher:
    """Gaussian random search around the starts.

    Each step scores ``num_samples`` fresh candidates ``start + scale * N(0, I)``, spread
    evenly over the ``S`` starts; the starts themselves are scored once by the driver. With
    ``num_steps=1`` this is the paper's "Sample N" (``scale=0.5`` in its pattern configs).

    Args:
        num_samples: candidates per step (>= 1).
        scale: standard deviation of the isotropic perturbation (> 0).
        chunk_size: score at most this many candidates at once to bound memory.

    Example:
        >>> import jax, jax.numpy as jnp, latentsearch as ls
        >>> objective = lambda z: -jnp.sum((z - 1.0) ** 2)
        >>> r = ls.search(ls.random_search(64, 1.0, chunk_size=16), objective, jnp.zeros(2),
        ...               key=jax.random.key(0), num_steps=2)
        >>> int(r.num_evaluations), bool(r.scores[0] > objective(jnp.zeros(2)))
        (129, True)
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int; got {num_samples!r}")
    if not 0 < scale < float("inf"):
        raise ValueError(f"scale must be > 0 and finite; got {scale!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None; got {chunk_size!r}")

    def init(z0, key):
        del key
        return RandomSearchState(z0)

    def step(state, objective, args, key):
        centres = _spread(state.starts, num_samples)
        noise = jax.random.normal(key, centres.shape, centres.dtype)
        points = centres + scale * noise
        return state, scored(objective, points, args, chunk_size)

    return Searcher(init, step)


class EvolutionStrategyState(NamedTuple):
    """State of :func:`evolution_strategy`: the search distributions' means."""

    mean: Float[Array, "S D"]
    opt_state: Any


def _centered_ranks(scores: Array) -> Array:
    """Ranks mapped to [-0.5, 0.5]; non-finite scores rank lowest."""
    scores = jnp.where(jnp.isfinite(scores), scores, -jnp.inf)
    ranks = jnp.argsort(jnp.argsort(scores)).astype(jnp.float32)
    return ranks / (scores.shape[-1] - 1) - 0.5


def evolution_strategy(
    population: int,
    sigma: float,
    optimizer: optax.GradientTransformation | None = None,
    *,
    centered_ranks: bool = True,
) -> Searcher:
    """Antithetic Gaussian evolution strategy (OpenAI-ES style), gradient-free.

    Each step draws ``population / 2`` directions ``eps`` per start, scores
    ``mean +- sigma * eps``, and estimates the ascent direction
    ``sum_i (f(+eps_i) - f(-eps_i)) eps_i / (population * sigma)`` from objective values
    only, so the objective need not be differentiable. With ``centered_ranks`` the values
    are replaced by their centred ranks (robust to scale and to NaN/inf, which rank last).
    The estimate drives ``optimizer`` (default ``optax.adam(0.1)``). Every perturbed point
    is a candidate; ``finalize`` scores the final means.

    Args:
        population: evaluations per start per step (even, >= 2).
        sigma: perturbation scale (> 0).
        optimizer: any optax transformation (applied to the negated estimate).
        centered_ranks: fitness shaping by centred ranks.

    Example:
        >>> import jax, jax.numpy as jnp, optax, latentsearch as ls
        >>> objective = lambda z: -jnp.sum(jnp.abs(z - 2.0))   # not smooth at the optimum
        >>> es = ls.evolution_strategy(16, 0.1, optax.adam(0.2))
        >>> r = ls.search(es, objective, jnp.zeros(3), key=jax.random.key(0), num_steps=60)
        >>> bool(r.scores[0] > -0.5)
        True
    """
    if isinstance(population, bool) or not isinstance(population, int):
        raise TypeError(f"population must be an int; got {population!r}")
    if population < 2 or population % 2:
        raise ValueError(f"population must be even and >= 2 (antithetic pairs); got {population}")
    if not 0 < sigma < float("inf"):
        raise ValueError(f"sigma must be > 0 and finite; got {sigma!r}")
    optimizer = optax.adam(0.1) if optimizer is None else optimizer
    half = population // 2

    def init(z0, key):
        del key
        return EvolutionStrategyState(z0, jax.vmap(optimizer.init)(z0))

    def step(state, objective, args, key):
        s, d = state.mean.shape
        eps = jax.random.normal(key, (s, half, d), state.mean.dtype)
        signed = jnp.concatenate([eps, -eps], axis=1)  # (S, P, D)
        points = state.mean[:, None, :] + sigma * signed
        flat = points.reshape(s * population, d)
        evaluated = scored(objective, flat, args)
        fitness = evaluated.scores.reshape(s, population)
        if centered_ranks:
            fitness = _centered_ranks(fitness)
        else:
            fitness = jnp.where(
                jnp.isfinite(fitness), fitness, jnp.nanmin(fitness, axis=-1)[:, None]
            )
        diff = fitness[:, :half] - fitness[:, half:]
        grad = jnp.einsum("sp,spd->sd", diff, eps) / (population * sigma)
        grad = _finite_or_zero(grad)
        updates, opt_state = jax.vmap(optimizer.update)(-grad, state.opt_state, state.mean)
        mean = optax.apply_updates(state.mean, updates)
        return EvolutionStrategyState(mean, opt_state), evaluated

    def finalize(state, objective, args):
        return scored(objective, state.mean, args)

    return Searcher(init, step, finalize=finalize)


class HybridState(NamedTuple):
    """State of :func:`hybrid` before preparation: the sampler's state and the starts."""

    starts: Float[Array, "S D"]
    sampler_state: Any


def hybrid(
    sampler: Searcher,
    refiner: Searcher,
    num_starts: int,
    *,
    sampler_steps: int = 1,
) -> Searcher:
    """Samples, keeps the best ``num_starts`` distinct points, then refines them.

    ``prepare`` scores the starts, runs ``sampler_steps`` steps of ``sampler`` (e.g.
    :func:`random_search`), and initialises ``refiner`` (e.g. :func:`gradient_ascent`) at
    the ``num_starts`` best distinct points seen so far; each of the driver's ``num_steps``
    is then one refiner step. The budget is the sum of both phases.

    Args:
        sampler: the searcher whose visited points seed the refinement.
        refiner: the searcher run from the best points.
        num_starts: how many points to refine in parallel.
        sampler_steps: sampler iterations before refining.

    Example:
        >>> import jax, jax.numpy as jnp, optax, latentsearch as ls
        >>> objective = lambda z: jnp.cos(3 * z[0]) - 0.1 * z[0] ** 2   # many local maxima
        >>> h = ls.hybrid(ls.random_search(32, 2.0), ls.gradient_ascent(optax.adam(0.1)), 4)
        >>> r = ls.search(h, objective, jnp.array([1.0]), key=jax.random.key(0), num_steps=50)
        >>> round(float(r.scores[0]), 3), int(r.num_evaluations)
        (1.0, 237)
    """
    if not isinstance(sampler, Searcher) or not isinstance(refiner, Searcher):
        raise TypeError("sampler and refiner must both be latentsearch.Searcher instances")
    if isinstance(num_starts, bool) or not isinstance(num_starts, int) or num_starts < 1:
        raise ValueError(f"num_starts must be a positive int; got {num_starts!r}")
    if isinstance(sampler_steps, bool) or not isinstance(sampler_steps, int) or sampler_steps < 1:
        raise ValueError(f"sampler_steps must be a positive int; got {sampler_steps!r}")

    def init(z0, key):
        return HybridState(z0, sampler.init(z0, key))

    def prepare(state, objective, args, key):
        k_prep, k_steps, k_refine = jax.random.split(key, 3)
        starts = state.starts
        found = [scored(objective, starts, args)]
        s_state = state.sampler_state
        if sampler.prepare is not None:
            s_state, ev = sampler.prepare(s_state, objective, args, k_prep)
            found.append(ev)

        def body(s_state, k):
            return sampler.step(s_state, objective, args, k)

        s_state, evs = jax.lax.scan(body, s_state, jax.random.split(k_steps, sampler_steps))
        flat = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), evs)  # (steps * M, ...)
        found.append(dataclasses.replace(flat, num_gradients=sampler_steps * evs.num_gradients))
        if sampler.finalize is not None:
            found.append(sampler.finalize(s_state, objective, args))
        found = [ev for ev in found if ev is not None and ev.points.shape[0] > 0]
        pool, _ = best_distinct(
            jnp.concatenate([ev.points for ev in found]),
            jnp.concatenate([ev.scores for ev in found]),
            num_starts,
        )
        r_state = refiner.init(pool, k_refine)
        if refiner.score_starts:
            found.append(scored(objective, pool, args))
        if refiner.prepare is not None:
            r_state, ev = refiner.prepare(r_state, objective, args, k_refine)
            found.append(ev)
        return r_state, concat_evaluations(found)

    return Searcher(init, refiner.step, prepare, refiner.finalize, score_starts=False)


def multi_start(
    mean: Float[ArrayLike, " D"],
    pair_latents: Float[ArrayLike, "N D"] | None = None,
    *,
    num_random: int = 0,
    scale: float = 1.0,
    key: PRNGKeyArray | None = None,
) -> Float[Array, "S D"]:
    """Stacks starting points: the aggregate latent, each pair's latent, random restarts.

    Args:
        mean: the aggregated latent ``(D,)``, always the first start.
        pair_latents: optional per-pair latents ``(N, D)`` added as starts.
        num_random: number of extra starts ``mean + scale * N(0, I)``.
        scale: their standard deviation.
        key: PRNG key, required when ``num_random > 0``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> multi_start(jnp.zeros(4), jnp.ones((3, 4)), num_random=2,
        ...             key=jax.random.key(0)).shape
        (6, 4)
    """
    mean = jnp.asarray(mean)
    if mean.ndim != 1:
        raise ValueError(f"mean must have shape (D,); got {mean.shape}")
    starts = [mean[None]]
    if pair_latents is not None:
        pair_latents = jnp.asarray(pair_latents)
        if pair_latents.ndim != 2 or pair_latents.shape[1] != mean.shape[0]:
            raise ValueError(
                f"pair_latents must have shape (N, {mean.shape[0]}); got {pair_latents.shape}"
            )
        starts.append(pair_latents.astype(mean.dtype))
    if num_random:
        if key is None:
            raise ValueError("multi_start needs a key when num_random > 0")
        noise = jax.random.normal(key, (num_random, mean.shape[0]), mean.dtype)
        starts.append(mean + scale * noise)
    return jnp.concatenate(starts)
