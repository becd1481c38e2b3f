"""``lpn-arc data`` (generated tasks as ARC files) and ``lpn-arc explore``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lpn_arc.commands.common import (
    load_arc,
    seen_line,
)


def run_data(args: argparse.Namespace) -> int:
    """``lpn-arc data pattern``: generated PATTERN tasks of one split as an ARC task file."""
    import dataclasses

    from lpn_arc.config import get_preset
    from lpn_arc.data import SPLIT_RULE, pattern_task_file

    data = get_preset(args.preset).data
    changes = {k: getattr(args, k) for k in ("grid_size", "pattern_size", "density", "num_pairs")}
    data = dataclasses.replace(data, **{k: v for k, v in changes.items() if v is not None})
    tasks = pattern_task_file(data, args.split, args.tasks, args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(tasks))
    print(
        f"wrote {len(tasks)} {args.split} tasks ({data.grid_size}x{data.grid_size} grids, "
        f"{data.pattern_size}x{data.pattern_size} patterns, density {data.density:g}, "
        f"{data.num_pairs} pairs) to {out}; split rule: {SPLIT_RULE}"
    )
    return 0


def run_explore(args: argparse.Namespace) -> int:
    """``lpn-arc explore``: the latent-space explorer, served until Ctrl-C."""
    import time
    import webbrowser

    try:
        from lpn_arc.explorer import Explorer, offered_tasks, serve
    except ImportError as err:
        raise ValueError(
            f"lpn-arc explore needs its web server ({err.name} is missing): "
            "pip install 'lpn-arc[explore]'"
        ) from None
    from lpn_arc.pretrained import checkpoint_folder, load_checkpoint

    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port must be in 1..65535, got {args.port}")
    started = time.perf_counter()
    ckpt = load_checkpoint(args.checkpoint)
    config = ckpt.config
    tasks = offered_tasks(config, args.tasks, args.data)
    if not config.data.is_pattern or args.data is not None:  # ARC tasks with their answers
        from lpn_arc.data import check_no_test_leak

        offered = load_arc(args.data or "arc1-eval")
        print(seen_line(check_no_test_leak(checkpoint_folder(args.checkpoint), config, offered)))
    explorer = Explorer(
        config, ckpt.graphdef, ckpt.params, tasks, name=args.checkpoint, step=ckpt.step
    )
    url = f"http://{'localhost' if args.host in ('127.0.0.1', '::1') else args.host}:{args.port}/"

    def ready():
        print(
            f"explorer of {args.checkpoint} (step {ckpt.step}, {len(tasks)} tasks) ready in "
            f"{time.perf_counter() - started:.1f} s at {url} (Ctrl-C stops it)",
            flush=True,
        )
        if args.open:
            webbrowser.open(url)

    serve(explorer, args.host, args.port, on_ready=ready)
    return 0
