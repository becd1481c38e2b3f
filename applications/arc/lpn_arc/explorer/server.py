"""The explorer's web app: a small Starlette application served by uvicorn.

The page (``static/index.html``, ``app.js``, ``style.css``: no framework, no network) asks
a JSON API; every answer is computed by :class:`lpn_arc.explorer.session.Explorer`:

====================================  =================================================
``GET  /api/info``                     the model, the task list, the PCA cloud
``GET  /api/task/{index}``             a held-out task (ARC format)
``POST /api/encode``                   ``{task}``: pair latents, aggregate, its decoding
``POST /api/upload``                   ``{text}``: an ARC task file, checked
``POST /api/search``                   ``{task, settings}``: starts a search, first frame
``POST /api/search/{id}/step``         ``{steps}``: runs steps, a frame per step
``POST /api/decode``                   ``{task, point[, run]}``: the latent at a point
``POST /api/landscape``                ``{task, bounds, resolution[, run]}``: the heat map
====================================  =================================================

A request the explorer cannot serve (a bad task file, a grid too large for the model, bad
settings) is answered with status 400 and ``{"error": message}``, which the page shows; an
unexpected failure with 500 and a one-line message (the traceback goes to the server log).
The plane of ``decode`` and ``landscape`` goes through the task's aggregate latent, or,
given ``run``, through the best latent that search has found.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lpn_arc.explorer.searching import (
    KINDS,
    PAGE_DEFAULTS,
    SearchRuns,
    SearchSettings,
    warm_up,
)
from lpn_arc.explorer.session import Explorer
from lpn_arc.explorer.tasks import parse_task_file

__all__ = ["STATIC", "BackgroundServer", "create_app", "free_port", "serve"]

STATIC = Path(__file__).resolve().parent / "static"
"""The page's files (package data)."""

_log = logging.getLogger("lpn_arc.explorer")


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"the request is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError("the request must be a JSON object")
    return data


