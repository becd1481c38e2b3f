"""The training step: the loss of a task (``latentsearch.lpn_loss``), AdamW with warm-up and
clipping, micro-batch accumulation, and the batch sharded over a ``"data"`` mesh."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import latentsearch as ls
from lpn_arc.config import SearchSpec, TrainConfig
from lpn_arc.data import PaddedPairs, Pair
from lpn_arc.model import LPNModel, model_functions, split_model
from lpn_arc.search import build_search

__all__ = [
    "TrainingSetup",
    "data_mesh",
    "init_params",
    "init_training",
    "make_optimizer",
    "make_train_step",
    "shard_batch",
    "task_loss_fn",
]


def init_params(config: TrainConfig) -> tuple[Any, Any]:
    """Builds the model from ``config.seed``; returns ``(graphdef, params)``."""
    model = LPNModel(config.model, rngs=nnx.Rngs(config.seed))
    return split_model(model)


class TrainingSetup(NamedTuple):
    """What the first step of a run needs: the model graph, its parameters (from the seed),
    the optimiser and the optimiser's initial state."""

    graphdef: Any
    params: Any
    optimizer: optax.GradientTransformation
    opt_state: Any


def init_training(config: TrainConfig) -> TrainingSetup:
    """The model (:func:`init_params`) and optimiser (:func:`make_optimizer`) of a new run.

    Example:
        >>> from lpn_arc.config import get_preset
        >>> from lpn_arc.model import count_params
        >>> setup = init_training(get_preset("pattern"))
        >>> count_params(setup.params)  # paper Table 13
        243360
    """
    graphdef, params = init_params(config)
    optimizer = make_optimizer(config)
    return TrainingSetup(graphdef, params, optimizer, optimizer.init(params))


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


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis (``"data"``) mesh over ``devices`` (default: all devices of all hosts)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), ("data",))


def shard_batch(mesh: Mesh, local_batch: PaddedPairs) -> PaddedPairs:
    """Places this process's share of a batch on the mesh, sharded along the task axis.

    With one process this is a plain sharded ``device_put``; with several (after
    ``jax.distributed.initialize()``) each contributes its rows to one global array. Any
    pytree of arrays with the task axis first (a :class:`~lpn_arc.data.PaddedPairs` or a
    :class:`~lpn_arc.data.Pair`) is placed alike.
    """
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    return jax.tree.map(
        lambda value: jax.make_array_from_process_local_data(sharding, value), local_batch
    )


_DROPOUT_STREAM = 0xD0  # a task's dropout key is fold_in(its key, _DROPOUT_STREAM)
_ENCODER_STREAM, _HELD_OUT_STREAM = 0, 2  # a pair's dropout key, folded for each use


def _folded(fn: Callable[..., Any], stream: int) -> Callable[..., Any]:
    """``fn`` whose ``dropout_key`` (a pair's key from ``latentsearch.lpn_loss``) is first
    folded with ``stream``, so that the encoder and the held-out scoring of a pair draw
    different dropout masks from the one key; None stays None (no dropout)."""

    def with_stream(*args, dropout_key=None):
        if dropout_key is not None:
            dropout_key = jax.random.fold_in(dropout_key, stream)
        return fn(*args, dropout_key=dropout_key)

    return with_stream


def task_loss_fn(graphdef: Any, config: TrainConfig, search: SearchSpec | None = None):
    """The training loss of one task, ``(params, task, key, dropout_key) -> (loss, metrics)``.

    ``latentsearch.lpn_loss`` (paper Algorithm 2) with the configuration's search on
    ``task``, a :class:`~lpn_arc.data.PaddedPairs` of one task (its pairs and their mask;
    ARC tasks with fewer distinct pairs than N leave their masked pairs out of every
    specification and of the loss) or a :class:`~lpn_arc.data.Pair` (every pair real).
    With ``config.model.dropout > 0`` the encoder and the scoring of each held-out pair
    apply dropout, each pair with its own key from ``dropout_key`` (``lpn_loss`` splits it
    per pair), while the search inside the loss runs without dropout (as the official
    code); with dropout 0, ``dropout_key`` is unused.

    Args:
        graphdef: the model graph.
        config: the configuration (search, its learning rate, prior KL weight, dropout).
        search: the training search (default ``config.train_search``), parsed.
    """
    built = build_search(search or config.searches["train"])
    model = model_functions(graphdef)
    encode = _folded(model.encode, _ENCODER_STREAM)
    held_out_log_likelihood = _folded(model.log_likelihood, _HELD_OUT_STREAM)

    def loss(params, task, key, dropout_key):
        pairs, pair_mask = _as_padded(task)
        return ls.lpn_loss(
            params,
            encode,
            model.log_likelihood,  # the search's objective: never a dropout key
            pairs,
            key,
            pair_mask=pair_mask,
            searcher=built.searcher,
            num_steps=built.num_steps,
            gradient_flow=built.gradient_flow,
            prior_kl=config.prior_kl,
            held_out_log_likelihood=held_out_log_likelihood,
            precompute=model.precompute,  # the identity with the official mask
            dropout_key=dropout_key if config.model.dropout > 0 else None,
        )

    return loss


def _as_padded(batch: PaddedPairs | Pair) -> PaddedPairs:
    """A batch as :class:`~lpn_arc.data.PaddedPairs`: a bare :class:`~lpn_arc.data.Pair`
    has every pair real (mask None).

    Raises:
        ValueError: for anything else (a dict of the old pair format, say).
    """
    if isinstance(batch, PaddedPairs):
        return batch
    if isinstance(batch, Pair):
        return PaddedPairs(batch, None)
    raise ValueError(f"a batch is a PaddedPairs or a Pair, got {type(batch).__name__}")


def make_train_step(
    graphdef: Any,
    config: TrainConfig,
    optimizer: optax.GradientTransformation,
    *,
    search: SearchSpec | None = None,
    mesh: Mesh | None = None,
):
    """The jitted step ``(params, opt_state, batch, key) -> (params, opt_state, metrics)``.

    ``batch`` is a :class:`~lpn_arc.data.PaddedPairs` with the task axis first (the
    training batches, :func:`lpn_arc.data.training_batch`) or a :class:`~lpn_arc.data.Pair`
    (every pair real). Task ``i`` of the batch gets the key ``split(key, batch_size)[i]``
    whatever the number of micro-batches (``config.grad_accum``) or devices, so those
    change the result only by floating-point summation order.

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
        (loss, metrics), grads = loss_and_grads(params, _as_padded(batch), key)
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
