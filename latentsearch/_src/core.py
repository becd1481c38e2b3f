"""The searcher protocol, the search driver and its result.

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
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, PyTree

from latentsearch._src import flows as flows_lib
from latentsearch._src.latents import LatentLayout

__all__ = [
    "Evaluations",
    "Objective",
    "SearchHistory",
    "SearchResult",
    "Searcher",
    "best_distinct",
    "evaluate",
    "search",
]

Objective = Callable[..., Float[Array, ""]]
"""``objective(z, *args) -> scalar``: the log-likelihood to maximise, for one latent ``z``."""


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["points", "scores"],
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

    Example:
        >>> import jax.numpy as jnp
        >>> ev = Evaluations(jnp.zeros((3, 2)), jnp.array([0.0, 1.0, 2.0]), num_gradients=3)
        >>> ev.num_gradients, ev.points.shape
        (3, (3, 2))
    """

    points: Float[Array, "M D"]
    scores: Float[Array, " M"]
    num_gradients: int = 0

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
    """

    latents: Float[Array, "keep D"] | PyTree
    scores: Float[Array, " keep"]
    trace: Float[Array, " num_steps"]
    num_evaluations: Int[Array, ""]
    num_gradient_evaluations: Int[Array, ""]
    history: SearchHistory | None = None

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


class _Best(NamedTuple):
    latents: Array  # (keep, D)
    scores: Array  # (keep,)


def _merge(best: _Best, ev: Evaluations | None) -> _Best:
    """Keeps the ``keep`` best distinct points of ``best`` and ``ev``."""
    if ev is None or ev.points.shape[0] == 0:
        return best
    points = jnp.concatenate([best.latents, ev.points.astype(best.latents.dtype)], axis=0)
    scores = jnp.concatenate([best.scores, ev.scores.astype(best.scores.dtype)], axis=0)
    return _Best(*best_distinct(points, scores, best.scores.shape[0]))


def _count(ev: Evaluations | None) -> tuple[int, int]:
    """``(evaluations, gradients)`` of one ``Evaluations`` (static)."""
    return (0, 0) if ev is None else (ev.points.shape[0], ev.num_gradients)


def _check_searcher(searcher: Any) -> None:
    if not isinstance(searcher, Searcher):
        raise TypeError(
            f"searcher must be a latentsearch.Searcher (e.g. gradient_ascent(...)); "
            f"got {type(searcher).__name__}"
        )
    for name in ("prepare", "finalize"):
        function = getattr(searcher, name)
        if function is not None and not callable(function):
            raise TypeError(f"Searcher.{name} must be callable or None; got {function!r}")
    if not isinstance(searcher.score_starts, bool):
        raise TypeError(f"Searcher.score_starts must be a bool; got {searcher.score_starts!r}")


def _check_inputs(searcher, objective, z0, keep, args):
    _check_searcher(searcher)
    if not callable(objective):
        raise TypeError(f"objective must be callable; got {type(objective).__name__}")
    if z0.ndim != 2 or z0.shape[-1] == 0 or z0.shape[0] == 0:
        raise ValueError(
            f"z0 must have shape (D,) for one start or (S, D) for S starts, with S, D >= 1; "
            f"got shape {z0.shape}"
        )
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


def evaluations_per_phase(
    searcher: Searcher, objective: Objective, z0: Array, args: tuple, key: PRNGKeyArray
) -> tuple[int, int, int]:
    """``(before, per_step, after)``: evaluations before the steps (the starts and
    ``prepare``), per step and in ``finalize``, from shapes alone (no computation)."""

    def phases(z0, key):
        k1, k2, k3 = jax.random.split(key, 3)
        state = searcher.init(z0, k1)
        before = z0.shape[0] if searcher.score_starts else 0
        if searcher.prepare is not None:
            state, ev = searcher.prepare(state, objective, args, k2)
            before += _count(ev)[0]
        _, ev = searcher.step(state, objective, args, k3)
        per_step = _count(ev)[0]
        after = (
            0 if searcher.finalize is None else _count(searcher.finalize(state, objective, args))[0]
        )
        return jnp.zeros((before,)), jnp.zeros((per_step,)), jnp.zeros((after,))

    return tuple(x.shape[0] for x in jax.eval_shape(phases, z0, key))


def _resolve_steps(searcher, objective, z0, args, key, num_steps, max_evaluations) -> int:
    """``num_steps`` itself, or the most steps that fit in ``max_evaluations``."""
    if (num_steps is None) == (max_evaluations is None):
        raise ValueError(
            "give exactly one of num_steps (searcher iterations) and max_evaluations "
            f"(objective evaluations); got num_steps={num_steps!r}, "
            f"max_evaluations={max_evaluations!r}"
        )
    if num_steps is not None:
        if isinstance(num_steps, bool) or not isinstance(num_steps, int):
            raise TypeError(f"num_steps must be a Python int; got {num_steps!r}")
        if num_steps < 0:
            raise ValueError(f"num_steps must be >= 0; got {num_steps}")
        return num_steps
    if isinstance(max_evaluations, bool) or not isinstance(max_evaluations, int):
        raise TypeError(f"max_evaluations must be a Python int; got {max_evaluations!r}")
    before, per_step, after = evaluations_per_phase(searcher, objective, z0, args, key)
    if max_evaluations < before + after:
        raise ValueError(
            f"max_evaluations={max_evaluations} is smaller than the {before + after} "
            f"evaluations this searcher spends outside its steps (starts of shape "
            f"{z0.shape}: {before} before, {after} after)"
        )
    if per_step == 0:
        raise ValueError("max_evaluations needs a searcher whose step scores at least one point")
    return (max_evaluations - before - after) // per_step


def search(
    searcher: Searcher,
    objective: Objective,
    z0: Float[ArrayLike, " D"] | Float[ArrayLike, "S D"] | PyTree,
    *,
    key: PRNGKeyArray,
    num_steps: int | None = None,
    max_evaluations: int | None = None,
    args: tuple = (),
    keep: int = 2,
    target: float | ArrayLike | None = None,
    gradient_flow: flows_lib.GradientFlow | None = None,
    history: bool = False,
    stacked: bool = False,
) -> SearchResult:
    """Searches latent space for the points that maximise ``objective``.

    Scores the starts (unless the searcher does), runs the searcher's ``prepare``, its
    steps under ``lax.scan`` (a fixed budget; jit-stable) and its ``finalize``, and returns
    the ``keep`` best distinct points among *everything* scored, the starts included. To
    batch over tasks, ``jax.vmap`` this function over ``z0``, ``key`` and ``args``: a task's
    result does not depend on the other tasks in the batch.

    Args:
        searcher: e.g. ``gradient_ascent(optax.adam(0.1, b2=0.9))``.
        objective: ``objective(z, *args) -> scalar`` log-likelihood to maximise, for one
            latent ``z`` (an array ``(D,)``, or a pytree like ``z0``).
        z0: one start ``(D,)``, ``S`` starts ``(S, D)`` searched in parallel, or a pytree
            of floating arrays (a latent made of named parts; one start unless
            ``stacked``). Results come back in the same structure.
        key: PRNG key for stochastic searchers.
        num_steps: number of searcher steps ``K >= 0``.
        max_evaluations: instead of ``num_steps``: the most steps whose objective
            evaluations (starts, ``prepare``, steps and ``finalize``) fit in this budget,
            so searchers of different costs compare at equal budgets.
        args: extra (traced) arguments of the objective, e.g. parameters and data.
        keep: number of best distinct points to return (slots beyond the points visited
            get the score ``-inf``).
        target: optional score threshold: once the best score reaches it, the search
            stops updating (the trace stays flat) and stops counting evaluations.
        gradient_flow: how derivatives go through the search: :class:`Unrolled`
            (the default: through every step), :class:`StopGradient` or
            :class:`Implicit`.
        history: also record the best point and the evaluations spent after every step
            (:class:`SearchHistory`, ``num_steps + 1`` entries) in ``result.history``.
        stacked: for a pytree ``z0``: its leaves carry a leading axis of ``S`` starts.

    Returns:
        A :class:`SearchResult`.

    Raises:
        ValueError: for a badly shaped ``z0``, a negative ``num_steps``, both or neither of
            ``num_steps`` and ``max_evaluations``, or a budget too small for the searcher.
        TypeError: for a non-scalar objective or wrongly typed arguments.

    Example:
        >>> import jax, jax.numpy as jnp, optax, latentsearch as ls
        >>> objective = lambda z, c: -jnp.sum((z - c) ** 2)
        >>> result = ls.search(ls.gradient_ascent(optax.sgd(0.25)), objective, jnp.zeros(2),
        ...                    key=jax.random.key(0), num_steps=20, args=(jnp.ones(2),))
        >>> result.best.round(3).tolist(), int(result.num_evaluations)
        ([1.0, 1.0], 21)
        >>> part = lambda z, c: -jnp.sum((z["w"] - c) ** 2) - (z["b"] + 1.0) ** 2
        >>> r = ls.search(ls.gradient_ascent(optax.sgd(0.25)), part,
        ...               {"w": jnp.zeros(2), "b": jnp.zeros(())}, key=jax.random.key(0),
        ...               max_evaluations=31, args=(jnp.ones(2),))
        >>> r.best["w"].round(3).tolist(), round(float(r.best["b"]), 3), int(r.num_evaluations)
        ([1.0, 1.0], -1.0, 31)
    """
    layout = LatentLayout.of(z0, stacked=stacked)
    flat_z0 = layout.ravel_starts(z0)
    flat_objective = layout.flat_objective(objective)
    _check_inputs(searcher, flat_objective, flat_z0, keep, args)
    num_steps = _resolve_steps(
        searcher, flat_objective, flat_z0, args, key, num_steps, max_evaluations
    )
    if target is not None:
        target = jnp.asarray(target, dtype=jnp.result_type(float))
        if target.shape != ():
            raise ValueError(f"target must be a scalar; got shape {target.shape}")
    flow = flows_lib.Unrolled() if gradient_flow is None else gradient_flow
    flows_lib.check_flow(flow)

    def run(starts, run_args, checkpoint):
        return _search(
            searcher,
            flat_objective,
            starts,
            key,
            run_args,
            target,
            num_steps,
            keep,
            checkpoint,
            bool(history),
        )

    result = flow.apply(run, flat_objective, flat_z0, args)
    if layout.is_flat:
        return result
    recorded = result.history
    if recorded is not None:
        recorded = recorded._replace(best_latents=layout.unravel_many(recorded.best_latents))
    return result._replace(latents=layout.unravel_many(result.latents), history=recorded)


@functools.partial(
    jax.jit,
    static_argnames=("searcher", "objective", "num_steps", "keep", "checkpoint", "history"),
)
def _search(searcher, objective, z0, key, args, target, num_steps, keep, checkpoint, history):
    k_init, k_prepare, k_steps = jax.random.split(key, 3)
    score_dtype = jnp.result_type(float)
    best = _Best(jnp.broadcast_to(z0[0], (keep,) + z0.shape[1:]), jnp.full((keep,), -jnp.inf))
    state = searcher.init(z0, k_init)
    evals, grads = 0, 0

    def spend(best, evals, grads, ev):
        count, gradients = _count(ev)
        return _merge(best, ev), evals + count, grads + gradients

    if searcher.score_starts:
        best, evals, grads = spend(
            best, evals, grads, Evaluations(z0, evaluate(objective, z0, args))
        )
    if searcher.prepare is not None:
        state, ev = searcher.prepare(state, objective, args, k_prepare)
        best, evals, grads = spend(best, evals, grads, ev)
    evals, grads = jnp.asarray(evals, jnp.int32), jnp.asarray(grads, jnp.int32)

    def active(best):
        if target is None:
            return jnp.bool_(True)
        return best.scores[0] < target

    def one_step(carry, step_key):
        state, best, evals, grads = carry
        state, ev = searcher.step(state, objective, args, step_key)
        return (state, *spend(best, evals, grads, ev))

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
            return (state, *spend(best, evals, grads, searcher.finalize(state, objective, args)))

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
