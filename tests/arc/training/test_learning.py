"""The model learns: a tiny LPN overfits one task; search helps a briefly trained model."""

import dataclasses

import jax
import numpy as np
import pytest
from lpn_arc.config import DataConfig, TrainConfig, parse_search
from lpn_arc.data import generate_pattern_tasks, pad_to_model
from lpn_arc.evaluation import evaluate_tasks
from lpn_arc.model import ModelConfig
from lpn_arc.training import init_params, make_optimizer, make_train_step, train

from tests.arc.helpers import exact_matches

MODEL = ModelConfig(
    max_rows=4,
    max_cols=4,
    latent_dim=8,
    encoder_layers=1,
    decoder_layers=1,
    num_heads=4,
    head_dim=8,
    mlp_factor=2.0,
)


def _config(**overrides) -> TrainConfig:
    base = TrainConfig(
        model=MODEL,
        data=DataConfig(grid_size=4, pattern_size=2, num_pairs=4, test_tasks=32),
        batch_size=16,
        lr=3e-3,
        warmup_steps=10,
        train_search="mean",
        checkpoint_every=10_000,
        log_every=50,
    )
    return dataclasses.replace(base, **overrides)


def test_tiny_model_overfits_one_task():
    config = _config(batch_size=1, steps=300, lr_schedule="cosine")
    task, _ = generate_pattern_tasks(
        np.random.default_rng(3), 1, num_pairs=4, grid_size=4, pattern_size=2
    )
    task = pad_to_model(task, config)
    graphdef, params = init_params(config)
    optimizer = make_optimizer(config)
    opt_state = optimizer.init(params)
    step = make_train_step(graphdef, config, optimizer)
    mean = parse_search("mean")  # both evaluations share one compilation
    before = evaluate_tasks(graphdef, params, task, mean, jax.random.key(0))
    for i in range(config.steps):
        params, opt_state, metrics = step(params, opt_state, task, jax.random.key(i))
    after = evaluate_tasks(graphdef, params, task, mean, jax.random.key(0))
    assert before.metrics["top1"] == 0.0
    assert after.metrics["top1"] == 1.0
    assert after.metrics["pixel"] == 1.0
    # the per-cell negative log-likelihood of the training pairs is close to zero
    assert float(metrics["reconstruction"]) < 0.05
    assert after.scores[0, 0] > before.scores[0, 0] + 1.0


@pytest.fixture(scope="module")
def briefly_trained(tmp_path_factory):
    config = _config(steps=150, train_search="grad:1")
    result = train(config, tmp_path_factory.mktemp("brief"), progress=False)
    tasks, _ = generate_pattern_tasks(
        np.random.default_rng(config.data.test_seed), 32, num_pairs=4, grid_size=4, pattern_size=2
    )
    return result, pad_to_model(tasks, config)


def test_search_raises_the_spec_likelihood_of_a_briefly_trained_model(briefly_trained):
    result, tasks = briefly_trained
    run = {}
    for text in ("mean", "grad:20", "sample:64"):
        run[text] = evaluate_tasks(
            result.graphdef, result.params, tasks, parse_search(text), jax.random.key(0)
        )
    mean_score = run["mean"].scores[:, 0]
    for text in ("grad:20", "sample:64"):
        out = run[text]
        # the start is a candidate, so no task gets worse ...
        assert np.all(out.scores[:, 0] >= mean_score - 1e-5), text
        # ... and on this model the search finds a better latent for most tasks
        gain = out.scores[:, 0] - mean_score
        assert np.mean(gain > 1e-4) > 0.75, (text, gain)
        assert np.mean(gain) > 1e-3, (text, gain)
        truth = tasks.outputs[:, -1], tasks.output_shapes[:, -1]
        top1 = exact_matches(out.attempt_1, out.attempt_shapes[:, 0], *truth)
        second = exact_matches(out.attempt_2, out.attempt_shapes[:, 1], *truth)
        np.testing.assert_array_equal(out.per_task["pass2"], top1 | second)
    # gradient ascent's trace rises from the mean latent's score
    trace = run["grad:20"].traces
    np.testing.assert_allclose(trace[:, -1], run["grad:20"].scores[:, 0], rtol=1e-5, atol=1e-5)
    assert np.mean(trace[:, -1] - trace[:, 0]) > 0
