"""Pinned numbers: the parameter tree (the checkpoint layout) and a seeded run's results.

Both fixtures were written by the code before the package was reorganised
(``tests/arc/fixtures/``): a restructure must keep every parameter's path and shape, so that
existing Orbax checkpoints load, and give the same numbers for the same seed.
"""

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx
from lpn_arc.config import DataConfig, TrainConfig, parse_search
from lpn_arc.data import pattern_test_tasks, training_batch
from lpn_arc.evaluation import evaluate_tasks
from lpn_arc.model import LPNModel, ModelConfig, split_model
from lpn_arc.training import init_params, make_optimizer, make_train_step

FIXTURES = Path(__file__).resolve().parent / "fixtures"
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


def test_the_same_seed_gives_the_pinned_losses_and_search_results():
    """Three Grad-1 training steps (RoPE, input-only mask, dropout), then mean and grad:5."""
    expected = json.loads((FIXTURES / "fingerprint.json").read_text())
    model = ModelConfig(
        5, 5, 8, 1, 1, num_heads=2, head_dim=8, mlp_factor=1.0, positions="rope",
        decoder_mask="input-only", dropout=0.1,
    )  # fmt: skip
    config = TrainConfig(
        model=model, data=DataConfig(grid_size=5, pattern_size=2), steps=3, batch_size=4,
        warmup_steps=1, train_search="grad:1", seed=4,
    )  # fmt: skip
    graphdef, params = init_params(config)
    optimizer = make_optimizer(config)
    opt_state = optimizer.init(params)
    step = make_train_step(graphdef, config, optimizer)
    losses = []
    for s in range(3):
        key = jax.random.fold_in(jax.random.key(config.seed), s)
        params, opt_state, out = step(params, opt_state, training_batch(config, s), key)
        losses.append(float(out["loss"]))
    np.testing.assert_allclose(losses, expected["losses"], rtol=1e-6)
    tasks = pattern_test_tasks(config, 8)
    for text, pinned in expected["eval"].items():
        out = evaluate_tasks(graphdef, params, tasks, parse_search(text), jax.random.key(0))
        assert out.metrics["evaluations"] == pinned["evaluations"]
        assert (out.metrics["top1"], out.metrics["pixel"]) == (pinned["top1"], pinned["pixel"])
        np.testing.assert_allclose(out.scores, pinned["scores"], rtol=1e-6)
        np.testing.assert_array_equal(out.attempt_shapes, pinned["shapes"])
