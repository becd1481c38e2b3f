"""Profile: where the time of a pattern training step and of a grad:100 search goes.

Compiles the programs that ``bench_peer.py`` times on our side (``peer_worker.ours_program``:
the Table-13 pattern model, a training step on 32 tasks x 4 pairs with the encoder mean or
one gradient step, and the encode + grad:100 search of 32 tasks), then

- reads XLA's cost analysis of each compiled program (FLOPs, bytes accessed) and its static
  memory estimate (arguments, outputs, temporaries);
- traces ``--calls`` calls with ``jax.profiler`` and adds up the time of every executed
  XLA operation (the CPU runtime records one event per operation, loops included);
- attributes each operation to the innermost function of this repository (or of optax) in
  its source location, and to the forward or the backward pass (``transpose`` in its name).

Shares are of the summed operation time (the two cores run independent operations side by
side, so the sum can exceed the wall time). Writes ``results/profile.json``: rows
``variant="<measurement>/<mask>/<where>"`` with ``metric="share"`` and ``"ms"`` (per
call), and per program ``flops``, ``bytes_accessed``, ``temp_bytes``, ``wall_ms``.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import tempfile
import time
from pathlib import Path

from benchmarks import common

NAME = "profile"
MEASUREMENTS = ("train_mean", "train_grad1", "search_grad100")
OURS = ("lpn_arc/", "latentsearch/", "optax/")
CONTROL = {"while", "call", "conditional"}  # their events contain their bodies' events

_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (.*)$")
_OPCODE = re.compile(r"[\]}) ]([a-z][\w\-]*)\(")
_META = re.compile(r'metadata=\{op_name="([^"]*)"(?: stack_frame_id=(\d+))?')
_COMPUTATION = re.compile(r"^(?:ENTRY )?%([\w.\-]+) \(.*\{$")
_CALLS = re.compile(r"calls=%([\w.\-]+)")


class Hlo:
    """Instruction name -> (opcode, op_name, source function) from compiled HLO text."""

    def __init__(self, text: str) -> None:
        self.files = self._table(text, "FileNames", r'(\d+) "(.*)"')
        self.functions = self._table(text, "FunctionNames", r'(\d+) "(.*)"')
        self.locations = self._table(
            text, "FileLocations", r"(\d+) \{file_name_id=(\d+) function_name_id=(\d+) line=(\d+)"
        )
        self.frames = self._table(
            text, "StackFrames", r"(\d+) \{file_location_id=(\d+) parent_frame_id=(\d+)"
        )
        self.instructions: dict[str, tuple[str, str, str]] = {}
        computation, metadata = "", {}  # computation -> first (op_name, frame) inside it
        calls: dict[str, str] = {}
        parsed, shapes = [], {}
        for line in text.splitlines():
            header = _COMPUTATION.match(line)
            if header:
                computation = header.group(1)
                continue
            match = _INSTRUCTION.match(line)
            if not match:
                continue
            name, rest = match.groups()
            opcode = _OPCODE.search(rest)
            meta = _META.search(rest)
            called = _CALLS.search(rest)
            shapes[name] = rest.split(" ", 1)[0].split("{", 1)[0]
            if called:
                calls[name] = called.group(1)
            if meta and meta.group(2) and computation not in metadata:
                metadata[computation] = (meta.group(1), int(meta.group(2)))
            parsed.append((name, opcode.group(1) if opcode else "?",
                           (meta.group(1), int(meta.group(2))) if meta and meta.group(2)
                           else None))  # fmt: skip
        for name, opcode, meta in parsed:
            # XLA's own fusions (e.g. the XNNPACK ones) may carry no metadata: use that of
            # the first operation inside the fused computation.
            meta = meta or metadata.get(calls.get(name, ""), ("", None))
            source = self.source(meta[1])
            if source == "other":  # no source at all: say what it computes instead
                dims = shapes[name].split("[", 1)[-1].rstrip("]").split(",")
                source = f"unattributed {opcode} [..., {', '.join(dims[-2:])}]"
            self.instructions[name] = (opcode, meta[0], source)

    @staticmethod
    def _table(text: str, title: str, pattern: str) -> dict[int, tuple]:
        table: dict[int, tuple] = {}
        start = text.find(f"\n{title}\n")
        if start < 0:
            return table
        for line in text[start + len(title) + 2 :].splitlines():
            match = re.match(pattern, line)
            if not match:
                break
            table[int(match.group(1))] = match.groups()[1:]
        return table

    def source(self, frame: int | None) -> str:
        """Where an operation comes from: the innermost function of this repository or of
        optax in its traceback (``"model.py:Attention.attend"``), prefixed with the model
        part it runs in (``"decoder "``, ``"encoder "``) when there is one."""
        innermost, part = None, ""
        seen = set()
        while frame is not None and frame in self.frames and frame not in seen:
            seen.add(frame)
            location, parent = (int(x) for x in self.frames[frame])
            file_id, function_id, _line = (int(x) for x in self.locations[location])
            path, function = self.files[file_id][0], self.functions[function_id][0]
            if innermost is None and any(part in path for part in OURS):
                innermost = f"{Path(path).name}:{function}"
            if not part and function.startswith(("Decoder.", "Encoder.")):
                part = function.split(".")[0].lower() + " "
            # The printed parent id is one more than the parent frame's id (1 = no parent).
            frame = parent - 1 if parent > 1 else None
        return part + (innermost or "other")


def _trace_ops(fn, args, calls: int) -> dict[str, float]:
    """Summed microseconds of each executed XLA operation over ``calls`` calls."""
    import jax

    with tempfile.TemporaryDirectory() as tmp:
        jax.profiler.start_trace(tmp, create_perfetto_trace=True)
        for _ in range(calls):
            jax.block_until_ready(fn(*args))
        jax.profiler.stop_trace()
        (path,) = glob.glob(f"{tmp}/**/perfetto_trace.json.gz", recursive=True)
        with gzip.open(path) as f:
            trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    totals: dict[str, float] = collections.defaultdict(float)
    for event in events:
        op = (event.get("args") or {}).get("hlo_op")
        if event.get("ph") == "X" and op:
            totals[op] += event.get("dur", 0.0)
    return totals


def profile(measurement: str, mask: str, tasks: dict, calls: int) -> tuple[list[dict], dict]:
    import jax

    from benchmarks.peer_worker import ours_program

    fn, args, per, num = ours_program(measurement, tasks, mask)
    compiled = fn.lower(*args).compile()
    hlo = Hlo(compiled.as_text())
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    memory = common.compiled_memory(compiled)
    jax.block_until_ready(fn(*args))  # warm
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    wall_ms = 1e3 * (time.perf_counter() - start)
    totals = _trace_ops(fn, args, calls)

    where: dict[str, float] = collections.defaultdict(float)
    for op, micros in totals.items():
        opcode, op_name, source = hlo.instructions.get(op, ("?", "", "unknown"))
        if opcode in CONTROL:
            continue
        direction = "backward" if "transpose(" in op_name else "forward"
        where[f"{source} ({direction})"] += micros / calls / 1e3
    total = sum(where.values())
    variant = f"{measurement}/{mask}"
    rows = [
        common.record(NAME, variant, "wall_ms", wall_ms, "ms"),
        common.record(NAME, variant, "op_ms", total, "ms"),
        common.record(NAME, variant, "flops", float(cost.get("flops", 0.0)), "flop"),
        common.record(NAME, variant, "bytes_accessed", float(cost.get("bytes accessed", 0.0)), "B"),
        common.record(NAME, variant, "temp_bytes", float(memory["temp_size_in_bytes"]), "B"),
    ]
    ranked = sorted(where.items(), key=lambda item: -item[1])
    for name, ms in ranked:
        rows.append(common.record(NAME, f"{variant}/{name}", "ms", ms, "ms"))
        rows.append(common.record(NAME, f"{variant}/{name}", "share", ms / total, "fraction"))
    summary = {"per": per, "tasks": num, "wall_ms": wall_ms, "op_ms": total,
               "flops": cost.get("flops"), "memory": memory,
               "where": {name: round(ms / total, 4) for name, ms in ranked}}  # fmt: skip
    return rows, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measurements", nargs="+", choices=MEASUREMENTS,
                        default=list(MEASUREMENTS))  # fmt: skip
    parser.add_argument("--masks", nargs="+", choices=("official", "input-only"),
                        default=["official", "input-only"])  # fmt: skip
    parser.add_argument("--calls", type=int, default=3, help="traced calls per program")
    parser.add_argument("--train-tasks", type=int, default=32)
    parser.add_argument("--search-tasks", type=int, default=32)
    parser.add_argument("--top", type=int, default=12, help="rows printed per program")
    args = parser.parse_args(argv)
    from benchmarks.bench_peer import write_tasks

    common.rerun_with_fast_allocator(__file__, argv)
    import numpy as np

    rows, programs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for measurement in args.measurements:
            train = measurement.startswith("train")
            path = Path(tmp) / f"{measurement}.npz"
            write_tasks(path, args.train_tasks if train else args.search_tasks, 0 if train else 1)
            with np.load(path) as data:
                tasks = {name: data[name] for name in data.files}
            for mask in args.masks:
                new_rows, summary = profile(measurement, mask, tasks, args.calls)
                rows += new_rows
                programs[f"{measurement}/{mask}"] = summary
                print(f"\n{measurement} / {mask}: wall {summary['wall_ms']:.0f} ms per call, "
                      f"{summary['flops'] / 1e9:.1f} GFLOP, temporaries "
                      f"{summary['memory']['temp_size_in_bytes'] / 2**30:.2f} GiB")  # fmt: skip
                for name, share in list(summary["where"].items())[: args.top]:
                    print(f"  {100 * share:5.1f}%  {name}")
    path = common.write_results(NAME, rows, seed=0, extra={"programs": programs})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
