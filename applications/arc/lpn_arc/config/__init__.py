"""What a run is: the model, data and training configurations, presets and searches.

* :mod:`~lpn_arc.config.model`: :class:`ModelConfig`, the encoder/decoder architecture;
* :mod:`~lpn_arc.config.data`: :class:`DataConfig`, where training tasks come from, and
  :func:`hides_test_outputs`, the ARC splits whose test outputs must never be trained on;
* :mod:`~lpn_arc.config.train`: :class:`TrainConfig` (everything a run depends on, saved
  with every checkpoint) and its JSON form;
* :mod:`~lpn_arc.config.presets`: the named presets (:func:`get_preset`);
* :mod:`~lpn_arc.config.overrides`: ``--field-name VALUE`` command-line overrides;
* :mod:`~lpn_arc.config.search`: search specifications (``"grad:100"``...) parsed once
  into a typed :class:`SearchSpec`.

This package imports nothing else of ``lpn_arc``: data, model, training and evaluation
read their settings from here.
"""

from lpn_arc.config.data import (
    DATA_SOURCES_HELP,
    HIDDEN_TEST_SPLITS,
    PATTERN_SPLITS,
    SIZE_LADDER,
    DataConfig,
    hides_test_outputs,
)
from lpn_arc.config.model import ACTIVATIONS, DECODER_MASKS, DTYPES, POSITIONS, ModelConfig
from lpn_arc.config.overrides import add_override_arguments, apply_overrides
from lpn_arc.config.presets import PRESETS, get_preset
from lpn_arc.config.search import FLOWS, KINDS, OPTIMIZERS, SearchSpec, parse_search
from lpn_arc.config.train import TrainConfig, config_from_dict, config_to_dict

__all__ = [
    "ACTIVATIONS",
    "DATA_SOURCES_HELP",
    "DECODER_MASKS",
    "DTYPES",
    "FLOWS",
    "HIDDEN_TEST_SPLITS",
    "KINDS",
    "OPTIMIZERS",
    "PATTERN_SPLITS",
    "POSITIONS",
    "PRESETS",
    "SIZE_LADDER",
    "DataConfig",
    "ModelConfig",
    "SearchSpec",
    "TrainConfig",
    "add_override_arguments",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "get_preset",
    "hides_test_outputs",
    "parse_search",
]
