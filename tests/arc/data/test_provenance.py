"""No test output reaches training; runs record their data; eval refuses leaked tasks."""

import dataclasses
import json

import numpy as np
import pytest
from lpn_arc import cli, commands
from lpn_arc.config import DataConfig
from lpn_arc.data import TaskSampler, TestLeakError, TrainingData, check_no_test_leak, load_tasks
from lpn_arc.training import train

from tests.arc.helpers import tiny_config

SECRET = 7  # the colour that only the test outputs use


def _task_file(folder, task_id, offset):
    """A task whose demonstrations use colours 0-2 and whose test output adds SECRET."""
    demo_in = [[1, 0, 0], [0, 2, 0]]
    demo_out = [[0, 0, 1], [0, 2, 0]]
    pairs = [
        {"input": np.roll(demo_in, shift, axis=1).tolist(), "output": demo_out}
        for shift in range(offset, offset + 3)
    ]
    test = {"input": demo_in, "output": [[SECRET, 1, 2], [0, 0, 0]]}
    (folder / f"{task_id}.json").write_text(json.dumps({"train": pairs, "test": [test]}))


@pytest.fixture(scope="module")
def task_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasks")
    _task_file(folder, "aaaa0001", 0)
    _task_file(folder, "bbbb0002", 1)
    return folder


def _arc_config(folder, **data):
    config = tiny_config(steps=3, batch_size=4, checkpoint_every=3)
    return dataclasses.replace(config, data=DataConfig(source=str(folder), num_pairs=2, **data))


def _recording_sampler(monkeypatch):
    batches = []
    original = TaskSampler.sample

    def sample(self, rng, batch_size):
        batch = original(self, rng, batch_size)
        batches.append(batch)
        return batch

    monkeypatch.setattr(TaskSampler, "sample", sample)
    return batches


