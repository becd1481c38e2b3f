"""Search specifications: strings (``grad:100``, ``sample:250``...) parsed once into plain data.

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

A :class:`SearchSpec` is plain data (no JAX): equal texts and settings give equal, hashable
specs, so whatever is compiled for one is reused for the other. The library searcher it
describes is built by :func:`lpn_arc.search.build_search`, one layer up.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FLOWS", "KINDS", "OPTIMIZERS", "SearchSpec", "parse_search"]

FLOWS = ("stop_gradient", "unrolled", "implicit")
"""How training differentiates through a search (``grad:K``, ``grad:K:unrolled``...)."""
OPTIMIZERS = ("clip-adam", "adam")
"""Latent optimisers of gradient search (see the module docstring)."""
KINDS = ("mean", "grad", "sample", "es", "hybrid")
"""The first word of a search specification (see the module docstring)."""


@dataclass(frozen=True)
class SearchSpec:
    """A parsed search, as plain data.

    Attributes:
        text: the specification it was parsed from (e.g. ``"grad:100"``).
        kind: its first word, one of :data:`KINDS`.
        steps: search steps (``grad``, ``es``, ``hybrid``; 0 for ``mean``, 1 for ``sample``).
        samples: candidates of ``sample`` and ``hybrid``.
        population: evaluations per step of ``es``.
        flow: how training differentiates through it, one of :data:`FLOWS`.
        lr: learning rate of gradient steps.
        scale: standard deviation of sampled candidates.
        sigma: perturbation scale of ``es``.
        optimizer: the latent optimiser, one of :data:`OPTIMIZERS`.
    """

    text: str
    kind: str
    steps: int = 0
    samples: int = 0
    population: int = 0
    flow: str = "stop_gradient"
    lr: float = 0.1
    scale: float = 0.5
    sigma: float = 0.1
    optimizer: str = "clip-adam"

    @property
    def num_steps(self) -> int:
        """The steps the search driver runs (``latentsearch.search``'s ``num_steps``).

        Example:
            >>> parse_search("grad:5:unrolled").num_steps, parse_search("sample:250").num_steps
            (5, 1)
        """
        return self.steps

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
        return self.steps if self.kind in ("mean", "grad") else None


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
        >>> spec.kind, spec.steps, spec.flow
        ('grad', 5, 'unrolled')
        >>> parse_search("sample:250") == parse_search("sample:250")
        True
    """
    if not isinstance(text, str):
        raise ValueError(f"search specification must be a string, got {text!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown search optimizer {optimizer!r}; expected one of {OPTIMIZERS}")
    settings = dict(lr=float(lr), scale=float(scale), sigma=float(sigma), optimizer=optimizer)
    parts = text.strip().split(":")
    kind, rest = parts[0], parts[1:]
    if kind == "mean" and not rest:
        return SearchSpec(text, kind, **settings)
    if kind == "grad" and len(rest) in (1, 2):
        steps = _positive(rest[0], "steps", text)
        flow = rest[1] if len(rest) == 2 else "stop_gradient"
        if flow not in FLOWS[1:] and len(rest) == 2:
            raise ValueError(
                f"search {text!r}: unknown gradient flow {flow!r} "
                "(expected 'unrolled', 'implicit' or nothing)"
            )
        return SearchSpec(text, kind, steps=steps, flow=flow, **settings)
    if kind == "sample" and len(rest) == 1:
        samples = _positive(rest[0], "samples", text)
        return SearchSpec(text, kind, steps=1, samples=samples, **settings)
    if kind == "es" and len(rest) == 2:
        population = _positive(rest[0], "population", text)
        if population % 2:
            raise ValueError(f"search {text!r}: population must be even, got {population}")
        steps = _positive(rest[1], "steps", text)
        return SearchSpec(text, kind, steps=steps, population=population, **settings)
    if kind == "hybrid" and len(rest) == 2:
        samples = _positive(rest[0], "samples", text)
        steps = _positive(rest[1], "steps", text)
        return SearchSpec(text, kind, steps=steps, samples=samples, **settings)
    raise ValueError(
        f"unknown search {text!r}; expected one of mean, grad:K, grad:K:unrolled, "
        "grad:K:implicit, sample:N, es:P:K, hybrid:N:K"
    )
