"""The shape of ``lpn_arc``: data flows one way, each package is entered once, sizes stay small.

Every import of an ``lpn_arc`` module (also the ones inside functions) is read from the
source: a package may import only the packages before it (config -> data -> model ->
training | evaluation -> plots | pretrained | explorer -> commands -> cli), and another
package only through its ``__init__`` (``from lpn_arc.config import ModelConfig``, never
``lpn_arc.config.model``).
"""

import ast
from pathlib import Path

import pytest

from tests.house_limits import check_sizes

PACKAGE = Path(__file__).resolve().parents[2] / "applications" / "arc" / "lpn_arc"
# The layer of every top-level module or package of lpn_arc: an import goes to a lower one.
LAYERS = {
    "_version": 0,
    "xla_flags": 0,
    "allocator": 0,
    "config": 1,
    "data": 2,
    "model": 3,
    "search": 3,  # the searchers of search specifications; model and search are apart
    "training": 4,
    "evaluation": 4,  # training and evaluation never import each other
    "plots": 5,
    "pretrained": 5,  # plots and pretrained never import each other
    "explorer": 5,  # reads config, data and model; the command loads the checkpoint
    "commands": 6,
    "cli": 7,
    "__main__": 8,
}


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def _part(path: Path) -> str:
    """The top-level module or package of ``lpn_arc`` a file belongs to."""
    relative = path.relative_to(PACKAGE).with_suffix("")
    return relative.parts[0]


def _imports(path: Path):
    """``(line, imported lpn_arc module path)`` of every import in ``path``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "lpn_arc":  # from lpn_arc import cli, commands
                for alias in node.names:
                    yield node.lineno, f"lpn_arc.{alias.name}"
            elif node.module.startswith("lpn_arc."):
                yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("lpn_arc."):
                    yield node.lineno, alias.name


def test_every_part_has_a_layer():
    parts = {_part(p) for p in _modules()} - {"__init__"}
    assert parts == set(LAYERS)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way_through_package_roots(path):
    part = _part(path)
    for line, module in _imports(path):
        target = module.split(".")[1]
        where = f"{path.relative_to(PACKAGE)}:{line} imports {module}"
        if part == "__init__":  # lpn_arc/__init__.py sets up the process only
            assert target in ("xla_flags", "_version"), where
            continue
        if target == part:
            continue
        assert LAYERS[target] < LAYERS[part], f"{where}: an import against the data flow"
        package = (PACKAGE / target).is_dir()
        assert not package or module == f"lpn_arc.{target}", (
            f"{where}: import lpn_arc.{target} through its __init__"
        )


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_stay_short(path):
    check_sizes(path)


def test_test_only_code_is_not_in_the_package():
    names = {p.stem for p in _modules()}
    assert "testing" not in names
    source = "\n".join(p.read_text() for p in _modules())
    assert "generate_uncached" not in source and "shape_forcer" not in source
