"""Reproduce the paper's central result at CPU scale: training with search makes search work.

The LPN paper (Table 1) trains the PATTERN model with the encoder mean (``mean``, "Grad 0"
training), with one gradient step inside the loss (``grad:1``), with exact gradients through
that step (``grad:1:unrolled``, the paper's "Grad 1 ⋆⋆") and with the best of 5 samples
(``sample:5``), then evaluates each model with 0 to 100 test-time gradient steps and with 250
samples. Its OOD table (Table 6) trains at pattern density 0.5 and tests at 0.5, 0.75 and 1.0.

This script repeats both on a pattern variant a 2-core CPU trains in minutes: the quickstart
recipe (Table 13 architecture, 6x6 grids, 2x2 patterns, batch 16, AdamW 1e-3 with warm-up
and cosine decay, input-only decoder mask), every training method for the same number of
steps (the paper's protocol: each row of its tables is 20k steps), each seed a separate
run. Every model is evaluated on the same held-out tasks, every pair of a task predicted in
turn from the others (the paper's protocol), test-time Adam at lr 0.1 and samples at scale
0.5 as in the paper. Training draws only train programs and evaluation only test programs
(the program-disjoint split, ``lpn_arc.data.pattern.program_split``), and every row records
``seen_programs``, the fraction of its evaluated programs that training drew, computed by
generating the runs' training batches again.

Parts: ``table1`` writes ``results/table1.json`` and ``table1.png``; ``ood`` writes
``results/table6.json`` and ``table6.png``. Run folders go to ``results/runs/`` and are
reused when their saved configuration is the one asked for (another one is an error): a
finished run is not trained again, an interrupted one resumes, and each evaluation is cached
in the run folder (``reproduce_eval.json``) under every setting that changes its number
(search, lr, scale, start, optimiser, held-out protocol, tasks, density, test seed, split,
package versions), so adding a seed only costs that seed. ``make reproduce`` runs both
parts with the defaults (seeds 0 and 1 of each; about 2 hours here).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import common  # benchmarks/common.py

TABLE1_METHODS = ("mean", "grad:1", "grad:1:unrolled", "sample:5")
TABLE1_SEARCHES = ("mean", "grad:1", "grad:5", "grad:20", "grad:100", "sample:250")
OOD_METHODS = ("mean", "grad:1")
OOD_SEARCHES = ("mean", "grad:10", "grad:100")
OOD_TEST_DENSITIES = (0.5, 0.75, 1.0)
OOD_TRAIN_DENSITY = 0.5

# The paper's numbers (lpn-facts.md section 7.1 and 7.4): top-1 %, mean (std) over 3 seeds.
PAPER_TABLE1 = {
    "mean": {
        "mean": (3.2, 2.7),
        "grad:1": (3.6, 3.0),
        "grad:5": (18.8, 14.4),
        "grad:20": (52.5, 25.0),
        "grad:100": (67.5, 20.0),
        "sample:250": (3.2, 2.7),
    },
    "grad:1": {
        "mean": (8.6, 4.4),
        "grad:1": (44.6, 10.9),
        "grad:5": (85.4, 7.6),
        "grad:20": (98.4, 1.4),
        "grad:100": (99.5, 0.5),
        "sample:250": (10.2, 5.3),
    },
    "grad:1:unrolled": {
        "mean": (0.6, 0.1),
        "grad:1": (13.7, 3.0),
        "grad:5": (60.2, 7.5),
        "grad:20": (88.9, 6.0),
        "grad:100": (94.1, 3.8),
        "sample:250": (0.7, 0.2),
    },
    "sample:5": {
        "mean": (6.1, 4.4),
        "grad:1": (8.2, 6.5),
        "grad:5": (27.7, 21.6),
        "grad:20": (56.3, 27.5),
        "grad:100": (72.2, 21.2),
        "sample:250": (6.1, 4.4),
    },
}
PAPER_TABLE6 = {
    "mean": {
        0.5: {"mean": (30.2, 15.7), "grad:10": (72.8, 29.5), "grad:100": (82.2, 21.3)},
        0.75: {"mean": (7.6, 5.6), "grad:10": (51.3, 35.7), "grad:100": (62.8, 38.3)},
        1.0: {"mean": (0.3, 0.5), "grad:10": (18.8, 14.5), "grad:100": (41.1, 29.6)},
    },
    "grad:1": {
        0.5: {"mean": (26.6, 7.4), "grad:10": (98.0, 0.6), "grad:100": (99.2, 0.6)},
        0.75: {"mean": (7.4, 4.4), "grad:10": (93.1, 4.3), "grad:100": (97.7, 2.2)},
        1.0: {"mean": (0.0, 0.0), "grad:10": (59.9, 11.6), "grad:100": (88.0, 5.3)},
    },
}


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


def _summary(values: list[float]) -> tuple[float, float]:
    mean = statistics.mean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def _mean_std(row: dict) -> tuple[float, float]:
    """A row's mean over seeds and its standard deviation (as :func:`_row` wrote them)."""
    return row["value"], row["std"]


