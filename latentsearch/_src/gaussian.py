"""Diagonal Gaussians: the posterior family of a conditional VAE encoder."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

__all__ = ["DiagGaussian", "pairwise_kl"]


class DiagGaussian(NamedTuple):
    """A batch of Gaussians with diagonal covariance, as a JAX pytree.

    ``mean`` and ``log_var`` share the shape ``(..., D)``: the last axis is the latent
    dimension, any leading axes are batch axes. Being a ``NamedTuple`` it passes through
    ``jax.jit``, ``jax.vmap`` and ``jax.tree_util`` unchanged.

    Log-variances are used as given (no clipping): very negative ones (a variance that
    underflows to 0) give finite KLs and log-densities (no ``0 / 0``); one above about 88
    in float32 makes the variance overflow, and the KL to the prior is then ``+inf``, a
    fault that a training loop should detect rather than hide.

    Attributes:
        mean: the means, ``(..., D)``.
        log_var: the log-variances, ``(..., D)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> q = DiagGaussian(jnp.zeros(3), jnp.zeros(3))
        >>> q.sample(jax.random.key(0)).shape
        (3,)
        >>> float(q.kl_standard_normal()) == 0.0
        True
    """

    mean: Float[Array, "*batch D"]
    log_var: Float[Array, "*batch D"]

    @property
    def variance(self) -> Float[Array, "*batch D"]:
        """``exp(log_var)``."""
        return jnp.exp(self.log_var)

    @property
    def std(self) -> Float[Array, "*batch D"]:
        """``exp(log_var / 2)``."""
        return jnp.exp(0.5 * self.log_var)

    def sample(self, key: PRNGKeyArray) -> Float[Array, "*batch D"]:
        """Draws one sample per Gaussian by reparameterisation: ``mean + std * eps``.

        Gradients flow to ``mean`` and ``log_var``.

        Example:
            >>> import jax, jax.numpy as jnp
            >>> q = DiagGaussian(jnp.ones((2, 4)), jnp.full((2, 4), -20.0))
            >>> bool(jnp.allclose(q.sample(jax.random.key(1)), 1.0, atol=1e-3))
            True
        """
        eps = jax.random.normal(key, jnp.shape(self.mean), jnp.result_type(self.mean))
        return self.mean + self.std * eps

    def log_prob(self, z: ArrayLike) -> Float[Array, "*batch"]:
        """Log-density of ``z`` (``(..., D)``), summed over the last axis.

        Example:
            >>> import jax.numpy as jnp
            >>> q = DiagGaussian(jnp.zeros(1), jnp.zeros(1))
            >>> round(float(q.log_prob(jnp.zeros(1))), 4)
            -0.9189
        """
        z = jnp.asarray(z)
        return -0.5 * jnp.sum(
            jnp.log(2 * jnp.pi) + self.log_var + _scaled_square(z - self.mean, self.log_var),
            axis=-1,
        )

    def kl_standard_normal(self) -> Float[Array, "*batch"]:
        """``KL(self || N(0, I))``, summed over the latent axis.

        Example:
            >>> import jax.numpy as jnp
            >>> float(DiagGaussian(jnp.array([3.0]), jnp.array([0.0])).kl_standard_normal())
            4.5
        """
        return -0.5 * jnp.sum(1.0 + self.log_var - self.mean**2 - self.variance, axis=-1)

    def kl(self, other: DiagGaussian) -> Float[Array, "*batch"]:
        """``KL(self || other)``, summed over the latent axis (shapes broadcast).

        Example:
            >>> import jax.numpy as jnp
            >>> p = DiagGaussian(jnp.zeros(2), jnp.zeros(2))
            >>> q = DiagGaussian(jnp.ones(2), jnp.zeros(2))
            >>> float(p.kl(q))
            1.0
        """
        return 0.5 * jnp.sum(
            other.log_var
            - self.log_var
            + jnp.exp(self.log_var - other.log_var)
            + _scaled_square(self.mean - other.mean, other.log_var)
            - 1.0,
            axis=-1,
        )


def _scaled_square(diff: Array, log_var: Array) -> Array:
    """``diff**2 / exp(log_var)``, without the NaN of ``0 / 0`` or ``0 * inf`` when the
    variance underflows (``log_var`` below about -88 in float32): computed as
    ``(diff * exp(-log_var / 2))**2``, and a difference below the smallest normal float
    (which the CPU may flush to zero) counts as 0, in value and gradient."""
    diff = jnp.asarray(diff)
    dtype = jnp.result_type(float, diff, log_var)
    zero = jnp.abs(diff) < jnp.finfo(dtype).tiny
    safe = jnp.where(zero, 1.0, diff)
    return jnp.where(zero, 0.0, (safe * jnp.exp(-0.5 * log_var)) ** 2)


def pairwise_kl(dist: DiagGaussian) -> Float[Array, "*batch N N"]:
    """All ordered pairwise KLs of ``N`` Gaussians: ``out[..., i, j] = KL(q_i || q_j)``.

    Args:
        dist: Gaussians with ``mean`` of shape ``(..., N, D)``.

    Returns:
        An array ``(..., N, N)`` with zeros on the diagonal.

    Example:
        >>> import jax.numpy as jnp
        >>> q = DiagGaussian(jnp.array([[0.0], [1.0], [3.0]]), jnp.zeros((3, 1)))
        >>> pairwise_kl(q).tolist()
        [[0.0, 0.5, 4.5], [0.5, 0.0, 2.0], [4.5, 2.0, 0.0]]
    """
    if jnp.ndim(dist.mean) < 2:
        raise ValueError(
            f"pairwise_kl needs Gaussians of shape (..., N, D); got mean of shape "
            f"{jnp.shape(dist.mean)}"
        )
    left = DiagGaussian(dist.mean[..., :, None, :], dist.log_var[..., :, None, :])
    right = DiagGaussian(dist.mean[..., None, :, :], dist.log_var[..., None, :, :])
    return left.kl(right)
