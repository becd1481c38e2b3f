"""Suite-wide set-up: keep the test process under the kernel's limit on memory maps.

Every program XLA compiles for the CPU maps its machine code into the process, and the
compilations stay cached for the life of the process. The whole suite compiles a few
thousand programs in one process; past ``vm.max_map_count`` (65,530 by default) a new
mapping fails and XLA crashes with a segmentation fault in the middle of a compilation.
After each test module, when the process holds more than half that many maps, JAX's
compilation caches are cleared (what a module shares among its tests is kept).
"""

from pathlib import Path

import pytest

MAPS = Path("/proc/self/maps")
MAX_MAPS = Path("/proc/sys/vm/max_map_count")


def _map_count() -> int | None:
    try:
        with MAPS.open("rb") as maps:
            return sum(1 for _ in maps)
    except OSError:  # not Linux: no such limit to watch
        return None


def _map_limit() -> int:
    try:
        return int(MAX_MAPS.read_text())
    except (OSError, ValueError):
        return 65530


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    yield
    count = _map_count()
    if count is not None and count > _map_limit() // 2:
        import jax

        jax.clear_caches()