def _row(
    name: str, variant: str, values: list[float], seeds: list[int], tasks: int, seen: list[float]
) -> dict:
    """A result row: ``value`` the mean over seeds, plus ``std``, ``seeds``, ``per_seed``, the
    number of held-out tasks and ``seen_programs`` (the largest over the seeds' runs)."""
    mean, std = _summary(values)
    row = common.record(
        name,
        variant,
        "top1",
        mean,
        "fraction",
        repeats=len(values),
        min=min(values),
        median=statistics.median(values),
        max=max(values),
    )
    return {**row, "std": std, "seeds": list(seeds), "per_seed": list(values), "tasks": tasks,
            "seen_programs": max(seen)}  # fmt: skip


def run_table1(args) -> dict:
    """Trains every method x seed and evaluates each model with every test search."""
    per_seed: dict[str, dict[str, list[float]]] = {}
    seen: dict[str, list[float]] = {}
    seeds: dict[str, list[int]] = {}
    runs = []
    for seed in args.seeds:  # seed-major: an interrupted study has whole seeds done
        for method in args.methods:
            if method in args.first_seed_only and seed != args.seeds[0]:
                continue
            seeds.setdefault(method, []).append(seed)
            config = variant_config(args, method, seed, 1.0, (1.0,), args.tasks)
            run_dir = common.RESULTS_DIR / "runs" / run_name(args, "table1", method, seed, 1.0)
            print(f"table1: train={method} seed {seed} -> {run_dir}", file=sys.stderr, flush=True)
            run = Run(config, run_dir, args.minutes, shipped=model_name("table1", method))
            scores = {s: run.top1(s, 1.0, args.tasks) for s in TABLE1_SEARCHES}
            for search, value in scores.items():
                per_seed.setdefault(method, {}).setdefault(search, []).append(value)
            seen.setdefault(method, []).append(run.seen(1.0, args.tasks))
            runs.append(run.record(method, seed, scores, {"density=1": seen[method][-1]}))
            print(f"  top-1 {scores}, seen {seen[method][-1]}", file=sys.stderr, flush=True)
            if args.export and seed == args.seeds[0] and run.shipped is None:
                export_model(args, "table1", method, runs[-1], run)
    rows = [
        _row(
            "table1",
            f"train={method}/infer={search}",
            values,
            seeds[method],
            args.tasks,
            seen[method],
        )
        for method, by_search in per_seed.items()
        for search, values in by_search.items()
    ]
    return {"rows": rows, "runs": runs}


def run_ood(args) -> dict:
    """Trains at density 0.5; tests at 0.5, 0.75 and 1.0 with Grad 0 / 10 / 100."""
    per_seed: dict[str, dict[tuple[float, str], list[float]]] = {}
    seen: dict[tuple[str, float], list[float]] = {}
    runs = []
    for seed in args.ood_seeds:
        for method in args.ood_methods:
            config = variant_config(
                args, method, seed, OOD_TRAIN_DENSITY, OOD_TEST_DENSITIES, args.ood_tasks
            )
            name = run_name(args, "ood", method, seed, OOD_TRAIN_DENSITY)
            run_dir = common.RESULTS_DIR / "runs" / name
            print(f"ood: train={method} seed {seed} -> {run_dir}", file=sys.stderr, flush=True)
            run = Run(config, run_dir, args.minutes, shipped=model_name("ood", method))
            scores, run_seen = {}, {}
            for density in OOD_TEST_DENSITIES:
                run_seen[f"density={density:g}"] = run.seen(density, args.ood_tasks)
                seen.setdefault((method, density), []).append(run_seen[f"density={density:g}"])
                for search in OOD_SEARCHES:
                    value = run.top1(search, density, args.ood_tasks)
                    scores[f"density={density:g}/{search}"] = value
                    per_seed.setdefault(method, {}).setdefault((density, search), []).append(value)
            runs.append(run.record(method, seed, scores, run_seen))
            print(f"  top-1 {scores}, seen programs {run_seen}", file=sys.stderr, flush=True)
            if args.export and seed == args.ood_seeds[0] and run.shipped is None:
                export_model(args, "ood", method, runs[-1], run)
    rows = [
        _row(
            "table6",
            f"train={method}/test_density={density:g}/infer={search}",
            values,
            args.ood_seeds,
            args.ood_tasks,
            seen[(method, density)],
        )
        for method, by_key in per_seed.items()
        for (density, search), values in by_key.items()
    ]
    return {"rows": rows, "runs": runs}


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
    if run.step >= args.steps:
        return f"{args.steps} steps"
    return f"{run.step} of {args.steps} steps ({args.minutes:g}-minute cap)"


