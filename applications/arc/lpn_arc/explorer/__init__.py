"""``lpn-arc explore``: an interactive latent-space explorer in the browser.

* :mod:`~lpn_arc.explorer.tasks`: tasks in the ARC format, checked at the boundary;
* :mod:`~lpn_arc.explorer.session`: :class:`Explorer`, the JAX work (encode, the PCA
  view, decode, the log-likelihood landscape), compiled once per shape;
* :mod:`~lpn_arc.explorer.searching`: the library's searches run one step at a time
  (:func:`latentsearch.search_init`, :func:`~latentsearch.search_step`,
  :func:`~latentsearch.search_finish`);
* :mod:`~lpn_arc.explorer.server`: the web app (Starlette, served by uvicorn) and the
  page in ``static/`` (plain HTML, JavaScript and SVG; nothing is fetched from the network).

This package reads :mod:`lpn_arc.config`, :mod:`lpn_arc.data` and :mod:`lpn_arc.model`;
the checkpoint is loaded by the command (:func:`lpn_arc.commands.run_explore`).
"""

from lpn_arc.explorer.searching import (
    KINDS,
    PAGE_DEFAULTS,
    SearchRun,
    SearchRuns,
    SearchSettings,
)
from lpn_arc.explorer.server import STATIC, BackgroundServer, create_app, free_port, serve
from lpn_arc.explorer.session import Explorer, Prepared, fit_pca
from lpn_arc.explorer.tasks import (
    TaskError,
    offered_tasks,
    parse_task_file,
    pattern_tasks,
    task_arrays,
)

__all__ = [
    "KINDS",
    "PAGE_DEFAULTS",
    "STATIC",
    "BackgroundServer",
    "Explorer",
    "Prepared",
    "SearchRun",
    "SearchRuns",
    "SearchSettings",
    "TaskError",
    "create_app",
    "fit_pca",
    "free_port",
    "offered_tasks",
    "parse_task_file",
    "pattern_tasks",
    "serve",
    "task_arrays",
]
