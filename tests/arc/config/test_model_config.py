"""ModelConfig: validation of every field."""

import dataclasses

import jax.numpy as jnp
import pytest
from lpn_arc.model import apply_rope

from tests.arc.helpers import TINY


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_heads", 0),
        ("decoder_layers", -1),
        ("dropout", 1.0),
        ("activation", "tanh"),
        ("dtype", "float16"),
        ("cell_normalisation", "max"),
        ("mlp_factor", 0.0),
        ("positions", "sinusoidal"),
        ("rope_max_freq", 0.5),
        ("rope_max_freq", float("nan")),
    ],
)
def test_config_validation(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(TINY, **{field: value})


def test_rope_needs_head_dim_divisible_by_4():
    with pytest.raises(ValueError, match="head_dim must be divisible by 4"):
        dataclasses.replace(TINY, positions="rope", head_dim=6)
    dataclasses.replace(TINY, positions="learned", head_dim=6)  # fine without RoPE
    with pytest.raises(ValueError, match="divisible by 4"):
        apply_rope(jnp.ones((1, 2, 6)), jnp.zeros(1), jnp.zeros(1))
