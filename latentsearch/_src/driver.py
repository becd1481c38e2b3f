"""The search driver: :func:`search`, and its step-wise form.

``search`` is ``search_init``, a loop of ``search_step`` and ``search_finish`` (the pattern
of optimistix's solvers), compiled as one program; run step by step, the same points are
visited and counted, and scores agree up to floating-point rounding (XLA may fuse the
objective differently in one program and in separate steps):

- :func:`search_init` scores the starts (unless the searcher does), runs the searcher's
  ``prepare`` and returns a :class:`SearchState`;
- :func:`search_step` runs one searcher step and keeps the ``keep`` best distinct points of
  everything scored (:func:`~latentsearch.best_distinct`);
- :func:`search_finish` runs the searcher's ``finalize`` and returns the
  :class:`~latentsearch.SearchResult`.

**Per-task stopping.** With ``stop(value, aux) -> bool`` (``aux`` the objective's auxiliary
output when ``has_aux=True``, else ``None``), every new point is checked; when it holds for
a point, that task's search ends there: no further step, no ``finalize``, no further
evaluation counted. The point where it held is returned first (its score in
``scores[0]``; if several points of one step qualify, the best of them), followed by the
``keep - 1`` best distinct other points found. ``target`` is the stop ``value >= target``.
Under ``jax.vmap`` a task's result never depends on its batch-mates, and the compiled loop
ends when every task of the batch has stopped, so stopping saves time, not only counts.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from latentsearch._src import flows as flows_lib
from latentsearch._src.core import (
    AuxObjective,
    Evaluations,
    Objective,
    Searcher,
    SearchHistory,
    SearchResult,
    best_distinct,
    scored,
)
from latentsearch._src.latents import LatentLayout

__all__ = ["SearchState", "search", "search_finish", "search_init", "search_step"]

Stop = Callable[[Array, Any], Array]
"""``stop(value, aux) -> bool`` for one point (``aux`` is None without ``has_aux``)."""


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=[
        "searcher_state", "best_latents", "best_scores", "stop_latent", "stop_score",
        "stopped", "target", "num_evaluations", "num_gradients", "step", "step_keys", "trace",
        "path_latents", "path_scores", "path_evaluations",
    ],
    meta_fields=["num_steps", "keep", "has_aux", "stop", "history", "layout"],
)  # fmt: skip
@dataclasses.dataclass(frozen=True)
class SearchState:
    """A search between steps (a pytree; see :func:`search_init`).

    Attributes:
        searcher_state: the searcher's own state.
        best_latents: ``(keep, D)`` the best distinct flat points so far, best first.
        best_scores: ``(keep,)`` their scores (``-inf`` for empty slots).
        stop_latent: ``(D,)`` the point where ``stop`` held (meaningful once ``stopped``).
        stop_score: its score.
        stopped: whether ``stop`` has held.
        target: the ``target`` score (unused without one).
        num_evaluations: objective evaluations spent.
        num_gradients: how many of them also computed a gradient.
        step: searcher steps taken.
        step_keys: one PRNG key per step.
        trace: ``(num_steps,)`` the best score after each step taken (then repeated).
        path_latents, path_scores, path_evaluations: with ``history``, the best point,
            its score and the evaluations spent after the starts and after each step.
        num_steps, keep, has_aux, stop, history, layout: the search's fixed settings.
    """

    searcher_state: Any
    best_latents: Array
    best_scores: Array
    stop_latent: Array
    stop_score: Array
    stopped: Array
    target: Array
    num_evaluations: Array
    num_gradients: Array
    step: Array
    step_keys: Array
    trace: Array
    path_latents: Array | None
    path_scores: Array | None
    path_evaluations: Array | None
    num_steps: int
    keep: int
    has_aux: bool
    stop: _Stops | None
    history: bool
    layout: LatentLayout


class _Stops(NamedTuple):
    """The stop rule: the user's ``stop`` and ``value >= target`` (either ends a task).
    Hashable, so one compilation serves every call with the same rule."""

    stop: Stop | None
    has_target: bool

    def __call__(self, value, aux, target):
        hit = jnp.bool_(False)
        if self.stop is not None:
            hit = hit | jnp.asarray(self.stop(value, aux), bool)
        if self.has_target:
            hit = hit | (value >= target)
        return hit


def _spend(state: SearchState, ev: Evaluations | None, objective, args) -> SearchState:
    """Keeps the best distinct points of ``state`` and ``ev``, counts ``ev`` and checks the
    stop rule at its points."""
    if ev is None or ev.points.shape[0] == 0:
        return state
    points = jnp.concatenate([state.best_latents, ev.points.astype(state.best_latents.dtype)])
    scores = jnp.concatenate([state.best_scores, ev.scores.astype(state.best_scores.dtype)])
    best, top = best_distinct(points, scores, state.keep)
    state = dataclasses.replace(
        state,
        best_latents=best,
        best_scores=top,
        num_evaluations=state.num_evaluations + ev.points.shape[0],
        num_gradients=state.num_gradients + ev.num_gradients,
    )
    if state.stop is None:
        return state
    aux = ev.aux
    if state.has_aux and aux is None:  # a searcher that did not keep it: evaluate again
        aux = scored(objective, ev.points, args).aux
    hits = jax.vmap(lambda v, a: state.stop(v, a, state.target))(ev.scores, aux)
    hits = hits & jnp.isfinite(ev.scores) & jnp.all(jnp.isfinite(ev.points), axis=-1)
    first = jnp.argmax(jnp.where(hits, ev.scores, -jnp.inf))
    new = jnp.any(hits) & ~state.stopped
    return dataclasses.replace(
        state,
        stopped=state.stopped | jnp.any(hits),
        stop_latent=jnp.where(new, ev.points[first].astype(best.dtype), state.stop_latent),
        stop_score=jnp.where(new, ev.scores[first].astype(top.dtype), state.stop_score),
    )


def _record(state: SearchState, index: Array) -> SearchState:
    """Writes the best score (and, with ``history``, the path) after step ``index``."""
    score = state.best_scores[0]
    state = dataclasses.replace(state, trace=state.trace.at[index].set(score))
    if not state.history:
        return state
    return dataclasses.replace(
        state,
        path_latents=state.path_latents.at[index + 1].set(state.best_latents[0]),
        path_scores=state.path_scores.at[index + 1].set(score),
        path_evaluations=state.path_evaluations.at[index + 1].set(state.num_evaluations),
    )


def _prepared(searcher, objective, z0, key, args, target, settings) -> SearchState:
    """The state after the starts are scored and ``prepare`` has run."""
    num_steps, keep, has_aux, stop, history, layout = settings
    k_init, k_prepare, k_steps = jax.random.split(key, 3)
    dtype = jnp.result_type(float)
    state = SearchState(
        searcher_state=searcher.init(z0, k_init),
        best_latents=jnp.broadcast_to(z0[0], (keep,) + z0.shape[1:]),
        best_scores=jnp.full((keep,), -jnp.inf, dtype),
        stop_latent=z0[0],
        stop_score=jnp.asarray(-jnp.inf, dtype),
        stopped=jnp.bool_(False),
        target=jnp.asarray(jnp.inf if target is None else target, dtype),
        num_evaluations=jnp.int32(0),
        num_gradients=jnp.int32(0),
        step=jnp.int32(0),
        step_keys=jax.random.split(k_steps, max(num_steps, 1)),  # one spare without steps
        trace=jnp.zeros((num_steps,), dtype),
        path_latents=None, path_scores=None, path_evaluations=None,
        num_steps=num_steps, keep=keep, has_aux=has_aux, stop=stop, history=history,
        layout=layout,
    )  # fmt: skip
    if searcher.score_starts:
        state = _spend(state, scored(objective, z0, args), objective, args)
    if searcher.prepare is not None:
        searcher_state, ev = searcher.prepare(state.searcher_state, objective, args, k_prepare)
        state = _spend(
            dataclasses.replace(state, searcher_state=searcher_state), ev, objective, args
        )
    if history:
        n = num_steps + 1
        state = dataclasses.replace(
            state,
            path_latents=jnp.broadcast_to(state.best_latents[0], (n,) + z0.shape[1:]),
            path_scores=jnp.full((n,), state.best_scores[0]),
            path_evaluations=jnp.full((n,), state.num_evaluations),
        )
    return state


def _step(searcher, objective, state: SearchState, args) -> SearchState:
    """One searcher step (unconditionally)."""
    key = state.step_keys[state.step]
    searcher_state, ev = searcher.step(state.searcher_state, objective, args, key)
    state = dataclasses.replace(state, searcher_state=searcher_state)
    state = _spend(state, ev, objective, args)
    return dataclasses.replace(_record(state, state.step), step=state.step + 1)


def _active(state: SearchState) -> Array:
    return (state.step < state.num_steps) & ~state.stopped


def _finished(searcher, objective, state: SearchState, args) -> SearchResult:
    """``finalize`` (unless stopped) and the result, in flat latents."""
    if searcher.finalize is not None:

        def final(state):
            ev = searcher.finalize(state.searcher_state, objective, args)
            return _spend(state, ev, objective, args)

        if state.stop is None:
            state = final(state)
        else:
            state = jax.lax.cond(state.stopped, lambda s: s, final, state)
    taken = state.step  # the trace and the path repeat their final entry after a stop
    trace = jnp.where(jnp.arange(state.num_steps) < taken - 1, state.trace, state.best_scores[0])
    latents, scores = state.best_latents, state.best_scores
    if state.stop is not None:  # the stopping point first, then the best others
        forced = jnp.concatenate([jnp.where(state.stopped, jnp.inf, -jnp.inf)[None], scores])
        points = jnp.concatenate([state.stop_latent[None], latents])
        latents, ranked = best_distinct(points, forced, state.keep)
        scores = jnp.where(jnp.isposinf(ranked), state.stop_score, ranked)
    recorded = None
    if state.history:
        final = (state.best_latents[0], state.best_scores[0], state.num_evaluations)
        paths = (state.path_latents, state.path_scores, state.path_evaluations)
        recorded = SearchHistory(*(_fill(p, v, taken) for p, v in zip(paths, final, strict=True)))
    return SearchResult(
        latents, scores, trace, state.num_evaluations, state.num_gradients, recorded,
        state.stopped,
    )  # fmt: skip


def _fill(path: Array, final: Array, from_index: Array) -> Array:
    """``path`` with every entry from ``from_index`` on replaced by ``final``."""
    later = jnp.arange(path.shape[0]) >= from_index
    return jnp.where(later.reshape((-1,) + (1,) * (path.ndim - 1)), final, path)


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


def _check_inputs(searcher, objective, z0, keep, args, has_aux, stop):
    _check_searcher(searcher)
    if not callable(objective):
        raise TypeError(f"objective must be callable; got {type(objective).__name__}")
    if stop is not None and not callable(stop):
        raise TypeError(f"stop must be a callable (value, aux) -> bool; got {stop!r}")
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
    call = objective.with_aux if has_aux else objective
    try:
        out = jax.eval_shape(lambda z: call(z, *args), z_one)
    except TypeError as err:
        raise TypeError(
            f"objective(z, *args) failed for z of shape {z_one.shape} and {len(args)} "
            f"extra argument(s): {err}"
        ) from err
    if has_aux and not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError("with has_aux=True, objective(z, *args) must return (value, aux)")
    value = out[0] if has_aux else out
    if not hasattr(value, "shape") or value.shape != ():
        shape = getattr(value, "shape", type(value).__name__)
        raise TypeError(
            f"objective(z, *args) must return a scalar for z of shape {z_one.shape}; got {shape}"
        )


def _count(ev: Evaluations | None) -> int:
    return 0 if ev is None else ev.points.shape[0]


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
            before += _count(ev)
        _, ev = searcher.step(state, objective, args, k3)
        after = (
            0 if searcher.finalize is None else _count(searcher.finalize(state, objective, args))
        )
        return jnp.zeros((before,)), jnp.zeros((_count(ev),)), jnp.zeros((after,))

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


class _Setup(NamedTuple):
    """What ``search`` and ``search_init`` resolve once: the flat objective and starts, the
    number of steps, the stop rule and the target."""

    objective: Callable
    z0: Array
    target: Array | None
    settings: tuple  # (num_steps, keep, has_aux, stop rule, history, layout)


def _setup(searcher, objective, z0, key, args, num_steps, max_evaluations, keep, has_aux,
           stop, target, history, stacked) -> _Setup:  # fmt: skip
    layout = LatentLayout.of(z0, stacked=stacked)
    flat_z0 = layout.ravel_starts(z0)
    flat_objective = layout.flat_objective(objective)
    if has_aux:
        flat_objective = AuxObjective(flat_objective)
    _check_inputs(searcher, flat_objective, flat_z0, keep, args, has_aux, stop)
    steps = _resolve_steps(searcher, flat_objective, flat_z0, args, key, num_steps,
                           max_evaluations)  # fmt: skip
    if target is not None:
        target = jnp.asarray(target, dtype=jnp.result_type(float))
        if target.shape != ():
            raise ValueError(f"target must be a scalar; got shape {target.shape}")
    rule = None if stop is None and target is None else _Stops(stop, target is not None)
    settings = (steps, keep, bool(has_aux), rule, bool(history), layout)
    return _Setup(flat_objective, flat_z0, target, settings)


def _unflat(result: SearchResult, layout: LatentLayout) -> SearchResult:
    """A flat result in the latent's own structure."""
    if layout.is_flat:
        return result
    recorded = result.history
    if recorded is not None:
        recorded = recorded._replace(best_latents=layout.unravel_many(recorded.best_latents))
    return result._replace(latents=layout.unravel_many(result.latents), history=recorded)


