"""The presets are the paper's tables and the official configuration."""

import dataclasses

import jax
import pytest
from flax import nnx
from lpn_arc import cli
from lpn_arc.config import get_preset
from lpn_arc.model import count_params
from lpn_arc.training import init_params


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


def _count(name: str) -> int:
    config = get_preset(name)
    _, params = jax.eval_shape(lambda: init_params(config))
    return count_params(params)


def test_arc_presets_match_the_paper_tables():
    paper = get_preset("arc-paper")
    m = paper.model
    assert (m.encoder_layers, m.decoder_layers, m.num_heads, m.head_dim) == (8, 6, 8, 64)
    assert (m.mlp_factor, m.latent_dim, m.max_rows, m.dtype) == (4.0, 256, 30, "bfloat16")
    assert (paper.batch_size, paper.lr, paper.steps) == (256, 3e-4, 100_000)
    assert paper.search_at(0).text == "mean" and paper.search_at(94_999).text == "mean"
    assert paper.search_at(95_000).text == "grad:1" and paper.search_at(99_999).text == "grad:1"
    assert _count("arc-paper") == 44_604_928  # facts 2.8, Table 16 with learned positions
    assert _count("arc-overfit") == 207_264  # facts 2.8, Table 12
    assert _count("arc-repo") == 6_475_520  # facts 2.8, official arc_train.yaml
    assert get_preset("arc-overfit").data.task_id_list == ("007bbfb7",)
    small = get_preset("arc-small")
    assert small.model.max_rows == 30 and small.data.source == "arc1-train"
