"""The explorer's JAX work: encode, project, decode, and the landscape of a plane.

One :class:`Explorer` holds a model and everything compiled for it. Each function is
jit-compiled once per shape (the specification is padded to one of a few sizes, see
:data:`lpn_arc.explorer.tasks.PAIR_BUCKETS`), so after the first call of a kind every
call runs without tracing.

The 2-D view is a PCA of latent space fitted once, at start-up, on the per-pair encoder
means of a fixed set of tasks (the held-out tasks). A point ``(u, v)`` of the view stands
for the latent ``anchor + (u - a_u) e1 + (v - a_v) e2``: the plane through the task's
aggregate latent ``anchor`` (projected to ``(a_u, a_v)``) spanned by the two principal
directions ``e1, e2``, so that the projection of that latent is ``(u, v)`` again. Clicking
the view decodes that latent; the heat map is the specification log-likelihood over that
plane.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import latentsearch as ls
from lpn_arc.config import TrainConfig
from lpn_arc.explorer.tasks import TaskArrays, task_arrays
from lpn_arc.model import model_functions

__all__ = ["Explorer", "Prepared", "fit_pca"]

LANDSCAPE_CHUNK = 32
"""Latents scored at once for the heat map: bounds memory on large models, and was the
fastest of 32, 64, 96, 288 and all at once for the pattern model (0.48 s against 0.55,
0.63 and 0.73 s at 24x24 on 2 loaded cores)."""


def fit_pca(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The centre ``(D,)`` and the two leading principal directions ``(2, D)`` of ``points``.

    Example:
        >>> pts = np.array([[0.0, 0, 0], [2, 0, 0], [0, 1, 0], [2, 1, 0]])
        >>> centre, axes = fit_pca(pts)
        >>> centre.tolist(), np.abs(axes).round(3).tolist()
        ([1.0, 0.5, 0.0], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    """
    points = np.asarray(points, np.float64)
    centre = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centre, full_matrices=False)
    axes = np.zeros((2, points.shape[1]))
    axes[: min(2, vt.shape[0])] = vt[:2]
    return centre.astype(np.float32), axes.astype(np.float32)


@dataclass
class Prepared:
    """A task encoded once: its arrays, objective arguments and latents.

    Attributes:
        arrays: the checked, padded task.
        args: the objective's arguments ``(params, precomputed pairs, mask)`` on device.
        pair_latents: ``(N, D)`` the encoder means of the ``N`` real specification pairs.
        anchor: ``(D,)`` their aggregate (mean), the search's start.
        key: a digest of the task's content.
    """

    arrays: TaskArrays
    args: tuple
    pair_latents: np.ndarray
    anchor: np.ndarray
    key: str = ""


def _task_key(task: Any) -> str:
    return hashlib.sha1(json.dumps(task, sort_keys=True).encode()).hexdigest()


