"""What can stop a training run: the errors and warnings of :mod:`lpn_arc.training`."""

from __future__ import annotations

__all__ = ["CheckpointError", "CheckpointWarning", "MemoryLimitError", "TrainingError"]


class TrainingError(RuntimeError):
    """Raised when training cannot go on (non-finite loss, mismatched resume...)."""


class CheckpointError(TrainingError):
    """No readable checkpoint: every one in the run folder is missing, truncated or corrupt."""


class MemoryLimitError(TrainingError):
    """The training step would need more memory than the machine has (an estimate)."""


class CheckpointWarning(UserWarning):
    """A checkpoint was unreadable and an earlier one is used instead."""
