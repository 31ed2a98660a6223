"""Typed settings, layered the same way for the server and the trainer:
defaults < TOML file < environment variables < command-line flags.

A settings class is a dataclass whose fields are declared with `setting(default, help, ...)`
(the only place a default lives). From the fields come:
- the TOML keys (the field names, top level),
- the environment variables (`<prefix><FIELD>`: `RLVR_PORT` for the server's `port`,
  `RLVR_TRAINER_LR` for the trainer's `lr`; lists comma separated),
- the flags (`--group-size` for `group_size`, or the field's `flag`; help from `help`).
A field whose type is itself a settings dataclass (the trainer's GRPO objective) is flattened:
its fields are keys, variables and flags like the others. A bad value at any layer is a
`SettingsError` (or, for a flag, argparse's usage error) naming the key, variable or flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import field
from pathlib import Path
from typing import Any


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # every entry point's


class SettingsError(ValueError):
    """A bad setting; the message names the key, variable or flag."""


def setting(default: Any = dataclasses.MISSING, help: str = "", *, factory: Any = None,
            minimum: float | None = None, choices: tuple | None = None,
            flag: str | None = None) -> Any:
    """A field with its help, its bounds and (optionally) a flag name other than the default."""
    metadata = {"help": help, "minimum": minimum, "choices": choices, "flag": flag}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One setting as a key: its field, its resolved type, and the nested field holding it."""

    field: dataclasses.Field
    kind: Any
    parent: str | None = None

    @property
    def name(self) -> str:
        return self.field.name

    @property
    def flag(self) -> str:
        return self.field.metadata.get("flag") or "--" + self.name.replace("_", "-")


def leaves(cls: type) -> list[Leaf]:
    """The settings of `cls`, nested settings dataclasses flattened in their place."""
    hints = typing.get_type_hints(cls)
    out: list[Leaf] = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out += [dataclasses.replace(leaf, parent=f.name) for leaf in leaves(hints[f.name])]
        else:
            out.append(Leaf(f, hints[f.name]))
    return out


def _base(kind: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    args = typing.get_args(kind)
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        rest = [a for a in args if a is not type(None)]
        return rest[0], len(rest) < len(args)
    return kind, False


def coerce(leaf: Leaf, value: Any, where: str) -> Any:
    """`value` (from TOML, an environment variable or a flag) as the field's type, in bounds."""
    kind, optional = _base(leaf.kind)
    try:
        value = _convert(kind, optional, value)
    except (TypeError, ValueError) as err:
        raise SettingsError(f"{where}: {value!r} is not a valid {_kind_name(leaf.kind)} "
                            f"({err})") from None
    minimum, choices = leaf.field.metadata.get("minimum"), leaf.field.metadata.get("choices")
    if minimum is not None and value is not None and value < minimum:
        raise SettingsError(f"{where} must be >= {minimum:g}, got {value}")
    if choices and value not in choices:
        raise SettingsError(f"{where} must be one of {', '.join(map(str, choices))}, "
                            f"got {value!r}")
    return value


def _convert(kind: Any, optional: bool, value: Any) -> Any:
    if typing.get_origin(kind) is list:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise TypeError("expected a list of strings")
    if value is None or (optional and value == ""):
        if optional:
            return None
        raise TypeError("a value is required")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _BOOLS:
            return _BOOLS[value.lower()]
        raise TypeError("expected true or false")
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise TypeError("expected an integer")
        return int(value)
    if kind is float:
        if isinstance(value, bool):
            raise TypeError("expected a number")
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError("must be finite")
        return number
    if kind is Path:
        if not isinstance(value, (str, Path)):
            raise TypeError("expected a path")
        return Path(value)
    if not isinstance(value, (str, int, float)):
        raise TypeError("expected a string")
    return str(value)


_BOOLS = {"1": True, "true": True, "yes": True, "on": True,
          "0": False, "false": False, "no": False, "off": False}


def _kind_name(kind: Any) -> str:
    return getattr(kind, "__name__", None) or str(kind).replace("pathlib.", "")


def load(cls: type, path: Path | None = None, env: typing.Mapping[str, str] | None = None,
         flags: dict[str, Any] | None = None, prefix: str = "RLVR_") -> Any:
    """An instance of `cls`: its defaults, then the TOML file at `path`, then the environment
    variables `<prefix><FIELD>`, then `flags` (field name -> value; None = not given)."""
    by_name = {leaf.name: leaf for leaf in leaves(cls)}
    values: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise SettingsError(f"config file {path}: {err}") from None
        for key, value in data.items():
            if key not in by_name:
                raise SettingsError(f"config file {path}: unknown key {key!r}")
            values[key] = coerce(by_name[key], value, f"config file {path}: {key}")
    env = os.environ if env is None else env
    for name, leaf in by_name.items():
        variable = prefix + name.upper()
        if variable in env:
            values[name] = coerce(leaf, env[variable], variable)
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = coerce(by_name[name], value, by_name[name].flag)
    return build(cls, values)


def build(cls: type, values: dict[str, Any]) -> Any:
    """`cls(**values)` with the values of nested settings put into their own dataclass."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = build(hints[f.name], values)
        elif f.name in values:
            kwargs[f.name] = values[f.name]
    return cls(**kwargs)


def flatten(settings: Any) -> dict[str, Any]:
    """Field name -> value, nested settings flattened (what a TOML file of them holds)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        out.update(flatten(value) if dataclasses.is_dataclass(value) else {f.name: value})
    return out


def add_arguments(parser: argparse.ArgumentParser, cls: type,
                  exclude: tuple[str, ...] = ()) -> None:
    """One flag per setting (but those in `exclude`: the parser has them already), unset by
    default so that lower layers show through; a bad value is a usage error naming the flag."""
    for leaf in leaves(cls):
        if leaf.name in exclude:
            continue
        default = leaf.field.default
        shown = "" if default in (dataclasses.MISSING, None, "") else f" (default: {default})"
        help_text = (leaf.field.metadata.get("help") or "") + shown
        kind = _base(leaf.kind)[0]
        if kind is bool:
            parser.add_argument(leaf.flag, dest=leaf.name, default=None, help=help_text,
                                action=argparse.BooleanOptionalAction)
        else:
            parser.add_argument(leaf.flag, dest=leaf.name, default=None, help=help_text,
                                type=_flag_type(leaf), metavar=_metavar(leaf, kind))


def _metavar(leaf: Leaf, kind: Any) -> str:
    choices = leaf.field.metadata.get("choices")
    if choices:
        return "{" + ",".join(map(str, choices)) + "}"
    return "A,B,..." if typing.get_origin(kind) is list else _kind_name(kind).upper()


def _flag_type(leaf: Leaf):
    def parse(text: str):
        try:
            return coerce(leaf, text, "value")
        except SettingsError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix("value").strip(" :")) from None
    parse.__name__ = _kind_name(_base(leaf.kind)[0])
    return parse


def flags_of(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The flags given on a command line (field name -> value) for `load`."""
    return {leaf.name: getattr(args, leaf.name) for leaf in leaves(cls)
            if getattr(args, leaf.name, None) is not None}


def toml_text(values: dict[str, Any]) -> str:
    """`values` (flat, as `flatten` gives) as a TOML file `load` reads back; None is left out."""
    return "".join(f"{key} = {toml_value(value)}\n" for key, value in values.items()
                   if value is not None)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, (str, Path)):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)
