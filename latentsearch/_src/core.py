"""The searcher protocol and what searches return (the driver is :mod:`.driver`).

A *searcher* is a NamedTuple of pure functions, in the style of an optax
``GradientTransformation``:

- ``init(z0, key) -> state`` with the starts ``z0`` of shape ``(S, D)``;
- ``step(state, objective, args, key) -> (state, Evaluations)``: one iteration, returning
  the points it scored (and their scores) so that the driver can keep the best ones;
- ``prepare(state, objective, args, key) -> (state, Evaluations | None)``, optional: work
  done once before the steps (e.g. a sampling phase);
- ``finalize(state, objective, args) -> Evaluations | None``, optional: scores points the
  last step moved to but did not score (the final iterate of gradient ascent);
- ``score_starts``: whether the driver scores the starts itself before ``prepare``
  (``True``, the default, so the starts are always candidates). A searcher whose first
  ``step`` or whose ``prepare`` already scores its starts sets it to ``False`` to avoid
  paying for them twice.

The driver :func:`search` scores the starts (if asked), runs ``prepare``, ``num_steps``
steps under ``lax.scan`` and ``finalize``, and keeps the ``keep`` best *distinct* points over
everything scored (:func:`best_distinct`). Searchers work on flat latents ``(S, D)``; a
pytree latent is flattened and restored by the driver.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

__all__ = [
    "AuxObjective",
    "Evaluations",
    "Objective",
    "SearchHistory",
    "SearchResult",
    "Searcher",
    "best_distinct",
    "concat_evaluations",
    "evaluate",
    "scored",
    "value_grad_aux",
]

Objective = Callable[..., Float[Array, ""]]
"""``objective(z, *args) -> scalar``: the log-likelihood to maximise, for one latent ``z``."""


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["points", "scores", "aux"],
    meta_fields=["num_gradients"],
)
@dataclasses.dataclass(frozen=True)
class Evaluations:
    """Points a searcher scored in one step (a pytree: ``num_gradients`` is static).

    Attributes:
        points: ``(M, D)`` latents.
        scores: ``(M,)`` objective values (a non-finite value, or a point with a non-finite
            coordinate, is never kept as a best point).
        num_gradients: a Python ``int``: how many of the ``M`` evaluations also computed a
            gradient (known from shapes, so it never depends on data).
        aux: for an objective with auxiliary output (``search(..., has_aux=True)``), its
            output at each point, leaves with a leading ``M`` axis (:func:`scored` and
            :func:`value_grad_aux` fill it); ``None`` otherwise.

    Example:
        >>> import jax.numpy as jnp
        >>> ev = Evaluations(jnp.zeros((3, 2)), jnp.array([0.0, 1.0, 2.0]), num_gradients=3)
        >>> ev.num_gradients, ev.points.shape
        (3, (3, 2))
    """

    points: Float[Array, "M D"]
    scores: Float[Array, " M"]
    num_gradients: int = 0
    aux: Any = None

    def __post_init__(self):
        count = self.num_gradients
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise TypeError(
                f"Evaluations.num_gradients must be a non-negative Python int (known from "
                f"shapes); got {count!r}"
            )


class Searcher(NamedTuple):
    """A latent searcher: pure ``init``/``step``, optional ``prepare``/``finalize``.

    See the module docstring of the driver (and :doc:`/howto/custom_searcher`) for the
    contract of each function, and :func:`latentsearch.gradient_ascent` for a complete
    example.

    Attributes:
        init: ``init(z0, key) -> state`` for starts ``z0`` of shape ``(S, D)``.
        step: ``step(state, objective, args, key) -> (state, Evaluations)``.
        prepare: ``prepare(state, objective, args, key) -> (state, Evaluations | None)``,
            run once before the steps, or ``None``.
        finalize: ``finalize(state, objective, args) -> Evaluations | None``, run once
            after the steps, or ``None``.
        score_starts: ``True``: the driver scores the starts before ``prepare``;
            ``False``: the searcher scores them itself (in its first step or in
            ``prepare``).
    """

    init: Callable[[Array, PRNGKeyArray], Any]
    step: Callable[[Any, Objective, tuple, PRNGKeyArray], tuple[Any, Evaluations]]
    prepare: (
        Callable[[Any, Objective, tuple, PRNGKeyArray], tuple[Any, Evaluations | None]] | None
    ) = None
    finalize: Callable[[Any, Objective, tuple], Evaluations | None] | None = None
    score_starts: bool = True


class SearchHistory(NamedTuple):
    """The path of a search, recorded by ``search(..., history=True)``.

    Entry 0 is the state after ``prepare`` (the starts scored), entry ``k`` the state after
    step ``k``; the last entry includes the searcher's ``finalize``. Reading it at a budget
    ``b`` (the last entry with ``evaluations <= b``) gives what a search stopped after ``b``
    evaluations would have returned, which is how accuracy-versus-budget curves are made
    from one run.

    Attributes:
        best_latents: ``(num_steps + 1, D)`` the best point found so far (for a pytree
            latent: the same pytree with a leading axis of ``num_steps + 1``).
        best_scores: ``(num_steps + 1,)`` its score (non-decreasing).
        evaluations: ``(num_steps + 1,)`` objective evaluations spent so far.
    """

    best_latents: Float[Array, "steps D"] | PyTree
    best_scores: Float[Array, " steps"]
    evaluations: Int[Array, " steps"]


class SearchResult(NamedTuple):
    """What :func:`search` returns (a pytree, so it batches under ``jax.vmap``).

    Attributes:
        latents: ``(keep, D)`` the best distinct points visited, best first (for a pytree
            latent: the same pytree, each leaf with a leading axis of ``keep``).
        scores: ``(keep,)`` their objective values, descending, finite or ``-inf``: NaN and
            infinite scores, and points with a non-finite coordinate, are never kept.
            ``-inf`` marks a slot for which no such point was found, e.g. when ``keep`` is
            larger than the number of points visited (its latent is then the best point,
            or the first start).
        trace: ``(num_steps,)`` best score found so far after each step (non-decreasing);
            the last entry includes the searcher's final evaluation.
        num_evaluations: objective evaluations spent (a value-and-gradient counts as one).
        num_gradient_evaluations: how many of those also computed a gradient.
        history: the :class:`SearchHistory` when ``search`` ran with ``history=True``,
            else ``None``.
        stopped: whether the search ended early, at a point where ``stop`` (or ``target``)
            held; ``False`` when neither was given.
    """

    latents: Float[Array, "keep D"] | PyTree
    scores: Float[Array, " keep"]
    trace: Float[Array, " num_steps"]
    num_evaluations: Int[Array, ""]
    num_gradient_evaluations: Int[Array, ""]
    history: SearchHistory | None = None
    stopped: Any = False

    @property
    def best(self) -> Float[Array, "... D"] | PyTree:
        """The best latent: ``latents[..., 0, :]`` (the first of the ``keep`` axis, which
        follows any batch axes of ``scores``)."""
        batch = self.scores.ndim - 1
        return jax.tree_util.tree_map(lambda x: x[(slice(None),) * batch + (0,)], self.latents)


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


class AuxObjective(NamedTuple):
    """An objective returning ``(value, aux)``, seen by searchers as the value alone.

    The driver hands it to searchers when ``has_aux=True``: calling it gives the scalar
    (so any searcher works unchanged), and :func:`scored` and :func:`value_grad_aux`, which
    the built-in searchers use, keep the auxiliary output of the same evaluation, so
    stopping on it costs no extra evaluation.
    """

    objective: Callable

    def __call__(self, z, *args):
        return self.objective(z, *args)[0]

    def with_aux(self, z, *args):
        return self.objective(z, *args)


def scored(
    objective: Objective, points: Float[Array, "M D"], args: tuple = (), chunk_size=None
) -> Evaluations:
    """``Evaluations`` of ``points`` (no gradients), with the objective's auxiliary output
    when it has one: what a searcher returns for the points it scored.

    Example:
        >>> import jax.numpy as jnp
        >>> ev = scored(lambda z: -jnp.sum(z**2), jnp.ones((2, 3)))
        >>> ev.scores.tolist(), ev.aux is None
        ([-3.0, -3.0], True)
    """
    if isinstance(objective, AuxObjective):
        values, aux = evaluate(objective.with_aux, points, args, chunk_size)
        return Evaluations(points, values, 0, aux)
    return Evaluations(points, evaluate(objective, points, args, chunk_size), 0)


def value_grad_aux(
    objective: Objective, points: Float[Array, "M D"], args: tuple = ()
) -> tuple[Array, Array, Any]:
    """``(values (M,), gradients (M, D), aux or None)`` of the objective at each point."""
    if isinstance(objective, AuxObjective):
        grad_fn = jax.value_and_grad(lambda z: objective.with_aux(z, *args), has_aux=True)
        (values, aux), grads = jax.vmap(grad_fn)(points)
        return values, grads, aux
    values, grads = jax.vmap(jax.value_and_grad(lambda z: objective(z, *args)))(points)
    return values, grads, None


def concat_evaluations(evs: list[Evaluations | None]) -> Evaluations:
    """One ``Evaluations`` of several (``None`` and empty ones skipped)."""
    evs = [ev for ev in evs if ev is not None and ev.points.shape[0] > 0]
    aux = None
    if all(ev.aux is not None for ev in evs):
        aux = jax.tree.map(lambda *xs: jnp.concatenate(xs), *(ev.aux for ev in evs))
    return Evaluations(
        jnp.concatenate([ev.points for ev in evs]),
        jnp.concatenate([ev.scores for ev in evs]),
        sum(ev.num_gradients for ev in evs),
        aux,
    )


def best_distinct(
    points: Float[Array, "M D"], scores: Float[Array, " M"], k: int
) -> tuple[Float[Array, "k D"], Float[Array, " k"]]:
    """The ``k`` best distinct points, best first (a top-k that skips repeats).

    A point is never chosen when its score is NaN or infinite, nor when it has a NaN or
    infinite coordinate. Slots beyond the distinct finite points get the score ``-inf`` and
    repeat the best point (``points[0]`` when none is finite). This is how the driver keeps
    its best points, and what a searcher that picks points (e.g. :func:`hybrid`) can use.

    Args:
        points: ``(M, D)`` candidates.
        scores: ``(M,)`` their scores (higher is better).
        k: how many points to return (a Python int >= 1, may exceed ``M``).

    Returns:
        ``(latents (k, D), scores (k,))``.

    Example:
        >>> import jax.numpy as jnp
        >>> points = jnp.array([[0.0], [1.0], [1.0], [2.0]])
        >>> latents, top = best_distinct(points, jnp.array([0.5, 3.0, 3.0, jnp.nan]), 3)
        >>> latents[:, 0].tolist(), top.tolist()
        ([1.0, 0.0, 1.0], [3.0, 0.5, -inf])
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int; got {k!r}")
    finite = jnp.isfinite(scores) & jnp.all(jnp.isfinite(points), axis=-1)
    scores = jnp.where(finite, scores, -jnp.inf)
    chosen_latents, chosen_scores = [], []
    for _ in range(k):  # k is small and static
        i = jnp.argmax(scores)
        point = points[i]
        chosen_latents.append(point)
        chosen_scores.append(scores[i])
        scores = jnp.where(jnp.all(points == point, axis=-1), -jnp.inf, scores)
    latents = jnp.stack(chosen_latents)
    top = jnp.stack(chosen_scores)
    latents = jnp.where(jnp.isfinite(top)[:, None], latents, latents[0])
    return latents, top
