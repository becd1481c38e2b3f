"""Memory probing: the compiled step's estimate checked against the memory available.

Before the first step runs, a lower bound (parameters, gradients, optimiser state and the
batch) and then XLA's estimate of the compiled step are compared with the memory free on
the device (the host's ``MemAvailable``, capped by a cgroup limit, on CPU), so that a
configuration that cannot fit fails at once with both numbers.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
from jax.sharding import Mesh

from lpn_arc.config import SearchSpec, TrainConfig, config_to_dict
from lpn_arc.training.errors import MemoryLimitError
from lpn_arc.training.step import make_train_step

__all__ = ["available_memory", "batch_signature", "compiled_step", "require_memory"]

_STEP_CACHE: collections.OrderedDict[tuple, Any] = collections.OrderedDict()
_STEP_CACHE_SIZE = 12  # a few searches x size buckets


def _meminfo_available() -> tuple[int, str] | None:
    """Bytes of host memory available now (``MemAvailable``, capped by a cgroup limit)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append((int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"))
                break
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            found.append((int(limit) - usage, f"the cgroup limit {limit_file} less usage"))
    return min(found) if found else None


def available_memory(device: jax.Device) -> tuple[int, str] | None:
    """``(bytes, where the figure comes from)`` free for one step on ``device``, or None."""
    if device.platform == "cpu":
        return _meminfo_available()
    try:
        stats = device.memory_stats() or {}
    except Exception:  # not every backend reports memory statistics
        return None
    if "bytes_limit" not in stats:
        return None
    free = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return free, f"{device.device_kind} memory_stats()"


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def require_memory(needed: int, what: str, mesh: Mesh) -> None:
    """Raises :class:`MemoryLimitError` when ``needed`` bytes per device will not fit."""
    device = mesh.devices.flat[0]
    available = available_memory(device)
    if available is None:
        return
    free, source = available
    local = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
    # CPU devices share the host's memory; accelerators each have their own
    total = needed * (len(local) if device.platform == "cpu" else 1)
    if total > free:
        raise MemoryLimitError(
            f"the training step needs about {_gb(total)} ({what}) but only {_gb(free)} is "
            f"available ({source}); lower --batch-size, raise --grad-accum or use a smaller "
            "model, or pass --no-memory-check to try anyway"
        )


def _nbytes(tree: Any) -> int:
    return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def compiled_step(
    graphdef: Any,
    config: TrainConfig,
    optimizer: optax.GradientTransformation,
    search: SearchSpec,
    mesh: Mesh,
    args: tuple,
    check_memory: bool,
) -> Any:
    """The train step compiled ahead of time for ``args``, checked against the memory.

    Compiled steps are cached per (configuration, search, devices, batch shapes), so
    training the same configuration again in one process (a resume, a notebook) does not
    recompile, and each size bucket compiles once.

    Args:
        graphdef: the model graph.
        config: the configuration.
        optimizer: from :func:`~lpn_arc.training.step.make_optimizer`.
        search: the training search of the steps it runs.
        mesh: the ``"data"`` mesh.
        args: ``(params, opt_state, batch, key)`` of the first call.
        check_memory: raise :class:`~lpn_arc.training.errors.MemoryLimitError` when the
            step will not fit (:func:`require_memory`).
    """
    params, opt_state, batch, _ = args
    key = (
        json.dumps(config_to_dict(config), sort_keys=True),
        search,
        tuple(d.id for d in mesh.devices.flat),
        jax.process_count(),
        batch_signature(batch),
    )
    if check_memory:  # a lower bound, before compiling: old and new parameters, gradients,
        # optimiser state and this device's share of the batch; activations come on top
        floor = 3 * _nbytes(params) + _nbytes(opt_state) + _nbytes(batch) // mesh.size
        require_memory(floor, "parameters, gradients, optimiser state and batch alone", mesh)
    if key in _STEP_CACHE:
        _STEP_CACHE.move_to_end(key)
    else:
        jitted = make_train_step(graphdef, config, optimizer, search=search, mesh=mesh)
        compiled = jitted.lower(*args).compile()
        _STEP_CACHE[key] = (compiled, _xla_estimate(compiled))
        while len(_STEP_CACHE) > _STEP_CACHE_SIZE:
            _STEP_CACHE.popitem(last=False)
    compiled, needed = _STEP_CACHE[key]
    if check_memory and needed is not None:  # checked on every call: free memory changes
        require_memory(needed, f"XLA's estimate for batch {config.batch_size}", mesh)
    return compiled


def batch_signature(batch: Any) -> tuple:
    """The shapes and dtypes of a batch: one compiled step per signature (size bucket)."""
    return tuple(
        (path, tuple(x.shape), str(x.dtype))
        for path, x in sorted(
            (jax.tree_util.keystr(p), x) for p, x in jax.tree_util.tree_leaves_with_path(batch)
        )
    )


def _xla_estimate(compiled: Any) -> int | None:
    """Bytes XLA says the compiled step uses (arguments, outputs, temporaries, less the
    aliased buffers), or None when the backend has no memory analysis."""
    stats = compiled.memory_analysis()
    if stats is None:
        return None
    return (
        int(stats.argument_size_in_bytes)
        + int(stats.output_size_in_bytes)
        + int(stats.temp_size_in_bytes)
        - int(getattr(stats, "alias_size_in_bytes", 0))
    )
