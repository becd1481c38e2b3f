"""Leave-one-out views and aggregation of per-pair latents."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

from latentsearch._src.gaussian import DiagGaussian

__all__ = ["aggregate_mean", "leave_one_out", "product_of_experts"]


def _normalise_axis(axis: int, ndim: int, name: str) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}={axis} is out of range for an array with {ndim} dimensions")
    return axis % ndim


def leave_one_out(x: ArrayLike, axis: int = 0) -> Array:
    """For every element along ``axis``, the other elements in their original order.

    The axis of size ``N`` becomes two axes ``(N, N - 1)`` in the same place:
    ``out[..., i, k, ...]`` is the ``k``-th of the elements other than ``i``. Built by one
    gather with a precomputed index table (no Python loop over ``N``); negative axes count
    from the end as usual.

    Args:
        x: any array with at least one axis of size ``N >= 2``.
        axis: the axis to expand.

    Returns:
        An array with ``x.ndim + 1`` dimensions.

    Raises:
        ValueError: if ``axis`` is out of range or the axis has fewer than 2 elements.

    Example:
        >>> import jax.numpy as jnp
        >>> leave_one_out(jnp.array([10, 20, 30])).tolist()
        [[20, 30], [10, 30], [10, 20]]
        >>> leave_one_out(jnp.zeros((5, 4, 3)), axis=-2).shape
        (5, 4, 3, 3)
    """
    x = jnp.asarray(x)
    ax = _normalise_axis(axis, x.ndim, "axis")
    n = x.shape[ax]
    if n < 2:
        raise ValueError(
            f"leave_one_out needs at least 2 elements along axis {axis}; got shape {x.shape}"
        )
    k = np.arange(n - 1)[None, :]
    index = k + (k >= np.arange(n)[:, None])  # (N, N-1): skip i
    return jnp.take(x, index, axis=ax)


def _mask_weights(mask: ArrayLike | None, shape: tuple[int, ...], axis: int) -> Array | None:
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    expected = shape[: axis + 1]
    if mask.shape != expected:
        raise ValueError(
            f"pair_mask must have shape {expected} (the latents' shape up to the pair axis); "
            f"got {mask.shape} for latents of shape {shape}"
        )
    return mask.astype(jnp.float32).reshape(mask.shape + (1,) * (len(shape) - axis - 1))


def aggregate_mean(
    z: Float[Array, "*batch N D"], pair_mask: Bool[Array, "*batch N"] | None = None, axis: int = -2
) -> Float[Array, "*batch D"]:
    """Mean of per-pair latents over the pair ``axis``, counting only masked-in pairs.

    A row whose mask is all ``False`` aggregates to zeros (the prior mean).

    Args:
        z: latents with the pair axis at ``axis`` and the latent axis last.
        pair_mask: optional boolean mask of shape ``z.shape[:axis + 1]``.
        axis: the pair axis (default: second to last).

    Example:
        >>> import jax.numpy as jnp
        >>> z = jnp.array([[1.0, 0.0], [3.0, 2.0], [100.0, 100.0]])
        >>> aggregate_mean(z, pair_mask=jnp.array([True, True, False])).tolist()
        [2.0, 1.0]
    """
    z = jnp.asarray(z)
    ax = _normalise_axis(axis, z.ndim, "axis")
    if ax == z.ndim - 1:
        raise ValueError("the pair axis cannot be the latent (last) axis")
    w = _mask_weights(pair_mask, z.shape, ax)
    if w is None:
        return jnp.mean(z, axis=ax)
    total = jnp.sum(z * w, axis=ax)
    return total / jnp.maximum(jnp.sum(w, axis=ax), 1.0)


def product_of_experts(
    dist: DiagGaussian,
    pair_mask: Bool[Array, "*batch N"] | None = None,
    axis: int = -2,
    *,
    include_prior: bool = False,
) -> DiagGaussian:
    """Product of the per-pair Gaussians along the pair ``axis`` (precisions add).

    The product of Gaussians ``N(mu_i, s_i^2)`` is Gaussian with precision ``sum_i 1/s_i^2``
    and mean ``sum_i mu_i / s_i^2`` over that precision. Masked-out pairs contribute nothing;
    with ``include_prior`` the standard normal prior is one more expert (so an all-masked row
    gives the prior instead of an infinite variance).

    Example:
        >>> import jax.numpy as jnp
        >>> q = DiagGaussian(jnp.array([[0.0], [2.0]]), jnp.zeros((2, 1)))
        >>> p = product_of_experts(q)
        >>> p.mean.tolist(), round(float(p.variance[0]), 3)
        ([1.0], 0.5)
    """
    mean = jnp.asarray(dist.mean)
    ax = _normalise_axis(axis, mean.ndim, "axis")
    if ax == mean.ndim - 1:
        raise ValueError("the pair axis cannot be the latent (last) axis")
    # In log space (log-sum-exp of the log-precisions), so that extreme log-variances
    # neither overflow (a variance near 0 is a precision near inf) nor give 0 / 0.
    log_precision = -jnp.asarray(dist.log_var)
    w = _mask_weights(pair_mask, mean.shape, ax)
    w = jnp.ones_like(mean) if w is None else jnp.broadcast_to(w, mean.shape).astype(mean.dtype)
    if include_prior:  # N(0, I) as one more expert: log-precision 0, mean 0
        prior = jnp.zeros_like(jnp.take(mean, jnp.array([0]), axis=ax))
        log_precision = jnp.concatenate([log_precision, prior], axis=ax)
        mean = jnp.concatenate([mean, prior], axis=ax)
        w = jnp.concatenate([w, jnp.ones_like(prior)], axis=ax)
    log_total = jax.nn.logsumexp(log_precision, axis=ax, b=w, keepdims=True)
    weights = w * jnp.exp(log_precision - log_total)
    combined = jnp.sum(weights * mean, axis=ax)
    return DiagGaussian(combined, -jnp.squeeze(log_total, axis=ax))
