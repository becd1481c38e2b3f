"""Command-line overrides: one ``--field-name VALUE`` option per configuration field."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from lpn_arc.config.data import DATA_SOURCES_HELP, DataConfig
from lpn_arc.config.model import ModelConfig
from lpn_arc.config.train import TrainConfig

__all__ = ["add_override_arguments", "apply_overrides"]


def _flat_fields() -> dict[str, tuple[str | None, dataclasses.Field]]:
    """Option name -> (sub-config attribute or None, field) for every overridable field."""
    out: dict[str, tuple[str | None, dataclasses.Field]] = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("model", "data"):
            continue
        out[f.name] = (None, f)
    for sub, cls in (("model", ModelConfig), ("data", DataConfig)):
        for f in dataclasses.fields(cls):
            if f.name in out:
                raise RuntimeError(f"config field name clash: {f.name}")
            out[f.name] = (sub, f)
    return out


def _parse_value(field: dataclasses.Field, text: str, option: str) -> Any:
    kind = str(field.type)
    try:
        if kind in ("bool", "<class 'bool'>"):
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if "tuple" in kind:
            return tuple(float(v) for v in text.split(",") if v.strip())
        if kind in ("int", "<class 'int'>"):
            return int(text)
        if kind in ("float", "<class 'float'>"):
            return float(text)
    except ValueError as err:
        raise ValueError(f"--{option}: cannot parse {text!r} as {kind}") from err
    return text


_OVERRIDE_HELP = {
    "source": f" ({DATA_SOURCES_HELP}; several separated by commas)",
    "include_test_pairs": " (ARC: also train on the tasks' test pairs; refused for arc1-eval "
    "and arc2-eval, whose test outputs are hidden; default: demonstration pairs only)",
}


def add_override_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds one ``--field-name VALUE`` option per configuration field (default: preset)."""
    group = parser.add_argument_group("configuration overrides (default: the preset's value)")
    for name, (sub, f) in _flat_fields().items():
        where = f"{sub}." if sub else ""
        flag = str(f.type) in ("bool", "<class 'bool'>")  # --name alone means true
        group.add_argument(
            f"--{name.replace('_', '-')}",
            dest=f"override_{name}",
            metavar=str(f.type).upper().replace("TUPLE[FLOAT, ...]", "F1,F2"),
            help=f"{where}{name}" + _OVERRIDE_HELP.get(name, ""),
            **({"nargs": "?", "const": "true"} if flag else {}),
        )


def apply_overrides(config: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    """Returns ``config`` with every ``--field-name`` given on the command line applied."""
    top: dict[str, Any] = {}
    subs: dict[str, dict[str, Any]] = {"model": {}, "data": {}}
    for name, (sub, f) in _flat_fields().items():
        text = getattr(args, f"override_{name}", None)
        if text is None:
            continue
        if isinstance(text, list):  # a repeated option (--data A --data B)
            text = ",".join(text)
        value = _parse_value(f, text, name.replace("_", "-"))
        (subs[sub] if sub else top)[name] = value
    if subs["data"].get("grid_size") and not (
        "max_rows" in subs["model"] or "max_cols" in subs["model"]
    ):
        size = subs["data"]["grid_size"]
        subs["model"].update(max_rows=size, max_cols=size)
    model = dataclasses.replace(config.model, **subs["model"])
    data = dataclasses.replace(config.data, **subs["data"])
    return dataclasses.replace(config, model=model, data=data, **top)