def search_init(
    searcher: Searcher,
    objective: Objective,
    z0: Float[ArrayLike, " D"] | Float[ArrayLike, "S D"] | PyTree,
    *,
    key: PRNGKeyArray,
    num_steps: int | None = None,
    max_evaluations: int | None = None,
    args: tuple = (),
    keep: int = 1,
    has_aux: bool = False,
    stop: Stop | None = None,
    target: float | ArrayLike | None = None,
    history: bool = False,
    stacked: bool = False,
) -> SearchState:
    """The first part of :func:`search`: the starts scored and ``prepare`` run.

    Takes the arguments of :func:`search` (but ``gradient_flow``: a step-wise search is not
    differentiated); ``num_steps`` (or ``max_evaluations``) bounds the steps that
    :func:`search_step` will take. Then call :func:`search_step` up to ``num_steps`` times
    (a step after the last, or after a stop, changes nothing) and :func:`search_finish`.

    Example:
        >>> import jax, jax.numpy as jnp, optax, latentsearch as ls
        >>> objective = lambda z, c: -jnp.sum((z - c) ** 2)
        >>> searcher, args = ls.gradient_ascent(optax.sgd(0.25)), (jnp.ones(2),)
        >>> state = ls.search_init(searcher, objective, jnp.zeros(2), key=jax.random.key(0),
        ...                        num_steps=20, args=args)
        >>> for _ in range(20):
        ...     state = ls.search_step(searcher, objective, state, args=args)
        >>> result = ls.search_finish(searcher, objective, state, args=args)
        >>> alone = ls.search(searcher, objective, jnp.zeros(2), key=jax.random.key(0),
        ...                   num_steps=20, args=args)
        >>> bool(jnp.allclose(result.latents, alone.latents)), int(result.num_evaluations)
        (True, 21)
    """
    setup = _setup(searcher, objective, z0, key, args, num_steps, max_evaluations, keep,
                   has_aux, stop, target, history, stacked)  # fmt: skip
    return _init_jit(searcher, setup.objective, setup.z0, key, args, setup.target, setup.settings)


