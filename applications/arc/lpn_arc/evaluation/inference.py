"""Inference through ``latentsearch.infer``: search, then decode two attempts, per query.

Per query (one query: specification pairs with a mask, and a query input):

1. encode the specification pairs; the start latent is the mean of the encoder *means*
   (``start="mean"``, deterministic) or, as the official code, the mean of latents
   *sampled* from each pair's posterior (``start="sample"``);
2. search latent space with ``latentsearch.search``, maximising the sum over the
   specification pairs of the decoder log-likelihood;
3. decode attempt 1 from the best latent; attempt 2 (``attempt2="distinct"``) from the
   best-ranked of the next best distinct latents whose output differs from attempt 1, or
   (``attempt2="official"``) from the second-best latent visited, whatever it decodes to.
   Both equal attempt 1 when the search visits a single point (``mean``, ``grad:0``).

:func:`run_queries` runs many queries in padded batches of one compiled, ``vmap``-ed
function; :func:`lpn_arc.evaluation.evaluate_tasks` and
:func:`lpn_arc.evaluation.evaluate_arc` build their queries and score the attempts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import latentsearch as ls
from lpn_arc.config import SearchSpec
from lpn_arc.model import model_functions
from lpn_arc.search import build_search

__all__ = ["STARTS", "STOPS", "batch_fn", "check_choice", "run_queries", "stop_probability"]

STARTS = ("mean", "sample")
"""Start latents: the mean of the encoder means, or of sampled per-pair latents."""
STOPS = ("none", "exact", "exact:P")
"""When a query's search ends: after its whole budget (``"none"``), at the first latent whose
greedy decoding reproduces every specification pair exactly (``"exact"``), or at the first
that does so and gives every specification pair a probability of at least ``P`` (``"exact:P"``,
``0 <= P < 1``; ``"exact"`` is ``"exact:0"``): a margin that keeps searching a latent that
decodes the pairs right by a hair."""


def stop_probability(stop: str) -> float | None:
    """The probability threshold of a stop rule: None for ``"none"``, 0 for ``"exact"``.

    Raises:
        ValueError: for any other text than those of :data:`STOPS`.

    Example:
        >>> stop_probability("none"), stop_probability("exact"), stop_probability("exact:0.9")
        (None, 0.0, 0.9)
    """
    if stop == "none":
        return None
    name, colon, text = stop.partition(":") if isinstance(stop, str) else ("", "", "")
    try:
        probability = float(text) if colon else 0.0  # "exact:" has no P: refused below
    except ValueError:
        probability = -1.0
    if name != "exact" or not 0.0 <= probability < 1.0:
        raise ValueError(f"stop must be 'none', 'exact' or 'exact:P' with 0 <= P < 1, got {stop!r}")
    return probability


def _every_pair_exact(probability: float) -> Callable[[jax.Array, ls.PairsAux], jax.Array]:
    """The stop rule of ``"exact:P"``: every real specification pair is reproduced by greedy
    decoding and has a log-likelihood of at least ``log(P)``."""
    floor = float(np.log(probability)) if probability > 0 else -np.inf

    def stop(value: jax.Array, pairs: ls.PairsAux) -> jax.Array:
        return jnp.all((pairs.aux & (pairs.values >= floor)) | ~pairs.mask)

    return stop


def _query_fn(
    graphdef: nnx.GraphDef, spec: SearchSpec, candidates: int, start: str, stop: str = "none"
) -> Callable[..., dict[str, jax.Array]]:
    """The per-query computation (one query, no batch axis).

    ``(params, spec_pairs, spec_mask, query_inputs, query_input_shapes, key) -> results``:
    ``spec_pairs`` holds ``P`` (padded) specification pairs of which ``spec_mask`` marks the
    real ones, so tasks with any number of pairs share one compiled function. The results
    hold three attempts: the best latent's decoding, the distinct rule's second attempt and
    the official rule's (the second-best latent's decoding).
    """
    built = build_search(spec)
    functions = model_functions(graphdef)
    encode, precompute, generate = functions.encode, functions.precompute, functions.generate
    probability = stop_probability(stop)
    exact = probability is not None and spec.num_steps > 0
    log_likelihood = functions.log_likelihood_exact if exact else functions.log_likelihood

    starts = ls.Starts(aggregate="mean" if start == "mean" else "sample")
    # a search without steps visits one latent: decode it once, not ``candidates`` times
    keep = 1 if spec.num_steps == 0 else candidates

    def one_query(params, spec_pairs, spec_mask, query_inputs, query_input_shapes, key):
        # the input cache of the input-only mask (precompute) is built once per pair
        result = ls.infer(
            params,
            log_likelihood,
            spec_pairs,
            key,
            encode=encode,
            pair_mask=spec_mask,
            starts=starts,
            searcher=built.searcher,
            num_steps=built.num_steps,
            keep=keep,
            precompute=precompute,
            has_aux=exact,
            stop=_every_pair_exact(probability) if exact else None,
        )

        def decode(z):
            return generate(params, z, query_inputs, query_input_shapes)

        grids, shapes = jax.vmap(decode)(result.latents)
        found = jnp.isfinite(result.scores)
        ranks = jnp.arange(grids.shape[0])
        # Distinct rule: the best-ranked other latent whose decoding differs from attempt 1
        # (attempt 1 again when every candidate decodes to the same grid).
        differs = jnp.any(grids != grids[0], axis=(1, 2)) | jnp.any(shapes != shapes[0], axis=1)
        differs = differs & found & (ranks > 0)
        distinct = jnp.where(jnp.any(differs), jnp.argmax(differs), 0)
        # Official rule: the second-best latent visited, whatever it decodes to.
        official = jnp.where(found[1], 1, 0) if grids.shape[0] > 1 else jnp.asarray(0)
        chosen = jnp.stack([0, distinct, official])
        return {
            "grids": grids[chosen].astype(jnp.int32),
            "shapes": shapes[chosen].astype(jnp.int32),
            "scores": result.scores[chosen].astype(jnp.float32),
            "trace": result.trace.astype(jnp.float32),
            "evaluations": result.num_evaluations.astype(jnp.int32),
        }

    return one_query


def _batch_fn_uncached(
    graphdef: nnx.GraphDef, spec: SearchSpec, candidates: int, start: str, stop: str
) -> Callable[..., Any]:
    one_query = _query_fn(graphdef, spec, candidates, start, stop)
    return jax.jit(jax.vmap(one_query, in_axes=(None, 0, 0, 0, 0, 0)))


@functools.lru_cache(maxsize=32)
def _batch_fn_cached(graphdef, spec: SearchSpec, candidates: int, start: str, stop: str):
    return _batch_fn_uncached(graphdef, spec, candidates, start, stop)


def batch_fn(
    graphdef: nnx.GraphDef, spec: SearchSpec, candidates: int, start: str, stop: str = "none"
) -> Callable[..., Any]:
    """One jitted, query-vmapped function per (graph, spec); jit caches per batch shape.

    ``(params, spec_pairs, spec_mask, query_inputs, query_input_shapes, keys) -> results``
    with a leading query axis on every argument but ``params`` (see :func:`run_queries`).
    """
    try:
        return _batch_fn_cached(graphdef, spec, candidates, start, stop)
    except TypeError:  # unhashable graph or searcher: no cross-call cache
        return _batch_fn_uncached(graphdef, spec, candidates, start, stop)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """Raises ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


