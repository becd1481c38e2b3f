"""The trained models of ``reproduce_paper``: one run per training method and seed, reused
or resumed from its folder (or the shipped model it equals), its evaluations cached in the
folder (``reproduce_eval.json``), and its export as a shipped ``lpn_arc`` model.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from benchmarks import common
from benchmarks.reproduce_report import OOD_TRAIN_DENSITY

EVAL_SETTINGS = {"lr": 0.1, "scale": 0.5, "start": "mean", "optimizer": "clip-adam",
                 "attempt2": "distinct", "holdout": "all"}  # fmt: skip
"""Test-time inference of every evaluation: the paper's Adam lr 0.1 (clipped per task),
samples at scale 0.5, the start at the mean of the encoder means, every pair held out."""


def variant_config(args, method: str, seed: int, density: float, test_densities, tasks: int):
    """The quickstart recipe with training search ``method``, ``seed`` and pattern density."""
    from lpn_arc.config import get_preset

    base = get_preset("quickstart")
    data = dataclasses.replace(
        base.data, density=density, test_densities=tuple(test_densities), test_tasks=tasks
    )
    return dataclasses.replace(
        base,
        data=data,
        steps=args.steps,
        seed=seed,
        train_search=method,
        checkpoint_every=max(args.steps // 3, 1),
    )


def run_name(args, part: str, method: str, seed: int, density: float) -> str:
    flat = method.replace(":", "-")
    return f"{part}-6x6-p2-d{density:g}-{args.steps}steps-{flat}-seed{seed}"


class Run:
    """One trained model and its cached evaluations (``reproduce_eval.json``)."""

    def __init__(self, config, run_dir: Path, minutes: float, shipped: str | None = None):
        self.config, self.run_dir = config, run_dir
        self.cache_path = run_dir / "reproduce_eval.json"
        self.shipped = shipped if _is_shipped_run(config, run_dir, shipped) else None
        self.cache = json.loads(self.cache_path.read_text()) if self.cache_path.exists() else {}
        if self.shipped is not None:  # the shipped model is this run, finished: not trained again
            from lpn_arc.pretrained import load_pretrained, pretrained_card

            self.checkpoint = load_pretrained(self.shipped)
            run_dir.mkdir(parents=True, exist_ok=True)
            if "train_seconds" not in self.cache:
                card = pretrained_card(self.shipped)
                self.cache.update(train_seconds=card["training"]["seconds"], shipped=self.shipped)
                self._save()
            return
        self.checkpoint, seconds = common.trained_run(config, run_dir, max_seconds=60 * minutes)
        if seconds is not None:  # trained (or resumed) now: keep the time with the results
            self.cache["train_seconds"] = self.cache.get("train_seconds", 0.0) + seconds
            self._save()

    def record(self, method: str, seed: int, scores: dict[str, float], seen: dict) -> dict:
        """What the results file keeps of this run."""
        from lpn_arc.data import split_record

        return {
            "method": method,
            "seed": seed,
            "steps": self.checkpoint.step,
            **split_record(self.config),
            "seen_programs": seen,
            "train_seconds": self.cache.get("train_seconds"),
            "eval_seconds": sum(self.cache.get("eval_seconds", {}).values()),
            "run_dir": str(self.run_dir.relative_to(common.RESULTS_DIR)),
            "shipped_model": self.shipped,
            "top1": scores,
        }

    def _save(self) -> None:
        self.cache_path.write_text(json.dumps(self.cache, indent=2) + "\n")

    def _key(self, search: str, density: float, num_tasks: int) -> str:
        """The cache key: every setting that changes the number (the step too: a run resumed
        further is another model)."""
        import lpn_arc

        import latentsearch

        data = self.config.data
        return json.dumps(
            {"search": search, "density": density, "tasks": num_tasks, **EVAL_SETTINGS,
             "step": self.checkpoint.step, "test_seed": data.test_seed,
             "pattern_split": data.pattern_split,
             "lpn_arc": lpn_arc.__version__, "latentsearch": latentsearch.__version__},
            sort_keys=True,
        )  # fmt: skip

    def top1(self, search: str, density: float, num_tasks: int) -> float:
        """Top-1 exact match of ``search`` on ``num_tasks`` held-out tasks (cached)."""
        import jax
        from lpn_arc.config import parse_search
        from lpn_arc.data import pattern_test_tasks
        from lpn_arc.evaluation import evaluate_tasks

        key = self._key(search, density, num_tasks)
        if key not in self.cache.setdefault("top1", {}):
            tasks = pattern_test_tasks(self.config, num_tasks, density)
            spec = parse_search(search, lr=EVAL_SETTINGS["lr"], scale=EVAL_SETTINGS["scale"],
                                optimizer=EVAL_SETTINGS["optimizer"])  # fmt: skip
            start = time.perf_counter()
            out = evaluate_tasks(  # every pair held out in turn: the paper's protocol
                self.checkpoint.graphdef, self.checkpoint.params, tasks, spec, jax.random.key(0),
                start=EVAL_SETTINGS["start"], attempt2=EVAL_SETTINGS["attempt2"],
                holdout=EVAL_SETTINGS["holdout"],
            )  # fmt: skip
            self.cache["top1"][key] = out.metrics["top1"]
            self.cache.setdefault("eval_seconds", {})[key] = time.perf_counter() - start
            self._save()
        return self.cache["top1"][key]

    def seen(self, density: float, num_tasks: int) -> float:
        """The fraction of the evaluated programs that this run's training drew (cached)."""
        from lpn_arc.data import pattern_test_tasks, seen_programs

        key = json.dumps({"density": density, "tasks": num_tasks, "steps": self.checkpoint.step,
                          "test_seed": self.config.data.test_seed}, sort_keys=True)  # fmt: skip
        if key not in self.cache.setdefault("seen_programs", {}):
            tasks = pattern_test_tasks(self.config, num_tasks, density)
            record = seen_programs(self.config, self.checkpoint.step, tasks)
            self.cache["seen_programs"][key] = record["seen_programs"]
            self._save()
        return self.cache["seen_programs"][key]


