"""Tests of task evaluation (search, two attempts, metrics) and of the evaluation plots."""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx
from lpn_arc.config import parse_search
from lpn_arc.data import generate_pattern_tasks
from lpn_arc.evaluation import EvalOutput, evaluate_tasks, format_table, prediction_metrics
from lpn_arc.model import LPNModel, ModelConfig, split_model
from lpn_arc.plots import (
    interesting_tasks,
    plot_accuracy_vs_steps,
    plot_search_traces,
    plot_tasks,
    search_steps,
)

TINY = ModelConfig(
    max_rows=5,
    max_cols=5,
    latent_dim=4,
    encoder_layers=1,
    decoder_layers=1,
    num_heads=2,
    head_dim=8,
    mlp_factor=1.0,
)
NUM_TASKS = 5


@pytest.fixture(scope="module")
def setup():
    graphdef, params = split_model(LPNModel(TINY, rngs=nnx.Rngs(0)))
    tasks, _ = generate_pattern_tasks(
        np.random.default_rng(0), NUM_TASKS, num_pairs=3, grid_size=5, pattern_size=2
    )
    return graphdef, params, tasks


@pytest.fixture(scope="module")
def mean_output(setup):
    graphdef, params, tasks = setup
    return evaluate_tasks(graphdef, params, tasks, parse_search("mean"), jax.random.key(0))


@pytest.fixture(scope="module")
def grad_output(setup):
    graphdef, params, tasks = setup
    return evaluate_tasks(
        graphdef, params, tasks, parse_search("grad:3"), jax.random.key(0), batch_size=4
    )


@pytest.fixture(scope="module")
def sample_spec():
    return parse_search("sample:3")


@pytest.fixture(scope="module")
def sample_padded(setup, sample_spec):
    graphdef, params, tasks = setup
    return evaluate_tasks(graphdef, params, tasks, sample_spec, jax.random.key(1), batch_size=4)


# --------------------------------------------------------------------------------------
# Metrics on hand-made predictions


def _grid(rows):
    out = np.zeros((3, 3), np.int32)
    rows = np.asarray(rows, np.int32)
    out[: rows.shape[0], : rows.shape[1]] = rows
    return out


def test_metrics_exact_shape_and_pixel():
    truth = np.stack([_grid([[1, 2], [3, 4]]), _grid([[1, 2], [3, 4]]), _grid([[5, 5, 5]])])
    truth_shapes = np.array([[2, 2], [2, 2], [1, 3]])
    attempt_1 = np.stack(
        [
            _grid([[1, 2], [3, 4]]),  # exact
            _grid([[1, 2, 0], [3, 4, 0]]),  # right cells, wrong shape (2x3)
            _grid([[5, 5, 1]]),  # right shape, 2 of 3 cells
        ]
    )
    attempt_shapes = np.array([[[2, 2], [2, 2]], [[2, 3], [2, 2]], [[1, 3], [1, 3]]])
    attempt_2 = np.stack([_grid([[0]]), truth[1], _grid([[5, 5, 0]])])
    m = prediction_metrics(attempt_1, attempt_2, attempt_shapes, truth, truth_shapes)
    assert m["top1"].tolist() == [True, False, False]
    assert m["pass2"].tolist() == [True, True, False]
    assert m["shape"].tolist() == [True, False, True]
    # pixel counts only with the right shape (the official metric): task 1 scores 0
    np.testing.assert_allclose(m["pixel"], [1.0, 0.0, 2.0 / 3.0])


def test_pixel_counts_only_with_the_right_shape():
    truth = _grid([[1, 1, 1], [1, 1, 1], [1, 1, 1]])[None]
    # The padding holds the right colour, but only a 1x3 output was predicted.
    prediction = np.ones((1, 3, 3), np.int32)
    shapes = np.array([[[1, 3], [1, 3]]])
    m = prediction_metrics(prediction, prediction, shapes, truth, np.array([[3, 3]]))
    np.testing.assert_allclose(m["pixel"], [0.0])
    assert not m["top1"][0] and not m["shape"][0]
    right = prediction_metrics(prediction, prediction, np.array([[[3, 3], [3, 3]]]), truth,
                               np.array([[3, 3]]))  # fmt: skip
    assert right["top1"][0] and right["pixel"][0] == 1.0


