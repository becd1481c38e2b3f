"""Tests of the LPN encoder/decoder: parameter counts, masking, likelihood and generation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from lpn_arc.model import (
    LPNModel,
    ModelConfig,
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


@pytest.fixture(scope="module")
def tiny():
    model = LPNModel(TINY, rngs=nnx.Rngs(0))
    graphdef, params = split_model(model)
    return {
        "model": model,
        "params": params,
        "encode": jax.jit(encode_fn(graphdef)),
        "ll": jax.jit(log_likelihood_fn(graphdef)),
        "generate": jax.jit(jax.vmap(generate_fn(graphdef), in_axes=(None, 0, 0, 0))),
        "uncached": jax.jit(
            jax.vmap(lambda z, x, s: model.generate_uncached(z, x, s), in_axes=(0, 0, 0))
        ),
        "logits": jax.jit(lambda z, pair: model.decode_logits(z, pair)),
    }


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
    ],
)
def test_config_validation(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(TINY, **{field: value})


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


def _generation_inputs(seed, num):
    pairs = _random_pairs(seed, num)
    zs = 2.0 * jax.random.normal(jax.random.key(seed), (num, 4))
    return zs, pairs["inputs"], pairs["input_shapes"]


def test_cached_generation_equals_uncached(tiny):
    early = jax.jit(generate_fn(split_model(tiny["model"])[0], stop_early=True))
    for seed in range(2):
        zs, inputs, shapes = _generation_inputs(seed, 6)
        fast_grids, fast_shapes = tiny["generate"](tiny["params"], zs, inputs, shapes)
        slow_grids, slow_shapes = tiny["uncached"](zs, inputs, shapes)
        np.testing.assert_array_equal(fast_shapes, slow_shapes)
        np.testing.assert_array_equal(fast_grids, slow_grids)
        for i in range(2):  # unbatched early-stopping loop gives the same output
            grid, shape = early(tiny["params"], zs[i], inputs[i], shapes[i])
            np.testing.assert_array_equal(shape, slow_shapes[i])
            np.testing.assert_array_equal(grid, slow_grids[i])


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
    with pytest.raises(ValueError, match=r"pair\['inputs'\] must have shape \(5, 5\)"):
        tiny["model"].encode(pairs)
    with pytest.raises(ValueError, match="z must have shape"):
        tiny["model"].log_likelihood(jnp.ones((2, 4)), _index(pairs, 0))
    with pytest.raises(ValueError, match="missing keys"):
        tiny["model"].encode({"inputs": pairs["inputs"][0]})
