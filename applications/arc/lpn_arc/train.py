"""Training: AdamW with warm-up and clipping, ``latentsearch.lpn_loss``, Orbax checkpoints."""

from __future__ import annotations

import csv
import json
import math
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import latentsearch as ls
from lpn_arc.config import TrainConfig, config_from_dict, config_to_dict
from lpn_arc.model import LPNModel, encode_fn, log_likelihood_fn, split_model
from lpn_arc.pattern import generate_pattern_tasks
from lpn_arc.searchspec import parse_search

__all__ = [
    "TrainingData",
    "TrainingError",
    "TrainResult",
    "data_mesh",
    "init_params",
    "load_run",
    "make_optimizer",
    "make_train_step",
    "pad_to_model",
    "pattern_test_tasks",
    "shard_batch",
    "train",
    "training_batch",
]


class TrainingError(RuntimeError):
    """Raised when training cannot go on (non-finite loss, mismatched resume...)."""


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    graphdef: Any
    params: Any
    step: int
    seconds: float
    last_metrics: dict[str, float]


def init_params(config: TrainConfig) -> tuple[Any, Any]:
    """Builds the model from ``config.seed``; returns ``(graphdef, params)``."""
    model = LPNModel(config.model, rngs=nnx.Rngs(config.seed))
    return split_model(model)


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Clip by global norm, then AdamW with a linear warm-up from ``lr / 100``."""
    warmup = max(config.warmup_steps, 1)
    if config.lr_schedule == "cosine":
        decay = optax.cosine_decay_schedule(config.lr, max(config.steps - warmup, 1), alpha=0.1)
    else:
        decay = optax.constant_schedule(config.lr)
    schedule = optax.join_schedules(
        [optax.linear_schedule(config.lr / 100, config.lr, warmup), decay], [warmup]
    )
    return optax.chain(
        optax.clip_by_global_norm(config.clip_norm),
        optax.adamw(schedule, weight_decay=config.weight_decay),
    )


def training_batch(config: TrainConfig, step: int) -> dict[str, np.ndarray]:
    """The batch of ``step``: a pure function of ``(seed, step)``, so resuming is exact."""
    return TrainingData(config).batch(step)


class TrainingData:
    """The training batches of a configuration, one process's share of each step.

    Step ``s``'s batch is a pure function of ``(config.seed, s)`` (and of the process index
    when several processes share the batch), so a resumed run sees the same data as an
    uninterrupted one. PATTERN tasks are generated; ARC tasks are sampled (and augmented)
    by :class:`lpn_arc.data.TaskSampler` from the files loaded once here.

    Args:
        config: the training configuration.
        process_index: this process (``jax.process_index()``).
        process_count: the number of processes sharing each batch.

    Raises:
        ValueError: if ``batch_size`` does not split over the processes, or the data cannot
            be loaded (``lpn_arc.data.DataError`` names the file, task and pair).
    """

    def __init__(self, config: TrainConfig, *, process_index: int = 0, process_count: int = 1):
        if config.batch_size % process_count:
            raise ValueError(
                f"batch_size {config.batch_size} does not split over {process_count} processes"
            )
        self.config = config
        self.process_index = process_index
        self.process_count = process_count
        self.local_batch_size = config.batch_size // process_count
        self.sampler = None if config.data.is_pattern else self._arc_sampler(config)

    @staticmethod
    def _arc_sampler(config: TrainConfig):
        from lpn_arc.data import TaskSampler, load_rearc, load_tasks

        data = config.data
        ids = data.task_id_list
        tasks = []
        if data.source:
            tasks = load_tasks(data.source)
            missing = sorted(set(ids) - {t.task_id for t in tasks})
            if missing and not data.rearc:  # with re-arc, ids may name re-arc pools only
                raise ValueError(f"task ids {missing} are not in {data.source}")
            if ids:
                tasks = [t for t in tasks if t.task_id in ids]
        rearc = None
        if data.rearc:
            rearc = load_rearc(data.rearc, task_ids=ids or None)
        return TaskSampler(
            tasks=tasks,
            rearc=rearc,
            num_pairs=data.num_pairs,
            max_rows=config.model.max_rows,
            max_cols=config.model.max_cols,
            augment=data.augment,
        )

    def batch(self, step: int) -> dict[str, np.ndarray]:
        """This process's ``(local_batch_size, N, R, C)`` share of step ``step``'s batch."""
        seed = [self.config.seed, step, 7]
        if self.process_count > 1:
            seed.append(self.process_index)
        rng = np.random.default_rng(seed)
        if self.sampler is not None:
            return self.sampler.sample(rng, self.local_batch_size)
        data = self.config.data
        tasks, _ = generate_pattern_tasks(
            rng,
            self.local_batch_size,
            num_pairs=data.num_pairs,
            grid_size=data.grid_size,
            pattern_size=data.pattern_size,
            density=data.density,
        )
        return pad_to_model(tasks, self.config)


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis (``"data"``) mesh over ``devices`` (default: all devices of all hosts)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), ("data",))


def shard_batch(mesh: Mesh, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """Places this process's share of a batch on the mesh, sharded along the task axis.

    With one process this is a plain sharded ``device_put``; with several (after
    ``jax.distributed.initialize()``) each contributes its rows to one global array.
    """
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    return {
        name: jax.make_array_from_process_local_data(sharding, value)
        for name, value in local_batch.items()
    }


def pad_to_model(tasks: dict[str, np.ndarray], config: TrainConfig) -> dict[str, np.ndarray]:
    """Zero-pads generated grids to the model's ``max_rows x max_cols``."""
    rows, cols = config.model.max_rows, config.model.max_cols
    out = dict(tasks)
    for name in ("inputs", "outputs"):
        grid = tasks[name]
        pad = [(0, 0)] * (grid.ndim - 2) + [(0, rows - grid.shape[-2]), (0, cols - grid.shape[-1])]
        out[name] = np.pad(grid, pad)
    return out


