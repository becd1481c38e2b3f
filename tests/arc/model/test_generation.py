"""Greedy generation with a key/value cache equals the uncached reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from lpn_arc.data import Pair
from lpn_arc.model import LPNModel, ModelConfig, generate_fn, split_model

from tests.arc.helpers import TINY, generate_uncached, random_pairs, shape_forcer


def _generation_inputs(seed, num, max_rows=5, max_cols=5):
    pairs = random_pairs(seed, num, max_rows, max_cols)
    zs = 2.0 * jax.random.normal(jax.random.key(seed), (num, 4))
    return zs, pairs.inputs, pairs.input_shapes


def _sub_jaxprs(params):
    for value in params.values():
        for item in value if isinstance(value, tuple | list) else (value,):
            if hasattr(item, "eqns"):
                yield item
            elif hasattr(item, "jaxpr") and hasattr(item.jaxpr, "eqns"):
                yield item.jaxpr


def _all_eqns(jaxpr):
    for eqn in jaxpr.eqns:
        yield eqn
        for sub in _sub_jaxprs(eqn.params):
            yield from _all_eqns(sub)


@pytest.mark.parametrize("stop_early", [True, False])
@pytest.mark.parametrize("which", ["tiny", "tiny_rope"])
def test_cached_decoding_step_does_one_token_of_work(which, stop_early, request):
    """The generation loop body runs one token: no full-sequence product, no cache copy."""
    tiny = request.getfixturevalue(which)
    graphdef = split_model(tiny["model"])[0]
    zs, inputs, shapes = _generation_inputs(0, 1)
    jaxpr = jax.make_jaxpr(generate_fn(graphdef, stop_early=stop_early))(
        tiny["params"], zs[0], inputs[0], shapes[0]
    )
    loops = [
        eqn
        for eqn in _all_eqns(jaxpr.jaxpr)
        if eqn.primitive.name in ("while", "scan")
        and any(
            e.primitive.name == "dot_general"
            for e in _all_eqns(eqn.params.get("body_jaxpr", eqn.params.get("jaxpr")).jaxpr)
        )
    ]
    assert len(loops) == 1
    body = loops[0].params.get("body_jaxpr", loops[0].params.get("jaxpr")).jaxpr
    sequence = 2 * TINY.max_rows * TINY.max_cols + 5
    cache_size = TINY.embed_dim * sequence
    writes = 0
    for eqn in _all_eqns(body):
        for out in eqn.outvars:
            size = int(np.prod(out.aval.shape))
            if eqn.primitive.name == "dot_general":
                assert size <= TINY.num_heads * sequence, eqn  # one query row at most
            if size >= cache_size and eqn.primitive.name not in ("while", "scan", "pjit"):
                assert eqn.primitive.name == "dynamic_update_slice", eqn
                writes += 1
    assert writes == 2 * TINY.decoder_layers  # one key and one value write per layer


@pytest.mark.parametrize("which", ["tiny", "tiny_rope", "tiny_input_only"])
def test_cached_generation_equals_uncached(which, request):
    tiny = request.getfixturevalue(which)
    graphdef = split_model(tiny["model"])[0]
    fixed = jax.jit(jax.vmap(generate_fn(graphdef, stop_early=False), in_axes=(None, 0, 0, 0)))
    early = jax.jit(generate_fn(graphdef, stop_early=True))
    for seed in range(2):
        zs, inputs, shapes = _generation_inputs(seed, 6)
        fast_grids, fast_shapes = tiny["generate"](tiny["params"], zs, inputs, shapes)
        slow_grids, slow_shapes = tiny["uncached"](zs, inputs, shapes)
        assert len({tuple(s) for s in np.asarray(slow_shapes)}) > 1
        np.testing.assert_array_equal(fast_shapes, slow_shapes)
        np.testing.assert_array_equal(fast_grids, slow_grids)
        fixed_grids, fixed_shapes = fixed(tiny["params"], zs, inputs, shapes)
        np.testing.assert_array_equal(fixed_shapes, slow_shapes)
        np.testing.assert_array_equal(fixed_grids, slow_grids)
        for i in range(2):  # unbatched early-stopping loop gives the same output
            grid, shape = early(tiny["params"], zs[i], inputs[i], shapes[i])
            np.testing.assert_array_equal(shape, slow_shapes[i])
            np.testing.assert_array_equal(grid, slow_grids[i])


def _tiny_30x30(**overrides):
    """A very small model on 30x30 grids (the ARC size): fast full decoder passes."""
    base = dict(
        max_rows=30,
        max_cols=30,
        latent_dim=4,
        encoder_layers=0,
        decoder_layers=2,
        num_heads=1,
        head_dim=8,
        mlp_factor=1.0,
    )
    model = LPNModel(ModelConfig(**{**base, **overrides}), rngs=nnx.Rngs(0))
    return model, *split_model(model)


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_cached_generation_equals_uncached_30x30(positions):
    """End to end at 30x30: wide, tall and small forced output shapes, both loop modes."""
    _, graphdef, params = _tiny_30x30(positions=positions)
    uncached = jax.jit(lambda p, z, x, s: generate_uncached(nnx.merge(graphdef, p), z, x, s))
    cached = {stop: jax.jit(generate_fn(graphdef, stop_early=stop)) for stop in (True, False)}
    force = shape_forcer(graphdef)
    zs, inputs, in_shapes = _generation_inputs(3, 3, 30, 30)
    for i, shape in enumerate([(1, 30), (30, 1), (4, 7)]):
        forced = force(params, zs[i], inputs[i], in_shapes[i], shape)
        slow_grid, slow_shape = uncached(forced, zs[i], inputs[i], in_shapes[i])
        np.testing.assert_array_equal(slow_shape, shape)
        assert len(np.unique(np.asarray(slow_grid)[: shape[0], : shape[1]])) > 1
        for stop, fn in cached.items():
            grid, out_shape = fn(forced, zs[i], inputs[i], in_shapes[i])
            np.testing.assert_array_equal(out_shape, shape, err_msg=f"stop_early={stop}")
            np.testing.assert_array_equal(grid, slow_grid, err_msg=f"stop_early={stop}")


@pytest.mark.parametrize(
    ("positions", "dtype"),
    [
        ("learned", "float32"),
        ("rope", "bfloat16"),
        # The other two pairings, in make test-slow: rope decoding in float32 equals the
        # uncached reference in test_cached_generation_equals_uncached_30x30[rope] (both
        # loop modes), and bfloat16 rounding is checked here with rope positions.
        pytest.param("rope", "float32", marks=pytest.mark.slow),
        pytest.param("learned", "bfloat16", marks=pytest.mark.slow),
    ],
)
def test_cached_generation_30x30_is_teacher_forced_greedy(positions, dtype):
    """At 30x30, each generated token is the argmax of one teacher-forced pass.

    The decoder is causal and masked keys contribute exact zeros, so the teacher-forced
    logits of a cell given the generated grid are those of the uncached decoding step that
    picks it: in float32 this is the uncached equality at the cost of one pass per grid.
    In bfloat16 the cached and the full pass (and the two loop modes, compiled apart)
    round differently, so a cell may flip where two logits are within bfloat16 noise, and
    the rest of the grid then follows that cell; the check holds for every generated grid.
    """
    model, graphdef, params = _tiny_30x30(positions=positions, dtype=dtype, num_heads=2, head_dim=4)
    zs, inputs, in_shapes = _generation_inputs(4, 6, 30, 30)
    outputs = {
        stop: jax.jit(jax.vmap(generate_fn(graphdef, stop_early=stop), in_axes=(None, 0, 0, 0)))(
            params, zs, inputs, in_shapes
        )
        for stop in (True, False)
    }
    logits_fn = jax.jit(jax.vmap(model.decode_logits))
    if dtype == "float32":  # both loop modes do the same float32 arithmetic
        for early, fixed in zip(outputs[True], outputs[False], strict=True):
            np.testing.assert_array_equal(early, fixed)
    for stop, (grids, shapes) in outputs.items():
        grids, shapes = np.asarray(grids), np.asarray(shapes)
        assert any(r != c for r, c in shapes) and max(r * c for r, c in shapes) >= 100, stop
        pairs = Pair(inputs, in_shapes, grids, shapes)
        _check_teacher_forced_greedy(logits_fn(zs, pairs), grids, shapes, dtype)


def _check_teacher_forced_greedy(logits, grids, shapes, dtype):
    tolerance = 0.0 if dtype == "float32" else 0.05  # bfloat16 noise of logits of a few units
    for name, chosen in (("rows", shapes[:, 0] - 1), ("cols", shapes[:, 1] - 1)):
        values = np.asarray(logits[name])
        gap = values.max(-1) - np.take_along_axis(values, chosen[:, None], -1)[:, 0]
        assert (gap <= tolerance).all(), (name, gap)
    cells = np.asarray(logits["cells"])
    gap = cells.max(-1) - np.take_along_axis(cells, grids[..., None], -1)[..., 0]
    r, c = np.meshgrid(np.arange(grids.shape[1]), np.arange(grids.shape[2]), indexing="ij")
    inside = (r < shapes[:, :1, None]) & (c < shapes[:, 1:, None])
    assert (gap[inside] <= tolerance).all(), gap[inside].max()
    assert (gap[inside] > 0).sum() <= 0.05 * inside.sum()  # near-ties are rare


def test_generation_respects_shape(tiny):
    zs, inputs, shapes = _generation_inputs(7, 16)
    grids, out_shapes = map(np.asarray, tiny["generate"](tiny["params"], zs, inputs, shapes))
    assert grids.shape == (16, 5, 5) and grids.dtype == np.int32
    assert out_shapes.shape == (16, 2) and out_shapes.dtype == np.int32
    assert ((out_shapes >= 1) & (out_shapes <= 5)).all()
    assert len({tuple(s) for s in out_shapes}) > 1  # the random model predicts varied shapes
    for grid, (rows, cols) in zip(grids, out_shapes, strict=True):
        assert not grid[rows:].any() and not grid[:, cols:].any()
        assert ((grid >= 0) & (grid <= 9)).all()


def test_generation_is_argmax_of_teacher_forced_distribution(tiny):
    zs, inputs, shapes = _generation_inputs(11, 6)
    grids, out_shapes = tiny["generate"](tiny["params"], zs, inputs, shapes)
    for i in range(6):
        pair = Pair(inputs[i], shapes[i], grids[i], out_shapes[i])
        logits = tiny["logits"](zs[i], pair)
        rows, cols = (int(v) for v in out_shapes[i])
        assert int(jnp.argmax(logits["rows"])) + 1 == rows
        assert int(jnp.argmax(logits["cols"])) + 1 == cols
        predicted = np.asarray(jnp.argmax(logits["cells"], axis=-1))
        np.testing.assert_array_equal(predicted[:rows, :cols], np.asarray(grids[i])[:rows, :cols])
