"""Gradient flows: how derivatives go through a search, as objects with their own options.

In the spirit of optimistix's adjoints, a gradient flow wraps a search. It receives
``run(z0, args, checkpoint) -> SearchResult`` (the search itself, flat latents), the
objective, the starts ``z0 (S, D)`` and the objective's arguments, and returns the result
whose ``latents`` carry the derivative it defines:

- :class:`Unrolled`: differentiate through every step (optionally rematerialised);
- :class:`StopGradient`: the search is a constant move from the first start;
- :class:`Implicit`: the implicit-function theorem at the point found.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
from jax.scipy.sparse.linalg import cg
from jaxtyping import Array, Float

__all__ = ["GradientFlow", "Implicit", "StopGradient", "Unrolled", "implicit_point"]

Run = Callable[[Array, tuple, bool], Any]


@runtime_checkable
class GradientFlow(Protocol):
    """What :func:`~latentsearch.search`, :func:`~latentsearch.infer` and
    :func:`~latentsearch.lpn_loss` accept as ``gradient_flow``: an object with
    ``apply(run, objective, z0, args) -> SearchResult``, where ``run(z0, args, checkpoint)``
    runs the search on flat starts ``z0 (S, D)``.

    Example:
        >>> import jax, jax.numpy as jnp, optax, latentsearch as ls
        >>> class Frozen:   # a flow of one's own: no derivative at all
        ...     def apply(self, run, objective, z0, args):
        ...         result = run(z0, args, False)
        ...         return result._replace(latents=jax.lax.stop_gradient(result.latents))
        >>> isinstance(Frozen(), ls.GradientFlow), isinstance(ls.Implicit(), ls.GradientFlow)
        (True, True)
        >>> objective = lambda z, c: -jnp.sum((z - c) ** 2)
        >>> g = jax.grad(lambda c: ls.search(ls.gradient_ascent(optax.sgd(0.25)), objective,
        ...     jnp.zeros(1), key=jax.random.key(0), num_steps=3, args=(c,),
        ...     gradient_flow=Frozen()).best[0])(jnp.ones(1))
        >>> g.tolist()
        [0.0]
    """

    def apply(self, run: Run, objective: Callable, z0: Array, args: tuple) -> Any: ...


class Unrolled(NamedTuple):
    """Exact derivatives through every step of the search (plain autodiff).

    Attributes:
        checkpoint: rematerialise each step in the backward pass (``jax.checkpoint``), so
            memory does not grow with the objective's activations times the steps.

    Example:
        >>> import jax, jax.numpy as jnp, optax, latentsearch as ls
        >>> objective = lambda z, c: -jnp.sum((z - c) ** 2)
        >>> def found(c):   # 3 SGD steps of 0.25 from 0: z = c (1 - 0.5 ** 3)
        ...     r = ls.search(ls.gradient_ascent(optax.sgd(0.25)), objective, jnp.zeros(1),
        ...                   key=jax.random.key(0), num_steps=3, args=(c,), keep=1,
        ...                   gradient_flow=ls.Unrolled(checkpoint=True))
        ...     return r.best[0]
        >>> jax.grad(found)(jnp.ones(1)).tolist()
        [0.875]
    """

    checkpoint: bool = False

    def apply(self, run: Run, objective: Callable, z0: Array, args: tuple) -> Any:
        del objective
        return run(z0, args, bool(self.checkpoint))


class StopGradient(NamedTuple):
    """The search moves the first start by a constant: ``z* = z0 + stop_gradient(z* - z0)``.

    Nothing is differentiated through the steps (no memory per step): the gradient reaches
    whatever produced ``z0`` (an encoder) and, through the final scoring, the objective's
    parameters. The paper's default for LPN training, and its best.

    Example:
        >>> import jax, jax.numpy as jnp, optax, latentsearch as ls
        >>> objective = lambda z, c: -jnp.sum((z - c) ** 2)
        >>> def found(z0):
        ...     r = ls.search(ls.gradient_ascent(optax.sgd(0.25)), objective, z0,
        ...                   key=jax.random.key(0), num_steps=3, args=(jnp.ones(1),),
        ...                   keep=1, gradient_flow=ls.StopGradient())
        ...     return r.best[0]
        >>> jax.grad(found)(jnp.zeros(1)).tolist()
        [1.0]
    """

    def apply(self, run: Run, objective: Callable, z0: Array, args: tuple) -> Any:
        del objective
        result = run(jax.lax.stop_gradient(z0), jax.lax.stop_gradient(args), False)
        # the found latents exactly (x - x is exactly 0), with the identity derivative to z0
        moved = result.latents + (z0[0] - jax.lax.stop_gradient(z0[0]))
        return result._replace(latents=moved)


class Implicit(NamedTuple):
    """The implicit-function theorem at the point found (see :func:`implicit_point`).

    At a maximiser ``z*`` of ``J(z, args)``, ``dz*/d args = (-H)^{-1} d(grad_z J)/d args``:
    the exact derivative that :class:`Unrolled` approaches as a converged search runs
    longer, at a memory cost that does not depend on the number of steps. ``z*`` does not
    depend on the start, so no derivative reaches ``z0`` (an encoder learns nothing through
    the search) unless ``start_path`` adds :class:`StopGradient`'s path.

    Attributes:
        damping: Tikhonov damping of the linear solve (``(-H + damping I) x = g``).
        max_steps: conjugate-gradient iterations (default: ``D``, exact in exact arithmetic).
        start_path: also pass :class:`StopGradient`'s identity derivative to ``z0`` (not
            part of the theorem; it keeps an encoder's reconstruction signal).

    Example:
        >>> import jax, jax.numpy as jnp, optax, latentsearch as ls
        >>> objective = lambda z, c: -jnp.sum((z - 2.0 * c) ** 2)   # z* = 2c
        >>> def found(c):
        ...     r = ls.search(ls.gradient_ascent(optax.sgd(0.25)), objective, jnp.zeros(1),
        ...                   key=jax.random.key(0), num_steps=30, args=(c,), keep=1,
        ...                   gradient_flow=ls.Implicit(damping=0.0))
        ...     return r.best[0]
        >>> jax.grad(found)(jnp.ones(1)).round(4).tolist()
        [2.0]
    """

    damping: float = 1e-3
    max_steps: int | None = None
    start_path: bool = False

    def apply(self, run: Run, objective: Callable, z0: Array, args: tuple) -> Any:
        result = run(jax.lax.stop_gradient(z0), jax.lax.stop_gradient(args), False)
        found = jax.lax.stop_gradient(result.latents)

        def point(z):
            return implicit_point(objective, z, args, self.damping, self.max_steps)

        latents = jax.vmap(point)(found)
        if self.start_path:
            latents = latents + z0[0] - jax.lax.stop_gradient(z0[0])
        return result._replace(latents=latents)


def check_flow(flow: Any) -> None:
    """Raises a clear ``TypeError`` for anything that is not a gradient flow."""
    if isinstance(flow, str):
        raise TypeError(
            f"gradient_flow={flow!r}: gradient flows are objects since latentsearch 0.2; "
            "use ls.StopGradient(), ls.Unrolled(checkpoint=...) or ls.Implicit(...)"
        )
    if not isinstance(flow, GradientFlow):
        raise TypeError(
            "gradient_flow must be ls.StopGradient(), ls.Unrolled(...), ls.Implicit(...) or an "
            f"object with apply(run, objective, z0, args); got {type(flow).__name__}"
        )


def implicit_point(
    objective: Callable[..., Array],
    z_star: Float[Array, " D"],
    args: tuple,
    damping: float = 1e-3,
    max_steps: int | None = None,
) -> Float[Array, " D"]:
    """Returns ``z_star``, differentiable in ``args`` as the maximiser of ``objective``.

    By the implicit-function theorem, at a maximiser ``grad_z J(z*, args) = 0``, so
    ``dz*/d args = (-H)^{-1} d(grad_z J)/d args`` with ``H`` the Hessian in ``z``. This
    function computes ``x = (-H + damping I)^{-1} grad_z J(z*, args)`` by conjugate
    gradients on Hessian-vector products, with ``H`` held constant, and returns
    ``z* + x - stop_gradient(x)``: the value is ``z*`` and the derivative of ``x`` is exactly
    the implicit Jacobian. Memory does not depend on how ``z*`` was found, and the
    vector-Jacobian product is formed once for a whole batch (no per-task copy of the
    parameter gradient, which a ``custom_vjp`` under ``vmap`` would materialise).
    No gradient flows to ``z_star`` itself.

    Args:
        objective: ``objective(z, *args) -> scalar``.
        z_star: the (approximate) maximiser, ``(D,)``.
        args: the objective's differentiable arguments.
        damping: Tikhonov damping of the linear solve.
        max_steps: conjugate-gradient iterations (default: ``D``, enough to converge in
            exact arithmetic).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> objective = lambda z, c: -jnp.sum((z - 2.0 * c) ** 2)   # z* = 2c
        >>> g = jax.grad(lambda c: implicit_point(objective, 2.0 * c, (c,)).sum())(jnp.ones(3))
        >>> g.round(2).tolist()
        [2.0, 2.0, 2.0]
    """
    z_star = jax.lax.stop_gradient(z_star)
    fixed_args = jax.lax.stop_gradient(args)
    steps = z_star.shape[-1] if max_steps is None else max_steps

    def grad_z(z, a):
        return jax.grad(lambda z: objective(z, *a))(z)

    def neg_hvp(w):
        return -jax.jvp(lambda z: grad_z(z, fixed_args), (z_star,), (w,))[1] + damping * w

    x, _ = cg(neg_hvp, grad_z(z_star, args), maxiter=steps)
    return z_star + x - jax.lax.stop_gradient(x)
