"""Latent Program Network (LPN) for ARC: grids, pattern tasks and the encoder/decoder model."""
