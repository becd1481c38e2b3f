"""Training: AdamW with warm-up and clipping, ``latentsearch.lpn_loss``, Orbax checkpoints."""

from __future__ import annotations

import collections
import csv
import hashlib
import io
import json
import math
import os
import platform
import signal
import sys
import threading
import time
import warnings
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
from lpn_arc.model import LPNModel, encode_fn, log_likelihood_fn, precompute_fn, split_model
from lpn_arc.pattern import generate_pattern_tasks
from lpn_arc.provenance import pattern_provenance, provenance
from lpn_arc.searchspec import parse_search

__all__ = [
    "CheckpointError",
    "CheckpointWarning",
    "MemoryLimitError",
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
    "run_info",
    "shard_batch",
    "train",
    "training_batch",
]


class TrainingError(RuntimeError):
    """Raised when training cannot go on (non-finite loss, mismatched resume...)."""


class CheckpointError(TrainingError):
    """No readable checkpoint: every one in the run folder is missing, truncated or corrupt."""


class MemoryLimitError(TrainingError):
    """The training step would need more memory than the machine has (an estimate)."""


class CheckpointWarning(UserWarning):
    """A checkpoint was unreadable and an earlier one is used instead."""


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


_VERSIONED = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "orbax-checkpoint",
    "numpy",
    "latentsearch",
    "lpn-arc",
)


