"""Makes ``lpn_arc`` (applications/arc) and ``latentsearch`` importable for these tests, and
holds the evaluations that the evaluation and plot tests share (computed once)."""

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
for _path in (_ROOT, _ROOT / "applications" / "arc"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from flax import nnx  # noqa: E402
from lpn_arc.config import parse_search  # noqa: E402
from lpn_arc.data import generate_pattern_tasks  # noqa: E402
from lpn_arc.evaluation import evaluate_tasks  # noqa: E402
from lpn_arc.model import LPNModel, split_model  # noqa: E402

from tests.arc.helpers import EVAL_MODEL, EVAL_TASKS  # noqa: E402


@pytest.fixture(scope="package")
def tiny_eval():
    graphdef, params = split_model(LPNModel(EVAL_MODEL, rngs=nnx.Rngs(0)))
    tasks, _ = generate_pattern_tasks(
        np.random.default_rng(0), EVAL_TASKS, num_pairs=3, grid_size=5, pattern_size=2
    )
    return graphdef, params, tasks


# The evaluations' compiled functions are cached per (graph, spec): the tests that run a
# spec again share these fixtures' compilations.
@pytest.fixture(scope="package")
def mean_spec():
    return parse_search("mean")


@pytest.fixture(scope="package")
def grad_spec():
    return parse_search("grad:3")


@pytest.fixture(scope="package")
def mean_output(tiny_eval, mean_spec):
    graphdef, params, tasks = tiny_eval
    return evaluate_tasks(graphdef, params, tasks, mean_spec, jax.random.key(0))


@pytest.fixture(scope="package")
def grad_output(tiny_eval, grad_spec):
    graphdef, params, tasks = tiny_eval
    return evaluate_tasks(graphdef, params, tasks, grad_spec, jax.random.key(0), batch_size=4)


@pytest.fixture(scope="package")
def sample_spec():
    return parse_search("sample:3")


@pytest.fixture(scope="package")
def sample_padded(tiny_eval, sample_spec):
    graphdef, params, tasks = tiny_eval
    return evaluate_tasks(graphdef, params, tasks, sample_spec, jax.random.key(1), batch_size=4)