def search_step(
    searcher: Searcher, objective: Objective, state: SearchState, *, args: tuple = ()
) -> SearchState:
    """One step of a search begun by :func:`search_init` (nothing once it has stopped or
    taken its ``num_steps``). ``objective`` and ``args`` are those of ``search_init``."""
    return _step_jit(searcher, _flat_objective(objective, state), state, args)


def search_finish(
    searcher: Searcher, objective: Objective, state: SearchState, *, args: tuple = ()
) -> SearchResult:
    """The :class:`~latentsearch.SearchResult` of a step-wise search: runs the searcher's
    ``finalize`` (unless the search stopped) and returns what :func:`search` returns."""
    result = _finish_jit(searcher, _flat_objective(objective, state), state, args)
    return _unflat(result, state.layout)


def _flat_objective(objective: Objective, state: SearchState) -> Callable:
    flat = state.layout.flat_objective(objective)
    return AuxObjective(flat) if state.has_aux else flat


@functools.partial(jax.jit, static_argnames=("searcher", "objective", "settings"))
def _init_jit(searcher, objective, z0, key, args, target, settings):
    return _prepared(searcher, objective, z0, key, args, target, settings)


@functools.partial(jax.jit, static_argnames=("searcher", "objective"))
def _step_jit(searcher, objective, state, args):
    return jax.lax.cond(
        _active(state), lambda s: _step(searcher, objective, s, args), lambda s: s, state
    )


