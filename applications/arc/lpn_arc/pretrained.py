"""Pretrained models shipped inside the package, loadable offline by name.

Each model is a folder of ``lpn_arc/pretrained_models/``: ``card.json`` (what it is, its
configuration, the command that trained it, where its data came from, its measured
accuracy and the SHA-256 of its parameters) and ``params/``, an Orbax checkpoint of the
parameters alone (no optimiser state: these models are for inference and search).

Anywhere a checkpoint is asked for, ``pretrained:NAME`` names one of them::

    lpn-arc models
    lpn-arc eval --checkpoint pretrained:pattern-6x6-grad1 --search grad:20
    lpn-arc solve --checkpoint pretrained:pattern-6x6-grad1 --task task.json

Example:
    >>> from lpn_arc.pretrained import list_pretrained
    >>> "pattern-6x6-grad1" in [card["name"] for card in list_pretrained()]
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

if TYPE_CHECKING:
    from lpn_arc.training import Checkpoint

__all__ = [
    "DEFAULT_MODEL",
    "MODELS_DIR",
    "PREFIX",
    "checkpoint_folder",
    "export_pretrained",
    "list_pretrained",
    "load_checkpoint",
    "load_pretrained",
    "pretrained_card",
    "pretrained_name",
]

MODELS_DIR = Path(__file__).resolve().parent / "pretrained_models"
WEIGHTS_LICENSE = "Apache-2.0"
"""The licence of the shipped weights, the package's own: they are trained by its code on
generated PATTERN tasks or on ARC-AGI data (itself Apache-2.0)."""
"""Where the shipped models are (one folder per name)."""
PREFIX = "pretrained:"
"""How a checkpoint option names a shipped model: ``pretrained:NAME``."""
DEFAULT_MODEL = "pattern-6x6-grad1"
"""The model used when a command needs one and none is given (the quickstart's task)."""


def _names() -> list[str]:
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / "card.json").is_file())


def pretrained_card(name: str) -> dict[str, Any]:
    """The card of the shipped model ``name``.

    Raises:
        ValueError: when no model has that name (the message lists the names).
    """
    path = MODELS_DIR / name / "card.json"
    if "/" in name or "\\" in name or not path.is_file():
        shipped = ", ".join(_names()) or "none"
        raise ValueError(f"no pretrained model named {name!r} (shipped: {shipped})")
    return json.loads(path.read_text(encoding="utf-8"))


def list_pretrained() -> list[dict[str, Any]]:
    """The cards of every shipped model, sorted by name."""
    return [pretrained_card(name) for name in _names()]


def _params_digest(params: Any) -> str:
    """SHA-256 of every parameter's dtype, shape and bytes (in tree order)."""
    digest = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(params):
        array = np.asarray(leaf)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def load_pretrained(name: str) -> Checkpoint:
    """Loads the shipped model ``name``: a :class:`~lpn_arc.training.Checkpoint` whose
    ``opt_state`` is None (the shipped models keep their parameters alone).

    Raises:
        ValueError: for an unknown name, or parameters that do not match the card's
            checksum.
    """
    import orbax.checkpoint as ocp

    from lpn_arc.config import config_from_dict
    from lpn_arc.training import Checkpoint, init_params

    card = pretrained_card(name)
    config = config_from_dict(card["config"])
    graphdef, abstract = jax.eval_shape(lambda: init_params(config))  # shapes only
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract
    )
    with ocp.StandardCheckpointer() as checkpointer:
        params = checkpointer.restore(MODELS_DIR / name / "params", abstract)
    if _params_digest(params) != card["params_sha256"]:
        raise ValueError(f"pretrained model {name!r}: its parameters do not match its checksum")
    return Checkpoint(config=config, graphdef=graphdef, params=params, step=int(card["step"]))


def pretrained_name(checkpoint: str | Path) -> str | None:
    """``NAME`` of a ``pretrained:NAME`` checkpoint option; None for a run folder."""
    text = str(checkpoint)
    return text[len(PREFIX) :] if text.startswith(PREFIX) else None


def load_checkpoint(checkpoint: str | Path) -> Checkpoint:
    """A run folder written by ``lpn-arc train``, or ``pretrained:NAME``: a
    :class:`~lpn_arc.training.Checkpoint` of the parameters, whose ``opt_state`` is None
    (for inference and search; :func:`lpn_arc.training.load_run` restores it)."""
    name = pretrained_name(checkpoint)
    if name is not None:
        return load_pretrained(name)
    from lpn_arc.training import load_run

    return dataclasses.replace(load_run(checkpoint), opt_state=None)


def checkpoint_folder(checkpoint: str | Path) -> Path:
    """The folder of a checkpoint option: the run folder, or the shipped model's folder
    (which holds the ``run.json`` data provenance the test-leak guard reads)."""
    name = pretrained_name(checkpoint)
    if name is None:
        return Path(checkpoint)
    pretrained_card(name)  # raises ValueError naming the shipped models
    return MODELS_DIR / name


def export_pretrained(
    run_dir: str | Path, name: str, card: dict[str, Any], models_dir: str | Path | None = None
) -> Path:
    """Writes the latest checkpoint of ``run_dir`` as the shipped model ``name``.

    ``card`` holds what the model is (``summary``, ``training``, ``data``, ``results``...);
    the name, configuration, step, parameter count and checksum are added here, and the
    run's data provenance is copied to ``run.json``. An existing model of that name is
    replaced. Returns the model's folder.
    """
    import orbax.checkpoint as ocp

    from lpn_arc.config import config_to_dict
    from lpn_arc.model import count_params
    from lpn_arc.training import load_run, run_info

    ckpt = load_run(run_dir)
    run = json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8"))
    folder = Path(models_dir or MODELS_DIR) / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(folder.resolve() / "params", ckpt.params)
    full = {
        "name": name,
        "license": WEIGHTS_LICENSE,
        **card,
        "config": config_to_dict(ckpt.config),
        "step": ckpt.step,
        "params": count_params(ckpt.params),
        "params_sha256": _params_digest(ckpt.params),
        "versions": run_info()["versions"],
    }
    (folder / "card.json").write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    provenance = {"data": run["data"]}  # what the test-leak guard reads (lpn_arc.data)
    (folder / "run.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return folder
