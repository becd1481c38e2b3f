"""Tests of the LPN encoder/decoder: parameter counts, masking, likelihood and generation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import generate_uncached, shape_forcer
from lpn_arc.model import (
    LPNModel,
    ModelConfig,
    apply_rope,
    count_params,
    encode_fn,
    generate_fn,
    log_likelihood_fn,
    split_model,
)

from latentsearch import DiagGaussian

TINY = ModelConfig(
    max_rows=5,
    max_cols=5,
    latent_dim=4,
    encoder_layers=1,
    decoder_layers=2,
    num_heads=2,
    head_dim=8,
    mlp_factor=2.0,
)


def _random_pairs(seed, num, max_rows=5, max_cols=5):
    """Random pairs of random shapes, with junk (non-zero) colours in the padding."""
    rng = np.random.default_rng(seed)
    grids = rng.integers(0, 10, size=(num, 2, max_rows, max_cols)).astype(np.int32)
    shapes = np.stack(
        [rng.integers(1, max_rows + 1, size=(num, 2)), rng.integers(1, max_cols + 1, (num, 2))],
        axis=-1,
    ).astype(np.int32)
    return {
        "inputs": grids[:, 0],
        "input_shapes": shapes[:, 0],
        "outputs": grids[:, 1],
        "output_shapes": shapes[:, 1],
    }


def _index(pairs, i):
    return jax.tree.map(lambda x: x[i], pairs)


def _tiny_fixture(config):
    model = LPNModel(config, rngs=nnx.Rngs(0))
    graphdef, params = split_model(model)
    return {
        "model": model,
        "params": params,
        "encode": jax.jit(encode_fn(graphdef)),
        "ll": jax.jit(log_likelihood_fn(graphdef)),
        "generate": jax.jit(jax.vmap(generate_fn(graphdef), in_axes=(None, 0, 0, 0))),
        "uncached": jax.jit(
            jax.vmap(lambda z, x, s: generate_uncached(model, z, x, s), in_axes=(0, 0, 0))
        ),
        "logits": jax.jit(lambda z, pair: model.decode_logits(z, pair)),
    }


@pytest.fixture(scope="module")
def tiny():
    return _tiny_fixture(TINY)


@pytest.fixture(scope="module")
def tiny_rope():
    return _tiny_fixture(dataclasses.replace(TINY, positions="rope"))


@pytest.fixture(scope="module")
def tiny_input_only():
    return _tiny_fixture(dataclasses.replace(TINY, decoder_mask="input-only"))


@pytest.mark.parametrize(
    ("config", "total", "encoder", "decoder"),
    [
        (ModelConfig.pattern(), 243_360, 121_824, 121_536),
        (ModelConfig.arc_repo(), 6_475_520, 3_245_312, 3_230_208),
        (ModelConfig.arc_paper(), 44_604_928, 25_496_064, 19_108_864),
    ],
)
def test_parameter_counts(config, total, encoder, decoder):
    model = nnx.eval_shape(lambda: LPNModel(config, rngs=nnx.Rngs(0)))
    _, params = split_model(model)
    assert count_params(params) == total
    assert count_params(params["encoder"]) == encoder
    assert count_params(params["decoder"]) == decoder
    assert count_params(model) == total
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))

    # RoPE drops the row and column tables of both networks, nothing else.
    rope_config = dataclasses.replace(config, positions="rope")
    rope = nnx.eval_shape(lambda: LPNModel(rope_config, rngs=nnx.Rngs(0)))
    _, rope_params = split_model(rope)
    tables = (config.max_rows + config.max_cols) * config.embed_dim
    assert count_params(rope_params["encoder"]) == encoder - tables
    assert count_params(rope_params["decoder"]) == decoder - tables
    assert count_params(rope_params) == total - 2 * tables
    assert "row_position" not in rope_params["decoder"]
    assert "row_position" in params["decoder"]


def test_rope_pattern_parameter_count():
    model = nnx.eval_shape(
        lambda: LPNModel(ModelConfig.pattern(positions="rope"), rngs=nnx.Rngs(0))
    )
    assert count_params(model) == 243_360 - 2 * 20 * 96 == 239_520


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_heads", 0),
        ("decoder_layers", -1),
        ("dropout", 1.0),
        ("activation", "tanh"),
        ("dtype", "float16"),
        ("cell_normalisation", "max"),
        ("mlp_factor", 0.0),
        ("positions", "sinusoidal"),
        ("rope_max_freq", 0.5),
        ("rope_max_freq", float("nan")),
    ],
)
def test_config_validation(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(TINY, **{field: value})


def test_rope_needs_head_dim_divisible_by_4():
    with pytest.raises(ValueError, match="head_dim must be divisible by 4"):
        dataclasses.replace(TINY, positions="rope", head_dim=6)
    dataclasses.replace(TINY, positions="learned", head_dim=6)  # fine without RoPE
    with pytest.raises(ValueError, match="divisible by 4"):
        apply_rope(jnp.ones((1, 2, 6)), jnp.zeros(1), jnp.zeros(1))


def test_rope_attention_logits_depend_on_offsets_only():
    """q(r, c) . k(r', c') after rotation is a function of (r - r', c - c')."""
    q, k = jax.random.normal(jax.random.key(0), (2, 1, 3, 16))

    def logits(query_pos, key_pos):
        rq = apply_rope(q, jnp.array([query_pos[0]]), jnp.array([query_pos[1]]))
        rk = apply_rope(k, jnp.array([key_pos[0]]), jnp.array([key_pos[1]]))
        return np.asarray(jnp.einsum("nhd,nhd->h", rq, rk))

    base = logits((3, 5), (1, 9))
    for shift in ((0, 0), (7, 0), (0, 13), (20, 2), (-3, -5)):
        moved = logits((3 + shift[0], 5 + shift[1]), (1 + shift[0], 9 + shift[1]))
        np.testing.assert_allclose(moved, base, rtol=1e-4, atol=1e-4)
    # Rows and columns are separate: transposing the offset changes the logits, and so
    # does changing either offset alone.
    assert not np.allclose(logits((5, 3), (9, 1)), base, atol=1e-3)
    assert not np.allclose(logits((4, 5), (1, 9)), base, atol=1e-3)
    assert not np.allclose(logits((3, 6), (1, 9)), base, atol=1e-3)
    # (0, 0) is the identity; rotations keep norms; bfloat16 in, bfloat16 out.
    np.testing.assert_array_equal(apply_rope(q, jnp.zeros(1), jnp.zeros(1)), q)
    rotated = apply_rope(q, jnp.array([29]), jnp.array([17]))
    np.testing.assert_allclose(
        jnp.linalg.norm(rotated, axis=-1), jnp.linalg.norm(q, axis=-1), rtol=1e-5
    )
    assert apply_rope(q.astype(jnp.bfloat16), jnp.ones(1), jnp.ones(1)).dtype == jnp.bfloat16


def test_encode(tiny):
    pairs = _random_pairs(0, 3)
    q = jax.vmap(tiny["encode"], in_axes=(None, 0))(tiny["params"], pairs)
    assert isinstance(q, DiagGaussian)
    assert q.mean.shape == (3, 4) and q.log_var.shape == (3, 4)
    assert q.mean.dtype == jnp.float32 and np.isfinite(np.asarray(q.mean)).all()
    assert not np.allclose(q.mean[0], q.mean[1])
    direct = tiny["model"].encode(_index(pairs, 0))
    np.testing.assert_allclose(direct.mean, q.mean[0], rtol=1e-5, atol=1e-6)


def test_padding_is_masked(tiny):
    """Cells outside the shapes affect neither the encoder nor the decoder."""
    pair = _index(_random_pairs(1, 1), 0)
    pair["input_shapes"] = np.array([3, 2], np.int32)
    pair["output_shapes"] = np.array([2, 4], np.int32)
    other = dict(pair)
    for key, shape in (("inputs", pair["input_shapes"]), ("outputs", pair["output_shapes"])):
        grid = np.array(pair[key])
        inside = grid[: shape[0], : shape[1]].copy()
        grid = (grid + 3) % 10
        grid[: shape[0], : shape[1]] = inside
        other[key] = grid
    a, b = tiny["encode"](tiny["params"], pair), tiny["encode"](tiny["params"], other)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-5, atol=1e-6)
    z = jnp.linspace(-1.0, 1.0, 4)
    np.testing.assert_allclose(
        tiny["ll"](tiny["params"], z, pair), tiny["ll"](tiny["params"], z, other), rtol=1e-5
    )


def test_decoder_is_causal(tiny):
    """Rows ignore the output; cols ignore cols and cells; a cell ignores later cells."""
    pair = _index(_random_pairs(2, 1), 0)
    pair["output_shapes"] = np.array([5, 5], np.int32)
    z = jnp.array([0.3, -0.2, 1.0, 0.5])
    base = tiny["logits"](z, pair)
    changed = dict(pair, outputs=np.array(pair["outputs"]))
    changed["outputs"][2:, :] = (changed["outputs"][2:, :] + 1) % 10
    changed["outputs"][1, 3:] = (changed["outputs"][1, 3:] + 1) % 10  # cells from (1, 3) on
    new = tiny["logits"](z, changed)
    np.testing.assert_allclose(base["rows"], new["rows"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(base["cols"], new["cols"], rtol=1e-5, atol=1e-5)
    cells_a, cells_b = np.asarray(base["cells"]), np.asarray(new["cells"])
    np.testing.assert_allclose(cells_a[:1], cells_b[:1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cells_a[1, :4], cells_b[1, :4], rtol=1e-5, atol=1e-5)
    assert not np.allclose(cells_a[1, 4], cells_b[1, 4])
    shape_changed = tiny["logits"](z, dict(pair, output_shapes=np.array([5, 2], np.int32)))
    np.testing.assert_allclose(base["rows"], shape_changed["rows"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(base["cols"], shape_changed["cols"], rtol=1e-5, atol=1e-5)
    rows_changed = tiny["logits"](z, dict(pair, output_shapes=np.array([3, 5], np.int32)))
    np.testing.assert_allclose(base["rows"], rows_changed["rows"], rtol=1e-5, atol=1e-5)
    assert not np.allclose(base["cols"], rows_changed["cols"])


# The decoder mask, block by block (official: facts 2.4). One decoder layer, so a token's
# state depends exactly on the tokens it attends to; each test changes one group of tokens
# and checks which valid tokens' states move.
MASK_CFG = dataclasses.replace(TINY, max_rows=3, max_cols=3, decoder_layers=1)
R = C = 3
LAT = R * C + 2  # 0, 1: input shape tokens; 2..10: input cells; 11: latent
INPUT_CELLS = np.arange(2, 2 + R * C)
FIRST_OUT = LAT + 3  # 12, 13: output shape tokens; 14..22: output cells


@pytest.fixture(scope="module")
def mask_probe():
    model = LPNModel(MASK_CFG, rngs=nnx.Rngs(3))
    states = jax.jit(lambda z, pair: model.decoder.hidden_states(z, pair))
    rng = np.random.default_rng(0)
    pair = {
        "inputs": rng.integers(1, 10, (R, C)).astype(np.int32),
        "input_shapes": np.array([2, 2], np.int32),  # input cells (r, c), r, c < 2, are valid
        "outputs": rng.integers(1, 10, (R, C)).astype(np.int32),
        "output_shapes": np.array([2, 3], np.int32),  # output rows 0-1 are valid
    }
    z = jnp.array([0.5, -1.0, 0.25, 2.0])
    valid_in = INPUT_CELLS[[0, 1, 3, 4]]  # raster (0,0) (0,1) (1,0) (1,1)
    valid_out = FIRST_OUT + np.arange(6)  # raster (0,0) .. (1,2)
    valid = np.concatenate([[0, 1], valid_in, [LAT, LAT + 1, LAT + 2], valid_out])
    return states, pair, z, valid


def _moved(probe, *, z=None, **changes):
    """Indices of the valid tokens whose state changes when ``z`` or grid cells change."""
    states, pair, z0, valid = probe
    other = {name: np.array(value) for name, value in pair.items()}
    for name, cells in changes.items():  # name: "inputs" or "outputs"; cells: [(r, c)]
        for r, c in cells:
            other[name][r, c] = other[name][r, c] % 9 + 1  # another non-black colour
    before = np.asarray(states(z0, pair))
    after = np.asarray(states(z0 if z is None else z, other))
    moved = ~np.all(np.isclose(before, after, rtol=1e-6, atol=1e-6), axis=-1)
    return set(np.flatnonzero(moved).tolist()) & set(valid.tolist())


def test_decoder_mask_input_tokens_attend_to_the_latent(mask_probe):
    moved = _moved(mask_probe, z=jnp.array([-1.0, 0.5, 1.5, 0.0]))
    # every valid token moves with z: the input ones only through the latent token
    assert moved == set(mask_probe[3].tolist())


def test_decoder_mask_input_tokens_attend_to_inputs_only(mask_probe):
    moved = _moved(mask_probe, inputs=[(1, 1)])
    # input -> input: every valid input-side token sees the changed input cell
    assert {0, 1, *INPUT_CELLS[[0, 1, 3, 4]].tolist()} <= moved
    # ... and the latent and output tokens, which attend to all valid earlier tokens
    assert {LAT, LAT + 1, LAT + 2, FIRST_OUT, FIRST_OUT + 5} <= moved
    # input tokens never attend to output tokens
    assert not _moved(mask_probe, outputs=[(0, 0), (1, 2)]) & set(range(LAT))


def test_decoder_mask_outputs_attend_causally(mask_probe):
    # output cell (0, 1) is token FIRST_OUT + 1: later output tokens see it, earlier ones
    # (the output shape tokens, cell (0, 0)) and the latent do not
    moved = _moved(mask_probe, outputs=[(0, 1)])
    assert moved == set(range(FIRST_OUT + 1, FIRST_OUT + 6))


def test_decoder_mask_never_attends_to_padding(mask_probe):
    # input cells outside the 2 x 2 input shape and output cells outside 2 x 3
    padded_in = [(0, 2), (1, 2), (2, 0), (2, 1), (2, 2)]
    assert _moved(mask_probe, inputs=padded_in) == set()
    assert _moved(mask_probe, outputs=[(2, 0), (2, 1), (2, 2)]) == set()


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_attention_by_blocks_equals_the_dense_product(dropout):
    """``Block(split=s)``: the first ``s`` queries attend within the first ``s`` keys; the
    values and gradients equal one dense masked product (without dropout), and with
    dropout the split keeps the block's output finite and key-dependent."""
    from lpn_arc.model import Block

    cfg = dataclasses.replace(TINY, dropout=dropout)
    block = Block(cfg, rngs=nnx.Rngs(0))
    n, split = 9, 4
    x = jax.random.normal(jax.random.key(1), (n, cfg.embed_dim))
    valid = jnp.array([1, 1, 0, 1, 1, 1, 0, 1, 1], bool)
    head = jnp.pad(jnp.broadcast_to(valid[:split], (split, split)), ((0, 0), (0, n - split)))
    tail = valid[None, :] & (jnp.arange(n)[None, :] <= jnp.arange(split, n)[:, None])
    mask = jnp.concatenate([head, tail])

    def out(x, split, key=None):
        return block(x, mask, split=split, dropout_key=key)[0]

    np.testing.assert_allclose(out(x, split), out(x, None), rtol=1e-5, atol=1e-5)
    grad = jax.grad(lambda x, s: jnp.sum(out(x, s) ** 2))
    np.testing.assert_allclose(grad(x, split), grad(x, None), rtol=1e-4, atol=1e-4)
    if dropout:
        a, b = out(x, split, jax.random.key(2)), out(x, split, jax.random.key(3))
        assert np.all(np.isfinite(a)) and not np.allclose(a, b)
    with pytest.raises(ValueError, match="exclusive"):
        block(x, mask, split=split, prefix=(x[:2], x[:2]))


