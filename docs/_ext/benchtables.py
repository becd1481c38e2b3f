"""The reStructuredText of ``benchmarks/results``: a table per result file, and the summary.

Plain Python (no Sphinx), so that the tests check what the docs render without building
them; the ``benchmark-results`` directive (``benchresults.py``) inserts these lines.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

__all__ = ["result_lines", "summary_lines"]


def _format(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 1e6 and float(value).is_integer():
        return f"{value:,.0f}"
    if magnitude >= 100 or float(value).is_integer():
        return f"{value:,.1f}" if not float(value).is_integer() else f"{value:,.0f}"
    return f"{value:.4g}"


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ") or " "


def result_lines(path: Path) -> list[str]:
    name = path.stem
    lines = [f".. rubric:: {name}", ""]
    try:
        data = json.loads(path.read_text())
        rows = data["rows"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return lines + [f"``{path.name}`` could not be read at build time ({err}).", ""]
    machine = data.get("machine") or {}
    facts = [f"``benchmarks/results/{path.name}``"]
    if data.get("created_utc"):
        facts.append(f"written {data['created_utc']}")
    described = [
        str(machine[k]) for k in ("cpu_model", "device_kind", "allocator") if machine.get(k)
    ]
    if machine.get("cpu_count"):
        described.insert(1, f"{machine['cpu_count']} cores")
    if described:
        facts.append("on " + ", ".join(described))
    if machine.get("load_average"):
        facts.append(f"load average {machine['load_average']}")
    lines += ["; ".join(facts) + ".", ""]
    if not rows:
        return lines + ["(no rows)", ""]
    lines += [
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - measurement",
        "     - variant",
        "     - metric",
        "     - value",
        "     - unit",
        "     - repeats",
    ]
    for row in rows:
        cells = [
            row.get("name", ""),
            row.get("variant", ""),
            row.get("metric", ""),
            _format(row.get("value", "")),
            row.get("unit", ""),
            _format(row.get("repeats", "")),
        ]
        lines.append(f"   * - {_cell(str(cells[0]))}")
        lines += [f"     - {_cell(str(c))}" for c in cells[1:]]
    return lines + [""]


def summary_lines(results: Path, benchmarks: Path | None = None) -> list[str]:
    """``run_all.summary()`` of the files in ``results`` (Markdown tables and paragraphs) as
    reStructuredText; ``run_all.py`` is read from ``benchmarks`` (default: the parent)."""
    benchmarks = results.parent if benchmarks is None else benchmarks
    spec = importlib.util.spec_from_file_location("_benchmarks_run_all", benchmarks / "run_all.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {benchmarks / 'run_all.py'}")
    module = importlib.util.module_from_spec(spec)  # run_all imports nothing of benchmarks
    spec.loader.exec_module(module)
    markdown = module.summary(results)
    lines: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if not table:
            return
        lines.extend([".. list-table::", "   :header-rows: 1", ""])
        for row in table:
            lines.append(f"   * - {_cell(row[0])}")
            lines.extend(f"     - {_cell(cell)}" for cell in row[1:])
        lines.append("")
        table.clear()

    for line in markdown:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-:") for c in cells):  # not the separator row
                table.append(cells)
            continue
        flush()
        if line.strip():
            lines.extend([line.strip(), ""])
    flush()
    return lines
