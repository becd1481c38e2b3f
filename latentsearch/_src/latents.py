"""Latents as flat arrays or pytrees: the layout the driver flattens and restores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree


def _is_array_like(z: Any) -> bool:
    """Arrays, Python numbers and (nested) lists or tuples of numbers are flat latents."""
    if isinstance(z, jax.Array | np.ndarray | float | int):
        return True
    if isinstance(z, list | tuple) and not hasattr(z, "_fields"):
        return all(isinstance(leaf, float | int) for leaf in jax.tree_util.tree_leaves(z))
    return False


class LatentLayout(NamedTuple):
    """How one latent maps to a flat vector ``(D,)``: ``treedef is None`` for a flat latent,
    else the pytree's structure and its leaves' shapes and dtypes (hashable, so objectives
    wrapped with it keep jit's cache)."""

    treedef: Any
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[Any, ...]

    @property
    def is_flat(self) -> bool:
        return self.treedef is None

    @classmethod
    def of(cls, z0: Any, *, stacked: bool = False) -> LatentLayout:
        """The layout of ``z0``: an array ``(D,)``/``(S, D)``, or a pytree of floats."""
        if _is_array_like(z0):
            if stacked:
                raise ValueError(
                    "stacked=True is for pytree latents; an array z0 of shape "
                    "(S, D) already holds S starts"
                )
            z0 = jnp.asarray(z0)
            if z0.ndim not in (1, 2) or 0 in z0.shape:
                raise ValueError(
                    f"z0 must have shape (D,) for one start or (S, D) for S starts, with "
                    f"S, D >= 1; got shape {z0.shape}"
                )
            if not jnp.issubdtype(z0.dtype, jnp.floating):
                raise TypeError(f"z0 must be a floating-point array; got dtype {z0.dtype}")
            return cls(None, (), ())
        with_paths, treedef = jax.tree_util.tree_flatten_with_path(z0)
        if not with_paths:
            raise ValueError("z0 is an empty pytree; a latent needs at least one float array")
        leaves = [jnp.asarray(leaf) for _, leaf in with_paths]
        for (path, _), leaf in zip(with_paths, leaves, strict=True):
            if not jnp.issubdtype(leaf.dtype, jnp.floating):
                name = jax.tree_util.keystr(path)
                raise TypeError(
                    f"every leaf of z0 must be floating-point; z0{name} has dtype {leaf.dtype}"
                )
        if stacked:
            counts = {leaf.shape[0] if leaf.ndim else None for leaf in leaves}
            if len(counts) != 1 or None in counts or 0 in counts:
                raise ValueError(
                    f"stacked=True needs every leaf of z0 to have the same leading (starts) "
                    f"axis of size >= 1; got shapes {[leaf.shape for leaf in leaves]}"
                )
            shapes = tuple(leaf.shape[1:] for leaf in leaves)
        else:
            shapes = tuple(leaf.shape for leaf in leaves)
        if sum(int(np.prod(shape)) for shape in shapes) == 0:
            raise ValueError("z0 has no elements; a latent needs at least one number")
        return cls(treedef, shapes, tuple(leaf.dtype for leaf in leaves))

    @property
    def _flat_dtype(self):
        return jnp.result_type(*self.dtypes)

    def ravel_starts(self, z0: Any) -> Array:
        """The starts as a flat ``(S, D)`` array."""
        if self.is_flat:
            z0 = jnp.asarray(z0)
            return z0 if z0.ndim == 2 else z0[None]
        leaves = jax.tree_util.tree_leaves(z0)
        count = 1 if leaves[0].ndim == len(self.shapes[0]) else leaves[0].shape[0]
        dtype = self._flat_dtype
        flat = [jnp.reshape(jnp.asarray(leaf, dtype), (count, -1)) for leaf in leaves]
        return jnp.concatenate(flat, axis=1)

    def unravel(self, flat: Array) -> PyTree:
        """One flat latent ``(D,)`` back to the pytree."""
        return self.unravel_many(flat[None], leading=False)

    def unravel_many(self, flat: Array, *, leading: bool = True) -> PyTree:
        """Flat latents ``(K, D)`` to the pytree with a leading axis ``K`` on every leaf."""
        sizes = [int(np.prod(shape)) for shape in self.shapes]
        pieces = jnp.split(flat, np.cumsum(sizes)[:-1], axis=-1)
        leaves = []
        for piece, shape, dtype in zip(pieces, self.shapes, self.dtypes, strict=True):
            full = piece.reshape(flat.shape[:-1] + shape).astype(dtype)
            leaves.append(full if leading else full[0])
        return jax.tree_util.tree_unflatten(self.treedef, leaves)

    def flat_objective(self, objective: Callable) -> Callable:
        """``objective`` as a function of the flat latent (itself for a flat layout)."""
        return objective if self.is_flat else _OnFlat(objective, self)


class _OnFlat(NamedTuple):
    """``objective(unravel(z), *args)``; hashable, so jit keeps one compilation."""

    objective: Callable
    layout: LatentLayout

    def __call__(self, z, *args):
        return self.objective(self.layout.unravel(z), *args)
