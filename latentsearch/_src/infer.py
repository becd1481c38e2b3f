"""One inference call: encode the specification, aggregate, choose starts, search."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray, PyTree

from latentsearch._src import flows as flows_lib
from latentsearch._src.aggregate import aggregate_mean, product_of_experts
from latentsearch._src.core import Searcher, SearchResult
from latentsearch._src.driver import search
from latentsearch._src.gaussian import DiagGaussian

__all__ = ["PairsAux", "PairsObjective", "Anchor", "Starts", "infer", "start_latents"]

_AGGREGATIONS = ("mean", "poe")


class Starts(NamedTuple):
    """Where a search over a task's latent starts: any mix of the choices below, in this
    order (the first start is the one :class:`~latentsearch.StopGradient` moves from).

    Attributes:
        aggregate: ``"mean"``: the aggregate of the specification pairs' posterior means;
            ``"sample"``: the aggregate of one sample of each pair's posterior (with
            ``aggregation="poe"``: a sample of the product); ``None``: no aggregate start.
        pairs: each specification pair's own posterior mean (a padding pair's start is the
            aggregate of the means).
        random: random restarts around the aggregate of the means:
            ``mean + scale * N(0, I)``.
        scale: their standard deviation.

    Example:
        >>> import jax, jax.numpy as jnp, latentsearch as ls
        >>> posterior = ls.DiagGaussian(jnp.array([[0.0, 0.0], [2.0, 4.0]]), jnp.zeros((2, 2)))
        >>> ls.start_latents(posterior, jax.random.key(0),
        ...                  starts=ls.Starts(pairs=True, random=3)).shape
        (6, 2)
    """

    aggregate: Literal["mean", "sample"] | None = "mean"
    pairs: bool = False
    random: int = 0
    scale: float = 1.0


class Anchor(NamedTuple):
    """Adds a log-density to the objective: MAP instead of maximum likelihood.

    ``anchored(z, gaussian, *args) = objective(z, *args) + weight * gaussian.log_prob(z)``
    keeps a search near the region the decoder was trained on. With :func:`infer`, ``to``
    chooses the Gaussian: ``"prior"`` (``N(0, I)``) or ``"posterior"`` (the product of the
    specification pairs' posteriors and the prior). With :func:`search`, wrap the objective
    with :meth:`wrap` and pass the Gaussian as the first extra argument.

    Attributes:
        weight: the weight of the log-density (``>= 0``; ``0`` changes nothing).
        to: ``"prior"`` or ``"posterior"`` (read by :func:`infer`).

    Example:
        >>> import jax, jax.numpy as jnp, optax, latentsearch as ls
        >>> objective = lambda z: -jnp.sum((z - 4.0) ** 2)         # optimum at 4
        >>> prior = ls.DiagGaussian(jnp.zeros(1), jnp.zeros(1))    # N(0, 1)
        >>> r = ls.search(ls.gradient_ascent(optax.sgd(0.1)), ls.Anchor(2.0).wrap(objective),
        ...               jnp.zeros(1), key=jax.random.key(0), num_steps=200, args=(prior,))
        >>> round(float(r.best[0]), 3)   # argmax of -(z-4)^2 - z^2: z = 2
        2.0
    """

    weight: float = 1.0
    to: Literal["prior", "posterior"] = "posterior"

    def wrap(self, objective: Callable) -> Callable:
        """``objective`` plus ``weight * gaussian.log_prob(z)``, the Gaussian first in args."""
        return _Anchored(objective, float(self.weight))


class _Anchored(NamedTuple):
    objective: Callable
    weight: float
    has_aux: bool = False

    def __call__(self, z, gaussian, *args):
        out = self.objective(z, *args)
        if self.has_aux:
            return out[0] + self.weight * gaussian.log_prob(z), out[1]
        return out + self.weight * gaussian.log_prob(z)


class PairsAux(NamedTuple):
    """The auxiliary output of a :class:`PairsObjective` with ``has_aux``: what ``stop``
    sees of the specification pairs at a point.

    Attributes:
        values: ``(N,)`` each pair's log-likelihood.
        aux: each pair's auxiliary output (leaves with the pair axis first).
        mask: ``(N,)`` the real (non-padding) pairs.
    """

    values: Array
    aux: Any
    mask: Array


class PairsObjective(NamedTuple):
    """The objective that :func:`infer` searches: ``J(z, params, pairs, pair_mask) =
    sum_i mask_i * log_likelihood(params, z, pair_i)``. Hashable, so jit keeps one
    compilation per log-likelihood.

    With ``has_aux``, ``log_likelihood`` returns ``(value, aux)`` per pair and the objective
    returns ``(J, PairsAux(values, aux, mask))``, e.g. to stop a search once every real pair
    is reproduced (``stop=lambda value, a: jnp.all(a.aux | ~a.mask)``).

    Example:
        >>> import jax.numpy as jnp, latentsearch as ls
        >>> loglik = lambda p, z, pair: -jnp.sum((z - pair) ** 2)
        >>> J = ls.PairsObjective(loglik)
        >>> float(J(jnp.zeros(1), None, jnp.array([[1.0], [2.0], [9.0]]), jnp.array([1, 1, 0])))
        -5.0
    """

    log_likelihood: Callable
    has_aux: bool = False

    def __call__(self, z, params, pairs, pair_mask):
        out = jax.vmap(self.log_likelihood, in_axes=(None, None, 0))(params, z, pairs)
        values, aux = out if self.has_aux else (out, None)
        total = jnp.sum(jnp.where(pair_mask, values, 0.0))
        return (total, PairsAux(values, aux, pair_mask)) if self.has_aux else total


def _pair_count(pairs: PyTree, name: str = "pairs") -> int:
    leaves = jax.tree_util.tree_leaves(pairs)
    if not leaves:
        raise ValueError(f"{name} is an empty pytree; it needs leaves with the pair axis first")
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
    if len(sizes) != 1 or None in sizes:
        shapes = [jnp.shape(x) for x in leaves]
        raise ValueError(
            f"every leaf of {name} must have the same leading (pair) axis; got shapes {shapes}"
        )
    return sizes.pop()


def _pair_mask(pair_mask: ArrayLike | None, n: int) -> Bool[Array, " N"]:
    if pair_mask is None:
        return jnp.ones((n,), bool)
    mask = jnp.asarray(pair_mask)
    if mask.shape != (n,):
        raise ValueError(f"pair_mask must have shape ({n},) for {n} pairs; got {mask.shape}")
    return mask.astype(bool)


def _check_posterior(posterior: DiagGaussian, n: int | None = None) -> None:
    if not isinstance(posterior, DiagGaussian):
        raise TypeError(f"the posterior must be a DiagGaussian; got {type(posterior).__name__}")
    if posterior.mean.ndim != 2:
        raise ValueError(
            f"the posterior must hold one Gaussian per pair, mean of shape (N, D); got "
            f"{posterior.mean.shape} (encode(params, pair) must return a DiagGaussian of "
            f"shape (D,))"
        )
    if n is not None and posterior.mean.shape[0] != n:
        raise ValueError(f"the posterior holds {posterior.mean.shape[0]} Gaussians for {n} pairs")


def _check_starts(starts: Starts, aggregation: str) -> None:
    if not isinstance(starts, Starts):
        raise TypeError(f"starts must be a latentsearch.Starts; got {type(starts).__name__}")
    if starts.aggregate not in ("mean", "sample", None):
        raise ValueError(
            f"Starts.aggregate must be 'mean', 'sample' or None; got {starts.aggregate!r}"
        )
    if isinstance(starts.random, bool) or not isinstance(starts.random, int) or starts.random < 0:
        raise ValueError(f"Starts.random must be an int >= 0; got {starts.random!r}")
    if starts.random and not 0 < starts.scale < float("inf"):
        raise ValueError(f"Starts.scale must be > 0 and finite; got {starts.scale!r}")
    if starts.aggregate is None and not starts.pairs and not starts.random:
        raise ValueError("Starts chooses no start: set aggregate, pairs or random")
    if aggregation not in _AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {_AGGREGATIONS}; got {aggregation!r}")


def start_latents(
    posterior: DiagGaussian,
    key: PRNGKeyArray,
    *,
    pair_mask: Bool[ArrayLike, " N"] | None = None,
    aggregation: Literal["mean", "poe"] = "mean",
    starts: Starts = Starts(),
) -> Float[Array, "S D"]:
    """The starts of a task's search from its pairs' posteriors (see :class:`Starts`).

    Args:
        posterior: one Gaussian per specification pair, ``mean`` of shape ``(N, D)``.
        key: PRNG key for ``"sample"`` and random restarts.
        pair_mask: ``(N,)`` real (non-padding) pairs.
        aggregation: ``"mean"`` of the pairs' latents (the paper) or ``"poe"``, the product
            of their Gaussians and the prior.
        starts: which starts, in order.

    Returns:
        ``(S, D)`` starts.

    Example:
        >>> import jax, jax.numpy as jnp, latentsearch as ls
        >>> posterior = ls.DiagGaussian(jnp.array([[0.0], [2.0], [9.0]]), jnp.zeros((3, 1)))
        >>> ls.start_latents(posterior, jax.random.key(0), pair_mask=jnp.array([1, 1, 0]),
        ...                  starts=ls.Starts(pairs=True))[:, 0].tolist()
        [1.0, 0.0, 2.0, 1.0]
    """
    _check_posterior(posterior)
    _check_starts(starts, aggregation)
    mask = _pair_mask(pair_mask, posterior.mean.shape[0])
    sampled = None
    if aggregation == "poe":
        product = product_of_experts(posterior, mask, axis=0, include_prior=True)
        centre = product.mean
        sampled = product.sample(key) if starts.aggregate == "sample" else None
    else:
        centre = aggregate_mean(posterior.mean, mask, axis=0)
        if starts.aggregate == "sample":
            sampled = aggregate_mean(posterior.sample(key), mask, axis=0)
    rows = []
    if starts.aggregate is not None:
        rows.append((centre if starts.aggregate == "mean" else sampled)[None])
    if starts.pairs:
        rows.append(jnp.where(mask[:, None], posterior.mean, centre))
    if starts.random:
        noise = jax.random.normal(
            jax.random.fold_in(key, 1), (starts.random, centre.shape[-1]), centre.dtype
        )
        rows.append(centre + starts.scale * noise)
    return jnp.concatenate(rows)


def infer(
    params: PyTree,
    log_likelihood: Callable[[PyTree, Array, PyTree], Array],
    pairs: PyTree,
    key: PRNGKeyArray,
    *,
    searcher: Searcher,
    num_steps: int | None = None,
    max_evaluations: int | None = None,
    encode: Callable[[PyTree, PyTree], DiagGaussian] | None = None,
    posterior: DiagGaussian | None = None,
    pair_mask: Bool[ArrayLike, " N"] | None = None,
    aggregation: Literal["mean", "poe"] = "mean",
    starts: Starts = Starts(),
    keep: int = 1,
    precompute: Callable[[PyTree, PyTree], PyTree] | None = None,
    gradient_flow: flows_lib.GradientFlow | None = None,
    anchor: Anchor | None = None,
    target: float | ArrayLike | None = None,
    has_aux: bool = False,
    stop: Callable[[Array, Any], Array] | None = None,
    history: bool = False,
) -> SearchResult:
    """Infers a task's latent from its specification pairs: encode, aggregate, search.

    Encodes every pair (``encode``, or the given ``posterior``), chooses the starts
    (:func:`start_latents`), and searches the objective
    ``J(z) = sum_i mask_i * log_likelihood(params, z, pair_i)`` (:class:`PairsObjective`,
    plus an :class:`Anchor`'s log-density) with ``searcher``. Batch over tasks with
    ``jax.vmap``.

    Args:
        params: the model parameters (any pytree), passed to ``encode`` and
            ``log_likelihood``.
        log_likelihood: ``log_likelihood(params, z, pair) -> scalar`` for one pair.
        pairs: the task's specification pairs: a pytree whose leaves have the pair axis
            ``N`` first.
        key: PRNG key (a sampled start, random restarts, stochastic searchers). The search
            gets ``key`` itself and the starts ``fold_in(key, 1)``.
        searcher: e.g. ``gradient_ascent(optax.adam(0.1, b2=0.9))``.
        num_steps: searcher steps; or ``max_evaluations``, a budget of objective
            evaluations (see :func:`search`).
        encode: ``encode(params, pair) -> DiagGaussian`` of shape ``(D,)``.
        posterior: instead of ``encode``: the pairs' Gaussians already computed, mean of
            shape ``(N, D)`` (then ``pairs`` only feeds ``log_likelihood``).
        pair_mask: ``(N,)`` real (non-padding) pairs.
        aggregation: ``"mean"`` or ``"poe"`` (see :func:`start_latents`).
        starts: which starts (:class:`Starts`).
        keep: how many best distinct latents to return (empty slots score ``-inf``).
        precompute: ``precompute(params, pair) -> pair``: whatever ``log_likelihood``
            needs that does not depend on ``z`` (e.g. a decoder's keys and values of the
            pair's input), computed once per pair instead of at every evaluation;
            ``encode`` still gets the plain pair.
        gradient_flow: how derivatives go through the search (default
            :class:`StopGradient`).
        anchor: an optional :class:`Anchor` (MAP search).
        target: stop once the best score reaches it (see :func:`search`).
        has_aux: ``log_likelihood`` returns ``(value, aux)`` per pair; ``stop`` then gets
            a :class:`PairsAux`.
        stop: ``stop(value, aux) -> bool``: end the search at the first point where it
            holds (see :func:`search`).
        history: record the search's path (see :func:`search`).

    Returns:
        The :class:`SearchResult` of the search (``result.best`` is the inferred latent).

    Example:
        >>> import jax, jax.numpy as jnp, optax, latentsearch as ls
        >>> encode = lambda p, pair: ls.DiagGaussian(jnp.zeros(2), jnp.zeros(2))
        >>> loglik = lambda p, z, pair: -jnp.sum((pair["x"] + z - pair["y"]) ** 2)
        >>> pairs = {"x": jnp.zeros((3, 2)), "y": jnp.array([[1.0, 2.0]] * 3)}
        >>> r = ls.infer(None, loglik, pairs, jax.random.key(0), encode=encode,
        ...              searcher=ls.gradient_ascent(optax.sgd(0.1)), num_steps=20)
        >>> r.best.round(3).tolist(), int(r.num_evaluations)
        ([1.0, 2.0], 21)
    """
    n = _pair_count(pairs)
    mask = _pair_mask(pair_mask, n)
    if (encode is None) == (posterior is None):
        raise ValueError("give exactly one of encode (to encode the pairs) and posterior")
    if posterior is None:
        if not callable(encode):
            raise TypeError(f"encode must be callable; got {type(encode).__name__}")
        posterior = jax.vmap(encode, in_axes=(None, 0))(params, pairs)
    _check_posterior(posterior, n)
    z0 = start_latents(
        posterior,
        jax.random.fold_in(key, 1),
        pair_mask=mask,
        aggregation=aggregation,
        starts=starts,
    )
    scored = pairs if precompute is None else jax.vmap(precompute, in_axes=(None, 0))(params, pairs)
    objective: Callable = PairsObjective(log_likelihood, bool(has_aux))
    args: tuple = (params, scored, mask)
    if anchor is not None:
        if not isinstance(anchor, Anchor) or anchor.to not in ("prior", "posterior"):
            raise ValueError(
                f"anchor must be Anchor(weight, 'prior' | 'posterior'); got {anchor!r}"
            )
        if anchor.to == "prior":
            gaussian = DiagGaussian(jnp.zeros_like(z0[0]), jnp.zeros_like(z0[0]))
        else:
            gaussian = product_of_experts(posterior, mask, axis=0, include_prior=True)
        anchored = _Anchored(objective, float(anchor.weight), bool(has_aux))
        objective, args = anchored, (gaussian, *args)
    return search(
        searcher,
        objective,
        z0,
        key=key,
        num_steps=num_steps,
        max_evaluations=max_evaluations,
        args=args,
        keep=keep,
        target=target,
        has_aux=has_aux,
        stop=stop,
        history=history,
        gradient_flow=flows_lib.StopGradient() if gradient_flow is None else gradient_flow,
    )
