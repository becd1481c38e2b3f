"""Tests of lpn_arc.model."""
