"""The ARC study of this CPU: a model trained on ARC-AGI-1 in two hours, scored honestly.

Parts (``--parts``, default all, in this order):

- ``sizing``: seconds per training step of the ``arc-cpu`` architecture (16 tasks, mean
  training) in each size bucket (10 x 10, 20 x 20, 30 x 30): why the study keeps grids up
  to 10 x 10.
- ``train``: the ``arc-cpu`` preset (``results/runs/arc-cpu-seed<S>``), resumable: a run
  stopped by ``--minutes`` continues where it stopped when the script runs again.
- ``a``: the test pairs of the training tasks (new inputs of programs trained on).
- ``b``: all 400 ARC-AGI-1 evaluation tasks, their demonstrations never trained on; the
  tasks with a grid larger than the model's 10 x 10 are answered with a 1 x 1 grid and
  scored wrong (counted).
- ``c``: test-time training: the same model trained further on the ARC-AGI-1 evaluation
  demonstrations (the leak guard refuses their test pairs), scored on their test pairs.

Every setting is scored at Grad 0 (``mean``), ``grad:K`` and ``sample:K`` (top-1 and
pass@2, averaged per task as the paper); each evaluation is cached in its run folder under
its settings. Writes ``results/arc_cpu.json`` (rows ``name="arc_cpu"``,
``variant="<a|b|c>/<data>/<search>"``, ``metric="top1"|"pass2"``, ``tasks``) beside the
paper's ARC-AGI-1 evaluation numbers (7.75% -> 15.5% with search, 178M parameters on TPU).

    make arc-study             # about 2 h of training and 1 h of evaluation here
    python benchmarks/arc_cpu_study.py --parts b --searches mean grad:20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import common  # benchmarks/common.py

PAPER = {
    "arc1-eval": {"grad:0": 0.0775, "grad:100 (with search)": 0.155},
    "note": "LPN paper, 178M parameters (44.6M weights), 100k steps on TPU v3",
}


def sizing(repeats: int = 2) -> list[dict]:
    """Seconds per mean-training step of the arc-cpu architecture at 30 x 30, per bucket."""
    import jax
    import numpy as np
    from lpn_arc.config import get_preset
    from lpn_arc.data import TaskSampler, load_tasks
    from lpn_arc.training import init_training, make_train_step

    base = get_preset("arc-cpu")
    model = dataclasses.replace(base.model, max_rows=30, max_cols=30)
    config = dataclasses.replace(base, model=model, finetune_steps=0)
    graphdef, params, optimizer, opt_state = init_training(config)
    step = jax.jit(make_train_step(graphdef, config, optimizer))
    sampler = TaskSampler(tasks=load_tasks("arc1-train"), num_pairs=4, ladder=(10, 20, 30))
    rng, found = np.random.default_rng(0), {}
    while len(found) < 3:
        batch = sampler.sample(rng, config.batch_size)
        found.setdefault(batch["inputs"].shape[-1], batch)
    rows = []
    for side, batch in sorted(found.items()):
        print(f"sizing: {side}x{side} bucket", file=sys.stderr, flush=True)

        def run(batch=batch):
            jax.block_until_ready(step(params, opt_state, batch, jax.random.key(0)))

        timing = common.time_fn(run, repeats=repeats if side < 30 else 1)
        variant = f"sizing/bucket={side}x{side}/batch16/mean"
        spread = (timing.repeats, timing.min, timing.median, timing.max)
        rows.append(
            common.record("arc_cpu", variant, "seconds_per_step", timing.median, "s", *spread)
        )
    return rows


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
            finetune_steps=self.args.ttt_steps // 10, init_from=str(self.base_dir()),
        )  # fmt: skip

    def base_dir(self) -> Path:
        return self.runs / f"arc-cpu-{self.args.steps}steps-seed{self.args.seed}"

    def ttt_dir(self) -> Path:
        return self.runs / f"arc-cpu-{self.args.steps}steps-seed{self.args.seed}-ttt-arc1-eval"

    def train(self, config, run_dir: Path):
        """The run (trained or resumed up to ``--minutes`` now), and its training seconds."""
        out = common.trained_run(config, run_dir, max_seconds=60 * self.args.minutes)
        config, graphdef, params, step, seconds = out
        record = run_dir / "study_train.json"
        spent = json.loads(record.read_text()) if record.exists() else {"seconds": 0.0}
        if seconds is not None:
            spent["seconds"] += seconds
            record.write_text(json.dumps(spent))
        if step < config.steps:
            raise SystemExit(
                f"{run_dir}: trained to step {step} of {config.steps} in this session's "
                f"--minutes; run the study again to continue it"
            )
        return graphdef, params, step, spent["seconds"]

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


def _trained_ids(run_dir: Path) -> set[str]:
    """The ARC task ids a run trained on (its provenance)."""
    record = json.loads((run_dir / "run.json").read_text())["data"]
    return {i for entry in record["sources"] for i in entry["task_ids"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=["sizing", "a", "b", "c"],
                        choices=["sizing", "a", "b", "c"])  # fmt: skip
    parser.add_argument("--steps", type=int, default=3000, help="training steps (arc-cpu)")
    parser.add_argument("--ttt-steps", type=int, default=800, help="steps of setting c")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=120.0, help="time cap per session")
    parser.add_argument("--searches", nargs="+", default=["mean", "grad:100", "sample:100"])
    args = parser.parse_args(argv)
    common.rerun_with_fast_allocator(__file__, argv)
    started = time.perf_counter()
    path = common.RESULTS_DIR / "arc_cpu.json"
    previous = json.loads(path.read_text()) if path.exists() else {"rows": []}
    rows = [r for r in previous["rows"] if r["variant"].startswith("sizing/")]
    if "sizing" in args.parts:
        rows = sizing()
    details = {}
    if set(args.parts) - {"sizing"}:
        study_rows, details = run_settings(Study(args), args.parts)
        rows += study_rows
    extra = {"study": details, "paper": PAPER, "searches": args.searches,
             "wall_minutes": (time.perf_counter() - started) / 60}  # fmt: skip
    print(common.write_results("arc_cpu", rows, seed=args.seed, extra=extra))
    common.print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
