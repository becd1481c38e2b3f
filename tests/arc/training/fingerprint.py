"""The two seeded runs whose numbers ``tests/arc/fixtures/fingerprint.json`` pins.

Both draw their tasks from every PATTERN program (``pattern_split="none"``), as the code
that pinned them did. ``python -m tests.arc.training.fingerprint [--variant NAME]`` prints
one run's numbers as JSON; ``benchmarks/fingerprint_spread.py`` runs it under each
``--xla_cpu_max_isa`` level (the code XLA emits for older CPUs) to measure how far another
CPU moves them, and under the variants below to measure how far a real change moves them.
The tolerances of ``test_fingerprint.py`` sit between the two.

Variants (each a real change of the computation, not of its rounding):

- ``rope-freq``: the float32 run with ``rope_max_freq`` 0.1% higher;
- ``no-accumulation``: the bfloat16 run's batch of 4 in one pass instead of two micro-batches
  of 2 (the same data; another dropout draw and another order of summing the gradients);
- ``dropout``: the bfloat16 run with dropout 0.21 instead of 0.2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import jax
import numpy as np
from lpn_arc.config import DataConfig, TrainConfig, parse_search
from lpn_arc.data import pattern_test_tasks, training_batch
from lpn_arc.evaluation import evaluate_tasks
from lpn_arc.model import ModelConfig
from lpn_arc.training import init_training, make_train_step

FLOAT32 = TrainConfig(
    model=ModelConfig(
        5, 5, 8, 1, 1, num_heads=2, head_dim=8, mlp_factor=1.0, positions="rope",
        decoder_mask="input-only", dropout=0.1,
    ),
    data=DataConfig(grid_size=5, pattern_size=2, pattern_split="none"), steps=3, batch_size=4,
    warmup_steps=1, train_search="grad:1", seed=4,
)  # fmt: skip
"""Three Grad-1 training steps (RoPE, input-only mask, dropout), then mean and grad:5."""

BFLOAT16 = TrainConfig(
    model=ModelConfig(
        5, 5, 8, 1, 1, num_heads=2, head_dim=8, mlp_factor=1.0, dtype="bfloat16", dropout=0.2
    ),
    data=DataConfig(grid_size=5, pattern_size=2, pattern_split="none"), steps=3, batch_size=4,
    grad_accum=2, warmup_steps=1, train_search="mean", seed=5,
)  # fmt: skip
"""Three mean-training steps in bfloat16 with dropout and two accumulated micro-batches."""

EVAL_SEARCHES = ("mean", "grad:5")


def _with_model(config: TrainConfig, **changes) -> TrainConfig:
    return dataclasses.replace(config, model=dataclasses.replace(config.model, **changes))


_FASTER_ROPE = FLOAT32.model.rope_max_freq * 1.001
VARIANTS = {
    "rope-freq": ("float32", _with_model(FLOAT32, rope_max_freq=_FASTER_ROPE)),
    "no-accumulation": ("bfloat16", dataclasses.replace(BFLOAT16, grad_accum=1)),
    "dropout": ("bfloat16", _with_model(BFLOAT16, dropout=0.21)),
}  # fmt: skip


def train_steps(config: TrainConfig, *, repeat: int = 1):
    """The seeded training steps: ``(graphdef, [(params, losses, gradient norms)])``, one
    entry per repetition, each from the same start through the same compiled step."""
    graphdef, params0, optimizer, opt_state0 = init_training(config)
    step = make_train_step(graphdef, config, optimizer)
    runs = []
    for _ in range(repeat):
        params, opt_state, losses, norms = params0, opt_state0, [], []
        for s in range(config.steps):
            key = jax.random.fold_in(jax.random.key(config.seed), s)
            params, opt_state, out = step(params, opt_state, training_batch(config, s), key)
            losses.append(float(out["loss"]))
            norms.append(float(out["grad_norm"]))
        runs.append((params, losses, norms))
    return graphdef, runs


def float32_run(config: TrainConfig = FLOAT32) -> dict:
    """The float32 run's losses, and each search's evaluations, metrics, scores and shapes."""
    graphdef, [(params, losses, _)] = train_steps(config)
    tasks = pattern_test_tasks(config, 8)
    evals = {}
    for text in EVAL_SEARCHES:
        out = evaluate_tasks(graphdef, params, tasks, parse_search(text), jax.random.key(0))
        evals[text] = {
            "evaluations": out.metrics["evaluations"],
            "top1": out.metrics["top1"],
            "pixel": out.metrics["pixel"],
            "scores": np.asarray(out.scores).tolist(),
            "shapes": np.asarray(out.attempt_shapes).tolist(),
        }
    return {"losses": losses, "eval": evals}


def bfloat16_run(config: TrainConfig = BFLOAT16, *, repeat: int = 1) -> dict:
    """The bfloat16 run's losses and gradient norms (and with ``repeat > 1``, ``"replays"``:
    each repetition's numbers and final parameters)."""
    _, runs = train_steps(config, repeat=repeat)
    _, losses, norms = runs[0]
    out = {"bfloat16_losses": losses, "bfloat16_grad_norms": norms}
    return out if repeat == 1 else {**out, "replays": runs}


def run(variant: str | None = None) -> dict:
    """Both runs (``variant=None``), or the run that ``variant`` changes."""
    if variant is None:
        return {**float32_run(), **bfloat16_run()}
    kind, config = VARIANTS[variant]
    return float32_run(config) if kind == "float32" else bfloat16_run(config)


def float_numbers(numbers: dict) -> dict[str, np.ndarray]:
    """The run's floating-point numbers by dtype: ``{"float32": ..., "bfloat16": ...}``
    (the groups a run has), flattened in a fixed order."""
    groups = {
        "float32": [numbers.get("losses", [])]
        + [numbers["eval"][s]["scores"] for s in EVAL_SEARCHES if s in numbers.get("eval", {})],
        "bfloat16": [numbers.get(k, []) for k in ("bfloat16_losses", "bfloat16_grad_norms")],
    }
    flat = {k: np.concatenate([np.ravel(v) for v in vs]) for k, vs in groups.items()}
    return {k: v for k, v in flat.items() if v.size}


def relative_deviation(numbers: dict, pinned: dict) -> dict[str, float]:
    """The largest relative difference from the pinned numbers, per dtype group."""
    got, want = float_numbers(numbers), float_numbers(pinned)
    return {g: float(np.max(np.abs(v - want[g]) / np.abs(want[g]))) for g, v in got.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), default=None)
    print(json.dumps(run(parser.parse_args(argv).variant)))


if __name__ == "__main__":
    main()
