"""The toy models of ``bench_search`` and ``search_backward``: an MLP decoder whose
log-probability of a target grid is the search objective, and a toy LPN (an MLP encoder
to a diagonal Gaussian, the decoder conditioned on the input grid) for ``lpn_loss``.

Plain JAX arrays in dicts, initialised from a key: the benchmarks time the search and its
gradients, not a model library.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import latentsearch as ls

LATENT, HIDDEN, CELLS, COLOURS = 32, 256, 100, 10

OPTIMIZER = optax.adam(0.1, b2=0.9)
SEARCHER = ls.gradient_ascent(OPTIMIZER)


def _dense(key, n_in, n_out, bias=True):
    layer = {"w": jax.random.normal(key, (n_in, n_out)) / np.sqrt(n_in)}
    if bias:
        layer["b"] = jnp.zeros((n_out,))
    return layer


def init_decoder(key, conditioned=False):
    """MLP ``latent 32 -> 256 -> 256 -> 100 cells x 10 colours`` (optionally + input grid)."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    params = {
        "l1": _dense(k1, LATENT, HIDDEN),
        "l2": _dense(k2, HIDDEN, HIDDEN),
        "out": _dense(k3, HIDDEN, CELLS * COLOURS),
    }
    if conditioned:
        params["grid_in"] = _dense(k4, CELLS * COLOURS, HIDDEN, bias=False)
    return params


def decoder_logits(params, z, grid=None):
    """``(CELLS, COLOURS)`` logits for latent ``z`` (and, if conditioned, an input grid)."""
    h = z @ params["l1"]["w"] + params["l1"]["b"]
    if grid is not None:
        h = h + jax.nn.one_hot(grid, COLOURS).reshape(-1) @ params["grid_in"]["w"]
    h = jax.nn.gelu(h)
    h = jax.nn.gelu(h @ params["l2"]["w"] + params["l2"]["b"])
    return (h @ params["out"]["w"] + params["out"]["b"]).reshape(CELLS, COLOURS)


def grid_log_prob(logits, grid):
    """Mean over cells of ``log p(grid[cell])``."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.mean(jnp.take_along_axis(logp, grid[:, None], axis=-1))


def objective(z, params, target):
    """The search objective: mean cell log-probability of ``target`` under the decoder."""
    return grid_log_prob(decoder_logits(params, z), target)


def init_lpn(key):
    """Toy LPN: encoder MLP (input, output) -> DiagGaussian; decoder conditioned on input."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    encoder = {
        "l1": _dense(k1, 2 * CELLS * COLOURS, HIDDEN),
        "mean": _dense(k2, HIDDEN, LATENT),
        "log_var": _dense(k3, HIDDEN, LATENT),
    }
    return {"encoder": encoder, "decoder": init_decoder(k4, conditioned=True)}


def encode(params, pair):
    p = params["encoder"]
    x = jnp.concatenate(
        [
            jax.nn.one_hot(pair["input"], COLOURS).reshape(-1),
            jax.nn.one_hot(pair["output"], COLOURS).reshape(-1),
        ]
    )
    h = jax.nn.gelu(x @ p["l1"]["w"] + p["l1"]["b"])
    mean = h @ p["mean"]["w"] + p["mean"]["b"]
    log_var = h @ p["log_var"]["w"] + p["log_var"]["b"] - 2.0
    return ls.DiagGaussian(mean, log_var)


def log_likelihood(params, z, pair):
    return grid_log_prob(decoder_logits(params["decoder"], z, pair["input"]), pair["output"])