def test_log_likelihood_finite_and_depends_on_z(tiny):
    pairs = _random_pairs(3, 4)
    zs = jax.random.normal(jax.random.key(0), (4, 4))
    batched = jax.vmap(tiny["ll"], in_axes=(None, 0, 0))
    values = np.asarray(batched(tiny["params"], zs, pairs))
    assert values.shape == (4,) and np.isfinite(values).all() and (values <= 0).all()
    other = np.asarray(batched(tiny["params"], zs + 1.0, pairs))
    assert not np.allclose(values, other)
    single = tiny["ll"](tiny["params"], zs[0], _index(pairs, 0))
    assert single.shape == () and single.dtype == jnp.float32


def test_log_likelihood_terms_and_normalisation(tiny):
    pair = _index(_random_pairs(4, 1), 0)
    pair["output_shapes"] = np.array([3, 4], np.int32)
    z = jnp.array([0.1, 0.2, -0.3, 0.4])
    sum_model = LPNModel(dataclasses.replace(TINY, cell_normalisation="sum"), rngs=nnx.Rngs(0))
    nnx.update(sum_model, tiny["params"])

    @jax.jit
    def evaluate(z, pair):
        model = tiny["model"]
        return (
            model.log_likelihood_terms(z, pair),
            model.log_likelihood(z, pair),
            model.decode_logits(z, pair),
            sum_model.log_likelihood_terms(z, pair),
        )

    mean_terms, total, logits, sum_terms = evaluate(z, pair)
    np.testing.assert_allclose(
        total, mean_terms["rows"] + mean_terms["cols"] + mean_terms["cells"], rtol=1e-6
    )
    np.testing.assert_allclose(mean_terms["rows"], jax.nn.log_softmax(logits["rows"])[2], rtol=1e-6)
    np.testing.assert_allclose(mean_terms["cols"], jax.nn.log_softmax(logits["cols"])[3], rtol=1e-6)
    cell_lp = jax.nn.log_softmax(logits["cells"])[:3, :4]
    expected = np.take_along_axis(np.asarray(cell_lp), pair["outputs"][:3, :4, None], -1)
    np.testing.assert_allclose(mean_terms["cells"], expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(sum_terms["cells"], expected.sum(), rtol=1e-5)
    np.testing.assert_allclose(sum_terms["rows"], mean_terms["rows"], rtol=1e-6)


def test_gradients_finite(tiny):
    pairs = _random_pairs(5, 3)
    ll = log_likelihood_fn(split_model(tiny["model"])[0])

    def objective(params, z):
        return jnp.sum(jax.vmap(ll, in_axes=(None, None, 0))(params, z, pairs))

    grad_params, grad_z = jax.jit(jax.grad(objective, argnums=(0, 1)))(
        tiny["params"], jnp.ones((4,))
    )
    assert grad_z.shape == (4,) and np.isfinite(np.asarray(grad_z)).all()
    assert np.abs(np.asarray(grad_z)).sum() > 0
    leaves = jax.tree.leaves(grad_params)
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in leaves)


