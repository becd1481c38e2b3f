"""Benchmark: greedy generation of one output grid with the lpn-arc decoder, cached vs uncached.

Freshly initialised parameters (speed does not depend on training), one random input grid
and latent, and the output shape FORCED to the full grid so every cell is decoded: the
rows/cols head kernels are replaced so that the target class's column holds the LayerNormed
hidden state the head reads (the gradient of that logit with respect to its kernel column)
and every other column is zero; the target logit is then ``|LN(h)|^2 > 0`` and all others
0. The cells are the random model's own greedy predictions.

1. ``pattern``: the PATTERN model (``ModelConfig.pattern()``: 2+2 layers, 6 heads x 16,
   MLP 1, latent 32, 10x10), a forced 10x10 output: cached ``generate`` with
   ``stop_early`` True (the default) and False, and the uncached reference
   ``generate_uncached`` of ``tests/arc/helpers.py`` (one full decoder pass per token,
   102 passes), timed interleaved;
   plus a vmapped batch of 32 random (unforced) tasks, seconds per grid.
2. ``arc_repo``: the repo-size ARC model (``ModelConfig.arc_repo()``: 4+4 layers,
   8 heads x 32, MLP 4, latent 128, 30x30, bfloat16 activations), a 30x30 input and a
   forced 30x30 output: cached with ``stop_early`` True and False in bfloat16, cached in
   float32, the cost per generated cell (forced 1x1, 15x30 and 30x30 outputs), and the
   uncached decode. The uncached 30x30 decode is 902 full passes over 1,805 tokens: with
   ``--quick`` it is the median of 5 timed teacher-forced passes (``decode_logits``) times
   902 (``"extrapolated": true`` in the JSON); the full run also decodes once end to end
   when that estimate is under 10 minutes.

Times are medians of repeats of compiled calls; compilation is timed separately
(``compile_seconds``). The script re-executes itself with tcmalloc (or jemalloc) preloaded
where one is installed, as ``lpn-arc`` does (``LPN_ARC_ALLOCATOR=glibc`` keeps glibc); the
allocator is recorded. Run ``python -m benchmarks.bench_generate [--quick] [--seed N]``;
writes ``benchmarks/results/generate.json`` (schema: ``benchmarks/common.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from benchmarks import common

NAME = "generate"
BATCH = 32
TARGET_SECONDS = 3.5  # the target for one 30x30 grid with the repo-size ARC model
UNCACHED_SAMPLE_PASSES = 5
MAX_END_TO_END_SECONDS = 600.0


def _shape_forcer(graphdef):
    from tests.arc.helpers import shape_forcer  # test-only code (the repository root)

    return shape_forcer(graphdef)


def _setup(config, seed: int):
    """Model, graphdef, params and one random full-size input with a latent."""
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx
    from lpn_arc.model import LPNModel, split_model

    model = LPNModel(config, rngs=nnx.Rngs(seed))
    graphdef, params = split_model(model)
    rng = np.random.default_rng(seed)
    shape = (config.max_rows, config.max_cols)
    inputs = jnp.asarray(rng.integers(0, 10, shape), jnp.int32)
    input_shape = jnp.asarray(shape, jnp.int32)
    z = jnp.asarray(rng.normal(size=config.latent_dim), jnp.float32)
    return graphdef, params, z, inputs, input_shape


def _timed_rows(name: str, metric: str, timings: dict, per: float = 1.0) -> list[dict]:
    return [common.timing_record(name, label, metric, t, per=per) for label, t in timings.items()]


def _uncached_fn(graphdef):
    from flax import nnx

    from tests.arc.helpers import generate_uncached  # the reference of the tests

    def uncached(params, z, inputs, input_shape):
        return generate_uncached(nnx.merge(graphdef, params), z, inputs, input_shape)

    return uncached


def bench_pattern(seed: int, repeats: int) -> tuple[list[dict], dict]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from lpn_arc.model import ModelConfig, count_params, generate_fn

    config = ModelConfig.pattern()
    graphdef, params, z, inputs, input_shape = _setup(config, seed)
    full = (config.max_rows, config.max_cols)
    params = _shape_forcer(graphdef)(params, z, inputs, input_shape, full)
    args = (params, z, inputs, input_shape)
    fns = {
        "cached/stop_early": generate_fn(graphdef, stop_early=True),
        "cached/fixed": generate_fn(graphdef, stop_early=False),
        "uncached": _uncached_fn(graphdef),
    }
    rows, calls, outputs = [], {}, {}
    for label, fn in fns.items():
        compiled, seconds = common.compile_timed(fn, *args)
        rows.append(common.record("pattern", label, "compile_seconds", seconds, "s"))
        calls[label] = lambda c=compiled: c(*args)
        outputs[label] = jax.device_get(compiled(*args))
    print("pattern: timing", file=sys.stderr, flush=True)
    timings = common.time_interleaved(calls, repeats=repeats, warmup=1)
    rows += _timed_rows("pattern", "seconds_per_grid", timings)
    for label in ("cached/stop_early", "cached/fixed"):
        rows.append(
            common.record(
                "pattern",
                f"uncached/{label}",
                "speedup",
                timings["uncached"].median / timings[label].median,
                "x",
            )
        )

    # A vmapped batch of random tasks (random shapes, unforced), as evaluation decodes.
    rng = np.random.default_rng(seed + 1)
    batch_args = (
        params,
        jnp.asarray(rng.normal(size=(BATCH, config.latent_dim)), jnp.float32),
        jnp.asarray(rng.integers(0, 10, (BATCH, *full)), jnp.int32),
        jnp.asarray(rng.integers(1, config.max_rows + 1, (BATCH, 2)), jnp.int32),
    )
    batch_calls = {}
    for stop in (True, False):
        batched = jax.vmap(generate_fn(graphdef, stop_early=stop), in_axes=(None, 0, 0, 0))
        compiled, _ = common.compile_timed(batched, *batch_args)
        label = "cached/stop_early" if stop else "cached/fixed"
        batch_calls[f"{label}/batch{BATCH}"] = lambda c=compiled: c(*batch_args)
    print(f"pattern batch {BATCH}: timing", file=sys.stderr, flush=True)
    batch_timings = common.time_interleaved(batch_calls, repeats=repeats, warmup=1)
    rows += _timed_rows("pattern", "seconds_per_grid", batch_timings, per=BATCH)

    shapes = {label: np.asarray(out[1]).tolist() for label, out in outputs.items()}
    equal = all(np.array_equal(outputs[label][0], outputs["uncached"][0]) for label in outputs)
    rows.append(common.record("pattern", "model", "parameters", count_params(params), "params"))
    details = {
        "config": dataclasses.asdict(config),
        "parameters": count_params(params),
        "output_shapes": shapes,
        "cached_equals_uncached": equal,
        "uncached_passes": config.max_rows * config.max_cols + 2,
    }
    return rows, details


def bench_arc(seed: int, repeats: int, quick: bool) -> tuple[list[dict], dict]:
    """The repo-size ARC model at 30x30: cached decoding (:func:`_arc_cached`), then the
    uncached one (:func:`_arc_uncached`), compared."""
    import numpy as np
    from lpn_arc.model import ModelConfig, count_params

    config = ModelConfig.arc_repo()
    graphdef, params, z, inputs, input_shape = _setup(config, seed)
    num_params = count_params(params)
    print(f"arc_repo: {num_params:,} parameters", file=sys.stderr, flush=True)
    full = (config.max_rows, config.max_cols)
    force = _shape_forcer(graphdef)
    forced = {
        shape: force(params, z, inputs, input_shape, shape) for shape in (full, (15, 30), (1, 1))
    }
    rows = [common.record("arc_repo", "model", "parameters", num_params, "params")]
    cached_rows, timings, outputs = _arc_cached(
        config, graphdef, forced, (z, inputs, input_shape), repeats
    )
    rows += cached_rows
    passes = config.max_rows * config.max_cols + 2
    uncached_rows, uncached = _arc_uncached(
        graphdef, forced[full], (z, inputs, input_shape), outputs, passes, quick
    )
    rows += uncached_rows
    uncached_seconds = rows[-1]["value"]
    for label in ("cached/stop_early/bfloat16", "cached/fixed/bfloat16"):
        rows.append(
            common.record(
                "arc_repo",
                f"uncached/{label}",
                "speedup",
                uncached_seconds / timings[label].median,
                "x",
            )
        )
    t30 = timings["cached/stop_early/bfloat16"].median
    details = {
        "config": dataclasses.asdict(config),
        "parameters": num_params,
        "output_shapes": {label: np.asarray(out[1]).tolist() for label, out in outputs.items()},
        "cached_modes_equal": bool(
            np.array_equal(
                outputs["cached/stop_early/bfloat16"][0], outputs["cached/fixed/bfloat16"][0]
            )
        ),
        "uncached": uncached,
        "target": {
            "seconds_per_grid": TARGET_SECONDS,
            "measured": t30,
            "met": t30 <= TARGET_SECONDS,
        },
    }
    return rows, details


def _arc_cached(config, graphdef, forced: dict, query: tuple, repeats: int):
    """``(rows, timings, outputs)`` of the cached decoders on the forced outputs
    ``forced[shape]`` (params) for ``query`` ``(z, inputs, input_shape)``: bfloat16 with
    and without early stopping, float32, and the cost per generated cell."""
    import jax
    from flax import nnx
    from lpn_arc.model import LPNModel, generate_fn, split_model

    full = (config.max_rows, config.max_cols)
    config32 = dataclasses.replace(config, dtype="float32")
    graphdef32, _ = split_model(nnx.eval_shape(lambda: LPNModel(config32, rngs=nnx.Rngs(0))))
    variants = {
        "cached/stop_early/bfloat16": (generate_fn(graphdef, stop_early=True), full),
        "cached/fixed/bfloat16": (generate_fn(graphdef, stop_early=False), full),
        "cached/stop_early/float32": (generate_fn(graphdef32, stop_early=True), full),
    }
    rows, calls, outputs = [], {}, {}
    for label, (fn, shape) in variants.items():
        args = (forced[shape], *query)
        compiled, seconds = common.compile_timed(fn, *args)
        rows.append(common.record("arc_repo", label, "compile_seconds", seconds, "s"))
        calls[label] = lambda c=compiled, a=args: c(*a)
        outputs[label] = jax.device_get(compiled(*args))
    # The same compiled early-stopping decoder with smaller forced outputs: the cost per
    # generated cell, in the first and the second half of a 30x30 grid.
    early = jax.jit(generate_fn(graphdef, stop_early=True))
    for shape in ((1, 1), (15, 30)):
        args = (forced[shape], *query)
        label = f"cached/stop_early/bfloat16/{shape[0]}x{shape[1]}"
        calls[label] = lambda a=args: early(*a)
        outputs[label] = jax.device_get(early(*args))
    print("arc_repo cached: timing", file=sys.stderr, flush=True)
    timings = common.time_interleaved(calls, repeats=repeats, warmup=1)
    rows += _timed_rows("arc_repo", "seconds_per_grid", {k: timings[k] for k in variants})
    rows += _timed_rows(
        "arc_repo", "seconds_per_grid", {k: v for k, v in timings.items() if k not in variants}
    )
    t1 = timings["cached/stop_early/bfloat16/1x1"].median
    t15 = timings["cached/stop_early/bfloat16/15x30"].median
    t30 = timings["cached/stop_early/bfloat16"].median
    first, second = (t15 - t1) / (15 * 30 - 1), (t30 - t15) / (30 * 30 - 15 * 30)
    fixed, float32 = timings["cached/fixed/bfloat16"], timings["cached/stop_early/float32"]
    rows += [
        common.record("arc_repo", "cells_2_to_450", "seconds_per_cell", first, "s"),
        common.record("arc_repo", "cells_451_to_900", "seconds_per_cell", second, "s"),
        common.record(
            "arc_repo", "second_half/first_half", "per_cell_time_ratio", second / first, "x"
        ),
        common.record("arc_repo", "float32/bfloat16", "time_ratio", float32.median / t30, "x"),
        common.record("arc_repo", "fixed/stop_early", "time_ratio", fixed.median / t30, "x"),
    ]
    return rows, timings, outputs


def _arc_uncached(graphdef, params, query: tuple, outputs: dict, passes: int, quick: bool):
    """``(rows, details)`` of the uncached 30x30 decode of ``query`` ``(z, inputs,
    input_shape)`` with ``params`` (forced to the full grid): ``passes`` full teacher-forced
    decoder passes, a few timed and extrapolated, and end to end unless ``quick`` or too
    slow. The last row is its ``seconds_per_grid``."""
    import jax
    import numpy as np
    from flax import nnx
    from lpn_arc.data import Pair

    z, inputs, input_shape = query
    grid, shape = outputs["cached/stop_early/bfloat16"]
    pair = Pair(inputs, input_shape, grid, shape)
    logits, compile_pass = common.compile_timed(
        lambda p, z, pair: nnx.merge(graphdef, p).decode_logits(z, pair), params, z, pair
    )
    print("arc_repo uncached passes: timing", file=sys.stderr, flush=True)
    per_pass = common.time_fn(lambda: logits(params, z, pair), repeats=UNCACHED_SAMPLE_PASSES)
    estimate = per_pass.median * passes
    rows = [
        common.record("arc_repo", "uncached/bfloat16", "compile_seconds_pass", compile_pass, "s"),
        common.timing_record("arc_repo", "uncached/bfloat16", "seconds_per_pass", per_pass),
    ]
    uncached = {"passes": passes, "sampled_passes": UNCACHED_SAMPLE_PASSES, "estimate_s": estimate}
    end_to_end = None
    if not quick and estimate < MAX_END_TO_END_SECONDS:
        compiled, seconds = common.compile_timed(_uncached_fn(graphdef), params, *query)
        rows.append(common.record("arc_repo", "uncached/bfloat16", "compile_seconds", seconds, "s"))
        print(f"arc_repo uncached end to end (~{estimate:.0f} s)", file=sys.stderr, flush=True)
        start = time.perf_counter()
        slow_grid, slow_shape = jax.device_get(compiled(params, *query))
        end_to_end = time.perf_counter() - start
        uncached["end_to_end_s"] = end_to_end
        uncached["equals_cached"] = bool(
            np.array_equal(slow_grid, grid) and np.array_equal(slow_shape, shape)
        )
        uncached["cells_differing_from_cached"] = int(np.sum(slow_grid != grid))
    uncached_seconds = estimate if end_to_end is None else end_to_end
    uncached["extrapolated"] = end_to_end is None
    rows.append(
        common.record("arc_repo", "uncached/bfloat16", "seconds_per_grid", uncached_seconds, "s")
    )
    return rows, uncached


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 repeats instead of 7; the uncached 30x30 decode is extrapolated from 5 passes",
    )
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed of parameters and data")
    args = parser.parse_args(argv)
    common.rerun_with_fast_allocator(__file__, argv)
    repeats = 3 if args.quick else 7
    wall = time.perf_counter()
    rows, pattern = bench_pattern(args.seed, repeats)
    arc_rows, arc = bench_arc(args.seed, repeats, args.quick)
    rows += arc_rows
    value = {(r["name"], r["variant"], r["metric"]): r["value"] for r in rows}
    summary = (
        f"arc_repo ({arc['parameters']:,} params) 30x30: cached "
        f"{value['arc_repo', 'cached/stop_early/bfloat16', 'seconds_per_grid']:.2f} s/grid, "
        f"uncached {value['arc_repo', 'uncached/bfloat16', 'seconds_per_grid']:.0f} s/grid"
        f"{' (extrapolated)' if arc['uncached']['extrapolated'] else ''}, speed-up "
        f"{value['arc_repo', 'uncached/cached/stop_early/bfloat16', 'speedup']:.0f}x; "
        f"pattern 10x10: cached "
        f"{value['pattern', 'cached/stop_early', 'seconds_per_grid'] * 1e3:.1f} ms/grid, "
        f"speed-up {value['pattern', 'uncached/cached/stop_early', 'speedup']:.1f}x"
    )
    extra = {
        "quick": args.quick,
        "summary": summary,
        "extrapolated": arc["uncached"]["extrapolated"],
        "timing_repeats": repeats,
        "pattern": pattern,
        "arc_repo": arc,
        "definitions": {
            "seconds_per_grid": "one call of the compiled decoder for one input (median of "
            "repeats, variants interleaved round by round); for a batch, the call / batch",
            "compile_seconds": "jax.jit(fn).lower(...).compile() of that variant",
            "cached/stop_early": "LPNModel.generate (default): key/value cache, loop over the "
            "predicted rows * cols cells",
            "cached/fixed": "LPNModel.generate(stop_early=False): a fixed R * C - 1 steps",
            "uncached": "generate_uncached (tests/arc/helpers.py): one full teacher-forced "
            "decoder pass (2 R C + 5 tokens) per token, rows * cols + 2 passes",
            "uncached/bfloat16 seconds_per_grid": "end to end, or when 'extrapolated' the "
            "median of 5 timed decode_logits passes x 902",
            "speedup": "uncached seconds_per_grid / cached seconds_per_grid (same run)",
            "seconds_per_cell": "(t(15x30) - t(1x1)) / 449 and (t(30x30) - t(15x30)) / 450 "
            "for cached/stop_early forced outputs: constant per-cell cost shows one token of "
            "work per step, and t(1x1) << t(30x30) shows the early stop",
            "forced output": "rows/cols head kernels: target column = LayerNormed hidden "
            "state the head reads (its logit's gradient), other columns 0",
        },
        "wall_s": round(time.perf_counter() - wall, 1),
    }
    path = common.write_results(NAME, rows, args.seed, extra)
    common.print_table(rows)
    print(summary)
    print(f"wrote {path} ({extra['wall_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
