"""Latencies of ``lpn-arc explore``, measured over HTTP as the page sees them.

The explorer of a checkpoint (default the shipped ``pretrained:pattern-6x6-grad1``) is
served from a thread of this process; every number is the wall-clock time of the page's
request, JSON and decoding included:

* ``startup``: loading the checkpoint, encoding the held-out tasks and fitting the view,
  and the warm-up compilations (:func:`lpn_arc.explorer.searching.warm_up`);
* ``page``: the page and its files, ``/api/info``, the first task and its encoding (what
  the page asks before it is ready);
* ``first_step``: starting a search whose setting was never compiled and its first step
  (compilation included), per searcher;
* ``step``: one search step and the decoding of the best latent (the page's animation
  frame), per searcher, the median of ``--steps`` requests;
* ``decode``: a click on the plane (lift, decode, score);
* ``encode_edit``: re-encoding a task after a cell was painted;
* ``landscape``: the heat map at 24x24 (and 48x48).

Usage: ``python -m benchmarks.bench_explorer [--checkpoint RUN|pretrained:NAME] [--quick]``
writes ``benchmarks/results/explorer.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import urllib.request
from collections.abc import Callable

from benchmarks import common


def _request(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=600) as answer:
        raw = answer.read()
    return json.loads(raw) if answer.headers.get_content_type() == "application/json" else {}


def _timed(fn: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _row(name: str, variant: str, times: list[float]) -> dict:
    return common.sample_record(name, variant, "seconds", times)


def _page(url: str) -> None:
    for path in ("", "static/app.js", "static/style.css"):
        _request(url + path)
    _request(url + "api/info")
    task = _request(url + "api/task/0")["task"]
    _request(url + "api/encode", {"task": task})


def _search_rows(url: str, task: dict, steps: int) -> list[dict]:
    rows = []
    settings = {
        "grad": {"kind": "grad", "lr": 0.1},
        "sample": {"kind": "sample", "samples": 32},
        "es": {"kind": "es", "population": 16},
        "hybrid": {"kind": "hybrid", "samples": 32},
    }
    for name, setting in settings.items():
        fresh = {**setting, "lr": 0.0999, "scale": 0.4999, "steps": 2}  # never compiled
        start = time.perf_counter()
        run = _request(url + "api/search", {"task": task, "settings": fresh})
        _request(url + f"api/search/{run['id']}/step", {"steps": 1})
        rows.append(_row("first_step", name, [time.perf_counter() - start]))
        body = {"task": task, "settings": {**setting, "steps": steps + 1}}
        step = url + f"api/search/{_request(url + 'api/search', body)['id']}/step"
        _request(step, {"steps": 1})  # compiles this setting's step (timed above for another)
        rows.append(_row("step", name, _timed(lambda s=step: _request(s, {"steps": 1}), steps)))
    return rows


def _interaction_rows(url: str, task: dict, repeats: int) -> list[dict]:
    encoded = _request(url + "api/encode", {"task": task})
    u, v = encoded["anchor"]
    rows = [
        _row(
            "decode",
            "click",
            _timed(
                lambda: _request(url + "api/decode", {"task": task, "point": [u + 0.3, v]}), repeats
            ),
        ),
    ]
    edits = []
    for i in range(repeats):
        edited = copy.deepcopy(task)
        edited["train"][0]["output"][0][0] = (i % 9) + 1
        edited["train"][0]["output"][-1][-1] = i // 9
        edits.append(edited)
    it = iter(edits)
    rows.append(
        _row(
            "encode_edit",
            "cell painted",
            _timed(lambda: _request(url + "api/encode", {"task": next(it)}), repeats),
        )
    )
    bounds = [u - 2, u + 2, v - 2, v + 2]
    for resolution in (24, 48):
        body = {"task": task, "bounds": bounds, "resolution": resolution}
        _request(url + "api/landscape", body)  # compiles at 48
        times = _timed(lambda b=body: _request(url + "api/landscape", b), repeats)
        rows.append(_row("landscape", f"{resolution}x{resolution}", times))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="pretrained:pattern-6x6-grad1")
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--steps", type=int, default=50, help="steps timed per searcher")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    args = parser.parse_args(argv)
    common.rerun_with_fast_allocator(__file__, argv)
    from lpn_arc.explorer import BackgroundServer, Explorer, pattern_tasks
    from lpn_arc.explorer.searching import warm_up
    from lpn_arc.pretrained import load_checkpoint

    steps, repeats = (5, 3) if args.quick else (args.steps, 10)
    start = time.perf_counter()
    ckpt = load_checkpoint(args.checkpoint)
    tasks = pattern_tasks(ckpt.config, args.tasks)
    explorer = Explorer(
        ckpt.config, ckpt.graphdef, ckpt.params, tasks, name=args.checkpoint, step=ckpt.step
    )
    warm_up(explorer)
    rows = [_row("startup", "load, encode, fit, warm up", [time.perf_counter() - start])]
    with BackgroundServer(explorer) as url:
        rows.append(_row("page", "files, info, task, encode", _timed(lambda: _page(url), repeats)))
        task = _request(url + "api/task/1")["task"]
        rows += _search_rows(url, task, steps)
        rows += _interaction_rows(url, task, repeats)
    extra = {"checkpoint": args.checkpoint, "step": ckpt.step, "quick": args.quick}
    path = common.write_results(
        "explorer_quick" if args.quick else "explorer", rows, seed=0, extra=extra
    )
    common.print_table(rows)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
