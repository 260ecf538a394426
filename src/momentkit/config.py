"""Typed, validated configuration: dataclasses filled from YAML with ``--set key=value`` overrides.

:func:`from_dict` builds a dataclass from a plain mapping and checks every key and type on the way:
an unknown key or a value of the wrong type is an :class:`~momentkit.errors.InputError` that names
the dotted key (``train.lr``) and the file. Supported field types: bool, int, float, str, Path,
``X | None``, ``Literal[...]``, ``list[X]``, ``tuple[X, ...]``, ``dict[str, X]`` and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from momentkit.errors import InputError

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, path: str | None) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, path)
            except InputError as e:
                errors.append(e.message)
        raise InputError(f"expected {_type_name(tp)}, got {value!r}", path=path, field=key)
    if origin is Literal:
        if value not in args:
            raise InputError(f"expected one of {list(args)}, got {value!r}", path=path, field=key)
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise InputError(f"expected a mapping, got {value!r}", path=path, field=key)
        return from_dict(tp, value, path=path, prefix=key)
    if origin in (list, tuple):
        if isinstance(value, (int, float, str)) and not isinstance(value, bool) and origin is list:
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise InputError(f"expected a list, got {value!r}", path=path, field=key)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise InputError(f"expected {len(args)} values, got {len(value)}", path=path, field=key)
            return tuple(_coerce(v, a, f"{key}[{i}]", path) for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{key}[{i}]", path) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise InputError(f"expected a mapping, got {value!r}", path=path, field=key)
        inner = args[1] if args else Any
        return {str(k): _coerce(v, inner, f"{key}.{k}", path) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(f"expected true/false, got {value!r}", path=path, field=key)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"expected an integer, got {value!r}", path=path, field=key)
        return value
    if tp is float:
        if isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
            return float(value)  # `1e-3`: YAML 1.1 (PyYAML) reads exponents without a dot as text
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"expected a number, got {value!r}", path=path, field=key)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise InputError(f"expected a string, got {value!r}", path=path, field=key)
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise InputError(f"expected a path, got {value!r}", path=path, field=key)
        return Path(value)
    return value


def from_dict(cls: type[T], data: dict, *, path: str | None = None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, refusing unknown keys and wrong types."""
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            raise InputError(f"unknown key; expected one of: {', '.join(sorted(names))}", path=path, field=key)
        kwargs[k] = _coerce(v, hints[k], key, path)
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise InputError(str(e).split("__init__() ")[-1], path=path, field=prefix or None) from None


_YAML11_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def section_from_dict(cls: type[T], data: dict, section: str, *, path: str | None = None) -> T:
    """:func:`from_dict` for one section of a config file (``model``, ``train``, ...): errors of the
    dataclass's own checks (``__post_init__``), which know only their field, are located as
    ``section.field`` in ``path`` like every other error of the section."""
    try:
        return from_dict(cls, data, path=path, prefix=section)
    except InputError as e:
        if e.field and (e.field == section or e.field.startswith(f"{section}.")) and e.path == path:
            raise
        # a check may name a key of another section (a model's frames come from ``data.frames``)
        other = e.field and e.field.split(".")[0] in ("task", "data", "model", "train", "eval")
        field = e.field if other else f"{section}.{e.field}" if e.field else section
        raise InputError(e.message, path=path, field=field) from None
    except (ValueError, TypeError) as e:
        raise InputError(str(e), path=path, field=section) from None


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain YAML/JSON-friendly structure (paths as strings, tuples as lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def apply_overrides(data: dict, assignments: list[str], *, source: str = "--set") -> dict:
    """Apply ``a.b.c=value`` strings to a nested mapping (values parsed as YAML)."""
    import yaml

    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"expected key=value, got {item!r}", field=source)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise InputError(f"cannot parse the value {raw!r} as YAML (given by {source} {item})",
                             field=key.strip()) from None
        node = data
        parts = key.strip().split(".")
        for i, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise InputError(f"is {node!r}, not a section with keys (given by {source} {item})",
                                 field=".".join(parts[:i + 1]))
        node[parts[-1]] = value
    return data


def override_for(field: str | None, assignments: list[str]) -> str | None:
    """The ``key=value`` of ``assignments`` (the last one, as it wins) that set ``field``, a section
    holding it or a key inside it -- whom an error on ``field`` should blame instead of the config file."""
    if not field:
        return None
    for item in reversed(assignments):
        key = item.partition("=")[0].strip()
        if key and (field == key or field.startswith((f"{key}.", f"{key}[")) or key.startswith(f"{field}.")):
            return item
    return None


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping; errors name the file and line. ``_base_: other.yaml`` merges a base file."""
    import yaml

    path = Path(path)
    if path.is_dir():
        found = sorted(str(p) for pattern in ("*.yaml", "*/*.yaml") for p in path.glob(pattern))
        hint = f" (e.g. {', '.join(found[:3])}{', ...' if len(found) > 3 else ''})" if found else ""
        raise InputError(f"is a folder, not a config file; give a YAML file{hint}", path=path)
    if not path.is_file():
        raise InputError("config file not found", path=path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise InputError(f"malformed YAML: {getattr(e, 'problem', e)}", path=path,
                         line=None if line is None else line + 1) from None
    if data is None:
        raise InputError("config file is empty", path=path)
    if not isinstance(data, dict):
        raise InputError("a config must be a mapping at the top level", path=path)
    base = data.pop("_base_", None)
    if base is not None:
        merged = load_yaml(path.parent / base)
        data = deep_merge(merged, data)
    return data


def deep_merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for k, v in update.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
