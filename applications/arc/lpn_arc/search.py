"""Library searchers from search specifications: the one builder of training, evaluation and
the explorer.

:func:`build_search` turns a :class:`lpn_arc.config.SearchSpec` (plain data) into the
``latentsearch`` searcher, the number of driver steps and the gradient flow it describes.
It is cached by value, so equal specifications give the very same searcher object and
everything compiled for it (a jitted evaluation, a training step) is reused.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import optax

import latentsearch as ls
from lpn_arc.config import OPTIMIZERS, SearchSpec

__all__ = ["Search", "build_search", "search_optimizer"]

_FLOWS = {
    "stop_gradient": ls.StopGradient(),
    "unrolled": ls.Unrolled(checkpoint=True),
    "implicit": ls.Implicit(start_path=True),
}


class Search(NamedTuple):
    """A search ready for ``latentsearch``: the searcher, its driver steps and the gradient
    flow training uses through it."""

    searcher: ls.Searcher
    num_steps: int
    gradient_flow: ls.GradientFlow


def search_optimizer(name: str, lr: float) -> optax.GradientTransformation:
    """The latent optimiser ``name`` (one of :data:`lpn_arc.config.OPTIMIZERS`) at ``lr``:
    ``"clip-adam"`` (the official search: clip the gradient to norm 1 per task, then Adam
    with b2 0.9 and eps_root 1e-8) or ``"adam"`` (Adam with b2 0.9).

    Example:
        >>> import jax.numpy as jnp
        >>> opt = search_optimizer("clip-adam", 0.1)
        >>> updates, _ = opt.update(jnp.array([30.0, 40.0]), opt.init(jnp.zeros(2)))
        >>> [round(float(u), 3) for u in updates]  # Adam's first step: -lr * sign
        [-0.1, -0.1]
    """
    if name == "adam":
        return optax.adam(lr, b2=0.9)
    if name == "clip-adam":
        return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(lr, b2=0.9, eps_root=1e-8))
    raise ValueError(f"unknown search optimizer {name!r}; expected one of {OPTIMIZERS}")


@functools.lru_cache(maxsize=256)
def build_search(spec: SearchSpec) -> Search:
    """The library search of ``spec`` (cached: equal specs give the same objects).

    Example:
        >>> from lpn_arc.config import parse_search
        >>> built = build_search(parse_search("grad:5:unrolled"))
        >>> built.num_steps, built.gradient_flow
        (5, Unrolled(checkpoint=True))
        >>> build_search(parse_search("grad:5")) is build_search(parse_search("grad:5"))
        True
    """
    if not isinstance(spec, SearchSpec):
        raise ValueError(f"expected a SearchSpec (parse_search(...)), got {spec!r}")
    opt = search_optimizer(spec.optimizer, spec.lr)
    if spec.kind in ("mean", "grad"):
        searcher = ls.gradient_ascent(opt)
    elif spec.kind == "sample":
        searcher = ls.random_search(spec.samples, spec.scale, chunk_size=min(spec.samples, 50))
    elif spec.kind == "es":
        searcher = ls.evolution_strategy(spec.population, spec.sigma, opt)
    elif spec.kind == "hybrid":
        searcher = ls.hybrid(ls.random_search(spec.samples, spec.scale), ls.gradient_ascent(opt), 2)
    else:
        raise ValueError(f"unknown search kind {spec.kind!r} in {spec.text!r}")
    return Search(searcher, spec.num_steps, _FLOWS[spec.flow])
