"""The encoder and the teacher-forced decoder: masking, likelihood, gradients, dtypes, errors."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from lpn_arc.data import Pair
from lpn_arc.model import LPNModel, encode_fn, generate_fn, log_likelihood_fn, split_model

from latentsearch import DiagGaussian
from tests.arc.helpers import TINY, pair_at, random_pairs


def test_encode(tiny):
    pairs = random_pairs(0, 3)
    q = jax.vmap(tiny["encode"], in_axes=(None, 0))(tiny["params"], pairs)
    assert isinstance(q, DiagGaussian)
    assert q.mean.shape == (3, 4) and q.log_var.shape == (3, 4)
    assert q.mean.dtype == jnp.float32 and np.isfinite(np.asarray(q.mean)).all()
    assert not np.allclose(q.mean[0], q.mean[1])
    direct = tiny["model"].encode(pair_at(pairs, 0))
    np.testing.assert_allclose(direct.mean, q.mean[0], rtol=1e-5, atol=1e-6)


def test_padding_is_masked(tiny):
    """Cells outside the shapes affect neither the encoder nor the decoder."""
    pair = pair_at(random_pairs(1, 1), 0)._replace(
        input_shapes=np.array([3, 2], np.int32), output_shapes=np.array([2, 4], np.int32)
    )
    changed = {}
    for key, shape in (("inputs", pair.input_shapes), ("outputs", pair.output_shapes)):
        grid = np.array(getattr(pair, key))
        inside = grid[: shape[0], : shape[1]].copy()
        grid = (grid + 3) % 10
        grid[: shape[0], : shape[1]] = inside
        changed[key] = grid
    other = pair._replace(**changed)
    a, b = tiny["encode"](tiny["params"], pair), tiny["encode"](tiny["params"], other)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-5, atol=1e-6)
    z = jnp.linspace(-1.0, 1.0, 4)
    np.testing.assert_allclose(
        tiny["ll"](tiny["params"], z, pair), tiny["ll"](tiny["params"], z, other), rtol=1e-5
    )


def test_decoder_is_causal(tiny):
    """Rows ignore the output; cols ignore cols and cells; a cell ignores later cells."""
    pair = pair_at(random_pairs(2, 1), 0)._replace(output_shapes=np.array([5, 5], np.int32))
    z = jnp.array([0.3, -0.2, 1.0, 0.5])
    base = tiny["logits"](z, pair)
    outputs = np.array(pair.outputs)
    outputs[2:, :] = (outputs[2:, :] + 1) % 10
    outputs[1, 3:] = (outputs[1, 3:] + 1) % 10  # cells from (1, 3) on
    new = tiny["logits"](z, pair._replace(outputs=outputs))
    np.testing.assert_allclose(base["rows"], new["rows"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(base["cols"], new["cols"], rtol=1e-5, atol=1e-5)
    cells_a, cells_b = np.asarray(base["cells"]), np.asarray(new["cells"])
    np.testing.assert_allclose(cells_a[:1], cells_b[:1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cells_a[1, :4], cells_b[1, :4], rtol=1e-5, atol=1e-5)
    assert not np.allclose(cells_a[1, 4], cells_b[1, 4])
    shape_changed = tiny["logits"](z, pair._replace(output_shapes=np.array([5, 2], np.int32)))
    np.testing.assert_allclose(base["rows"], shape_changed["rows"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(base["cols"], shape_changed["cols"], rtol=1e-5, atol=1e-5)
    rows_changed = tiny["logits"](z, pair._replace(output_shapes=np.array([3, 5], np.int32)))
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
    pair = Pair(
        inputs=rng.integers(1, 10, (R, C)).astype(np.int32),
        input_shapes=np.array([2, 2], np.int32),  # input cells (r, c), r, c < 2, are valid
        outputs=rng.integers(1, 10, (R, C)).astype(np.int32),
        output_shapes=np.array([2, 3], np.int32),  # output rows 0-1 are valid
    )
    z = jnp.array([0.5, -1.0, 0.25, 2.0])
    valid_in = INPUT_CELLS[[0, 1, 3, 4]]  # raster (0,0) (0,1) (1,0) (1,1)
    valid_out = FIRST_OUT + np.arange(6)  # raster (0,0) .. (1,2)
    valid = np.concatenate([[0, 1], valid_in, [LAT, LAT + 1, LAT + 2], valid_out])
    return states, pair, z, valid


def _moved(probe, *, z=None, **changes):
    """Indices of the valid tokens whose state changes when ``z`` or grid cells change."""
    states, pair, z0, valid = probe
    other = {name: np.array(value) for name, value in pair.arrays().items()}
    for name, cells in changes.items():  # name: "inputs" or "outputs"; cells: [(r, c)]
        for r, c in cells:
            other[name][r, c] = other[name][r, c] % 9 + 1  # another non-black colour
    before = np.asarray(states(z0, pair))
    after = np.asarray(states(z0 if z is None else z, Pair(**other)))
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


def test_log_likelihood_finite_and_depends_on_z(tiny):
    pairs = random_pairs(3, 4)
    zs = jax.random.normal(jax.random.key(0), (4, 4))
    batched = jax.vmap(tiny["ll"], in_axes=(None, 0, 0))
    values = np.asarray(batched(tiny["params"], zs, pairs))
    assert values.shape == (4,) and np.isfinite(values).all() and (values <= 0).all()
    other = np.asarray(batched(tiny["params"], zs + 1.0, pairs))
    assert not np.allclose(values, other)
    single = tiny["ll"](tiny["params"], zs[0], pair_at(pairs, 0))
    assert single.shape == () and single.dtype == jnp.float32


def test_log_likelihood_terms_and_normalisation(tiny):
    pair = pair_at(random_pairs(4, 1), 0)._replace(output_shapes=np.array([3, 4], np.int32))
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
    expected = np.take_along_axis(np.asarray(cell_lp), pair.outputs[:3, :4, None], -1)
    np.testing.assert_allclose(mean_terms["cells"], expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(sum_terms["cells"], expected.sum(), rtol=1e-5)
    np.testing.assert_allclose(sum_terms["rows"], mean_terms["rows"], rtol=1e-6)


def test_gradients_finite(tiny):
    pairs = random_pairs(5, 3)
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


SMALL = dataclasses.replace(TINY, max_rows=3, max_cols=4, encoder_layers=1, decoder_layers=1)


def test_bfloat16_activations():
    model = LPNModel(dataclasses.replace(SMALL, dtype="bfloat16"), rngs=nnx.Rngs(1))
    graphdef, params = split_model(model)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
    pair = pair_at(random_pairs(6, 1, 3, 4), 0)
    z = jnp.ones((4,))

    @jax.jit
    def run(params):
        q = encode_fn(graphdef)(params, pair)
        value = log_likelihood_fn(graphdef)(params, z, pair)
        grid, shape = generate_fn(graphdef)(params, z, pair.inputs, pair.input_shapes)
        return q, value, grid, shape

    q, value, grid, shape = run(params)
    assert q.mean.dtype == jnp.float32 and q.log_var.dtype == jnp.float32
    assert value.dtype == jnp.float32 and np.isfinite(float(value)) and float(value) <= 0
    assert grid.shape == (3, 4) and grid.dtype == jnp.int32 and shape.dtype == jnp.int32


def test_dropout_only_with_key():
    graphdef, params = split_model(
        LPNModel(dataclasses.replace(SMALL, dropout=0.2), rngs=nnx.Rngs(2))
    )
    pair = pair_at(random_pairs(6, 1, 3, 4), 0)
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
    pairs = random_pairs(0, 2)
    with pytest.raises(ValueError, match=r"pair.inputs must be a 2-D grid of at most 5x5"):
        tiny["model"].encode(pairs)
    big = pair_at(pairs, 0)._replace(inputs=np.zeros((6, 5), np.int32))
    with pytest.raises(ValueError, match=r"at most 5x5 .* got shape \(6, 5\)"):
        tiny["model"].log_likelihood(jnp.ones(4), big)
    ragged = pair_at(pairs, 0)._replace(outputs=np.zeros((4, 5), np.int32))
    with pytest.raises(ValueError, match="padded alike"):
        tiny["model"].encode(ragged)
    with pytest.raises(ValueError, match="z must have shape"):
        tiny["model"].log_likelihood(jnp.ones((2, 4)), pair_at(pairs, 0))
    with pytest.raises(ValueError, match="pair must be a lpn_arc.data.Pair, got dict"):
        tiny["model"].encode(pair_at(pairs, 0)._asdict())


@pytest.mark.parametrize("which", ["tiny", "tiny_rope"])
def test_size_buckets_give_the_full_size_values(which, request):
    """Grids padded to a smaller size (a bucket) score exactly as at the model's size."""
    fx = request.getfixturevalue(which)
    rng = np.random.default_rng(3)
    for i in range(4):
        rows, cols = (int(v) for v in rng.integers(1, 4, size=2))
        pair = Pair(
            inputs=np.zeros((5, 5), np.int32),
            input_shapes=np.array([rows, cols], np.int32),
            outputs=np.zeros((5, 5), np.int32),
            output_shapes=np.array([cols, rows], np.int32),
        )
        pair.inputs[:rows, :cols] = rng.integers(0, 10, size=(rows, cols))
        pair.outputs[:cols, :rows] = rng.integers(0, 10, size=(cols, rows))
        size = (3, 4) if i % 2 else (3, 3)
        small = pair._replace(
            inputs=pair.inputs[: size[0], : size[1]], outputs=pair.outputs[: size[0], : size[1]]
        )
        z = jnp.asarray(rng.normal(size=4), jnp.float32)
        full_q, small_q = fx["encode"](fx["params"], pair), fx["encode"](fx["params"], small)
        np.testing.assert_allclose(full_q.mean, small_q.mean, rtol=1e-5, atol=1e-5)
        full, part = fx["ll"](fx["params"], z, pair), fx["ll"](fx["params"], z, small)
        np.testing.assert_allclose(full, part, rtol=1e-5, atol=1e-5)
        full_cells = fx["logits"](z, pair)["cells"][:cols, :rows]
        np.testing.assert_allclose(
            full_cells, fx["logits"](z, small)["cells"][:cols, :rows], rtol=1e-4, atol=1e-4
        )