def test_metrics_ignore_truth_padding():
    truth = np.full((1, 3, 3), 7, np.int32)
    truth[0, :2, :2] = 2
    prediction = np.zeros((1, 3, 3), np.int32)
    prediction[0, :2, :2] = 2
    shapes = np.array([[[2, 2], [2, 2]]])
    m = prediction_metrics(prediction, prediction, shapes, truth, np.array([[2, 2]]))
    assert m["top1"][0] and m["pass2"][0]


def test_metrics_reject_bad_shapes():
    with pytest.raises(ValueError, match="attempt_shapes"):
        prediction_metrics(
            np.zeros((2, 3, 3)), np.zeros((2, 3, 3)), np.zeros((2, 2)), np.zeros((2, 3, 3)),
            np.ones((2, 2)),
        )  # fmt: skip


def test_format_table_aligns_percentages():
    rows = [
        {"search": "mean", "top1": 0.25, "pass2": 0.5, "pixel": 0.875, "shape": 1.0,
         "evaluations": 1},
        {"search": "grad:100", "top1": 1 / 3, "pass2": 1.0, "pixel": 0.9, "shape": 1.0,
         "evaluations": 101},
    ]  # fmt: skip
    table = format_table(rows)
    lines = table.splitlines()
    assert lines[0].split() == ["search", "top1", "pass2", "pixel", "shape", "evaluations"]
    assert lines[2].split() == ["mean", "25.0", "50.0", "87.5", "100.0", "1"]
    assert lines[3].split() == ["grad:100", "33.3", "100.0", "90.0", "100.0", "101"]
    assert len({len(line) for line in lines}) == 1


# --------------------------------------------------------------------------------------
# Evaluation with a tiny model


def _check_output(out, num_tasks, num_steps):
    assert isinstance(out, EvalOutput)
    assert out.attempt_1.shape == (num_tasks, 5, 5)
    assert out.attempt_2.shape == (num_tasks, 5, 5)
    assert out.attempt_shapes.shape == (num_tasks, 2, 2)
    assert out.scores.shape == (num_tasks, 2)
    assert out.traces.shape == (num_tasks, num_steps)
    assert set(out.metrics) == {
        "search", "top1", "pass2", "pixel", "shape", "evaluations", "seconds",
    }  # fmt: skip
    for name in ("top1", "pass2", "pixel", "shape"):
        assert 0.0 <= out.metrics[name] <= 1.0
    assert np.all(out.scores[:, 0] >= out.scores[:, 1])
    assert isinstance(out.metrics["evaluations"], int)
    assert out.metrics["seconds"] > 0


def test_mean_gives_identical_attempts(mean_output):
    _check_output(mean_output, NUM_TASKS, 0)
    assert mean_output.metrics["search"] == "mean"
    assert mean_output.metrics["evaluations"] == 1
    np.testing.assert_array_equal(mean_output.attempt_1, mean_output.attempt_2)
    np.testing.assert_array_equal(
        mean_output.attempt_shapes[:, 0], mean_output.attempt_shapes[:, 1]
    )
    np.testing.assert_array_equal(mean_output.scores[:, 0], mean_output.scores[:, 1])


def test_grad_evaluations_and_search_improves(grad_output, mean_output):
    _check_output(grad_output, NUM_TASKS, 3)
    # Gradient ascent: 3 value-and-gradient steps plus a final scoring of the last iterate.
    assert grad_output.metrics["evaluations"] == 4
    np.testing.assert_array_equal(grad_output.per_task["evaluations"], 4)
    # The start (the mean latent) is a candidate, so the best score is at least as good.
    assert np.all(grad_output.scores[:, 0] >= mean_output.scores[:, 0] - 1e-5)
    assert np.all(np.diff(grad_output.traces, axis=1) >= 0)


def test_last_batch_padding_matches_single_batch(setup, sample_spec, sample_padded):
    graphdef, params, tasks = setup
    whole = evaluate_tasks(
        graphdef, params, tasks, sample_spec, jax.random.key(1), batch_size=8, progress=True
    )
    _check_output(sample_padded, NUM_TASKS, 1)
    # Random search: the start plus 3 samples.
    assert sample_padded.metrics["evaluations"] == 4
    np.testing.assert_array_equal(sample_padded.attempt_1, whole.attempt_1)
    np.testing.assert_array_equal(sample_padded.attempt_2, whole.attempt_2)
    np.testing.assert_array_equal(sample_padded.attempt_shapes, whole.attempt_shapes)
    np.testing.assert_allclose(sample_padded.scores, whole.scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sample_padded.traces, whole.traces, rtol=1e-5, atol=1e-5)
    for name in ("top1", "pass2", "pixel", "shape"):
        assert sample_padded.metrics[name] == whole.metrics[name]