def _generation_inputs(seed, num, max_rows=5, max_cols=5):
    pairs = _random_pairs(seed, num, max_rows, max_cols)
    zs = 2.0 * jax.random.normal(jax.random.key(seed), (num, 4))
    return zs, pairs["inputs"], pairs["input_shapes"]


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


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("positions", ["learned", "rope"])
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
        pairs = {
            "inputs": inputs,
            "input_shapes": in_shapes,
            "outputs": grids,
            "output_shapes": shapes,
        }
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
        pair = {
            "inputs": inputs[i],
            "input_shapes": shapes[i],
            "outputs": grids[i],
            "output_shapes": out_shapes[i],
        }
        logits = tiny["logits"](zs[i], pair)
        rows, cols = (int(v) for v in out_shapes[i])
        assert int(jnp.argmax(logits["rows"])) + 1 == rows
        assert int(jnp.argmax(logits["cols"])) + 1 == cols
        predicted = np.asarray(jnp.argmax(logits["cells"], axis=-1))
        np.testing.assert_array_equal(predicted[:rows, :cols], np.asarray(grids[i])[:rows, :cols])


SMALL = dataclasses.replace(TINY, max_rows=3, max_cols=4, encoder_layers=1, decoder_layers=1)


def test_bfloat16_activations():
    model = LPNModel(dataclasses.replace(SMALL, dtype="bfloat16"), rngs=nnx.Rngs(1))
    graphdef, params = split_model(model)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
    pair = _index(_random_pairs(6, 1, 3, 4), 0)
    z = jnp.ones((4,))

    @jax.jit
    def run(params):
        q = encode_fn(graphdef)(params, pair)
        value = log_likelihood_fn(graphdef)(params, z, pair)
        grid, shape = generate_fn(graphdef)(params, z, pair["inputs"], pair["input_shapes"])
        return q, value, grid, shape

    q, value, grid, shape = run(params)
    assert q.mean.dtype == jnp.float32 and q.log_var.dtype == jnp.float32
    assert value.dtype == jnp.float32 and np.isfinite(float(value)) and float(value) <= 0
    assert grid.shape == (3, 4) and grid.dtype == jnp.int32 and shape.dtype == jnp.int32


