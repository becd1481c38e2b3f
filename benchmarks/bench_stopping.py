"""Stopping and over-fitting of test-time latent search on the shipped 6x6 PATTERN models.

Part 1 (``results/stopping.json``): Grad 20 and 100 with ``stop="none"`` and ``"exact"``:
top-1, pass@2, objective evaluations and seconds per query (median of 2 interleaved repeats
after a warm-up call on 8 tasks, so compilation is excluded). Part 2 (``results/overfit.json``
and ``.png``): top-1 against the budget under variants that change one factor, and two
remedies (``stop="exact"``; the latent that best predicts a left-out demonstration). Each
curve comes from ONE search per query with ``history=True``: the entry after ``K + 1`` steps
is the best of the iterates ``z_0..z_K``, exactly what a ``K``-step search returns (its
``finalize`` scores ``z_K``). Top-1 is read off the query's teacher-forced logits (greedy
decoding is exact iff every argmax is the target's, the test of ``stop="exact"``); both
shortcuts are checked per query against the direct ``evaluate_tasks`` runs of part 1.
Both parts: 128 held-out tasks x 4 pairs, each held out in turn (512 queries), start at the
mean of the encoder means, Adam lr 0.1 (b2 0.9) on the latent gradient clipped to norm 1.
``--cache DIR`` keeps finished pieces (``.npz``), so an interrupted run resumes;
``--parts stopping`` runs part 1 alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import common

MODELS = ("pattern-6x6-grad1", "pattern-6x6-mean")
BUDGETS = (0, 1, 5, 10, 20, 50, 100)
STOP_BUDGETS = (20, 100)
SEED = 0  # the evaluation key (gradient search from the mean start does not use it)
FACTORS = {"baseline": (0.1, "clip-adam", "mean"), "lr0.03": (0.03, "clip-adam", "mean"),
           "lr0.3": (0.3, "clip-adam", "mean"), "adam-noclip": (0.1, "adam", "mean"),
           "sum-norm": (0.1, "clip-adam", "sum")}  # (lr, optimizer, normalisation)  # fmt: skip
SUBSETS = tuple(itertools.combinations(range(4), 2))  # the 2-pair specifications of a task
# (specification pairs, target pairs scored along the search) of the queries of a task
FULL = [(tuple(j for j in range(4) if j != q), (q,)) for q in range(4)]  # holdout "all"
PAIRS = [(s, tuple(j for j in range(4) if j not in s)) for s in SUBSETS]


def entry(budget: int, max_steps: int) -> int:
    return min(budget + 1, max_steps)  # the history entry of a budget-step search


@functools.cache  # loaded once: every variant sees the same parameters
def load(name: str, normalisation: str = "mean"):
    """``(config, graphdef, params)`` of a shipped model; the graph rebuilt with another
    ``cell_normalisation`` (same parameters) when asked."""
    import jax
    from lpn_arc.pretrained import load_pretrained
    from lpn_arc.training import init_params

    if normalisation == "mean":  # the shipped models' own
        ckpt = load_pretrained(name)
        return ckpt.config, ckpt.graphdef, ckpt.params
    config, _, params = load(name)
    model = dataclasses.replace(config.model, cell_normalisation=normalisation)
    config = dataclasses.replace(config, model=model)
    return config, jax.eval_shape(lambda: init_params(config))[0], params


def cached(folder: str | None, key: str, compute) -> dict:
    """``compute()`` (a dict of arrays), kept as ``folder/key.npz`` when a folder is given."""
    path = Path(folder) / f"{key}.npz" if folder else None
    if path is not None and path.exists():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    start = time.perf_counter()
    value = {k: np.asarray(v) for k, v in compute().items()}
    value["compute_seconds"] = np.asarray(time.perf_counter() - start)
    print(f"  {key}: {value['compute_seconds']:.0f} s", file=sys.stderr, flush=True)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **value)
    return value


def run_stopping(name: str, tasks: dict, args) -> dict:
    """Per-query results and times of the four (budget, stop) evaluations of one model."""
    import jax
    from lpn_arc.config import parse_search
    from lpn_arc.evaluation import evaluate_tasks

    _, graphdef, params = load(name)
    labels = [(k, s) for k in STOP_BUDGETS for s in ("none", *args.stops)]
    # one spec per budget: evaluate_tasks caches its compiled function per spec object
    specs = {k: parse_search(f"grad:{k}", lr=0.1, optimizer="clip-adam") for k in STOP_BUDGETS}

    def evaluate(k, stop, subset):
        return evaluate_tasks(graphdef, params, subset, specs[k], jax.random.key(SEED),
                              holdout="all", start="mean", stop=stop,
                              batch_size=args.batch_size)  # fmt: skip

    def compute():
        out = {}
        for k, stop in labels:  # warm-up: compiles the batch (4 queries per task)
            evaluate(k, stop, jax.tree.map(lambda value: value[: args.batch_size // 4], tasks))
        for repeat in range(args.repeats):  # the variants interleaved in every round
            for k, stop in labels:
                start = time.perf_counter()
                result = evaluate(k, stop, tasks)
                out[f"{k}-{stop}-seconds{repeat}"] = time.perf_counter() - start
                for metric in ("top1", "pass2", "evaluations"):
                    out[f"{k}-{stop}-{metric}"] = result.per_task[metric]
        return out

    rules = "" if tuple(args.stops) == ("exact",) else "-" + "-".join(args.stops)
    return cached(args.cache, f"stopping-{name}-{args.tasks}{rules}", compute)


def stopping_rows(name: str, res: dict, args, verdicts: dict) -> list:
    rows, verdict, repeats = [], verdicts.setdefault(name, {}), args.repeats
    for k in STOP_BUDGETS:
        for stop in ("none", *args.stops):
            at, tag = f"{name}/grad:{k}/stop={stop}", f"{k}-{stop}"
            for metric, unit in (("top1", "fraction"), ("pass2", "fraction"),
                                 ("evaluations", "per query")):  # fmt: skip
                value = res[f"{tag}-{metric}"].mean()
                rows.append(common.record("stopping", at, metric, value, unit))
            times = [float(res[f"{tag}-seconds{r}"]) / res[f"{tag}-top1"].size
                     for r in range(repeats)]  # fmt: skip
            rows.append(common.sample_record("stopping", at, "seconds_per_query", times))
        for stop in args.stops:
            ratio = res[f"{k}-{stop}-evaluations"].mean() / res[f"{k}-none-evaluations"].mean()
            tag = f"{name}/grad:{k}" + ("" if stop == "exact" else f"/stop={stop}")
            rows.append(common.record("stopping", tag, "evaluations_ratio", ratio,
                                      f"{stop}/none"))  # fmt: skip
            loss = res[f"{k}-none-top1"].mean() - res[f"{k}-{stop}-top1"].mean()
            verdict[f"grad:{k}" + ("" if stop == "exact" else f"/{stop}")] = {
                "evaluations_ratio": float(ratio), "top1_loss": float(loss),
                "accepted": bool(ratio <= 0.6 and loss <= 0)}  # fmt: skip
    return rows


def queries(tasks: dict, combos: list[tuple[tuple[int, ...], tuple[int, ...]]]) -> dict:
    """Per task (task-major) and combo ``(spec pairs, target pairs)``: both, pair format."""
    import jax

    def take(indices):
        def pick(x):
            picked = np.concatenate([x[:, list(idx)][:, None] for idx in indices], 1)
            return picked.reshape(-1, len(indices[0]), *x.shape[2:])

        return jax.tree.map(pick, tasks)

    return {"spec": take([c[0] for c in combos]), "targets": take([c[1] for c in combos])}


def history_fn(graphdef, spec, entries: tuple[int, ...]):
    """Jitted, per batch of queries: a search with ``history=True``; at every entry each
    target's log-likelihood and exactness, at ``entries`` whether the spec is exact."""
    import jax
    from flax import nnx
    from lpn_arc.model import encode_fn, log_likelihood_fn, precompute_fn
    from lpn_arc.search import build_search

    import latentsearch as ls

    encode, precompute = encode_fn(graphdef), precompute_fn(graphdef)
    searcher = build_search(spec).searcher

    def terms(params, z, pairs):  # per pair: (log-likelihood, exact)
        model = nnx.merge(graphdef, params)
        t = jax.vmap(lambda p: model.log_likelihood_terms(z, p))(pairs)
        return t["rows"] + t["cols"] + t["cells"], t["exact"]

    def one(params, spec_pairs, targets):
        result = ls.infer(params, log_likelihood_fn(graphdef), spec_pairs, jax.random.key(0),
                          encode=encode, starts=ls.Starts(aggregate="mean"),
                          searcher=searcher, num_steps=spec.num_steps,
                          precompute=precompute, history=True)  # fmt: skip
        path = result.history.best_latents
        prepared = jax.vmap(precompute, in_axes=(None, 0))(params, targets)
        ll, exact = jax.lax.map(lambda z: terms(params, z, prepared), path)
        prepared_spec = jax.vmap(precompute, in_axes=(None, 0))(params, spec_pairs)
        _, spec_exact = jax.lax.map(lambda z: terms(params, z, prepared_spec), path[entries,])
        return {"objective": result.history.best_scores, "ll": ll, "exact": exact,
                "spec_exact": spec_exact.all(axis=-1)}  # fmt: skip

    return jax.jit(jax.vmap(one, in_axes=(None, 0, 0)))


