"""XLA options lpn-arc runs with on CPU, set in ``XLA_FLAGS`` before JAX starts a backend.

XLA's CPU runtime schedules a program's operations to run side by side by default (the
"concurrency-optimized" scheduler), which keeps more temporary buffers alive at once. On
lpn-arc's training steps that doubles the process's peak memory under tcmalloc for no
speed gain on a 2-core CPU (``benchmarks/bench_runtime.py``, ``results/runtime.json``), so
lpn-arc turns it off. Importing :mod:`lpn_arc` calls :func:`apply_xla_defaults`; it only
adds a flag that ``XLA_FLAGS`` does not name already, and ``LPN_ARC_XLA_DEFAULTS=0`` turns
it off. The flags reach XLA only if JAX has not started its CPU backend yet (import
lpn_arc before the first computation).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

__all__ = ["CPU_FLAGS", "apply_xla_defaults"]

CPU_FLAGS = ("--xla_cpu_enable_concurrency_optimized_scheduler=false",)
_ENV = "LPN_ARC_XLA_DEFAULTS"
# XLA aborts the process on a flag it does not know: only set these on the jaxlib versions
# they were measured with (any other jaxlib runs with XLA's own defaults).
_TESTED_JAXLIB = ((0, 10), (0, 11))


def _jaxlib_version() -> tuple[int, int] | None:
    from importlib import metadata  # the installed version, without importing jaxlib

    try:
        parts = metadata.version("jaxlib").split(".")
    except metadata.PackageNotFoundError:
        return None
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def apply_xla_defaults(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Adds :data:`CPU_FLAGS` to ``XLA_FLAGS``; returns the flags it added.

    A flag is added unless ``XLA_FLAGS`` already sets it (to any value), ``LPN_ARC_XLA_
    DEFAULTS=0`` is set, or the installed jaxlib is outside the tested versions.

    Args:
        environ: the environment to change (default ``os.environ``).

    Example:
        >>> env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
        >>> apply_xla_defaults(env)
        ['--xla_cpu_enable_concurrency_optimized_scheduler=false']
        >>> env["XLA_FLAGS"].split()[0]  # the user's flags are kept, first
        '--xla_force_host_platform_device_count=2'
        >>> apply_xla_defaults(env)  # already there: nothing added
        []
    """
    environ = os.environ if environ is None else environ
    if environ.get(_ENV, "1") == "0":
        return []
    version = _jaxlib_version()
    if version is None or not _TESTED_JAXLIB[0] <= version < _TESTED_JAXLIB[1]:
        return []
    current = environ.get("XLA_FLAGS", "")
    added = [flag for flag in CPU_FLAGS if flag.split("=", 1)[0] not in current]
    if added:
        environ["XLA_FLAGS"] = " ".join([current, *added]).strip()
    return added
