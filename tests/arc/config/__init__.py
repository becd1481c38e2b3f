"""Tests of lpn_arc.config."""
