"""The LPN training objective (paper Algorithm 2), independent of any domain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax.scipy.sparse.linalg import cg
from jaxtyping import Array, Bool, Float, PRNGKeyArray, PyTree

from latentsearch.aggregate import aggregate_mean, leave_one_out, product_of_experts
from latentsearch.core import Searcher, no_preparation, search
from latentsearch.gaussian import DiagGaussian

__all__ = ["GRADIENT_FLOWS", "implicit_point", "lpn_loss"]

GRADIENT_FLOWS = ("stop_gradient", "unrolled", "implicit")
"""The accepted values of ``lpn_loss(..., gradient_flow=...)``."""


def implicit_point(
    objective: Callable[..., Array],
    z_star: Float[Array, " D"],
    args: tuple,
    damping: float = 1e-3,
    solver_steps: int | None = None,
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
        solver_steps: conjugate-gradient iterations (default: ``D``, enough to converge in
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
    steps = z_star.shape[-1] if solver_steps is None else solver_steps

    def grad_z(z, a):
        return jax.grad(lambda z: objective(z, *a))(z)

    def neg_hvp(w):
        return -jax.jvp(lambda z: grad_z(z, fixed_args), (z_star,), (w,))[1] + damping * w

    x, _ = cg(neg_hvp, grad_z(z_star, args), maxiter=steps)
    return z_star + x - jax.lax.stop_gradient(x)


def _leading_size(pairs: PyTree) -> int:
    leaves = jax.tree_util.tree_leaves(pairs)
    if not leaves:
        raise ValueError("pairs is an empty pytree; it needs leaves with the pair axis first")
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
    if len(sizes) != 1 or None in sizes:
        shapes = [jnp.shape(x) for x in leaves]
        raise ValueError(
            f"every leaf of pairs must have the same leading (pair) axis; got shapes {shapes}"
        )
    (n,) = sizes
    if n < 2:
        raise ValueError(f"lpn_loss needs at least 2 pairs per task (leave-one-out); got {n}")
    return n


def lpn_loss(
    params: PyTree,
    encode: Callable[[PyTree, PyTree], DiagGaussian],
    log_likelihood: Callable[[PyTree, Array, PyTree], Array],
    pairs: PyTree,
    key: PRNGKeyArray,
    *,
    searcher: Searcher,
    num_steps: int,
    gradient_flow: Literal["stop_gradient", "unrolled", "implicit"] = "stop_gradient",
    prior_kl: float = 1e-4,
    pair_mask: Bool[Array, " N"] | None = None,
    aggregation: Literal["mean", "poe"] = "mean",
    implicit_damping: float = 1e-3,
    implicit_solver_steps: int | None = None,
    held_out_log_likelihood: Callable[[PyTree, Array, PyTree], Array] | None = None,
    precompute: Callable[[PyTree, PyTree], PyTree] | None = None,
) -> tuple[Float[Array, ""], dict[str, Any]]:
    """Leave-one-out LPN loss of one task (paper Algorithm 2), with a search inside.

    Every pair is encoded to a Gaussian and a latent is sampled by reparameterisation. For
    each pair ``i`` the search starts at the aggregate of the *other* pairs' latents, is run
    on the other pairs only (objective: the sum of their log-likelihoods), and the best
    latent it finds scores pair ``i``. The loss is the mean over pairs of
    ``-log_likelihood(params, z_i*, pair_i)`` plus ``prior_kl`` times the mean KL of the
    pair posteriors to ``N(0, I)``. For a batch of tasks, ``jax.vmap`` over ``pairs``,
    ``key`` and ``pair_mask`` and average.

    How gradients flow through the search (``gradient_flow``):

    - ``"stop_gradient"``: ``z* = z0 + stop_gradient(z* - z0)``. The update direction is a
      constant: the encoder learns through the start ``z0`` and the decoder through the
      final scoring (the paper's default, and its best).
    - ``"unrolled"``: exact gradients through all steps, each step rematerialised with
      ``jax.checkpoint`` so activations are not stored per step.
    - ``"implicit"``: the implicit-function theorem at the found optimum (see
      :func:`implicit_point`) for the dependence on ``params``, costing memory independent of
      ``num_steps``; plus the start's identity path of ``"stop_gradient"``, which keeps the
      encoder's reconstruction signal (at an exact optimum the pure theorem gives the
      encoder none).

    Args:
        params: the model parameters (any pytree); the loss is differentiable in them.
        encode: ``encode(params, pair) -> DiagGaussian`` for one pair.
        log_likelihood: ``log_likelihood(params, z, pair) -> scalar`` for one pair.
        pairs: one task's pairs: any pytree whose leaves have the pair axis (``N >= 2``)
            first.
        key: PRNG key (latent sampling and stochastic searchers).
        searcher: the searcher used inside the loss (``num_steps=0`` gives "Grad 0").
        num_steps: search steps per held-out pair.
        gradient_flow: one of :data:`GRADIENT_FLOWS`.
        prior_kl: weight of the KL to the prior (``beta``).
        pair_mask: optional ``(N,)`` boolean mask of real (non-padding) pairs.
        aggregation: ``"mean"`` of the other pairs' sampled latents (the paper), or
            ``"poe"``: a sample of the product of their Gaussians.
        implicit_damping: damping of the implicit solve.
        implicit_solver_steps: conjugate-gradient iterations of the implicit solve
            (default: the latent dimension).
        held_out_log_likelihood: ``(params, z, pair) -> scalar`` scoring each held-out
            pair at its found latent (the reconstruction term); default
            ``log_likelihood``. A stochastic variant (e.g. the decoder with dropout, its
            key carried in ``pairs``) regularises training while the search inside the
            loss stays deterministic.
        precompute: ``(params, pair) -> pair``: the pair with whatever its log-likelihood
            needs that does not depend on z (e.g. a decoder's keys and values of the pair's
            input), computed once per pair and passed to every ``log_likelihood`` call of
            the search and of the held-out scoring instead of ``pair``; differentiated once.
            ``encode`` still gets the plain pair.

    Returns:
        ``(loss, metrics)`` where metrics holds ``reconstruction`` (mean negative
        log-likelihood of the held-out pairs), ``prior_kl``, ``latent_norm`` and, when a
        search runs, ``search_score`` (mean best search objective on the other pairs).
        With ``num_steps=0`` and a searcher without a real ``prepare`` phase (``None`` or
        :func:`no_preparation`, e.g. gradient ascent) the start is used as is: nothing is
        scored and ``search_score`` is absent.

    Raises:
        ValueError: for an unknown ``gradient_flow`` or ``aggregation``, fewer than 2 pairs,
            inconsistent pair leaves or a badly shaped mask.
        TypeError: if ``searcher`` is not a :class:`Searcher`.

    Example:
        >>> import jax, jax.numpy as jnp, optax, latentsearch as ls
        >>> encode = lambda p, pair: ls.DiagGaussian(pair["x"] * p["a"], jnp.zeros(2))
        >>> loglik = lambda p, z, pair: -jnp.sum((pair["x"] - p["b"] * z) ** 2)
        >>> pairs = {"x": jnp.arange(8.0).reshape(4, 2)}
        >>> params = {"a": jnp.ones(()), "b": jnp.ones(())}
        >>> loss, metrics = ls.lpn_loss(params, encode, loglik, pairs, jax.random.key(0),
        ...                             searcher=ls.gradient_ascent(optax.sgd(0.1)),
        ...                             num_steps=3)
        >>> bool(jnp.isfinite(loss)), sorted(jax.grad(
        ...     lambda p: ls.lpn_loss(p, encode, loglik, pairs, jax.random.key(0),
        ...                           searcher=ls.gradient_ascent(optax.sgd(0.1)),
        ...                           num_steps=3)[0])(params))
        (True, ['a', 'b'])
    """
    if not isinstance(searcher, Searcher):
        raise TypeError(
            f"searcher must be a latentsearch.Searcher (e.g. gradient_ascent(...)); "
            f"got {type(searcher).__name__}"
        )
    if gradient_flow not in GRADIENT_FLOWS:
        raise ValueError(f"gradient_flow must be one of {GRADIENT_FLOWS}; got {gradient_flow!r}")
    if aggregation not in ("mean", "poe"):
        raise ValueError(f"aggregation must be 'mean' or 'poe'; got {aggregation!r}")
    n = _leading_size(pairs)
    if pair_mask is None:
        mask = jnp.ones((n,), bool)
    else:
        mask = jnp.asarray(pair_mask)
        if mask.shape != (n,):
            raise ValueError(f"pair_mask must have shape ({n},) for {n} pairs; got {mask.shape}")
        mask = mask.astype(bool)
    k_sample, k_search = jax.random.split(key)

    posterior = jax.vmap(encode, in_axes=(None, 0))(params, pairs)
    if not isinstance(posterior, DiagGaussian):
        raise TypeError(f"encode must return a DiagGaussian; got {type(posterior).__name__}")
    if posterior.mean.ndim != 2:
        raise ValueError(
            f"encode(params, pair) must return a DiagGaussian of shape (D,); got batched "
            f"mean of shape {posterior.mean.shape}"
        )
    z = posterior.sample(k_sample)  # (N, D)

    others_mask = leave_one_out(mask, 0)  # (N, N-1)
    if aggregation == "mean":
        starts = aggregate_mean(leave_one_out(z, 0), others_mask, axis=1)
    else:
        loo = jax.tree_util.tree_map(lambda x: leave_one_out(x, 0), posterior)
        poe = product_of_experts(loo, others_mask, axis=1, include_prior=True)
        starts = poe.sample(jax.random.fold_in(k_sample, 1))
    scored = pairs if precompute is None else jax.vmap(precompute, in_axes=(None, 0))(params, pairs)
    others = jax.tree_util.tree_map(lambda x: leave_one_out(x, 0), scored)  # (N, N-1, ...)

    def spec_objective(z, params, spec, spec_mask):
        values = jax.vmap(log_likelihood, in_axes=(None, None, 0))(params, z, spec)
        return jnp.sum(jnp.where(spec_mask, values, 0.0))

    def find(start, spec, spec_mask, k):
        if gradient_flow == "unrolled":
            args = (params, spec, spec_mask)
        else:
            args = jax.lax.stop_gradient((params, spec, spec_mask))
            start_in = jax.lax.stop_gradient(start)
        result = search(
            searcher,
            spec_objective,
            start if gradient_flow == "unrolled" else start_in,
            key=k,
            num_steps=num_steps,
            args=args,
            keep=1,
            checkpoint=gradient_flow == "unrolled",
        )
        found = result.best
        if gradient_flow == "unrolled":
            return found, result.scores[0]
        moved = start + jax.lax.stop_gradient(found - start)
        if gradient_flow == "implicit":
            correction = implicit_point(
                spec_objective,
                jax.lax.stop_gradient(found),
                (params, spec, spec_mask),
                implicit_damping,
                implicit_solver_steps,
            )
            moved = moved + correction - jax.lax.stop_gradient(correction)
        return moved, result.scores[0]

    if num_steps == 0 and searcher.prepare in (None, no_preparation):
        # "Grad 0": the start is the only candidate, so nothing needs scoring; skipping the
        # N x (N - 1) objective evaluations makes a mean-training step about 1/3 cheaper.
        found, found_scores = starts, None
    else:
        keys = jax.random.split(k_search, n)
        found, found_scores = jax.vmap(find)(starts, others, others_mask, keys)
    score = log_likelihood if held_out_log_likelihood is None else held_out_log_likelihood
    held_out = jax.vmap(score, in_axes=(None, 0, 0))(params, found, scored)
    weights = mask.astype(held_out.dtype)
    count = jnp.maximum(jnp.sum(weights), 1.0)
    reconstruction = -jnp.sum(weights * held_out) / count
    kl = jnp.sum(weights * posterior.kl_standard_normal()) / count
    loss = reconstruction + prior_kl * kl
    metrics = {
        "reconstruction": reconstruction,
        "prior_kl": kl,
        "latent_norm": jnp.sum(weights * jnp.linalg.norm(posterior.mean, axis=-1)) / count,
    }
    if found_scores is not None:
        metrics["search_score"] = jnp.sum(weights * jax.lax.stop_gradient(found_scores)) / count
    return loss, metrics
