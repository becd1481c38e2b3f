"""Search specifications as strings (``grad:100``, ``sample:250``...) -> latentsearch searchers.

Grammar (``K`` steps, ``N`` samples, ``P`` population; all positive integers):

============================  ================================================================
``mean``                      the starting latent alone ("Grad 0"), no search
``grad:K``                    ``K`` steps of gradient ascent (``optimizer``, ``lr``)
``grad:K:unrolled``           same; in training, exact gradients through the steps
                              (``ls.Unrolled(checkpoint=True)``)
``grad:K:implicit``           same; in training, implicit-function-theorem gradients plus the
                              start's path to the encoder (``ls.Implicit(start_path=True)``:
                              the theorem alone gives the encoder nothing at an optimum)
``sample:N``                  ``N`` Gaussian samples around the start (scale ``scale``)
``es:P:K``                    ``K`` steps of an antithetic evolution strategy, population ``P``
``hybrid:N:K``                ``N`` samples, then ``K`` gradient steps from the best 2
============================  ================================================================

Gradient steps (``grad``, ``es`` and the refinement of ``hybrid``) use ``optimizer``:
``"clip-adam"`` (default, the official search: ``chain(clip_by_global_norm(1.0),
adam(lr, b2=0.9, eps_root=1e-8))``, the clipping per task rather than over a device batch)
or ``"adam"`` (``adam(lr, b2=0.9)`` alone).
"""

from __future__ import annotations

from dataclasses import dataclass

import optax

import latentsearch as ls

__all__ = ["KINDS", "OPTIMIZERS", "SearchSpec", "parse_search", "search_optimizer"]

_FLOWS = {
    "stop_gradient": ls.StopGradient(),
    "unrolled": ls.Unrolled(checkpoint=True),
    "implicit": ls.Implicit(start_path=True),
}

OPTIMIZERS = ("clip-adam", "adam")
"""Latent optimisers of gradient search (see the module docstring)."""
KINDS = ("mean", "grad", "sample", "es", "hybrid")
"""The first word of a search specification (see the module docstring)."""


def search_optimizer(name: str, lr: float) -> optax.GradientTransformation:
    """The latent optimiser ``name`` (one of :data:`OPTIMIZERS`) at learning rate ``lr``.

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


@dataclass(frozen=True)
class SearchSpec:
    """A parsed search: the searcher, its number of driver steps and the gradient flow.

    Attributes:
        text: the specification it was parsed from (e.g. ``"grad:100"``).
        searcher: the ``latentsearch.Searcher``.
        num_steps: steps to pass to ``latentsearch.search`` / ``lpn_loss``.
        gradient_flow: how training differentiates through the search (a
            ``latentsearch`` gradient flow).
        kind: the specification's first word, one of :data:`KINDS` (``"custom"`` for a
            spec built by hand around another searcher).
    """

    text: str
    searcher: ls.Searcher
    num_steps: int
    gradient_flow: ls.GradientFlow = ls.StopGradient()
    kind: str = "custom"

    @property
    def gradient_steps(self) -> int | None:
        """Gradient-ascent steps from the start latent: 0 for ``mean``, ``K`` for ``grad:K``
        (any gradient flow), None for the other searches (sampling, ES, hybrid).

        Example:
            >>> parse_search("mean").gradient_steps, parse_search("grad:10:unrolled").gradient_steps
            (0, 10)
            >>> parse_search("sample:5").gradient_steps is None
            True
        """
        return self.num_steps if self.kind in ("mean", "grad") else None


def _positive(value: str, what: str, text: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0 or (number == 0 and what != "steps"):
        raise ValueError(f"search {text!r}: {what} must be a positive integer, got {value!r}")
    return number


def parse_search(
    text: str,
    *,
    lr: float = 0.1,
    scale: float = 0.5,
    sigma: float = 0.1,
    optimizer: str = "clip-adam",
) -> SearchSpec:
    """Parses a search specification string.

    Args:
        text: see the module docstring for the grammar.
        lr: learning rate of gradient steps (paper: Adam 0.1 with b2 0.9).
        scale: standard deviation of ``sample`` candidates (paper: 0.5).
        sigma: perturbation scale of ``es``.
        optimizer: the latent optimiser of gradient steps, one of :data:`OPTIMIZERS`.

    Raises:
        ValueError: naming the offending part of an unknown or malformed specification.

    Example:
        >>> spec = parse_search("grad:5:unrolled")
        >>> spec.num_steps, spec.gradient_flow
        (5, Unrolled(checkpoint=True))
        >>> parse_search("sample:250").num_steps
        1
    """
    if not isinstance(text, str):
        raise ValueError(f"search specification must be a string, got {text!r}")
    parts = text.strip().split(":")
    kind, rest = parts[0], parts[1:]
    opt = search_optimizer(optimizer, lr)
    if kind == "mean" and not rest:
        return SearchSpec(text, ls.gradient_ascent(opt), 0, kind=kind)
    if kind == "grad" and len(rest) in (1, 2):
        steps = _positive(rest[0], "steps", text)
        flow = rest[1] if len(rest) == 2 else "stop_gradient"
        if flow not in _FLOWS:
            raise ValueError(
                f"search {text!r}: unknown gradient flow {flow!r} "
                "(expected 'unrolled', 'implicit' or nothing)"
            )
        return SearchSpec(text, ls.gradient_ascent(opt), steps, _FLOWS[flow], kind)
    if kind == "sample" and len(rest) == 1:
        samples = _positive(rest[0], "samples", text)
        searcher = ls.random_search(samples, scale, chunk_size=min(samples, 50))
        return SearchSpec(text, searcher, 1, kind=kind)
    if kind == "es" and len(rest) == 2:
        population = _positive(rest[0], "population", text)
        if population % 2:
            raise ValueError(f"search {text!r}: population must be even, got {population}")
        steps = _positive(rest[1], "steps", text)
        return SearchSpec(text, ls.evolution_strategy(population, sigma, opt), steps, kind=kind)
    if kind == "hybrid" and len(rest) == 2:
        samples = _positive(rest[0], "samples", text)
        steps = _positive(rest[1], "steps", text)
        searcher = ls.hybrid(ls.random_search(samples, scale), ls.gradient_ascent(opt), 2)
        return SearchSpec(text, searcher, steps, kind=kind)
    raise ValueError(
        f"unknown search {text!r}; expected one of mean, grad:K, grad:K:unrolled, "
        "grad:K:implicit, sample:N, es:P:K, hybrid:N:K"
    )
