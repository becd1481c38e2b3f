"""latentsearch: conditional-VAE utilities and test-time latent search for JAX.

Define an objective ``objective(z, *args) -> scalar`` (a log-likelihood to maximise),
pick a searcher and call :func:`search`::

    import jax, jax.numpy as jnp, optax, latentsearch as ls

    result = ls.search(ls.gradient_ascent(optax.adam(0.1, b2=0.9)), objective, z0,
                       key=jax.random.key(0), num_steps=100, args=(params, data))
    result.latents, result.scores, result.trace, result.num_evaluations
"""

from latentsearch._version import __version__
from latentsearch.aggregate import aggregate_mean, leave_one_out, product_of_experts
from latentsearch.core import (
    Evaluations,
    Objective,
    Searcher,
    SearchHistory,
    SearchResult,
    evaluate,
    no_preparation,
    search,
)
from latentsearch.gaussian import DiagGaussian, pairwise_kl
from latentsearch.loss import GRADIENT_FLOWS, implicit_point, lpn_loss
from latentsearch.searchers import (
    evolution_strategy,
    gradient_ascent,
    hybrid,
    multi_start,
    random_search,
)

__all__ = [
    "GRADIENT_FLOWS",
    "DiagGaussian",
    "Evaluations",
    "Objective",
    "SearchHistory",
    "SearchResult",
    "Searcher",
    "__version__",
    "aggregate_mean",
    "evaluate",
    "evolution_strategy",
    "gradient_ascent",
    "hybrid",
    "implicit_point",
    "leave_one_out",
    "lpn_loss",
    "multi_start",
    "no_preparation",
    "pairwise_kl",
    "product_of_experts",
    "random_search",
    "search",
]
