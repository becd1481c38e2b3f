"""The decoder reads the input-only mask's cache when a pair carries one: a corrupted cache
changes the logits, and the cached keys and values are all it reads of the input."""

import dataclasses

import jax
import numpy as np
from flax import nnx
from lpn_arc.model import LPNModel

from tests.arc.helpers import TINY, pair_at, random_pairs


def test_a_corrupted_cache_changes_the_logits_and_a_changed_input_does_not():
    model = LPNModel(dataclasses.replace(TINY, decoder_mask="input-only"), rngs=nnx.Rngs(1))
    pair = pair_at(random_pairs(4, 1), 0)
    z = jax.random.normal(jax.random.key(0), (TINY.latent_dim,))
    cached = model.precompute(pair)
    logits = jax.jit(model.decode_logits)
    reference = logits(z, cached)

    cache = cached.cache
    for part in ("keys", "values"):
        corrupted = {**cache, part: cache[part] + 1.0}
        changed = logits(z, cached._replace(cache=corrupted))
        assert not np.allclose(changed["cells"], reference["cells"], atol=1e-3), part

    # With the cache in place, the input grid itself is never read again.
    other_input = cached._replace(inputs=(np.asarray(cached.inputs) + 3) % 10)
    same = logits(z, other_input)
    for name in ("rows", "cols", "cells"):
        np.testing.assert_array_equal(same[name], reference[name])
