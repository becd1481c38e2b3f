"""The explorer's computations: the view, decoding, the landscape, step-by-step searches."""

import itertools

import jax
import numpy as np
import pytest
from lpn_arc.explorer import SearchRun, SearchRuns, SearchSettings, fit_pca

import latentsearch as ls


def test_the_view_is_a_pca_of_the_tasks_and_lifting_inverts_the_projection(explorer):
    d = explorer.latent_dim
    assert explorer.axes.shape == (2, d) and explorer.cloud.shape == (len(explorer.tasks), 2)
    np.testing.assert_allclose(explorer.axes @ explorer.axes.T, np.eye(2), atol=1e-5)
    prepared = explorer.prepare(explorer.tasks[1])
    uv = np.array([[0.3, -1.2], [2.0, 0.5]])
    np.testing.assert_allclose(explorer.project(explorer.lift(prepared, uv)), uv, atol=1e-5)
    # the plane goes through the task's aggregate latent
    anchor_uv = explorer.project(prepared.anchor)
    np.testing.assert_allclose(explorer.lift(prepared, anchor_uv), prepared.anchor, atol=1e-5)
    # or through any latent, which then sits at its own projection
    z = prepared.anchor + np.linspace(-1, 1, d).astype(np.float32)
    np.testing.assert_allclose(explorer.lift(prepared, explorer.project(z), z), z, atol=1e-5)
    np.testing.assert_allclose(explorer.project(explorer.lift(prepared, uv, z)), uv, atol=1e-5)


def test_fit_pca_finds_the_direction_of_largest_spread():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(200, 3)) * np.array([5.0, 0.1, 1.0])
    _, axes = fit_pca(points)
    assert abs(axes[0, 0]) > 0.99 and abs(axes[1, 2]) > 0.99


def test_summary_decodes_the_aggregate_and_scores_it(explorer):
    task = explorer.tasks[0]
    prepared = explorer.prepare(task)
    summary = explorer.summary(prepared)
    assert len(summary["pairs"]) == len(task["train"])
    assert np.allclose(summary["anchor"], explorer.project(prepared.anchor))
    grid = summary["decoded"]["grid"]
    assert summary["decoded"]["correct"] == (grid == task["test"][0]["output"])
    assert summary["score"] == pytest.approx(explorer.score(prepared, prepared.anchor))
    assert explorer.prepare(task) is prepared  # cached by content
    edited = {**task, "test": [{"input": task["test"][0]["input"]}]}
    assert explorer.summary(explorer.prepare(edited))["decoded"]["correct"] is None


def test_the_landscape_scores_the_plane_and_its_centre_cell_is_the_aggregate(explorer):
    prepared = explorer.prepare(explorer.tasks[2])
    u, v = explorer.project(prepared.anchor)
    out = explorer.landscape(prepared, [u - 1.5, u + 1.5, v - 1.5, v + 1.5], 3)
    values = np.array(out["values"], float)
    assert values.shape == (3, 3) and np.isfinite(values).all()
    assert values[1, 1] == pytest.approx(explorer.score(prepared, prepared.anchor), rel=1e-4)
    # row i is v_i, column j is u_j
    corner = explorer.lift(prepared, np.array([u + 1.0, v - 1.0]))
    assert values[0, 2] == pytest.approx(explorer.score(prepared, corner), rel=1e-4)
    with pytest.raises(ValueError, match="min < max"):
        explorer.landscape(prepared, [1, 0, 0, 1], 3)


def _run(explorer, task_index=0, **settings):
    prepared = explorer.prepare(explorer.tasks[task_index])
    run = SearchRun(explorer, prepared, SearchSettings.of(settings))
    frames = [run.first]
    while not run.done:
        frames += run.advance(7)
    return prepared, run, frames


def test_gradient_ascent_step_by_step_matches_the_library_search(explorer):
    prepared, run, frames = _run(explorer, kind="grad", steps=20, lr=0.05)
    best = [f["best"] for f in frames]
    assert len(frames) == 21 and [f["step"] for f in frames] == list(range(21))
    assert all(b2 >= b1 for b1, b2 in itertools.pairwise(best)) and best[-1] > best[0]
    assert best[0] == pytest.approx(explorer.score(prepared, prepared.anchor))
    settings = SearchSettings.of({"kind": "grad", "steps": 20, "lr": 0.05})
    result = ls.search(
        settings.searcher(),
        explorer.objective,
        prepared.anchor,
        key=jax.random.key(0),
        num_steps=20,
        args=prepared.args,
    )
    assert best[-1] == pytest.approx(float(result.scores[0]), rel=1e-4)
    assert frames[-1]["evaluations"] == int(result.num_evaluations) == 21
    np.testing.assert_allclose(run.best_z, result.best, atol=1e-4)


@pytest.mark.parametrize(
    "settings",
    [
        {"kind": "sample", "steps": 3, "samples": 5},
        {"kind": "es", "steps": 3, "population": 4},
        {"kind": "hybrid", "steps": 3, "samples": 6},
    ],
)
def test_every_searcher_spends_what_the_library_counts(explorer, settings):
    prepared, _, frames = _run(explorer, **settings)
    result = ls.search(
        SearchSettings.of(settings).searcher(),
        explorer.objective,
        prepared.anchor,
        key=jax.random.key(0),
        num_steps=3,
        args=prepared.args,
    )
    assert frames[-1]["evaluations"] == int(result.num_evaluations)
    best = [f["best"] for f in frames]
    assert best == sorted(best) and best[-1] >= explorer.score(prepared, prepared.anchor) - 1e-6
    assert all(len(f["cloud"]) > 0 for f in frames[1:])  # the points each step scored


