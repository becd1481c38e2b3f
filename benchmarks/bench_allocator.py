"""Benchmark: the ``malloc`` under XLA — glibc vs tcmalloc vs jemalloc.

XLA's CPU runtime allocates and frees large temporary buffers on every call; with glibc
malloc many of them go back to the kernel and come back as page faults. This benchmark runs
the same two workloads in a fresh process per allocator (``LD_PRELOAD`` must be set before
Python starts) and reports each time and its ratio to glibc:

- ``train_step``: one optimiser step of the lpn-arc PATTERN preset (Table 13, 10x10), batch
  32 tasks x 4 pairs, training search ``grad:1``;
- ``search``: test-time ``grad:100`` (Adam lr 0.1, b2 0.9) on the 3 specification pairs of
  8 tasks (``vmap``), seconds per task.

Allocators that are not installed are skipped and listed in the JSON's ``notes``
(Debian/Ubuntu: ``apt-get install libtcmalloc-minimal4 libjemalloc2``). The processes run
one after the other, ``--rounds`` times in turn, so drift of a shared machine hits each
alike. Writes ``results/allocator.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time

from benchmarks import common

NAME = "allocator"
SEARCH_TASKS = 8


def child(repeats: int) -> dict:
    """Runs in the measured process: times both workloads, returns seconds."""
    import jax
    import jax.numpy as jnp
    import optax
    from lpn_arc.config import get_preset
    from lpn_arc.data import pattern_test_tasks, training_batch
    from lpn_arc.model import log_likelihood_fn
    from lpn_arc.training import init_training, make_train_step

    import latentsearch as ls

    config = dataclasses.replace(get_preset("pattern"), batch_size=32, train_search="grad:1")
    graphdef, params, optimizer, opt_state = init_training(config)
    batch = training_batch(config, 0)
    key = jax.random.key(0)
    step = make_train_step(graphdef, config, optimizer).lower(params, opt_state, batch, key)
    step = step.compile()
    train = common.time_fn(lambda: step(params, opt_state, batch, key), repeats, warmup=1)

    log_likelihood = log_likelihood_fn(graphdef)
    tasks = pattern_test_tasks(config, SEARCH_TASKS)
    spec = jax.tree.map(lambda x: jnp.asarray(x[:, :-1]), tasks)
    searcher = ls.gradient_ascent(optax.adam(0.1, b2=0.9))

    def objective(z, params, pairs):
        return jnp.sum(jax.vmap(lambda pair: log_likelihood(params, z, pair))(pairs))

    @jax.jit
    def search(params, pairs, keys):
        return jax.vmap(
            lambda p, k: ls.search(
                searcher, objective, jnp.zeros(config.model.latent_dim), key=k, num_steps=100,
                args=(params, p), keep=1,
            ).latents
        )(pairs, keys)  # fmt: skip

    keys = jax.random.split(key, SEARCH_TASKS)
    found = common.time_fn(lambda: search(params, spec, keys), repeats, warmup=1)
    return {
        "allocator": common.allocator(),
        "train_step": list(train.times),
        "search": [t / SEARCH_TASKS for t in found.times],
    }


def run_child(name: str, library: str | None, repeats: int) -> dict:
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if library:
        env["LD_PRELOAD"] = library
    env["LPN_ARC_ALLOCATOR"] = name  # keeps lpn_arc from re-executing with another one
    command = common.module_command(__file__, "--child", "--repeats", str(repeats))
    start = time.perf_counter()
    out = subprocess.run(
        command, env=env, capture_output=True, text=True, check=False, cwd=common.REPO_ROOT
    )
    if out.returncode != 0:
        raise RuntimeError(f"the {name} process failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["allocator"] != name:
        raise RuntimeError(f"asked for {name} but the process ran {result['allocator']}")
    print(f"{name}: done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per process")
    parser.add_argument("--rounds", type=int, default=2, help="processes per allocator")
    parser.add_argument("--seed", type=int, default=0, help="recorded; data seeds are fixed")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.repeats)))
        return 0
    from lpn_arc.allocator import FAST_ALLOCATORS, find_allocator

    available = {"glibc": None}
    notes = []
    for name in FAST_ALLOCATORS:
        library = find_allocator(name)
        if library is None:
            notes.append(f"{name} is not installed; skipped")
        else:
            available[name] = library
    times: dict[str, dict[str, list[float]]] = {
        name: {"train_step": [], "search": []} for name in available
    }
    for _ in range(args.rounds):
        for name, library in available.items():
            result = run_child(name, library, args.repeats)
            for workload in ("train_step", "search"):
                times[name][workload] += result[workload]
    rows = []
    medians = {}
    for name, workloads in times.items():
        for workload, values in workloads.items():
            unit_metric = "seconds" if workload == "train_step" else "seconds_per_task"
            rows.append(common.sample_record(workload, name, unit_metric, values))
            medians[name, workload] = rows[-1]["median"]
    for name in available:
        if name == "glibc":
            continue
        for workload in ("train_step", "search"):
            rows.append(
                common.record(workload, f"glibc/{name}", "speedup",
                              medians["glibc", workload] / medians[name, workload], "x")
            )  # fmt: skip
    extra = {
        "libraries": available,
        "notes": notes,
        "definitions": {
            "speedup": "median glibc time / median time with the allocator (same run)",
            "train_step": "pattern preset, batch 32, grad:1 training search",
            "search": f"grad:100 on {SEARCH_TASKS} tasks (vmap), seconds per task",
        },
        "machine_note": "machine.allocator is the parent's; each row's variant names the "
        "allocator its process ran with (checked in the child)",
    }
    path = common.write_results(NAME, rows, seed=args.seed, extra=extra)
    common.print_table(rows)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
