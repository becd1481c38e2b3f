"""Tests of lpn_arc.evaluation."""
