"""Tests of lpn_arc.training."""
