"""Benchmark: search efficiency — exact-match accuracy against the number of evaluations.

The question the LPN paper left open: on a trained model, how many objective evaluations
does each search method need for a given accuracy? On a PATTERN model trained with the
``quickstart`` recipe (or any run folder given with ``--checkpoint``), each method searches
every held-out task once with ``latentsearch.search(..., history=True)`` up to the largest
budget; the history gives the best latent after every step, so the latent a search stopped
after ``b`` evaluations would have returned is read off the same run for every budget ``b``
(exactly: gradient ascent with ``b - 1`` steps and a sampler with ``b - 1`` samples return
the same point). That latent is decoded greedily for the task's query input and compared
with the true output (top-1 exact match).

Methods (the paper's settings where it has them; a value-and-gradient counts as one
evaluation, as in the library):

- ``gradient``: Adam, lr 0.1, b2 0.9 (the paper's test-time gradient ascent);
- ``random``: independent Gaussian samples around the start, scale 0.5 (the paper's
  "Sample N"), one per step so every budget is reached;
- ``es``: antithetic evolution strategy, population 10, sigma 0.1, Adam lr 0.1 on the
  estimate (as ``lpn-arc eval --search es:P:K``);
- ``hybrid``: 32 samples (scale 0.5), then gradient ascent from the best 2;
- ``cma-es``: evosax's CMA-ES through ``ls.evosax_strategy``, population 10, initial
  standard deviation 0.5;
- ``langevin``: ``ls.langevin`` (MALA), step size 1e-3 at temperature 0.01 (the best of a
  6-point sweep of step size and temperature on 32 of these tasks, budget 200), one chain;
- ``gradient-map``: ``gradient`` on the log-likelihood plus the log-prior ``N(0, I)``
  (``ls.Anchor(1.0, "prior")``: MAP instead of maximum likelihood);
- ``gradient-posterior``: ``gradient`` anchored to the product of the specification pairs'
  posteriors and the prior (``ls.Anchor(1.0, "posterior")``), which keeps the search where
  the encoder put it.

Every method gets its budget as ``ls.infer(..., max_evaluations=...)``.

Each runs from the encoder's mean latent (``encoder``) and from the prior mean, zero
(``prior``). Writes ``results/efficiency.json`` (rows ``top1`` per method/start/budget,
and the seconds of each full run) and ``results/efficiency.png`` (``efficiency_quick.*``
with ``--quick``, so a quick run does not replace the full curve).

Without ``--checkpoint`` (a run folder or ``pretrained:NAME``) the model is trained here
(``--train-steps``; the full quickstart recipe by default) into
``benchmarks/results/runs/``, and reused by later runs with the same steps and seed.
``--quick`` evaluates the shipped ``pattern-6x6-grad1`` (the quickstart recipe, 900
steps, on the program-disjoint split) and trains nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from benchmarks import common

NAME = "efficiency"
BUDGETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
METHODS = (
    "gradient",
    "random",
    "es",
    "hybrid",
    "cma-es",
    "langevin",
    "gradient-map",
    "gradient-posterior",
)
STARTS = ("encoder", "prior")
HYBRID_SAMPLES = 32
ES_POPULATION = 10
QUICK_MODEL = "pretrained:pattern-6x6-grad1"
LATENT_DIM = 32  # the quickstart model's (CMA-ES is built for a fixed dimension)
CMA_STD = 0.5  # CMA-ES's initial standard deviation, the random search's scale
LANGEVIN_STEP = 1e-3  # MALA step size on the summed log-likelihood of the pairs
LANGEVIN_TEMPERATURE = 0.01  # the best of 6 (step, T) pairs on 32 of the tasks, budget 200
MAP_WEIGHT = 1.0  # weight of the log-density in the anchored objectives


def searcher_for(method: str):
    """``(searcher, anchor)`` of a method; the budget is ``infer(max_evaluations=...)``'s."""
    import jax.numpy as jnp
    import optax

    import latentsearch as ls

    adam = optax.adam(0.1, b2=0.9)
    if method == "gradient":  # 1 per step, plus the final iterate
        return ls.gradient_ascent(adam), None
    if method == "gradient-map":  # the same on log-likelihood + log-prior (MAP)
        return ls.gradient_ascent(adam), ls.Anchor(MAP_WEIGHT, "prior")
    if method == "gradient-posterior":  # the same anchored to the pairs' posterior product
        return ls.gradient_ascent(adam), ls.Anchor(MAP_WEIGHT, "posterior")
    if method == "random":  # the start, then 1 per step
        return ls.random_search(1, 0.5), None
    if method == "es":  # the start, then a population per step
        return ls.evolution_strategy(ES_POPULATION, 0.1, adam), None
    if method == "cma-es":  # evosax's CMA-ES: the start, a population per step, the mean
        from evosax.algorithms import CMA_ES

        cma = CMA_ES(population_size=ES_POPULATION, solution=jnp.zeros(LATENT_DIM))
        params = cma.default_params.replace(std_init=CMA_STD)
        return ls.evosax_strategy(cma, params), None
    if method == "langevin":  # MALA, 1 value-and-gradient per step
        return ls.langevin(LANGEVIN_STEP, temperature=LANGEVIN_TEMPERATURE), None
    if method == "hybrid":  # samples (prepare), then 2 refined points per step
        sampler = ls.random_search(HYBRID_SAMPLES, 0.5)
        return ls.hybrid(sampler, ls.gradient_ascent(adam), 2), None
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


