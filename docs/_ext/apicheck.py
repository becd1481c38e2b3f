"""Fails the docs build when a public symbol has no entry in the API reference.

For every module named in the ``apicheck_modules`` setting, each name in the module's
``__all__`` (read when the build runs, so a newly exported symbol is checked without any
edit here) must be documented as ``<module>.<name>`` by some page, e.g. with
``.. autofunction:: latentsearch.search``. A missing name is logged as a warning, which
``sphinx-build -W`` turns into a failed build.
"""

from __future__ import annotations

import importlib

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)


def missing_symbols(module_name: str, documented: set[str]) -> list[str]:
    """The names of ``module_name.__all__`` not in ``documented`` (full dotted names)."""
    module = importlib.import_module(module_name)
    public = getattr(module, "__all__", None)
    if public is None:
        raise ValueError(f"{module_name} has no __all__ to check the API reference against")
    return [name for name in public if f"{module_name}.{name}" not in documented]


def _check(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.name not in ("html", "dirhtml", "doctest"):
        return
    documented = set(app.env.get_domain("py").objects)
    for module_name in app.config.apicheck_modules:
        for name in missing_symbols(module_name, documented):
            logger.warning(
                "%s.%s is in %s.__all__ but not documented: add it to docs/api.rst",
                module_name,
                name,
                module_name,
                type="apicheck",
            )


def setup(app: Sphinx) -> dict:
    app.add_config_value("apicheck_modules", [], "env", types=[list])
    app.connect("build-finished", _check)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
