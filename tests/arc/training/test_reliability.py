"""Interrupted, corrupted, non-finite and oversized training runs, and bit-identical reruns.

A tiny configuration (one encoder and one decoder layer on 4x4 PATTERN tasks, 6 steps,
checkpoints every 2) keeps every run to seconds; the compiled step is shared by the
in-process runs. The fast tests kill one run inside a checkpoint write; the slow ones
(``make test-slow``) kill runs at random points many times, and send real signals.
"""

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from lpn_arc import cli
from lpn_arc.config import parse_search
from lpn_arc.data import pattern_test_tasks, training_batch
from lpn_arc.evaluation import evaluate_tasks
from lpn_arc.training import (
    CheckpointError,
    CheckpointWarning,
    MemoryLimitError,
    TrainingError,
    compiled,
    data_mesh,
    load_run,
    memory,
    train,
)
from lpn_arc.training.compiled import TrainSteps
from lpn_arc.training.memory import batch_signature

from tests.arc.helpers import tiny_config

ROOT = Path(__file__).resolve().parents[3]  # the repository


CONFIG = tiny_config()  # the configuration of training/test_loop.py: its compiled step is reused


# the same configuration through the command line
CLI_ARGS = (
    "train --preset quickstart --max-rows 4 --max-cols 4 --latent-dim 4 --encoder-layers 1 "
    "--decoder-layers 1 --num-heads 2 --head-dim 4 --mlp-factor 1.0 --grid-size 4 "
    "--pattern-size 2 --test-tasks 8 --batch-size 4 --steps 6 --checkpoint-every 2 "
    "--log-every 1 --warmup-steps 2 --no-progress"
).split()


CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    sys.path[:0] = [{root!r}, {app!r}]
    from tests.arc.helpers import tiny_config
    import orbax.checkpoint as ocp
    from lpn_arc.training import train

    run_dir, overrides, kill_in_save = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    if kill_in_save:  # SIGKILL this process while Orbax writes that step's checkpoint
        save = ocp.CheckpointManager.save

        def killing_save(self, step, *args, **kwargs):
            out = save(self, step, *args, **kwargs)  # the write has started, not finished
            if step == kill_in_save:
                os.kill(os.getpid(), signal.SIGKILL)
            return out

        ocp.CheckpointManager.save = killing_save
    train(tiny_config(**overrides), run_dir, resume=True, progress=False)
    print("FINISHED", flush=True)
    """
).format(root=str(ROOT), app=str(ROOT / "applications" / "arc"))


def _child(tmp: Path, run_dir: Path, overrides: dict, kill_in_save: int = 0, env=None):
    script = tmp / "child.py"
    script.write_text(CHILD)
    command = [sys.executable, str(script), str(run_dir), json.dumps(overrides), str(kill_in_save)]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _assert_same_params(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()  # bit for bit


def _records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [
        {k: v for k, v in json.loads(x).items() if k not in ("time", "tasks_per_s")} for x in lines
    ]


def _steps(run_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())


@contextlib.contextmanager
def _compilations():
    """Records the training search of every training step compiled inside it."""
    made = []
    real = compiled.make_train_step

    def counting(*args, **kwargs):
        made.append(kwargs["search"])
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compiled, "make_train_step", counting)
        yield made


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted in-process run (and the steps it compiled), and a child process
    SIGKILLed while writing the checkpoint of step 4 (started first, so that the two
    overlap)."""
    tmp = tmp_path_factory.mktemp("reliability_train")
    child = _child(tmp, tmp / "killed", {}, kill_in_save=4)
    with _compilations() as made:
        reference = train(CONFIG, tmp / "reference", progress=False)
    _, err = child.communicate(timeout=600)
    return {
        "tmp": tmp,
        "reference": reference,
        "compiled": made,
        "child_rc": child.returncode,
        "child_err": err,
    }


def test_kill_during_checkpoint_write_then_resume_is_bit_identical(runs):
    tmp, reference = runs["tmp"], runs["reference"]
    assert runs["child_rc"] == -signal.SIGKILL, runs["child_err"][-2000:]
    killed = tmp / "killed"
    leftovers = [p.name for p in (killed / "checkpoints").iterdir() if not p.name.isdigit()]
    assert _steps(killed) == [2] and any(n.startswith("4.") for n in leftovers), leftovers
    with _compilations() as made:
        resumed = train(CONFIG, killed, resume=True, progress=False)
    assert made == []  # a resume in the same process reuses the compiled step
    assert resumed.step == reference.step == 6
    _assert_same_params(resumed.params, reference.params)  # across two processes, too
    assert _records(killed) == _records(tmp / "reference")
    assert _steps(killed) == [4, 6]


