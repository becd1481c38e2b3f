"""Configs, search specifications, training with checkpoints and resume, the CLI."""

import argparse
import dataclasses
import json

import jax
import numpy as np
import pytest
from flax import nnx
from lpn_arc import cli
from lpn_arc.config import (
    TrainConfig,
    add_override_arguments,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    get_preset,
    parse_search,
)
from lpn_arc.data import training_batch
from lpn_arc.model import ModelConfig, count_params
from lpn_arc.training import TrainingError, init_params, load_run, train

import latentsearch as ls


def tiny_config(**overrides) -> TrainConfig:
    """A tiny model trained with the quickstart recipe (its decoder mask included)."""
    base = get_preset("quickstart")
    model = ModelConfig(
        max_rows=4,
        max_cols=4,
        latent_dim=4,
        encoder_layers=1,
        decoder_layers=1,
        num_heads=2,
        head_dim=4,
        mlp_factor=1.0,
        decoder_mask=base.model.decoder_mask,
    )
    data = dataclasses.replace(base.data, grid_size=4, pattern_size=2, test_tasks=8)
    fields = dict(batch_size=4, steps=6, checkpoint_every=2, log_every=1, warmup_steps=2)
    return dataclasses.replace(base, model=model, data=data, **{**fields, **overrides})


def test_search_specs():
    assert parse_search("mean").num_steps == 0
    assert parse_search("grad:20").num_steps == 20
    assert parse_search("grad:3:implicit").gradient_flow == ls.Implicit(start_path=True)
    assert parse_search("grad:3:unrolled").gradient_flow == ls.Unrolled(checkpoint=True)
    assert parse_search("grad:3").gradient_flow == ls.StopGradient()
    assert parse_search("es:8:5").num_steps == 5
    assert parse_search("hybrid:10:5").num_steps == 5
    for bad, message in [
        ("grad", "unknown search"),
        ("grad:x", "steps must be a positive integer"),
        ("grad:5:second", "unknown gradient flow"),
        ("sample:0", "samples must be a positive integer"),
        ("es:7:3", "population must be even"),
        ("beam:4", "unknown search"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_search(bad)


def test_pattern_preset_matches_table_13():
    config = get_preset("pattern")
    assert (config.batch_size, config.lr, config.steps, config.prior_kl) == (128, 4e-4, 20000, 1e-4)
    assert (config.model.encoder_layers, config.model.num_heads, config.model.head_dim) == (
        2,
        6,
        16,
    )
    ood = get_preset("pattern-ood")
    assert ood.data.density == 0.5 and ood.data.test_densities == (0.5, 0.75, 1.0)
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("patern")


def test_pattern_ood_preset_is_table_15_with_its_narrow_decoder(capsys):
    assert cli.main(["train", "--preset", "pattern-ood", "--dry-run"]) == 0
    assert capsys.readouterr().out.strip().endswith("parameters: 154,496")  # facts 2.8
    graphdef, params = init_params(get_preset("pattern-ood"))
    model = nnx.merge(graphdef, params)
    decoder, encoder = model.decoder, model.encoder
    assert (decoder.cfg.num_heads, decoder.cfg.head_dim, decoder.cfg.mlp_factor) == (8, 4, 1.0)
    assert (encoder.cfg.num_heads, encoder.cfg.head_dim, encoder.cfg.mlp_factor) == (8, 8, 2.0)
    assert decoder.blocks[0].mlp_in.kernel.shape == (32, 32)  # E = 8 x 4, MLP 1
    assert encoder.blocks[0].mlp_in.kernel.shape == (64, 128)  # E = 8 x 8, MLP 2
    assert count_params(nnx.state(decoder, nnx.Param)) == 15_936  # facts 2.8
    with pytest.raises(ValueError, match="decoder_head_dim must be an int >= 0"):
        dataclasses.replace(get_preset("pattern").model, decoder_head_dim=-4)


def test_overrides_and_round_trip():
    parser = argparse.ArgumentParser()
    add_override_arguments(parser)
    args = parser.parse_args(
        [
            "--lr",
            "0.01",
            "--latent-dim",
            "8",
            "--grid-size",
            "7",
            "--train-search",
            "grad:2:unrolled",
        ]
    )
    config = apply_overrides(get_preset("pattern"), args)
    assert config.lr == 0.01 and config.model.latent_dim == 8
    assert config.data.grid_size == 7 and config.model.max_rows == 7
    assert config.train_search == "grad:2:unrolled"
    assert config_from_dict(config_to_dict(config)) == config
    with pytest.raises(ValueError, match="cannot parse"):
        apply_overrides(get_preset("pattern"), parser.parse_args(["--lr", "fast"]))
    with pytest.raises(ValueError, match="unknown search"):
        apply_overrides(get_preset("pattern"), parser.parse_args(["--train-search", "gradd:1"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["--learning-rate", "0.1"])


def test_resume_gives_the_same_parameters_as_an_uninterrupted_run(tmp_path):
    config = tiny_config()
    full = train(config, tmp_path / "full", progress=False)
    train(config, tmp_path / "killed", progress=False, stop_at=3)  # checkpoint at 3, stop
    resumed = train(config, tmp_path / "killed", progress=False, resume=True)
    assert full.step == resumed.step == 6
    for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(resumed.params), strict=True):
        np.testing.assert_array_equal(a, b)
    saved_config, _, params, _, step = load_run(tmp_path / "killed")
    assert step == 6 and saved_config == config
    for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(a, b)
    records = [
        json.loads(x) for x in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert (tmp_path / "killed" / "metrics.csv").read_text().startswith("step,")
    with pytest.raises(TrainingError, match="already holds checkpoints"):
        train(config, tmp_path / "full", progress=False)
    with pytest.raises(TrainingError, match="configuration differs"):
        train(dataclasses.replace(config, lr=0.5), tmp_path / "full", progress=False, resume=True)


def test_cli_dry_run_prints_the_table_13_parameter_count(capsys):
    assert cli.main(["train", "--preset", "pattern", "--dry-run"]) == 0
    assert "parameters: 243,360" in capsys.readouterr().out


def test_cli_errors_are_one_line(capsys, tmp_path):
    assert cli.main(["eval", "--checkpoint", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("lpn-arc eval: error: no checkpoints") and "\n" not in err
    with pytest.raises(SystemExit):
        cli.main(["train", "--no-such-option"])


def test_dropout_applies_in_training_only():
    from lpn_arc.training import task_loss_fn

    def losses(rate):
        config = tiny_config(train_search="mean")
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, dropout=rate))
        graphdef, params = init_params(config)
        task = {k: v[0] for k, v in training_batch(config, 0).items()}
        loss = jax.jit(task_loss_fn(graphdef, config))
        key = jax.random.key(0)
        return [float(loss(params, task, key, jax.random.key(s))[0]) for s in (1, 2, 1)]

    with_dropout, without = losses(0.3), losses(0.0)
    assert with_dropout[0] != with_dropout[1]  # two dropout keys, two losses
    assert with_dropout[0] == with_dropout[2]  # the same key, the same loss
    assert without[0] == without[1] == without[2]  # rate 0: the key is unused
    assert with_dropout[0] != without[0]
