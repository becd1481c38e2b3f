"""TrainConfig and DataConfig: validation, overrides, the JSON round trip, hidden splits."""

import argparse

import pytest
from lpn_arc.config import (
    DataConfig,
    add_override_arguments,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    get_preset,
    hides_test_outputs,
)

from tests.arc.helpers import scale_config


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


def test_config_rejects_bad_accumulation_and_finetune():
    with pytest.raises(ValueError, match="not divisible by grad_accum"):
        scale_config(grad_accum=3)
    with pytest.raises(ValueError, match="finetune_steps"):
        scale_config(finetune_steps=5)
    with pytest.raises(ValueError, match="unknown search"):
        scale_config(finetune_search="grad")


@pytest.mark.parametrize("source", ["arc1-eval", "arc2-eval", "arc1-train,arc1-eval"])
def test_test_pairs_of_hidden_splits_are_refused(source):
    with pytest.raises(ValueError, match="--include-test-pairs refused for arc[12]-eval"):
        DataConfig(source=source, include_test_pairs=True)
    assert DataConfig(source=source).include_test_pairs is False


def test_hidden_split_names():
    assert hides_test_outputs("arc1-eval") and hides_test_outputs("arc2-eval")
    assert hides_test_outputs("/data/arc-agi_evaluation_challenges.json")
    assert hides_test_outputs("arc-agi_test_challenges.json")
    assert not hides_test_outputs("arc1-train")
    assert not hides_test_outputs("/data/arc-agi_training_challenges.json")
    assert DataConfig(source="arc1-train", include_test_pairs=True).include_test_pairs