def _is_shipped_run(config, run_dir: Path, name: str | None) -> bool:
    """Whether ``run_dir`` holds no run and the shipped model ``name`` is this run, finished:
    the same configuration (seed included) trained to ``config.steps``."""
    from lpn_arc.config import config_from_dict, config_to_dict
    from lpn_arc.pretrained import pretrained_card

    if name is None or (run_dir / "config.json").exists():
        return False
    try:
        card = pretrained_card(name)
    except ValueError:  # not shipped
        return False
    same = config_to_dict(config_from_dict(card["config"])) == config_to_dict(config)
    return same and int(card["step"]) >= config.steps


def model_name(part: str, method: str) -> str:
    """The shipped name of a study's model: ``pattern-6x6-grad1``, ``pattern-6x6-d0.5-mean``."""
    flat = {
        "mean": "mean",
        "grad:1": "grad1",
        "grad:1:unrolled": "grad1-unrolled",
        "sample:5": "sample5",
    }[method]
    return f"pattern-6x6-{flat}" if part == "table1" else f"pattern-6x6-d0.5-{flat}"


def train_command(args, part: str, method: str, seed: int) -> str:
    """The ``lpn-arc train`` command that trains the same model as this study's run."""
    command = (
        f"lpn-arc train --preset quickstart --train-search {method} --seed {seed} "
        f"--steps {args.steps} --checkpoint-every {max(args.steps // 3, 1)}"
    )
    if part == "ood":
        command += f" --density {OOD_TRAIN_DENSITY:g} --test-densities 0.5,0.75,1"
    return command + f" --test-tasks {args.tasks if part == 'table1' else args.ood_tasks}"


def export_model(args, part: str, method: str, run_info: dict, run: Run) -> None:
    """Writes ``run`` as a shipped model of ``lpn_arc`` (``lpn-arc models``) with its card."""
    import jax
    from lpn_arc.config import parse_search
    from lpn_arc.data import pattern_test_tasks
    from lpn_arc.evaluation import evaluate_tasks
    from lpn_arc.pretrained import export_pretrained

    density = 1.0 if part == "table1" else OOD_TRAIN_DENSITY
    tasks = pattern_test_tasks(run.config, 16, density)
    check = evaluate_tasks(
        run.checkpoint.graphdef,
        run.checkpoint.params,
        tasks,
        parse_search("mean"),
        jax.random.key(0),
        holdout="last",
    )
    best = run_info["top1"]["grad:100" if part == "table1" else "density=0.5/grad:100"]
    label = {
        "mean": "the encoder mean (Grad 0)",
        "grad:1": "Grad 1",
        "grad:1:unrolled": "Grad 1 unrolled (no stop-gradient)",
        "sample:5": "Sample 5",
    }[method]
    card = {
        "summary": (
            f"PATTERN 6x6, 2x2 patterns, density {density:g}; {_steps_text(args, run)} of "
            f"{label} training (seed {run_info['seed']}); Grad 100 top-1 "
            f"{100 * best:.1f}% on held-out tasks"
        ),
        "training": {
            "command": train_command(args, part, method, run_info["seed"]),
            "study": f"make reproduce (benchmarks/reproduce_paper.py, part {part})",
            "seconds": run_info["train_seconds"],
            "hardware": common.cpu_model(),
        },
        "data": {
            "training": (
                f"PATTERN tasks of the train programs generated online "
                f"(lpn_arc.data.generate_pattern_tasks: 6x6 grids, 2x2 patterns, density "
                f"{density:g}, 4 pairs) from the run's seed; no ARC data"
            ),
            "held_out": (
                "pattern_test_tasks(config): test programs only, generated from "
                "data.test_seed; training never draws a test program"
            ),
            "split": run_info["split"],
            "split_rule": run_info["rule"],
            "seen_programs": run_info["seen_programs"],
        },
        "results": {
            "metric": "top-1 exact match",
            "tasks": args.tasks if part == "table1" else args.ood_tasks,
            **EVAL_SETTINGS,
            "top1": run_info["top1"],
        },
        "check": {
            "search": "mean",
            "tasks": 16,
            "density": density,
            "holdout": "last",
            "start": "mean",
            "top1": check.metrics["top1"],
        },
    }
    folder = export_pretrained(run.run_dir, model_name(part, method), card)
    print(f"exported {folder}", file=sys.stderr, flush=True)


def _steps_text(args, run: Run) -> str:
    """``900 steps``, or ``496 of 900 steps (time cap)`` for a run its time cap cut short."""
    if run.checkpoint.step >= args.steps:
        return f"{args.steps} steps"
    return f"{run.checkpoint.step} of {args.steps} steps ({args.minutes:g}-minute cap)"
