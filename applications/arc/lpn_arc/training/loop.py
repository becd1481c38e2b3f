"""The training loop: :func:`train` runs (or resumes) a run folder, checkpointing as it goes."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import optax
from jax.sharding import NamedSharding, PartitionSpec

from lpn_arc.config import TrainConfig, config_to_dict
from lpn_arc.data import PaddedPairs, TrainingData, prefetch
from lpn_arc.training.checkpoints import (
    Checkpoint,
    checkpoint_manager,
    load_run,
    quarantine_checkpoints,
    save_checkpoint,
)
from lpn_arc.training.compiled import TrainSteps
from lpn_arc.training.errors import TrainingError
from lpn_arc.training.metrics import MetricsWriter
from lpn_arc.training.run_folder import atomic_write, write_config_json, write_run_json
from lpn_arc.training.signals import StopSignals
from lpn_arc.training.step import data_mesh, init_params, shard_batch

__all__ = ["TrainResult", "train"]


@dataclass
class TrainResult:
    """What :func:`train` returns.

    ``interrupted`` is True when the run stopped early on Ctrl-C (SIGINT) or SIGTERM, after
    writing a checkpoint of its last completed step.
    """

    graphdef: Any
    params: Any
    step: int
    seconds: float
    last_metrics: dict[str, float]
    interrupted: bool = False


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    max_seconds: float | None = None,
    stop_at: int | None = None,
    check_memory: bool = True,
    validate: Callable[[Any, Any], float] | None = None,
    log_lines: bool = False,
    tensorboard: bool = False,
) -> TrainResult:
    """Trains (or resumes) a run; checkpoints every ``config.checkpoint_every`` and at the end.

    The batch is sharded over all devices (a ``"data"`` mesh; parameters replicated), so
    the same call trains on one CPU, several GPUs, or several hosts after
    ``jax.distributed.initialize()`` (each process then loads its share of every batch).
    Batches are prepared in a background thread while the previous step runs.

    What can go wrong, and what happens:

    * Ctrl-C (SIGINT) or SIGTERM: the current step finishes, a checkpoint is written and
      the result has ``interrupted=True`` (a second Ctrl-C stops at once).
    * A non-finite loss or gradient norm: :class:`TrainingError`; the parameters of that
      step are not saved, the last good checkpoint is kept.
    * A process killed at any point (even while writing a checkpoint): ``resume=True``
      continues from the last complete checkpoint and gives exactly the parameters of an
      uninterrupted run (batches and keys are pure functions of the seed and the step).
    * An unreadable latest checkpoint (truncated, corrupted): resuming warns, moves it to
      ``corrupt_checkpoints/`` and continues from the one before.
    * A step that cannot fit in memory: :class:`MemoryLimitError` before the first step
      runs, naming XLA's estimate and the memory available (``check_memory=False`` skips).

    Args:
        config: the configuration (saved in every checkpoint).
        run_dir: the run folder (checkpoints, ``config.json``, ``run.json`` with the seed
            and package versions, metrics).
        resume: continue from the folder's latest checkpoint (its configuration must equal
            ``config``); without it, an existing checkpoint is an error.
        progress: show a tqdm progress bar with the loss and tasks per second.
        max_seconds: stop (with a checkpoint) after this much training time.
        stop_at: stop (with a checkpoint) after this step, e.g. to test resuming.
        check_memory: compare the compiled step's memory estimate with the memory
            available and fail fast when it does not fit.
        validate: ``validate(graphdef, params) -> top-1``, run every
            ``config.validate_every`` steps (:func:`lpn_arc.evaluation.validator`): its
            value is logged as ``validation_top1`` and the best checkpoint by it is kept in
            ``RUN/best`` (a run folder: ``--checkpoint RUN/best``).
        log_lines: print a plain line (step, loss, tasks per second, time left) at every
            metrics record, for logs without a progress bar.
        tensorboard: also write the metrics as TensorBoard events in ``RUN/tensorboard``
            (needs ``tensorboardX``: ``pip install 'lpn-arc[tensorboard]'``).

    Raises:
        TrainingError: on a non-finite loss (the last good checkpoint is kept) or a resume
            whose configuration differs.
        MemoryLimitError: when the step would not fit in memory.
        CheckpointError: when resuming and no checkpoint can be read.
    """
    mesh = data_mesh()  # first: a bad batch size or bad data fails before anything is written
    if config.batch_size % (mesh.size * config.grad_accum):
        raise ValueError(
            f"batch_size {config.batch_size} must be divisible by the {mesh.size} devices "
            f"times grad_accum {config.grad_accum}"
        )
    data = TrainingData(
        config, process_index=jax.process_index(), process_count=jax.process_count()
    )
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    steps = TrainSteps(config, mesh, check_memory=check_memory)  # the run's one optimiser
    manager, begin = _open_run(config, run_dir, resume, steps.optimizer)
    start = begin.step
    write_config_json(run_dir, config)
    write_run_json(run_dir, config, start, data.provenance)
    run = _Run(steps, run_dir, manager, begin)
    run.watch(
        validate=validate if config.validate_every else None,
        log_lines=log_lines,
        events=_event_writer(run_dir) if tensorboard else None,
        provenance=data.provenance,
    )
    last = stop_at if stop_at is not None else config.steps
    batches = prefetch((data.batch(s) for s in range(start, last)), size=2)
    bar = _progress_bar(config, start) if progress else None
    began = time.perf_counter()
    try:
        with StopSignals() as stop:
            run.steps_until(last, batches, stop, bar=bar, max_seconds=max_seconds, began=began)
    finally:
        batches.close()
        if bar is not None:
            bar.close()
        manager.close()
    seconds = time.perf_counter() - began
    return TrainResult(begin.graphdef, run.params, run.step, seconds, run.metrics, stop.requested)


def _open_run(
    config: TrainConfig, run_dir: Path, resume: bool, optimizer: optax.GradientTransformation
) -> tuple[Any, Checkpoint]:
    """The checkpoint manager and the :class:`Checkpoint` the run starts from: freshly
    initialised (step 0; the parameters from the seed or ``config.init_from``, the state of
    the run's ``optimizer``), or (``resume``) the latest readable checkpoint, whose
    configuration must equal ``config``; unreadable later steps are moved to
    ``corrupt_checkpoints/``."""
    manager = checkpoint_manager(run_dir, config.keep_checkpoints)
    if manager.latest_step() is None:
        graphdef, params = init_params(config)
        if config.init_from:
            params = _initial_params(config, params)
        fresh = Checkpoint(
            config=config,
            graphdef=graphdef,
            params=params,
            step=0,
            opt_state=optimizer.init(params),
        )
        return manager, fresh
    if not resume:
        manager.close()
        raise TrainingError(
            f"{run_dir} already holds checkpoints; pass --resume to continue it or choose "
            "another --out"
        )
    saved_steps = manager.all_steps()
    manager.close()
    saved = load_run(run_dir)
    if config_to_dict(saved.config) != config_to_dict(config):
        raise TrainingError(
            f"cannot resume {run_dir}: its configuration differs from the requested one"
        )
    quarantine_checkpoints(run_dir, [s for s in saved_steps if s > saved.step])
    return checkpoint_manager(run_dir, config.keep_checkpoints), saved


def _event_writer(run_dir: Path) -> Any:
    """A TensorBoard writer of ``RUN/tensorboard`` (the optional ``tensorboardX``)."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ValueError(
            "--tensorboard needs tensorboardX: pip install 'lpn-arc[tensorboard]'"
        ) from None
    return SummaryWriter(str(run_dir / "tensorboard"))


