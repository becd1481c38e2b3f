"""A tiny model's explorer, built once for the explorer tests (no training: a search rises
on any model, and the page works the same)."""

import jax
import pytest
from lpn_arc.explorer import Explorer, pattern_tasks
from lpn_arc.training import init_params

from tests.arc.helpers import tiny_config


@pytest.fixture(scope="package")
def explorer():
    config = tiny_config()
    graphdef, params = init_params(config)
    params = jax.device_put(params, jax.local_devices()[0])  # committed, as a checkpoint's
    return Explorer(config, graphdef, params, pattern_tasks(config, 6), name="tiny", step=0)
