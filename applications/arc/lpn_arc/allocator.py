"""Which ``malloc`` the process runs with, and re-execution with a faster one.

XLA on glibc malloc spends much of a CPU training step in page faults; preloading tcmalloc
(Debian/Ubuntu ``libtcmalloc-minimal4``) or jemalloc makes small-model CPU steps 1.5-3x
faster. The allocator must be chosen before Python starts, so commands re-execute
themselves with ``LD_PRELOAD`` set when one is installed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "FAST_ALLOCATORS",
    "allocator",
    "find_allocator",
    "find_fast_allocator",
    "reexec_with_fast_allocator",
]

_ALLOCATORS = {
    "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4"),
    "jemalloc": ("libjemalloc.so.2",),
}
FAST_ALLOCATORS = tuple(_ALLOCATORS)
"""The allocators :func:`reexec_with_fast_allocator` can preload, preferred first."""
_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")
_ENV = "LPN_ARC_ALLOCATOR"


def allocator() -> str:
    """The allocator this process runs with: ``tcmalloc``, ``jemalloc`` or ``glibc``."""
    preload = os.environ.get("LD_PRELOAD", "")
    for name in _ALLOCATORS:
        if name in preload:
            return name
    return "glibc"


def find_allocator(name: str) -> str | None:
    """The path of the installed library of ``name`` (one of :data:`FAST_ALLOCATORS`), or None.

    Raises:
        ValueError: if ``name`` is not one of :data:`FAST_ALLOCATORS`.
    """
    if name not in _ALLOCATORS:
        raise ValueError(f"unknown allocator {name!r}; expected one of {FAST_ALLOCATORS}")
    for directory in _LIB_DIRS:
        for lib in _ALLOCATORS[name]:
            path = Path(directory) / lib
            if path.exists():
                return str(path)
    return None


def find_fast_allocator() -> str | None:
    """The path of an installed tcmalloc (preferred) or jemalloc library, or None."""
    for name in FAST_ALLOCATORS:
        path = find_allocator(name)
        if path is not None:
            return path
    return None


def reexec_with_fast_allocator(command: Sequence[str]) -> None:
    """Replaces the process by ``command`` with tcmalloc (or jemalloc) preloaded.

    Does nothing (returns) when a fast allocator already runs, when none is installed, or
    when ``LPN_ARC_ALLOCATOR`` is set (``LPN_ARC_ALLOCATOR=glibc`` keeps the default
    allocator). Only call it from a program's entry point: it never returns otherwise.

    Args:
        command: the full command line to run again, e.g.
            ``[sys.executable, "-m", "lpn_arc", *sys.argv[1:]]``.
    """
    if os.environ.get(_ENV) or allocator() != "glibc":
        return
    path = find_fast_allocator()
    if path is None:
        return
    env = dict(os.environ)
    env["LD_PRELOAD"] = f"{path} {env['LD_PRELOAD']}".strip() if env.get("LD_PRELOAD") else path
    env[_ENV] = "auto"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], list(command), env)
