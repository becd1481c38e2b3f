"""Search specifications: the grammar, the typed SearchSpec (plain data, parsed once), the
one builder of library searchers, and a command line that loads no JAX."""

import subprocess
import sys

import pytest
from lpn_arc.config import KINDS, parse_search
from lpn_arc.search import build_search

import latentsearch as ls
from tests.arc.helpers import tiny_config


def test_search_specs():
    assert parse_search("mean").num_steps == 0
    assert parse_search("grad:20").num_steps == 20
    flows = {t: build_search(parse_search(t)).gradient_flow
             for t in ("grad:3:implicit", "grad:3:unrolled", "grad:3")}  # fmt: skip
    assert flows == {"grad:3:implicit": ls.Implicit(start_path=True),
                     "grad:3:unrolled": ls.Unrolled(checkpoint=True),
                     "grad:3": ls.StopGradient()}  # fmt: skip
    assert parse_search("es:8:5").num_steps == 5
    assert parse_search("hybrid:10:5").num_steps == 5
    for bad, message in [
        ("grad", "unknown search"),
        ("grad:x", "steps must be a positive integer"),
        ("grad:5:second", "unknown gradient flow"),
        ("sample:0", "samples must be a positive integer"),
        ("es:7:3", "population must be even"),
        ("beam:4", "unknown search"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_search(bad)


def test_a_specification_is_parsed_once_into_its_kind_and_steps():
    spec = parse_search("grad:7:implicit")
    assert (spec.kind, spec.num_steps, spec.gradient_steps) == ("grad", 7, 7)
    assert parse_search("mean").gradient_steps == 0
    for text in ("sample:5", "es:4:3", "hybrid:10:2"):
        assert parse_search(text).gradient_steps is None
    texts = ("mean", "grad:1", "sample:1", "es:2:1", "hybrid:1:1")
    assert tuple(parse_search(t).kind for t in texts) == KINDS


def test_the_training_search_of_a_configuration_is_parsed_once():
    config = tiny_config(train_search="grad:3", finetune_search="grad:9", finetune_steps=2)
    assert config.search_at(0).num_steps == 3 and config.search_at(0).lr == config.search_lr
    assert config.search_at(config.steps - 1).num_steps == 9
    assert config.search_at(0) is config.search_at(1)  # the same parsed object


def test_equal_specifications_build_one_searcher():
    a, b = parse_search("hybrid:8:3", lr=0.2), parse_search("hybrid:8:3", lr=0.2)
    assert a == b and hash(a) == hash(b)
    assert build_search(a).searcher is build_search(b).searcher  # so compilations are shared
    assert build_search(a).searcher is not build_search(parse_search("hybrid:8:3")).searcher


def test_the_command_line_and_the_plain_packages_load_no_jax():
    code = (
        "import sys, lpn_arc.cli, lpn_arc.config, lpn_arc.data\n"
        "lpn_arc.config.parse_search('grad:5')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('jax', 'jaxlib', 'optax', 'flax', 'latentsearch'))\n"
        "print(loaded)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
