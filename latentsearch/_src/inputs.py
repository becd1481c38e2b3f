"""The checks of a search's inputs, and what ``search`` and ``search_init`` resolve from them.

:func:`_setup` flattens the objective and the starts (:class:`LatentLayout`), checks the
searcher, the objective and the arguments (:func:`_check_inputs`), turns ``num_steps`` or
``max_evaluations`` into a number of steps (:func:`_resolve_steps`, counting each phase's
evaluations from shapes with :func:`evaluations_per_phase`) and builds the stop rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from latentsearch._src.core import AuxObjective, Evaluations, Objective, Searcher
from latentsearch._src.latents import LatentLayout
from latentsearch._src.state import _Stops


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
