"""Training batches: step ``s``'s batch of a configuration, prepared in a background thread."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

import numpy as np

from lpn_arc.config import SIZE_LADDER, TrainConfig
from lpn_arc.data.arc import load_rearc, load_tasks
from lpn_arc.data.grids import PaddedPairs, Pair, check_int
from lpn_arc.data.pattern import generate_pattern_tasks, pad_to_model
from lpn_arc.data.provenance import (
    check_training_pairs,
    exclude_tasks,
    pattern_provenance,
    provenance,
)
from lpn_arc.data.sampler import TaskSampler

__all__ = ["TrainingData", "prefetch", "training_batch"]

T = TypeVar("T")


_DONE = object()


def prefetch(batches: Iterator[T], size: int = 2) -> Iterator[T]:
    """Runs ``batches`` in a background daemon thread, up to ``size`` items ahead.

    The producer's exception is re-raised in the consumer; closing the returned generator
    (or dropping it) stops the producer.

    Example:
        >>> list(prefetch(iter(range(5))))
        [0, 1, 2, 3, 4]
    """
    check_int("size", size, 1)
    items: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def produce() -> None:
        try:
            for item in batches:
                if not put((item, None)):
                    break
            else:
                put((_DONE, None))
        except BaseException as err:  # handed to the consumer
            put((_DONE, err))
        finally:
            close = getattr(batches, "close", None)
            if stop.is_set() and close is not None:
                close()

    def consume() -> Iterator[T]:
        thread = threading.Thread(target=produce, daemon=True, name="prefetch")
        thread.start()
        try:
            while True:
                item, err = items.get()
                if err is not None:
                    raise err
                if item is _DONE:
                    return
                yield item
        finally:
            stop.set()

    return consume()


def _fits(pairs, size: tuple[int, int]) -> bool:
    return all(g.shape[0] <= size[0] and g.shape[1] <= size[1] for pair in pairs for g in pair)


def _drop_larger(by_source, rearc, size: tuple[int, int], include_test_pairs: bool):
    """Tasks and pools whose grids all fit ``size``, and ``{source: [ids left out]}``."""
    kept, dropped = {}, {}
    for source, tasks in by_source.items():
        fits = [_fits(t.training_pairs(include_test_pairs=include_test_pairs), size) for t in tasks]
        kept[source] = [t for t, ok in zip(tasks, fits, strict=True) if ok]
        dropped[source] = [t.task_id for t, ok in zip(tasks, fits, strict=True) if not ok]
    if rearc is not None:
        dropped["re-arc"] = sorted(k for k, pairs in rearc.items() if not _fits(pairs, size))
        rearc = {k: v for k, v in rearc.items() if k not in set(dropped["re-arc"])}
    if not any(kept.values()) and not rearc:
        raise ValueError(f"no training task has all its grids within {size[0]}x{size[1]}")
    return kept, rearc, dropped


def training_batch(config: TrainConfig, step: int) -> PaddedPairs:
    """The batch of ``step``: a pure function of ``(seed, step)``, so resuming is exact
    (see :meth:`TrainingData.batch`)."""
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
        """The ARC task sampler and its provenance record (see :mod:`lpn_arc.data.provenance`).

        Raises:
            TestLeakError: when a pair training would sample is a test pair of a hidden
                evaluation set, under any name.
        """
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
        excluded, larger = {}, {}
        if data.exclude:
            by_source, rearc, excluded = exclude_tasks(by_source, rearc, data.excluded_sources)
        if data.drop_larger_tasks:
            size = (config.model.max_rows, config.model.max_cols)
            by_source, rearc, larger = _drop_larger(by_source, rearc, size, data.include_test_pairs)
        check_training_pairs(
            by_source,
            include_test_pairs=data.include_test_pairs,
            rearc=None if rearc is None else (data.rearc, rearc),
        )
        sampler = TaskSampler(
            tasks=[t for tasks in by_source.values() for t in tasks],
            rearc=rearc,
            num_pairs=data.num_pairs,
            max_rows=config.model.max_rows,
            max_cols=config.model.max_cols,
            augment=data.augment,
            include_test_pairs=data.include_test_pairs,
            ladder=SIZE_LADDER if data.buckets else None,
        )
        record = provenance(
            by_source,
            include_test_pairs=data.include_test_pairs,
            rearc=None if rearc is None else (data.rearc, rearc),
            augment=data.augment,
        )
        if data.exclude:
            record["excluded"] = excluded
        if data.drop_larger_tasks:
            record["dropped_larger"] = larger
        return sampler, record

    def _rng(self, step: int) -> np.random.Generator:
        """The generator of step ``step``'s batch (this process's share of it)."""
        seed = [self.config.seed, step, 7]
        if self.process_count > 1:
            seed.append(self.process_index)
        return np.random.default_rng(seed)

    def batch(self, step: int) -> PaddedPairs:
        """This process's ``(local_batch_size, N, R, C)`` share of step ``step``'s batch:
        the pairs and the mask of the real ones (None for PATTERN tasks, all real)."""
        if self.sampler is not None:
            return self.sampler.sample(self._rng(step), self.local_batch_size)
        return PaddedPairs(self.pattern_batch(step)[0], None)

    def pattern_batch(self, step: int) -> tuple[Pair, np.ndarray]:
        """A PATTERN run's batch of ``step`` and its ``(B, P, P)`` patterns: train programs
        only under ``pattern_split="program"``."""
        data = self.config.data
        if not data.is_pattern:
            raise ValueError("pattern_batch needs a PATTERN configuration")
        tasks, patterns = generate_pattern_tasks(
            self._rng(step),
            self.local_batch_size,
            num_pairs=data.num_pairs,
            grid_size=data.grid_size,
            pattern_size=data.pattern_size,
            density=data.density,
            split="train" if data.pattern_split == "program" else None,
        )
        return pad_to_model(tasks, self.config), patterns
