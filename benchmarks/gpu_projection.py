"""The GPU path on paper: FLOPs and memory of a training step, and the time they project.

For the ``arc-paper`` and ``arc-repo`` presets, one training step (the preset's training
search, 30 x 30 grids, 4 pairs) is lowered and compiled here, on the CPU, for a batch of
``--per-device`` tasks (the tasks one accelerator holds at once), every grid padded to
30 x 30 (size buckets off: an upper bound, as ARC's smaller tasks train in smaller buckets):

- ``flops_per_task``: XLA's cost analysis of the compiled step, divided by its tasks (the
  step is data-parallel, so FLOPs grow linearly with the batch);
- ``step_flops``: that times the preset's tasks per optimiser step (batch x accumulation);
- ``memory_per_device``: XLA's memory analysis of the compiled step (arguments, outputs
  and temporaries, less aliased buffers), for ``--per-device`` tasks;
- ``projected_hours``: the preset's steps x ``step_flops`` on one H100 (989 TFLOP/s dense
  bfloat16) at ``--utilisation`` of that peak.

A projection, not a measurement: where an accelerator is available,
``benchmarks/gpu_check.sh`` measures a step's time and peak memory. Writes
``results/gpu_projection.json``.

    python -m benchmarks.gpu_projection [--per-device 2 8] [--utilisation 0.4]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys

from benchmarks import common

H100_BF16_FLOPS = 989e12  # dense bfloat16 tensor-core peak of an H100 SXM
PRESETS = ("arc-paper", "arc-repo")


def step_costs(preset: str, per_device: int) -> dict:
    """FLOPs and memory of one compiled training step of ``preset`` on ``per_device`` tasks."""
    import jax
    from lpn_arc.config import get_preset
    from lpn_arc.data import TrainingData
    from lpn_arc.model import count_params
    from lpn_arc.training import data_mesh, init_training, make_train_step, shard_batch

    preset_config = get_preset(preset)
    data = dataclasses.replace(preset_config.data, buckets=False)  # every task at 30 x 30
    config = dataclasses.replace(preset_config, data=data, batch_size=per_device, grad_accum=1)
    mesh = data_mesh()
    graphdef, params, optimizer, opt_state = init_training(config)
    step = make_train_step(graphdef, config, optimizer, search=config.search_at(0), mesh=mesh)
    batch = shard_batch(mesh, TrainingData(config).batch(0))
    compiled = step.lower(params, opt_state, batch, jax.random.key(0)).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    flops_per_task = float(cost["flops"]) / per_device
    tasks_per_step = preset_config.batch_size * preset_config.grad_accum
    return {
        "parameters": count_params(params),
        "train_search": str(config.train_search),
        "compute_dtype": str(config.model.compute_dtype),
        "flops_per_task": flops_per_task,
        "tasks_per_step": tasks_per_step,
        "step_flops": flops_per_task * tasks_per_step,
        "steps": preset_config.steps,
        "memory_per_device": common.compiled_memory(compiled)["total_bytes"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument(
        "--per-device",
        type=int,
        nargs="+",
        default=[2, 8],
        help="tasks one device holds (one compiled step each)",
    )
    parser.add_argument("--utilisation", type=float, default=0.4, help="fraction of peak")
    args = parser.parse_args(argv)
    rows, details = [], {}
    for preset, per_device in itertools.product(args.presets, args.per_device):
        print(f"{preset}, {per_device} per device: compiling one step", file=sys.stderr)
        costs = step_costs(preset, per_device)
        seconds = costs["step_flops"] / (args.utilisation * H100_BF16_FLOPS)
        costs["projected_step_seconds"] = seconds
        costs["projected_hours"] = seconds * costs["steps"] / 3600
        variant = f"{preset}/{per_device}-per-device"
        details[variant] = costs
        for metric, unit in (("flops_per_task", "FLOP"), ("step_flops", "FLOP"),
                             ("memory_per_device", "bytes"), ("projected_hours", "h")):  # fmt: skip
            rows.append(common.record("gpu_projection", variant, metric, costs[metric], unit))
    extra = {"assumptions": {"device": "one H100 SXM", "peak_flops": H100_BF16_FLOPS,
                             "utilisation": args.utilisation,
                             "source": "XLA cost and memory analysis of the step compiled "
                                       "for the CPU"},
             "variants": details}  # fmt: skip
    path = common.write_results("gpu_projection", rows, seed=0, extra=extra)
    common.print_table(rows)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
