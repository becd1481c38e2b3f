"""Orbax checkpoints of a run folder, with SHA-256 digests of their files and state.

A checkpoint holds the parameters, the optimiser state, the step and the configuration;
every loader (:func:`load_run` here, ``lpn_arc.pretrained.load_pretrained`` and
``load_checkpoint``) returns them as a :class:`Checkpoint`. An unreadable one (truncated,
corrupted, a checksum mismatch) is skipped with a
:class:`~lpn_arc.training.errors.CheckpointWarning` naming it, and the one before is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from lpn_arc.config import TrainConfig, config_from_dict, config_to_dict
from lpn_arc.training.errors import CheckpointError, CheckpointWarning
from lpn_arc.training.run_folder import atomic_write, run_info
from lpn_arc.training.step import init_params, make_optimizer

__all__ = [
    "Checkpoint",
    "checkpoint_manager",
    "load_run",
    "quarantine_checkpoints",
    "save_checkpoint",
]


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """A loaded model: what :func:`load_run`, ``lpn_arc.pretrained.load_pretrained`` and
    ``lpn_arc.pretrained.load_checkpoint`` return, read by name (it neither unpacks nor
    indexes; it is built by keyword).

    Attributes:
        config: the :class:`~lpn_arc.config.TrainConfig` the model was trained with.
        graphdef: the model's graph (``flax.nnx``), to merge with ``params``.
        params: the parameters (a pytree of arrays).
        step: the training step the parameters are from.
        opt_state: the optimiser state, restored by :func:`load_run` only (to resume a run);
            None for a shipped model and from ``load_checkpoint``, which load the
            parameters alone.

    Its ``repr`` shows the configuration and the step, not the arrays.

    Example:
        >>> from lpn_arc.pretrained import load_checkpoint
        >>> ckpt = load_checkpoint("pretrained:pattern-6x6-grad1")
        >>> ckpt.config.model.max_rows, ckpt.step, ckpt.opt_state is None
        (6, 900, True)
    """

    config: TrainConfig
    graphdef: Any = field(repr=False)
    params: Any = field(repr=False)
    step: int
    opt_state: Any = field(default=None, repr=False)


def checkpoint_manager(run_dir: Path, keep: int = 2) -> ocp.CheckpointManager:
    """The Orbax manager of ``RUN/checkpoints`` (created if missing; the last ``keep`` kept)."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    return ocp.CheckpointManager(run_dir.resolve() / "checkpoints", options=options)


def _host_array(x: Any) -> np.ndarray:
    if isinstance(x, jax.Array) and not x.is_fully_addressable:  # replicated, multi-host
        x = x.addressable_data(0)
    return np.asarray(x)


def _state_digest(state: Any) -> str:
    """SHA-256 of every leaf's dtype, shape and bytes: detects a checkpoint that restores
    without an error but with other values than were saved."""
    digest = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(state):
        array = _host_array(leaf)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


_FILE_DIGESTS = "lpn_arc_files.sha256.json"


def _file_digests(step_dir: Path) -> dict[str, str]:
    """SHA-256 of every file of a checkpoint step folder (but the digest file itself)."""
    digests = {}
    for path in sorted(step_dir.rglob("*")):
        if path.is_file() and path.name != _FILE_DIGESTS:
            with path.open("rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
            digests[path.relative_to(step_dir).as_posix()] = digest
    return digests


def _verify_files(step_dir: Path) -> None:
    """Checks a step's files against the digests written after it was saved, so that a
    truncated or corrupted file is found before Orbax reads it (its failed reads leave
    noise on stderr). Checkpoints written without digests are not checked here."""
    listing = step_dir / _FILE_DIGESTS
    if not listing.is_file():
        return
    try:
        expected = json.loads(listing.read_text())
    except ValueError:
        raise ValueError(f"{listing} is corrupted") from None
    found = _file_digests(step_dir)
    for name, digest in expected.items():
        if name not in found:
            raise ValueError(f"{step_dir / name} is missing")
        if found[name] != digest:
            raise ValueError(f"{step_dir / name} is truncated or corrupted (checksum mismatch)")


def save_checkpoint(
    manager: ocp.CheckpointManager,
    step: int,
    params: Any,
    opt_state: Any,
    config: TrainConfig,
    extra: dict[str, Any],
) -> None:
    """Saves step ``step`` (state and metadata, ``extra`` included) and waits for it; then
    writes the digests of its files, so a later read can tell a damaged file."""
    state = {"params": params, "opt_state": opt_state}
    meta = {
        "config": config_to_dict(config),
        "step": step,
        "state_sha256": _state_digest(state),
        "versions": run_info()["versions"],
        **extra,
    }
    manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            meta=ocp.args.JsonSave(meta),
        ),
        force=True,
    )
    manager.wait_until_finished()
    step_dir = Path(manager.directory) / str(step)
    if jax.process_index() == 0 and step_dir.is_dir():
        atomic_write(step_dir / _FILE_DIGESTS, json.dumps(_file_digests(step_dir), indent=1))


