"""The one owner of a run's training steps: :class:`TrainSteps` holds the run's optimiser,
gives each step its training search and compiles the step of each search and size bucket,
checked against the memory (:mod:`~lpn_arc.training.memory`)."""

from __future__ import annotations

import collections
import json
from typing import Any

import jax
from jax.sharding import Mesh

from lpn_arc.config import SearchSpec, TrainConfig, config_to_dict
from lpn_arc.training.memory import batch_signature, require_memory, step_floor, xla_estimate
from lpn_arc.training.step import make_optimizer, make_train_step

__all__ = ["TrainSteps"]

_CACHE: collections.OrderedDict[tuple, tuple[Any, int | None]] = collections.OrderedDict()
"""The process's compiled steps and XLA's estimate of each, least recently used first, by
(configuration as JSON, search, devices, process count, batch signature)."""
_CACHE_SIZE = 12  # a few searches x size buckets


class TrainSteps:
    """The training steps of one configuration on one mesh.

    It owns the run's optimiser (:func:`~lpn_arc.training.step.make_optimizer`: a new
    run's optimiser state is ``optimizer.init(params)`` and every step updates with it),
    the training search of each step (``config.search_at``; ``lpn_arc.search.build_search``
    turns it into the same searcher object each time) and the compiled steps. A step is
    compiled ahead of time on first use for its search and batch shapes (its size bucket)
    and kept in one cache of the process, keyed by (configuration, search, devices, batch
    shapes): training the same configuration again in one process (a resume, a notebook)
    does not recompile, and each size bucket compiles once.

    With ``check_memory``, the first use of each compiled step in a run checks it against
    the memory available (:func:`~lpn_arc.training.memory.require_memory`): a lower bound
    before compiling, then XLA's estimate of the compiled step, and raises
    :class:`~lpn_arc.training.errors.MemoryLimitError` when it will not fit.

    Args:
        config: the configuration.
        mesh: the ``"data"`` mesh (:func:`~lpn_arc.training.step.data_mesh`).
        check_memory: check every compiled step against the memory before its first use.

    Example:
        >>> from lpn_arc.config import get_preset
        >>> from lpn_arc.training.step import data_mesh
        >>> config = get_preset("quickstart")
        >>> steps = TrainSteps(config, data_mesh())
        >>> steps.search_at(0) == config.searches["train"]
        True
    """

    def __init__(self, config: TrainConfig, mesh: Mesh, *, check_memory: bool = True) -> None:
        self.config, self.mesh, self.check_memory = config, mesh, check_memory
        self.optimizer = make_optimizer(config)
        self._config_json = json.dumps(config_to_dict(config), sort_keys=True)
        self._placement = (tuple(d.id for d in mesh.devices.flat), jax.process_count())
        self._checked: set[tuple] = set()  # the cache keys checked against the memory

    def search_at(self, step: int) -> SearchSpec:
        """The training search of optimiser step ``step`` (0-based)."""
        return self.config.search_at(step)

    def compiled_step(self, graphdef: Any, step: int, args: tuple) -> Any:
        """The compiled step ``(params, opt_state, batch, key) -> (params, opt_state,
        metrics)`` of step ``step`` (its training search) for ``args`` (its batch shapes),
        compiled on first use and then taken from the cache.

        Args:
            graphdef: the model graph.
            step: the optimiser step (0-based) the step function runs.
            args: ``(params, opt_state, batch, key)`` of the call.

        Raises:
            MemoryLimitError: with ``check_memory``, on the first use in this run of a
                compiled step that will not fit.
        """
        params, opt_state, batch, _ = args
        search = self.search_at(step)
        key = self._cache_key(search, batch)
        check = self.check_memory and key not in self._checked
        if check:  # before compiling
            what = "parameters, gradients, optimiser state and batch alone"
            require_memory(step_floor(params, opt_state, batch, self.mesh), what, self.mesh)
        if key in _CACHE:
            _CACHE.move_to_end(key)
        else:
            jitted = make_train_step(
                graphdef, self.config, self.optimizer, search=search, mesh=self.mesh
            )
            compiled = jitted.lower(*args).compile()
            _CACHE[key] = (compiled, xla_estimate(compiled))
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        compiled, needed = _CACHE[key]
        if check:  # once per run: the memory free changes between runs
            if needed is not None:
                what = f"XLA's estimate for batch {self.config.batch_size}"
                require_memory(needed, what, self.mesh)
            self._checked.add(key)
        return compiled

    def estimates(self) -> dict[tuple[SearchSpec, tuple], int | None]:
        """XLA's estimate (bytes, None without a memory analysis) of each step compiled in
        this process for this configuration and mesh, by (search, batch signature)."""
        return {
            (key[1], key[4]): needed
            for key, (_, needed) in _CACHE.items()
            if key[0] == self._config_json and key[2:4] == self._placement
        }

    def _cache_key(self, search: SearchSpec, batch: Any) -> tuple:
        return (self._config_json, search, *self._placement, batch_signature(batch))