class Explorer:
    """A model, its compiled functions and the 2-D view of its latent space.

    Args:
        config: the run's configuration (grid size, held-out data).
        graphdef: the model graph.
        params: the parameter pytree.
        tasks: the tasks offered in the page (ARC format, see
            :mod:`lpn_arc.explorer.tasks`); the PCA is fitted on their pair latents.
        name: what the page calls the model (``pretrained:NAME`` or a run folder).
        step: the checkpoint's training step.

    Attributes:
        objective: the specification log-likelihood searched, ``objective(z, *args)`` with
            a :class:`Prepared` task's ``args``: a :class:`latentsearch.PairsObjective` over
            the model's log-likelihood of the pairs it precomputed.
        functions: the model's functions (:func:`lpn_arc.model.model_functions`), built
            once per graph and shared with training and evaluation.
    """

    def __init__(self, config: TrainConfig, graphdef, params, tasks, *, name: str, step: int):
        if not tasks:
            raise ValueError("the explorer needs at least one task")
        self.config, self.graphdef, self.params = config, graphdef, params
        self.name, self.step, self.tasks = name, step, list(tasks)
        self.lock = threading.RLock()  # one computation at a time; the server is threaded
        self._cache: OrderedDict[str, Prepared] = OrderedDict()
        self.functions = model_functions(graphdef)
        self.objective = ls.PairsObjective(self.functions.log_likelihood)
        self._compile()
        prepared = [self.prepare(task) for task in self.tasks]
        self.centre, self.axes = fit_pca(np.concatenate([p.pair_latents for p in prepared]))
        self.cloud = self.project(np.stack([p.anchor for p in prepared]))

    @property
    def grid_shape(self) -> tuple[int, int]:
        """The model's padded ``(rows, cols)``."""
        return self.config.model.max_rows, self.config.model.max_cols

    @property
    def latent_dim(self) -> int:
        """The size ``D`` of a latent."""
        return self.config.model.latent_dim

    def _compile(self) -> None:
        encode, precompute = self.functions.encode, self.functions.precompute
        generate, objective = self.functions.generate, self.objective

        def encode_task(params, pairs, mask):
            posterior = jax.vmap(encode, in_axes=(None, 0))(params, pairs)
            anchor = ls.aggregate_mean(posterior.mean, mask)
            return posterior.mean, anchor, jax.vmap(precompute, in_axes=(None, 0))(params, pairs)

        def score(z, params, pairs, mask):
            return objective(z, params, pairs, mask)

        def landscape(points, params, pairs, mask):
            return ls.evaluate(objective, points, (params, pairs, mask), LANDSCAPE_CHUNK)

        self._encode = jax.jit(encode_task)
        self._decode = jax.jit(generate)
        self._score = jax.jit(score)
        self._landscape = jax.jit(landscape)

    def prepare(self, task: Any) -> Prepared:
        """Checks and encodes ``task`` (cached by content: editing a cell re-encodes).

        Raises:
            TaskError: for a task the model cannot read.
        """
        key = _task_key(task)
        with self.lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            arrays = task_arrays(task, *self.grid_shape)
            means, anchor, scored = self._encode(self.params, arrays.pairs, arrays.mask)
            count = int(arrays.mask.sum())
            prepared = Prepared(
                arrays,
                (self.params, scored, jnp.asarray(arrays.mask)),
                np.asarray(means)[:count],
                np.asarray(anchor),
                key,
            )
            self._cache[key] = prepared
            while len(self._cache) > 64 + len(self.tasks):
                self._cache.popitem(last=False)
            return prepared

    def project(self, latents: np.ndarray) -> np.ndarray:
        """``(..., D)`` latents to their ``(..., 2)`` coordinates in the view."""
        return (np.asarray(latents, np.float32) - self.centre) @ self.axes.T

    def lift(self, prepared: Prepared, uv: np.ndarray, through: np.ndarray | None = None):
        """``(..., 2)`` view coordinates to latents of the plane through ``through`` (by
        default the task's anchor) along the two principal directions."""
        through = prepared.anchor if through is None else np.asarray(through, np.float32)
        offset = np.asarray(uv, np.float32) - self.project(through)
        return through + offset @ self.axes

    def score(self, prepared: Prepared, z: np.ndarray) -> float:
        """The specification log-likelihood at ``z``."""
        with self.lock:
            return float(self._score(jnp.asarray(z, jnp.float32), *prepared.args))

    def decode(self, prepared: Prepared, z: np.ndarray) -> dict[str, Any]:
        """The query output decoded greedily from ``z``, and whether it is the truth."""
        arrays = prepared.arrays
        with self.lock:
            grid, shape = self._decode(
                self.params, jnp.asarray(z, jnp.float32), arrays.query_input, arrays.query_shape
            )
        rows, cols = (int(v) for v in np.asarray(shape))
        grid = np.asarray(grid)[:rows, :cols].astype(int).tolist()
        correct = None if arrays.truth is None else grid == arrays.truth
        return {"grid": grid, "correct": correct}

    def landscape(self, prepared: Prepared, bounds, resolution: int, through=None) -> dict:
        """The specification log-likelihood on a ``resolution x resolution`` grid of the
        view's plane (through ``through``, see :meth:`lift`) inside ``bounds = (u_min,
        u_max, v_min, v_max)`` (cell centres)."""
        u0, u1, v0, v1 = (float(b) for b in bounds)
        if not (u1 > u0 and v1 > v0 and all(np.isfinite([u0, u1, v0, v1]))):
            raise ValueError(f"bounds must be finite with min < max, got {bounds}")
        if not 2 <= resolution <= 64:
            raise ValueError(f"resolution must be in 2..64, got {resolution}")
        us = u0 + (np.arange(resolution) + 0.5) * (u1 - u0) / resolution
        vs = v0 + (np.arange(resolution) + 0.5) * (v1 - v0) / resolution
        grid_u, grid_v = np.meshgrid(us, vs)  # rows: v, columns: u
        uv = np.stack([grid_u, grid_v], axis=-1).reshape(-1, 2)
        latents = self.lift(prepared, uv, through)
        with self.lock:
            values = self._landscape(jnp.asarray(latents), *prepared.args)
        values = np.asarray(values, np.float64).reshape(resolution, resolution)
        rows = [[float(x) if np.isfinite(x) else None for x in row] for row in values]
        return {"bounds": [u0, u1, v0, v1], "values": rows}

    def summary(self, prepared: Prepared) -> dict[str, Any]:
        """What the page shows of an encoded task: latents in the view, the aggregate's
        log-likelihood and its decoded query output."""
        return {
            "pairs": self.project(prepared.pair_latents).tolist(),
            "anchor": self.project(prepared.anchor).tolist(),
            "score": self.score(prepared, prepared.anchor),
            "decoded": self.decode(prepared, prepared.anchor),
            "truth": prepared.arrays.truth,
        }