@functools.partial(jax.jit, static_argnames=("searcher", "objective"))
def _finish_jit(searcher, objective, state, args):
    return _finished(searcher, objective, state, args)


@functools.partial(
    jax.jit, static_argnames=("searcher", "objective", "settings", "checkpoint", "loop")
)
def _run(searcher, objective, z0, key, args, target, settings, checkpoint, loop):
    """The whole search in one program: init, the steps (``loop``: ``"scan"`` over every
    step, ``"cond"`` a scan whose steps after a stop do nothing (differentiable), or
    ``"while"``, which ends when the task, or under ``vmap`` every task, has stopped) and
    finish."""
    state = _prepared(searcher, objective, z0, key, args, target, settings)

    def one_step(state):
        return _step(searcher, objective, state, args)

    if checkpoint:
        one_step = jax.checkpoint(one_step, prevent_cse=False)
    if state.num_steps == 0:
        pass
    elif loop == "while":
        state = jax.lax.while_loop(_active, one_step, state)
    else:
        guarded = one_step if loop == "scan" else (
            lambda s: jax.lax.cond(_active(s), one_step, lambda s: s, s)
        )  # fmt: skip
        state, _ = jax.lax.scan(lambda s, _: (guarded(s), None), state, length=state.num_steps)
    return _finished(searcher, objective, state, args)


