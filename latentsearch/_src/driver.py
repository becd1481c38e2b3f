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

The search state and its bookkeeping live in :mod:`latentsearch._src.state`, the checks of
the inputs in :mod:`latentsearch._src.inputs`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from latentsearch._src import flows as flows_lib
from latentsearch._src.core import (
    AuxObjective,
    Objective,
    Searcher,
    SearchHistory,
    SearchResult,
    best_distinct,
    scored,
)
from latentsearch._src.inputs import _setup
from latentsearch._src.latents import LatentLayout
from latentsearch._src.state import SearchState, Stop, _fill, _record, _spend

__all__ = ["search", "search_finish", "search_init", "search_step"]


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
