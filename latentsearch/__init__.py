"""latentsearch: conditional-VAE utilities and test-time latent search for JAX.

Define an objective ``objective(z, *args) -> scalar`` (a log-likelihood to maximise),
pick a searcher and call :func:`search`::

    import jax, jax.numpy as jnp, optax, latentsearch as ls

    result = ls.search(ls.gradient_ascent(optax.adam(0.1, b2=0.9)), objective, z0,
                       key=jax.random.key(0), num_steps=100, args=(params, data))
    result.latents, result.scores, result.trace, result.num_evaluations

or step through a search with :func:`search_init`, :func:`search_step` and
:func:`search_finish` (``search`` is exactly that), stop each task when ``stop(value, aux)``
holds, infer a task's latent from its specification pairs in one call with :func:`infer`
(encode, aggregate, choose starts, search), and train with :func:`lpn_loss`. The public
names all live here; the modules under ``latentsearch._src`` are private.
"""

from latentsearch._src.aggregate import aggregate_mean, leave_one_out, product_of_experts
from latentsearch._src.core import (
    Evaluations,
    Objective,
    Searcher,
    SearchHistory,
    SearchResult,
    best_distinct,
    evaluate,
    scored,
    value_grad_aux,
)
from latentsearch._src.driver import search, search_finish, search_init, search_step
from latentsearch._src.evosax_adapter import evosax_strategy
from latentsearch._src.flows import GradientFlow, Implicit, StopGradient, Unrolled, implicit_point
from latentsearch._src.gaussian import DiagGaussian, pairwise_kl
from latentsearch._src.infer import Anchor, PairsAux, PairsObjective, Starts, infer, start_latents
from latentsearch._src.langevin import langevin
from latentsearch._src.loss import lpn_loss
from latentsearch._src.searchers import (
    evolution_strategy,
    gradient_ascent,
    hybrid,
    multi_start,
    random_search,
)
from latentsearch._src.state import SearchState
from latentsearch._version import __version__

__all__ = [
    "Anchor",
    "DiagGaussian",
    "Evaluations",
    "GradientFlow",
    "Implicit",
    "Objective",
    "PairsAux",
    "PairsObjective",
    "SearchHistory",
    "SearchResult",
    "SearchState",
    "Searcher",
    "Starts",
    "StopGradient",
    "Unrolled",
    "__version__",
    "aggregate_mean",
    "best_distinct",
    "evaluate",
    "evolution_strategy",
    "evosax_strategy",
    "gradient_ascent",
    "hybrid",
    "implicit_point",
    "infer",
    "langevin",
    "leave_one_out",
    "lpn_loss",
    "multi_start",
    "pairwise_kl",
    "product_of_experts",
    "random_search",
    "scored",
    "search",
    "search_finish",
    "search_init",
    "search_step",
    "start_latents",
    "value_grad_aux",
]