def run_info(config: TrainConfig | None = None) -> dict[str, Any]:
    """The seed and what a result depends on besides the configuration: package versions,
    Python, platform, devices and the command line (written to every run folder)."""
    from importlib import metadata

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "seed": None if config is None else config.seed,
        "versions": versions,
        "platform": platform.platform(),
        "devices": [str(d) for d in jax.devices()],
        "argv": list(sys.argv),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _atomic_write(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file and a rename, so that a run
    killed mid-write leaves the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_run_json(
    run_dir: Path, config: TrainConfig, start: int, data: dict[str, Any] | None = None
) -> None:
    """``run.json``: the seed and versions of the latest session, every session's, and the
    training data's provenance (``"data"``, see :mod:`lpn_arc.provenance`)."""
    path = run_dir / "run.json"
    sessions = []
    if path.exists():
        try:
            sessions = list(json.loads(path.read_text()).get("sessions", []))
        except (ValueError, AttributeError):
            sessions = []
    info = run_info(config)
    sessions.append({"start_step": start, **info})
    record = {**info, "sessions": sessions}
    if data is not None:
        record["data"] = data
    _atomic_write(path, json.dumps(record, indent=2))


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
        self.sampler = None
        if config.data.is_pattern:
            self.provenance = pattern_provenance(config.data)
        else:
            self.sampler, self.provenance = self._arc_sampler(config)

    @staticmethod
    def _arc_sampler(config: TrainConfig):
        """The ARC task sampler and its provenance record (see :mod:`lpn_arc.provenance`)."""
        from lpn_arc.data import TaskSampler, load_rearc, load_tasks

        data = config.data
        ids = set(data.task_id_list)
        by_source = {}
        for source in data.sources:
            tasks = load_tasks(source)
            by_source[source] = [t for t in tasks if t.task_id in ids] if ids else tasks
        found = {t.task_id for tasks in by_source.values() for t in tasks}
        missing = sorted(ids - found)
        if missing and data.sources and not data.rearc:  # with re-arc, ids may name pools
            raise ValueError(f"task ids {missing} are not in {', '.join(data.sources)}")
        rearc = load_rearc(data.rearc, task_ids=data.task_id_list or None) if data.rearc else None
        sampler = TaskSampler(
            tasks=[t for tasks in by_source.values() for t in tasks],
            rearc=rearc,
            num_pairs=data.num_pairs,
            max_rows=config.model.max_rows,
            max_cols=config.model.max_cols,
            augment=data.augment,
            include_test_pairs=data.include_test_pairs,
        )
        record = provenance(
            by_source,
            include_test_pairs=data.include_test_pairs,
            rearc=None if rearc is None else (data.rearc, rearc),
            augment=data.augment,
        )
        return sampler, record

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


_DROPOUT_STREAM = 0xD0  # a task's dropout key is fold_in(its key, _DROPOUT_STREAM)


def task_loss_fn(graphdef: Any, config: TrainConfig, search: str | None = None):
    """The training loss of one task, ``(params, task, key, dropout_key) -> (loss, metrics)``.

    ``latentsearch.lpn_loss`` (paper Algorithm 2) with the configuration's search. With
    ``config.model.dropout > 0`` the encoder and the scoring of each held-out pair apply
    dropout, each pair with its own key from ``dropout_key``, while the search inside the
    loss runs without dropout (as the official code); with dropout 0, ``dropout_key`` is
    unused.

    Args:
        graphdef: the model graph.
        config: the configuration (search, its learning rate, prior KL weight, dropout).
        search: the training search (default ``config.train_search``).
    """
    spec = parse_search(search or config.train_search, lr=config.search_lr)
    encode = encode_fn(graphdef)
    log_likelihood = log_likelihood_fn(graphdef)
    precompute = precompute_fn(graphdef)

    def strip(pair):
        """The pair without its dropout key."""
        return {name: value for name, value in pair.items() if name != "dropout_key"}

    def dropout(pair, stream):
        """The pair's dropout key folded with ``stream``, or None without dropout."""
        if "dropout_key" not in pair:
            return None
        return jax.random.fold_in(jax.random.wrap_key_data(pair["dropout_key"]), stream)

    def encode_pair(params, pair):
        return encode(params, strip(pair), dropout(pair, 0))

    def search_log_likelihood(params, z, pair):
        return log_likelihood(params, z, strip(pair))

    def held_out_log_likelihood(params, z, pair):
        return log_likelihood(params, z, strip(pair), dropout(pair, 2))

    def precompute_pair(params, pair):  # the input-only mask's input cache, once per pair
        return {**pair, **precompute(params, strip(pair))}

    def loss(params, task, key, dropout_key):
        pairs = dict(task)
        if config.model.dropout > 0:
            num_pairs = jnp.shape(task["inputs"])[0]
            pairs["dropout_key"] = jax.random.key_data(jax.random.split(dropout_key, num_pairs))
        return ls.lpn_loss(
            params,
            encode_pair,
            search_log_likelihood,
            pairs,
            key,
            searcher=spec.searcher,
            num_steps=spec.num_steps,
            gradient_flow=spec.gradient_flow,
            prior_kl=config.prior_kl,
            held_out_log_likelihood=held_out_log_likelihood,
            precompute=precompute_pair,  # the identity with the official mask
        )

    return loss


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
    accum = config.grad_accum
    loss_with_dropout = task_loss_fn(graphdef, config, search)

    def task_loss(params, task, key):
        return loss_with_dropout(params, task, key, jax.random.fold_in(key, _DROPOUT_STREAM))

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


def _manager(run_dir: Path, config: TrainConfig | None = None) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True)
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


def _save(manager, step, params, opt_state, config, extra) -> None:
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
        _atomic_write(step_dir / _FILE_DIGESTS, json.dumps(_file_digests(step_dir), indent=1))


