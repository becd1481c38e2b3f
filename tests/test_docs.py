"""The documentation's doctests and its API-reference completeness, without building it.

``make docs`` runs the same examples with Sphinx's doctest builder. Here each page's
``{doctest}`` blocks run in order in one namespace, as Sphinx runs them. The getting-started
page (the README's tour) runs with ``make test``; the how-to pages compile a few dozen
small JAX programs, so they are marked slow (``make test-slow``) and left to ``make docs``.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

import latentsearch

DOCS = Path(__file__).resolve().parent.parent / "docs"
_BLOCK = re.compile(r"^```\{doctest\}[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
FAST_PAGES = {"getting_started.md"}
# Pages whose examples need the `docs` extra (flax, equinox): skipped where it is missing.
REQUIRES = {"models.md": ("flax", "equinox")}
_API_ENTRY = re.compile(r"^\.\. (?:auto|py:)?(?:function|class|data)::\s+(\S+)", re.MULTILINE)


def _pages_with_doctests() -> list:
    pages = (p for p in DOCS.rglob("*.md") if not {"_build", "_generated"} & set(p.parts))
    return [
        pytest.param(
            p,
            id=str(p.relative_to(DOCS)),
            marks=() if p.name in FAST_PAGES else pytest.mark.slow,
        )
        for p in sorted(pages)
        if _BLOCK.search(p.read_text())
    ]


@pytest.mark.parametrize("page", _pages_with_doctests())
def test_page_doctests(page: Path) -> None:
    for module in REQUIRES.get(page.name, ()):
        pytest.importorskip(module)
    text = page.read_text()
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    globs: dict = {"__name__": f"docs.{page.stem}"}
    for number, match in enumerate(_BLOCK.finditer(text)):
        line = text[: match.start(1)].count("\n")
        name = f"{page.name}[{number}]"
        test = parser.get_doctest(match.group(1), globs, name, str(page), line)
        runner.run(test, clear_globs=False)
        globs = test.globs  # DocTest copies its globals; carry them to the next block
    failed, attempted = runner.summarize(verbose=False)
    assert attempted > 0
    assert failed == 0, f"{failed} of {attempted} examples failed in {page}"


def test_api_reference_lists_every_public_symbol() -> None:
    api = (DOCS / "api.rst").read_text()
    documented = set()
    for name in _API_ENTRY.findall(api):
        documented.add(name if name.startswith("latentsearch.") else f"latentsearch.{name}")
    missing = [n for n in latentsearch.__all__ if f"latentsearch.{n}" not in documented]
    assert not missing, f"add {missing} to docs/api.rst"
