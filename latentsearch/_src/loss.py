"""The LPN training objective (paper Algorithm 2), independent of any domain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray, PyTree

from latentsearch._src import flows as flows_lib
from latentsearch._src.aggregate import leave_one_out
from latentsearch._src.core import Searcher
from latentsearch._src.gaussian import DiagGaussian
from latentsearch._src.infer import (
    Starts,
    _check_posterior,
    _pair_count,
    _pair_mask,
    infer,
    start_latents,
)
from latentsearch._src.inputs import _check_searcher

__all__ = ["lpn_loss"]


def lpn_loss(
    params: PyTree,
    encode: Callable[[PyTree, PyTree], DiagGaussian],
    log_likelihood: Callable[[PyTree, Array, PyTree], Array],
    pairs: PyTree,
    key: PRNGKeyArray,
    *,
    searcher: Searcher,
    num_steps: int,
    gradient_flow: flows_lib.GradientFlow | None = None,
    prior_kl: float = 1e-4,
    pair_mask: Bool[Array, " N"] | None = None,
    aggregation: Literal["mean", "poe"] = "mean",
    held_out_log_likelihood: Callable[[PyTree, Array, PyTree], Array] | None = None,
    precompute: Callable[[PyTree, PyTree], PyTree] | None = None,
    has_aux: bool = False,
    stop: Callable[[Array, Any], Array] | None = None,
    dropout_key: PRNGKeyArray | None = None,
) -> tuple[Float[Array, ""], dict[str, Any]]:
    """Leave-one-out LPN loss of one task (paper Algorithm 2), with a search inside.

    Every pair is encoded to a Gaussian once. For each pair ``i`` a latent is inferred from
    the *other* pairs (:func:`infer` with their posteriors: the start is the aggregate of
    one sample of each other pair's posterior, by reparameterisation, and the search
    maximises the sum of their log-likelihoods), and the best latent found scores pair
    ``i``. The loss is the mean over pairs of ``-log_likelihood(params, z_i*, pair_i)`` plus
    ``prior_kl`` times the mean KL of the pair posteriors to ``N(0, I)``. For a batch of
    tasks, ``jax.vmap`` over ``pairs``, ``key`` and ``pair_mask`` and average.

    How gradients flow through the search is ``gradient_flow``: :class:`StopGradient`
    (the default, the paper's: the encoder learns through the start and the decoder
    through the final scoring), :class:`Unrolled` (exact, through every step; use
    ``checkpoint=True`` to bound memory) or :class:`Implicit` (the implicit-function
    theorem at the point found; ``start_path=True`` keeps the encoder's signal through the
    start).

    Args:
        params: the model parameters (any pytree); the loss is differentiable in them.
        encode: ``encode(params, pair) -> DiagGaussian`` for one pair.
        log_likelihood: ``log_likelihood(params, z, pair) -> scalar`` for one pair.
        pairs: one task's pairs: any pytree whose leaves have the pair axis (``N >= 2``)
            first.
        key: PRNG key (latent sampling and stochastic searchers).
        searcher: the searcher used inside the loss (``num_steps=0`` gives "Grad 0").
        num_steps: search steps per held-out pair.
        gradient_flow: a :class:`StopGradient`, :class:`Unrolled` or :class:`Implicit`.
        prior_kl: weight of the KL to the prior (``beta``).
        pair_mask: optional ``(N,)`` boolean mask of real (non-padding) pairs.
        aggregation: ``"mean"`` of the other pairs' sampled latents (the paper), or
            ``"poe"``: a sample of the product of their Gaussians.
        held_out_log_likelihood: ``(params, z, pair) -> scalar`` scoring each held-out
            pair at its found latent (the reconstruction term); default
            ``log_likelihood``. A stochastic variant (e.g. the decoder with dropout, its
            key given by ``dropout_key``) regularises training while the search inside the
            loss stays deterministic.
        precompute: ``(params, pair) -> pair``: the pair with whatever its log-likelihood
            needs that does not depend on z (e.g. a decoder's keys and values of the pair's
            input), computed once per pair and passed to every ``log_likelihood`` call of
            the search and of the held-out scoring instead of ``pair``; differentiated once.
            ``encode`` still gets the plain pair.
        has_aux: ``log_likelihood`` returns ``(value, aux)`` per pair (for ``stop``).
        stop: ``stop(value, aux) -> bool``: each held-out pair's search ends at the first
            point where it holds (see :func:`search`; ``aux`` is a :class:`PairsAux`).
        dropout_key: a PRNG key for dropout in training, or None (the default: no key is
            passed anywhere). Given, it is split into one key per pair
            (``jax.random.split(dropout_key, N)``) and pair ``i``'s key is passed as the
            keyword ``dropout_key=`` to ``encode`` and to ``held_out_log_likelihood`` (or
            ``log_likelihood`` when that is the held-out scoring) for pair ``i``; the
            search inside the loss never gets one, so it runs without dropout.

    Returns:
        ``(loss, metrics)`` where metrics holds ``reconstruction`` (mean negative
        log-likelihood of the held-out pairs), ``prior_kl``, ``latent_norm`` and, when a
        search runs, ``search_score`` (mean best search objective on the other pairs).
        With ``num_steps=0`` and a searcher without a ``prepare`` phase (gradient ascent,
        random search...) the start is the only candidate and is used as is: nothing is
        scored and ``search_score`` is absent.

    Raises:
        ValueError: for an unknown ``aggregation``, fewer than 2 pairs, inconsistent pair
            leaves or a badly shaped mask.
        TypeError: if ``searcher`` is not a :class:`Searcher` or ``gradient_flow`` not a
            gradient flow.

    Example:
        >>> import jax, jax.numpy as jnp, optax, latentsearch as ls
        >>> encode = lambda p, pair: ls.DiagGaussian(pair["x"] * p["a"], jnp.zeros(2))
        >>> loglik = lambda p, z, pair: -jnp.sum((pair["x"] - p["b"] * z) ** 2)
        >>> pairs = {"x": jnp.arange(8.0).reshape(4, 2)}
        >>> params = {"a": jnp.ones(()), "b": jnp.ones(())}
        >>> def loss(p):
        ...     return ls.lpn_loss(p, encode, loglik, pairs, jax.random.key(0),
        ...                        searcher=ls.gradient_ascent(optax.sgd(0.1)), num_steps=3)[0]
        >>> bool(jnp.isfinite(loss(params))), sorted(jax.grad(loss)(params))
        (True, ['a', 'b'])
    """
    _check_searcher(searcher)
    flow = flows_lib.StopGradient() if gradient_flow is None else gradient_flow
    flows_lib.check_flow(flow)
    n = _pair_count(pairs)
    if n < 2:
        raise ValueError(f"lpn_loss needs at least 2 pairs per task (leave-one-out); got {n}")
    mask = _pair_mask(pair_mask, n)
    # one dropout key per pair, passed as a keyword (None: nothing passed)
    pair_keys = None if dropout_key is None else jax.random.split(dropout_key, n)
    posterior = _map_pairs(encode, params, (pairs,), pair_keys)
    _check_posterior(posterior, n)
    scored = pairs if precompute is None else jax.vmap(precompute, in_axes=(None, 0))(params, pairs)

    others_mask = leave_one_out(mask, 0)  # (N, N-1)
    others_posterior = jax.tree_util.tree_map(lambda x: leave_one_out(x, 0), posterior)
    others = jax.tree_util.tree_map(lambda x: leave_one_out(x, 0), scored)  # (N, N-1, ...)
    keys = jax.random.split(key, n)
    starts = Starts(aggregate="sample")

    def held_out_latent(spec_posterior, spec_pairs, spec_mask, k):
        result = infer(
            params,
            log_likelihood,
            spec_pairs,
            k,
            posterior=spec_posterior,
            pair_mask=spec_mask,
            aggregation=aggregation,
            starts=starts,
            searcher=searcher,
            num_steps=num_steps,
            gradient_flow=flow,
            has_aux=has_aux,
            stop=stop,
        )
        return result.best, result.scores[0]

    def start_only(spec_posterior, spec_mask, k):
        z0 = start_latents(
            spec_posterior,
            jax.random.fold_in(k, 1),
            pair_mask=spec_mask,
            aggregation=aggregation,
            starts=starts,
        )
        return z0[0]

    if num_steps == 0 and searcher.prepare is None:
        # "Grad 0": the one start is the only candidate, so nothing needs scoring; skipping
        # the N x (N - 1) objective evaluations makes a mean-training step about 1/3 cheaper.
        found = jax.vmap(start_only)(others_posterior, others_mask, keys)
        found_scores = None
    else:
        found, found_scores = jax.vmap(held_out_latent)(others_posterior, others, others_mask, keys)
    score = held_out_log_likelihood
    if score is None:
        score = (lambda *a, **kw: log_likelihood(*a, **kw)[0]) if has_aux else log_likelihood
    held_out = _map_pairs(score, params, (found, scored), pair_keys)
    return _loss_and_metrics(held_out, posterior, mask, found_scores, prior_kl)


def _loss_and_metrics(held_out, posterior, mask, found_scores, prior_kl):
    """The loss (reconstruction + ``prior_kl`` x KL) and its metrics, averaged over the real
    pairs of ``mask``, from each pair's held-out log-likelihood and its posterior."""
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


def _map_pairs(
    fn: Callable[..., Any], params: PyTree, per_pair: tuple, keys: PRNGKeyArray | None
) -> Any:
    """``fn(params, *args)`` for every pair, mapped over the pair axis of each element of
    ``per_pair``; with ``keys`` (one per pair) each call also gets its pair's key as the
    keyword ``dropout_key=``."""
    axes = (0,) * len(per_pair)
    if keys is None:
        return jax.vmap(fn, in_axes=(None, *axes))(params, *per_pair)

    def keyed(p, key, *args):
        return fn(p, *args, dropout_key=key)

    return jax.vmap(keyed, in_axes=(None, 0, *axes))(params, keys, *per_pair)
