"""Search specifications: the grammar, the gradient flows, the typed SearchSpec."""

import pytest
from lpn_arc.config import KINDS, parse_search

import latentsearch as ls
from tests.arc.helpers import tiny_config


def test_search_specs():
    assert parse_search("mean").num_steps == 0
    assert parse_search("grad:20").num_steps == 20
    assert parse_search("grad:3:implicit").gradient_flow == ls.Implicit(start_path=True)
    assert parse_search("grad:3:unrolled").gradient_flow == ls.Unrolled(checkpoint=True)
    assert parse_search("grad:3").gradient_flow == ls.StopGradient()
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


def test_the_training_search_of_a_configuration():
    config = tiny_config(train_search="grad:3", finetune_search="grad:9", finetune_steps=2)
    assert config.search_spec().num_steps == 3
    assert config.search_spec(config.search_at(config.steps - 1)).num_steps == 9
    assert config.search_spec("sample:4").kind == "sample"