def trained_model(args):
    """``(config, graphdef, params, description)``: the given run, or one trained here."""
    from lpn_arc.config import get_preset
    from lpn_arc.pretrained import load_checkpoint

    if not args.checkpoint and args.quick and not args.train_steps:
        args.checkpoint = QUICK_MODEL  # the quickstart recipe, trained in full and shipped
    if args.checkpoint:
        ckpt = load_checkpoint(args.checkpoint)
        described = {"checkpoint": str(args.checkpoint), "step": ckpt.step}
        return ckpt.config, ckpt.graphdef, ckpt.params, described
    steps = args.train_steps or get_preset("quickstart").steps
    config = dataclasses.replace(get_preset("quickstart"), steps=steps, seed=args.seed)
    config = dataclasses.replace(config, checkpoint_every=steps)
    run_dir = common.RESULTS_DIR / "runs" / f"quickstart-{steps}steps-seed{args.seed}"
    description = {"trained": str(run_dir), "recipe": "quickstart", "steps": steps}
    print(f"the quickstart recipe for {steps} steps in {run_dir}", file=sys.stderr)
    ckpt, seconds = common.trained_run(config, run_dir)
    if seconds is None:
        print(f"reused the model in {run_dir}", file=sys.stderr)
        return ckpt.config, ckpt.graphdef, ckpt.params, {**description, "reused": True}
    description["train_seconds"] = round(seconds, 1)
    return ckpt.config, ckpt.graphdef, ckpt.params, description


def make_runner(graphdef, method: str, max_budget: int):
    """A jitted ``(params, tasks, keys, start) -> (latents at budgets, evaluations)``."""
    import jax
    import jax.numpy as jnp
    from lpn_arc.model import encode_fn, generate_fn, log_likelihood_fn

    import latentsearch as ls

    encode, log_likelihood = encode_fn(graphdef), log_likelihood_fn(graphdef)
    generate = generate_fn(graphdef)
    searcher, anchor = searcher_for(method)
    budgets = jnp.asarray(BUDGETS)

    def one(params, task, key, from_prior):
        spec = jax.tree.map(lambda x: x[:-1], task)
        posterior = jax.vmap(lambda p: encode(params, p))(spec)
        # the prior start: the encoder's means replaced by the prior's, zero
        posterior = posterior._replace(mean=jnp.where(from_prior, 0.0, posterior.mean))
        result = ls.infer(
            params,
            log_likelihood,
            spec,
            key,
            posterior=posterior,
            searcher=searcher,
            max_evaluations=max_budget,
            anchor=anchor,
            history=True,
        )
        start = jnp.mean(posterior.mean, axis=0)
        h = result.history
        # the last history entry within each budget; below the first entry's cost, the
        # start itself (returning it costs no evaluation)
        index = jnp.sum(h.evaluations[None, :] <= budgets[:, None], axis=1) - 1
        reached = index >= 0
        index = jnp.maximum(index, 0)
        latents = jnp.where(reached[:, None], h.best_latents[index], start)
        spent = jnp.where(reached, h.evaluations[index], 0)
        grids, shapes = jax.vmap(
            lambda z: generate(params, z, task.inputs[-1], task.input_shapes[-1])
        )(latents)
        return grids, shapes, spent, result.num_evaluations

    return jax.jit(jax.vmap(one, in_axes=(None, 0, 0, None)))


