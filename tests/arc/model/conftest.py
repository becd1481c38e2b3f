"""The tiny models every model test reads (built once for the whole package)."""

import dataclasses

import pytest

from tests.arc.helpers import TINY, tiny_model_fixture


@pytest.fixture(scope="package")
def tiny():
    return tiny_model_fixture(TINY)


@pytest.fixture(scope="package")
def tiny_rope():
    return tiny_model_fixture(dataclasses.replace(TINY, positions="rope"))


@pytest.fixture(scope="package")
def tiny_input_only():
    return tiny_model_fixture(dataclasses.replace(TINY, decoder_mask="input-only"))
