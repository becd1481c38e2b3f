"""Langevin sampling in latent space (MALA, or unadjusted), with the best points kept."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from latentsearch._src.core import Evaluations, Searcher, value_grad_aux

__all__ = ["langevin"]


class LangevinState(NamedTuple):
    """State of :func:`langevin`: each chain's position, objective value and gradient."""

    z: Float[Array, "C D"]
    value: Float[Array, " C"]
    grad: Float[Array, "C D"]


def _value_and_grad(objective, args, points):
    values, grads, aux = value_grad_aux(objective, points, args)
    finite = jnp.isfinite(values)
    grads = jnp.where(finite[:, None] & jnp.isfinite(grads), grads, 0.0)
    return jnp.where(finite, values, -jnp.inf), grads, aux


def _log_proposal(to, frm, grad_frm, step_size, temperature):
    """``log q(to | frm)`` up to a constant, for ``q = N(frm + eps grad / T, 2 eps I)``."""
    drift = frm + step_size * grad_frm / temperature
    return -jnp.sum((to - drift) ** 2, axis=-1) / (4.0 * step_size)


def langevin(
    step_size: float,
    *,
    temperature: float = 1.0,
    num_chains: int = 1,
    adjust: bool = True,
) -> Searcher:
    """Langevin dynamics on ``exp(objective / temperature)``: a gradient-based sampler.

    Each step moves every chain to ``z + eps * grad J(z) / T + sqrt(2 eps) * N(0, I)`` and,
    with ``adjust`` (MALA, the Metropolis-adjusted Langevin algorithm), accepts the move with
    the Metropolis-Hastings probability, so the chains sample the tempered posterior
    ``exp(J / T)`` instead of climbing to one maximum; without it (unadjusted Langevin) every
    move is taken. The driver keeps the best distinct points any chain proposed. ``num_chains``
    chains start at each start (``S * num_chains`` in all); a step costs one
    value-and-gradient evaluation per chain, and ``prepare`` one per start.

    Args:
        step_size: ``eps > 0``.
        temperature: ``T > 0``; low values concentrate the chains near the maxima.
        num_chains: chains per start (>= 1).
        adjust: Metropolis-Hastings correction (MALA); ``False`` for unadjusted Langevin.

    Example:
        >>> import jax, jax.numpy as jnp, latentsearch as ls
        >>> objective = lambda z: -jnp.sum((z - 1.0) ** 2)
        >>> r = ls.search(ls.langevin(0.01, temperature=0.01, num_chains=4), objective,
        ...               jnp.zeros(2), key=jax.random.key(0), num_steps=100)
        >>> bool(r.scores[0] > -0.01), int(r.num_evaluations), int(r.num_gradient_evaluations)
        (True, 401, 401)
    """
    if not 0 < step_size < float("inf"):
        raise ValueError(f"step_size must be > 0 and finite; got {step_size!r}")
    if not 0 < temperature < float("inf"):
        raise ValueError(f"temperature must be > 0 and finite; got {temperature!r}")
    if isinstance(num_chains, bool) or not isinstance(num_chains, int) or num_chains < 1:
        raise ValueError(f"num_chains must be a positive int; got {num_chains!r}")

    def init(z0, key):
        del key
        chains = jnp.repeat(z0, num_chains, axis=0)
        return LangevinState(
            chains, jnp.full(chains.shape[:1], -jnp.inf, z0.dtype), jnp.zeros_like(chains)
        )

    def prepare(state, objective, args, key):
        del key
        starts = state.z[::num_chains]
        values, grads, aux = _value_and_grad(objective, args, starts)
        chains = LangevinState(
            state.z, jnp.repeat(values, num_chains), jnp.repeat(grads, num_chains, axis=0)
        )
        return chains, Evaluations(starts, values, starts.shape[0], aux)

    def step(state, objective, args, key):
        k_noise, k_accept = jax.random.split(key)
        noise = jax.random.normal(k_noise, state.z.shape, state.z.dtype)
        proposal = (
            state.z + step_size * state.grad / temperature + jnp.sqrt(2.0 * step_size) * noise
        )
        values, grads, aux = _value_and_grad(objective, args, proposal)
        if adjust:
            log_ratio = (
                (values - state.value) / temperature
                + _log_proposal(state.z, proposal, grads, step_size, temperature)
                - _log_proposal(proposal, state.z, state.grad, step_size, temperature)
            )
            uniform = jax.random.uniform(k_accept, values.shape, values.dtype)
            accept = jnp.isfinite(values) & (
                (state.value == -jnp.inf) | (jnp.log(uniform) < log_ratio)
            )
        else:
            accept = jnp.isfinite(values) & jnp.all(jnp.isfinite(proposal), axis=-1)
        moved = LangevinState(
            jnp.where(accept[:, None], proposal, state.z),
            jnp.where(accept, values, state.value),
            jnp.where(accept[:, None], grads, state.grad),
        )
        return moved, Evaluations(proposal, values, proposal.shape[0], aux)

    return Searcher(init, step, prepare, score_starts=False)