def bench(args) -> tuple[list[dict], dict]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from lpn_arc.data import pattern_test_tasks

    config, graphdef, params, model_info = trained_model(args)
    num_tasks = args.tasks or (16 if args.quick else 64)
    max_budget = args.max_budget or (100 if args.quick else max(BUDGETS))
    budgets = [b for b in BUDGETS if b <= max_budget]
    tasks = jax.tree.map(jnp.asarray, pattern_test_tasks(config, num_tasks))
    truth, truth_shapes = (
        np.asarray(tasks.outputs[:, -1]),
        np.asarray(tasks.output_shapes[:, -1]),
    )
    rows, table = [], {}
    keys = jax.random.split(jax.random.key(args.seed), num_tasks)
    for method in args.methods or METHODS:
        begin = time.perf_counter()
        run = make_runner(graphdef, method, max_budget)
        run = run.lower(params, tasks, keys, jnp.bool_(False)).compile()
        rows.append(
            common.record(NAME, method, "compile_seconds", time.perf_counter() - begin, "s")
        )
        for start in STARTS:
            from_prior = jnp.bool_(start == "prior")
            begin = time.perf_counter()
            grids, shapes, spent, _total = jax.block_until_ready(
                run(params, tasks, keys, from_prior)
            )
            seconds = time.perf_counter() - begin
            grids, shapes = np.asarray(grids), np.asarray(shapes)
            for i, budget in enumerate(BUDGETS):
                if budget not in budgets:
                    continue
                valid_r = np.arange(truth.shape[1])[None, :, None] < truth_shapes[:, 0, None, None]
                valid_c = np.arange(truth.shape[2])[None, None, :] < truth_shapes[:, 1, None, None]
                inside = valid_r & valid_c
                same = np.all((grids[:, i] == truth) | ~inside, axis=(1, 2))
                exact = same & np.all(shapes[:, i] == truth_shapes, axis=1)
                accuracy = float(exact.mean())
                variant = f"{method}/{start}/budget{budget}"
                rows.append(common.record(NAME, variant, "top1", accuracy, "fraction"))
                rows.append(
                    common.record(
                        NAME, variant, "evaluations_used", float(np.mean(spent[:, i])), "evals"
                    )
                )
                table.setdefault(f"{method}/{start}", {})[budget] = accuracy
            rows.append(
                common.record(
                    NAME, f"{method}/{start}", "seconds_per_task", seconds / num_tasks, "s"
                )
            )
            print(
                f"{method:8s} {start:7s} {seconds:7.1f} s "
                + " ".join(f"{b}:{table[f'{method}/{start}'][b]:.2f}" for b in budgets),
                file=sys.stderr,
                flush=True,
            )
    extra = {
        "model": model_info,
        "tasks": num_tasks,
        "budgets": budgets,
        "table": table,
        "definitions": {
            "top1": "fraction of held-out tasks whose query output is decoded exactly from "
            "the best latent found within the budget",
            "evaluations_used": "mean evaluations the returned latent had cost (<= budget; "
            "ES and hybrid spend in blocks)",
            "seconds_per_task": "wall time of the whole run to the largest budget (search "
            "and the decoding at every budget), compilation excluded, per task",
        },
    }
    return rows, extra


