"""A command line that never loses work and never surprises: explicit presets, saved
configurations re-run, runs never deleted unless asked, validation and logs to watch."""

import json

from lpn_arc import cli
from lpn_arc.config import config_to_dict

from tests.arc.helpers import tiny_config

TINY = (
    "--max-rows 4 --max-cols 4 --grid-size 4 --latent-dim 4 --encoder-layers 1 "
    "--decoder-layers 1 --num-heads 2 --head-dim 4 --mlp-factor 1 --batch-size 4 "
    "--warmup-steps 1 --test-tasks 8"
).split()


def test_train_asks_for_a_preset_instead_of_starting_a_long_run(capsys):
    assert cli.main(["train"]) == 1
    err = capsys.readouterr().err
    assert "choose what to train with --preset" in err and "arc-cpu" in err


def test_a_saved_configuration_runs_again(tmp_path, capsys):
    saved = tmp_path / "config.json"
    saved.write_text(json.dumps(config_to_dict(tiny_config(steps=2))))
    assert cli.main(["train", "--config", str(saved), "--steps", "3", "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out.split("\nparameters:")[0])
    assert printed == {**config_to_dict(tiny_config(steps=2)), "steps": 3}
    assert cli.main(["train", "--config", str(saved), "--preset", "quickstart"]) == 1


def test_training_logs_lines_validates_and_keeps_the_best(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--preset", "quickstart", *TINY, "--steps", "4", "--log-every", "2",
            "--checkpoint-every", "2", "--validate-every", "2", "--validate-tasks", "4",
            "--validate-search", "mean", "--keep-checkpoints", "1", "--no-progress",
            "--no-memory-check", "--out", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "step 2/4  loss " in printed and "validation top-1 " in printed
    assert "time left " in printed
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert all(0.0 <= r["validation_top1"] <= 1.0 for r in records)
    best = json.loads((out / "best" / "best.json").read_text())
    assert best["validation_top1"] == max(r["validation_top1"] for r in records)
    assert [p.name for p in (out / "checkpoints").iterdir() if p.name.isdigit()] == ["4"]
    assert cli.main(["eval", "--checkpoint", str(out / "best"), "--tasks", "2"]) == 0
    # the run is never deleted unless asked
    assert cli.main(argv) == 1
    assert "--resume" in capsys.readouterr().err
    assert cli.main([*argv, "--overwrite"]) == 0


def test_quickstart_keeps_an_existing_run(tmp_path, capsys):
    out = tmp_path / "qs"
    (out / "checkpoints" / "7").mkdir(parents=True)
    (out / "checkpoints" / "7" / "keep.txt").write_text("mine")
    assert cli.main(["quickstart", "--out", str(out)]) == 1
    assert "already holds a run" in capsys.readouterr().err
    assert (out / "checkpoints" / "7" / "keep.txt").read_text() == "mine"


def test_quickstart_runs_to_the_end(tmp_path, capsys):
    # a tiny model for 3 steps on 4 tasks: every part of the command, not its numbers
    out = tmp_path / "qs"
    argv = ["quickstart", "--out", str(out), "--tasks", "4", "--steps", "3", *TINY]
    assert cli.main([*argv, "--no-progress"]) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["rows"][0]["search"] == "mean"
    assert report["train_steps"] == 3 and report["environment"]["eval_seed"] == 0
    assert report["seen_in_training"]["seen_programs"] == 0.0
    for name in ("accuracy_vs_steps.png", "tasks.png", "search_traces.png"):
        assert (out / name).stat().st_size > 0
    assert "held-out programs" in capsys.readouterr().out


def test_tensorboard_without_its_extra_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name == "tensorboardX":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    argv = ["train", "--preset", "quickstart", *TINY, "--steps", "1", "--tensorboard",
            "--no-memory-check", "--out", str(tmp_path / "tb")]  # fmt: skip
    assert cli.main(argv) == 1
    assert "pip install 'lpn-arc[tensorboard]'" in capsys.readouterr().err