def exact_matches(attempt, shapes, outputs, output_shapes):
    """Per task: the attempt's shape and every cell of the true output are right (a
    plain loop, independent of the evaluator's vectorised metric)."""
    hits = []
    for grid, shape, truth, (rows, cols) in zip(
        attempt, shapes, outputs, output_shapes, strict=True
    ):
        same_shape = tuple(shape) == (rows, cols)
        hits.append(same_shape and np.array_equal(grid[:rows, :cols], truth[:rows, :cols]))
    return np.array(hits)


def test_metrics_match_attempts(setup, grad_output):
    _, _, tasks = setup
    truth = tasks["outputs"][:, -1], tasks["output_shapes"][:, -1]
    top1 = exact_matches(grad_output.attempt_1, grad_output.attempt_shapes[:, 0], *truth)
    second = exact_matches(grad_output.attempt_2, grad_output.attempt_shapes[:, 1], *truth)
    np.testing.assert_array_equal(grad_output.per_task["top1"], top1)
    np.testing.assert_array_equal(grad_output.per_task["pass2"], top1 | second)
    assert grad_output.metrics["top1"] == pytest.approx(top1.mean())
    assert grad_output.metrics["pass2"] == pytest.approx((top1 | second).mean())
    expected = prediction_metrics(
        grad_output.attempt_1, grad_output.attempt_2, grad_output.attempt_shapes, *truth
    )
    for name in ("pixel", "shape"):
        assert grad_output.metrics[name] == pytest.approx(float(np.mean(expected[name])))


def test_start_sample_is_the_mean_of_sampled_pair_latents(setup):
    graphdef, params, tasks = setup
    spec = parse_search("mean")
    run = {
        (start, seed): evaluate_tasks(
            graphdef, params, tasks, spec, jax.random.key(seed), start=start
        )
        for start, seed in (("mean", 0), ("mean", 1), ("sample", 0), ("sample", 1))
    }
    # the mean of the encoder means ignores the key; sampled latents depend on it
    np.testing.assert_array_equal(run["mean", 0].scores, run["mean", 1].scores)
    assert not np.allclose(run["sample", 0].scores, run["sample", 1].scores)
    assert not np.allclose(run["sample", 0].scores, run["mean", 0].scores)
    again = evaluate_tasks(graphdef, params, tasks, spec, jax.random.key(0), start="sample")
    np.testing.assert_array_equal(again.scores, run["sample", 0].scores)
    with pytest.raises(ValueError, match="start must be one of"):
        evaluate_tasks(graphdef, params, tasks, spec, jax.random.key(0), start="median")


def test_official_attempt_2_is_the_second_best_latent(setup):
    graphdef, params, tasks = setup
    spec, key = parse_search("sample:40", scale=5.0), jax.random.key(0)
    distinct = evaluate_tasks(graphdef, params, tasks, spec, key, candidates=4)
    official = evaluate_tasks(graphdef, params, tasks, spec, key, candidates=4, attempt2="official")
    both = evaluate_tasks(graphdef, params, tasks, spec, key, candidates=4, attempt2="both")
    np.testing.assert_array_equal(official.attempt_1, distinct.attempt_1)
    # official: rank 2 always; distinct: the first rank >= 2 that decodes differently
    # (or attempt 1 again when none does)
    assert np.all(official.scores[:, 1] < official.scores[:, 0])
    other = np.any(distinct.attempt_2 != distinct.attempt_1, axis=(1, 2))
    assert np.any(other)  # an untrained decoder maps distant latents to other grids
    assert np.all(official.scores[other, 1] >= distinct.scores[other, 1])
    assert both.metrics["pass2"] == distinct.metrics["pass2"]
    assert both.metrics["pass2_official"] == official.metrics["pass2"]
    with pytest.raises(ValueError, match="attempt2 must be one of"):
        evaluate_tasks(graphdef, params, tasks, spec, key, attempt2="third")