@pytest.fixture(scope="module")
def clean_run(task_folder, tmp_path_factory):
    """A run trained 3 steps with the defaults (augmentation off), and its batches."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        batches = _recording_sampler(monkeypatch)
        run = tmp_path_factory.mktemp("clean")
        config = _arc_config(task_folder, augment=False)
        train(config, run, progress=False, check_memory=False)
    return run, config, batches


def _colours_per_task(batch):
    grids = np.concatenate([batch.pairs.inputs, batch.pairs.outputs], axis=1)  # (B, 2N, R, C)
    return [len(set(np.unique(task)) - {0}) for task in grids]


def test_training_never_sees_a_test_output(task_folder, clean_run, tmp_path, monkeypatch):
    run, config, batches = clean_run
    assert len(batches) == config.steps
    for batch in batches:
        assert SECRET not in batch.pairs.inputs and SECRET not in batch.pairs.outputs

    # The default (augmentation on) permutes colours, so count them: a task's
    # demonstrations use 2 colours besides black, its test output a third.
    batches = _recording_sampler(monkeypatch)
    train(_arc_config(task_folder), tmp_path / "run_aug", progress=False, check_memory=False)
    assert len(batches) == config.steps
    assert max(max(_colours_per_task(b)) for b in batches) == 2

    # The same sampler with the test pairs does show them (so the checks above can fail).
    leaky = TrainingData(_arc_config(task_folder, augment=False, include_test_pairs=True))
    seen = [leaky.batch(step) for step in range(4)]
    assert any(SECRET in batch.pairs.outputs for batch in seen)

    record = json.loads((run / "run.json").read_text())["data"]
    (entry,) = record["sources"]
    assert entry["source"] == str(task_folder) and entry["pairs"] == "train"
    assert entry["task_ids"] == ["aaaa0001", "bbbb0002"] and entry["pair_count"] == 6
    assert len(entry["task_ids_sha256"]) == 64
    assert leaky.provenance["sources"][0]["pairs"] == "train+test"
    assert leaky.provenance["sources"][0]["pair_count"] == 8


def test_cli_refuses_test_pairs_of_the_evaluation_set(capsys):
    argv = ["train", "--preset", "arc-small", "--data", "arc1-train", "--data", "arc1-eval"]
    assert cli.main([*argv, "--include-test-pairs", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "lpn-arc train: error: --include-test-pairs refused for arc1-eval" in err
    assert "hidden" in err


def test_demonstrations_of_the_evaluation_set_are_a_training_option(capsys):
    argv = ["train", "--preset", "arc-small", "--data", "arc1-train", "--data", "arc1-eval"]
    assert cli.main([*argv, "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out.split("\nparameters:")[0])
    assert printed["data"]["source"] == "arc1-train,arc1-eval"
    assert printed["data"]["include_test_pairs"] is False
    config = dataclasses.replace(
        tiny_config(), data=DataConfig(source="arc1-train,arc1-eval", augment=False)
    )
    config = dataclasses.replace(
        config, model=dataclasses.replace(config.model, max_rows=30, max_cols=30)
    )
    record = TrainingData(config).provenance
    assert [(e["source"], e["pairs"], e["tasks"]) for e in record["sources"]] == [
        ("arc1-train", "train", 400),
        ("arc1-eval", "train", 400),
    ]
    demonstrations = sum(len(task.train) for task in load_tasks("arc1-eval"))
    assert record["sources"][1]["pair_count"] == demonstrations == 1363  # 3.41 per task


def test_eval_refuses_tasks_whose_test_pairs_were_trained_on(
    task_folder, clean_run, tmp_path, capsys
):
    leaky = _arc_config(task_folder, augment=False, include_test_pairs=True)
    train(leaky, tmp_path / "leaky", progress=False, check_memory=False)
    argv = ["--checkpoint", str(tmp_path / "leaky"), "--data", str(task_folder)]
    assert cli.main(["eval", *argv, "--out", str(tmp_path / "eval")]) == 1
    err = capsys.readouterr().err
    assert "lpn-arc eval: error:" in err and "aaaa0001, bbbb0002" in err
    assert "--include-test-pairs" in err
    assert not (tmp_path / "eval" / "results.json").exists()
    assert cli.main(["solve", str(task_folder / "bbbb0002.json"), *argv[:2]]) == 1
    assert "bbbb0002" in capsys.readouterr().err
    assert cli.main(["explore", *argv]) == 1  # refused before anything is served
    assert "lpn-arc explore: error:" in capsys.readouterr().err

    # The same tasks under other names and in another folder: refused by content.
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    for old, new in (("aaaa0001", "zz01"), ("bbbb0002", "zz02")):
        (renamed / f"{new}.json").write_text((task_folder / f"{old}.json").read_text())
    assert cli.main(["eval", argv[0], argv[1], "--data", str(renamed)]) == 1
    assert "2 of the 2 scored task(s) (zz01, zz02)" in capsys.readouterr().err

    clean, clean_config, _ = clean_run
    tasks = commands.load_arc(str(task_folder))
    seen = check_no_test_leak(clean, clean_config, tasks)  # demonstrations only: no refusal
    assert seen == {
        "tasks": 2,
        "demonstrations_in_training": 2,
        "task_ids": ["aaaa0001", "bbbb0002"],
    }
    assert cli.main(["eval", "--checkpoint", str(clean), "--data", str(task_folder), "--out",
                     str(tmp_path / "clean_eval")]) == 0  # fmt: skip
    assert "training saw the demonstrations of 2 of the 2 scored task(s)" in capsys.readouterr().out
    report = json.loads((tmp_path / "clean_eval" / "results.json").read_text())
    assert report["seen_in_training"]["demonstrations_in_training"] == 2
    digests = json.loads((clean / "run.json").read_text())["data"]["pair_digests"]
    assert len(digests) == 3  # the 6 demonstrations are 3 distinct pairs (rolled grids)

    # A run recorded before provenance existed trained on test pairs: refused too.
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    record = json.loads((clean / "run.json").read_text())
    del record["data"]
    (legacy / "run.json").write_text(json.dumps(record))
    with pytest.raises(TestLeakError, match="before lpn-arc kept test pairs out"):
        check_no_test_leak(legacy, clean_config, tasks)