def _cell(mean: float, std: float) -> str:
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


def table1_markdown(rows: list[dict], methods, searches) -> str:
    """Ours beside the paper's, one line per training method and source."""
    by_variant = {r["variant"]: r for r in rows}
    head = "| training | source | " + " | ".join(searches) + " |"
    lines = [head, "|---|---|" + "---|" * len(searches)]
    for method in methods:
        ours = []
        for search in searches:
            stat = by_variant.get(f"train={method}/infer={search}")
            ours.append(_cell(stat["value"], stat["std"]) if stat else "-")
        paper = [f"{m:.1f} ± {s:.1f}" for m, s in (PAPER_TABLE1[method][x] for x in searches)]
        lines.append(f"| {method} | ours | " + " | ".join(ours) + " |")
        lines.append(f"| {method} | paper | " + " | ".join(paper) + " |")
    return "\n".join(lines)


def table6_markdown(rows: list[dict], methods) -> str:
    by_variant = {r["variant"]: r for r in rows}
    cols = [(d, s) for d in OOD_TEST_DENSITIES for s in OOD_SEARCHES]
    head = "| training | source | " + " | ".join(f"d{d:g} {s}" for d, s in cols) + " |"
    lines = [head, "|---|---|" + "---|" * len(cols)]
    for method in methods:
        ours = []
        for density, search in cols:
            stat = by_variant.get(f"train={method}/test_density={density:g}/infer={search}")
            ours.append(_cell(stat["value"], stat["std"]) if stat else "-")
        paper = [f"{m:.1f} ± {s:.1f}" for m, s in (PAPER_TABLE6[method][d][x] for d, x in cols)]
        lines.append(f"| {method} | ours | " + " | ".join(ours) + " |")
        lines.append(f"| {method} | paper | " + " | ".join(paper) + " |")
    return "\n".join(lines)


def _x_positions(searches) -> list[float]:
    steps = {"mean": 0, "grad:1": 1, "grad:5": 5, "grad:10": 10, "grad:20": 20, "grad:100": 100}
    return [steps.get(s, 250) for s in searches]


