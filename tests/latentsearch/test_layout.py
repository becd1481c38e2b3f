"""The shape of ``latentsearch``: small modules, a library that stands alone, no cycles.

Every import is read from the source (also the ones inside functions). The library imports
neither the application (``lpn_arc``) nor the repository's benchmarks, examples or tests;
the modules under ``latentsearch._src`` import each other by their full private path
(``from latentsearch._src.core import Searcher``, ``from latentsearch._src import flows``),
never through the public ``latentsearch`` namespace, whose ``__init__`` imports them; and
those imports form no cycle.
"""

import ast
from pathlib import Path

import pytest

from tests.house_limits import check_sizes

PACKAGE = Path(__file__).resolve().parents[2] / "latentsearch"
PRIVATE = "latentsearch._src"
# top-level names of the repository's code outside the library
OUTSIDE = {"lpn_arc", "applications", "benchmarks", "examples", "tests", "conftest"}


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    """The dotted module name of a file of the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """``(line, level, imported module)`` of every import in ``path``; ``from X import y``
    gives ``X.y`` (``y`` may be a module or a name in ``X``)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            for alias in node.names:
                yield node.lineno, node.level, f"{module}.{alias.name}".lstrip(".")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, 0, alias.name


def _private_dependencies(path: Path) -> set[str]:
    """The ``latentsearch._src`` modules that ``path`` imports."""
    modules = {_name(p) for p in _modules()}
    found = set()
    for _, _, imported in _imports(path):
        parts = imported.split(".")
        # from latentsearch._src.core import Searcher -> latentsearch._src.core;
        # from latentsearch._src import flows -> latentsearch._src.flows
        for end in range(len(parts), 2, -1):
            if ".".join(parts[:end]) in modules:
                found.add(".".join(parts[:end]))
                break
    return found


def _id(path: Path) -> str:
    return str(path.relative_to(PACKAGE))


@pytest.mark.parametrize("path", _modules(), ids=_id)
def test_modules_and_functions_stay_short(path):
    check_sizes(path)


@pytest.mark.parametrize("path", _modules(), ids=_id)
def test_the_library_imports_no_application_benchmark_or_test_code(path):
    for line, _, imported in _imports(path):
        assert imported.split(".")[0] not in OUTSIDE, f"{_id(path)}:{line} imports {imported}"


@pytest.mark.parametrize("path", _modules(), ids=_id)
def test_the_library_imports_itself_by_private_paths(path):
    """``_src`` imports ``latentsearch._src.X`` only; the public ``__init__`` also reads
    ``latentsearch._version``; nothing imports the public namespace ``latentsearch``, and
    no import is relative."""
    allowed = (f"{PRIVATE}.",)
    if not _name(path).startswith(PRIVATE):
        allowed += ("latentsearch._version.",)
    for line, level, imported in _imports(path):
        where = f"{_id(path)}:{line} imports {imported}"
        assert level == 0, f"{where}: a relative import"
        if imported.split(".")[0] != "latentsearch":
            continue
        assert imported.startswith(allowed), f"{where}: not through latentsearch._src"


def test_the_private_modules_import_no_cycle():
    graph = {_name(p): _private_dependencies(p) for p in _modules() if _name(p).startswith(PRIVATE)}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"an import cycle: {' -> '.join((*path, module))}"
        if module in done:
            return
        for dependency in sorted(graph[module]):
            visit(dependency, (*path, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())
    # the graph is read at all: the driver's own imports are found
    assert graph[f"{PRIVATE}.driver"] >= {f"{PRIVATE}.state", f"{PRIVATE}.inputs"}
