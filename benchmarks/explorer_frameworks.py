"""Which web framework for ``lpn-arc explore``: install size, import time, time to serve a page.

Each candidate is installed alone in its own throw-away virtual environment (made by the
caller, see below); for each, this script measures

* the installed size: the environment's ``site-packages`` minus an empty environment's
  (pip and setuptools), and the number of distributions installed;
* the import time of the framework (a fresh interpreter, the median of ``--repeats``);
* the start-up time: from starting a fresh interpreter that builds a minimal app (one page
  of text) until that page answers HTTP 200 (the median of ``--repeats``).

Usage (each environment holds one candidate; nothing else is needed)::

    python3 -m venv /tmp/v-empty
    python3 -m venv /tmp/v-star && /tmp/v-star/bin/pip install starlette uvicorn
    python3 -m venv /tmp/v-gradio && /tmp/v-gradio/bin/pip install gradio
    python3 -m venv /tmp/v-panel && /tmp/v-panel/bin/pip install panel
    python -m benchmarks.explorer_frameworks --empty /tmp/v-empty \\
        starlette=/tmp/v-star gradio=/tmp/v-gradio panel=/tmp/v-panel

writes ``benchmarks/results/explorer_frameworks.json`` (see ``common.py``).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from benchmarks import common

IMPORTS = {
    "starlette": "import starlette.applications, uvicorn",
    "gradio": "import gradio",
    "panel": "import panel",
}

APPS = {
    "starlette": """
import uvicorn
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
async def page(request):
    return HTMLResponse("<p>hello</p>")
uvicorn.run(Starlette(routes=[Route("/", page)]), host="127.0.0.1", port={port}, log_level="error")
""",
    "gradio": """
import gradio as gr
with gr.Blocks() as demo:
    gr.Markdown("hello")
demo.launch(server_name="127.0.0.1", server_port={port}, prevent_thread_lock=False)
""",
    "panel": """
import panel as pn
pn.serve(pn.pane.Markdown("hello"), address="127.0.0.1", port={port}, show=False,
         threaded=False)
""",
}

QUIET = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "BOKEH_LOG_LEVEL": "error"}


def _site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _distributions(venv: Path) -> int:
    return len(list(_site_packages(venv).glob("*.dist-info")))


def _import_seconds(python: Path, statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([str(python), "-c", statement], check=True, env={**os.environ, **QUIET})
    return time.perf_counter() - start


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _startup_seconds(python: Path, source: str, timeout: float = 120.0) -> float:
    port = _free_port()
    start = time.perf_counter()
    process = subprocess.Popen(
        [str(python), "-c", source.replace("{port}", str(port))],
        env={**os.environ, **QUIET},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.perf_counter() - start < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"no page after {timeout} s")
    finally:
        process.terminate()
        process.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("candidates", nargs="+", help="NAME=VENV, NAME one of " + ", ".join(APPS))
    parser.add_argument("--empty", required=True, help="an empty virtual environment")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    baseline = _size(_site_packages(Path(args.empty)))
    base_dists = _distributions(Path(args.empty))
    rows, versions = [], {}
    for item in args.candidates:
        name, venv = item.split("=", 1)
        venv = Path(venv)
        python = venv / "bin" / "python"
        size = (_size(_site_packages(venv)) - baseline) / 2**20
        rows.append(common.record("install", name, "size", size, "MiB"))
        rows.append(
            common.record("install", name, "distributions", _distributions(venv) - base_dists, "")
        )
        for metric, measure in (
            ("import", lambda p=python, n=name: _import_seconds(p, IMPORTS[n])),
            ("startup", lambda p=python, n=name: _startup_seconds(p, APPS[n])),
        ):
            times = [measure() for _ in range(args.repeats)]
            rows.append(common.sample_record(metric, name, "seconds", times))
        out = subprocess.run(
            [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
        )
        versions[name] = sorted(line for line in out.stdout.split() if "==" in line)
    path = common.write_results("explorer_frameworks", rows, seed=0, extra={"versions": versions})
    common.print_table(rows)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