def plot_table1(rows: list[dict], methods, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_variant = {r["variant"]: r for r in rows}
    searches = [s for s in TABLE1_SEARCHES if s != "sample:250"]
    xs = range(len(searches))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for i, method in enumerate(methods):
        color = f"C{i}"
        means, stds = zip(
            *(_mean_std(by_variant[f"train={method}/infer={s}"]) for s in searches),
            strict=True,
        )
        axes[0].errorbar(
            xs,
            [100 * m for m in means],
            yerr=[100 * s for s in stds],
            marker="o",
            capsize=3,
            color=color,
            label=f"{method} training",
        )
        paper = [PAPER_TABLE1[method][s] for s in searches]
        axes[1].errorbar(
            xs,
            [m for m, _ in paper],
            yerr=[s for _, s in paper],
            marker="s",
            capsize=3,
            color=color,
            linestyle="--",
            label=f"{method} training",
        )
    for ax, title in zip(axes, ("ours (CPU variant)", "paper (Table 1)"), strict=True):
        ax.set_xticks(
            list(xs), [s.replace("grad:", "Grad ").replace("mean", "Grad 0") for s in searches]
        )
        ax.set_xlabel("test-time inference")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("top-1 exact match (%), mean ± std over seeds")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_table6(rows: list[dict], methods, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_variant = {r["variant"]: r for r in rows}
    fig, axes = plt.subplots(1, len(OOD_SEARCHES), figsize=(12, 3.8), sharey=True)
    for ax, search in zip(axes, OOD_SEARCHES, strict=True):
        for i, method in enumerate(methods):
            key = "train={}/test_density={:g}/infer={}"
            ours = [
                _mean_std(by_variant[key.format(method, d, search)]) for d in OOD_TEST_DENSITIES
            ]
            ax.errorbar(
                OOD_TEST_DENSITIES,
                [100 * m for m, _ in ours],
                yerr=[100 * s for _, s in ours],
                marker="o",
                capsize=3,
                color=f"C{i}",
                label=f"{method} training (ours)",
            )
            paper = [PAPER_TABLE6[method][d][search][0] for d in OOD_TEST_DENSITIES]
            ax.plot(
                OOD_TEST_DENSITIES,
                paper,
                linestyle="--",
                marker="s",
                color=f"C{i}",
                alpha=0.6,
                label=f"{method} training (paper)",
            )
        ax.set_title(search.replace("grad:", "Grad ").replace("mean", "Grad 0"))
        ax.set_xlabel("test pattern density (trained at 0.5)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("top-1 exact match (%)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _variant_info(args) -> dict:
    return {
        "recipe": "quickstart preset (lpn_arc.config.presets)",
        "grid_size": 6,
        "pattern_size": 2,
        "steps": args.steps,
        "batch_size": 16,
        "budget": "equal training steps for every method (the paper's protocol)",
        "tasks": args.tasks,
        "holdout": "all (every pair predicted in turn from the others)",
        "test_lr": 0.1,
        "sample_scale": 0.5,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["table1", "ood"],
        choices=["table1", "ood"],
        help="what to run (default both)",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1], help="training seeds (Table 1)"
    )
    parser.add_argument(
        "--ood-seeds", type=int, nargs="+", default=[0, 1], help="training seeds (OOD)"
    )
    parser.add_argument("--steps", type=int, default=900, help="training steps per run")
    parser.add_argument("--minutes", type=float, default=30.0, help="time cap per run")
    parser.add_argument("--tasks", type=int, default=128, help="held-out tasks (Table 1)")
    parser.add_argument("--ood-tasks", type=int, default=64, help="held-out tasks per density")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(TABLE1_METHODS),
        choices=list(TABLE1_METHODS),
        help="Table 1 training searches",
    )
    parser.add_argument(
        "--first-seed-only",
        nargs="*",
        default=[],
        choices=list(TABLE1_METHODS),
        help="Table 1 methods trained on the first seed only (their rows say so)",
    )
    parser.add_argument(
        "--ood-methods",
        nargs="+",
        default=list(OOD_METHODS),
        choices=list(OOD_METHODS),
        help="OOD training searches",
    )
    parser.add_argument(
        "--export",
        action="store_true",
        help="write the first seed's models into lpn_arc's shipped pretrained "
        "models (lpn-arc models), with their cards",
    )
    args = parser.parse_args(argv)
    common.rerun_with_fast_allocator(__file__, argv)

    start = time.perf_counter()
    if "table1" in args.parts:
        out = run_table1(args)
        extra = {
            "variant_info": _variant_info(args),
            "seeds": args.seeds,
            "runs": out["runs"],
            "paper": PAPER_TABLE1,
        }
        path = common.write_results("table1", out["rows"], seed=args.seeds[0], extra=extra)
        plot_table1(out["rows"], args.methods, common.RESULTS_DIR / "table1.png")
        print(table1_markdown(out["rows"], args.methods, TABLE1_SEARCHES))
        print(f"wrote {path}")
    if "ood" in args.parts:
        out = run_ood(args)
        paper = {m: {f"{d:g}": v for d, v in by_d.items()} for m, by_d in PAPER_TABLE6.items()}
        extra = {
            "variant_info": {
                **_variant_info(args),
                "tasks": args.ood_tasks,
                "train_density": OOD_TRAIN_DENSITY,
            },
            "seeds": args.ood_seeds,
            "runs": out["runs"],
            "paper": paper,
        }
        path = common.write_results("table6", out["rows"], seed=args.ood_seeds[0], extra=extra)
        plot_table6(out["rows"], args.ood_methods, common.RESULTS_DIR / "table6.png")
        print(table6_markdown(out["rows"], args.ood_methods))
        print(f"wrote {path}")
    print(f"wall time {(time.perf_counter() - start) / 60:.1f} min", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
