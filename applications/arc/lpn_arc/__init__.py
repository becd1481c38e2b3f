"""Latent Program Networks (LPN) for ARC-AGI, built on ``latentsearch``.

The packages, in the order data flows through them (each imports only those before it):

* :mod:`lpn_arc.config`: what a run is (model, data and training configurations, presets,
  command-line overrides, search specifications);
* :mod:`lpn_arc.data`: grids and the pair format, ARC loaders, augmentation, the PATTERN
  generator, training batches and the provenance of training data;
* :mod:`lpn_arc.model`: the encoder and decoder (Flax NNX), generation, and the adapters
  to ``latentsearch``;
* :mod:`lpn_arc.training`: the train step and loop, checkpoints, metrics files;
* :mod:`lpn_arc.evaluation`: inference through ``latentsearch.infer``, metrics, the ARC
  submission and reports;
* :mod:`lpn_arc.pretrained`: the pretrained models shipped with the package, loaded
  offline by name (``pretrained:NAME``);
* :mod:`lpn_arc.plots`, :mod:`lpn_arc.commands` and :mod:`lpn_arc.cli` (the ``lpn-arc``
  command) use them all; :mod:`lpn_arc.allocator` and :mod:`lpn_arc.xla_flags` set up the
  process (malloc, XLA flags) and import nothing of ``lpn_arc``.
"""

from lpn_arc._version import __version__
from lpn_arc.xla_flags import apply_xla_defaults

__all__ = ["__version__"]

apply_xla_defaults()  # before JAX starts its CPU backend; see lpn_arc/xla_flags.py
