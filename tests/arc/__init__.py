"""Tests of lpn_arc; the folders mirror its packages."""
