"""The searcher protocol, the search driver and its result.

A *searcher* is a NamedTuple of pure functions, in the style of an optax
``GradientTransformation``:

- ``init(z0, key) -> state`` with the starts ``z0`` of shape ``(S, D)``;
- ``step(state, objective, args, key) -> (state, Evaluations)``: one iteration, returning
  the points it scored (and their scores) so that the driver can keep the best ones;
- ``prepare(state, objective, args, key) -> (state, Evaluations)``, optional: runs once
  before the steps. When it is ``None`` the driver scores the starts itself, so the starts
  are always candidates. A searcher whose first ``step`` already scores its starts (gradient
  ascent) passes :func:`no_preparation` to avoid paying for them twice.
- ``finalize(state, objective, args) -> Evaluations``, optional: scores points the last
  step moved to but did not score (the final iterate of gradient ascent).

The driver :func:`search` runs ``prepare``, then ``num_steps`` steps under ``lax.scan``,
then ``finalize``, and keeps the ``keep`` best *distinct* points over everything scored.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

__all__ = [
    "Evaluations",
    "Objective",
    "SearchHistory",
    "SearchResult",
    "Searcher",
    "evaluate",
    "no_preparation",
    "search",
]

Objective = Callable[..., Float[Array, ""]]
"""``objective(z, *args) -> scalar``: the log-likelihood to maximise, for one latent ``z``."""


class Evaluations(NamedTuple):
    """Points a searcher scored in one step.

    Attributes:
        points: ``(M, D)`` latents.
        scores: ``(M,)`` objective values (a non-finite value, or a point with a non-finite
            coordinate, is never kept as a best point).
        num_gradients: how many of the ``M`` evaluations also computed a gradient.
    """

    points: Float[Array, "M D"]
    scores: Float[Array, " M"]
    num_gradients: int = 0


class Searcher(NamedTuple):
    """A latent searcher: pure ``init``/``step`` (plus optional ``prepare``/``finalize``).

    See the module docstring for the contract of each function, and
    :func:`latentsearch.gradient_ascent` for a complete example.
    """

    init: Callable[[Array, PRNGKeyArray], Any]
    step: Callable[[Any, Objective, tuple, PRNGKeyArray], tuple[Any, Evaluations]]
    prepare: Callable[[Any, Objective, tuple, PRNGKeyArray], tuple[Any, Evaluations]] | None = None
    finalize: Callable[[Any, Objective, tuple], Evaluations] | None = None


class SearchHistory(NamedTuple):
    """The path of a search, recorded by ``search(..., history=True)``.

    Entry 0 is the state after ``prepare`` (the starts scored), entry ``k`` the state after
    step ``k``; the last entry includes the searcher's ``finalize``. Reading it at a budget
    ``b`` (the last entry with ``evaluations <= b``) gives what a search stopped after ``b``
    evaluations would have returned, which is how accuracy-versus-budget curves are made
    from one run.

    Attributes:
        best_latents: ``(num_steps + 1, D)`` the best point found so far.
        best_scores: ``(num_steps + 1,)`` its score (non-decreasing).
        evaluations: ``(num_steps + 1,)`` objective evaluations spent so far.
    """

    best_latents: Float[Array, "steps D"]
    best_scores: Float[Array, " steps"]
    evaluations: Int[Array, " steps"]


class SearchResult(NamedTuple):
    """What :func:`search` returns (a pytree, so it batches under ``jax.vmap``).

    Attributes:
        latents: ``(keep, D)`` the best distinct points visited, best first.
        scores: ``(keep,)`` their objective values, descending, finite or ``-inf``: NaN and
            infinite scores, and points with a non-finite coordinate, are never kept.
            ``-inf`` marks a slot for which no such point was found (its latent is then the
            first start).
        trace: ``(num_steps,)`` best score found so far after each step (non-decreasing);
            the last entry includes the searcher's final evaluation.
        num_evaluations: objective evaluations spent (a value-and-gradient counts as one).
        num_gradient_evaluations: how many of those also computed a gradient.
        history: the :class:`SearchHistory` when ``search`` ran with ``history=True``,
            else ``None``.
    """

    latents: Float[Array, "keep D"]
    scores: Float[Array, " keep"]
    trace: Float[Array, " num_steps"]
    num_evaluations: Int[Array, ""]
    num_gradient_evaluations: Int[Array, ""]
    history: SearchHistory | None = None

    @property
    def best(self) -> Float[Array, "... D"]:
        """The best latent, ``latents[..., 0, :]``."""
        return self.latents[..., 0, :]


def evaluate(
    objective: Objective,
    points: Float[Array, "M D"],
    args: tuple = (),
    chunk_size: int | None = None,
) -> Float[Array, " M"]:
    """Scores many latents: ``objective(points[m], *args)`` for every row.

    Args:
        objective: ``objective(z, *args) -> scalar``.
        points: ``(M, D)`` latents.
        args: extra arguments passed unchanged to every call.
        chunk_size: if set, score ``chunk_size`` points at a time (``lax.map``) to bound
            memory; ``None`` scores all at once with ``vmap``.

    Example:
        >>> import jax.numpy as jnp
        >>> evaluate(lambda z, c: -jnp.sum((z - c) ** 2), jnp.eye(3), (1.0,)).tolist()
        [-2.0, -2.0, -2.0]
    """

    def one(z):
        return objective(z, *args)

    if chunk_size is None or chunk_size >= points.shape[0]:
        return jax.vmap(one)(points)
    return jax.lax.map(one, points, batch_size=chunk_size)


def no_preparation(state: Any, objective: Objective, args: tuple, key: PRNGKeyArray):
    """A ``prepare`` that scores nothing: for searchers whose first step scores the starts."""
    del objective, args, key
    return state, None


def _evaluations_or_none(ev: Evaluations | None) -> Evaluations | None:
    if ev is None or ev.points.shape[0] == 0:
        return None
    return ev


class _Best(NamedTuple):
    latents: Array  # (keep, D)
    scores: Array  # (keep,)


def _merge(best: _Best, ev: Evaluations) -> _Best:
    """Keeps the ``keep`` best distinct points of ``best`` and ``ev``.

    A point is never kept when its score is NaN or infinite, nor when the point itself has
    a NaN or infinite coordinate (an iterate that diverged), whatever its score.
    """
    new_points = ev.points.astype(best.latents.dtype)
    points = jnp.concatenate([best.latents, new_points], axis=0)
    scores = ev.scores.astype(best.scores.dtype)
    finite = jnp.isfinite(scores) & jnp.all(jnp.isfinite(new_points), axis=-1)
    scores = jnp.where(finite, scores, -jnp.inf)
    scores = jnp.concatenate([best.scores, scores], axis=0)
    keep = best.scores.shape[0]
    chosen_latents, chosen_scores = [], []
    for _ in range(keep):  # keep is small and static
        i = jnp.argmax(scores)
        point = points[i]
        chosen_latents.append(point)
        chosen_scores.append(scores[i])
        same = jnp.all(points == point, axis=-1)
        scores = jnp.where(same, -jnp.inf, scores)
    return _Best(jnp.stack(chosen_latents), jnp.stack(chosen_scores))


def _check_inputs(searcher, objective, z0, num_steps, keep, args):
    if not isinstance(searcher, Searcher):
        raise TypeError(
            f"searcher must be a latentsearch.Searcher (e.g. gradient_ascent(...)); "
            f"got {type(searcher).__name__}"
        )
    if not callable(objective):
        raise TypeError(f"objective must be callable; got {type(objective).__name__}")
    z0 = jnp.asarray(z0)
    if z0.ndim not in (1, 2) or z0.shape[-1] == 0 or (z0.ndim == 2 and z0.shape[0] == 0):
        raise ValueError(
            f"z0 must have shape (D,) for one start or (S, D) for S starts, with S, D >= 1; "
            f"got shape {z0.shape}"
        )
    if not jnp.issubdtype(z0.dtype, jnp.floating):
        raise TypeError(f"z0 must be a floating-point array; got dtype {z0.dtype}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int):
        raise TypeError(f"num_steps must be a Python int; got {num_steps!r}")
    if num_steps < 0:
        raise ValueError(f"num_steps must be >= 0; got {num_steps}")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep must be a positive int; got {keep!r}")
    if not isinstance(args, tuple):
        raise TypeError(f"args must be a tuple of extra objective arguments; got {type(args)}")
    z_one = jax.ShapeDtypeStruct(z0.shape[-1:], z0.dtype)
    try:
        out = jax.eval_shape(lambda z: objective(z, *args), z_one)
    except TypeError as err:
        raise TypeError(
            f"objective(z, *args) failed for z of shape {z_one.shape} and {len(args)} "
            f"extra argument(s): {err}"
        ) from err
    if not hasattr(out, "shape") or out.shape != ():
        shape = getattr(out, "shape", type(out).__name__)
        raise TypeError(
            f"objective(z, *args) must return a scalar for z of shape {z_one.shape}; got {shape}"
        )
    return z0 if z0.ndim == 2 else z0[None]


def _count_visited(searcher, objective, z0, args, num_steps, key) -> int:
    """Number of points the search will score, from shapes alone (no computation)."""

    def run(z0, key):
        k1, k2, k3 = jax.random.split(key, 3)
        state = searcher.init(z0, k1)
        total = 0
        if searcher.prepare is None:
            total += z0.shape[0]
        else:
            state, ev = searcher.prepare(state, objective, args, k2)
            total += 0 if ev is None else ev.points.shape[0]
        if num_steps:
            _, ev = searcher.step(state, objective, args, k3)
            total += num_steps * ev.points.shape[0]
        if searcher.finalize is not None:
            ev = searcher.finalize(state, objective, args)
            total += 0 if ev is None else ev.points.shape[0]
        return jnp.zeros((total,))

    return jax.eval_shape(run, z0, key).shape[0]


def search(
    searcher: Searcher,
    objective: Objective,
    z0: Float[ArrayLike, " D"] | Float[ArrayLike, "S D"],
    *,
    key: PRNGKeyArray,
    num_steps: int,
    args: tuple = (),
    keep: int = 2,
    target: float | ArrayLike | None = None,
    checkpoint: bool = False,
    history: bool = False,
) -> SearchResult:
    """Searches latent space for the points that maximise ``objective``.

    Runs the searcher's ``prepare``, ``num_steps`` steps under ``lax.scan`` (a fixed
    budget; jit-stable) and its ``finalize``, and returns the ``keep`` best distinct points
    among *everything* scored, the starts included. To batch over tasks, ``jax.vmap`` this
    function over ``z0``, ``key`` and ``args``: a task's result does not depend on the
    other tasks in the batch.

    Args:
        searcher: e.g. ``gradient_ascent(optax.adam(0.1, b2=0.9))``.
        objective: ``objective(z, *args) -> scalar`` log-likelihood to maximise, for one
            latent ``z`` of shape ``(D,)``.
        z0: one start ``(D,)`` or ``S`` starts ``(S, D)`` searched in parallel.
        key: PRNG key for stochastic searchers.
        num_steps: number of searcher steps ``K >= 0``.
        args: extra (traced) arguments of the objective, e.g. parameters and data.
        keep: number of best distinct points to return.
        target: optional score threshold: once the best score reaches it, the search
            stops updating (the trace stays flat) and stops counting evaluations.
        checkpoint: rematerialise each step in the backward pass (``jax.checkpoint``), so
            differentiating through the search costs memory that does not grow with the
            objective's activations times ``num_steps``.
        history: also record the best point and the evaluations spent after every step
            (:class:`SearchHistory`, ``num_steps + 1`` entries) in ``result.history``.

    Returns:
        A :class:`SearchResult`.

    Raises:
        ValueError: for a badly shaped ``z0``, a negative ``num_steps``, or ``keep`` larger
            than the number of points the search visits.
        TypeError: for a non-scalar objective or wrongly typed arguments.

    Example:
        >>> import jax, jax.numpy as jnp, optax, latentsearch as ls
        >>> objective = lambda z, c: -jnp.sum((z - c) ** 2)
        >>> result = ls.search(ls.gradient_ascent(optax.sgd(0.25)), objective, jnp.zeros(2),
        ...                    key=jax.random.key(0), num_steps=20, args=(jnp.ones(2),))
        >>> result.best.round(3).tolist(), int(result.num_evaluations)
        ([1.0, 1.0], 21)
    """
    z0 = _check_inputs(searcher, objective, z0, num_steps, keep, args)
    visited = _count_visited(searcher, objective, z0, args, num_steps, key)
    if keep > visited:
        raise ValueError(
            f"keep={keep} is larger than the {visited} points this search visits "
            f"(starts of shape {z0.shape}, num_steps={num_steps})"
        )
    if target is not None:
        target = jnp.asarray(target, dtype=jnp.result_type(float))
        if target.shape != ():
            raise ValueError(f"target must be a scalar; got shape {target.shape}")
    return _search(
        searcher, objective, z0, key, args, target, num_steps, keep, checkpoint, bool(history)
    )


@functools.partial(
    jax.jit,
    static_argnames=("searcher", "objective", "num_steps", "keep", "checkpoint", "history"),
)
def _search(searcher, objective, z0, key, args, target, num_steps, keep, checkpoint, history):
    k_init, k_prepare, k_steps = jax.random.split(key, 3)
    score_dtype = jnp.result_type(float)
    best = _Best(jnp.broadcast_to(z0[0], (keep,) + z0.shape[1:]), jnp.full((keep,), -jnp.inf))
    zero = jnp.zeros((), jnp.int32)
    state = searcher.init(z0, k_init)

    if searcher.prepare is None:
        ev = Evaluations(z0, evaluate(objective, z0, args), 0)
    else:
        state, ev = searcher.prepare(state, objective, args, k_prepare)
    ev = _evaluations_or_none(ev)
    evals, grads = zero, zero
    if ev is not None:
        best = _merge(best, ev)
        evals, grads = evals + ev.points.shape[0], grads + ev.num_gradients

    def active(best):
        if target is None:
            return jnp.bool_(True)
        return best.scores[0] < target

    def one_step(carry, step_key):
        state, best, evals, grads = carry
        state, ev = searcher.step(state, objective, args, step_key)
        best = _merge(best, ev)
        return state, best, evals + ev.points.shape[0], grads + ev.num_gradients

    if checkpoint:
        one_step = jax.checkpoint(one_step, prevent_cse=False)

    def body(carry, step_key):
        if target is None:
            carry = one_step(carry, step_key)
        else:
            carry = jax.lax.cond(active(carry[1]), one_step, lambda c, k: c, carry, step_key)
        score = carry[1].scores[0].astype(score_dtype)
        if history:
            return carry, (score, carry[1].latents[0], carry[2])
        return carry, score

    def snapshot(best, evals):
        return best.latents[0][None], best.scores[0].astype(score_dtype)[None], evals[None]

    start = snapshot(best, evals)
    keys = jax.random.split(k_steps, num_steps)
    (state, best, evals, grads), ys = jax.lax.scan(body, (state, best, evals, grads), keys)
    if history:
        trace, path_latents, path_evals = ys
        path = (
            jnp.concatenate([start[0], path_latents]),
            jnp.concatenate([start[1], trace]),
            jnp.concatenate([start[2], path_evals]),
        )
    else:
        trace = ys

    if searcher.finalize is not None:

        def final(carry):
            state, best, evals, grads = carry
            ev = _evaluations_or_none(searcher.finalize(state, objective, args))
            if ev is None:
                return carry
            best = _merge(best, ev)
            return state, best, evals + ev.points.shape[0], grads + ev.num_gradients

        carry = (state, best, evals, grads)
        if target is None:
            carry = final(carry)
        else:
            carry = jax.lax.cond(active(best), final, lambda c: c, carry)
        state, best, evals, grads = carry
        if num_steps:
            trace = trace.at[-1].set(best.scores[0].astype(score_dtype))
        if history:
            last = snapshot(best, evals)
            path = tuple(p.at[-1].set(v[0]) for p, v in zip(path, last, strict=True))

    recorded = SearchHistory(*path) if history else None
    return SearchResult(best.latents, best.scores, trace, evals, grads, recorded)
