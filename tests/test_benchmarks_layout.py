"""The shape of ``benchmarks/``: short modules and functions, and no edits of ``sys.path``.

The benchmarks are modules of the ``benchmarks`` package, run from the repository root
(``python -m benchmarks.bench_search``), so every import resolves without touching
``sys.path``; ``peer_worker.py`` runs as a plain script in the official code's environment,
which gets the official checkout through ``PYTHONPATH`` from its parent.
"""

import ast
from pathlib import Path

import pytest

from tests.house_limits import check_sizes

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _modules():
    return sorted(BENCHMARKS.glob("*.py"))


def test_benchmarks_is_a_package():
    assert (BENCHMARKS / "__init__.py").is_file()


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.name)
def test_modules_and_functions_stay_short(path):
    check_sizes(path)


def _is_sys_path(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "path"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
    )


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.name)
def test_no_module_edits_sys_path(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert not _is_sys_path(node.func.value), (
                f"{path.name}:{node.lineno}: sys.path.{node.func.attr}(...); import through "
                "the benchmarks package (python -m benchmarks.NAME from the repository root)"
            )


def test_the_peer_worker_imports_only_the_standard_library_at_its_top():
    """It runs under the official code's old environment too, where neither ``benchmarks``
    nor ``lpn_arc`` is importable: our side imports them inside its functions."""
    import sys

    tree = ast.parse((BENCHMARKS / "peer_worker.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or top == "__future__", name