def plot(table: dict, budgets: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = {method: f"C{i}" for i, method in enumerate(METHODS)}
    for key, accuracy in table.items():
        method, start = key.split("/")
        xs = [b for b in budgets if b in accuracy]
        ax.plot(
            xs,
            [100 * accuracy[b] for b in xs],
            marker="o",
            ms=3,
            color=colours[method],
            linestyle="-" if start == "encoder" else "--",
            label=f"{method} ({start} start)",
        )
    ax.set_xscale("log")
    ax.set_xlabel("objective evaluations per task (log scale)")
    ax.set_ylabel("top-1 exact match (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("search efficiency on held-out PATTERN tasks")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="16 tasks, budgets <= 100; the "
        "full run's model if present, else one trained 200 steps",
    )
    parser.add_argument("--checkpoint", help="evaluate this run folder or pretrained:NAME")
    parser.add_argument("--train-steps", type=int, help="steps of the quickstart recipe")
    parser.add_argument("--tasks", type=int, help="held-out tasks (default 64; 16 quick)")
    parser.add_argument("--max-budget", type=int, help="largest budget (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="training and search seed")
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        help="rerun only these methods and replace their rows in the existing results file",
    )
    args = parser.parse_args(argv)
    common.rerun_with_fast_allocator(__file__, argv)
    rows, extra = bench(args)
    name = f"{NAME}_quick" if args.quick else NAME  # a quick run keeps the full curve
    if args.methods:
        rows, extra = merge_into_previous(
            common.RESULTS_DIR / f"{name}.json", rows, extra, args.methods
        )
    path = common.write_results(name, rows, seed=args.seed, extra=extra)
    plot(extra["table"], extra["budgets"], common.RESULTS_DIR / f"{name}.png")
    print_summary(extra)
    print(f"wrote {path} and {common.RESULTS_DIR / f'{name}.png'}")
    return 0


def merge_into_previous(path: Path, rows: list[dict], extra: dict, methods: list[str]):
    """The previous results with the rows of ``methods`` replaced by this run's (same model,
    tasks and budgets, else an error: mixing them would compare different things)."""
    import json

    previous = json.loads(path.read_text())
    for key in ("model", "tasks", "budgets"):
        if previous.get(key) != extra[key] and key != "model":
            raise SystemExit(
                f"{path.name}: {key} {previous.get(key)} differs from this run's "
                f"{extra[key]}; rerun every method"
            )
    if previous["model"].get("trained") != extra["model"].get("trained"):
        raise SystemExit(f"{path.name} was measured on another model; rerun every method")
    kept = [r for r in previous["rows"] if r["variant"].split("/")[0] not in methods]
    table = {  # JSON made the budgets strings
        k: {int(b): a for b, a in v.items()}
        for k, v in previous["table"].items()
        if k.split("/")[0] not in methods
    }
    table.update(extra["table"])
    table = {k: table[k] for k in sorted(table, key=lambda k: METHODS.index(k.split("/")[0]))}
    reruns = [*previous.get("reruns", []), {"methods": methods, "utc": time.strftime("%FT%TZ")}]
    notes = previous.get("notes", [])
    return kept + rows, {**extra, "table": table, "reruns": reruns, "notes": notes}


def print_summary(extra: dict) -> None:
    """The accuracy-vs-budget table (percent), one row per method and start."""
    budgets = extra["budgets"]
    print("| method (start) | " + " | ".join(str(b) for b in budgets) + " |")
    print("|---|" + "---|" * len(budgets))
    for key, accuracy in extra["table"].items():
        method, start = key.split("/")
        cells = " | ".join(f"{100 * accuracy[b]:.1f}" for b in budgets)
        print(f"| {method} ({start}) | {cells} |")


if __name__ == "__main__":
    raise SystemExit(main())
