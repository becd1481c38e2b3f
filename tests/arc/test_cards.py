"""Every shipped model's card is honest: its command rebuilds its configuration, and it
states the split, what training saw of the evaluated programs and the inference settings."""

import json
import shlex

import pytest
from lpn_arc import cli
from lpn_arc.config import config_from_dict, config_to_dict
from lpn_arc.pretrained import WEIGHTS_LICENSE, list_pretrained

CARDS = list_pretrained()


@pytest.mark.parametrize("card", CARDS, ids=[card["name"] for card in CARDS])
def test_the_card_command_rebuilds_the_card_config(card, capsys):
    argv = shlex.split(card["training"]["command"])
    assert argv[:2] == ["lpn-arc", "train"]
    assert cli.main([*argv[1:], "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out.split("\nparameters:")[0])
    # the card's configuration as read today (fields added since it was written at defaults)
    assert printed == config_to_dict(config_from_dict(card["config"]))


@pytest.mark.parametrize("card", CARDS, ids=[card["name"] for card in CARDS])
def test_the_card_states_the_split_what_was_seen_and_how_it_was_scored(card):
    data, results = card["data"], card["results"]
    if card["config"]["data"]["source"] == "pattern":  # programs split by a content rule
        assert data["split"] == "program" and "sha256" in data["split_rule"]
        assert data["seen_programs"] and set(data["seen_programs"].values()) == {0.0}
    else:  # ARC: demonstrations only, and what training saw of every scored set, by digest
        assert data["split"] == "task" and "digest" in data["split_rule"]
        assert data["pair_digests"]["count"] > 0
        assert data["seen"] and set(data["seen"].values()) == {0.0}
    for key in ("lr", "scale", "start", "optimizer", "holdout", "tasks"):
        assert key in results, key


@pytest.mark.parametrize("card", CARDS, ids=[card["name"] for card in CARDS])
def test_the_card_states_the_weights_licence_and_the_steps_trained(card):
    assert card["license"] == WEIGHTS_LICENSE
    step, steps = card["step"], card["config"]["steps"]
    assert step <= steps
    if step < steps:  # a time cap cut training short: the summary says so
        assert f"{step} of {steps} steps" in card["summary"]
    else:
        assert f"{steps} steps" in card["summary"]
