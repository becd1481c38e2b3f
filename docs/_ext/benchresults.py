"""The ``benchmark-results`` directive: every plot and result file of ``benchmarks/results``.

The benchmarks write ``benchmarks/results/<name>.json`` (schema in ``benchmarks/README.md``)
and, for some, ``<name>.png``. When the build starts, the PNG files are copied to
``docs/_generated/benchmarks/`` (ignored by git). ``.. benchmark-results:: plots`` renders
every plot present at build time; ``.. benchmark-results:: tables`` renders, for each result
file, its creation date, machine and a table of its rows; ``.. benchmark-results:: summary``
renders the key-figure tables of ``python -m benchmarks.run_all --summary`` (the README's
"Performance" tables come from the same function). Nothing is required to exist:
with nothing to show the directive says how to produce it. A file that cannot be parsed is
reported on the page, not as a build error, since the benchmarks may be rewriting it while
the docs build.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from benchtables import result_lines, summary_lines  # docs/_ext is on sys.path (conf.py)
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
                return self._parse(summary_lines(source))
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
                lines += result_lines(path)
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
