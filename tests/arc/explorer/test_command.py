"""``lpn-arc explore``: its options, the checkpoint it loads, and one-line errors."""

import json

import pytest
from lpn_arc import cli
from lpn_arc.training import train

from tests.arc.helpers import tiny_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("explore") / "run"
    train(tiny_config(steps=2), folder, progress=False)
    return folder


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["explore", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--checkpoint", "--port", "--host", "--tasks", "--data", "--open"):
        assert option in out
    assert "pretrained:pattern-6x6-grad1" in out and "127.0.0.1" in out


def test_it_serves_the_run_on_localhost_by_default(run_dir, monkeypatch):
    served = {}

    def fake_serve(explorer, host, port, on_ready=None):
        served.update(explorer=explorer, host=host, port=port)

    monkeypatch.setattr("lpn_arc.explorer.serve", fake_serve)
    assert cli.main(["explore", "--checkpoint", str(run_dir), "--tasks", "3"]) == 0
    explorer = served["explorer"]
    assert (served["host"], served["port"]) == ("127.0.0.1", 7860)
    assert len(explorer.tasks) == 3 and explorer.step == 2 and explorer.name == str(run_dir)


def test_the_default_is_the_shipped_pretrained_model(run_dir, tmp_path, monkeypatch):
    from lpn_arc import pretrained

    name = pretrained.DEFAULT_MODEL  # a stand-in exported from the tiny run
    pretrained.export_pretrained(run_dir, name, {"summary": "tiny"}, models_dir=tmp_path)
    monkeypatch.setattr(pretrained, "MODELS_DIR", tmp_path)
    served = {}
    monkeypatch.setattr(
        "lpn_arc.explorer.serve", lambda explorer, *a, **k: served.update(e=explorer)
    )
    assert cli.main(["explore", "--tasks", "2"]) == 0
    assert served["e"].name == f"pretrained:{name}" and served["e"].step == 2


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_a_missing_run_or_an_unknown_pretrained_model_is_one_line(tmp_path, capsys):
    assert cli.main(["explore", "--checkpoint", str(tmp_path / "nothing")]) == 1
    assert _error(capsys).startswith("lpn-arc explore: error: no checkpoints in")
    assert cli.main(["explore", "--checkpoint", "pretrained:no-such-model"]) == 1
    assert "no-such-model" in _error(capsys)


def test_arc_tasks_from_a_file_are_offered_when_they_fit(run_dir, tmp_path, monkeypatch):
    task = {
        "train": [{"input": [[1, 0]], "output": [[2, 2]]}, {"input": [[0, 1]], "output": [[3]]}],
        "test": [{"input": [[1, 1]], "output": [[4]]}],
    }
    small = tmp_path / "small.json"
    small.write_text(json.dumps(task))
    served = {}
    monkeypatch.setattr(
        "lpn_arc.explorer.serve", lambda explorer, *a, **k: served.update(e=explorer)
    )
    assert cli.main(["explore", "--checkpoint", str(run_dir), "--data", str(small)]) == 0
    assert served["e"].tasks == [task]


def test_tasks_that_do_not_fit_the_checkpoint_are_refused_with_a_message(run_dir, tmp_path, capsys):
    big = tmp_path / "big.json"
    grid = [[1] * 8] * 8
    big.write_text(
        json.dumps({"train": [{"input": grid, "output": grid}], "test": [{"input": grid}]})
    )
    argv = ["explore", "--checkpoint", str(run_dir), "--data", str(big)]
    assert cli.main(argv) == 1
    assert _error(capsys).endswith(f"no task of {big} fits the model's 4x4 grids")
    assert cli.main(["explore", "--checkpoint", str(run_dir), "--tasks", "0"]) == 1
    assert "--tasks must be >= 1" in _error(capsys)
    assert cli.main(["explore", "--checkpoint", str(run_dir), "--port", "0"]) == 1
    assert "--port must be in 1..65535, got 0" in _error(capsys)
