"""The house limits on code size that the layout tests of ``latentsearch``, ``lpn_arc`` and
``benchmarks`` hold each module to: at most 500 lines a module and 80 lines of code a
function (its docstring, Args, Raises... do not count)."""

from __future__ import annotations

import ast
from pathlib import Path

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function from its first statement after the docstring to its end."""
    first = node.body[0]
    has_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    start = node.body[1].lineno if has_doc and len(node.body) > 1 else first.lineno
    return node.end_lineno - start + 1


def check_sizes(path: Path) -> None:
    """Fails (AssertionError naming the module or function) when ``path`` exceeds a limit."""
    source = path.read_text()
    lines = len(source.splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.name} has {lines} lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            code = code_lines(node)
            assert code <= MAX_FUNCTION_LINES, f"{node.name} has {code} lines of code"
