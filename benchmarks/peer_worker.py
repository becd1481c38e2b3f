"""One measurement of one side of the peer benchmark, in its own process (see bench_peer.py).

Run by ``bench_peer.py`` (and ``bench_runtime.py``, ``bench_time_to_accuracy.py``) as a
plain script, never imported by them: ``--side ours`` runs under this repository's Python,
``--side official`` under the official code's own environment (its old jax, flax and
optax), where the parent puts the official checkout on ``PYTHONPATH``. So this file imports
neither the ``benchmarks`` package nor anything at its top but the standard library (our
side imports ``lpn_arc`` and ``latentsearch`` inside its functions). Nothing of the official
code is copied here; its modules are imported from the user's checkout.

Both sides get the same PATTERN tasks (an ``.npz`` the parent writes), the same model
configuration (paper Table 13: encoder and decoder 2 layers, 6 heads x 16, MLP factor 1,
latent 32, 10x10 grids) and the same work:

- ``train_mean`` / ``train_grad1``: one training step (loss, gradients, clipped AdamW update)
  on a batch of tasks, with the encoder mean or one Adam gradient step (lr 0.1, b2 0.9)
  inside the loss;
- ``search_grad100``: encode the 3 specification pairs and run 100 Adam steps (lr 0.1,
  b2 0.9) of latent gradient ascent, per task (no decoding);
- ``evaluate_grad100``: the same, then greedy decoding of the best and second-best latents
  for the query input (the whole evaluation of a task).

Prints one JSON line: ``{"compile_s", "times_s": [...], "per": "step" | "task", "tasks",
"peak_rss_bytes"}``; the compile time is the first call (trace, compile and run) and the
times are later calls.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

LATENT, LAYERS, HEADS, HEAD_DIM, MLP = 32, 2, 6, 16, 1.0  # grids: the tasks' own size
SEARCH_LR, SEARCH_B2 = 0.1, 0.9


def _timed(fn, repeats):
    """``(first call seconds, [seconds of each later call])``; ``fn`` blocks on its output."""
    start = time.perf_counter()
    fn()
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return compile_s, times


# --------------------------------------------------------------------------------------
# This repository


def ours(measurement, tasks, repeats, decoder_mask="official"):
    """Times our side: ``((compile_s, times), per, tasks)``."""
    import jax

    fn, args, per, num = ours_program(measurement, tasks, decoder_mask)

    def run():
        jax.block_until_ready(fn(*args))

    return _timed(run, repeats), per, num


def ours_program(measurement, tasks, decoder_mask="official"):
    """``(jitted fn, args, per, tasks)``: our side of one measurement, not yet run (also
    used by ``profile_step.py``, which compiles and traces the same programs)."""
    import dataclasses

    import jax
    import jax.numpy as jnp
    from lpn_arc.config import get_preset, parse_search
    from lpn_arc.data import Pair
    from lpn_arc.evaluation.inference import batch_fn
    from lpn_arc.model import encode_fn, log_likelihood_fn, precompute_fn
    from lpn_arc.search import build_search
    from lpn_arc.training import init_training, make_train_step

    import latentsearch as ls

    num = tasks["inputs"].shape[0]
    search = "mean" if measurement == "train_mean" else "grad:1"
    config = dataclasses.replace(get_preset("pattern"), batch_size=num, train_search=search)
    model = dataclasses.replace(config.model, decoder_mask=decoder_mask)
    config = dataclasses.replace(config, model=model)
    graphdef, params, optimizer, opt_state = init_training(config)
    key = jax.random.key(0)
    arrays = Pair(**{k: jnp.asarray(v, jnp.int32) for k, v in tasks.items()})
    if measurement.startswith("train"):
        step = make_train_step(graphdef, config, optimizer)
        return step, (params, opt_state, arrays, key), "step", num

    spec_pairs = jax.tree.map(lambda v: v[:, :-1], arrays)
    keys = jax.random.split(key, num)
    spec = parse_search("grad:100", lr=SEARCH_LR)  # clipped Adam, as the official search
    if measurement == "search_grad100":
        encode, log_likelihood = encode_fn(graphdef), log_likelihood_fn(graphdef)
        precompute = precompute_fn(graphdef)

        def one(pairs, key):
            result = ls.infer(
                params,
                log_likelihood,
                pairs,
                key,
                encode=encode,
                precompute=precompute,
                searcher=build_search(spec).searcher,
                num_steps=100,
                keep=2,
            )
            return result.latents

        return jax.jit(jax.vmap(one)), (spec_pairs, keys), "task", num

    batch = batch_fn(graphdef, spec, 2, "mean")
    mask = jnp.ones(spec_pairs.inputs.shape[:2], bool)
    query = arrays.inputs[:, -1], arrays.input_shapes[:, -1]
    return batch, (params, spec_pairs, mask, *query, keys), "task", num


# --------------------------------------------------------------------------------------
# The official code (imported from the user's checkout)


def official(measurement, tasks, repeats, steps=100, chunk=None):
    """Times the official side (its ``src`` package importable: the checkout on
    ``PYTHONPATH``). ``evaluate_steps``: its whole evaluation of a task (encode, ``steps``
    clipped-Adam steps, greedy decoding of the two best latents) on the tasks' own grid
    size, ``chunk`` tasks per call."""
    import jax.numpy as jnp

    # (B, N, R, C, 2) grids and (B, N, 2, 2) shapes [[rows_in, rows_out], [cols_in, cols_out]]
    pairs = jnp.stack([tasks["inputs"], tasks["outputs"]], axis=-1).astype(jnp.uint8)
    shapes = jnp.stack([tasks["input_shapes"], tasks["output_shapes"]], axis=-1).astype(jnp.int32)
    grad_kwargs = dict(
        num_steps=1, lr=SEARCH_LR, optimizer="adam", optimizer_kwargs={"b2": SEARCH_B2}
    )
    mode, kwargs = ("mean", {}) if measurement == "train_mean" else ("gradient_ascent", grad_kwargs)
    model, params = _official_model(pairs, shapes, mode, kwargs)
    if measurement.startswith("train"):
        run = _official_train(model, params, pairs, shapes, mode, kwargs)
        return _timed(run, repeats), "step", pairs.shape[0]
    search_kwargs = dict(
        num_steps=steps, lr=SEARCH_LR, optimizer="adam", optimizer_kwargs={"b2": SEARCH_B2}
    )
    if measurement == "search_grad100":
        run = _official_search(model, params, pairs, shapes, search_kwargs)
    else:
        run = _official_evaluate(model, params, pairs, shapes, search_kwargs, chunk)
    return _timed(run, repeats), "task", pairs.shape[0]


def _official_model(pairs, shapes, mode, kwargs):
    """The official LPN of the paper's Table 13 on the tasks' grid size, initialised."""
    import jax
    from src.models.lpn import LPN
    from src.models.transformer import DecoderTransformer, EncoderTransformer
    from src.models.utils import (
        DecoderTransformerConfig,
        EncoderTransformerConfig,
        TransformerLayerConfig,
    )

    rows, cols = pairs.shape[-3], pairs.shape[-2]
    layer = TransformerLayerConfig(num_heads=HEADS, emb_dim_per_head=HEAD_DIM,
                                   mlp_dim_factor=MLP, dropout_rate=0.0,
                                   attention_dropout_rate=0.0)  # fmt: skip
    encoder = EncoderTransformer(
        EncoderTransformerConfig(
            transformer_layer=layer,
            num_layers=LAYERS,
            latent_dim=LATENT,
            variational=True,
            max_rows=rows,
            max_cols=cols,
        )
    )
    decoder = DecoderTransformer(
        DecoderTransformerConfig(
            transformer_layer=layer, num_layers=LAYERS, max_rows=rows, max_cols=cols
        )
    )
    model = LPN(encoder=encoder, decoder=decoder)
    key = jax.random.PRNGKey(0)
    variables = model.init({"params": key, "latents": key, "dropout": key}, pairs[:1],
                           shapes[:1], dropout_eval=False, prior_kl_coeff=1e-4, mode=mode,
                           **kwargs)  # fmt: skip
    return model, variables["params"]


def _official_train(model, params, pairs, shapes, mode, kwargs):
    """One official training step (clipped AdamW, its warm-up schedule), as a timed call."""
    import jax
    import optax
    from flax.training.train_state import TrainState

    schedule = optax.warmup_exponential_decay_schedule(
        init_value=4e-4 / 100, peak_value=4e-4, warmup_steps=99, transition_steps=1,
        end_value=4e-4, decay_rate=1.0,
    )  # fmt: skip
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule))
    state = TrainState.create(apply_fn=model.apply, tx=tx, params=params)
    key = jax.random.PRNGKey(0)

    @jax.jit
    def step(state, pairs, shapes, key):
        grads, metrics = jax.grad(state.apply_fn, has_aux=True)(
            {"params": state.params}, pairs, shapes, dropout_eval=False, prior_kl_coeff=1e-4,
            mode=mode, rngs={"latents": key}, **kwargs,
        )  # fmt: skip
        return state.apply_gradients(grads=grads["params"]), metrics

    return lambda: jax.block_until_ready(step(state, pairs, shapes, key))


def _official_search(model, params, pairs, shapes, search_kwargs):
    """Encode the specification and run the official latent search, per task (vmapped)."""
    import jax

    spec, spec_shapes = pairs[:, :-1], shapes[:, :-1]
    keys = jax.random.split(jax.random.PRNGKey(0), pairs.shape[0])

    def one(spec, spec_shapes, key):
        def search(module):
            mu, logvar = module.encoder(spec, spec_shapes, True)
            latents, *_ = module._sample_latents(mu, logvar, key)
            return module._get_gradient_ascent_context(
                latents, spec, spec_shapes, key, **search_kwargs
            )

        return model.apply({"params": params}, method=search)

    fn = jax.jit(jax.vmap(one))
    return lambda: jax.block_until_ready(fn(spec, spec_shapes, keys))


def _official_evaluate(model, params, pairs, shapes, search_kwargs, chunk):
    """The official evaluation of each task's last pair (its ``generate_output``: search,
    then greedy decoding of the two best latents), ``chunk`` tasks per call."""
    import jax
    from src.models.lpn import LPN

    num = pairs.shape[0]
    spec, spec_shapes = pairs[:, :-1], shapes[:, :-1]
    query, query_shape = pairs[:, -1, ..., 0], shapes[:, -1, :, 0]
    keys = jax.random.split(jax.random.PRNGKey(0), num)

    def one(spec, spec_shapes, query, query_shape, key):
        # one task as a batch of one (its layers need a batch axis), as its evaluator runs
        out = model.apply(
            {"params": params}, spec[None], spec_shapes[None], query[None],
            query_shape[None], key, dropout_eval=True, mode="gradient_ascent",
            return_two_best=True, method=LPN.generate_output, **search_kwargs,
        )  # fmt: skip
        return out[:4]

    fn = jax.jit(jax.vmap(one))
    size = chunk or num
    if num % size:
        raise ValueError(f"{num} tasks do not split into chunks of {size}")
    chunks = [slice(i, i + size) for i in range(0, num, size)]

    def run():
        for c in chunks:
            jax.block_until_ready(fn(spec[c], spec_shapes[c], query[c], query_shape[c], keys[c]))

    return run


def ours_model(tasks, repeats, checkpoint, search, stop, chunk, lr=SEARCH_LR):
    """Times our whole evaluation of each task's last pair on a trained model (``lpn-arc
    eval --holdout last``), ``chunk`` queries per compiled call."""
    import jax
    from lpn_arc.config import parse_search
    from lpn_arc.data import Pair
    from lpn_arc.evaluation import evaluate_tasks
    from lpn_arc.pretrained import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    spec = parse_search(search, lr=lr)  # clipped Adam (b2 0.9), as the official search
    num = tasks["inputs"].shape[0]

    def run():
        evaluate_tasks(ckpt.graphdef, ckpt.params, Pair(**tasks), spec, jax.random.key(0),
                       holdout="last", stop=stop, batch_size=chunk)  # fmt: skip

    return _timed(run, repeats), "task", num


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", choices=("ours", "official"), required=True)
    parser.add_argument(
        "--measurement",
        choices=("train_mean", "train_grad1", "search_grad100", "evaluate_grad100",
                 "evaluate_steps", "evaluate_model"),
        required=True,
        help="evaluate_steps: the official evaluation with --steps; evaluate_model: ours on "
        "--checkpoint with --search and --stop (time to accuracy)",
    )  # fmt: skip
    parser.add_argument("--steps", type=int, default=100, help="official search steps")
    parser.add_argument("--chunk", type=int, default=None, help="tasks per compiled call")
    parser.add_argument("--checkpoint", help="ours: the trained model (evaluate_model)")
    parser.add_argument("--search", default="grad:20", help="ours: search (evaluate_model)")
    parser.add_argument("--stop", default="none", help="ours: stop rule (evaluate_model)")
    parser.add_argument("--lr", type=float, default=SEARCH_LR, help="ours: (evaluate_model)")
    parser.add_argument("--tasks", required=True, help="the .npz of PATTERN tasks")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--decoder-mask",
        choices=("official", "input-only"),
        default="official",
        help="our decoder's mask (with --side ours)",
    )
    args = parser.parse_args()
    import numpy as np

    with np.load(args.tasks) as data:
        tasks = {name: data[name] for name in data.files}
    if args.measurement == "evaluate_model":
        (compile_s, times), per, num = ours_model(
            tasks,
            args.repeats,
            args.checkpoint,
            args.search,
            args.stop,
            args.chunk or 32,
            args.lr,
        )
    elif args.side == "ours":
        (compile_s, times), per, num = ours(
            args.measurement, tasks, args.repeats, args.decoder_mask
        )
    else:
        measurement = "evaluate_grad100" if args.measurement == "evaluate_steps" else None
        (compile_s, times), per, num = official(
            measurement or args.measurement, tasks, args.repeats, args.steps, args.chunk
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    print(
        json.dumps(
            {
                "compile_s": compile_s,
                "times_s": times,
                "per": per,
                "tasks": num,
                "peak_rss_bytes": peak,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
