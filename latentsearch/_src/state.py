"""The state of a search between steps, and its bookkeeping.

:class:`SearchState` is what :func:`~latentsearch.search_init` returns and
:func:`~latentsearch.search_step` advances; the helpers here keep its best distinct points,
count the evaluations spent, check the stop rule at every new point (:class:`_Stops`) and
record the trace and the path after each step.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array

from latentsearch._src.core import Evaluations, best_distinct, scored
from latentsearch._src.latents import LatentLayout

__all__ = ["SearchState"]

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


def _fill(path: Array, final: Array, from_index: Array) -> Array:
    """``path`` with every entry from ``from_index`` on replaced by ``final``."""
    later = jnp.arange(path.shape[0]) >= from_index
    return jnp.where(later.reshape((-1,) + (1,) * (path.ndim - 1)), final, path)