def pattern_test_tasks(
    config: TrainConfig, num_tasks: int | None = None, density: float | None = None
) -> dict[str, np.ndarray]:
    """The held-out PATTERN tasks of ``config`` (seed ``data.test_seed``), padded to the model.

    Args:
        config: a pattern configuration (its ``data`` gives grid, pattern size and pairs).
        num_tasks: how many (default ``data.test_tasks``).
        density: pattern density (default the last of ``data.test_densities``).
    """
    from lpn_arc.pattern import generate_pattern_tasks

    data = config.data
    tasks, _ = generate_pattern_tasks(
        np.random.default_rng(data.test_seed),
        num_tasks or data.test_tasks,
        num_pairs=data.num_pairs,
        grid_size=data.grid_size,
        pattern_size=data.pattern_size,
        density=data.test_densities[-1] if density is None else density,
    )
    return pad_to_model(tasks, config)


def make_train_step(
    graphdef: Any,
    config: TrainConfig,
    optimizer: optax.GradientTransformation,
    *,
    search: str | None = None,
    mesh: Mesh | None = None,
):
    """The jitted step ``(params, opt_state, batch, key) -> (params, opt_state, metrics)``.

    Task ``i`` of the batch gets the key ``split(key, batch_size)[i]`` whatever the number
    of micro-batches (``config.grad_accum``) or devices, so those change the result only by
    floating-point summation order.

    Args:
        graphdef: the model graph.
        config: the configuration (loss weights, batch size, accumulation).
        optimizer: from :func:`make_optimizer`.
        search: the training search (default ``config.train_search``).
        mesh: a ``"data"`` mesh (see :func:`data_mesh`): the batch is sharded over it and
            parameters and optimiser state are replicated; None = default placement.
    """
    spec = parse_search(search or config.train_search, lr=config.search_lr)
    accum = config.grad_accum
    encode = encode_fn(graphdef)
    log_likelihood = log_likelihood_fn(graphdef)

    def task_loss(params, task, key):
        return ls.lpn_loss(
            params,
            lambda p, pair: encode(p, pair),
            lambda p, z, pair: log_likelihood(p, z, pair),
            task,
            key,
            searcher=spec.searcher,
            num_steps=spec.num_steps,
            gradient_flow=spec.gradient_flow,
            prior_kl=config.prior_kl,
        )

    def batch_loss(params, batch, keys):
        losses, metrics = jax.vmap(task_loss, in_axes=(None, 0, 0))(params, batch, keys)
        return jnp.mean(losses), jax.tree_util.tree_map(jnp.mean, metrics)

    grad_fn = jax.value_and_grad(batch_loss, has_aux=True)

    def loss_and_grads(params, batch, key):
        keys = jax.random.split(key, config.batch_size)
        if accum == 1:
            return grad_fn(params, batch, keys)

        # Micro-batch m holds tasks m, m + accum, m + 2 accum, ...: a strided split keeps
        # each device's contiguous block of the sharded task axis on that device.
        def micro(x):
            return jnp.swapaxes(x.reshape(x.shape[0] // accum, accum, *x.shape[1:]), 0, 1)

        def body(total, xs):
            out = grad_fn(params, *xs)
            return jax.tree_util.tree_map(jnp.add, total, out), None

        xs = (jax.tree_util.tree_map(micro, batch), micro(keys))
        first = jax.tree_util.tree_map(lambda x: x[0], xs)
        rest = jax.tree_util.tree_map(lambda x: x[1:], xs)
        total, _ = jax.lax.scan(body, grad_fn(params, *first), rest)
        return jax.tree_util.tree_map(lambda x: x / accum, total)

    def step(params, opt_state, batch, key):
        (loss, metrics), grads = loss_and_grads(params, batch, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        metrics = {**metrics, "loss": loss, "grad_norm": optax.tree.norm(grads)}
        return params, opt_state, metrics

    if mesh is None:
        return jax.jit(step)
    replicated = NamedSharding(mesh, PartitionSpec())
    batch_sharding = NamedSharding(mesh, PartitionSpec("data"))
    return jax.jit(
        step,
        in_shardings=(replicated, replicated, batch_sharding, replicated),
        out_shardings=(replicated, replicated, replicated),
    )


def _manager(run_dir: Path, config: TrainConfig) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True)
    return ocp.CheckpointManager(run_dir.resolve() / "checkpoints", options=options)


def _save(manager, step, params, opt_state, config, extra) -> None:
    meta = {"config": config_to_dict(config), "step": step, **extra}
    manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave({"params": params, "opt_state": opt_state}),
            meta=ocp.args.JsonSave(meta),
        ),
        force=True,
    )
    manager.wait_until_finished()


