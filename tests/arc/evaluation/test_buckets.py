"""Size buckets in ARC evaluation: the same results as full padding, a bounded number of
compilations, and outputs larger than their bucket solved again at the model's size."""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx
from lpn_arc.config import parse_search
from lpn_arc.data import ArcTask
from lpn_arc.evaluation import evaluate_arc
from lpn_arc.evaluation.arc import bucket_of
from lpn_arc.evaluation.inference import batch_fn
from lpn_arc.model import LPNModel, split_model

from tests.arc.helpers import EVAL_MODEL

MODEL = dataclasses.replace(EVAL_MODEL, max_rows=8, max_cols=8, decoder_mask="input-only")


def _tasks():
    """Tasks of every size bucket of the ladder (3, 5, 8): small, wide, tall and full."""
    rng = np.random.default_rng(2)
    tasks = []
    for t, (rows, cols) in enumerate([(2, 3), (3, 7), (6, 2), (8, 8), (3, 3), (5, 5)]):

        def grid(rows=rows, cols=cols):
            shape = (int(rng.integers(1, rows + 1)), int(rng.integers(1, cols + 1)))
            return rng.integers(0, 10, size=shape).astype(np.int8)

        train = tuple((grid(), grid()) for _ in range(2 + t % 3))
        big = rng.integers(0, 10, size=(rows, cols)).astype(np.int8)  # fixes the bucket
        tasks.append(ArcTask(f"t{t}", train, (big, grid()), (grid(), grid()), "memory"))
    return tasks


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_buckets_give_the_results_of_full_padding(positions):
    config = dataclasses.replace(MODEL, positions=positions)
    graphdef, params = split_model(LPNModel(config, rngs=nnx.Rngs(0)))
    tasks = _tasks()
    assert {bucket_of(t, (3, 5, 8), config) for t in tasks} == {
        (3, 3), (3, 8), (8, 3), (8, 8), (5, 5)
    }  # fmt: skip
    out = {}
    for buckets in (True, False):
        out[buckets] = evaluate_arc(
            graphdef, params, tasks, parse_search("mean"), jax.random.key(0),
            size_buckets=(3, 5, 8), pair_buckets=(3, 5), buckets=buckets, batch_size=2,
        )  # fmt: skip
    on, off = out[True], out[False]
    compiled = batch_fn(graphdef, parse_search("mean"), 4, "mean")._cache_size()
    assert compiled <= 2 * 3 * 3  # pair buckets (3, 5) x rows x cols, full padding included
    for a, b in zip(on.queries, off.queries, strict=True):
        assert (a["attempt_1"], a["attempt_2"]) == (b["attempt_1"], b["attempt_2"])
        np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-5, atol=1e-5)
    assert on.submission == off.submission


def test_an_output_larger_than_its_bucket_is_decoded_again_at_full_size():
    """A ladder of 2: the untrained model predicts larger outputs for most queries, which
    are solved again at 8 x 8, so the results still equal full padding."""
    graphdef, params = split_model(LPNModel(MODEL, rngs=nnx.Rngs(1)))
    rng = np.random.default_rng(0)
    small = lambda: rng.integers(0, 10, size=(2, 2)).astype(np.int8)  # noqa: E731
    tasks = [
        ArcTask(f"s{t}", ((small(), small()),) * 2, (small(),), (small(),), "m") for t in range(3)
    ]
    on = evaluate_arc(graphdef, params, tasks, parse_search("mean"), jax.random.key(0),
                      size_buckets=(2,), batch_size=3)  # fmt: skip
    off = evaluate_arc(graphdef, params, tasks, parse_search("mean"), jax.random.key(0),
                       buckets=False, batch_size=3)  # fmt: skip
    assert any(np.shape(q["attempt_1"])[0] > 2 or np.shape(q["attempt_1"])[1] > 2
               for q in off.queries)  # fmt: skip
    assert on.submission == off.submission


def test_tasks_larger_than_the_model_are_scored_wrong_and_counted():
    graphdef, params = split_model(LPNModel(MODEL, rngs=nnx.Rngs(0)))
    tasks = _tasks()
    big = np.ones((9, 9), np.int8)
    tasks.append(ArcTask("huge", tasks[0].train, (big,), (big,), "memory"))
    with pytest.raises(ValueError, match="huge"):
        evaluate_arc(graphdef, params, tasks, parse_search("mean"), jax.random.key(0))
    out = evaluate_arc(graphdef, params, tasks, parse_search("mean"), jax.random.key(0),
                       larger="unsolved")  # fmt: skip
    alone = evaluate_arc(graphdef, params, tasks[:-1], parse_search("mean"), jax.random.key(0))
    assert out.metrics["too_large"] == 1 and out.metrics["tasks"] == len(tasks)
    assert out.submission["huge"] == [{"attempt_1": [[0]], "attempt_2": [[0]]}]
    assert out.metrics["top1"] == pytest.approx(alone.metrics["top1"] * 6 / 7)