def test_reruns_are_bit_identical_and_record_seed_and_versions(runs, tmp_path):
    tmp, reference = runs["tmp"], runs["reference"]
    # six steps of one search and one size bucket: one compilation (none when an earlier
    # test of this process compiled the configuration), and none for the same again
    assert runs["compiled"] in ([], [CONFIG.search_at(0)])
    with _compilations() as made:
        again = train(CONFIG, tmp_path / "again", progress=False)
    assert made == []
    assert list(TrainSteps(CONFIG, data_mesh()).estimates()) == [
        (CONFIG.search_at(0), batch_signature(training_batch(CONFIG, 0)))
    ]
    _assert_same_params(again.params, reference.params)
    assert _records(tmp_path / "again") == _records(tmp / "reference")
    for run_dir in (tmp / "reference", tmp_path / "again"):
        info = json.loads((run_dir / "run.json").read_text())
        assert info["seed"] == CONFIG.seed and len(info["sessions"]) == 1
        for name in ("python", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint"):
            assert info["versions"][name], name
        assert info["versions"]["latentsearch"] and info["versions"]["lpn-arc"]
    meta = json.loads((tmp / "reference/checkpoints/6/meta/metadata").read_text())
    assert meta["versions"]["jax"] == jax.__version__ and len(meta["state_sha256"]) == 64


def _corrupt(run_dir: Path, how: str) -> None:
    step = run_dir / "checkpoints" / "6"
    if how == "truncated":
        for f in (step / "state" / "d").iterdir():
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif how == "flipped":
        for f in (step / "state" / "d").iterdir():
            data = bytearray(f.read_bytes())
            for i in range(len(data) // 2, min(len(data), len(data) // 2 + 16)):
                data[i] ^= 0xFF
            f.write_bytes(bytes(data))
    elif how == "checksum":  # restores without an error, but not what was saved (and no
        meta = step / "meta" / "metadata"  # file digests to notice it before reading)
        payload = json.loads(meta.read_text())
        payload["state_sha256"] = "0" * 64
        meta.write_text(json.dumps(payload))
        (step / "lpn_arc_files.sha256.json").unlink()
    elif how == "metadata":
        (step / "meta" / "metadata").write_text('{"config": ')
    elif how == "emptied":
        shutil.rmtree(step / "state")
        (step / "state").mkdir()


# without the file digests, Orbax itself notices, leaving unraisable asyncio errors behind
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("how", ["truncated", "flipped", "checksum", "metadata", "emptied"])
def test_a_corrupted_latest_checkpoint_falls_back_to_the_previous(runs, tmp_path, how):
    source = runs["tmp"] / "reference"
    step_4 = load_run(source, step=4)
    run_dir = tmp_path / "run"
    shutil.copytree(source, run_dir)
    _corrupt(run_dir, how)
    with pytest.warns(CheckpointWarning, match=r"checkpoints: skipped unreadable .*step 6: .*"):
        loaded = load_run(run_dir)
    (run_dir / "checkpoints" / "6" / "lpn_arc_files.sha256.json").unlink(missing_ok=True)
    with pytest.warns(CheckpointWarning, match=r"step 6: .*; using step 4"):  # Orbax notices
        assert load_run(run_dir).step == 4
    assert loaded.step == 4 and loaded.config == CONFIG
    _assert_same_params((loaded.params, loaded.opt_state), (step_4.params, step_4.opt_state))
    with pytest.raises(CheckpointError, match=r"no readable checkpoint .* step 6"):
        load_run(run_dir, step=6)
    if how == "truncated":  # resuming continues from step 4 and ends where it should
        with pytest.warns(CheckpointWarning) as record:
            resumed = train(CONFIG, run_dir, resume=True, progress=False)
        messages = " ".join(str(w.message) for w in record)
        assert "skipped unreadable" in messages and "moved the unreadable checkpoint" in messages
        _assert_same_params(resumed.params, runs["reference"].params)
        assert _steps(run_dir) == [4, 6] and (run_dir / "corrupt_checkpoints" / "6").is_dir()
        assert _records(run_dir) == _records(source)
        info = json.loads((run_dir / "run.json").read_text())
        assert [s["start_step"] for s in info["sessions"]] == [0, 4]


def test_no_readable_checkpoint_is_a_clear_error(runs, tmp_path, capfd):
    run_dir = tmp_path / "run"
    shutil.copytree(runs["tmp"] / "reference", run_dir)
    for step in (4, 6):
        (run_dir / "checkpoints" / str(step) / "meta" / "metadata").write_text("{")
    with pytest.raises(CheckpointError, match=r"no readable checkpoint .*step 6: .*step 4: "):
        load_run(run_dir)
    capfd.readouterr()
    assert cli.main(["eval", "--checkpoint", str(run_dir)]) == 1
    time.sleep(0.5)  # Orbax's reads of a corrupted file used to print tracebacks late
    err = capfd.readouterr().err.strip()
    assert err.startswith("lpn-arc eval: error: no readable checkpoint in ") and "\n" not in err
    assert "6/meta/metadata is truncated or corrupted" in err


def _faulty_step(monkeypatch, fault):
    """Wraps the compiled step: ``fault(call_index, outputs) -> outputs`` (0-based calls)."""
    real = TrainSteps.compiled_step
    calls = []

    def compiled_step(self, *args, **kwargs):
        step_fn = real(self, *args, **kwargs)

        def wrapped(*step_args):
            out = step_fn(*step_args)
            calls.append(None)
            return fault(len(calls) - 1, out)

        return wrapped

    monkeypatch.setattr(TrainSteps, "compiled_step", compiled_step)


def _nan_tree(tree):
    return jax.tree.map(lambda x: x * np.nan, tree)


def test_a_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(runs, tmp_path, monkeypatch):
    def nan_at_step_3(i, out):
        params, opt_state, metrics = out
        if i == 2:  # the third step: its parameters, loss and gradients are all NaN
            return _nan_tree(params), opt_state, _nan_tree(metrics)
        return out

    _faulty_step(monkeypatch, nan_at_step_3)
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"non-finite loss and grad_norm at step 3 \(") as info:
        train(CONFIG, run_dir, progress=False)
    assert "last good checkpoint (step 2)" in str(info.value) and "--lr" in str(info.value)
    assert _steps(run_dir) == [2]
    assert [r["step"] for r in _records(run_dir)] == [1, 2]
    monkeypatch.undo()  # the kept checkpoint is exactly the good state of step 2
    resumed = train(CONFIG, run_dir, resume=True, progress=False)
    _assert_same_params(resumed.params, runs["reference"].params)


def test_an_exploding_gradient_stops_before_any_checkpoint(runs, tmp_path, monkeypatch):
    def inf_gradient(i, out):
        params, opt_state, metrics = out
        return params, opt_state, {**metrics, "grad_norm": metrics["grad_norm"] * np.inf}

    _faulty_step(monkeypatch, inf_gradient)
    with pytest.raises(TrainingError, match=r"non-finite grad_norm at step 1 \(grad_norm=inf\)"):
        train(CONFIG, tmp_path / "run", progress=False)
    assert _steps(tmp_path / "run") == []


def test_ctrl_c_writes_a_final_checkpoint_and_the_run_resumes_exactly(
    runs, tmp_path, monkeypatch, capsys
):
    def ctrl_c_in_step_3(i, out):
        if i == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN in a background job, else Python's
    _faulty_step(monkeypatch, ctrl_c_in_step_3)
    out = str(tmp_path / "run")
    assert cli.main([*CLI_ARGS, "--out", out]) == 130
    err = capsys.readouterr().err
    assert "SIGINT: stopping after this step and writing a checkpoint" in err
    assert f"lpn-arc train: interrupted at step 3; checkpoint written to {out}" in err
    assert _steps(tmp_path / "run") == [2, 3]
    monkeypatch.undo()
    assert cli.main([*CLI_ARGS, "--out", out, "--resume"]) == 0
    loaded = load_run(out)
    assert loaded.step == 6
    _assert_same_params(loaded.params, runs["reference"].params)
    assert signal.getsignal(signal.SIGINT) is before  # restored


def test_a_second_ctrl_c_stops_at_once(runs, tmp_path, monkeypatch):
    def two_ctrl_c(i, out):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        return out

    _faulty_step(monkeypatch, two_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        train(CONFIG, tmp_path / "run", progress=False)
    assert _steps(tmp_path / "run") == []


def test_a_step_that_cannot_fit_fails_fast_with_the_estimate(runs, tmp_path, monkeypatch, capsys):
    limit = {"bytes": 10_000}
    monkeypatch.setattr(memory, "available_memory", lambda device: (limit["bytes"], "a test limit"))
    out = tmp_path / "run"
    start = time.perf_counter()
    assert cli.main([*CLI_ARGS, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("lpn-arc train: error: the training step needs about ") and "\n" not in err
    )
    assert "(parameters, gradients, optimiser state and batch alone)" in err
    assert "but only 0.00 GB is available (a test limit)" in err and "--no-memory-check" in err
    assert time.perf_counter() - start < 30  # before compiling anything
    # between the parameters alone and XLA's estimate of the whole step (activations too)
    (needed,) = TrainSteps(CONFIG, data_mesh()).estimates().values()
    limit["bytes"] = needed - 1
    with pytest.raises(MemoryLimitError, match=r"\(XLA's estimate for batch 4\)"):
        train(CONFIG, tmp_path / "run2", progress=False)
    assert not (tmp_path / "run2" / "metrics.jsonl").read_text()  # no step ran
    result = train(CONFIG, tmp_path / "run3", progress=False, stop_at=1, check_memory=False)
    assert result.step == 1
    assert cli.main([*CLI_ARGS, "--out", str(tmp_path / "run4"), "--steps", "6"]) == 1
    assert cli.main([*CLI_ARGS, "--out", str(tmp_path / "run4"), "--no-memory-check"]) == 0


def test_a_torn_metrics_line_from_a_killed_run_is_dropped_on_resume(runs, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(runs["tmp"] / "reference", run_dir)
    shutil.rmtree(run_dir / "checkpoints" / "6")
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"step": 7, "loss": 0.')  # killed mid-line
    resumed = train(CONFIG, run_dir, resume=True, progress=False)
    _assert_same_params(resumed.params, runs["reference"].params)
    assert _records(run_dir) == _records(runs["tmp"] / "reference")


def _last_step(run_dir: Path) -> int:
    ckpts = run_dir / "checkpoints"
    return max([0] + (_steps(run_dir) if ckpts.is_dir() else []))


def _write_started(run_dir: Path, since: float) -> bool:
    """Has a checkpoint write (an Orbax ``*.orbax-checkpoint-tmp`` folder) begun since?"""
    ckpts = run_dir / "checkpoints"
    for p in ckpts.iterdir() if ckpts.is_dir() else ():
        try:
            if "tmp" in p.name and p.stat().st_mtime > since:
                return True
        except FileNotFoundError:  # renamed into place meanwhile
            pass
    return False


def _kill_point(rng, child, run_dir, mode):
    """Waits for a random moment of ``mode``; returns False if the child ended first."""
    spawned, spawned_wall = time.perf_counter(), time.time() - 0.01
    target, delay = _last_step(run_dir) + rng.randint(1, 3), rng.uniform(0.0, 0.05)
    startup = spawned + rng.uniform(0.0, 4.0)
    while child.poll() is None:
        if mode == "startup" and time.perf_counter() > startup:
            return True
        if mode == "step" and _last_step(run_dir) >= target:
            time.sleep(delay)
            return True
        if mode == "save" and _write_started(run_dir, spawned_wall):
            return True
        time.sleep(0.002)
    return False


@pytest.mark.slow
def test_random_sigkills_at_any_point_then_resume_are_bit_identical(tmp_path):
    """Kills a 12-step run with checkpoints at every step again and again, at random
    moments (while starting, after some steps, as soon as a checkpoint write starts),
    resuming each time, until it finishes: the result is the uninterrupted run's."""
    overrides = {"train_search": "mean", "steps": 12, "checkpoint_every": 1}
    config = tiny_config(**overrides)
    reference = train(config, tmp_path / "reference", progress=False)
    cache = {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "xla_cache")}
    cache.update(JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    cache.update(JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    warm = _child(tmp_path, tmp_path / "warm", overrides, env=cache)  # fills the XLA cache
    assert warm.wait(timeout=600) == 0, warm.stderr.read()[-2000:]
    rng = random.Random(0)
    run_dir = tmp_path / "killed"
    modes = ["startup", "step", "save", "step", "save", "step", "save", "startup"]
    kills = []
    while True:
        mode = modes[len(kills)] if len(kills) < len(modes) else None
        child = _child(tmp_path, run_dir, overrides, env=cache)
        if mode and _kill_point(rng, child, run_dir, mode):
            child.kill()
            child.communicate()
            ckpts = run_dir / "checkpoints"
            torn = ckpts.is_dir() and any("tmp" in p.name for p in ckpts.iterdir())
            kills.append((mode, torn))
            continue
        stdout, stderr = child.communicate(timeout=600)
        if child.returncode == 0:
            assert "FINISHED" in stdout
            break
        raise AssertionError(stderr[-3000:])
    assert len(kills) >= 5, kills
    assert any(mode == "save" and torn for mode, torn in kills), kills  # a write was cut
    loaded = load_run(run_dir)
    assert loaded.step == 12
    _assert_same_params(loaded.params, reference.params)
    assert _records(run_dir) == _records(tmp_path / "reference")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_real_signal_to_the_cli_writes_a_final_checkpoint(tmp_path, signum):
    out = tmp_path / "run"
    argv = [a for a in CLI_ARGS if a != "6"]
    argv[argv.index("--steps") + 1 : argv.index("--steps") + 1] = ["100000"]
    env = {**os.environ, "LPN_ARC_ALLOCATOR": "glibc"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "applications" / "arc")])
    child = subprocess.Popen(
        [sys.executable, "-m", "lpn_arc", *argv, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    metrics = out / "metrics.jsonl"
    deadline = time.perf_counter() + 600
    while time.perf_counter() < deadline and child.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    child.send_signal(signum)
    _, err = child.communicate(timeout=300)
    assert child.returncode == 130, err[-3000:]
    assert "interrupted at step" in err and "Traceback" not in err
    step = int(err.split("interrupted at step ")[1].split(";")[0])
    assert step >= 3 and _steps(out)[-1] == step


@pytest.mark.slow
def test_a_huge_learning_rate_gives_a_clear_non_finite_error(tmp_path):
    config = tiny_config(train_search="mean", lr=1e30, warmup_steps=0, checkpoint_every=1)
    with pytest.raises(TrainingError, match=r"non-finite .* at step \d+ .*last good checkpoint"):
        train(config, tmp_path / "run", progress=False)
    params = load_run(tmp_path / "run").params
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))


EVAL_CHILD = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{root!r}, {app!r}]
    import jax, numpy as np
    from lpn_arc.config import parse_search
    from lpn_arc.data import pattern_test_tasks
    from lpn_arc.evaluation import evaluate_tasks
    from lpn_arc.training import load_run

    ckpt = load_run(sys.argv[1])
    tasks = pattern_test_tasks(ckpt.config, 8)
    spec = parse_search(sys.argv[3])
    out = evaluate_tasks(ckpt.graphdef, ckpt.params, tasks, spec, jax.random.key(0))
    np.savez(sys.argv[2], attempt_1=out.attempt_1, attempt_2=out.attempt_2,
             attempt_shapes=out.attempt_shapes, scores=out.scores, traces=out.traces)
    """
).format(root=str(ROOT), app=str(ROOT / "applications" / "arc"))


@pytest.mark.slow
@pytest.mark.parametrize("search", ["sample:4", "grad:2"])
def test_evaluation_reruns_are_bit_identical_across_processes(runs, tmp_path, search):
    script = tmp_path / "evaluate.py"
    script.write_text(EVAL_CHILD)
    outputs = []
    for i in range(2):
        path = tmp_path / f"out{i}.npz"
        done = subprocess.run(
            [sys.executable, str(script), str(runs["tmp"] / "reference"), str(path), search],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(dict(np.load(path)))
    ckpt = load_run(runs["tmp"] / "reference")
    tasks = pattern_test_tasks(ckpt.config, 8)
    here = evaluate_tasks(
        ckpt.graphdef, ckpt.params, tasks, parse_search(search), jax.random.key(0)
    )
    outputs.append({name: getattr(here, name) for name in outputs[0]})
    for name in outputs[0]:
        assert (
            outputs[0][name].tobytes() == outputs[1][name].tobytes() == outputs[2][name].tobytes()
        )