def test_holdout_all_predicts_each_pair_from_the_others(setup, grad_output):
    graphdef, params, tasks = setup
    spec, key = parse_search("grad:3"), jax.random.key(0)
    every = evaluate_tasks(graphdef, params, tasks, spec, key, holdout="all")
    num_pairs = tasks["inputs"].shape[1]
    assert every.attempt_1.shape == (NUM_TASKS * num_pairs, 5, 5)
    # row t * N + (N - 1) is the last-pair protocol's prediction for task t
    last = every.scores[num_pairs - 1 :: num_pairs]
    np.testing.assert_allclose(last, grad_output.scores, rtol=1e-5, atol=1e-5)
    # row t * N + 0 holds out pair 0: the same as moving pair 0 to the end
    rolled = {name: np.roll(value, -1, axis=1) for name, value in tasks.items()}
    first = evaluate_tasks(graphdef, params, rolled, spec, key)
    np.testing.assert_allclose(every.scores[::num_pairs], first.scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(every.attempt_1[::num_pairs], first.attempt_1)
    assert every.metrics["top1"] == pytest.approx(every.per_task["top1"].mean())


def test_rejects_tasks_without_query(setup):
    graphdef, params, tasks = setup
    one_pair = {name: value[:, :1] for name, value in tasks.items()}
    with pytest.raises(ValueError, match=">= 2 pairs"):
        evaluate_tasks(graphdef, params, one_pair, parse_search("mean"), jax.random.key(0))
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_tasks(
            graphdef, params, tasks, parse_search("mean"), jax.random.key(0), batch_size=0
        )


# --------------------------------------------------------------------------------------
# Plots


def _is_png(path):
    data = path.read_bytes()
    return len(data) > 100 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_search_steps():
    assert search_steps("mean") == 0
    assert search_steps("grad:25") == 25
    assert search_steps("grad:5:implicit") == 5
    assert search_steps("sample:250") is None
    assert search_steps("hybrid:10:5") is None


def test_plots_write_png(tmp_path, setup, mean_output, grad_output, sample_padded):
    _, _, tasks = setup
    rows = [mean_output.metrics, grad_output.metrics, sample_padded.metrics]
    path = plot_accuracy_vs_steps(rows, tmp_path / "a" / "accuracy.png")
    assert path == tmp_path / "a" / "accuracy.png" and _is_png(path)
    path = plot_tasks(tasks, grad_output, tmp_path / "b" / "tasks.png", num_tasks=3)
    assert _is_png(path)
    path = plot_tasks(tasks, mean_output, tmp_path / "tasks_all.png", num_tasks=50)
    assert _is_png(path)
    path = plot_search_traces(grad_output.traces, tmp_path / "c" / "traces.png")
    assert _is_png(path)
    path = plot_search_traces(mean_output.traces, tmp_path / "traces_empty.png")
    assert _is_png(path)
    path = plot_tasks(tasks, grad_output, tmp_path / "chosen.png", indices=[4, 0])
    assert _is_png(path)
    with pytest.raises(ValueError, match="indices"):
        plot_tasks(tasks, grad_output, tmp_path / "bad.png", indices=[NUM_TASKS])


def _fake_output(top1):
    top1 = np.asarray(top1, bool)
    return EvalOutput(
        attempt_1=np.zeros((len(top1), 1, 1)), attempt_2=np.zeros((len(top1), 1, 1)),
        attempt_shapes=np.ones((len(top1), 2, 2)), scores=np.zeros((len(top1), 2)),
        traces=np.zeros((len(top1), 0)), metrics={}, per_task={"top1": top1},
    )  # fmt: skip


def test_interesting_tasks_prefers_fixed_then_failed():
    before = _fake_output([1, 0, 0, 0, 0, 1, 0])
    after = _fake_output([1, 0, 1, 1, 0, 1, 1])
    # fixed by search: 2, 3, 6 (up to 3 of 4); still wrong: 1; then the rest in order
    assert interesting_tasks(before, after) == [2, 3, 6, 1]
    assert interesting_tasks(before, after, num_tasks=6) == [2, 3, 6, 1, 0, 4]
    assert interesting_tasks(before, after, num_tasks=2) == [2, 1]
    assert interesting_tasks(_fake_output([1]), _fake_output([1])) == [0]
    with pytest.raises(ValueError, match="differ"):
        interesting_tasks(before, _fake_output([1]))


# --------------------------------------------------------------------------------------
# ARC tasks: masked specification pairs, attempts, submission


def _arc_tasks(num_tasks=3):
    from lpn_arc.data import ArcTask

    rng = np.random.default_rng(5)
    tasks = []
    for t in range(num_tasks):
        num_train = 2 + t  # 2, 3, 4 spec pairs

        def grid(top=3 + t):  # task t's grids have at most 2 + t rows and columns
            return rng.integers(0, 10, size=tuple(rng.integers(1, top, size=2))).astype(np.int8)

        train = tuple((grid(), grid()) for _ in range(num_train))
        tests = (grid(), grid())
        outputs = (grid(), grid()) if t != 1 else None
        tasks.append(ArcTask(f"task{t}", train, tests, outputs, "memory"))
    return tasks


def test_arc_padding_pairs_with_a_mask_changes_nothing(setup):
    from lpn_arc.evaluation import evaluate_arc, validate_submission

    graphdef, params, _ = setup
    tasks = _arc_tasks()
    spec = parse_search("grad:2")
    padded = evaluate_arc(graphdef, params, tasks, spec, jax.random.key(0), max_pairs=7)
    bucketed = evaluate_arc(
        graphdef, params, tasks, spec, jax.random.key(0), batch_size=3, size_buckets=(2, 3)
    )
    # every task padded to 7 pairs and 5x5 grids vs padded to its buckets (3, 3 and 5 pairs;
    # 2x2, 3x3 or 5x5 grids): a mask that let padding count would make the two disagree
    for q, record in enumerate(padded.queries):
        other = bucketed.queries[q]
        assert record["task_id"] == other["task_id"] == tasks[q // 2].task_id
        assert record["attempt_1"] == other["attempt_1"]
        np.testing.assert_allclose(record["scores"], other["scores"], rtol=1e-5, atol=1e-5)
    validate_submission(padded.submission, tasks)
    # task1 has no solutions: no metrics for it, 2 of 3 tasks scored
    assert padded.metrics["scored_tasks"] == 2 and padded.metrics["queries"] == 6
    assert all(r["top1"] is None for r in padded.queries if r["task_id"] == "task1")
    with pytest.raises(ValueError, match="more"):
        evaluate_arc(graphdef, params, tasks, spec, jax.random.key(0), max_pairs=3)


def test_arc_attempt_2_differs_when_a_candidate_decodes_differently(setup):
    from lpn_arc.evaluation import evaluate_arc

    graphdef, params, _ = setup
    tasks = _arc_tasks()
    key = jax.random.key(0)
    out = evaluate_arc(graphdef, params, tasks, parse_search("sample:40"), key, max_pairs=4)
    differing = [r["attempt_1"] != r["attempt_2"] for r in out.queries]
    assert any(differing)  # an untrained decoder maps distant latents to different grids
    mean = evaluate_arc(graphdef, params, tasks, parse_search("mean"), key, max_pairs=4)
    assert all(r["attempt_1"] == r["attempt_2"] for r in mean.queries)


def test_validate_submission_names_the_broken_entry(setup):
    from lpn_arc.evaluation import evaluate_arc, validate_submission

    tasks = _arc_tasks(1)
    good = {"task0": [{"attempt_1": [[1]], "attempt_2": [[2]]}] * 2}
    validate_submission(good, tasks)
    empty = dataclasses.replace(tasks[0], task_id="empty", test_inputs=(), test_outputs=())
    validate_submission(good, [*tasks, empty])  # a task without test inputs has no entry
    for bad, message in [
        ([], "expected a JSON object"),
        ({"task0": [{"attempt_1": [[1]]}] * 2}, "test input 0: missing 'attempt_2'"),
        ({"task0": [{"attempt_1": [[1]], "attempt_2": [[10]]}] * 2}, "attempt_2.*colour 10"),
        ({"task0": [{"attempt_1": [[1]], "attempt_2": [[1]]}]}, "1 entries for 2 test inputs"),
        ({"other": good["task0"]}, "missing tasks"),
    ]:
        with pytest.raises(ValueError, match=message):
            validate_submission(bad, tasks)
    graphdef, params, _ = setup
    with pytest.raises(ValueError, match="no ARC test inputs"):
        evaluate_arc(graphdef, params, [empty], parse_search("mean"), jax.random.key(0))
