"""End to end on real ARC data: train arc-small a few steps, evaluate 5 tasks, solve one.

The model is arc-small's at 30x30 with one encoder and one decoder layer instead of two each:
the commands do the same work at any depth, and each layer adds to every compilation."""

import json

import numpy as np
import pytest
from lpn_arc import cli
from lpn_arc.data import load_tasks
from lpn_arc.evaluation import validate_submission


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("arc") / "run"
    argv = [
        "train",
        "--preset",
        "arc-small",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--grad-accum",
        "1",
        "--encoder-layers",
        "1",
        "--decoder-layers",
        "1",
    ]
    argv += ["--checkpoint-every", "1", "--data", "arc1-train", "--out", str(run)]
    assert cli.main([*argv, "--no-progress"]) == 0
    return run


def test_arc_small_trains_checkpoints_and_writes_a_valid_submission(run_dir, tmp_path, capsys):
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()) == [
        "1",
        "2",
    ]
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2] and np.isfinite(records[0]["loss"])
    out = tmp_path / "eval"
    argv = ["eval", "--checkpoint", str(run_dir), "--data", "arc1-eval", "--limit", "5"]
    argv += ["--search", "grad:1", "--batch-size", "5", "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "5 tasks from arc1-eval" in printed and "grad:1" in printed

    tasks = load_tasks("arc1-eval", limit=5)
    submission = json.loads((out / "submission.json").read_text())
    validate_submission(submission, tasks)  # schema, task ids, one entry per test input
    assert list(submission) == [t.task_id for t in tasks]
    report = json.loads((out / "results.json").read_text())
    row = report["rows"][0]
    assert row["tasks"] == 5 and row["scored_tasks"] == 5 and row["evaluations"] == 2
    assert 0.0 <= row["pixel"] <= 1.0 and row["top1"] <= row["pass2"]
    queries = report["queries"]["grad:1"]
    assert [q["task_id"] for q in queries] == [t.task_id for t in tasks for _ in t.test_inputs]
    entries = [e for t in tasks for e in submission[t.task_id]]
    for query, entry in zip(queries, entries, strict=True):
        assert query["attempt_1"] == entry["attempt_1"]
        assert query["attempt_2"] == entry["attempt_2"]


def test_solve_prints_and_renders_a_task(run_dir, tmp_path, capsys):
    task = load_tasks("arc1-eval", limit=1)[0]
    argv = ["solve", f"arc1-eval/{task.task_id}", "--checkpoint", str(run_dir)]
    assert cli.main([*argv, "--search", "mean", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert f"task {task.task_id}" in printed and "test 0 attempt 2" in printed
    assert "test 0 truth" in printed
    png = tmp_path / f"{task.task_id}_test0.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli.main(["solve", "arc1-eval/nope", "--checkpoint", str(run_dir)]) == 1
    assert "is not in arc1-eval" in capsys.readouterr().err


def test_eval_errors_name_the_problem(run_dir, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": []}')
    assert cli.main(["eval", "--checkpoint", str(run_dir), "--data", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.json" in err and "train pair 0" in err
    assert cli.main(["eval", "--checkpoint", str(tmp_path / "none"), "--data", "arc1-eval"]) == 1
    assert "no checkpoints" in capsys.readouterr().err