def _restore(manager: ocp.CheckpointManager, step: int) -> Checkpoint:
    _verify_files(Path(manager.directory) / str(step))
    meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    if not isinstance(meta, dict) or "config" not in meta or "step" not in meta:
        raise ValueError("its metadata has no configuration or step")
    config = config_from_dict(meta["config"])
    graphdef, params = jax.eval_shape(lambda: init_params(config))  # shapes only: no compute
    opt_state = jax.eval_shape(make_optimizer(config).init, params)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
        {"params": params, "opt_state": opt_state},
    )
    state = manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
    )["state"]
    expected = meta.get("state_sha256")  # absent in checkpoints of older versions
    if expected is not None and _state_digest(state) != expected:
        raise ValueError("its parameters do not match the checksum saved with them")
    return Checkpoint(
        config=config,
        graphdef=graphdef,
        params=state["params"],
        step=int(meta["step"]),
        opt_state=state["opt_state"],
    )


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def load_run(run_dir: str | Path, step: int | None = None) -> Checkpoint:
    """Loads a run folder's checkpoint: a :class:`Checkpoint` with its optimiser state.

    Without ``step``, the latest readable checkpoint: one that cannot be read (truncated
    or corrupted files, a checksum mismatch) is skipped with a :class:`CheckpointWarning`
    naming it, and the one before it is used.

    Raises:
        FileNotFoundError: when the folder has no checkpoint.
        CheckpointError: when no checkpoint (or the requested ``step``) can be read.
    """
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    if not ckpt_dir.is_dir():
        raise FileNotFoundError(f"no checkpoints in {run_dir} (expected {ckpt_dir})")
    manager = ocp.CheckpointManager(ckpt_dir.resolve())
    try:
        steps = sorted(manager.all_steps(), reverse=True) if step is None else [step]
        if not steps:
            raise FileNotFoundError(f"no complete checkpoint in {ckpt_dir}")
        failures = []
        for candidate in steps:
            try:
                loaded = _restore(manager, candidate)
            except Exception as err:  # any failure to read makes it unusable
                failures.append(f"step {candidate}: {_one_line(err)}")
                continue
            if failures:
                warnings.warn(
                    f"{ckpt_dir}: skipped unreadable checkpoint(s) ({'; '.join(failures)}); "
                    f"using step {candidate}",
                    CheckpointWarning,
                    stacklevel=2,
                )
            return loaded
        raise CheckpointError(f"no readable checkpoint in {ckpt_dir}: {'; '.join(failures)}")
    finally:
        manager.close()


def quarantine_checkpoints(run_dir: Path, steps: Sequence[int]) -> None:
    """Moves unreadable checkpoint steps out of ``checkpoints/`` (nothing is deleted)."""
    target = run_dir / "corrupt_checkpoints"
    for step in steps:
        source = run_dir / "checkpoints" / str(step)
        if not source.exists():
            continue
        target.mkdir(exist_ok=True)
        dest, n = target / str(step), 1
        while dest.exists():
            dest, n = target / f"{step}.{n}", n + 1
        os.replace(source, dest)
        warnings.warn(
            f"moved the unreadable checkpoint {source} to {dest}", CheckpointWarning, stacklevel=3
        )
