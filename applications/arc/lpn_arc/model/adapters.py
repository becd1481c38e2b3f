"""Functional adapters: the model as pure functions of an explicit parameter pytree.

These are the callables :mod:`latentsearch` takes (``encode``, ``log_likelihood``,
``precompute``) and the greedy decoder, each of ONE pair and usable under ``jax.jit``,
``jax.vmap`` and ``jax.grad``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
from flax import nnx

from latentsearch import DiagGaussian
from lpn_arc.data import Pair
from lpn_arc.model.lpn import LPNModel

__all__ = [
    "ModelFunctions",
    "count_params",
    "encode_fn",
    "generate_fn",
    "log_likelihood_exact_fn",
    "log_likelihood_fn",
    "model_functions",
    "precompute_fn",
    "split_model",
]


def split_model(model: LPNModel) -> tuple[nnx.GraphDef, nnx.State]:
    """Splits a model into its static graph and its parameter pytree.

    Args:
        model: an :class:`LPNModel` (concrete or from ``nnx.eval_shape``).

    Returns:
        ``(graphdef, params)``: ``params`` holds the ``nnx.Param`` state only.

    Raises:
        ValueError: if the model holds variables other than parameters.
    """
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    if jax.tree.leaves(rest):
        raise ValueError("LPNModel unexpectedly holds non-Param variables; split them apart")
    return graphdef, params


def _merge(graphdef: nnx.GraphDef, params: nnx.State) -> LPNModel:
    return nnx.merge(graphdef, params)


def encode_fn(
    graphdef: nnx.GraphDef,
) -> Callable[..., DiagGaussian]:
    """Pure encoder ``encode(params, pair, dropout_key=None) -> DiagGaussian`` (one pair).

    Args:
        graphdef: the graph from :func:`split_model`.

    Returns:
        A function usable under ``jax.jit``, ``jax.vmap`` and ``jax.grad``.
    """

    def encode(params: nnx.State, pair: Pair, dropout_key: jax.Array | None = None):
        return _merge(graphdef, params).encode(pair, dropout_key=dropout_key)

    return encode


def precompute_fn(graphdef: nnx.GraphDef) -> Callable[..., Pair]:
    """Pure ``precompute(params, pair) -> pair`` (one pair): see :meth:`LPNModel.precompute`.

    Example:
        >>> import jax.numpy as jnp
        >>> from lpn_arc.data import Pair
        >>> from lpn_arc.model import ModelConfig
        >>> cfg = ModelConfig(3, 3, 4, 1, 1, num_heads=2, head_dim=4, mlp_factor=1.0,
        ...                   decoder_mask="input-only")
        >>> graphdef, params = split_model(LPNModel(cfg, rngs=nnx.Rngs(0)))
        >>> grid = jnp.zeros((3, 3), jnp.int32)
        >>> pair = Pair(grid, jnp.array([2, 3]), grid, jnp.array([3, 3]))
        >>> precompute_fn(graphdef)(params, pair).cache["keys"].shape
        (1, 11, 2, 4)
    """

    def precompute(params: nnx.State, pair: Pair) -> Pair:
        return _merge(graphdef, params).precompute(pair)

    return precompute


def log_likelihood_fn(graphdef: nnx.GraphDef) -> Callable[..., jax.Array]:
    """Pure ``log_likelihood(params, z, pair, dropout_key=None) -> scalar`` (one pair).

    Args:
        graphdef: the graph from :func:`split_model`.

    Returns:
        A function usable under ``jax.jit``, ``jax.vmap`` and ``jax.grad``.
    """

    def log_likelihood(
        params: nnx.State, z: jax.Array, pair: Pair, dropout_key: jax.Array | None = None
    ) -> jax.Array:
        return _merge(graphdef, params).log_likelihood(z, pair, dropout_key=dropout_key)

    return log_likelihood


def log_likelihood_exact_fn(graphdef: nnx.GraphDef) -> Callable[..., tuple[jax.Array, jax.Array]]:
    """Pure ``(params, z, pair) -> (log_likelihood, exact)`` (one pair): the log-likelihood
    and whether greedy decoding reproduces the pair's output, from one forward pass (the
    objective of a search that stops once every specification pair is reproduced)."""

    def log_likelihood_exact(params: nnx.State, z: jax.Array, pair: Pair):
        terms = _merge(graphdef, params).log_likelihood_terms(z, pair)
        return terms["rows"] + terms["cols"] + terms["cells"], terms["exact"]

    return log_likelihood_exact


def generate_fn(
    graphdef: nnx.GraphDef, *, stop_early: bool = True
) -> Callable[..., tuple[jax.Array, jax.Array]]:
    """Pure cached greedy ``generate(params, z, inputs, input_shape) -> (grid, shape)``.

    Args:
        graphdef: the graph from :func:`split_model`.
        stop_early: see :meth:`LPNModel.generate`.

    Returns:
        A function usable under ``jax.jit`` and ``jax.vmap``.
    """

    def generate(
        params: nnx.State, z: jax.Array, inputs: jax.Array, input_shape: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        return _merge(graphdef, params).generate(z, inputs, input_shape, stop_early=stop_early)

    return generate


class ModelFunctions(NamedTuple):
    """The model's pure functions of one pair, built together from one graph.

    Attributes:
        encode: see :func:`encode_fn`.
        log_likelihood: see :func:`log_likelihood_fn`.
        log_likelihood_exact: see :func:`log_likelihood_exact_fn`.
        precompute: see :func:`precompute_fn`.
        generate: see :func:`generate_fn` (``stop_early=True``).
    """

    encode: Callable[..., DiagGaussian]
    log_likelihood: Callable[..., jax.Array]
    log_likelihood_exact: Callable[..., tuple[jax.Array, jax.Array]]
    precompute: Callable[..., Pair]
    generate: Callable[..., tuple[jax.Array, jax.Array]]


@functools.lru_cache(maxsize=16)
def model_functions(graphdef: nnx.GraphDef) -> ModelFunctions:
    """The :class:`ModelFunctions` of ``graphdef``, built once per graph and shared by
    training, evaluation and the explorer (the same function objects, so ``jax.jit``
    caches keyed by them are shared too).

    Example:
        >>> from lpn_arc.model import ModelConfig
        >>> cfg = ModelConfig(3, 3, 4, 1, 1, num_heads=2, head_dim=4, mlp_factor=1.0)
        >>> graphdef, params = split_model(LPNModel(cfg, rngs=nnx.Rngs(0)))
        >>> model_functions(graphdef) is model_functions(graphdef)
        True
        >>> sorted(model_functions(graphdef)._fields)[:2]
        ['encode', 'generate']
    """
    return ModelFunctions(
        encode=encode_fn(graphdef),
        log_likelihood=log_likelihood_fn(graphdef),
        log_likelihood_exact=log_likelihood_exact_fn(graphdef),
        precompute=precompute_fn(graphdef),
        generate=generate_fn(graphdef),
    )


def count_params(params: Any) -> int:
    """Number of scalars in a parameter pytree (arrays or ``ShapeDtypeStruct`` leaves).

    Args:
        params: a parameter pytree (e.g. from :func:`split_model`) or an ``nnx.Module``.

    Returns:
        The total number of parameters.
    """
    if isinstance(params, nnx.Module):
        params = nnx.state(params, nnx.Param)
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params))
