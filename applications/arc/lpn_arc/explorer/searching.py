"""Searches run step by step, so the page can show each step as it happens.

A search is one of the library's searchers (:func:`latentsearch.gradient_ascent`,
:func:`~latentsearch.random_search`, :func:`~latentsearch.evolution_strategy`,
:func:`~latentsearch.hybrid`) run by the library's step-wise driver:
:func:`latentsearch.search_init` when the search starts, one
:func:`latentsearch.search_step` per step the page asks for and
:func:`latentsearch.search_finish` after the last, which is what
:func:`latentsearch.search` runs as one program: a search here visits the points and
returns the latents, counts and stop of ``ls.search`` with the same settings, bit for bit
(the objective's values as the step programs round them, which the one program may round
differently in the last bits). The best point, its score and the evaluations spent that
the page shows are the library's (:class:`latentsearch.SearchState`); the state stays on
the device between the page's requests, and each step is one call of the library's
compiled step. The points each step scored, which the page draws, are kept by
:func:`recording`.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import threading
from collections import OrderedDict
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import latentsearch as ls
from lpn_arc.config import OPTIMIZERS, SearchSpec
from lpn_arc.explorer.session import Explorer, Prepared
from lpn_arc.search import build_search

__all__ = [
    "KINDS",
    "PAGE_DEFAULTS",
    "SearchRun",
    "SearchRuns",
    "SearchSettings",
    "Shown",
    "recording",
    "warm_up",
]

KINDS = ("grad", "sample", "es", "hybrid")
"""The searches the page offers, named as in :func:`lpn_arc.config.parse_search`: gradient
ascent, sampling (random search), evolution strategy, hybrid (samples, then gradient ascent
from the best two)."""

CLOUD_POINTS = 64
"""At most this many of a step's scored points are sent to the page."""


PAGE_DEFAULTS: dict[str, Any] = {
    "kind": "grad", "steps": 20, "lr": 0.1, "optimizer": "clip-adam", "samples": 32,
    "scale": 0.5, "population": 16, "sigma": 0.1, "seed": 0,
}  # fmt: skip
"""The settings the page starts from: :class:`lpn_arc.config.SearchSpec`'s names (``kind``,
``steps`` the searcher steps, ``lr``, ``optimizer``, ``samples``, ``scale``, ``population``,
``sigma``) and the search's ``seed``."""

_LIMITS = {"steps": 2000, "samples": 4096, "population": 1024, "seed": 2**31 - 1}


