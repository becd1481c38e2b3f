"""Paper-scale presets, gradient accumulation, data-parallel sharding, fine-tuning stages."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest
from lpn_arc.config import get_preset
from lpn_arc.data import training_batch
from lpn_arc.model import count_params
from lpn_arc.training import init_params, make_optimizer, make_train_step, train
from test_arc_train_cli import tiny_config

ROOT = Path(__file__).resolve().parents[2]


def tiny(**overrides):
    fields = dict(batch_size=8, steps=4, warmup_steps=1)
    return tiny_config(**{**fields, **overrides})


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
    assert paper.search_at(0) == "mean" and paper.search_at(94_999) == "mean"
    assert paper.search_at(95_000) == "grad:1" and paper.search_at(99_999) == "grad:1"
    assert _count("arc-paper") == 44_604_928  # facts 2.8, Table 16 with learned positions
    assert _count("arc-overfit") == 207_264  # facts 2.8, Table 12
    assert _count("arc-repo") == 6_475_520  # facts 2.8, official arc_train.yaml
    assert get_preset("arc-overfit").data.task_id_list == ("007bbfb7",)
    small = get_preset("arc-small")
    assert small.model.max_rows == 30 and small.data.source == "arc1-train"


def test_config_rejects_bad_accumulation_and_finetune():
    with pytest.raises(ValueError, match="not divisible by grad_accum"):
        tiny(grad_accum=3)
    with pytest.raises(ValueError, match="finetune_steps"):
        tiny(finetune_steps=5)
    with pytest.raises(ValueError, match="unknown search"):
        tiny(finetune_search="grad")


def _one_step(config, mesh=None, jaxpr=False):
    graphdef, params = init_params(config)
    optimizer = make_optimizer(config)
    step = make_train_step(graphdef, config, optimizer, mesh=mesh)
    batch = training_batch(config, 0)
    args = (params, optimizer.init(params), batch, jax.random.key(3))
    return str(jax.make_jaxpr(step)(*args)) if jaxpr else step(*args)


def test_gradient_accumulation_equals_one_big_batch():
    whole = _one_step(tiny(train_search="grad:1"))
    config = tiny(train_search="grad:1", grad_accum=4)
    accumulated = _one_step(config)
    for a, b in zip(jax.tree.leaves(whole[0]), jax.tree.leaves(accumulated[0]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for name in ("loss", "grad_norm"):
        np.testing.assert_allclose(whole[2][name], accumulated[2][name], rtol=1e-5)
    # the step really runs micro-batches: the first, then a scan over the other 3
    assert "length=3" in _one_step(config, jaxpr=True)
    assert "length=3" not in _one_step(tiny(train_search="grad:1"), jaxpr=True)


SHARDED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path[:0] = [{root!r}, {app!r}, {tests!r}]
    import jax, numpy as np
    from test_arc_scale import tiny, _one_step
    from lpn_arc.data import training_batch
    from lpn_arc.training import data_mesh, shard_batch

    assert jax.device_count() == 4, jax.devices()
    out = {{}}
    for search, accum in (("mean", 1), ("grad:1", 2)):
        config = tiny(train_search=search, grad_accum=accum)
        single = _one_step(config, mesh=data_mesh(jax.devices()[:1]))
        sharded = _one_step(config, mesh=data_mesh())
        diffs = [float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                 for a, b in zip(jax.tree.leaves(single[0]), jax.tree.leaves(sharded[0]))]
        out[f"{{search}}/{{accum}}"] = {{
            "max_param_diff": max(diffs),
            "loss": [float(single[2]["loss"]), float(sharded[2]["loss"])],
            "param_devices": len(jax.tree.leaves(sharded[0])[0].sharding.device_set),
        }}
    batch = shard_batch(data_mesh(), training_batch(tiny(), 0))
    out["batch_devices"] = len(batch["inputs"].sharding.device_set)
    shards = batch["inputs"].addressable_shards
    out["batch_shard_rows"] = sorted({{s.data.shape[0] for s in shards}})
    print("RESULT" + json.dumps(out))
    """
)


def test_sharded_step_on_four_cpu_devices_equals_the_one_device_step(tmp_path):
    script = tmp_path / "sharded.py"
    script.write_text(
        SHARDED_SCRIPT.format(
            root=str(ROOT), app=str(ROOT / "applications" / "arc"), tests=str(ROOT / "tests/arc")
        )
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    result = json.loads(line[len("RESULT") :])
    assert result["batch_devices"] == 4 and result["batch_shard_rows"] == [2]
    for name in ("mean/1", "grad:1/2"):
        entry = result[name]
        assert entry["param_devices"] == 4  # parameters replicated on every device
        assert entry["max_param_diff"] < 1e-5, (name, entry)
        np.testing.assert_allclose(*entry["loss"], rtol=1e-5)


def test_finetune_stage_switches_the_training_search(tmp_path):
    config = tiny(train_search="mean", finetune_search="grad:1", finetune_steps=2)
    train(config, tmp_path / "run", progress=False)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    # lpn_loss reports the search score only when it searches (Grad 1 steps 3 and 4)
    assert ["search_score" in r for r in records] == [False, False, True, True]
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "search_score" in header and "loss" in header