def _initial_params(config: TrainConfig, fresh: Any) -> Any:
    """The parameters of ``config.init_from``, which must have the architecture of ``fresh``."""
    source = load_run(config.init_from)
    if source.config.model != config.model:
        raise TrainingError(
            f"init_from {config.init_from}: its model differs from this run's "
            f"({source.config.model} vs {config.model})"
        )
    if jax.tree.structure(source.params) != jax.tree.structure(fresh):
        raise TrainingError(f"init_from {config.init_from}: its parameters do not fit the model")
    return source.params


def _progress_bar(config: TrainConfig, start: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=config.steps, initial=start, desc="train", unit="step")


def _read_best(run_dir: Path) -> dict | None:
    path = run_dir / "best" / "best.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _log_line(step, steps, metrics, tasks_per_s, elapsed, first) -> str:
    """``step 300/900  loss 0.4210  tasks/s 41  validation 0.62  time left 4m10s``."""
    done = max(step - first, 1)
    left = elapsed / done * (steps - step)
    parts = [f"step {step}/{steps}", f"loss {metrics['loss']:.4f}", f"tasks/s {tasks_per_s:.0f}"]
    if "validation_top1" in metrics:
        parts.append(f"validation top-1 {metrics['validation_top1']:.3f}")
    parts.append(f"time left {int(left // 60)}m{int(left % 60):02d}s")
    return "  ".join(parts)


def _non_finite(out: dict[str, Any]) -> dict[str, float]:
    values = {k: float(v) for k, v in out.items()}
    return {k: v for k, v in values.items() if not math.isfinite(v)}


