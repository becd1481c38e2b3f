"""The training configuration (:class:`TrainConfig`) and its JSON form."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from typing import Any

from lpn_arc.config.data import DataConfig
from lpn_arc.config.model import ModelConfig
from lpn_arc.config.search import SearchSpec, parse_search

__all__ = ["TrainConfig", "config_from_dict", "config_to_dict"]


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
        init_from: a run folder whose latest parameters start this run
            instead of a fresh initialisation (its architecture must be this run's; the
            optimiser starts afresh), e.g. to train a model further on other data.
        checkpoint_every: steps between Orbax checkpoints (and one at the end).
        keep_checkpoints: how many of the latest checkpoints are kept.
        log_every: steps between metric records.
        validate_every: steps between held-out validations (0 = none): top-1 of
            ``validate_search`` on ``validate_tasks`` tasks, logged with the loss, and the
            best checkpoint by it kept in ``RUN/best`` (a run folder of its own).
        validate_tasks: tasks per validation.
        validate_search: the search of a validation.
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
    init_from: str = ""
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 50
    validate_every: int = 0
    validate_tasks: int = 32
    validate_search: str = "grad:5"

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "log_every", "grad_accum",
                     "keep_checkpoints", "validate_tasks"):  # fmt: skip
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
        if self.validate_every < 0:
            raise ValueError(f"validate_every must be >= 0; got {self.validate_every}")
        _ = self.searches  # parsed once and kept: raises on a malformed specification

    @functools.cached_property
    def searches(self) -> dict[str, SearchSpec]:
        """The configuration's search specifications, parsed once: ``{"train",
        "finetune", "validate"}`` (the training ones with ``search_lr``)."""
        return {
            "train": parse_search(self.train_search, lr=self.search_lr),
            "finetune": parse_search(self.finetune_search, lr=self.search_lr),
            "validate": parse_search(self.validate_search, lr=self.search_lr),
        }

    def search_at(self, step: int) -> SearchSpec:
        """The training search of optimiser step ``step`` (0-based).

        Example:
            >>> config = TrainConfig(model=ModelConfig.pattern(), train_search="grad:5",
            ...                      steps=10, finetune_steps=2, finetune_search="mean")
            >>> config.search_at(7).num_steps, config.search_at(8).num_steps
            (5, 0)
        """
        if step >= self.steps - self.finetune_steps:
            return self.searches["finetune"]
        return self.searches["train"]


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """A JSON-serialisable dict of the configuration."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_dict(payload: dict[str, Any]) -> TrainConfig:
    """Inverse of :func:`config_to_dict` (unknown keys are an error).

    A configuration saved before ``data.pattern_split`` existed trained on every PATTERN
    program, so it reads as ``pattern_split="none"``.
    """
    payload = dict(payload)
    try:
        model = ModelConfig(**payload.pop("model"))
        data_dict = dict(payload.pop("data"))
        data_dict["test_densities"] = tuple(data_dict.get("test_densities", (1.0,)))
        data_dict.setdefault("pattern_split", "none")  # saved before programs were split
        data = DataConfig(**data_dict)
        return TrainConfig(model=model, data=data, **payload)
    except (KeyError, TypeError) as err:
        raise ValueError(f"invalid saved configuration: {err}") from err
