"""2-D rotary position embeddings (``positions="rope"``): queries and keys turn with the
row and the column of their grid cell."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Rope", "apply_rope", "rope_tables", "rotate"]

Rope = tuple[jax.Array, jax.Array]
"""Cosines and sines of the rotation angles, float32 ``(n, 1, 2, head_dim // 4)`` each."""


def rope_tables(rows: jax.Array, cols: jax.Array, head_dim: int, max_freq: float) -> Rope:
    """Rotation tables of ``n`` tokens at grid positions ``(rows[i], cols[i])``.

    Axis ``a`` (0 = row, 1 = column) of a token at position ``p_a`` turns its rotation pair
    ``i < q = head_dim // 4`` by the angle ``p_a * max_freq ** (-i / q)`` (computed in
    float32).

    Args:
        rows: row index of each token, ``(n,)`` integers (0 for tokens without a cell).
        cols: column index of each token, ``(n,)``.
        head_dim: the per-head dimension (divisible by 4).
        max_freq: the RoPE base, :attr:`ModelConfig.rope_max_freq`.

    Returns:
        ``(cos, sin)``, float32 ``(n, 1, 2, head_dim // 4)`` each (the 1 broadcasts over heads).
    """
    quarter = head_dim // 4
    inv_freq = np.power(float(max_freq), -np.arange(quarter, dtype=np.float64) / quarter)
    pos = jnp.stack([jnp.asarray(rows), jnp.asarray(cols)], axis=-1).astype(jnp.float32)
    angle = pos[:, :, None] * jnp.asarray(inv_freq, jnp.float32)  # (n, 2, q)
    return jnp.cos(angle)[:, None], jnp.sin(angle)[:, None]


def rotate(x: jax.Array, rope: Rope) -> jax.Array:
    """Rotates queries or keys ``(n, H, Dh)`` by :func:`rope_tables` (float32 maths)."""
    cos, sin = rope
    n, heads, head_dim = x.shape
    # Dh = [row pair halves a, b | column pair halves a, b], each of Dh / 4 dimensions.
    x32 = x.astype(jnp.float32).reshape(n, heads, 2, 2, head_dim // 4)
    a, b = x32[:, :, :, 0], x32[:, :, :, 1]
    rotated = jnp.stack([a * cos - b * sin, b * cos + a * sin], axis=3)
    return rotated.reshape(x.shape).astype(x.dtype)


def apply_rope(x: jax.Array, rows: jax.Array, cols: jax.Array, max_freq: float = 10.0) -> jax.Array:
    """2-D rotary position embedding of queries or keys.

    The first half of each head's dimensions rotates with the token's row, the second half
    with its column: each half is split into two quarters ``a, b`` and the pairs
    ``(a[i], b[i])`` turn by the angle of :func:`rope_tables`. The dot product of a rotated
    query at ``(r, c)`` and a rotated key at ``(r', c')`` therefore depends on the positions
    only through the offsets ``(r - r', c - c')``. Tokens without a grid cell (CLS, shape
    and latent tokens) sit at ``(0, 0)``, the identity rotation.

    Args:
        x: queries or keys ``(n, H, Dh)`` with ``Dh % 4 == 0`` (any float dtype; the
            rotation is computed in float32 and cast back).
        rows: row index of each token, ``(n,)``.
        cols: column index of each token, ``(n,)``.
        max_freq: the RoPE base (:attr:`ModelConfig.rope_max_freq`).

    Returns:
        The rotated array, shape and dtype of ``x``.

    Raises:
        ValueError: if ``x`` is not 3-D or its last dimension is not divisible by 4.
    """
    if jnp.ndim(x) != 3 or x.shape[-1] % 4:
        raise ValueError(f"x must be (n, H, Dh) with Dh divisible by 4, got {jnp.shape(x)}")
    return rotate(x, rope_tables(rows, cols, x.shape[-1], max_freq))
