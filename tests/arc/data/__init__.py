"""Tests of lpn_arc.data."""