def _number(value: Any, name: str, kind=float):
    """``value`` as a ``float`` (or an ``int`` with ``kind=int``), or a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise ValueError(f"{name} must be {'a number' if kind is float else 'an integer'}")
    return kind(value)


def _numbers(value: Any, name: str, count: int) -> list[float]:
    if not isinstance(value, list) or len(value) != count:
        raise ValueError(f"{name} must be a list of {count} numbers")
    return [_number(v, name) for v in value]


def _handler(work):
    """Runs ``work(data) -> dict`` in a worker thread; errors become JSON answers."""

    async def endpoint(request: Request) -> JSONResponse:
        started = time.perf_counter()
        try:
            data = await _body(request) if request.method == "POST" else {}
            data["_path"] = request.path_params
            answer = await run_in_threadpool(work, data)
        except ValueError as err:
            return JSONResponse({"error": " ".join(str(err).split())}, status_code=400)
        except Exception as err:  # a bug: a one-line answer, the traceback in the log
            _log.error("%s failed:\n%s", request.url.path, traceback.format_exc())
            message = f"internal error ({type(err).__name__}): {' '.join(str(err).split())}"
            return JSONResponse({"error": message[:500]}, status_code=500)
        answer["seconds"] = time.perf_counter() - started
        return JSONResponse(answer)

    return endpoint


def _routes(explorer: Explorer) -> list[Route]:
    runs = SearchRuns()
    rows, cols = explorer.grid_shape

    def info(_):
        return {
            "model": explorer.name,
            "step": explorer.step,
            "grid": [rows, cols],
            "latent_dim": explorer.latent_dim,
            "tasks": len(explorer.tasks),
            "cloud": explorer.cloud.tolist(),
            "kinds": list(KINDS),
            "defaults": dict(PAGE_DEFAULTS),
        }

    def task(data):
        index = data["_path"]["index"]
        if not 0 <= index < len(explorer.tasks):
            raise ValueError(f"task {index} does not exist (0..{len(explorer.tasks) - 1})")
        return {"task": explorer.tasks[index]}

    def encode(data):
        return explorer.summary(explorer.prepare(data.get("task")))

    def upload(data):
        text = data.get("text")
        if not isinstance(text, str):
            raise ValueError("text must be the file's content")
        return {"task": parse_task_file(text, rows, cols)}

    def search(data):
        prepared = explorer.prepare(data.get("task"))
        run_id = runs.start(explorer, prepared, SearchSettings.of(data.get("settings", {})))
        run = runs.get(run_id)
        return {"id": run_id, **run.report([run.first])}

    def step(data):
        run = runs.get(data["_path"]["id"])
        count = _number(data.get("steps"), "steps", int)
        if not 1 <= count <= 500:
            raise ValueError(f"steps must be in 1..500, got {count}")
        return run.report(run.advance(count))

    def through(data, prepared):
        """The plane's anchor: the task's aggregate, or the best latent of search ``run``."""
        if data.get("run") is None:
            return None
        run = runs.get(str(data["run"]))
        if run.prepared.key != prepared.key:
            raise ValueError("that search was run on another task; run it again")
        return run.best_z

    def decode(data):
        prepared = explorer.prepare(data.get("task"))
        z = explorer.lift(
            prepared, _numbers(data.get("point"), "point", 2), through(data, prepared)
        )
        return {"decoded": explorer.decode(prepared, z), "score": explorer.score(prepared, z)}

    def landscape(data):
        prepared = explorer.prepare(data.get("task"))
        bounds = _numbers(data.get("bounds"), "bounds [u_min, u_max, v_min, v_max]", 4)
        resolution = _number(data.get("resolution"), "resolution", int)
        return explorer.landscape(prepared, bounds, resolution, through(data, prepared))

    api = [
        ("info", info, "GET"),
        ("task/{index:int}", task, "GET"),
        ("encode", encode, "POST"),
        ("upload", upload, "POST"),
        ("search", search, "POST"),
        ("search/{id}/step", step, "POST"),
        ("decode", decode, "POST"),
        ("landscape", landscape, "POST"),
    ]
    return [Route(f"/api/{path}", _handler(work), methods=[method]) for path, work, method in api]


def create_app(explorer: Explorer) -> Starlette:
    """The web app of ``explorer``: the page at ``/``, its files at ``/static``, the API."""

    async def index(request: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    routes = [
        Route("/", index),
        *_routes(explorer),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.explorer = explorer
    return app


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now.

    Example:
        >>> 1024 <= free_port() <= 65535
        True
    """
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, or an ``OSError`` that says which address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise OSError(
            f"cannot listen on {host}:{port} ({err.strerror}); choose another --port or --host"
        ) from None
    sock.listen(64)
    return sock


def _server(explorer: Explorer, host: str, port: int):
    import uvicorn

    config = uvicorn.Config(
        create_app(explorer), host=host, port=port, log_level="warning", access_log=False
    )
    return uvicorn.Server(config)


def serve(explorer: Explorer, host: str = "127.0.0.1", port: int = 7860, on_ready=None) -> None:
    """Serves the explorer until interrupted (Ctrl-C). Once the server listens, a
    background thread compiles the first requests' functions (:func:`warm_up`) and then
    calls ``on_ready()``.

    Raises:
        OSError: when ``host:port`` cannot be listened on (taken, or not this machine's).
    """
    sock = _bind(host, port)
    server = _server(explorer, host, port)
    if on_ready is not None:
        threading.Thread(target=_when_started, args=(server, on_ready), daemon=True).start()
    server.run(sockets=[sock])


def _when_started(server, callback) -> None:
    while not server.started and not server.should_exit:
        time.sleep(0.02)
    if server.started:
        try:
            warm_up(server.config.app.state.explorer)
        except Exception:  # the page will show the error on its first request
            _log.error("warming up failed:\n%s", traceback.format_exc())
        callback()


class BackgroundServer(contextlib.AbstractContextManager):
    """The explorer served from a thread of this process (tests, benchmarks)::

    with BackgroundServer(explorer) as url:
        ...  # GET url + "api/info"
    """

    def __init__(self, explorer: Explorer, host: str = "127.0.0.1", port: int = 0):
        self._sock = _bind(host, port)
        self.url = f"http://{host}:{self._sock.getsockname()[1]}/"
        self._server = _server(explorer, host, self._sock.getsockname()[1])
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the explorer's server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
