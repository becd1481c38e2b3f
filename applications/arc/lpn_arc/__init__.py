"""Latent Program Network (LPN) for ARC: grids, pattern tasks and the encoder/decoder model."""

from lpn_arc.xla_flags import apply_xla_defaults

apply_xla_defaults()  # before JAX starts its CPU backend; see lpn_arc/xla_flags.py
