"""Evaluation of an LPN model on tasks: latent search, two attempts and accuracy metrics.

Two entry points share one compiled per-query computation (:mod:`~lpn_arc.evaluation.
inference`, through ``latentsearch.infer``):

* :func:`evaluate_tasks` (:mod:`~lpn_arc.evaluation.tasks`) for stacked tasks of ``N >= 2``
  pairs (generated PATTERN tasks): the first ``N - 1`` pairs are the specification, the
  last pair is the query;
* :func:`evaluate_arc` (:mod:`~lpn_arc.evaluation.arc`) for ARC tasks: every test input,
  with all of the task's train pairs as the specification (padded with a mask), an ARC
  Prize submission (:func:`validate_submission`) and per-task metrics.

Metrics (:mod:`~lpn_arc.evaluation.metrics`; per task, then averaged over tasks): ``top1``
(attempt 1 matches the truth exactly: shape and every cell), ``pass2`` (attempt 1 or
attempt 2 does), ``shape`` (attempt 1 has the true shape) and ``pixel`` (fraction of the
true output's cells that attempt 1 gets right, counted only when its shape is right, else
0: the official metric). :func:`format_table` prints them.
"""

from lpn_arc.evaluation.arc import ArcEvalOutput, evaluate_arc
from lpn_arc.evaluation.inference import STARTS
from lpn_arc.evaluation.metrics import ATTEMPT2_RULES, METRIC_KEYS, prediction_metrics
from lpn_arc.evaluation.report import format_table
from lpn_arc.evaluation.submission import validate_submission
from lpn_arc.evaluation.tasks import HOLDOUTS, EvalOutput, evaluate_tasks
from lpn_arc.evaluation.validation import validator

__all__ = [
    "ATTEMPT2_RULES",
    "HOLDOUTS",
    "METRIC_KEYS",
    "STARTS",
    "ArcEvalOutput",
    "EvalOutput",
    "evaluate_arc",
    "evaluate_tasks",
    "format_table",
    "prediction_metrics",
    "validate_submission",
    "validator",
]
