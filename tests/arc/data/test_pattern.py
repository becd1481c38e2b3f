"""Tests of the PATTERN task generator and its program-disjoint splits."""

import dataclasses
import hashlib
import itertools
import json

import numpy as np
import pytest
from lpn_arc.config import DataConfig, config_from_dict, config_to_dict, get_preset
from lpn_arc.data import (
    generate_pattern_tasks,
    pattern_test_tasks,
    program_split,
    program_text,
    seen_programs,
    task_programs,
)


def _tasks(seed=0, **kwargs):
    return generate_pattern_tasks(np.random.default_rng(seed), **kwargs)


def test_layout():
    pairs, patterns = _tasks(num_tasks=5, num_pairs=3, grid_size=7, pattern_size=3)
    assert pairs.inputs.shape == (5, 3, 7, 7) and pairs.outputs.shape == (5, 3, 7, 7)
    assert pairs.input_shapes.shape == (5, 3, 2) and (pairs.input_shapes == 7).all()
    assert (pairs.output_shapes == 7).all()
    assert patterns.shape == (5, 3, 3)
    assert all(v.dtype == np.int32 for v in pairs.arrays().values()) and patterns.dtype == np.int32


@pytest.mark.parametrize("density", [1.0, 0.5])
def test_marker_and_paste(density):
    size, psize = 10, 4
    pairs, patterns = _tasks(num_tasks=20, num_pairs=4, pattern_size=psize, density=density)
    seen = set()
    for t in range(20):
        for n in range(4):
            inp, out = pairs.inputs[t, n], pairs.outputs[t, n]
            (r, c), *rest = np.argwhere(inp != 0)
            assert not rest and inp[r, c] == 1
            assert 0 <= r <= size - psize and 0 <= c <= size - psize
            seen.update([r, c])
            expected = np.zeros((size, size), np.int32)
            expected[r : r + psize, c : c + psize] = patterns[t]
            np.testing.assert_array_equal(out, expected)
    assert seen == set(range(size - psize + 1))


def test_density_extremes():
    _, full = _tasks(num_tasks=50, density=1.0)
    assert (full >= 1).all() and (full <= 9).all()
    assert set(np.unique(full)) == set(range(1, 10))
    pairs, empty = _tasks(num_tasks=50, density=0.0)
    assert not empty.any() and not pairs.outputs.any()
    _, half = _tasks(num_tasks=200, density=0.5)
    assert 0.4 < (half > 0).mean() < 0.6


def test_reproducible():
    a, pa = _tasks(seed=3, num_tasks=4)
    b, pb = _tasks(seed=3, num_tasks=4)
    np.testing.assert_array_equal(pa, pb)
    for name, value in a.arrays().items():
        np.testing.assert_array_equal(value, getattr(b, name))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_tasks": 0}, "num_tasks"),
        ({"num_tasks": 2, "num_pairs": 0}, "num_pairs"),
        ({"num_tasks": 2, "grid_size": 31}, "grid_size"),
        ({"num_tasks": 2, "grid_size": 5, "pattern_size": 6}, "pattern_size"),
        ({"num_tasks": 2, "density": 1.5}, "density"),
        ({"num_tasks": 2.0}, "num_tasks"),
    ],
)
def test_argument_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        _tasks(**kwargs)
    with pytest.raises(ValueError, match="rng"):
        generate_pattern_tasks(0, 2)


def test_the_split_rule_is_the_documented_digest():
    for cells in ([[1, 2], [3, 4]], [[3, 0], [5, 1]], [[9, 9, 9], [0, 0, 0], [1, 2, 3]]):
        pattern = np.array(cells)
        text = f"{pattern.shape[0]}x{pattern.shape[1]}:" + "".join(map(str, pattern.ravel()))
        expected = "test" if hashlib.sha256(text.encode()).digest()[0] < 64 else "train"
        assert program_text(pattern) == text and program_split(pattern) == expected
    everything = [np.array(c).reshape(2, 2) for c in itertools.product(range(1, 10), repeat=4)]
    test_share = np.mean([program_split(p) == "test" for p in everything])
    assert test_share == pytest.approx(1651 / 6561)  # a quarter of the 6,561 programs


def test_no_test_program_occurs_among_20000_training_tasks():
    rng = np.random.default_rng(0)
    pairs, train = generate_pattern_tasks(rng, 20_000, 2, 6, 2, split="train")
    _, test = generate_pattern_tasks(rng, 2_000, 2, 6, 2, split="test")
    trained = {program_text(p) for p in train}
    evaluated = {program_text(p) for p in test}
    assert len(trained) > 4_000 and len(evaluated) > 1_000  # most programs of each split
    assert not trained & evaluated
    assert {program_split(p) for p in train} == {"train"}
    assert task_programs(pairs, 2) == [program_text(p) for p in train]


def test_a_run_draws_train_programs_and_is_scored_on_test_programs():
    config = get_preset("quickstart")
    held_out = pattern_test_tasks(config, 128)
    assert {program_split(_block(t, 2)) for t in held_out.outputs[:, 0]} == {"test"}
    assert seen_programs(config, 300, held_out)["seen_programs"] == 0.0
    every = dataclasses.replace(config.data, pattern_split="none")
    legacy = dataclasses.replace(config, data=every)
    seen = seen_programs(legacy, 300, pattern_test_tasks(legacy, 128))
    assert seen["split"] == "none" and 0.3 < seen["seen_programs"] < 0.8  # 1-(1-1/6561)^4800


def test_a_configuration_saved_before_the_split_reads_as_every_program():
    payload = config_to_dict(get_preset("quickstart"))
    assert config_from_dict(payload).data.pattern_split == "program"
    del payload["data"]["pattern_split"]
    assert config_from_dict(payload).data.pattern_split == "none"
    with pytest.raises(ValueError, match="pattern_split"):
        DataConfig(pattern_split="random")


def test_a_split_that_the_density_cannot_reach_is_a_clear_error():
    empty = "test" if program_split(np.zeros((2, 2))) == "train" else "train"
    with pytest.raises(ValueError, match=f"no {empty} program"):
        _tasks(num_tasks=1, pattern_size=2, density=0.0, split=empty)
    with pytest.raises(ValueError, match="split"):
        _tasks(num_tasks=1, split="validation")


def _block(output, size):
    rows, cols = np.nonzero(output)
    return output[rows.min() : rows.min() + size, cols.min() : cols.min() + size]


def test_eval_reports_what_training_drew_of_the_evaluated_programs(tmp_path, capsys):
    from lpn_arc import cli

    argv = ["eval", "--checkpoint", "pretrained:pattern-6x6-grad1", "--tasks", "16"]
    assert cli.main([*argv, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "results.json").read_text())
    seen = report["seen_in_training"]
    assert seen["evaluated_programs"] == 16 and seen["split"] in ("program", "none")
    assert f"16 evaluated programs, {100 * seen['seen_programs']:.1f}% drawn in training" in out
