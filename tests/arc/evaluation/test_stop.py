"""stop="exact": the model's exact flag is greedy decoding reproducing the output, and a
search stopped by it ends early where the specification is solved, and only there."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from lpn_arc.config import parse_search
from lpn_arc.data import Pair, pattern_test_tasks
from lpn_arc.evaluation import evaluate_tasks
from lpn_arc.pretrained import load_pretrained


def _pair(tasks: Pair, t: int, i: int) -> Pair:
    return jax.tree.map(lambda v: jnp.asarray(v[t, i]), tasks)


def test_the_exact_flag_is_greedy_decoding_reproducing_the_output(tiny_eval):
    graphdef, params, tasks = tiny_eval
    model = nnx.merge(graphdef, params)
    z = jax.random.normal(jax.random.key(1), (model.config.latent_dim,))
    pair = _pair(tasks, 0, 0)
    grid, shape = model.generate(z, pair.inputs, pair.input_shapes)
    own = pair._replace(outputs=grid, output_shapes=shape)  # the model's own answer
    assert bool(model.log_likelihood_terms(z, own)["exact"])
    changed = np.asarray(grid).copy()
    changed[0, 0] = (changed[0, 0] + 1) % 10  # one cell off: no longer what greedy decodes
    wrong = own._replace(outputs=jnp.asarray(changed))
    assert not bool(model.log_likelihood_terms(z, wrong)["exact"])


def test_stop_exact_ends_solved_searches_early_and_leaves_the_others_alone():
    # the shipped Grad-1 pattern model reproduces most specifications at its encoder's latent
    ckpt = load_pretrained("pattern-6x6-grad1")
    tasks = pattern_test_tasks(ckpt.config, 8, 1.0)
    spec = parse_search("grad:4")
    full, stopped = (
        evaluate_tasks(ckpt.graphdef, ckpt.params, tasks, spec, jax.random.key(0), stop=stop)
        for stop in ("none", "exact")
    )
    budget, spent = full.per_task["evaluations"], stopped.per_task["evaluations"]
    assert np.all(budget == spec.num_steps + 1) and np.all(spent <= budget)
    early = spent < budget
    assert early.any()  # some tasks stopped, and so spent less
    # a search that never met its stop is the full search: the same answers
    np.testing.assert_array_equal(stopped.per_task["top1"][~early], full.per_task["top1"][~early])


def test_a_probability_margin_stops_later_than_exact_and_never_before_it():
    ckpt = load_pretrained("pattern-6x6-grad1")
    tasks = pattern_test_tasks(ckpt.config, 8, 1.0)
    spec = parse_search("grad:4")
    spent = {
        stop: evaluate_tasks(
            ckpt.graphdef, ckpt.params, tasks, spec, jax.random.key(0), stop=stop
        ).per_task["evaluations"]
        for stop in ("exact", "exact:0", "exact:0.9", "exact:0.999999")
    }
    np.testing.assert_array_equal(spent["exact"], spent["exact:0"])  # the same rule
    assert np.all(spent["exact:0.9"] >= spent["exact"])  # a margin only adds conditions
    assert np.all(spent["exact:0.999999"] >= spent["exact:0.9"])
    assert (spent["exact:0.999999"] > spent["exact"]).any()


def test_a_bad_stop_rule_is_refused_with_the_grammar():
    import pytest
    from lpn_arc.evaluation.inference import stop_probability

    for bad in ("exact:1", "exact:-0.1", "exact:x", "exact:", "first", "none:0.5"):
        with pytest.raises(ValueError, match="'none', 'exact' or 'exact:P'"):
            stop_probability(bad)
