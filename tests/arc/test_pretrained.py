"""Pretrained models: export a run, load it by name offline, list it; and the shipped ones."""

import json

import jax
import numpy as np
import pytest
from lpn_arc import cli, pretrained
from lpn_arc.config import config_to_dict
from lpn_arc.training import load_run, train

from tests.arc.helpers import tiny_config

CARD = {"summary": "a tiny test model", "training": {"command": "pytest"}, "results": {}}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("pretrained") / "run"
    train(tiny_config(steps=2, checkpoint_every=2), run, progress=False)
    return run


@pytest.fixture
def models_dir(tiny_run, tmp_path, monkeypatch):
    folder = tmp_path / "models"
    pretrained.export_pretrained(tiny_run, "tiny", CARD, models_dir=folder)
    monkeypatch.setattr(pretrained, "MODELS_DIR", folder)
    return folder


def test_an_exported_run_loads_by_name_with_the_same_parameters(tiny_run, models_dir):
    run = load_run(tiny_run)
    loaded = pretrained.load_checkpoint("pretrained:tiny")
    assert config_to_dict(loaded.config) == config_to_dict(run.config)
    assert loaded.step == run.step == 2
    assert run.opt_state is not None and loaded.opt_state is None  # parameters only
    for a, b in zip(jax.tree.leaves(run.params), jax.tree.leaves(loaded.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    card = pretrained.pretrained_card("tiny")
    assert card["summary"] == CARD["summary"] and card["params"] > 0
    assert not (models_dir / "tiny" / "opt_state").exists()  # parameters only
    # the data provenance travels with it, so the test-leak guard can read it
    run_json = json.loads((tiny_run / "run.json").read_text())
    shipped = json.loads((models_dir / "tiny" / "run.json").read_text())
    assert shipped == {"data": run_json["data"]}
    assert pretrained.checkpoint_folder("pretrained:tiny") == models_dir / "tiny"
    assert pretrained.checkpoint_folder(tiny_run) == tiny_run


def test_a_run_folder_loads_through_the_same_function(tiny_run):
    loaded = pretrained.load_checkpoint(tiny_run)
    assert loaded.step == 2 and jax.tree.leaves(loaded.params)
    assert loaded.opt_state is None  # as from a shipped model; load_run restores it
    with pytest.raises(TypeError):  # read by name: a Checkpoint does not unpack
        _config, *_rest = loaded


def test_parameters_that_do_not_match_the_card_are_refused(models_dir):
    path = models_dir / "tiny" / "card.json"
    card = json.loads(path.read_text())
    path.write_text(json.dumps({**card, "params_sha256": "0" * 64}))
    with pytest.raises(ValueError, match="do not match its checksum"):
        pretrained.load_pretrained("tiny")


@pytest.mark.parametrize("name", ["nope", "../tiny", "tiny/params"])
def test_an_unknown_name_is_a_clear_error_listing_the_models(models_dir, name):
    with pytest.raises(ValueError, match=r"no pretrained model named .*\(shipped: tiny\)"):
        pretrained.load_pretrained(name)


def test_models_lists_one_line_per_model_and_the_cards(models_dir, capsys):
    assert cli.main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["tiny", "a", "tiny", "test", "model"]
    assert cli.main(["models", "--json"]) == 0
    (card,) = json.loads(capsys.readouterr().out)
    assert card["name"] == "tiny" and card["step"] == 2


def test_eval_and_solve_take_a_pretrained_name(models_dir, tmp_path, capsys, monkeypatch):
    argv = ["eval", "--checkpoint", "pretrained:tiny", "--tasks", "4", "--search", "grad:2"]
    assert cli.main(argv) == 0
    assert "checkpoint pretrained:tiny (step 2), 4 test tasks" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)  # solve writes to ./pretrained-tiny/solve by default
    assert cli.main(["solve", "pattern:1", "--checkpoint", "pretrained:tiny"]) == 0
    printed = capsys.readouterr().out
    assert "task pattern-1: 3 spec pairs" in printed and "test 0 truth:" in printed
    assert (tmp_path / "pretrained-tiny" / "solve" / "pattern-1_test0.png").is_file()
    assert cli.main(["eval", "--checkpoint", "pretrained:nope"]) == 1
    assert "no pretrained model named 'nope'" in capsys.readouterr().err


SHIPPED = [card["name"] for card in pretrained.list_pretrained()]


def test_the_default_model_is_shipped():
    assert pretrained.DEFAULT_MODEL in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_model_says_what_it_is_and_loads(name):
    card = pretrained.pretrained_card(name)
    for key in ("summary", "training", "data", "results", "check", "params_sha256"):
        assert card[key], key
    assert card["training"]["command"].startswith(("lpn-arc ", "make ", "python "))
    assert card["results"]["top1"] and card["results"]["tasks"] > 0
    loaded = pretrained.load_pretrained(name)  # checks the parameters' digest
    assert loaded.step == card["step"] and loaded.opt_state is None
    assert sum(np.asarray(x).size for x in jax.tree.leaves(loaded.params)) == card["params"]


def test_the_default_model_decodes_as_its_card_recorded():
    """The card's check (Grad 0 on 16 held-out tasks) gives the same top-1 today."""
    from lpn_arc.config import parse_search
    from lpn_arc.data import pattern_test_tasks
    from lpn_arc.evaluation import evaluate_tasks

    check = pretrained.pretrained_card(pretrained.DEFAULT_MODEL)["check"]
    ckpt = pretrained.load_pretrained(pretrained.DEFAULT_MODEL)
    tasks = pattern_test_tasks(ckpt.config, check["tasks"], check["density"])
    out = evaluate_tasks(ckpt.graphdef, ckpt.params, tasks, parse_search(check["search"]),
                         jax.random.key(0), holdout=check["holdout"])  # fmt: skip
    assert out.metrics["top1"] == pytest.approx(check["top1"], abs=1e-9)
