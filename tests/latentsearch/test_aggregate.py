import jax
import jax.numpy as jnp
import numpy as np
import pytest

import latentsearch as ls


def _slow_leave_one_out(x, axis):
    x = np.asarray(x)
    axis = axis % x.ndim
    n = x.shape[axis]
    views = []
    for i in range(n):
        others = [np.take(x, j, axis=axis) for j in range(n) if j != i]
        views.append(np.stack(others, axis=axis))
    return np.stack(views, axis=axis)


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -2, -3, -4])
def test_leave_one_out_every_axis_of_4d_array(axis):
    x = np.arange(3 * 4 * 5 * 2).reshape(3, 4, 5, 2)
    out = ls.leave_one_out(jnp.asarray(x), axis)
    ax = axis % 4
    expected_shape = x.shape[:ax] + (x.shape[ax], x.shape[ax] - 1) + x.shape[ax + 1 :]
    assert out.shape == expected_shape
    np.testing.assert_array_equal(out, _slow_leave_one_out(x, axis))


def test_leave_one_out_element_definition():
    x = jnp.arange(5) * 10
    out = ls.leave_one_out(x)
    for i in range(5):
        assert out[i].tolist() == [int(v) for k, v in enumerate(x) if k != i]


def test_leave_one_out_errors():
    with pytest.raises(ValueError, match="out of range"):
        ls.leave_one_out(jnp.zeros((3, 3)), axis=2)
    with pytest.raises(ValueError, match="at least 2"):
        ls.leave_one_out(jnp.zeros((1, 3)), axis=0)


def test_leave_one_out_under_jit():
    x = jnp.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(
        jax.jit(ls.leave_one_out, static_argnums=1)(x, 0), _slow_leave_one_out(x, 0)
    )


def test_aggregate_mean_with_and_without_mask():
    z = jax.random.normal(jax.random.key(0), (2, 4, 3))
    np.testing.assert_allclose(ls.aggregate_mean(z), z.mean(axis=1), rtol=1e-6)
    mask = jnp.array([[True, False, True, True], [False, False, False, False]])
    out = ls.aggregate_mean(z, mask)
    np.testing.assert_allclose(out[0], z[0, jnp.array([0, 2, 3])].mean(0), rtol=1e-6)
    np.testing.assert_allclose(out[1], 0.0)  # nothing masked in: the prior mean


def test_aggregate_mean_rejects_bad_mask():
    with pytest.raises(ValueError, match="pair_mask must have shape"):
        ls.aggregate_mean(jnp.zeros((4, 3)), jnp.ones((3,), bool))


def test_product_of_experts_closed_form():
    mean = jnp.array([[0.0, 1.0], [2.0, 3.0], [10.0, 10.0]])
    log_var = jnp.log(jnp.array([[1.0, 2.0], [3.0, 2.0], [0.1, 0.1]]))
    q = ls.DiagGaussian(mean, log_var)
    mask = jnp.array([True, True, False])
    p = ls.product_of_experts(q, mask)
    prec = 1 / np.array([[1.0, 2.0], [3.0, 2.0]])
    var = 1 / prec.sum(0)
    np.testing.assert_allclose(p.variance, var, rtol=1e-5)
    np.testing.assert_allclose(p.mean, var * (prec * np.asarray(mean[:2])).sum(0), rtol=1e-5)
    with_prior = ls.product_of_experts(q, mask, include_prior=True)
    np.testing.assert_allclose(with_prior.variance, 1 / (prec.sum(0) + 1), rtol=1e-5)
    empty = ls.product_of_experts(q, jnp.zeros(3, bool), include_prior=True)
    np.testing.assert_allclose(empty.mean, 0.0)
    np.testing.assert_allclose(empty.log_var, 0.0, atol=1e-6)
