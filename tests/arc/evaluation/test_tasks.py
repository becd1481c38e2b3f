"""evaluate_tasks: search, two attempts and metrics of stacked (PATTERN) tasks."""

import jax
import numpy as np
import pytest
from lpn_arc.config import parse_search
from lpn_arc.evaluation import EvalOutput, evaluate_tasks, prediction_metrics

from tests.arc.helpers import EVAL_TASKS, exact_matches


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
    _check_output(mean_output, EVAL_TASKS, 0)
    assert mean_output.metrics["search"] == "mean"
    assert mean_output.metrics["evaluations"] == 1
    np.testing.assert_array_equal(mean_output.attempt_1, mean_output.attempt_2)
    np.testing.assert_array_equal(
        mean_output.attempt_shapes[:, 0], mean_output.attempt_shapes[:, 1]
    )
    np.testing.assert_array_equal(mean_output.scores[:, 0], mean_output.scores[:, 1])


def test_grad_evaluations_and_search_improves(grad_output, mean_output):
    _check_output(grad_output, EVAL_TASKS, 3)
    # Gradient ascent: 3 value-and-gradient steps plus a final scoring of the last iterate.
    assert grad_output.metrics["evaluations"] == 4
    np.testing.assert_array_equal(grad_output.per_task["evaluations"], 4)
    # The start (the mean latent) is a candidate, so the best score is at least as good.
    assert np.all(grad_output.scores[:, 0] >= mean_output.scores[:, 0] - 1e-5)
    assert np.all(np.diff(grad_output.traces, axis=1) >= 0)


def test_last_batch_padding_matches_single_batch(tiny_eval, sample_spec, sample_padded):
    graphdef, params, tasks = tiny_eval
    whole = evaluate_tasks(
        graphdef, params, tasks, sample_spec, jax.random.key(1), batch_size=8, progress=True
    )
    _check_output(sample_padded, EVAL_TASKS, 1)
    # Random search: the start plus 3 samples.
    assert sample_padded.metrics["evaluations"] == 4
    np.testing.assert_array_equal(sample_padded.attempt_1, whole.attempt_1)
    np.testing.assert_array_equal(sample_padded.attempt_2, whole.attempt_2)
    np.testing.assert_array_equal(sample_padded.attempt_shapes, whole.attempt_shapes)
    np.testing.assert_allclose(sample_padded.scores, whole.scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sample_padded.traces, whole.traces, rtol=1e-5, atol=1e-5)
    for name in ("top1", "pass2", "pixel", "shape"):
        assert sample_padded.metrics[name] == whole.metrics[name]


def test_metrics_match_attempts(tiny_eval, grad_output):
    _, _, tasks = tiny_eval
    truth = tasks.outputs[:, -1], tasks.output_shapes[:, -1]
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


def test_start_sample_is_the_mean_of_sampled_pair_latents(tiny_eval, mean_spec):
    graphdef, params, tasks = tiny_eval
    spec = mean_spec  # start="mean" shares the compilation of mean_output
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


def test_official_attempt_2_is_the_second_best_latent(tiny_eval):
    graphdef, params, tasks = tiny_eval
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


def test_holdout_all_predicts_each_pair_from_the_others(tiny_eval, grad_spec, grad_output):
    graphdef, params, tasks = tiny_eval
    # grad_output's spec and batch size: the three evaluations share one compilation
    spec, key = grad_spec, jax.random.key(0)
    every = evaluate_tasks(graphdef, params, tasks, spec, key, holdout="all", batch_size=4)
    num_pairs = tasks.inputs.shape[1]
    assert every.attempt_1.shape == (EVAL_TASKS * num_pairs, 5, 5)
    # row t * N + (N - 1) is the last-pair protocol's prediction for task t
    last = every.scores[num_pairs - 1 :: num_pairs]
    np.testing.assert_allclose(last, grad_output.scores, rtol=1e-5, atol=1e-5)
    # row t * N + 0 holds out pair 0: the same as moving pair 0 to the end
    rolled = jax.tree.map(lambda value: np.roll(value, -1, axis=1), tasks)
    first = evaluate_tasks(graphdef, params, rolled, spec, key, batch_size=4)
    np.testing.assert_allclose(every.scores[::num_pairs], first.scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(every.attempt_1[::num_pairs], first.attempt_1)
    assert every.metrics["top1"] == pytest.approx(every.per_task["top1"].mean())


def test_rejects_tasks_without_query(tiny_eval):
    graphdef, params, tasks = tiny_eval
    one_pair = jax.tree.map(lambda value: value[:, :1], tasks)
    with pytest.raises(ValueError, match=">= 2 pairs"):
        evaluate_tasks(graphdef, params, one_pair, parse_search("mean"), jax.random.key(0))
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_tasks(
            graphdef, params, tasks, parse_search("mean"), jax.random.key(0), batch_size=0
        )
