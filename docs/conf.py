"""Sphinx configuration of the latentsearch documentation (``make docs``)."""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import latentsearch  # noqa: E402

project = "latentsearch"
author = "The latentsearch developers"
copyright = "The latentsearch developers, Apache-2.0"
release = latentsearch.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_nb",
    "sphinx_copybutton",
    "apicheck",
    "benchresults",
]

exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}

# -- MyST and notebook execution -------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
# The tutorial runs on every build (`make docs` starts from an empty _build, so the cache is
# empty; the doctest pass then reuses the executed notebook). A failing cell fails the build.
nb_execution_mode = "cache"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

# -- API reference ---------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# Show the annotations as written (Float[Array, "M D"], PRNGKeyArray) rather than expanded.
autodoc_type_aliases = {
    name: name for name in ("Array", "ArrayLike", "PRNGKeyArray", "PyTree", "Objective")
}
autosummary_generate = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# Attribute annotations (jaxtyping, e.g. "*batch D") are not reST; the docstrings give shapes.
napoleon_attr_annotations = False
python_use_unqualified_type_names = True
add_module_names = False
apicheck_modules = ["latentsearch"]

# -- Doctests (``sphinx-build -b doctest``) --------------------------------------------------
# The docstrings' examples run with the module's public names in scope, as under pytest.
doctest_global_setup = """
import jax
import jax.numpy as jnp
import optax
import latentsearch as ls
from latentsearch import *
"""

# Copying an example leaves out the ">>> " and "... " prompts.
copybutton_prompt_text = r">>> |\.\.\. "
copybutton_prompt_is_regexp = True

# -- HTML --------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = f"latentsearch {release}"
html_static_path: list[str] = []
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "use_download_button": True,
}
pygments_style = "default"
