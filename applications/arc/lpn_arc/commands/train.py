"""``lpn-arc train``: a preset or a saved configuration, trained (or printed)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lpn_arc.allocator import allocator
from lpn_arc.commands.common import (
    clear_run,
    data_summary,
)


def run_train(args: argparse.Namespace) -> int:
    """``lpn-arc train``: a preset (or a saved config) with overrides, trained (or printed
    with ``--dry-run``)."""
    import jax

    from lpn_arc.config import apply_overrides, config_to_dict
    from lpn_arc.model import count_params
    from lpn_arc.training import init_params, train

    if args.distributed:
        jax.distributed.initialize()
    config = apply_overrides(_base_config(args), args)
    _, shapes = jax.eval_shape(lambda: init_params(config))
    if args.dry_run:
        print(json.dumps(config_to_dict(config), indent=2))
        print(f"parameters: {count_params(shapes):,}")
        return 0
    clear_run(Path(args.out), args)
    m, d = config.model, config.data
    print(
        f"{args.preset or args.config}: {count_params(shapes):,} parameters (enc "
        f"{m.encoder_layers} / dec {m.decoder_layers} layers, {m.num_heads}x{m.head_dim}, "
        f"latent {m.latent_dim}, {m.max_rows}x{m.max_cols}, {m.dtype}); data "
        f"{data_summary(d)}; {config.steps} steps of batch {config.batch_size} on "
        f"{jax.device_count()} device(s); allocator {allocator()}"
    )
    result = train(
        config,
        args.out,
        resume=args.resume,
        progress=not args.no_progress,
        log_lines=args.no_progress,
        check_memory=not args.no_memory_check,
        validate=_validator(config),
        tensorboard=args.tensorboard,
    )
    if result.interrupted:
        print(
            f"lpn-arc train: interrupted at step {result.step}; checkpoint written to "
            f"{args.out}; continue with --resume",
            file=sys.stderr,
        )
        return 130
    print(f"trained to step {result.step} in {result.seconds:.1f} s; checkpoints in {args.out}")
    return 0


def _base_config(args):
    """The preset of ``--preset``, or the saved configuration of ``--config``."""
    from lpn_arc.config import PRESETS, config_from_dict, get_preset

    if args.preset and args.config:
        raise ValueError("give --preset or --config, not both")
    if args.config:
        try:
            payload = json.loads(Path(args.config).read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"--config {args.config}: cannot read it ({err})") from None
        return config_from_dict(payload)
    if not args.preset:
        raise ValueError(
            "choose what to train with --preset (quickstart: minutes on a CPU; arc-cpu: about "
            "two hours; pattern, pattern-ood, arc-paper, arc-repo, arc-small, arc-overfit: the "
            f"paper-scale ones need an accelerator; all: {', '.join(sorted(PRESETS))}; "
            "--dry-run prints one's configuration and parameter count) or --config RUN/config.json"
        )
    return get_preset(args.preset)


def _validator(config):
    """The held-out validation of a run that asks for it."""
    if not config.validate_every:
        return None
    from lpn_arc.evaluation import validator

    return validator(config)