def run_history(name: str, factor: str, combos, tasks, args) -> dict:
    """The recorded searches of one model under one factor variant (see FACTORS)."""
    import jax
    from lpn_arc.config import parse_search

    lr, optimizer, norm = FACTORS[factor]

    def compute():
        _, graphdef, params = load(name, norm)
        spec = parse_search(f"grad:{args.max_steps}", lr=lr, optimizer=optimizer)
        fn = history_fn(graphdef, spec, tuple(entry(k, args.max_steps) for k in BUDGETS))
        data = queries(tasks, combos)
        num, size, pieces = data["spec"].inputs.shape[0], args.batch_size, []
        for first in range(0, num, size):
            rows = np.minimum(np.arange(first, first + size), num - 1)  # pad with the last
            batch = jax.tree_util.tree_map(lambda x, r=rows: x[r], data)
            out = jax.device_get(fn(params, batch["spec"], batch["targets"]))
            pieces.append({k: np.asarray(v)[: num - first] for k, v in out.items()})
        return {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}

    key = f"{name}-{factor}-spec{len(combos[0][0])}-{len(tasks.inputs)}-{args.max_steps}"
    return cached(args.cache, f"history-{key}", compute)


def overfit_curves(base: dict, pairs: dict, stop: dict, max_steps: int) -> dict:
    """Top-1 (and for stopping, evaluations) per budget of every derived variant."""
    ent = [entry(k, max_steps) for k in BUDGETS]
    exact = base["exact"][:, :, 0].reshape(-1, 4, max_steps + 1)  # (task, query, entry)
    num_tasks = exact.shape[0]
    curves = {"holdout-last": exact[:, 3, ent].mean(0)}
    # 2-pair specifications: pairs["exact"] is (task * 6, entry, 2 targets)
    p_exact = pairs["exact"].reshape(num_tasks, len(SUBSETS), max_steps + 1, 2)
    p_ll = pairs["ll"].reshape(num_tasks, len(SUBSETS), max_steps + 1, 2)
    curves["spec2-all"] = p_exact[:, :, ent].mean((0, 1, 3))
    last = [(i, PAIRS[i][1].index(3)) for i, s in enumerate(SUBSETS) if 3 not in s]
    curves["spec2-last"] = np.mean([p_exact[:, i, ent, slot].mean(0) for i, slot in last], 0)
    # leave-one-out: query q, left-out demonstration d, searched on the other two
    loo_pick, cv_steps, cv_chosen = [], [], []
    for k in ent:
        picks, chosen = [], []
        for q in range(4):
            cv = np.zeros((num_tasks, k))
            for d in (j for j in range(4) if j != q):
                i = SUBSETS.index(tuple(sorted(set(range(4)) - {q, d})))
                sq, sd = PAIRS[i][1].index(q), PAIRS[i][1].index(d)
                best = 1 + np.argmax(p_ll[:, i, 1 : k + 1, sd], axis=1)  # entries 1..k
                picks.append(p_exact[np.arange(num_tasks), i, best, sq])
                cv += p_ll[:, i, 1 : k + 1, sd]
            steps = np.argmax(cv, axis=1)  # entry steps + 1: the best of z_0..z_steps
            chosen.append(exact[np.arange(num_tasks), q, 1 + steps])
            cv_chosen.append(steps)
        loo_pick.append(np.mean(picks))
        cv_steps.append(np.mean(chosen))
    curves["loo-pick"], curves["cv-steps"] = np.array(loo_pick), np.array(cv_steps)
    curves["cv-steps-chosen_steps"] = np.array([np.mean(c) for c in np.split(
        np.array(cv_chosen), len(ent))])  # fmt: skip
    curves["stop-exact"], curves["stop-exact-evaluations"] = stop_curve(base, stop, max_steps)
    return curves