class SearchSettings(NamedTuple):
    """One search of the page: a search specification in the CLI's vocabulary (the page's
    settings are a view of it, with its names) and the search's PRNG seed.

    Attributes:
        spec: the search; ``spec.steps`` is the budget of searcher steps.
        seed: the search's PRNG seed.
    """

    spec: SearchSpec
    seed: int = 0

    @classmethod
    def of(cls, data: dict[str, Any] | None = None) -> SearchSettings:
        """Settings from the page's JSON (:data:`PAGE_DEFAULTS` for what it leaves out),
        every field checked.

        Raises:
            ValueError: naming the field that is missing its type or range.

        Example:
            >>> SearchSettings.of({"kind": "es", "population": 8}).spec.population
            8
            >>> SearchSettings.of({"kind": "es", "population": 7})
            Traceback (most recent call last):
            ...
            ValueError: population must be even, got 7
        """
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise ValueError("the search settings must be an object")
        unknown = set(data) - set(PAGE_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown search settings {sorted(unknown)}")
        page = {**PAGE_DEFAULTS, **data}
        _check(page)
        kind, steps = page["kind"], page["steps"]
        text = {
            "grad": f"grad:{steps}",
            "sample": f"sample:{page['samples']}",
            "es": f"es:{page['population']}:{steps}",
            "hybrid": f"hybrid:{page['samples']}:{steps}",
        }[kind]
        fields = {name: page[name] for name in _READS[kind]}
        return cls(SearchSpec(text, kind, steps=steps, **fields), page["seed"])

    def searcher(self) -> ls.Searcher:
        """The library searcher of these settings (:func:`lpn_arc.search.build_search`):
        the same object (so the same compiled steps) for all settings that differ only in
        what the searcher does not read (the budget, the seed, the fields of other kinds)."""
        only_read = dataclasses.replace(self.spec, text=self.spec.kind, steps=0)
        return build_search(only_read).searcher


def _check(page: dict[str, Any]) -> None:
    """Raises ValueError naming the first of the page's settings out of its type or range."""
    if page["kind"] not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {page['kind']!r}")
    if page["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {page['optimizer']!r}")
    for name, high in _LIMITS.items():
        value = page[name]
        low = 0 if name == "seed" else 1
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    for name in ("lr", "scale", "sigma"):
        value = page[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if not 0 < value <= 100 or not math.isfinite(value):
            raise ValueError(f"{name} must be in (0, 100], got {value!r}")
    if page["population"] % 2:
        raise ValueError(f"population must be even, got {page['population']}")


_READS = {
    "grad": ("optimizer", "lr"),
    "sample": ("samples", "scale"),
    "es": ("population", "sigma", "optimizer", "lr"),
    "hybrid": ("samples", "scale", "optimizer", "lr"),
}


class Shown(NamedTuple):
    """The state of a :func:`recording` searcher: the searcher's own state and the points
    (with their scores) that its ``prepare`` and its last step scored."""

    state: Any
    prepared: jax.Array
    prepared_scores: jax.Array
    last: jax.Array
    last_scores: jax.Array


@functools.lru_cache(maxsize=32)
def recording(searcher: ls.Searcher) -> ls.Searcher:
    """``searcher``, also keeping in its state (:class:`Shown`) the points it scored in
    ``prepare`` and in its last step, which the page draws; it scores, steps and finalises
    as ``searcher`` does. The same object for the same ``searcher``, so the library's
    compiled functions are reused."""

    def prepare(state, objective, args, key):
        ev = None
        if searcher.prepare is not None:
            state, ev = searcher.prepare(state, objective, args, key)
        _, scored = jax.eval_shape(lambda: searcher.step(state, objective, args, key))
        (m, d), dtype = scored.points.shape, scored.points.dtype
        none = jnp.zeros((0, d), dtype), jnp.zeros((0,), scored.scores.dtype)
        first = none if ev is None else (ev.points, ev.scores)
        last = jnp.zeros((m, d), dtype), jnp.full((m,), -jnp.inf, scored.scores.dtype)
        return Shown(state, *first, *last), ev

    def step(shown, objective, args, key):
        state, ev = searcher.step(shown.state, objective, args, key)
        return shown._replace(state=state, last=ev.points, last_scores=ev.scores), ev

    def finalize(shown, objective, args):
        return searcher.finalize(shown.state, objective, args)

    return ls.Searcher(
        searcher.init,
        step,
        prepare,
        None if searcher.finalize is None else finalize,
        searcher.score_starts,
    )


_PATH = {"grad": "centroid", "es": "centroid", "sample": "best", "hybrid": "best"}
"""Where the searcher "is" after a step: the mean of the points it scored (the iterate of
gradient ascent, the distribution mean of ES), or the best point so far (sampling)."""


class SearchRun:
    """One search from a task's aggregate latent, advanced by :meth:`advance`.

    Attributes:
        state: the library's :class:`latentsearch.SearchState` after the steps taken.
        result: the :class:`latentsearch.SearchResult` of
            :func:`latentsearch.search_finish` once the budget is spent, else ``None``.
        first: the page's frame of the search before its first step.
    """

    def __init__(self, explorer: Explorer, prepared: Prepared, settings: SearchSettings):
        self.explorer, self.prepared, self.settings = explorer, prepared, settings
        self.searcher = recording(settings.searcher())
        self.result: ls.SearchResult | None = None
        with explorer.lock:
            state = ls.search_init(
                self.searcher,
                explorer.objective,
                prepared.anchor,
                key=jax.random.key(settings.seed),
                num_steps=settings.spec.steps,
                args=prepared.args,
            )
            # committed to the device like the states the steps return, so that the second
            # step does not compile the step again for another placement
            self.state = jax.device_put(state, jax.local_devices()[0])
            # compiles the finish now (a few evaluations once compiled), not as a pause at
            # the last step
            ls.search_finish(self.searcher, explorer.objective, self.state, args=prepared.args)
            shown = self.state.searcher_state
            self.first = self._frame(shown.prepared, shown.prepared_scores)
        if self.first["best"] is None:  # the first step scores the start (gradient ascent)
            self.first["best"] = explorer.score(prepared, prepared.anchor)
        self.first["score"] = self.first["best"]

    @property
    def steps_done(self) -> int:
        """Searcher steps taken."""
        return int(self.state.step)

    @property
    def done(self) -> bool:
        """Whether the budget of steps is spent."""
        return self.result is not None

    @property
    def best_z(self) -> np.ndarray:
        """The best latent found so far (the result's once done)."""
        latents = self.state.best_latents if self.result is None else self.result.latents
        return np.asarray(latents)[0]

    def _frame(self, points: jax.Array, scores: jax.Array) -> dict[str, Any]:
        """What the page shows of the search now: the state's best point, its score and the
        evaluations spent, and the points just scored (``points``, ``scores``)."""
        points, scores = np.asarray(points), np.asarray(scores)
        best_z, best = self.best_z, float(np.asarray(self.state.best_scores)[0])
        finite = np.isfinite(scores) & np.all(np.isfinite(points), axis=-1)
        if _PATH[self.settings.spec.kind] == "centroid" and len(points):
            where = points.mean(axis=0)
        else:
            where = best_z
        project = self.explorer.project
        shown = points[:: max(1, len(points) // CLOUD_POINTS)][:CLOUD_POINTS]
        return {
            "step": self.steps_done,
            "point": project(where).tolist(),
            "best_point": project(best_z).tolist(),
            "score": float(np.max(scores[finite])) if finite.any() else None,
            "best": best if math.isfinite(best) else None,
            "evaluations": int(self.state.num_evaluations),
            "cloud": project(shown).tolist() if len(points) > 1 else [],
        }

    def advance(self, count: int) -> list[dict[str, Any]]:
        """Runs up to ``count`` more steps (one :func:`latentsearch.search_step` each; after
        the last, :func:`latentsearch.search_finish`); a frame per step."""
        frames = []
        objective, args = self.explorer.objective, self.prepared.args
        with self.explorer.lock:
            for _ in range(max(0, min(count, self.settings.spec.steps - self.steps_done))):
                self.state = ls.search_step(self.searcher, objective, self.state, args=args)
                shown = self.state.searcher_state
                frame = self._frame(shown.last, shown.last_scores)
                if self.steps_done == self.settings.spec.steps:
                    self.result = ls.search_finish(self.searcher, objective, self.state, args=args)
                    frame.update(
                        best=float(self.result.scores[0]),
                        best_point=self.explorer.project(self.best_z).tolist(),
                        evaluations=int(self.result.num_evaluations),
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
    default settings (its start, steps and finish) and the heat map at ``resolution``."""
    prepared = explorer.prepare(explorer.tasks[0])
    explorer.summary(prepared)
    run = SearchRun(explorer, prepared, SearchSettings.of())
    run.report(run.advance(1))
    explorer.landscape(prepared, (-1.0, 1.0, -1.0, 1.0), resolution)