def load_run(
    run_dir: str | Path, step: int | None = None
) -> tuple[TrainConfig, Any, Any, Any, int]:
    """Loads a run folder's checkpoint: ``(config, graphdef, params, opt_state, step)``.

    Raises:
        FileNotFoundError: when the folder has no checkpoint.
    """
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    if not ckpt_dir.is_dir():
        raise FileNotFoundError(f"no checkpoints in {run_dir} (expected {ckpt_dir})")
    manager = ocp.CheckpointManager(ckpt_dir.resolve())
    step = manager.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no complete checkpoint in {ckpt_dir}")
    meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    config = config_from_dict(meta["config"])
    graphdef, params = init_params(config)
    opt_state = make_optimizer(config).init(params)
    target = {"params": params, "opt_state": opt_state}
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
    state = manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
    )["state"]
    manager.close()
    return config, graphdef, state["params"], state["opt_state"], int(meta["step"])


class _MetricsWriter:
    """Appends metric records to ``metrics.jsonl`` and ``metrics.csv`` in the run folder."""

    def __init__(self, run_dir: Path, keep_until: int) -> None:
        self.jsonl = run_dir / "metrics.jsonl"
        self.csv = run_dir / "metrics.csv"
        # on resume, drop records written after the checkpoint we continue from
        records = []
        if self.jsonl.exists():
            for line in self.jsonl.read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    if record["step"] <= keep_until:
                        records.append(record)
        self.records = records
        self._rewrite()

    def _fields(self) -> list[str]:
        fields: dict[str, None] = {}
        for record in self.records:  # union in first-seen order (fine-tuning adds metrics)
            fields.update(dict.fromkeys(record))
        return list(fields)

    def _rewrite(self) -> None:
        with self.jsonl.open("w") as f:
            for r in self.records:
                f.write(json.dumps(r) + "\n")
        self._rewrite_csv()

    def _rewrite_csv(self) -> None:
        if not self.records:
            if self.csv.exists():
                self.csv.unlink()
            return
        with self.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._fields(), restval="")
            writer.writeheader()
            writer.writerows(self.records)

    def write(self, record: dict[str, float]) -> None:
        known = set(self._fields())
        self.records.append(record)
        with self.jsonl.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if len(self.records) == 1 or not set(record) <= known:
            self._rewrite_csv()  # a new column: rewrite with the wider header
            return
        with self.csv.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self._fields(), restval="").writerow(record)


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    max_seconds: float | None = None,
    stop_at: int | None = None,
) -> TrainResult:
    """Trains (or resumes) a run; checkpoints every ``config.checkpoint_every`` and at the end.

    The batch is sharded over all devices (a ``"data"`` mesh; parameters replicated), so
    the same call trains on one CPU, several GPUs, or several hosts after
    ``jax.distributed.initialize()`` (each process then loads its share of every batch).
    Batches are prepared in a background thread while the previous step runs.

    Args:
        config: the configuration (saved in every checkpoint).
        run_dir: the run folder (checkpoints, ``config.json``, metrics).
        resume: continue from the folder's latest checkpoint (its configuration must equal
            ``config``); without it, an existing checkpoint is an error.
        progress: show a tqdm progress bar with the loss and tasks per second.
        max_seconds: stop (with a checkpoint) after this much training time.
        stop_at: stop (with a checkpoint) after this step, e.g. to test resuming.

    Raises:
        TrainingError: on a non-finite loss (the last good checkpoint is kept) or a resume
            whose configuration differs.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    manager = _manager(run_dir, config)
    start = 0
    if manager.latest_step() is not None:
        if not resume:
            raise TrainingError(
                f"{run_dir} already holds checkpoints; pass --resume to continue it or choose "
                "another --out"
            )
        saved, graphdef, params, opt_state, start = load_run(run_dir)
        if config_to_dict(saved) != config_to_dict(config):
            raise TrainingError(
                f"cannot resume {run_dir}: its configuration differs from the requested one"
            )
    else:
        graphdef, params = init_params(config)
        opt_state = make_optimizer(config).init(params)
    (run_dir / "config.json").write_text(json.dumps(config_to_dict(config), indent=2))
    metrics_writer = _MetricsWriter(run_dir, keep_until=start)
    data = TrainingData(
        config, process_index=jax.process_index(), process_count=jax.process_count()
    )
    mesh = data_mesh()
    if config.batch_size % (mesh.size * config.grad_accum):
        raise ValueError(
            f"batch_size {config.batch_size} must be divisible by the {mesh.size} devices "
            f"times grad_accum {config.grad_accum}"
        )
    replicated = NamedSharding(mesh, PartitionSpec())
    params, opt_state = jax.device_put((params, opt_state), replicated)
    optimizer = make_optimizer(config)
    step_fns: dict[str, Any] = {}

    def step_fn_at(step: int):
        search = config.search_at(step)
        if search not in step_fns:
            step_fns[search] = make_train_step(
                graphdef, config, optimizer, search=search, mesh=mesh
            )
        return step_fns[search]

    base_key = jax.random.key(config.seed)
    last = stop_at if stop_at is not None else config.steps
    from lpn_arc.data import prefetch

    batches = prefetch((data.batch(s) for s in range(start, last)), size=2)

    interrupted = False

    def on_sigint(signum, frame):  # finish the current step, checkpoint, then stop
        nonlocal interrupted
        interrupted = True

    previous = signal.signal(signal.SIGINT, on_sigint)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, initial=start, desc="train", unit="step")
    began = time.perf_counter()
    window_start, window_steps = began, 0
    metrics: dict[str, float] = {}
    step = start
    try:
        while step < last:
            batch = shard_batch(mesh, next(batches))
            key = jax.random.fold_in(base_key, step)
            params_new, opt_state_new, out = step_fn_at(step)(params, opt_state, batch, key)
            loss = float(out["loss"])
            if not math.isfinite(loss):
                raise TrainingError(
                    f"non-finite loss {loss} at step {step + 1}; stopping. The last good "
                    f"checkpoint in {run_dir / 'checkpoints'} is kept."
                )
            params, opt_state = params_new, opt_state_new
            step += 1
            window_steps += 1
            if step % config.log_every == 0 or step == last:
                now = time.perf_counter()
                tasks_per_s = window_steps * config.batch_size / max(now - window_start, 1e-9)
                metrics = {k: float(v) for k, v in out.items()}
                metrics_writer.write(
                    {"step": step, **metrics, "tasks_per_s": tasks_per_s, "time": now - began}
                )
                window_start, window_steps = now, 0
                if bar is not None:
                    bar.set_postfix(loss=f"{loss:.3f}", tasks_s=f"{tasks_per_s:.0f}")
            if bar is not None:
                bar.update(1)
            out_of_time = max_seconds is not None and time.perf_counter() - began > max_seconds
            if step % config.checkpoint_every == 0 or step == last or interrupted or out_of_time:
                _save(manager, step, params, opt_state, config, {"time": time.time()})
            if interrupted or out_of_time:
                break
    finally:
        batches.close()
        signal.signal(signal.SIGINT, previous)
        if bar is not None:
            bar.close()
        manager.close()
    return TrainResult(graphdef, params, step, time.perf_counter() - began, metrics)
