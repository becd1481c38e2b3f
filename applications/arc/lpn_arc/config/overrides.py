"""Command-line overrides: one ``--field-name VALUE`` option per configuration field."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Callable
from typing import Any, NamedTuple

from lpn_arc.config.data import DATA_SOURCES_HELP, DataConfig
from lpn_arc.config.model import ModelConfig
from lpn_arc.config.train import TrainConfig

__all__ = ["add_override_arguments", "apply_overrides"]


class _Field(NamedTuple):
    """An overridable configuration field: its sub-configuration (``"model"``, ``"data"``
    or None for the run's own), its name and its type (resolved, not the annotation text)."""

    sub: str | None
    name: str
    type: Any


def _flat_fields() -> dict[str, _Field]:
    """Option name -> :class:`_Field` for every overridable field."""
    out: dict[str, _Field] = {}
    for sub, cls in ((None, TrainConfig), ("model", ModelConfig), ("data", DataConfig)):
        types = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if sub is None and f.name in ("model", "data"):
                continue
            if f.name in out:
                raise RuntimeError(f"config field name clash: {f.name}")
            out[f.name] = _Field(sub, f.name, types[f.name])
    return out


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in _TRUE + _FALSE:
        raise ValueError(text)
    return lowered in _TRUE


def _parser_of(kind: Any) -> Callable[[str], Any]:
    """The function that reads a value of type ``kind`` from its command-line text: bool,
    int, float, str, or a tuple of one of them written ``A,B,C``."""
    if typing.get_origin(kind) is tuple:
        item = _parser_of(typing.get_args(kind)[0])
        return lambda text: tuple(item(v) for v in text.split(",") if v.strip())
    if kind not in _SCALARS:
        raise TypeError(f"no command-line parser for a configuration field of type {kind}")
    return _SCALARS[kind]


_SCALARS: dict[Any, Callable[[str], Any]] = {bool: _parse_bool, int: int, float: float, str: str}


def _metavar(kind: Any) -> str:
    """``INT``, ``FLOAT``, ``STR``, ``BOOL``; ``F1,F2`` for a tuple of floats."""
    if typing.get_origin(kind) is tuple:
        letter = _metavar(typing.get_args(kind)[0])[0]
        return f"{letter}1,{letter}2"
    return kind.__name__.upper()


def _parse_value(field: _Field, text: str, option: str) -> Any:
    try:
        return _parser_of(field.type)(text)
    except ValueError as err:
        kind = field.type
        if typing.get_origin(kind) is tuple:
            kind = f"{typing.get_args(kind)[0].__name__}s separated by commas"
        else:
            kind = kind.__name__
        raise ValueError(f"--{option}: cannot parse {text!r} as {kind}") from err


_OVERRIDE_HELP = {
    "source": f" ({DATA_SOURCES_HELP}; several separated by commas)",
    "include_test_pairs": " (ARC: also train on the tasks' test pairs; refused for arc1-eval "
    "and arc2-eval, whose test outputs are hidden; default: demonstration pairs only)",
}


def add_override_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds one ``--field-name VALUE`` option per configuration field (default: preset)."""
    group = parser.add_argument_group("configuration overrides (default: the preset's value)")
    for name, field in _flat_fields().items():
        where = f"{field.sub}." if field.sub else ""
        flag = field.type is bool  # --name alone means true
        group.add_argument(
            f"--{name.replace('_', '-')}",
            dest=f"override_{name}",
            metavar=_metavar(field.type),
            help=f"{where}{name}" + _OVERRIDE_HELP.get(name, ""),
            **({"nargs": "?", "const": "true"} if flag else {}),
        )


def apply_overrides(config: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    """Returns ``config`` with every ``--field-name`` given on the command line applied."""
    top: dict[str, Any] = {}
    subs: dict[str, dict[str, Any]] = {"model": {}, "data": {}}
    for name, field in _flat_fields().items():
        text = getattr(args, f"override_{name}", None)
        if text is None:
            continue
        if isinstance(text, list):  # a repeated option (--data A --data B)
            text = ",".join(text)
        value = _parse_value(field, text, name.replace("_", "-"))
        (subs[field.sub] if field.sub else top)[name] = value
    if subs["data"].get("grid_size") and not (
        "max_rows" in subs["model"] or "max_cols" in subs["model"]
    ):
        size = subs["data"]["grid_size"]
        subs["model"].update(max_rows=size, max_cols=size)
    model = dataclasses.replace(config.model, **subs["model"])
    data = dataclasses.replace(config.data, **subs["data"])
    return dataclasses.replace(config, model=model, data=data, **top)