@pytest.mark.parametrize(
    "settings",
    [
        {"kind": "grad", "steps": 6, "lr": 0.05, "seed": 1},
        {"kind": "sample", "steps": 3, "samples": 5, "seed": 2},
        {"kind": "es", "steps": 4, "population": 4, "seed": 3},
        {"kind": "hybrid", "steps": 3, "samples": 6, "seed": 4},
    ],
)
def test_a_step_by_step_search_returns_exactly_the_library_search(explorer, settings):
    prepared, run, frames = _run(explorer, task_index=1, **settings)
    chosen = SearchSettings.of(settings)
    searcher, objective, args = chosen.searcher(), explorer.objective, prepared.args
    common = {"key": jax.random.key(chosen.seed), "num_steps": chosen.spec.steps, "args": args}
    state = ls.search_init(searcher, objective, prepared.anchor, **common)
    for _ in range(chosen.spec.steps):
        state = ls.search_step(searcher, objective, state, args=args)
    stepwise = ls.search_finish(searcher, objective, state, args=args)
    assert run.result is not None
    for name, got, want in zip(stepwise._fields, run.result, stepwise, strict=True):
        assert (got is None) == (want is None), name
        if want is not None:
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=name)
    np.testing.assert_array_equal(run.best_z, np.asarray(stepwise.latents)[0])
    # ls.search, the same search compiled as one program: the same points, counts and stop,
    # bit for bit; the objective's values as that program rounds them (within float32
    # rounding of the steps' own)
    whole = ls.search(searcher, objective, prepared.anchor, history=True, **common)
    for name in ("latents", "num_evaluations", "num_gradient_evaluations", "stopped"):
        got, want = np.asarray(getattr(run.result, name)), np.asarray(getattr(whole, name))
        np.testing.assert_array_equal(got, want, err_msg=name)
    for name in ("scores", "trace"):
        got, want = np.asarray(getattr(run.result, name)), np.asarray(getattr(whole, name))
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=name)
    # every frame shows the library's best point, score and count after its step
    recorded = whole.history
    for k, frame in enumerate(frames[1:], start=1):
        assert frame["evaluations"] == int(recorded.evaluations[k])
        assert frame["best"] == pytest.approx(float(recorded.best_scores[k]), rel=1e-6)
        best_point = explorer.project(np.asarray(recorded.best_latents[k]))
        np.testing.assert_array_equal(frame["best_point"], best_point.tolist())
    assert frames[-1]["best"] == float(run.result.scores[0])
    assert frames[-1]["evaluations"] == int(run.result.num_evaluations)


def test_a_run_stops_at_its_budget_and_reports_the_best_latent_decoded(explorer):
    prepared, run, _ = _run(explorer, kind="grad", steps=2)
    assert run.advance(5) == [] and run.steps_done == 2
    report = run.report([])
    assert report["done"] and report["decoded"] == explorer.decode(prepared, run.best_z)


def test_runs_are_found_by_id_and_the_oldest_are_dropped(explorer):
    runs = SearchRuns(limit=2)
    prepared = explorer.prepare(explorer.tasks[0])
    ids = [runs.start(explorer, prepared, SearchSettings.of({"steps": 1})) for _ in range(3)]
    assert runs.get(ids[2]).steps_done == 0
    with pytest.raises(ValueError, match="no search '1'"):
        runs.get(ids[0])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"kind": "mala"}, "kind must be one of"),
        ({"kind": "random"}, r"kind must be one of \('grad', 'sample', 'es', 'hybrid'\)"),
        ({"steps": 0}, "steps must be an integer in 1..2000"),
        ({"steps": 2.5}, "steps must be an integer"),
        ({"lr": -1}, r"lr must be in \(0, 100\]"),
        ({"lr": "fast"}, "lr must be a number"),
        ({"population": 3}, "population must be even"),
        ({"optimizer": "sgd"}, "optimizer must be one of"),
        ({"budget": 3}, r"unknown search settings \['budget'\]"),
    ],
)
def test_bad_settings_are_refused_with_a_message(settings, message):
    with pytest.raises(ValueError, match=message):
        SearchSettings.of(settings)


def test_settings_that_the_searcher_does_not_read_share_its_compilation():
    a = SearchSettings.of({"kind": "grad", "steps": 5, "seed": 1, "samples": 3}).searcher()
    assert a is SearchSettings.of({"kind": "grad", "steps": 50, "seed": 2, "samples": 9}).searcher()
    assert a is not SearchSettings.of({"kind": "grad", "lr": 0.2}).searcher()


def test_the_start_state_is_placed_like_the_states_the_steps_return(explorer):
    # gradient ascent's start state does not depend on the (committed) parameters: left
    # uncommitted, it made the second step compile the step again
    prepared = explorer.prepare(explorer.tasks[3])
    run = SearchRun(explorer, prepared, SearchSettings.of({"kind": "grad", "steps": 4}))
    assert all(leaf.committed for leaf in jax.tree.leaves(run.state))
    run.advance(1)
    assert all(leaf.committed for leaf in jax.tree.leaves(run.state))
