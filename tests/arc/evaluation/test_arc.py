"""evaluate_arc: masked specification pairs and the second attempt."""

import jax
import numpy as np
import pytest
from lpn_arc.config import parse_search

from tests.arc.helpers import random_arc_tasks


def test_arc_padding_pairs_with_a_mask_changes_nothing(tiny_eval):
    from lpn_arc.evaluation import evaluate_arc, validate_submission

    graphdef, params, _ = tiny_eval
    tasks = random_arc_tasks()
    spec = parse_search("grad:2")
    key = jax.random.key(0)
    padded = evaluate_arc(graphdef, params, tasks, spec, key, max_pairs=5, batch_size=2)
    bucketed = evaluate_arc(graphdef, params, tasks, spec, key, batch_size=2, buckets=False)
    # tasks 0 and 1 (2 and 3 pairs) padded to 5 pairs vs to their pair bucket, 3 (task 2 is
    # padded to 5 in both, so the two runs share one compilation), all grids padded to 5x5:
    # a mask that let padding pairs count would make the two disagree (grid size buckets
    # against full padding: test_buckets.py)
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


def test_arc_attempt_2_differs_when_a_candidate_decodes_differently(tiny_eval):
    from lpn_arc.evaluation import evaluate_arc

    graphdef, params, _ = tiny_eval
    tasks = random_arc_tasks()
    key = jax.random.key(0)
    out = evaluate_arc(graphdef, params, tasks, parse_search("sample:40"), key, max_pairs=4)
    differing = [r["attempt_1"] != r["attempt_2"] for r in out.queries]
    assert any(differing)  # an untrained decoder maps distant latents to different grids
    mean = evaluate_arc(graphdef, params, tasks, parse_search("mean"), key, max_pairs=4)
    assert all(r["attempt_1"] == r["attempt_2"] for r in mean.queries)
