"""Benchmark: this implementation against the official LPN code, side by side.

Runs the same work on both sides (``peer_worker.py``: the paper's Table-13 pattern model,
identical PATTERN tasks written once to an ``.npz``), every measurement in its own fresh
process, the two sides interleaved (ours, official, official, ours, ...), under each
allocator (glibc, and tcmalloc where installed; ``LD_PRELOAD`` is set before the process
starts):

- ``train_mean``: one training step, encoder-mean training, ``--train-tasks`` tasks x 4
  pairs (default 32), seconds per step;
- ``train_grad1``: the same with one gradient step inside the loss;
- ``search_grad100``: encode the 3 specification pairs, 100 steps of clipped Adam latent
  ascent, ``--search-tasks`` tasks at once (default 8), seconds per task;
- ``evaluate_grad100``: the same plus the greedy decoding of the two best latents (the
  whole evaluation), seconds per task.

Every finished process is appended to ``results/peer_processes.jsonl``, so an interrupted
run resumes where it stopped (``--fresh`` starts over). For each, the compile time (the
first call) is reported apart from the steady-state median
of the later calls, with the peak resident memory of the process. Writes
``results/peer.json``: rows per side (``variant="<measurement>/<allocator>/<side>"``,
metrics ``seconds``, ``compile_seconds``, ``peak_rss_gb``) and one ratio row per
measurement and allocator (``name="peer"``, ``metric="ours_over_official"``,
``variant="<measurement>/<allocator>"``).

The official side needs the user's checkout of ``clement-bonnet/lpn`` at commit 0adfe56
(``--official``) and a Python environment with its stack (``--official-python``): jax and
jaxlib 0.4.26, flax 0.8.4, optax 0.2.2, chex 0.1.86, numpy<2 and huggingface_hub (imported by
its data module); ``benchmarks/README.md`` says how to make both. Nothing of the official
code is copied into this repository: it is imported from that checkout at run time.
``make bench-peer OFFICIAL=... OFFICIAL_PYTHON=...``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import common

NAME = "peer"
MEASUREMENTS = ("train_mean", "train_grad1", "search_grad100", "evaluate_grad100")
WORKER = Path(__file__).resolve().parent / "peer_worker.py"


def write_tasks(path: Path, num: int, seed: int) -> None:
    """``num`` PATTERN tasks (10x10, 4x4 patterns, 4 pairs) as an ``.npz`` both sides read."""
    import numpy as np
    from lpn_arc.data import generate_pattern_tasks

    tasks, _ = generate_pattern_tasks(
        np.random.default_rng(seed), num, num_pairs=4, grid_size=10, pattern_size=4
    )
    np.savez(path, **tasks.arrays())


def load_processes(path: Path) -> dict[str, dict]:
    """The finished processes of earlier (interrupted) runs: ``{key: result}``."""
    if not path.exists():
        return {}
    done = {}
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            done[record["key"]] = record["result"]
    return done


def run_worker(
    side: str, measurement: str, allocator: str, tasks: Path, args, extra: list[str] = ()
) -> dict:
    """One fresh process of ``peer_worker.py`` (``extra``: more of its options); its JSON
    result. The worker runs as a plain script; the official side imports the official
    code from the checkout ``args.official``, which goes on its ``PYTHONPATH``."""
    python = sys.executable if side == "ours" else args.official_python
    command = [python, str(WORKER), "--side", side, "--measurement", measurement,
               "--tasks", str(tasks), "--repeats", str(args.repeats)]  # fmt: skip
    if side == "ours":
        command += ["--decoder-mask", args.decoder_mask]
    command += list(extra)
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if side == "official":
        env["PYTHONPATH"] = str(Path(args.official).resolve())  # its src package
        # lpn_arc's XLA defaults (set on import) are unknown to jax 0.4.26
        from lpn_arc.xla_flags import CPU_FLAGS

        flags = [flag for flag in env.pop("XLA_FLAGS", "").split() if flag not in CPU_FLAGS]
        if flags:
            env["XLA_FLAGS"] = " ".join(flags)
    library = ALLOCATORS[allocator]
    if library:
        env["LD_PRELOAD"] = library
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(
            f"{side} {measurement} ({allocator}) failed with status {out.returncode}:\n"
            f"{out.stderr[-3000:]}"
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarise(name: str, variant: str, results: list[dict]) -> tuple[list[dict], dict]:
    """Rows and a summary of one variant's worker processes: the median of every timed call
    (per step, or per task when the worker timed a batch of tasks), the median first call
    (``compile_seconds``) and the largest peak RSS. Also used by ``bench_runtime.py``."""
    per = results[0]["tasks"] if results[0]["per"] == "task" else 1
    times = [t / per for res in results for t in res["times_s"]]
    compiles = [res["compile_s"] for res in results]
    peak = max(res["peak_rss_bytes"] for res in results) / 1e9
    unit = "s/task" if per > 1 else "s/step"
    summary = {"seconds": statistics.median(times),
               "compile_seconds": statistics.median(compiles), "peak_rss_gb": peak}  # fmt: skip
    rows = [
        common.sample_record(name, variant, "seconds", times, unit),
        common.sample_record(name, variant, "compile_seconds", compiles, "s"),
        common.record(name, variant, "peak_rss_gb", peak, "GB"),
    ]
    return rows, summary


ALLOCATORS: dict[str, str | None] = {"glibc": None}


def add_allocators() -> None:
    """Adds tcmalloc to :data:`ALLOCATORS` where it is installed."""
    from lpn_arc.allocator import find_fast_allocator

    tcmalloc = find_fast_allocator()
    if tcmalloc and "tcmalloc" in tcmalloc:
        ALLOCATORS["tcmalloc"] = tcmalloc


def bench(args) -> tuple[list[dict], dict]:
    add_allocators()
    allocators = [a for a in args.allocators if a in ALLOCATORS]
    skipped = [a for a in args.allocators if a not in ALLOCATORS]
    rows, table = [], {}
    done = {} if args.fresh else load_processes(args.processes)
    if not done:
        args.processes.write_text("")
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            "train": Path(tmp) / "train.npz",
            "search": Path(tmp) / "search.npz",
        }
        write_tasks(files["train"], args.train_tasks, args.seed)
        write_tasks(files["search"], args.search_tasks, args.seed + 1)
        for allocator in allocators:
            for measurement in args.measurements:
                tasks = files["train" if measurement.startswith("train") else "search"]
                runs: dict[str, list[dict]] = {"ours": [], "official": []}
                for r in range(args.rounds):  # interleaved, the order alternating by round
                    for side in ("ours", "official") if r % 2 == 0 else ("official", "ours"):
                        key = f"{measurement}/{allocator}/{side}/{r}"
                        result = done.get(key)
                        if result is None:
                            result = run_worker(side, measurement, allocator, tasks, args)
                            with args.processes.open("a") as f:
                                f.write(json.dumps({"key": key, "result": result}) + "\n")
                        runs[side].append(result)
                        print(f"{measurement}/{allocator}/{side} round {r}: "
                              f"{json.dumps(result)}", file=sys.stderr, flush=True)  # fmt: skip
                summary = {}
                for side, results in runs.items():
                    new_rows, summary[side] = summarise(
                        NAME, f"{measurement}/{allocator}/{side}", results
                    )
                    rows += new_rows
                ratio = summary["ours"]["seconds"] / summary["official"]["seconds"]
                memory = summary["ours"]["peak_rss_gb"] / summary["official"]["peak_rss_gb"]
                rows.append(common.record(NAME, f"{measurement}/{allocator}",
                                          "ours_over_official", ratio, "x"))  # fmt: skip
                rows.append(common.record(NAME, f"{measurement}/{allocator}",
                                          "memory_ours_over_official", memory, "x"))  # fmt: skip
                table[f"{measurement}/{allocator}"] = {**summary, "ratio": ratio,
                                                       "memory_ratio": memory}  # fmt: skip
    extra = {
        "official": {"checkout": str(args.official), "python": str(args.official_python),
                     "commit": "0adfe56"},
        "config": {"model": "paper Table 13 (pattern, 10x10, 243,360 parameters)",
                   "our_decoder_mask": args.decoder_mask,
                   "train_tasks": args.train_tasks, "search_tasks": args.search_tasks,
                   "pairs": 4, "repeats": args.repeats, "rounds": args.rounds},
        "skipped_allocators": skipped,
        "table": table,
    }  # fmt: skip
    return rows, extra


def print_summary(extra: dict) -> None:
    """The peer table: each side's steady-state time, the ratio, compile and memory."""
    print("| measurement | allocator | ours | official | ours/official | compile ours / "
          "official (s) | peak RSS ours / official (GB) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for key, m in extra["table"].items():
        measurement, allocator = key.split("/")
        unit = "s/step" if measurement.startswith("train") else "s/task"
        o, f = m["ours"], m["official"]
        print(f"| {measurement} | {allocator} | {o['seconds']:.3g} {unit} | "
              f"{f['seconds']:.3g} {unit} | **{m['ratio']:.2f}** | "
              f"{o['compile_seconds']:.1f} / {f['compile_seconds']:.1f} | "
              f"{o['peak_rss_gb']:.2f} / {f['peak_rss_gb']:.2f} |")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", required=True, type=Path,
                        help="checkout of clement-bonnet/lpn at 0adfe56 (holds src/)")  # fmt: skip
    parser.add_argument("--official-python", required=True,
                        help="python of an environment with the official code's stack")  # fmt: skip
    parser.add_argument("--measurements", nargs="+", choices=MEASUREMENTS, default=MEASUREMENTS)
    parser.add_argument("--allocators", nargs="+", choices=("glibc", "tcmalloc"),
                        default=("glibc", "tcmalloc"))  # fmt: skip
    parser.add_argument("--train-tasks", type=int, default=32, help="tasks per training step")
    parser.add_argument("--search-tasks", type=int, default=8, help="tasks per search call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per process")
    parser.add_argument("--rounds", type=int, default=2, help="processes per side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--decoder-mask", choices=("official", "input-only"), default="official",
                        help="our decoder's mask (input-only: peer_input_only.json)")  # fmt: skip
    parser.add_argument("--fresh", action="store_true",
                        help="rerun every process (default: reuse those an interrupted run "
                        "recorded in results/peer_processes.jsonl)")  # fmt: skip
    args = parser.parse_args(argv)
    name = NAME if args.decoder_mask == "official" else f"{NAME}_input_only"
    args.processes = common.RESULTS_DIR / f"{name}_processes.jsonl"
    if not (args.official / "src" / "models" / "lpn.py").is_file():
        parser.error(f"--official {args.official}: no src/models/lpn.py (the official checkout)")
    rows, extra = bench(args)
    previous = common.RESULTS_DIR / f"{name}.json"
    if previous.exists():  # bench_time_to_accuracy.py's row stays until it runs again
        kept = json.loads(previous.read_text())["rows"]
        rows += [r for r in kept if r["variant"].startswith("time_to_accuracy/")]
    path = common.write_results(name, rows, seed=args.seed, extra=extra)
    print_summary(extra)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
