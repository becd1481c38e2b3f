"""Training: the step, the loop, Orbax checkpoints, the metrics files and resource checks.

* :mod:`~lpn_arc.training.step`: the loss of a task (``latentsearch.lpn_loss``), AdamW with
  warm-up and clipping, micro-batch accumulation, bfloat16, ``jax.sharding``;
* :mod:`~lpn_arc.training.loop`: :func:`train`, resumable, stopped cleanly by Ctrl-C;
* :mod:`~lpn_arc.training.checkpoints`: Orbax checkpoints with digests, :func:`load_run`
  and the :class:`Checkpoint` every loader returns;
* :mod:`~lpn_arc.training.metrics`: ``metrics.jsonl`` and ``metrics.csv``;
* :mod:`~lpn_arc.training.run_folder`: ``config.json`` and ``run.json`` (:func:`run_info`);
* :mod:`~lpn_arc.training.compiled`: :class:`~lpn_arc.training.compiled.TrainSteps`, the
  one owner of a run's optimiser, training searches and compiled steps;
* :mod:`~lpn_arc.training.memory`: the memory a step needs and the memory available;
* :mod:`~lpn_arc.training.signals`: Ctrl-C and SIGTERM during training;
* :mod:`~lpn_arc.training.errors`: what can stop a run.

Training batches come from :mod:`lpn_arc.data` (:class:`lpn_arc.data.TrainingData`).
"""

from lpn_arc.training.checkpoints import Checkpoint, load_run
from lpn_arc.training.errors import (
    CheckpointError,
    CheckpointWarning,
    MemoryLimitError,
    TrainingError,
)
from lpn_arc.training.loop import TrainResult, train
from lpn_arc.training.run_folder import run_info
from lpn_arc.training.step import (
    TrainingSetup,
    data_mesh,
    init_params,
    init_training,
    make_optimizer,
    make_train_step,
    shard_batch,
    task_loss_fn,
)

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointWarning",
    "MemoryLimitError",
    "TrainResult",
    "TrainingError",
    "TrainingSetup",
    "data_mesh",
    "init_params",
    "init_training",
    "load_run",
    "make_optimizer",
    "make_train_step",
    "run_info",
    "shard_batch",
    "task_loss_fn",
    "train",
]
