"""Memory probing: what a training step needs, and what the device has.

Pure estimates: the memory free on a device (the host's ``MemAvailable``, capped by a
cgroup limit, on CPU), a lower bound of a step's needs (:func:`step_floor`: parameters,
gradients, optimiser state and the batch), XLA's estimate of a compiled step
(:func:`xla_estimate`) and the batch shapes a compiled step is made for
(:func:`batch_signature`). :class:`~lpn_arc.training.compiled.TrainSteps` compares them
(:func:`require_memory`) before the first step runs, so that a configuration that cannot
fit fails at once with both numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from lpn_arc.training.errors import MemoryLimitError

__all__ = [
    "available_memory",
    "batch_signature",
    "require_memory",
    "step_floor",
    "xla_estimate",
]


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


def step_floor(params: Any, opt_state: Any, batch: Any, mesh: Mesh) -> int:
    """A lower bound of the bytes per device a training step needs, known before compiling:
    old and new parameters, gradients, optimiser state and this device's share of the
    batch (activations come on top)."""
    return 3 * _nbytes(params) + _nbytes(opt_state) + _nbytes(batch) // mesh.size


def batch_signature(batch: Any) -> tuple:
    """The shapes and dtypes of a batch: one compiled step per signature (size bucket)."""
    return tuple(
        (path, tuple(x.shape), str(x.dtype))
        for path, x in sorted(
            (jax.tree_util.keystr(p), x) for p, x in jax.tree_util.tree_leaves_with_path(batch)
        )
    )


def xla_estimate(compiled: Any) -> int | None:
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
