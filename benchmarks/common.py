"""Shared helpers for the latentsearch benchmarks: machine info, timing, result rows, output.

Every benchmark writes ``benchmarks/results/<name>.json`` with one schema::

    {
      "name": str,               # the benchmark, e.g. "search"
      "created_utc": str,        # ISO-8601 time the file was written
      "machine": {...},          # machine_info()
      "seed": int,
      "rows": [                  # one row per measured number, see record()
        {"name", "variant", "metric", "value", "unit", "repeats", "min", "median", "max"}
      ],
      ...                        # optional benchmark-specific keys (write_results' extra)
    }

A timed row has ``value == median`` of ``repeats`` runs; a deterministic or derived value
(a memory estimate, a ratio) has ``repeats == 1`` and ``min == median == max == value``.

The benchmarks import the installed ``latentsearch`` and ``lpn_arc`` (``make bench`` installs
both into ``.venv``) and run as modules of the ``benchmarks`` package from the repository
root (``python -m benchmarks.bench_x``), which puts the root on the import path: a benchmark
imports this module as ``from benchmarks import common``, and ``bench_generate`` borrows the
test-only helpers of ``tests/arc/helpers.py``.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS_DIR.parent
RESULTS_DIR = BENCHMARKS_DIR / "results"

ROW_KEYS = ("name", "variant", "metric", "value", "unit", "repeats", "min", "median", "max")
"""The keys of every result row, in order."""
SEED_KEYS = ("std", "seeds", "per_seed")
"""Optional keys after :data:`ROW_KEYS` of a row whose ``value`` is a mean over seeds."""
DATA_KEYS = ("tasks", "seen_programs")
"""Optional keys, last, of an accuracy row: the number of tasks scored, and the fraction of
the evaluated PATTERN programs that the model's training drew (computed from the data)."""

__all__ = [
    "RESULTS_DIR",
    "DATA_KEYS",
    "ROW_KEYS",
    "Timing",
    "allocator",
    "compile_timed",
    "compiled_memory",
    "cpu_model",
    "machine_info",
    "module_command",
    "print_table",
    "rate_record",
    "record",
    "rerun_with_fast_allocator",
    "sample_record",
    "time_fn",
    "time_interleaved",
    "timing_record",
    "trained_run",
    "write_results",
]


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (falls back to ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def allocator() -> str:
    """``"tcmalloc"`` or ``"jemalloc"`` if ``LD_PRELOAD`` names one, else ``"glibc"``
    (:func:`lpn_arc.allocator.allocator`)."""
    from lpn_arc.allocator import allocator as process_allocator

    return process_allocator()


def trained_run(
    config: Any, run_dir: Path, *, max_seconds: float | None = None
) -> tuple[Any, float | None]:
    """``(checkpoint, train_seconds)`` of the lpn-arc run in ``run_dir``: its
    :class:`lpn_arc.training.Checkpoint` (``opt_state`` None), reused when its saved
    configuration equals ``config`` and it has reached ``config.steps`` (``train_seconds``
    None), else trained there, resumed from its latest checkpoint
    (:func:`lpn_arc.training.train`).

    Raises:
        ValueError: when ``run_dir`` holds a run of another configuration (naming the fields
            that differ), which is never reused.
    """
    import dataclasses

    from lpn_arc.config import config_to_dict
    from lpn_arc.training import Checkpoint, load_run, train

    try:
        saved = load_run(run_dir)
    except FileNotFoundError:
        saved = None
    if saved is not None:
        differ = _differences(config_to_dict(saved.config), config_to_dict(config))
        if differ:
            raise ValueError(
                f"{run_dir} holds a run of another configuration ({'; '.join(differ[:8])}); "
                "delete it or choose another folder"
            )
        if saved.step >= config.steps:
            return dataclasses.replace(saved, opt_state=None), None
    start = time.perf_counter()
    result = train(config, run_dir, resume=True, progress=True, max_seconds=max_seconds)
    seconds = time.perf_counter() - start
    trained = Checkpoint(
        config=config, graphdef=result.graphdef, params=result.params, step=result.step
    )
    return trained, seconds


def _differences(saved: dict, wanted: dict, prefix: str = "") -> list[str]:
    """``"field: saved -> wanted"`` for every field of two nested config dicts that differs."""
    out = []
    for key in sorted(set(saved) | set(wanted)):
        a, b = saved.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def module_command(script: str | Path, *args: str) -> list[str]:
    """``[python, "-m", "benchmarks.<name>", *args]``: the command that runs the benchmark
    ``script`` (its file, ``__file__``) as a module; run it with ``cwd=REPO_ROOT``."""
    return [sys.executable, "-m", f"benchmarks.{Path(script).stem}", *args]


def rerun_with_fast_allocator(script: str, argv: Sequence[str] | None) -> None:
    """Runs the benchmark ``script`` (its ``__file__``) again, as ``python -m
    benchmarks.<name>`` with the same options, with tcmalloc (or jemalloc) preloaded, as
    ``lpn-arc`` does (:func:`lpn_arc.allocator.reexec_with_fast_allocator`), when it was
    started from the command line (``argv`` None, as ``main()`` gets it there); returns when
    it already runs with one, none is installed or ``LPN_ARC_ALLOCATOR`` is set (``glibc``
    keeps glibc). The new process keeps the working directory, so ``benchmarks`` imports
    as it did."""
    if argv is None:
        from lpn_arc.allocator import reexec_with_fast_allocator

        reexec_with_fast_allocator(module_command(script, *sys.argv[1:]))


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (other processes skew timings on a shared box)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_info() -> dict[str, Any]:
    """What the numbers depend on: CPU, cores, library versions, device, allocator."""
    import jax
    import jaxlib

    devices = jax.devices()
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": _usable_cores(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "allocator": allocator(),
        "ld_preload": os.environ.get("LD_PRELOAD", ""),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_average": _load_average(),
    }