def search(
    searcher: Searcher,
    objective: Objective,
    z0: Float[ArrayLike, " D"] | Float[ArrayLike, "S D"] | PyTree,
    *,
    key: PRNGKeyArray,
    num_steps: int | None = None,
    max_evaluations: int | None = None,
    args: tuple = (),
    keep: int = 1,
    has_aux: bool = False,
    stop: Stop | None = None,
    target: float | ArrayLike | None = None,
    gradient_flow: flows_lib.GradientFlow | None = None,
    history: bool = False,
    stacked: bool = False,
) -> SearchResult:
    """Searches latent space for the points that maximise ``objective``.

    Scores the starts (unless the searcher does), runs the searcher's ``prepare``, its
    steps and its ``finalize``, and returns the ``keep`` best distinct points among
    *everything* scored, the starts included: exactly :func:`search_init`, the steps of
    :func:`search_step` and :func:`search_finish`, compiled as one program. To batch over
    tasks, ``jax.vmap`` this function over ``z0``, ``key`` and ``args``: a task's result does
    not depend on the other tasks in the batch.

    Args:
        searcher: e.g. ``gradient_ascent(optax.adam(0.1, b2=0.9))``.
        objective: ``objective(z, *args) -> scalar`` log-likelihood to maximise, for one
            latent ``z`` (an array ``(D,)``, or a pytree like ``z0``); with ``has_aux``,
            ``objective(z, *args) -> (scalar, aux)``.
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
        has_aux: the objective returns ``(value, aux)``; ``aux`` goes to ``stop``. The
            built-in searchers keep it from the evaluation they already do; a searcher
            that does not costs one more evaluation per point to read it.
        stop: ``stop(value, aux) -> bool``, checked at every new point; when it holds, the
            task's search ends there, and that point is returned first (see the module
            docstring of :mod:`latentsearch._src.driver`).
        target: stop once a point scores at least ``target`` (``stop`` ``value >= target``).
        gradient_flow: how derivatives go through the search: :class:`StopGradient` (the
            default, as in :func:`infer` and :func:`lpn_loss`), :class:`Unrolled` (through
            every step) or :class:`Implicit`.
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

        Tasks that stop at different steps, in one batched call:

        >>> close = lambda z, c: (-jnp.sum((z - c) ** 2), jnp.max(jnp.abs(z - c)) < 0.1)
        >>> run = jax.vmap(lambda c: ls.search(
        ...     ls.gradient_ascent(optax.sgd(0.25)), close, jnp.zeros(1), key=jax.random.key(0),
        ...     num_steps=50, args=(c,), has_aux=True, stop=lambda value, near: near))
        >>> out = run(jnp.array([[0.05], [1.0], [8.0]]))
        >>> out.num_evaluations.tolist(), out.stopped.tolist()
        ([1, 5, 8], [True, True, True])
    """
    setup = _setup(searcher, objective, z0, key, args, num_steps, max_evaluations, keep,
                   has_aux, stop, target, history, stacked)  # fmt: skip
    flow = flows_lib.StopGradient() if gradient_flow is None else gradient_flow
    flows_lib.check_flow(flow)
    rule = setup.settings[3]
    differentiated = not isinstance(flow, flows_lib.StopGradient | flows_lib.Implicit)
    loop = "scan" if rule is None else ("cond" if differentiated else "while")

    def run(starts, run_args, checkpoint):
        return _run(searcher, setup.objective, starts, key, run_args, setup.target,
                    setup.settings, checkpoint, loop)  # fmt: skip

    return _unflat(flow.apply(run, setup.objective, setup.z0, args), setup.settings[5])
