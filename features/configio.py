"""Typed configuration from YAML: nested dataclasses built from plain dicts, strictly.

Unknown keys and wrong types raise :class:`~features.data.schema.DataError`
naming the field path (``alerts.telegram.queue_size``, ``features.indicators.rsi``), so a typo in a YAML
file fails loudly instead of silently falling back to a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from features.data.schema import DataError

CONFIG_ROOT = Path(__file__).resolve().parents[1] / "configs"
T = TypeVar("T")


def read_yaml(spec: str | Path, folder: Path, what: str) -> dict[str, Any]:
    """A mapping from a YAML file given by path, or by name inside ``folder`` ('paper' -> paper.yaml)."""
    path = Path(spec)
    if not path.exists() and not path.suffix:
        path = folder / f"{spec}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml"))) or "none"
        raise DataError(f"no {what} config {str(spec)!r}: not a file, and not one of {known} in {folder}")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise DataError(f"{path}: expected a mapping at the top level, got {type(loaded).__name__}")
    return loaded


def refuse_unknown_fields(cls: type, values: Mapping[str, Any], path: str) -> None:
    """A DataError naming every key of ``values`` that is not a field of dataclass ``cls``, and the known ones."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise DataError(f"{path}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def from_dict(cls: type[T], values: Any, path: str) -> T:
    """Build dataclass ``cls`` from nested mappings; omitted fields keep their defaults."""
    if not isinstance(values, Mapping):
        raise DataError(f"{path}: expected a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    refuse_unknown_fields(cls, values, path)
    kwargs = {name: _convert(hints[name], value, f"{path}.{name}") for name, value in values.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise DataError(f"{path}: {err}") from err


def _convert(hint: Any, value: Any, path: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, path) if len(inner) == 1 else _first_match(inner, value, path)
    if origin is typing.Literal:
        if value not in args:
            raise DataError(f"{path}: expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise DataError(f"{path}: expected a list, got {value!r}")
        item_hint = args[0] if args else Any
        items = [_convert(item_hint, item, f"{path}[{i}]") for i, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) or hint is dict:
        if not isinstance(value, Mapping):
            raise DataError(f"{path}: expected a mapping, got {value!r}")
        value_hint = args[1] if len(args) == 2 else Any
        return {str(k): _convert(value_hint, v, f"{path}.{k}") for k, v in value.items()}
    return _scalar(hint, value, path)


def _scalar(hint: Any, value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, path)  # type: ignore[arg-type]
    if hint is Any:
        return value
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint in (int, bool, str) and type(value) is hint:
        return value
    raise DataError(f"{path}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


def _first_match(options: list[Any], value: Any, path: str) -> Any:
    for option in options:
        try:
            return _convert(option, value, path)
        except DataError:
            continue
    names = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise DataError(f"{path}: expected {names}, got {value!r}")