def test_dropout_only_with_key():
    graphdef, params = split_model(
        LPNModel(dataclasses.replace(SMALL, dropout=0.2), rngs=nnx.Rngs(2))
    )
    pair = _index(_random_pairs(6, 1, 3, 4), 0)
    z = jnp.ones((4,))
    ll = jax.jit(log_likelihood_fn(graphdef))
    plain = ll(params, z, pair)
    dropped = [float(ll(params, z, pair, jax.random.key(k))) for k in range(2)]
    assert dropped[0] != dropped[1] and float(plain) not in dropped
    assert float(ll(params, z, pair)) == float(plain)
    encode = jax.jit(encode_fn(graphdef))
    q0, q1 = (encode(params, pair, jax.random.key(k)) for k in range(2))
    assert not np.allclose(q0.mean, q1.mean)


def test_shape_errors(tiny):
    pairs = _random_pairs(0, 2)
    with pytest.raises(ValueError, match=r"pair\['inputs'\] must be a 2-D grid of at most 5x5"):
        tiny["model"].encode(pairs)
    big = {**_index(pairs, 0), "inputs": np.zeros((6, 5), np.int32)}
    with pytest.raises(ValueError, match=r"at most 5x5 .* got shape \(6, 5\)"):
        tiny["model"].log_likelihood(jnp.ones(4), big)
    ragged = {**_index(pairs, 0), "outputs": np.zeros((4, 5), np.int32)}
    with pytest.raises(ValueError, match="padded alike"):
        tiny["model"].encode(ragged)
    with pytest.raises(ValueError, match="z must have shape"):
        tiny["model"].log_likelihood(jnp.ones((2, 4)), _index(pairs, 0))
    with pytest.raises(ValueError, match="missing keys"):
        tiny["model"].encode({"inputs": pairs["inputs"][0]})


