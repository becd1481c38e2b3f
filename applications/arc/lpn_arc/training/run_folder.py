"""What a run folder records besides checkpoints: ``config.json``, ``run.json`` (the seed,
the package versions, the command line of every session, the data provenance), written
atomically."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import jax

from lpn_arc.config import TrainConfig, config_to_dict

__all__ = ["atomic_write", "run_info", "write_config_json", "write_run_json"]

_VERSIONED = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "orbax-checkpoint",
    "numpy",
    "latentsearch",
    "lpn-arc",
)


def run_info(config: TrainConfig | None = None) -> dict[str, Any]:
    """The seed and what a result depends on besides the configuration: package versions,
    Python, platform, devices and the command line (written to every run folder)."""
    from importlib import metadata

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "seed": None if config is None else config.seed,
        "versions": versions,
        "platform": platform.platform(),
        "devices": [str(d) for d in jax.devices()],
        "argv": list(sys.argv),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def atomic_write(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file and a rename, so that a run
    killed mid-write leaves the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_run_json(
    run_dir: Path, config: TrainConfig, start: int, data: dict[str, Any] | None = None
) -> None:
    """``run.json``: the seed and versions of the latest session, every session's, and the
    training data's provenance (``"data"``, see :mod:`lpn_arc.data.provenance`)."""
    path = run_dir / "run.json"
    sessions = []
    if path.exists():
        try:
            sessions = list(json.loads(path.read_text()).get("sessions", []))
        except (ValueError, AttributeError):
            sessions = []
    info = run_info(config)
    sessions.append({"start_step": start, **info})
    record = {**info, "sessions": sessions}
    if data is not None:
        record["data"] = data
    atomic_write(path, json.dumps(record, indent=2))


def write_config_json(run_dir: Path, config: TrainConfig) -> None:
    """``config.json``: the run's configuration (:func:`lpn_arc.config.config_to_dict`)."""
    atomic_write(run_dir / "config.json", json.dumps(config_to_dict(config), indent=2))
