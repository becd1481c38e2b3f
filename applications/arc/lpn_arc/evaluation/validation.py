"""Held-out validation during training (``TrainConfig.validate_every``).

:func:`validator` builds, once, the tasks a run is validated on and returns
``validate(graphdef, params) -> top-1``, which :func:`lpn_arc.training.train` calls:

* PATTERN: held-out tasks of test programs, drawn with ``data.test_seed + 1`` (other tasks
  than the test set of ``lpn-arc eval``, of the same unseen programs), the last pair of each
  predicted from the others;
* ARC: the test pairs of the first ``validate_tasks`` training tasks (new inputs of the
  programs trained on; training sees demonstration pairs only), tasks larger than the
  model scored wrong.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax

from lpn_arc.config import TrainConfig, parse_search
from lpn_arc.data import load_tasks, pattern_test_tasks
from lpn_arc.evaluation.arc import evaluate_arc
from lpn_arc.evaluation.tasks import evaluate_tasks

__all__ = ["validator"]


def validator(config: TrainConfig) -> Callable[[Any, Any], float]:
    """``validate(graphdef, params) -> top-1`` of ``config.validate_search`` on
    ``config.validate_tasks`` held-out tasks (see the module docstring).

    Example:
        >>> from lpn_arc.config import get_preset
        >>> from lpn_arc.training import init_params
        >>> config = get_preset("quickstart")
        >>> validate = validator(dataclasses.replace(config, validate_tasks=4,
        ...                                           validate_search="mean"))
        >>> 0.0 <= validate(*init_params(config)) <= 1.0
        True
    """
    spec = parse_search(config.validate_search, lr=config.search_lr)
    key = jax.random.key(config.seed)
    if config.data.is_pattern:
        data = dataclasses.replace(config.data, test_seed=config.data.test_seed + 1)
        tasks = pattern_test_tasks(dataclasses.replace(config, data=data), config.validate_tasks)

        def validate_pattern(graphdef, params) -> float:
            out = evaluate_tasks(graphdef, params, tasks, spec, key)
            return out.metrics["top1"]

        return validate_pattern
    ids = set(config.data.task_id_list)
    arc = [
        t
        for source in config.data.sources
        for t in load_tasks(source)
        if t.test_outputs is not None and (not ids or t.task_id in ids)
    ][: config.validate_tasks]
    if not arc:
        raise ValueError("validation needs training tasks with known test outputs")

    def validate_arc(graphdef, params) -> float:
        out = evaluate_arc(graphdef, params, arc, spec, key, larger="unsolved")
        return out.metrics["top1"]

    return validate_arc