@pytest.mark.parametrize("which", ["tiny", "tiny_rope"])
def test_size_buckets_give_the_full_size_values(which, request):
    """Grids padded to a smaller size (a bucket) score exactly as at the model's size."""
    fx = request.getfixturevalue(which)
    rng = np.random.default_rng(3)
    for i in range(4):
        rows, cols = (int(v) for v in rng.integers(1, 4, size=2))
        pair = {
            "inputs": np.zeros((5, 5), np.int32),
            "input_shapes": np.array([rows, cols], np.int32),
            "outputs": np.zeros((5, 5), np.int32),
            "output_shapes": np.array([cols, rows], np.int32),
        }
        pair["inputs"][:rows, :cols] = rng.integers(0, 10, size=(rows, cols))
        pair["outputs"][:cols, :rows] = rng.integers(0, 10, size=(cols, rows))
        size = (3, 4) if i % 2 else (3, 3)
        small = {**pair, "inputs": pair["inputs"][: size[0], : size[1]]}
        small["outputs"] = pair["outputs"][: size[0], : size[1]]
        z = jnp.asarray(rng.normal(size=4), jnp.float32)
        full_q, small_q = fx["encode"](fx["params"], pair), fx["encode"](fx["params"], small)
        np.testing.assert_allclose(full_q.mean, small_q.mean, rtol=1e-5, atol=1e-5)
        full, part = fx["ll"](fx["params"], z, pair), fx["ll"](fx["params"], z, small)
        np.testing.assert_allclose(full, part, rtol=1e-5, atol=1e-5)
        full_cells = fx["logits"](z, pair)["cells"][:cols, :rows]
        np.testing.assert_allclose(
            full_cells, fx["logits"](z, small)["cells"][:cols, :rows], rtol=1e-4, atol=1e-4
        )
