"""A latent program network in pure JAX + optax on a toy domain, trained and searched.

The programs are sine waves ``y = sin(a * x + b)`` with a task-specific ``(a, b)``; a task
is a few (x, y) example pairs of one program. An encoder maps one pair to a Gaussian over a
4-d latent, a decoder predicts ``y`` from ``x`` and the latent. Training is the
leave-one-out objective of ``latentsearch.lpn_loss`` with one gradient step inside
("Grad 1"); at test time we compare the encoder mean alone with gradient ascent, random
search and evolution strategies on held-out tasks.

Run: ``python examples/toy_lpn.py [--steps 1500] [--seed 0]`` (about a minute on 2 CPUs).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import optax

import latentsearch as ls

POINTS, PAIRS, LATENT, HIDDEN, NOISE = 8, 4, 4, 64, 0.1


def make_tasks(key, num_tasks):
    """Tasks of PAIRS pairs, each pair POINTS (x, y) values of one sine program."""
    ka, kb, kx = jax.random.split(key, 3)
    a = jax.random.uniform(ka, (num_tasks, 1, 1), minval=0.5, maxval=2.0)
    b = jax.random.uniform(kb, (num_tasks, 1, 1), minval=-jnp.pi, maxval=jnp.pi)
    x = jax.random.uniform(kx, (num_tasks, PAIRS, POINTS), minval=-3.0, maxval=3.0)
    return {"x": x, "y": jnp.sin(a * x + b)}


def mlp_init(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        (jax.random.normal(k, (m, n)) / jnp.sqrt(m), jnp.zeros(n))
        for k, m, n in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def mlp(layers, h):
    for w, b in layers[:-1]:
        h = jax.nn.gelu(h @ w + b)
    w, b = layers[-1]
    return h @ w + b


def init_params(key):
    ke, kd = jax.random.split(key)
    return {
        "encoder": mlp_init(ke, [2 * POINTS, HIDDEN, HIDDEN, 2 * LATENT]),
        "decoder": mlp_init(kd, [1 + LATENT, HIDDEN, HIDDEN, 1]),
    }


def encode(params, pair):
    out = mlp(params["encoder"], jnp.concatenate([pair["x"], pair["y"]]))
    return ls.DiagGaussian(out[:LATENT], out[LATENT:])


def predict(params, z, x):
    inputs = jnp.concatenate([x[:, None], jnp.broadcast_to(z, (x.shape[0], LATENT))], axis=1)
    return mlp(params["decoder"], inputs)[:, 0]


def log_likelihood(params, z, pair):
    return -0.5 * jnp.sum((pair["y"] - predict(params, z, pair["x"])) ** 2) / NOISE**2


def train(params, key, steps, batch=64, lr=3e-3):
    optimizer = optax.adam(lr)
    searcher = ls.gradient_ascent(optax.sgd(0.01))

    def batch_loss(params, tasks, key):
        keys = jax.random.split(key, batch)
        losses, _ = jax.vmap(
            lambda t, k: ls.lpn_loss(
                params, encode, log_likelihood, t, k, searcher=searcher, num_steps=1
            )
        )(tasks, keys)
        return jnp.mean(losses)

    @jax.jit
    def step(params, opt_state, key):
        k_data, k_loss = jax.random.split(key)
        loss, grads = jax.value_and_grad(batch_loss)(params, make_tasks(k_data, batch), k_loss)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state = optimizer.init(params)
    for i, k in enumerate(jax.random.split(key, steps)):
        params, opt_state, loss = step(params, opt_state, k)
        if (i + 1) % max(1, steps // 5) == 0:
            print(f"  step {i + 1:5d}  loss {float(loss):10.2f}")
    return params


def evaluate(params, tasks, key, searcher, num_steps):
    """Mean squared error on the last pair, from a latent searched on the other pairs."""
    spec = jax.tree_util.tree_map(lambda x: x[:, :-1], tasks)
    query = jax.tree_util.tree_map(lambda x: x[:, -1], tasks)

    def one(spec, query, key):
        result = ls.infer(
            params,
            log_likelihood,
            spec,
            key,
            encode=encode,
            searcher=searcher,
            num_steps=num_steps,
        )
        error = jnp.mean((predict(params, result.best, query["x"]) - query["y"]) ** 2)
        return error, result.num_evaluations

    keys = jax.random.split(key, tasks["x"].shape[0])
    errors, evaluations = jax.jit(jax.vmap(one))(spec, query, keys)
    return float(jnp.mean(errors)), int(evaluations[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500, help="training steps")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args()
    key = jax.random.key(args.seed)
    k_init, k_train, k_test, k_eval = jax.random.split(key, 4)

    print(
        f"latentsearch {ls.__version__}: training a toy LPN on sine programs ({args.steps} steps)"
    )
    start = time.perf_counter()
    params = train(init_params(k_init), k_train, args.steps)
    print(f"  trained in {time.perf_counter() - start:.1f} s")

    tasks = make_tasks(k_test, 256)
    rows = [
        ("encoder mean (Grad 0)", ls.gradient_ascent(optax.adam(0.1, b2=0.9)), 0),
        ("gradient ascent, 20 steps", ls.gradient_ascent(optax.adam(0.1, b2=0.9)), 20),
        ("gradient ascent, 100 steps", ls.gradient_ascent(optax.adam(0.1, b2=0.9)), 100),
        ("random search, 250 samples", ls.random_search(250, 0.5), 1),
        ("evolution strategy, 20 x 10", ls.evolution_strategy(10, 0.1), 20),
    ]
    print(f"\n  {'search on 3 spec pairs':30s} {'test MSE':>9s} {'evaluations':>12s}")
    for name, searcher, steps in rows:
        mse, evals = evaluate(params, tasks, k_eval, searcher, steps)
        print(f"  {name:30s} {mse:9.4f} {evals:12d}")


if __name__ == "__main__":
    main()
