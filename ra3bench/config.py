"""Typed configs from dataclasses: defaults < YAML file < dotted command-line overrides.

A config schema is a plain dataclass (sections are nested dataclasses). `load_config` starts from the
schema's defaults, lays the YAML file over them, then each `key=value` override in order, so the last
word wins::

    # train.yaml
    model: {name: smollm2-135m, lora: {r: 16}}
    train: {lr: 3e-4, epochs: 2}

    load_config(RunConfig, "train.yaml", ["train.lr=1e-4", "model.lora.alpha=32"])
    # -> RunConfig(model=Model(name='smollm2-135m', lora=Lora(r=16, alpha=32)), train=Train(lr=0.0001, epochs=2))

Every problem (unknown key, wrong type, bad override, unreadable file, missing required value) is
collected first and raised as one `ConfigError`, one line per problem, so a user fixes them all in one go
instead of one per run. Override values are read as YAML (`lr=1e-4` is a float, `name=foo` a str);
`X | None` takes `null`/`none`; lists take `1,5,10` or `[1, 5, 10]`; `a.b=...` on a `B | None` section
that is None builds it from its defaults first.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from ra3bench.errors import UsageError

__all__ = ["ConfigError", "config_to_dict", "load_config", "save_config"]

T = TypeVar("T")


class ConfigError(UsageError):
    """Everything wrong with a config at once; `errors` holds one line per problem."""

    def __init__(self, errors: Sequence[str] | str) -> None:
        # A str is accepted so that the exception survives pickling (which calls cls(*args)).
        self.errors: list[str] = errors.splitlines() if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()  # a required field nobody has set yet
_INVALID: Any = object()  # a value that failed its check (the error is already recorded)
_NULL_WORDS = {"null", "none", "~", ""}
_BOOL_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_KEY_RE = re.compile(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*")


@dataclasses.dataclass
class _Section:
    """A dataclass being assembled: values are filled layer by layer, the instance is built at the end."""

    cls: type
    values: dict[str, Any]


@dataclasses.dataclass
class _Override:
    """A value from the command line, with its text (a str field keeps `007` as typed, not 7)."""

    value: Any
    text: str


def load_config(
    schema: type[T],
    yaml_path: Path | str | None = None,
    overrides: Sequence[str] = (),
    *,
    data: Mapping[str, Any] | None = None,
) -> T:
    """Build `schema` from its defaults, then `yaml_path`, then `data` (an already-loaded mapping), then `overrides`.

    Raises ConfigError listing every problem found; nothing is built unless all of it is valid.
    """
    if not _is_dataclass_type(schema):
        raise TypeError(f"load_config needs a dataclass type, got {schema!r}")
    errors: list[str] = []
    root = _defaults(schema)
    if yaml_path is not None:
        loaded = _read_yaml(Path(yaml_path), errors)
        if loaded is not None:
            _apply(root, loaded, "", errors, "")
    if data is not None:
        if isinstance(data, Mapping):
            _apply(root, data, "", errors, "")
        else:
            errors.append(f"config data must be a mapping of keys, got {_show(data)}")
    for item in overrides:
        nested = _parse_override(item, errors)
        if nested is not None:
            _apply(root, nested, "", errors, f" (override '{item}')")
    config = _build(root, "", errors)
    if errors:
        raise ConfigError(list(dict.fromkeys(errors)))
    return config


def config_to_dict(config: Any) -> Any:
    """A dataclass config as plain dicts, lists and scalars (paths as str), ready for YAML or JSON."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: config_to_dict(getattr(config, f.name)) for f in dataclasses.fields(config) if f.init}
    if isinstance(config, Mapping):
        return {str(k): config_to_dict(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [config_to_dict(v) for v in config]
    if isinstance(config, os.PathLike):
        return os.fspath(config)
    return config


def save_config(config: Any, path: Path) -> None:
    """Write the resolved config as YAML that `load_config` reads back to an equal config."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Resolved {type(config).__name__} (defaults < YAML file < overrides), as this run used it.\n"
    body = yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=False, allow_unicode=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(header + body, encoding="utf-8")
    tmp.replace(path)  # never leave a half-written config behind


# --- layers ------------------------------------------------------------------------------------------


def _read_yaml(path: Path, errors: list[str]) -> Mapping[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        errors.append(f"config file {path} not found; check the path")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(f"config file {path} cannot be read: {exc}")
        return None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        errors.append(f"config file {path} is not valid YAML{at}: {problem}; fix the syntax there")
        return None
    if loaded is None:
        return {}
    if not isinstance(loaded, Mapping):
        errors.append(
            f"config file {path}: the top level must be a mapping of keys (like 'train:'), got {_show(loaded)}"
        )
        return None
    return loaded


def _parse_override(item: str, errors: list[str]) -> dict[str, Any] | None:
    """`a.b.c=v` as {'a': {'b': {'c': v}}}, so overrides go through the same checks as the file."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not _KEY_RE.fullmatch(key):
        errors.append(f"override '{item}' must look like key=value, with a dotted key (e.g. train.lr=1e-4)")
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text  # not YAML: keep the text; a str field takes it, any other type reports it
    nested: dict[str, Any] = {}
    node = nested
    *parents, leaf = key.split(".")
    for part in parents:
        node[part] = node = {}
    node[leaf] = _Override(value, text.strip())
    return nested


# --- schema walking ----------------------------------------------------------------------------------


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _hints(cls: type) -> dict[str, Any]:
    """Field types, resolved (the modules use `from __future__ import annotations`)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:
        raise TypeError(f"cannot resolve the type hints of config class {cls.__qualname__}: {exc}") from exc
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def _defaults(cls: type) -> _Section:
    """The schema's defaults; a required dataclass field starts from its own defaults."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            values[f.name] = _as_section(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            values[f.name] = _as_section(f.default_factory())
        elif _is_dataclass_type(_hints(cls)[f.name]):
            values[f.name] = _defaults(_hints(cls)[f.name])
        else:
            values[f.name] = _MISSING
    return _Section(cls, values)


def _as_section(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return _Section(type(value), {f.name: _as_section(getattr(value, f.name)) for f in fields if f.init})
    return value


def _apply(section: _Section, mapping: Mapping[Any, Any], prefix: str, errors: list[str], where: str) -> None:
    hints = _hints(section.cls)
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if key not in hints:
            close = difflib.get_close_matches(str(key), list(hints), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            scope = f"keys of '{prefix[:-1]}'" if prefix else "top-level keys"
            errors.append(f"{dotted}: unknown key; {hint}({scope}: {', '.join(hints)}){where}")
            continue
        new = _convert(hints[key], section.values.get(key, _MISSING), value, dotted, errors, where)
        if new is not _INVALID:
            section.values[key] = new


def _convert(tp: Any, current: Any, raw: Any, key: str, errors: list[str], where: str) -> Any:
    """`raw` checked against `tp` (merged into `current` for sections), or _INVALID with the error recorded."""
    value, text = (raw.value, raw.text) if isinstance(raw, _Override) else (raw, None)

    def fail(expected: str, hint: str = "") -> Any:
        errors.append(f"{key}: expected {expected}, got {_show(value)}{hint}{where}")
        return _INVALID

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or isinstance(tp, (str, TypeVar)):
        return value
    if origin is Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        members = [a for a in args if a is not type(None)]
        if len(members) < len(args) and (value is None or (text is not None and text.lower() in _NULL_WORDS)):
            return None
        if len(members) == 1:
            return _convert(members[0], current, raw, key, errors, where)
        for member in members:
            scratch: list[str] = []
            result = _convert(member, current, raw, key, scratch, where)
            if not scratch:
                return result
        return fail(" or ".join(_name(m) for m in members))
    if _is_dataclass_type(tp):
        if not isinstance(value, Mapping):
            keys = list(_hints(current.cls if isinstance(current, _Section) else tp))
            if text is not None:
                return fail("a section", f"; set its keys instead, e.g. {key}.{keys[0] if keys else 'KEY'}=VALUE")
            return fail("a section (a mapping of its keys)", f"; its keys: {', '.join(keys)}")
        section = current if isinstance(current, _Section) else _defaults(tp)
        _apply(section, value, key + ".", errors, where)
        return section
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        if text is not None and text in args:
            return text
        close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
        return fail(f"one of {', '.join(map(repr, args))}", f"; did you mean '{close[0]}'?" if close else "")
    if origin is list:
        elem = args[0] if args else Any
        if text is not None and isinstance(value, str):  # `ks=1,5,10`
            value = [_Override(_safe_yaml(p), p.strip()) for p in value.split(",")] if value.strip() else []
        elif text is not None and value is not None and not isinstance(value, (list, Mapping)):
            value = [raw]  # `ks=5`: a list of one
        if not isinstance(value, list):
            return fail(f"a list of {_name(elem)}")
        items = [_convert(elem, _MISSING, item, f"{key}[{i}]", errors, where) for i, item in enumerate(value)]
        return _INVALID if any(item is _INVALID for item in items) else items
    if origin is dict:
        if not isinstance(value, Mapping):
            return fail("a mapping")
        merged = dict(current) if isinstance(current, dict) else {}
        for k, v in value.items():
            item = _convert(args[1] if args else Any, merged.get(k, _MISSING), v, f"{key}.{k}", errors, where)
            if item is not _INVALID:
                merged[k] = item
        return merged
    if tp is bool:
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in _BOOL_WORDS:
            return _BOOL_WORDS[text.lower()]
        return fail("a bool (true or false)")
    if tp is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else fail("an int")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads `1e-4` (no dot) as a str
            try:
                return float(value)
            except ValueError:
                pass
        return fail("a float")
    if tp is str:
        if isinstance(value, str):
            return value
        if value is None and text is not None and not text.strip():  # `key=`: the empty string
            return ""
        if isinstance(value, (int, float, bool)):
            return text if text is not None else str(value)
        if isinstance(value, datetime.date):  # YAML reads 2024-08-01 as a date; str fields take it as written
            return text if text is not None else value.isoformat()
        return fail("a str")
    if isinstance(tp, type) and issubclass(tp, Path):
        return tp(value) if isinstance(value, (str, Path)) else fail("a path (a str)")
    if isinstance(tp, type) and not isinstance(value, tp):
        return fail(_name(tp))
    return value


def _build(value: Any, prefix: str, errors: list[str]) -> Any:
    """Sections to dataclass instances; a missing required value or a failing __post_init__ is an error."""
    if isinstance(value, _Section):
        before = len(errors)
        kwargs: dict[str, Any] = {}
        for name, item in value.values.items():
            if item is _MISSING:
                errors.append(
                    f"{prefix}{name}: required and has no default; set it in the file or with {prefix}{name}=..."
                )
            else:
                kwargs[name] = _build(item, f"{prefix}{name}.", errors)
        if len(errors) > before:
            return None
        try:
            return value.cls(**kwargs)
        except (TypeError, ValueError) as exc:
            message = (str(exc).splitlines() or [type(exc).__name__])[0]
            errors.append(f"{prefix[:-1] or value.cls.__name__}: {message}")
            return None
    if isinstance(value, list):
        return [_build(item, prefix, errors) for item in value]
    if isinstance(value, dict):
        return {k: _build(item, f"{prefix}{k}.", errors) for k, item in value.items()}
    return value


def _safe_yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _name(tp: Any) -> str:
    names = {int: "an int", float: "a float", bool: "a bool", str: "a str"}
    if tp in names:
        return names[tp]
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(tp)))
    if _is_dataclass_type(tp):
        return "a section"
    return getattr(tp, "__name__", str(tp))


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return f"a mapping with keys {', '.join(map(str, value))}" if value else "an empty mapping"
    text = repr(value)
    return f"{text[:60] + '...' if len(text) > 60 else text} ({type(value).__name__})"
