"""Configuration: YAML files validated into frozen dataclasses, in one place.

Every daemon reads one YAML file (``conf/gris.yaml``, ``conf/giis.yaml``).  The file is parsed
with ``yaml.safe_load`` semantics but through the node tree, so that every error names the
file, the line, the key and what was expected: an unknown key, a value of the wrong type, a
number out of range.  Command-line flags override the file for the common cases; the merge
happens in the CLI, and the result is the same frozen dataclass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from gridinfo.errors import ConfigError


@dataclass(frozen=True)
class LimitsConfig:
    """Server limits: breaking one costs the offender, never the server."""

    max_pdu_bytes: int = 1 << 20
    max_connections: int = 1024
    max_outstanding_ops: int = 64
    idle_timeout: float = 300.0
    size_limit: int = 0
    time_limit: float = 120.0


@dataclass(frozen=True)
class GRISConfig:
    """Everything a GRIS needs; see conf/gris.yaml for each key's meaning."""

    listen: tuple[str, ...] = ("tcp:2135",)
    suffix: str = "mds-vo-name=local,o=grid"
    ldif: tuple[str, ...] = ()
    schema: tuple[str, ...] = ()
    credentials: dict[str, str] = field(default_factory=dict)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    index: tuple[str, ...] = ()
    source: str = "<defaults>"


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is tuple:
        return f"a list of {_describe(get_args(tp)[0])}"
    if origin is dict:
        return "a mapping of strings to strings"
    if is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _convert(node: yaml.Node, tp: Any, path: str, source: str) -> Any:
    line = node.start_mark.line + 1

    def fail(expected: str) -> ConfigError:
        shown = getattr(node, "value", "")
        if not isinstance(shown, str):
            shown = "a " + ("list" if isinstance(node, yaml.SequenceNode) else "mapping")
        else:
            shown = repr(shown)
        return ConfigError(f"{path}: expected {expected}, got {shown}", source, line)

    if is_dataclass(tp):
        if not isinstance(node, yaml.MappingNode):
            raise fail("a mapping")
        hints = get_type_hints(tp)
        known = {f.name for f in fields(tp) if f.name != "source"}
        values: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            name = str(key).replace("-", "_")
            if name not in known:
                raise ConfigError(
                    f"unknown key {path + '.' if path else ''}{key!s} (known keys: {', '.join(sorted(known))})",
                    source,
                    key_node.start_mark.line + 1,
                )
            values[name] = _convert(value_node, hints[name], f"{path + '.' if path else ''}{key}", source)
        return tp(**values)
    origin = get_origin(tp)
    if origin is tuple:
        item = get_args(tp)[0]
        if isinstance(node, yaml.ScalarNode) and node.tag != "tag:yaml.org,2002:null":
            return (_convert(node, item, path, source),)
        if isinstance(node, yaml.ScalarNode):
            return ()
        if not isinstance(node, yaml.SequenceNode):
            raise fail(_describe(tp))
        return tuple(_convert(n, item, f"{path}[{i}]", source) for i, n in enumerate(node.value))
    if origin is dict:
        if not isinstance(node, yaml.MappingNode):
            raise fail(_describe(tp))
        return {str(k.value): _convert(v, str, f"{path}.{k.value}", source) for k, v in node.value}
    if not isinstance(node, yaml.ScalarNode):
        raise fail(_describe(tp))
    value = yaml.safe_load(yaml.serialize(node))
    if tp is bool:
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        if value < 0:
            raise fail("a non-negative integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("a number")
        if value < 0:
            raise fail("a non-negative number")
        return float(value)
    if tp is str:
        if value is None or isinstance(value, (dict, list)):
            raise fail("a string")
        return str(value)
    raise TypeError(f"unsupported config type {tp!r}")


def load_config(path: str | os.PathLike[str], kind: type[Any]) -> Any:
    """Load and validate a YAML config file into ``kind`` (a frozen dataclass)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file: {e.strerror}", source) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError(
            f"not valid YAML: {getattr(e, 'problem', None) or e}", source, mark.line + 1 if mark else None
        ) from None
    if node is None:
        config = kind()
    else:
        config = _convert(node, kind, "", source)
    config = replace(config, source=source)
    return resolve_paths(config, Path(path).resolve().parent)


def resolve_paths(config: Any, base: Path) -> Any:
    """Relative paths in ``ldif`` and ``schema`` are relative to the config file's folder."""
    changes = {}
    for name in ("ldif", "schema", "providers"):
        if hasattr(config, name):
            changes[name] = tuple(str((base / p) if not os.path.isabs(p) else Path(p)) for p in getattr(config, name))
    return replace(config, **changes) if changes else config