class _Run:
    """A run between steps: its parameters and optimiser state (replicated on the mesh),
    the step, the last step checkpointed, its :class:`TrainSteps` and the metrics files."""

    def __init__(self, steps: TrainSteps, run_dir: Path, manager: Any, begin: Checkpoint) -> None:
        config, start = steps.config, begin.step
        self.config, self.run_dir, self.mesh, self.manager = config, run_dir, steps.mesh, manager
        self.steps, self.graphdef = steps, begin.graphdef
        self.metrics_writer = MetricsWriter(run_dir, keep_until=start)
        replicated = NamedSharding(steps.mesh, PartitionSpec())
        self.params, self.opt_state = jax.device_put((begin.params, begin.opt_state), replicated)
        self.step = start
        self._first_step = start
        self.saved_step = start if start else None
        self.metrics: dict[str, float] = {}
        self._base_key = jax.random.key(config.seed)
        self.validate, self.log_lines, self.events, self.provenance = None, False, None, {}
        self.best = _read_best(run_dir)

    def watch(self, *, validate, log_lines: bool, events: Any, provenance: dict) -> None:
        """What the run reports besides metrics files: validation (and the best checkpoint),
        plain log lines, TensorBoard events."""
        self.validate, self.log_lines, self.events = validate, log_lines, events
        self.provenance = provenance

    def steps_until(
        self,
        last: int,
        batches: Any,
        stop: StopSignals,
        *,
        bar: Any,
        max_seconds: float | None,
        began: float,
    ) -> None:
        """Runs steps up to ``last``: metrics every ``log_every``, a checkpoint every
        ``checkpoint_every``, at ``last``, on a stop signal and after ``max_seconds``."""
        config = self.config
        window = (began, 0)  # (start time, steps) of the current metrics record
        while self.step < last:
            out = self._one_step(next(batches))
            window = (window[0], window[1] + 1)
            if self.validate is not None and (
                self.step % config.validate_every == 0 or self.step == last
            ):
                out = {**out, "validation_top1": self._validation()}
            if self.step % config.log_every == 0 or self.step == last:
                window = self._record(out, window, began, bar)
            if bar is not None:
                bar.update(1)
            out_of_time = max_seconds is not None and time.perf_counter() - began > max_seconds
            stopping = stop.requested or out_of_time
            if self.step % config.checkpoint_every == 0 or self.step == last or stopping:
                save_checkpoint(
                    self.manager, self.step, self.params, self.opt_state, config,
                    {"time": time.time()},
                )  # fmt: skip
                self.saved_step = self.step
            if stopping:
                break

    def _one_step(self, local_batch: PaddedPairs) -> dict[str, Any]:
        """Runs one step on this process's share of the batch; keeps its new state only
        when its loss and gradient norm are finite (else :class:`TrainingError`)."""
        batch = shard_batch(self.mesh, local_batch)
        key = jax.random.fold_in(self._base_key, self.step)
        args = (self.params, self.opt_state, batch, key)
        step_fn = self.steps.compiled_step(self.graphdef, self.step, args)
        params, opt_state, out = step_fn(*args)
        bad = _non_finite({"loss": out["loss"], "grad_norm": out["grad_norm"]})
        if bad:
            values = ", ".join(f"{k}={v}" for k, v in _non_finite(out).items())
            kept = (
                f"the last good checkpoint (step {self.saved_step}) in "
                f"{self.run_dir / 'checkpoints'} is kept"
                if self.saved_step is not None
                else "no checkpoint had been written yet"
            )
            raise TrainingError(
                f"non-finite {' and '.join(bad)} at step {self.step + 1} ({values}); "
                f"stopping without saving it: {kept}. Try a lower --lr or --clip-norm"
            )
        self.params, self.opt_state = params, opt_state
        self.step += 1
        return out

    def _record(
        self, out: dict[str, Any], window: tuple[float, int], began: float, bar: Any
    ) -> tuple[float, int]:
        """Writes a metrics record of step ``self.step``; returns the next window."""
        window_start, window_steps = window
        now = time.perf_counter()
        tasks_per_s = window_steps * self.config.batch_size / max(now - window_start, 1e-9)
        self.metrics = {k: float(v) for k, v in out.items()}
        self.metrics_writer.write(
            {"step": self.step, **self.metrics, "tasks_per_s": tasks_per_s, "time": now - began}
        )
        if bar is not None:
            loss = self.metrics["loss"]
            bar.set_postfix(loss=f"{loss:.3f}", tasks_s=f"{tasks_per_s:.0f}")
        if self.log_lines:
            print(_log_line(self.step, self.config.steps, self.metrics, tasks_per_s, now - began,
                            self._first_step), flush=True)  # fmt: skip
        if self.events is not None:
            for name, value in self.metrics.items():
                self.events.add_scalar(name, value, self.step)
            self.events.flush()
        return now, 0

    def _validation(self) -> float:
        """Runs the validation; keeps ``RUN/best`` when it is the best so far."""
        top1 = float(self.validate(self.graphdef, self.params))
        if self.best is None or top1 > self.best["validation_top1"]:
            best_dir = self.run_dir / "best"
            manager = checkpoint_manager(best_dir, keep=1)
            try:
                save_checkpoint(manager, self.step, self.params, self.opt_state, self.config,
                                {"validation_top1": top1})  # fmt: skip
            finally:
                manager.close()
            write_config_json(best_dir, self.config)
            write_run_json(best_dir, self.config, self.step, self.provenance)
            self.best = {"step": self.step, "validation_top1": top1}
            atomic_write(best_dir / "best.json", json.dumps(self.best))
        return top1
