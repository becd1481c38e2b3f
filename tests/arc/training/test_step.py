"""The train step: dropout in training only, gradient accumulation, data-parallel sharding."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest
from lpn_arc.data import training_batch
from lpn_arc.training import init_params

from tests.arc.helpers import one_train_step, scale_config, tiny_config


def test_dropout_applies_in_training_only():
    from lpn_arc.training import task_loss_fn

    def losses(rate):
        config = tiny_config(train_search="mean")
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, dropout=rate))
        graphdef, params = init_params(config)
        task = jax.tree.map(lambda v: v[0], training_batch(config, 0))
        loss = jax.jit(task_loss_fn(graphdef, config))
        key = jax.random.key(0)
        return [float(loss(params, task, key, jax.random.key(s))[0]) for s in (1, 2, 1)]

    with_dropout, without = losses(0.3), losses(0.0)
    assert with_dropout[0] != with_dropout[1]  # two dropout keys, two losses
    assert with_dropout[0] == with_dropout[2]  # the same key, the same loss
    assert without[0] == without[1] == without[2]  # rate 0: the key is unused
    assert with_dropout[0] != without[0]


ROOT = Path(__file__).resolve().parents[3]  # the repository


def _grad_config(accum):
    """Grad 1 training, batch 16: with 4 micro-batches each still splits over 4 devices."""
    return scale_config(train_search="grad:1", batch_size=16, grad_accum=accum)


@pytest.fixture(scope="module")
def one_device_steps():
    """One default-placement step of :func:`_grad_config` in one pass (1) and in 4
    micro-batches (4), and the step's jaxpr for each: the references of the accumulation and
    the sharding tests (each compiled once for both)."""
    return {
        accum: (
            one_train_step(_grad_config(accum)),
            one_train_step(_grad_config(accum), jaxpr=True),
        )
        for accum in (1, 4)
    }


def test_gradient_accumulation_equals_one_big_batch(one_device_steps):
    (whole, whole_jaxpr), (accumulated, accumulated_jaxpr) = (
        one_device_steps[1],
        one_device_steps[4],
    )
    for a, b in zip(jax.tree.leaves(whole[0]), jax.tree.leaves(accumulated[0]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for name in ("loss", "grad_norm"):
        np.testing.assert_allclose(whole[2][name], accumulated[2][name], rtol=1e-5)
    # the step really runs micro-batches: the first, then a scan over the other 3
    assert "length=3" in accumulated_jaxpr
    assert "length=3" not in whole_jaxpr


SHARDED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path[:0] = [{root!r}, {app!r}]
    import jax, numpy as np
    from tests.arc.helpers import one_train_step, scale_config
    from lpn_arc.data import training_batch
    from lpn_arc.training import data_mesh, shard_batch

    assert jax.device_count() == 4, jax.devices()
    out = {{}}
    for accum in (1, 4):
        config = scale_config(train_search="grad:1", batch_size=16, grad_accum=accum)
        params, _, metrics = one_train_step(config, mesh=data_mesh())
        leaves = jax.tree.leaves(params)
        np.savez({folder!r} + f"/sharded{{accum}}.npz", *[np.asarray(x) for x in leaves])
        out[str(accum)] = {{
            "loss": float(metrics["loss"]),
            "param_devices": len(leaves[0].sharding.device_set),
        }}
    batch = shard_batch(data_mesh(), training_batch(scale_config(), 0))
    out["batch_devices"] = len(batch.pairs.inputs.sharding.device_set)
    shards = batch.pairs.inputs.addressable_shards
    out["batch_shard_rows"] = sorted({{s.data.shape[0] for s in shards}})
    print("RESULT" + json.dumps(out))
    """
)


def test_sharded_step_on_four_cpu_devices_equals_the_one_device_step(tmp_path, one_device_steps):
    """Grad 1 steps in one pass and in 4 micro-batches, sharded over 4 CPU devices in a child
    process, against the same steps on one device (computed here)."""
    script = tmp_path / "sharded.py"
    app = str(ROOT / "applications" / "arc")
    script.write_text(SHARDED_SCRIPT.format(root=str(ROOT), app=app, folder=str(tmp_path)))
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    result = json.loads(line[len("RESULT") :])
    assert result["batch_devices"] == 4 and result["batch_shard_rows"] == [2]
    for accum in (1, 4):
        (params, _, metrics), _ = one_device_steps[accum]
        entry = result[str(accum)]
        assert entry["param_devices"] == 4  # parameters replicated on every device
        with np.load(tmp_path / f"sharded{accum}.npz") as saved:
            sharded = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        single = [np.asarray(x) for x in jax.tree.leaves(params)]
        assert len(sharded) == len(single)
        diffs = [float(np.max(np.abs(a - b))) for a, b in zip(single, sharded, strict=True)]
        assert max(diffs) < 1e-5, (accum, max(diffs))
        np.testing.assert_allclose(float(metrics["loss"]), entry["loss"], rtol=1e-5)
