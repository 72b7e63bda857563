"""YAML values → frozen dataclasses, checked against the type annotations, every error naming its key.

The machinery behind :mod:`skinlesion.core.config`: it knows nothing about the pipeline's sections.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import MISSING
from enum import Enum
from typing import Any

import yaml

from skinlesion.core.errors import ConfigError


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping.

    PyYAML keeps the last of two equal keys without a word, while DVC refuses the file: a stage run
    directly would use one value and ``dvc repro`` none.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:  # noqa: D102
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first != line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping (lines {first} and {line}); keep one"
                )
        return super().construct_mapping(node, deep)


def check(ok: bool, key: str, rule: str, value: Any) -> None:
    """Raise a one-line :class:`ConfigError` ``params.yaml: <key> <rule> (got <value>)`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"params.yaml: {key} {rule} (got {_shown(value)!r})")


def _shown(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def coerce(value: Any, hint: Any, key: str) -> Any:
    """Convert a YAML value to the annotated type, or raise ConfigError naming the key."""
    origin = typing.get_origin(hint)
    if origin is types.UnionType:  # `float | Auto`: the first type that takes the value
        for option in typing.get_args(hint):
            try:
                return coerce(value, option, key)
            except ConfigError:
                continue
        names = " or ".join(_describe(option) for option in typing.get_args(hint))
        raise ConfigError(f"params.yaml: {key} must be {names} (got {value!r})")
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"params.yaml: {key} must be a mapping (got {value!r})")
        return build(hint, value, key)
    if origin is dict:
        key_hint, item = typing.get_args(hint)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"params.yaml: {key} must be a mapping (got {value!r})")
        return {coerce(k, key_hint, f"{key} key {k!r}"): coerce(v, item, f"{key}.{k}") for k, v in value.items()}
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"params.yaml: {key} must be a list (got {value!r})")
        return [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(hint, type) and issubclass(hint, Enum):
        allowed = [m.value for m in hint]
        if isinstance(value, bool) or value not in allowed:
            raise ConfigError(f"params.yaml: {key} must be one of {', '.join(map(str, allowed))} (got {value!r})")
        return hint(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"params.yaml: {key} must be true or false (got {value!r})")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"params.yaml: {key} must be an integer (got {value!r})")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"params.yaml: {key} must be a number (got {value!r})")
        return float(value)
    if hint is str:
        if value is None:
            return ""
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"params.yaml: {key} must be a string (got {value!r})")
        return str(value)
    raise TypeError(f"unsupported config type {hint} for {key}")  # a bug in the caller, not user input


def _describe(hint: Any) -> str:
    """How an error names a type: ``a number``, ``auto``."""
    if isinstance(hint, type) and issubclass(hint, Enum):
        return " or ".join(str(m.value) for m in hint)
    return {float: "a number", int: "an integer", str: "a string", bool: "true or false"}.get(hint, str(hint))


def build(cls: type, raw: dict, key: str) -> Any:
    """Build dataclass ``cls`` from the mapping ``raw``: no unknown key, every field without a default required.

    Only the entries of a map the user fills (``external:``) have fields with defaults: "not given".
    """
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(f"params.yaml: unknown key {key}.{unknown[0]} (known: {', '.join(sorted(names))})")
    optional = {f.name for f in fields if f.default is not MISSING or f.default_factory is not MISSING}
    missing = [name for name in names if name not in raw and name not in optional]
    if missing:
        raise ConfigError(f"params.yaml: {key}.{missing[0]} is required (params.yaml holds every default)")
    return cls(**{name: coerce(raw[name], hints[name], f"{key}.{name}") for name in names if name in raw})


def as_dict(obj: Any) -> Any:
    """Return a JSON-ready copy of a config object (for saving the resolved config beside outputs)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: as_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: as_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [as_dict(v) for v in obj]
    if isinstance(obj, Enum):
        return obj.value
    return obj
