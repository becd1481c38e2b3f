"""Searches run step by step, so the page can show each step as it happens.

A search is one of the library's searchers (:func:`latentsearch.gradient_ascent`,
:func:`~latentsearch.random_search`, :func:`~latentsearch.evolution_strategy`,
:func:`~latentsearch.hybrid`) driven here one step at a time through its public protocol
(``init``, ``prepare``, ``step``, ``finalize``; see :class:`latentsearch.Searcher`) instead
of all at once under ``lax.scan`` by :func:`latentsearch.search`: the state stays on the
device between the page's requests, each step is one call of a function compiled once per
searcher setting, and the best point is kept as the driver keeps it (everything scored,
the start included).
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import latentsearch as ls
from lpn_arc.config import OPTIMIZERS, search_optimizer
from lpn_arc.explorer.session import Explorer, Prepared

__all__ = ["KINDS", "SearchRun", "SearchRuns", "SearchSettings", "warm_up"]

KINDS = ("grad", "random", "es", "hybrid")
"""The searches the page offers: gradient ascent, random search, evolution strategy, hybrid
(random samples, then gradient ascent from the best two)."""

CLOUD_POINTS = 64
"""At most this many of a step's scored points are sent to the page."""


@dataclass(frozen=True)
class SearchSettings:
    """One search's settings, as the page sends them (checked by :meth:`of`).

    Attributes:
        kind: one of :data:`KINDS`.
        steps: searcher steps (the budget).
        lr: learning rate of gradient (and ES) updates.
        optimizer: the latent optimiser, one of :data:`lpn_arc.config.OPTIMIZERS`.
        samples: random candidates per step (random) or before refining (hybrid).
        scale: standard deviation of the random candidates.
        population: ES evaluations per step (even).
        sigma: ES perturbation scale.
        seed: the search's PRNG seed.
    """

    kind: str = "grad"
    steps: int = 20
    lr: float = 0.1
    optimizer: str = "clip-adam"
    samples: int = 32
    scale: float = 0.5
    population: int = 16
    sigma: float = 0.1
    seed: int = 0

    @classmethod
    def of(cls, data: dict[str, Any]) -> SearchSettings:
        """Settings from the page's JSON, every field checked.

        Raises:
            ValueError: naming the field that is missing its type or range.

        Example:
            >>> SearchSettings.of({"kind": "es", "population": 8}).population
            8
            >>> SearchSettings.of({"kind": "es", "population": 7})
            Traceback (most recent call last):
            ...
            ValueError: population must be even, got 7
        """
        if not isinstance(data, dict):
            raise ValueError("the search settings must be an object")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown search settings {sorted(unknown)}")
        settings = cls(**data)
        settings._check()
        return settings

    def _check(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        limits = {"steps": 2000, "samples": 4096, "population": 1024, "seed": 2**31 - 1}
        for name, high in limits.items():
            value = getattr(self, name)
            low = 0 if name == "seed" else 1
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")
        for name in ("lr", "scale", "sigma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not 0 < value <= 100 or not math.isfinite(value):
                raise ValueError(f"{name} must be in (0, 100], got {value!r}")
        if self.population % 2:
            raise ValueError(f"population must be even, got {self.population}")

    def searcher(self) -> ls.Searcher:
        """The library searcher of these settings: the same object (so the same compiled
        steps) for all settings that differ only in what the searcher does not read (the
        budget, the seed, the fields of other kinds)."""
        used = {
            "grad": ("optimizer", "lr"),
            "random": ("samples", "scale"),
            "es": ("population", "sigma", "optimizer", "lr"),
            "hybrid": ("samples", "scale", "optimizer", "lr"),
        }[self.kind]
        return _searcher(self.kind, tuple((name, getattr(self, name)) for name in used))


@functools.lru_cache(maxsize=32)
def _searcher(kind: str, fields: tuple) -> ls.Searcher:
    s = dict(fields)
    optimizer = search_optimizer(s["optimizer"], float(s["lr"])) if "lr" in s else None
    if kind == "grad":
        return ls.gradient_ascent(optimizer)
    if kind == "random":
        return ls.random_search(s["samples"], float(s["scale"]), chunk_size=min(s["samples"], 256))
    if kind == "es":
        return ls.evolution_strategy(s["population"], float(s["sigma"]), optimizer)
    sampler = ls.random_search(s["samples"], float(s["scale"]))
    return ls.hybrid(sampler, ls.gradient_ascent(optimizer), 2)


@functools.lru_cache(maxsize=32)
def _compiled(objective, searcher: ls.Searcher):
    """``(begin, step, finish)`` of one searcher, each jit-compiled once per shape."""

    def begin(z0, key, args):
        state = searcher.init(z0, key)
        found = []
        if searcher.score_starts:
            found.append(ls.Evaluations(z0, ls.evaluate(objective, z0, args)))
        if searcher.prepare is not None:
            state, ev = searcher.prepare(state, objective, args, key)
            if ev is not None:
                found.append(ev)
        if not found:
            return state, z0[:0], jnp.zeros((0,), z0.dtype)
        points = jnp.concatenate([ev.points for ev in found])
        return state, points, jnp.concatenate([ev.scores for ev in found])

    def step(state, key, args):
        state, ev = searcher.step(state, objective, args, key)
        return state, ev.points, ev.scores

    def finish(state, args):
        ev = searcher.finalize(state, objective, args)
        return ev.points, ev.scores

    finish_fn = None if searcher.finalize is None else jax.jit(finish)
    return jax.jit(begin), jax.jit(step), finish_fn


_PATH = {"grad": "centroid", "es": "centroid", "random": "best", "hybrid": "best"}
"""Where the searcher "is" after a step: the mean of the points it scored (the iterate of
gradient ascent, the distribution mean of ES), or the best point so far (sampling)."""


class SearchRun:
    """One search from a task's aggregate latent, advanced by :meth:`advance`."""

    def __init__(self, explorer: Explorer, prepared: Prepared, settings: SearchSettings):
        self.explorer, self.prepared, self.settings = explorer, prepared, settings
        self._begin, self._step, self._finish = _compiled(explorer.objective, settings.searcher())
        self.steps_done = 0
        self.evaluations = 0
        self.best_z = np.asarray(prepared.anchor, np.float32)
        self.best_score = -math.inf
        self._key = jax.random.key(settings.seed)
        with explorer.lock:
            z0 = jnp.asarray(prepared.anchor, jnp.float32)[None]
            state, points, scores = self._begin(z0, self._key, prepared.args)
            # committed to the device like the states the steps return, so that the second
            # step does not compile the step again for another placement
            self._state = jax.device_put(state, jax.local_devices()[0])
            if self._finish is not None:  # compiled now (a few evaluations once compiled),
                self._finish(self._state, prepared.args)  # not as a pause at the last step
            self.first = self._frame(np.asarray(points), np.asarray(scores))
        if self.first["best"] is None:  # the first step scores the start (gradient ascent)
            self.best_score = explorer.score(prepared, prepared.anchor)
            self.first["best"] = self.first["score"] = self.best_score

    @property
    def done(self) -> bool:
        """Whether the budget of steps is spent."""
        return self.steps_done >= self.settings.steps

    def _frame(self, points: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
        """Takes in a step's scored points; what the page shows of the step."""
        self.evaluations += len(scores)
        finite = np.isfinite(scores) & np.all(np.isfinite(points), axis=-1)
        if finite.any():
            i = int(np.argmax(np.where(finite, scores, -np.inf)))
            if scores[i] > self.best_score:
                self.best_z, self.best_score = points[i].copy(), float(scores[i])
        if _PATH[self.settings.kind] == "centroid" and len(points):
            where = points.mean(axis=0)
        else:
            where = self.best_z
        project = self.explorer.project
        shown = points[:: max(1, len(points) // CLOUD_POINTS)][:CLOUD_POINTS]
        return {
            "step": self.steps_done,
            "point": project(where).tolist(),
            "best_point": project(self.best_z).tolist(),
            "score": float(np.max(scores)) if finite.any() else None,
            "best": self.best_score if math.isfinite(self.best_score) else None,
            "evaluations": self.evaluations,
            "cloud": project(shown).tolist() if len(points) > 1 else [],
        }

    def advance(self, count: int) -> list[dict[str, Any]]:
        """Runs up to ``count`` more steps (the last one also finalises); a frame per step."""
        frames = []
        with self.explorer.lock:
            for _ in range(max(0, min(count, self.settings.steps - self.steps_done))):
                self.steps_done += 1
                key = jax.random.fold_in(self._key, self.steps_done)
                self._state, points, scores = self._step(self._state, key, self.prepared.args)
                frame = self._frame(np.asarray(points), np.asarray(scores))
                if self.done and self._finish is not None:
                    points, scores = self._finish(self._state, self.prepared.args)
                    final = self._frame(np.asarray(points), np.asarray(scores))
                    frame.update(
                        best=final["best"],
                        best_point=final["best_point"],
                        evaluations=final["evaluations"],
                    )
                frames.append(frame)
        return frames

    def report(self, frames: list[dict[str, Any]]) -> dict[str, Any]:
        """The page's answer to a step request: the frames, and the best latent decoded."""
        return {
            "frames": frames,
            "done": self.done,
            "steps_done": self.steps_done,
            "decoded": self.explorer.decode(self.prepared, self.best_z),
        }


class SearchRuns:
    """The searches in progress, by id (the oldest are dropped beyond ``limit``)."""

    def __init__(self, limit: int = 8):
        self.limit = limit
        self._runs: OrderedDict[str, SearchRun] = OrderedDict()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # requests arrive on several threads

    def start(self, explorer: Explorer, prepared: Prepared, settings: SearchSettings) -> str:
        """Starts a search; returns its id."""
        run = SearchRun(explorer, prepared, settings)
        with self._lock:
            run_id = str(next(self._ids))
            self._runs[run_id] = run
            while len(self._runs) > self.limit:
                self._runs.popitem(last=False)
        return run_id

    def get(self, run_id: str) -> SearchRun:
        """The search ``run_id``.

        Raises:
            ValueError: when there is none (finished long ago, or the server restarted).
        """
        with self._lock:
            if run_id not in self._runs:
                raise ValueError(f"no search {run_id!r} (the server restarted?); run it again")
            return self._runs[run_id]


def warm_up(explorer: Explorer, resolution: int = 24) -> None:
    """Compiles what the page asks first: a task's summary, a gradient search with the
    default settings (its steps and final evaluation) and the heat map at ``resolution``."""
    prepared = explorer.prepare(explorer.tasks[0])
    explorer.summary(prepared)
    run = SearchRun(explorer, prepared, SearchSettings(steps=1))
    run.report(run.advance(1))
    explorer.landscape(prepared, (-1.0, 1.0, -1.0, 1.0), resolution)
