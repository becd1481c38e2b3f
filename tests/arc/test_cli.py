"""The lpn-arc command: dry runs, one-line errors and exit statuses, a real process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lpn_arc import cli, commands


def test_cli_dry_run_prints_the_table_13_parameter_count(capsys):
    assert cli.main(["train", "--preset", "pattern", "--dry-run"]) == 0
    assert "parameters: 243,360" in capsys.readouterr().out


def test_cli_errors_are_one_line(capsys, tmp_path):
    assert cli.main(["eval", "--checkpoint", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("lpn-arc eval: error: no checkpoints") and "\n" not in err
    with pytest.raises(SystemExit):
        cli.main(["train", "--no-such-option"])


ROOT = Path(__file__).resolve().parents[2]


BAD_GRID = {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": []}


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--preset", "arc-small", "--data", "{bad}"],
            "{bad}: task bad, train pair 0, input: row 1",
        ),
        (["--preset", "arc-small", "--data", "{dup}"], "{dup}: the key 'x' appears twice"),
        (["--preset", "arc-small", "--data", "{missing}"], "{missing}: no such file or folder"),
        (["--lr", "nan"], "lr must be > 0 and finite; got nan"),
        (["--clip-norm", "-1"], "clip_norm must be > 0 and finite"),
        (["--steps", "1e3"], "--steps: cannot parse '1e3'"),
        (["--train-search", "grad:x"], "steps must be a positive integer"),
        (["--grid-size", "31"], "grid_size"),
    ],
)
def test_train_errors_are_one_line_with_exit_status_1(tmp_path, capsys, argv, expected):
    paths = {"bad": tmp_path / "bad.json", "dup": tmp_path / "dup_challenges.json"}
    paths["missing"] = tmp_path / "nope.json"
    paths["bad"].write_text(json.dumps(BAD_GRID))
    paths["dup"].write_text('{"x": {}, "x": {}}')
    argv = [a.format(**paths) for a in argv]
    out = tmp_path / "run"
    argv = ["train", "--preset", "pattern", "--steps", "1", *argv, "--out", str(out)]
    assert cli.main([*argv, "--no-progress"]) == 1
    err = _error_line(capsys)
    assert err.startswith("lpn-arc train: error: ") and expected.format(**paths) in err, err
    assert not (out / "checkpoints").exists()  # nothing written before the data is read


def test_eval_and_solve_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["eval", "--checkpoint", str(tmp_path / "none")]) == 1
    assert _error_line(capsys).startswith("lpn-arc eval: error: no checkpoints in")
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    assert cli.main(["solve", "x.json", "--checkpoint", str(tmp_path / "empty")]) == 1
    assert _error_line(capsys).startswith("lpn-arc solve: error: x.json: no such file or folder")
    task = tmp_path / "task.json"
    task.write_text(json.dumps(BAD_GRID))
    assert cli.main(["solve", str(task), "--checkpoint", str(tmp_path / "empty")]) == 1
    assert "task.json: task task, train pair 0, input: row 1" in _error_line(capsys)
    assert cli.main(["eval", "--checkpoint", str(tmp_path / "empty"), "--limit", "0"]) == 1
    assert "--limit must be >= 1" in _error_line(capsys)


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--no-such-option"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2
    capsys.readouterr()


def test_debug_shows_the_traceback_and_bugs_keep_theirs(tmp_path, monkeypatch):
    missing = str(tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="no checkpoints"):
        cli.main(["--debug", "eval", "--checkpoint", missing])
    with pytest.raises(FileNotFoundError, match="no checkpoints"):
        cli.main(["eval", "--checkpoint", missing, "--debug"])

    def bug(args):
        raise KeyError("a bug, not a user error")

    monkeypatch.setattr(commands, "run_eval", bug)
    with pytest.raises(KeyError, match="a bug"):
        cli.main(["eval", "--checkpoint", missing])


def test_a_real_process_prints_one_line_and_exits_1(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(BAD_GRID))
    env = {**os.environ, "LPN_ARC_ALLOCATOR": "glibc"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "applications" / "arc")])
    argv = ["train", "--preset", "arc-small", "--data", str(bad), "--out", str(tmp_path / "r")]
    done = subprocess.run(
        [sys.executable, "-m", "lpn_arc", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"lpn-arc train: error: {bad}: task bad, train pair 0, input: row 1 has 1 cells, expected 2"
    ], done.stderr
