"""Parameter counts of the paper's models, and the pinned parameter tree (the checkpoint layout)."""

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from flax import nnx
from lpn_arc.model import LPNModel, ModelConfig, count_params, split_model


@pytest.mark.parametrize(
    ("config", "total", "encoder", "decoder"),
    [
        (ModelConfig.pattern(), 243_360, 121_824, 121_536),
        (ModelConfig.arc_repo(), 6_475_520, 3_245_312, 3_230_208),
        (ModelConfig.arc_paper(), 44_604_928, 25_496_064, 19_108_864),
    ],
)
def test_parameter_counts(config, total, encoder, decoder):
    model = nnx.eval_shape(lambda: LPNModel(config, rngs=nnx.Rngs(0)))
    _, params = split_model(model)
    assert count_params(params) == total
    assert count_params(params["encoder"]) == encoder
    assert count_params(params["decoder"]) == decoder
    assert count_params(model) == total
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))

    # RoPE drops the row and column tables of both networks, nothing else.
    rope_config = dataclasses.replace(config, positions="rope")
    rope = nnx.eval_shape(lambda: LPNModel(rope_config, rngs=nnx.Rngs(0)))
    _, rope_params = split_model(rope)
    tables = (config.max_rows + config.max_cols) * config.embed_dim
    assert count_params(rope_params["encoder"]) == encoder - tables
    assert count_params(rope_params["decoder"]) == decoder - tables
    assert count_params(rope_params) == total - 2 * tables
    assert "row_position" not in rope_params["decoder"]
    assert "row_position" in params["decoder"]


def test_rope_pattern_parameter_count():
    model = nnx.eval_shape(
        lambda: LPNModel(ModelConfig.pattern(positions="rope"), rngs=nnx.Rngs(0))
    )
    assert count_params(model) == 243_360 - 2 * 20 * 96 == 239_520


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


PARAM_TREES = json.loads((FIXTURES / "param_trees.json").read_text())


def _walk(tree, prefix=""):
    """``[path, shape, dtype]`` of every leaf; an empty sub-tree is ``[path, None, None]``."""
    if isinstance(tree, dict):
        if not tree:
            yield [prefix, None, None]
        for key in sorted(tree, key=str):
            yield from _walk(tree[key], f"{prefix}/{key}" if prefix else str(key))
    else:
        yield [prefix, list(tree.shape), str(tree.dtype)]


@pytest.mark.parametrize("name", sorted(PARAM_TREES))
def test_parameter_paths_and_shapes_are_pinned(name):
    fields = PARAM_TREES[name]["config"]
    config = ModelConfig.pattern() if fields is None else ModelConfig(**fields)
    _, params = jax.eval_shape(lambda: split_model(LPNModel(config, rngs=nnx.Rngs(0))))
    assert list(_walk(nnx.to_pure_dict(params))) == PARAM_TREES[name]["params"]