class Timing(NamedTuple):
    """Wall-clock seconds of ``repeats`` calls: the fastest, the median and the slowest."""

    min: float
    median: float
    max: float
    repeats: int
    times: tuple[float, ...]


def time_fn(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> Timing:
    """Times ``fn()`` (no arguments), waiting for its outputs with ``jax.block_until_ready``.

    ``warmup`` untimed calls come first (compilation, caches); then ``repeats`` timed calls.
    """
    import jax

    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    for _ in range(warmup):
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return Timing(min(times), statistics.median(times), max(times), repeats, tuple(times))


def time_interleaved(
    fns: dict[str, Callable[[], Any]], repeats: int = 5, warmup: int = 1
) -> dict[str, Timing]:
    """Like :func:`time_fn` for several functions, alternating them in every round.

    Round ``r`` times each function once, in turn, so slow phases of a shared machine hit
    every variant alike and ratios between them stay meaningful.
    """
    import jax

    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    for _ in range(warmup):
        for fn in fns.values():
            jax.block_until_ready(fn())
    times: dict[str, list[float]] = {label: [] for label in fns}
    for _ in range(repeats):
        for label, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[label].append(time.perf_counter() - start)
    return {
        label: Timing(min(t), statistics.median(t), max(t), repeats, tuple(t))
        for label, t in times.items()
    }


def record(
    name: str,
    variant: str,
    metric: str,
    value: float,
    unit: str,
    repeats: int = 1,
    min: float | None = None,
    median: float | None = None,
    max: float | None = None,
) -> dict[str, Any]:
    """One result row. ``min``/``median``/``max`` default to ``value`` (a single measurement)."""
    value = float(value)
    return {
        "name": str(name),
        "variant": str(variant),
        "metric": str(metric),
        "value": value,
        "unit": str(unit),
        "repeats": int(repeats),
        "min": value if min is None else float(min),
        "median": value if median is None else float(median),
        "max": value if max is None else float(max),
    }


def timing_record(
    name: str, variant: str, metric: str, timing: Timing, unit: str = "s", per: float = 1.0
) -> dict[str, Any]:
    """The row of a :class:`Timing`: its median, fastest and slowest call, each divided by
    ``per`` (the grids or tasks of one call, for seconds per grid or per task)."""
    return record(name, variant, metric, timing.median / per, unit, timing.repeats,
                  timing.min / per, timing.median / per, timing.max / per)  # fmt: skip


def rate_record(
    name: str, variant: str, metric: str, timing: Timing, work: float, unit: str
) -> dict[str, Any]:
    """The row of ``work`` units done per second by each call of a :class:`Timing` (steps or
    evaluations per second): the median call's rate, the slowest's as ``min``, the fastest's
    as ``max``."""
    return record(name, variant, metric, work / timing.median, unit, timing.repeats,
                  work / timing.max, work / timing.median, work / timing.min)  # fmt: skip


def sample_record(
    name: str, variant: str, metric: str, values: Sequence[float], unit: str = "s"
) -> dict[str, Any]:
    """The row of measurements taken elsewhere (seconds of calls in other processes, of
    HTTP requests): their median, with their number, smallest and largest."""
    median = statistics.median(values)
    return record(name, variant, metric, median, unit, len(values), min(values), median,
                  max(values))  # fmt: skip


def compile_timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """``(compiled, seconds)``: ``fn`` (``jax.jit`` of it, unless it is jitted already)
    lowered and compiled for ``args``, and the seconds that took."""
    import jax

    lowerable = fn if hasattr(fn, "lower") else jax.jit(fn)
    start = time.perf_counter()
    compiled = lowerable.lower(*args).compile()
    return compiled, time.perf_counter() - start


def compiled_memory(compiled: Any) -> dict[str, int]:
    """XLA's static memory analysis of a compiled program (``jit(f).lower(...).compile()``).

    Returns every ``*_in_bytes`` field of ``compiled.memory_analysis()`` plus
    ``"total_bytes" = argument + output + temp - alias`` (the buffers the program needs at
    once, by XLA's buffer assignment; deterministic, nothing is run).
    """
    stats = compiled.memory_analysis()
    if stats is None:
        raise RuntimeError("this backend provides no memory_analysis()")
    fields = {
        name: int(getattr(stats, name))
        for name in dir(stats)
        if name.endswith("_in_bytes") and not name.startswith("_")
    }
    for needed in ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes"):
        if needed not in fields:
            raise RuntimeError(f"memory_analysis() has no {needed}; fields: {sorted(fields)}")
    fields["total_bytes"] = (
        fields["argument_size_in_bytes"]
        + fields["output_size_in_bytes"]
        + fields["temp_size_in_bytes"]
        - fields.get("alias_size_in_bytes", 0)
    )
    return fields


def _check_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = list(rows)
    for row in rows:
        keys = tuple(row)
        rest = keys[len(ROW_KEYS) :]
        rest = rest[len(SEED_KEYS) :] if rest[: len(SEED_KEYS)] == SEED_KEYS else rest
        if keys[: len(ROW_KEYS)] != ROW_KEYS or not set(rest) <= set(DATA_KEYS):
            raise ValueError(
                f"row keys must be {ROW_KEYS}, then optionally {SEED_KEYS}, then any of "
                f"{DATA_KEYS}; got {keys}"
            )
    return rows


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def write_results(
    name: str,
    rows: Sequence[dict[str, Any]],
    seed: int,
    extra: dict[str, Any] | None = None,
    results_dir: str | Path | None = None,
) -> Path:
    """Writes ``<results_dir>/<name>.json`` (default ``benchmarks/results``); returns the path.

    ``extra`` adds benchmark-specific top-level keys; it may not replace the schema's keys.
    Non-finite floats are written as ``null``.
    """
    payload: dict[str, Any] = {
        "name": name,
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "seed": int(seed),
        "rows": _check_rows(rows),
    }
    for key, value in (extra or {}).items():
        if key in payload:
            raise ValueError(f"extra may not replace the schema key {key!r}")
        payload[key] = value
    out_dir = Path(results_dir) if results_dir is not None else RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(_json_safe(payload), indent=2) + "\n", encoding="utf-8")
    return path


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        if x == int(x) and abs(x) < 1e15:
            return f"{int(x):,}"
        if abs(x) >= 1000:
            return f"{x:,.1f}"
        return f"{x:.4g}"
    return str(x)


def print_table(rows: Sequence[dict[str, Any]], file: Any = None) -> None:
    """Prints the rows as an aligned table (value, unit, repeats, min/median/max)."""
    header = ("name", "variant", "metric", "value", "unit", "n", "min", "median", "max")
    lines = []
    for row in rows:
        spread = row["repeats"] > 1
        lines.append(
            (
                row["name"],
                row["variant"],
                row["metric"],
                _fmt(row["value"]),
                row["unit"],
                str(row["repeats"]),
                _fmt(row["min"]) if spread else "",
                _fmt(row["median"]) if spread else "",
                _fmt(row["max"]) if spread else "",
            )
        )
    widths = [max([len(h)] + [len(line[i]) for line in lines]) for i, h in enumerate(header)]
    numeric = {3, 5, 6, 7, 8}

    def fmt_line(cells):
        return "  ".join(
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(fmt_line(header), file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for line in lines:
        print(fmt_line(line), file=file)