def stopped_at(base: dict, stop: dict, k: int, max_steps: int) -> tuple[np.ndarray, ...]:
    """Per query, ``stop="exact"`` with budget ``k`` from the direct Grad 100 run with
    stopping: a ``k``-step search stops at the same first exact iterate ``z_j`` when
    ``j <= k`` (after ``j + 1`` evaluations), else returns what the search without stopping
    returns (the history). ``(top-1, evaluations)``."""
    top = max(STOP_BUDGETS)
    evals, hit = stop[f"{top}-exact-evaluations"], stop[f"{top}-exact-top1"]
    if k == top:
        return hit, evals
    stopped = evals - 1 <= k  # at most ``top`` evaluations: it stopped, at z_(evals - 1)
    return (np.where(stopped, hit, base["exact"][:, entry(k, max_steps), 0]),
            np.minimum(evals, k + 1))  # fmt: skip


def stop_curve(base: dict, stop: dict, max_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 and mean evaluations of ``stop="exact"`` per budget (NaN beyond Grad 100)."""
    out = [stopped_at(base, stop, k, max_steps) if k <= min(max(STOP_BUDGETS), max_steps)
           else (np.nan, np.nan) for k in BUDGETS]  # fmt: skip
    return np.array([np.mean(a) for a, _ in out]), np.array([np.mean(e) for _, e in out])


def history_stats(res: dict, max_steps: int) -> dict:
    """Per budget: top-1, the specification reproduced exactly, both with the query wrong,
    the query's mean log-likelihood and the specification objective."""
    ent = [entry(k, max_steps) for k in BUDGETS]
    exact, spec_exact = res["exact"][:, ent, 0], res["spec_exact"]
    return {"top1": exact.mean(0), "spec_exact": spec_exact.mean(0),
            "spec_exact_query_wrong": (spec_exact & ~exact).mean(0),
            "query_ll": res["ll"][:, ent, 0].mean(0),
            "objective": res["objective"][:, ent].mean(0)}  # fmt: skip


def shortcut_checks(base: dict, stop: dict, max_steps: int) -> dict:
    """Queries on which a shortcut disagrees with the direct ``evaluate_tasks`` run."""
    checks = {}
    for k in (k for k in STOP_BUDGETS if k <= max_steps):
        pairs = {"none top1": (base["exact"][:, entry(k, max_steps), 0], stop[f"{k}-none-top1"])}
        if k < max(STOP_BUDGETS) <= max_steps:
            top1, evals = stopped_at(base, stop, k, max_steps)
            pairs["exact top1"] = (top1, stop[f"{k}-exact-top1"])
            pairs["exact evaluations"] = (evals, stop[f"{k}-exact-evaluations"])
        checks.update({f"grad:{k} {n}": int((a != b).sum()) for n, (a, b) in pairs.items()})
    return checks


def run_overfit(name: str, tasks: dict, stop: dict, args) -> tuple:
    """Every variant's curves (``{variant: {metric: per-budget values}}``), the checks of
    the shortcuts against the direct evaluations of part 1, and the compute seconds."""
    sub = tasks._replace(**{k: v[: args.factor_tasks] for k, v in tasks.arrays().items()})
    runs = {f: run_history(name, f, FULL, tasks if f == "baseline" else sub, args)
            for f in FACTORS}  # fmt: skip
    curves = {f: history_stats(res, args.max_steps) for f, res in runs.items()}
    if args.factor_tasks < args.tasks:  # the baseline on the factors' tasks, to compare
        first = {k: v[: 4 * args.factor_tasks] for k, v in runs["baseline"].items() if v.ndim}
        curves[f"baseline-first{args.factor_tasks}"] = history_stats(first, args.max_steps)
    pairs = run_history(name, "baseline", PAIRS, tasks, args)
    for variant, values in overfit_curves(runs["baseline"], pairs, stop, args.max_steps).items():
        at, metric = variant.rsplit("-", 1) if "_" in variant or "eval" in variant else (
            variant, "top1")  # fmt: skip
        curves.setdefault(at, {})[metric] = values
    spent = sum(float(r["compute_seconds"]) for r in (*runs.values(), pairs))
    return curves, shortcut_checks(runs["baseline"], stop, args.max_steps), spent


DERIVED = {
    "baseline-firstN": "the baseline on the N tasks the factor variants ran on",
    "holdout-last": "baseline, the last pair of each task only (holdout 'last')",
    "spec2-last": "the last pair from 2 of the 3 others (each dropped pair in turn)",
    "spec2-all": "every pair from 2 of the 3 others (each dropped pair in turn)",
    "stop-exact": "stop='exact': from the direct Grad 100 run with stopping + the history",
    "loo-pick": "search without demonstration d; decode the latent (<= K steps) best on d",
    "cv-steps": "decode the full search after the k <= K steps best on left-out pairs",
}
UNITS = {"top1": "fraction", "spec_exact": "fraction", "spec_exact_query_wrong": "fraction",
         "query_ll": "nats", "objective": "nats", "evaluations": "per query",
         "chosen_steps": "steps"}  # fmt: skip


def overfit_rows(name: str, curves: dict, args) -> list:
    few = {v for v in curves if v != "baseline" and (v in FACTORS or "first" in v)}
    return [{**common.record("overfit", f"{name}/{variant}/grad:{k}", metric, value, UNITS[
        metric]), "tasks": args.factor_tasks if variant in few else args.tasks}
            for variant, metrics in curves.items() for metric, values in metrics.items()
            for k, value in zip(BUDGETS, values, strict=True) if np.isfinite(value)]  # fmt: skip


def plot(curves_by_model: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    plt.switch_backend("Agg")
    fig, axes = plt.subplots(1, len(curves_by_model), figsize=(6 * len(curves_by_model) + 2, 5),
                             squeeze=False, sharey=True)  # fmt: skip
    for ax, (name, curves) in zip(axes[0], curves_by_model.items(), strict=True):
        for i, (variant, metrics) in enumerate(curves.items()):
            ax.plot(BUDGETS, 100 * np.asarray(metrics["top1"]), "--" if i >= 8 else "-",
                    marker="o", ms=3, lw=2.5 if variant == "baseline" else 1.2,
                    color=f"C{i % 8}" if i < 16 else "k", label=variant)  # fmt: skip
        ax.set_xscale("symlog", linthresh=1)
        ax.set(xticks=BUDGETS, xticklabels=BUDGETS, title=name, xlabel="Grad K (steps)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("top-1 exact match (%)")
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def markdown(curves: dict, metric: str = "top1", scale: float = 100) -> str:
    lines = ["| variant | " + " | ".join(f"Grad {k}" for k in BUDGETS) + " |",
             "|---" * (len(BUDGETS) + 1) + "|"]  # fmt: skip
    lines += [f"| {variant} | " + " | ".join(f"{scale * v:.1f}" for v in m[metric]) + " |"
              for variant, m in curves.items() if metric in m]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--tasks", type=int, default=128, help="held-out tasks (4 queries each)")
    parser.add_argument("--max-steps", type=int, default=max(BUDGETS), help="recorded steps")
    parser.add_argument("--factor-tasks", type=int, default=128, help="tasks of the factors")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats (part 1)")
    parser.add_argument("--batch-size", type=int, default=32, help="queries per call")
    parser.add_argument("--cache", default=None, help="folder keeping finished pieces")
    parser.add_argument("--stops", nargs="+", default=["exact", "exact:0.9", "exact:0.99"],
                        help="stop rules against none (part 1; part 2 reads exact)")  # fmt: skip
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["stopping", "overfit"],
        choices=["stopping", "overfit"],
        help="what to run (default both)",
    )
    args = parser.parse_args(argv)
    args.factor_tasks = min(args.factor_tasks, args.tasks)
    common.rerun_with_fast_allocator(__file__, argv)
    from lpn_arc.data import pattern_test_tasks

    start, seconds = time.perf_counter(), {}  # seconds: compute time, also of cached pieces
    stop_rows, over_rows, verdicts, checks, curves_by_model = [], [], {}, {}, {}
    for name in args.models:
        tasks = pattern_test_tasks(load(name)[0], args.tasks, 1.0)
        stop = run_stopping(name, tasks, args)
        seconds[f"{name} part 1"] = float(stop["compute_seconds"])
        stop_rows += stopping_rows(name, stop, args, verdicts)
        if "overfit" not in args.parts:
            continue
        curves, checks[name], seconds[f"{name} part 2"] = run_overfit(name, tasks, stop, args)
        curves_by_model[name] = curves
        over_rows += overfit_rows(name, curves, args)
        print(f"\n{name}: top-1 (%), then spec exact (%)\n{markdown(curves)}")
        print(markdown(curves, "spec_exact"))
    common.print_table(stop_rows)
    info = {"tasks": args.tasks, "queries": 4 * args.tasks, "holdout": "all", "start": "mean",
            "lr": 0.1, "optimizer": "clip-adam (clip_by_global_norm 1 + adam b2 0.9)",
            "batch_size": args.batch_size, "repeats": args.repeats,
            "wall_minutes": (time.perf_counter() - start) / 60,
            "compute_seconds": seconds}  # fmt: skip
    common.write_results("stopping", stop_rows, SEED, {"settings": info,
                         "acceptance": verdicts})  # fmt: skip
    if "overfit" not in args.parts:
        print(f"acceptance: {verdicts}", file=sys.stderr)
        return 0
    factors = {k: dict(zip(("lr", "optimizer", "cell_normalisation"), v, strict=True))
               for k, v in FACTORS.items()}  # fmt: skip
    path = common.write_results("overfit", over_rows, SEED, {
        "settings": {**info, "budgets": list(BUDGETS), "max_steps": args.max_steps,
                     "factor_tasks": args.factor_tasks}, "factors": factors,
        "derived_variants": DERIVED, "shortcut_checks": checks})  # fmt: skip
    plot(curves_by_model, path.with_suffix(".png"))
    print(f"acceptance: {verdicts}\nchecks: {checks}\nwall time "
          f"{(time.perf_counter() - start) / 60:.1f} min", file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
