"""Named training presets: the paper's tables, the official configuration and CPU recipes."""

from __future__ import annotations

import dataclasses

from lpn_arc.config.data import DataConfig
from lpn_arc.config.model import ModelConfig
from lpn_arc.config.train import TrainConfig

__all__ = ["PRESETS", "get_preset"]


def _arc_mean(model: ModelConfig, **fields) -> TrainConfig:
    """Mean training on the demonstrations of the ARC-AGI-1 training tasks (4 pairs a task,
    augmented), AdamW 4e-4 (the official repository's), a checkpoint every 1000 steps;
    ``fields`` set the rest."""
    defaults = {"data": DataConfig(source="arc1-train", num_pairs=4), "lr": 4e-4,
                "train_search": "mean", "checkpoint_every": 1000}  # fmt: skip
    return TrainConfig(model=model, **{**defaults, **fields})


def _pattern() -> TrainConfig:
    """Paper Table 13: the PATTERN experiment (10x10 grids, 4x4 patterns, 243,360 params)."""
    return TrainConfig(model=ModelConfig.pattern())


def _pattern_ood() -> TrainConfig:
    """Paper Table 15: OOD pattern (train density 0.5; test 0.5 / 0.75 / 1.0; 100k steps).

    Encoder 4 layers, 8 heads x 8, MLP 2; decoder 2 layers, 8 heads x 4, MLP 1; latent 32:
    154,496 parameters (the paper's "1M" counts the optimiser state too).
    """
    # rows, columns, latent, encoder and decoder layers
    model = ModelConfig(10, 10, 32, 4, 2, num_heads=8, head_dim=8, mlp_factor=2.0,
                        decoder_num_heads=8, decoder_head_dim=4,
                        decoder_mlp_factor=1.0)  # fmt: skip
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
    return _arc_mean(ModelConfig.arc_repo(), steps=500_000, batch_size=128, grad_accum=2)


def _arc_small() -> TrainConfig:
    """A 30x30 ARC model that trains on this 2-core CPU for smoke runs (not for accuracy).

    Two encoder and two decoder layers, 4 heads x 16, MLP 2, latent 32; batch 8 in four
    accumulated micro-batches of 2 tasks (one batch of 8 at 30 x 30 needs more than the
    24 GB here: the attention weights of 1805-token sequences); mean training on ARC-AGI-1
    training tasks with augmentation.
    """
    model = ModelConfig(30, 30, 32, 2, 2, num_heads=4, head_dim=16, mlp_factor=2.0)
    return _arc_mean(model, steps=200, batch_size=8, grad_accum=4, checkpoint_every=50,
                     log_every=5)  # fmt: skip


def _arc_cpu() -> TrainConfig:
    """The ARC model of this 2-core CPU (``make arc-study``): grids up to 10 x 10.

    On the 2-core development CPU its mean-training step of 16 tasks in the 10 x 10 bucket
    runs in 0.35 s alone on the machine (the 3,000 steps of the study took 49 minutes
    beside other jobs); a 20 x 20 or 30 x 30 bucket holds 4 or 9 times the tokens, and
    attention grows with their square: 4.8 s and 22.5 s per step (the latter in two
    micro-batches: 16 GB in one; ``python -m benchmarks.arc_cpu_study --parts sizing``), so
    two hours train about 20,000 steps on grids up to 10 x 10 and 320 on 30 x 30. The 192
    ARC-AGI-1 training tasks whose demonstrations all fit 10 x 10 are trained on (the others
    are listed in ``run.json``), with every pair augmented by one dihedral transform and
    colour permutation per task; mean training, then Grad-1 fine-tuning for the last 10% of
    the steps.
    """
    model = ModelConfig(10, 10, 32, 2, 2, num_heads=4, head_dim=16, mlp_factor=2.0,
                        decoder_mask="input-only")  # fmt: skip
    data = DataConfig(source="arc1-train", num_pairs=4, drop_larger_tasks=True)
    return dataclasses.replace(  # the quickstart's optimiser (AdamW 1e-3, cosine, batch 16)
        _quickstart(), model=model, data=data, steps=3000, warmup_steps=100,
        train_search="mean", finetune_search="grad:1", finetune_steps=300,
        checkpoint_every=250, log_every=50,
    )  # fmt: skip


def _arc_overfit() -> TrainConfig:
    """Paper Table 12 / section B.3 decoder validation: overfit ONE task (207,264 params).

    No encoder layers; decoder 3 layers, 6 heads x 16, MLP 1; latent 32; 30x30; batch 128,
    lr 4e-4, 10k steps, mean training, two accumulated micro-batches (as the official
    config). The paper sampled the task's re-arc generator; here the task's own demonstration
    pairs are sampled, without augmentation (``--rearc`` adds generated pairs; its test pair
    stays held out unless ``--include-test-pairs``).
    Pick the task with ``--task-ids`` (default 007bbfb7, the first of the paper's five).
    """
    model = ModelConfig(30, 30, 32, 0, 3, num_heads=6, head_dim=16, mlp_factor=1.0)
    data = DataConfig(source="arc1-train", task_ids="007bbfb7", augment=False, num_pairs=4)
    return _arc_mean(model, data=data, steps=10_000, batch_size=128, grad_accum=2)


PRESETS = {
    "pattern": _pattern,
    "pattern-ood": _pattern_ood,
    "quickstart": _quickstart,
    "arc-paper": _arc_paper,
    "arc-repo": _arc_repo,
    "arc-small": _arc_small,
    "arc-cpu": _arc_cpu,
    "arc-overfit": _arc_overfit,
}
"""Named presets: ``pattern`` (paper Table 13), ``pattern-ood`` (Table 15), ``quickstart``,
``arc-paper`` (Table 16), ``arc-repo`` (the official ``arc_train.yaml``), ``arc-small``
(CPU smoke runs), ``arc-cpu`` (the ARC study of this CPU, grids up to 10 x 10) and
``arc-overfit`` (Table 12)."""


def get_preset(name: str) -> TrainConfig:
    """Returns the preset ``name`` (see :data:`PRESETS`)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name]()