def _restore(manager: ocp.CheckpointManager, step: int) -> tuple[TrainConfig, Any, Any, Any, int]:
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
    return config, graphdef, state["params"], state["opt_state"], int(meta["step"])


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def load_run(
    run_dir: str | Path, step: int | None = None
) -> tuple[TrainConfig, Any, Any, Any, int]:
    """Loads a run folder's checkpoint: ``(config, graphdef, params, opt_state, step)``.

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


def _quarantine(run_dir: Path, steps: Sequence[int]) -> None:
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


class _MetricsWriter:
    """Appends metric records to ``metrics.jsonl`` and ``metrics.csv`` in the run folder."""

    def __init__(self, run_dir: Path, keep_until: int) -> None:
        self.jsonl = run_dir / "metrics.jsonl"
        self.csv = run_dir / "metrics.csv"
        # on resume, drop records written after the checkpoint we continue from
        records = []
        if self.jsonl.exists():
            for line in self.jsonl.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:  # e.g. the last line of a run killed while writing it
                    continue
                if isinstance(record, dict) and isinstance(record.get("step"), int):
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
        _atomic_write(self.jsonl, "".join(json.dumps(r) + "\n" for r in self.records))
        self._rewrite_csv()

    def _rewrite_csv(self) -> None:
        if not self.records:
            if self.csv.exists():
                self.csv.unlink()
            return
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=self._fields(), restval="")
        writer.writeheader()
        writer.writerows(self.records)
        _atomic_write(self.csv, text.getvalue())

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


_STEP_CACHE: collections.OrderedDict[tuple, Any] = collections.OrderedDict()
_STEP_CACHE_SIZE = 4


def _meminfo_available() -> tuple[int, str] | None:
    """Bytes of host memory available now (``MemAvailable``, capped by a cgroup limit)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append((int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"))
                break
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            found.append((int(limit) - usage, f"the cgroup limit {limit_file} less usage"))
    return min(found) if found else None


def _available_memory(device: jax.Device) -> tuple[int, str] | None:
    """``(bytes, where the figure comes from)`` free for one step on ``device``, or None."""
    if device.platform == "cpu":
        return _meminfo_available()
    try:
        stats = device.memory_stats() or {}
    except Exception:  # not every backend reports memory statistics
        return None
    if "bytes_limit" not in stats:
        return None
    free = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return free, f"{device.device_kind} memory_stats()"


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def _check_memory(needed: int, what: str, mesh: Mesh) -> None:
    """Raises :class:`MemoryLimitError` when ``needed`` bytes per device will not fit."""
    device = mesh.devices.flat[0]
    available = _available_memory(device)
    if available is None:
        return
    free, source = available
    local = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
    # CPU devices share the host's memory; accelerators each have their own
    total = needed * (len(local) if device.platform == "cpu" else 1)
    if total > free:
        raise MemoryLimitError(
            f"the training step needs about {_gb(total)} ({what}) but only {_gb(free)} is "
            f"available ({source}); lower --batch-size, raise --grad-accum or use a smaller "
            "model, or pass --no-memory-check to try anyway"
        )


def _nbytes(tree: Any) -> int:
    return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def _compiled_step(
    graphdef: Any,
    config: TrainConfig,
    optimizer: optax.GradientTransformation,
    search: str,
    mesh: Mesh,
    args: tuple,
    check_memory: bool,
):
    """The train step compiled ahead of time for ``args``, checked against the memory.

    Compiled steps are cached per (configuration, search, devices), so training the same
    configuration again in one process (a resume, a notebook) does not recompile.
    """
    key = (
        json.dumps(config_to_dict(config), sort_keys=True),
        search,
        tuple(d.id for d in mesh.devices.flat),
        jax.process_count(),
    )
    params, opt_state, batch, _ = args
    if check_memory:  # a lower bound, before compiling: old and new parameters, gradients,
        # optimiser state and this device's share of the batch; activations come on top
        floor = 3 * _nbytes(params) + _nbytes(opt_state) + _nbytes(batch) // mesh.size
        _check_memory(floor, "parameters, gradients, optimiser state and batch alone", mesh)
    if key in _STEP_CACHE:
        _STEP_CACHE.move_to_end(key)
    else:
        jitted = make_train_step(graphdef, config, optimizer, search=search, mesh=mesh)
        compiled = jitted.lower(*args).compile()
        stats = compiled.memory_analysis()
        needed = None
        if stats is not None:
            needed = (
                int(stats.argument_size_in_bytes)
                + int(stats.output_size_in_bytes)
                + int(stats.temp_size_in_bytes)
                - int(getattr(stats, "alias_size_in_bytes", 0))
            )
        _STEP_CACHE[key] = (compiled, needed)
        while len(_STEP_CACHE) > _STEP_CACHE_SIZE:
            _STEP_CACHE.popitem(last=False)
    compiled, needed = _STEP_CACHE[key]
    if check_memory and needed is not None:  # checked on every call: free memory changes
        _check_memory(needed, f"XLA's estimate for batch {config.batch_size}", mesh)
    return compiled


class _StopSignals:
    """Turns the first SIGINT (Ctrl-C) or SIGTERM into a request to stop after the current
    step with a checkpoint; a second Ctrl-C raises ``KeyboardInterrupt`` at once. Only the
    main thread can install signal handlers: elsewhere this does nothing."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        name = signal.Signals(signum).name
        print(
            f"\n{name}: stopping after this step and writing a checkpoint "
            "(Ctrl-C again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _non_finite(out: dict[str, Any]) -> dict[str, float]:
    values = {k: float(v) for k, v in out.items()}
    return {k: v for k, v in values.items() if not math.isfinite(v)}


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    max_seconds: float | None = None,
    stop_at: int | None = None,
    check_memory: bool = True,
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
    manager = _manager(run_dir, config)
    start = 0
    if manager.latest_step() is not None:
        if not resume:
            manager.close()
            raise TrainingError(
                f"{run_dir} already holds checkpoints; pass --resume to continue it or choose "
                "another --out"
            )
        saved_steps = manager.all_steps()
        manager.close()
        saved, graphdef, params, opt_state, start = load_run(run_dir)
        if config_to_dict(saved) != config_to_dict(config):
            raise TrainingError(
                f"cannot resume {run_dir}: its configuration differs from the requested one"
            )
        unreadable = [s for s in saved_steps if s > start]
        _quarantine(run_dir, unreadable)
        manager = _manager(run_dir, config)
    else:
        graphdef, params = init_params(config)
        opt_state = make_optimizer(config).init(params)
    _atomic_write(run_dir / "config.json", json.dumps(config_to_dict(config), indent=2))
    _write_run_json(run_dir, config, start, data.provenance)
    metrics_writer = _MetricsWriter(run_dir, keep_until=start)
    replicated = NamedSharding(mesh, PartitionSpec())
    params, opt_state = jax.device_put((params, opt_state), replicated)
    optimizer = make_optimizer(config)

    step_fns: dict[str, Any] = {}

    def step_fn_at(step: int, args: tuple):
        search = config.search_at(step)
        if search not in step_fns:
            step_fns[search] = _compiled_step(
                graphdef, config, optimizer, search, mesh, args, check_memory
            )
        return step_fns[search]

    base_key = jax.random.key(config.seed)
    last = stop_at if stop_at is not None else config.steps
    from lpn_arc.data import prefetch

    batches = prefetch((data.batch(s) for s in range(start, last)), size=2)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, initial=start, desc="train", unit="step")
    began = time.perf_counter()
    window_start, window_steps = began, 0
    metrics: dict[str, float] = {}
    step = start
    saved_step = start if start else None
    try:
        with _StopSignals() as stop:
            while step < last:
                batch = shard_batch(mesh, next(batches))
                key = jax.random.fold_in(base_key, step)
                args = (params, opt_state, batch, key)
                params_new, opt_state_new, out = step_fn_at(step, args)(*args)
                loss = float(out["loss"])
                bad = _non_finite({"loss": out["loss"], "grad_norm": out["grad_norm"]})
                if bad:
                    values = ", ".join(f"{k}={v}" for k, v in _non_finite(out).items())
                    kept = (
                        f"the last good checkpoint (step {saved_step}) in "
                        f"{run_dir / 'checkpoints'} is kept"
                        if saved_step is not None
                        else "no checkpoint had been written yet"
                    )
                    raise TrainingError(
                        f"non-finite {' and '.join(bad)} at step {step + 1} ({values}); "
                        f"stopping without saving it: {kept}. Try a lower --lr or --clip-norm"
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
                stopping = stop.requested or out_of_time
                if step % config.checkpoint_every == 0 or step == last or stopping:
                    _save(manager, step, params, opt_state, config, {"time": time.time()})
                    saved_step = step
                if stopping:
                    break
    finally:
        batches.close()
        if bar is not None:
            bar.close()
        manager.close()
    seconds = time.perf_counter() - began
    return TrainResult(graphdef, params, step, seconds, metrics, interrupted=stop.requested)
