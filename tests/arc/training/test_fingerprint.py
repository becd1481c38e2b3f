"""Seeded runs' pinned numbers, written by the code before the package was reorganised.

``tests/arc/fixtures/fingerprint.json``: a float32 run's losses and its mean and grad:5
search results, and a bfloat16 run's losses and gradient norms.
"""

import json
from pathlib import Path

import jax
import numpy as np
from lpn_arc.config import DataConfig, TrainConfig, parse_search
from lpn_arc.data import pattern_test_tasks, training_batch
from lpn_arc.evaluation import evaluate_tasks
from lpn_arc.model import ModelConfig
from lpn_arc.training import init_training, make_train_step

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


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
    graphdef, params, optimizer, opt_state = init_training(config)
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


def test_a_bfloat16_run_with_dropout_and_accumulation_gives_the_pinned_numbers():
    """bfloat16 activations round the gradients where a float32 run does not: its losses
    and gradient norms pin the order in which they are summed (LayerNorm's, dropout's)."""
    expected = json.loads((FIXTURES / "fingerprint.json").read_text())
    model = ModelConfig(
        5, 5, 8, 1, 1, num_heads=2, head_dim=8, mlp_factor=1.0, dtype="bfloat16", dropout=0.2
    )
    config = TrainConfig(
        model=model, data=DataConfig(grid_size=5, pattern_size=2), steps=3, batch_size=4,
        grad_accum=2, warmup_steps=1, train_search="mean", seed=5,
    )  # fmt: skip
    graphdef, params, optimizer, opt_state = init_training(config)
    step = make_train_step(graphdef, config, optimizer)
    losses, norms = [], []
    for s in range(3):
        key = jax.random.fold_in(jax.random.key(config.seed), s)
        params, opt_state, out = step(params, opt_state, training_batch(config, s), key)
        losses.append(float(out["loss"]))
        norms.append(float(out["grad_norm"]))
    np.testing.assert_allclose(losses, expected["bfloat16_losses"], rtol=1e-6)
    np.testing.assert_allclose(norms, expected["bfloat16_grad_norms"], rtol=1e-6)