_QUERY_KEYS = ("spec_pairs", "spec_mask", "query_inputs", "query_input_shapes")


def run_queries(
    graphdef: nnx.GraphDef,
    params: Any,
    queries: dict[str, Any],
    spec: SearchSpec,
    key: jax.Array,
    *,
    batch_size: int,
    candidates: int,
    start: str,
    progress: bool,
    ids: np.ndarray | None = None,
    stop: str = "none",
) -> dict[str, np.ndarray]:
    """Runs search + decoding for ``Q`` queries in padded batches; numpy results ``(Q, ...)``.

    Query ``q`` uses the key ``fold_in(key, ids[q])`` (``ids`` defaults to ``0..Q-1``), so
    results do not depend on ``batch_size``.
    """
    if not isinstance(spec, SearchSpec):
        raise ValueError(f"spec must be a SearchSpec (parse_search(...)), got {spec!r}")
    check_choice("start", start, STARTS)
    stop_probability(stop)  # raises ValueError for a bad rule
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 2:
        raise ValueError(f"candidates must be an int >= 2, got {candidates!r}")
    num = queries["spec_mask"].shape[0]
    batch_size = min(batch_size, num)
    queries_fn = batch_fn(graphdef, spec, candidates, start, stop)
    ids = np.arange(num) if ids is None else np.asarray(ids)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.asarray(ids, jnp.int32))
    starts: Sequence[int] = range(0, num, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"eval {spec.text}", unit="batch")
    pieces: list[dict[str, np.ndarray]] = []
    for first in starts:
        last = min(first + batch_size, num)
        rows = slice(first, last)
        batch = _pad(
            jax.tree_util.tree_map(lambda x, r=rows: np.asarray(x)[r], queries), batch_size
        )
        batch_keys = keys[first:last]
        if last - first < batch_size:
            batch_keys = jnp.concatenate(
                [batch_keys, jnp.repeat(batch_keys[-1:], batch_size - (last - first), axis=0)]
            )
        out = jax.device_get(queries_fn(params, *(batch[k] for k in _QUERY_KEYS), batch_keys))
        pieces.append({name: np.asarray(value)[: last - first] for name, value in out.items()})
    return {name: np.concatenate([p[name] for p in pieces]) for name in pieces[0]}


def _pad(batch: Any, size: int) -> Any:
    """Pads the leading axis of every array to ``size`` by repeating the last row."""
    leaves = jax.tree_util.tree_leaves(batch)
    missing = size - leaves[0].shape[0]
    if missing == 0:
        return batch
    return jax.tree_util.tree_map(
        lambda value: np.concatenate([value, np.repeat(value[-1:], missing, axis=0)]), batch
    )
