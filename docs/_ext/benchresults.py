"""The ``benchmark-results`` directive: every plot and result file of ``benchmarks/results``.

The benchmarks write ``benchmarks/results/<name>.json`` (schema in ``benchmarks/README.md``)
and, for some, ``<name>.png``. When the build starts, the PNG files are copied to
``docs/_generated/benchmarks/`` (ignored by git). ``.. benchmark-results:: plots`` renders
every plot present at build time; ``.. benchmark-results:: tables`` renders, for each result
file, its creation date, machine and a table of its rows; ``.. benchmark-results:: summary``
renders the key-figure tables of ``benchmarks/run_all.py --summary`` (the README's
"Performance" tables come from the same function). Nothing is required to exist:
with nothing to show the directive says how to produce it. A file that cannot be parsed is
reported on the page, not as a build error, since the benchmarks may be rewriting it while
the docs build.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

GENERATED = Path("_generated") / "benchmarks"


def _results_dir(app: Sphinx) -> Path:
    return (Path(app.srcdir) / app.config.benchresults_dir).resolve()


def _copy_plots(app: Sphinx) -> None:
    target = Path(app.srcdir) / GENERATED
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    source = _results_dir(app)
    if source.is_dir():
        for png in sorted(source.glob("*.png")):
            shutil.copy2(png, target / png.name)


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


def _result_lines(path: Path) -> list[str]:
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


def _summary_lines(results: Path, benchmarks: Path | None = None) -> list[str]:
    """``run_all.summary()`` of the files in ``results`` (Markdown tables and paragraphs) as
    reStructuredText; ``run_all.py`` is read from ``benchmarks`` (default: the parent)."""
    benchmarks = results.parent if benchmarks is None else benchmarks
    spec = importlib.util.spec_from_file_location("_benchmarks_run_all", benchmarks / "run_all.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {benchmarks / 'run_all.py'}")
    sys.path.insert(0, str(benchmarks))  # run_all imports benchmarks/common.py
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        markdown = module.summary(results)
    finally:
        sys.path.remove(str(benchmarks))
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


class BenchmarkResults(SphinxDirective):
    """Renders the plots (argument ``plots``), the result tables (``tables``) or the key
    figures (``summary``)."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        what = self.arguments[0]
        if what not in ("plots", "tables", "summary"):
            raise self.error(
                f"benchmark-results takes 'plots', 'tables' or 'summary'; got {what!r}"
            )
        source = _results_dir(self.env.app)
        if what == "summary":
            for path in sorted(source.glob("*.json")) if source.is_dir() else []:
                self.env.note_dependency(str(path))
            try:
                return self._parse(_summary_lines(source))
            except (OSError, ValueError, KeyError, TypeError) as err:
                return self._parse([f"The summary could not be made at build time ({err})."])
        if what == "plots":
            found = sorted((Path(self.env.srcdir) / GENERATED).glob("*.png"))
        else:
            found = sorted(source.glob("*.json")) if source.is_dir() else []
        lines: list[str] = []
        if not found:
            kind = "plot" if what == "plots" else "result file"
            lines += [
                ".. note::",
                "",
                f"   No benchmark {kind} was present in ``benchmarks/results`` when these",
                "   pages were built. Run ``make bench-quick`` (or ``make bench``) and rebuild",
                "   with ``make docs``.",
                "",
            ]
        for path in found:
            self.env.note_dependency(str(source / path.name))
            if what == "tables":
                lines += _result_lines(path)
            else:
                lines += [
                    f".. figure:: /{GENERATED.as_posix()}/{path.name}",
                    "   :width: 100%",
                    "",
                    f"   ``benchmarks/results/{path.name}``",
                    "",
                ]
        return self._parse(lines)

    def _parse(self, lines: list[str]) -> list[nodes.Node]:
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source="benchmark-results"), 0, container)
        return list(container.children)


def setup(app: Sphinx) -> dict:
    app.add_config_value("benchresults_dir", "../benchmarks/results", "env", types=[str])
    app.connect("builder-inited", _copy_plots)
    app.add_directive("benchmark-results", BenchmarkResults)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
