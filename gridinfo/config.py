"""Configuration: YAML files validated into frozen dataclasses, in one place.

Every daemon reads one YAML file (``conf/gris.yaml``, ``conf/giis.yaml``).  The file is parsed
with ``yaml.safe_load`` semantics but through the node tree, so that every error names the
file, the line, the key and what was expected: an unknown key, a value of the wrong type, a
number out of range.  Command-line flags override the file for the common cases; the merge
happens in the CLI, and the result is the same frozen dataclass.
"""

from __future__ import annotations

import os
import types
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

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
class ProviderConfig:
    """Settings of one information provider; ``None`` means "use the defaults".

    The same shape serves ``provider_defaults`` (site-wide) and each ``provider.<name>`` entry;
    a provider's value is its own, else the site default, else the built-in default
    (``gridinfo.gris.providers.BUILTIN_PROVIDER_DEFAULTS``).
    """

    ttl: float | None = None  # seconds its output is fresh (MDS cachetime)
    keepto: float | None = None  # grace period after ttl during which failures keep old data
    timelimit: float | None = None  # seconds before the run is killed
    sizelimit: int | None = None  # maximum entries per run
    max_output_bytes: int | None = None  # maximum bytes on stdout per run
    retry: float | None = None  # seconds between attempts after a failed run
    args: tuple[str, ...] | None = None
    env: dict[str, str] | None = None
    base: str | None = None  # the subtree it owns (default: the GRIS suffix)
    refresh: Literal["on-demand", "background"] | None = None
    enabled: bool | None = None
    feeds: Literal["vm"] | None = None  # vm: its GridinfoVM entries become hypervisor events (docs/vm.md)


@dataclass(frozen=True)
class VMConfig:
    """Event-driven VM and job entries (``vm:`` in conf/gris.yaml; docs/vm.md)."""

    enabled: bool = False
    journal: str = ""  # SQLite event journal (relative: to the config file's folder)
    retention: float = 86400.0  # seconds a finished VM or job stays searchable
    sweep_interval: float = 60.0  # seconds between retention sweeps (0: none)
    sources: dict[str, str] = field(default_factory=dict)  # bind DN -> cloud|hypervisor|vm|batch
    owners: dict[str, str] = field(default_factory=dict)  # bind DN -> owner name
    allow_anonymous: bool = False
    publish_events: bool = True  # publish each event under ou=events too


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
    providers: tuple[str, ...] = ()
    bundled_providers: bool = False  # also run gridinfo's bundled providers (host, network, ...)
    plugins: tuple[str, ...] = ()
    provider_defaults: ProviderConfig = field(default_factory=ProviderConfig)
    provider: dict[str, ProviderConfig] = field(default_factory=dict)
    max_concurrent_providers: int = 4
    rescan_interval: float = 10.0
    sweep_interval: float = 1.0
    register: tuple[RegisterConfig, ...] = ()
    vm: VMConfig = field(default_factory=VMConfig)
    source: str = "<defaults>"


@dataclass(frozen=True)
class RegisterConfig:
    """One parent index to register with (MDS2's grid-info-resource-register); see conf/giis.yaml."""

    url: str = ""  # ldap://host:port/mds-vo-name=<parent>,o=grid
    regperiod: float = 600.0  # seconds between registrations
    ttl: float = 1200.0  # lease asked for (Mds-validto = now + ttl)
    keepto: float = 0.0  # extra seconds the parent may serve our data stale (0: none)
    cachettl: float = 30.0  # how long the parent may cache our answers
    timeout: float = 20.0  # seconds the parent should wait on us
    hostname: str = ""  # Mds-Service-hn to register (default: this host's name)
    port: int = 0  # Mds-Service-port to register (default: the first listener's port)
    bind_dn: str = ""  # bind as this DN before registering (with password)
    password: str = ""


@dataclass(frozen=True)
class StaticChildConfig:
    """A child listed in the GIIS config (any LDAP server); see conf/giis.yaml."""

    url: str = ""
    mode: Literal["forward", "mirror"] = "forward"
    timeout: float = 20.0
    cachettl: float = 30.0
    keep: float = 3600.0
    period: float = 120.0
    bind_dn: str = ""
    password: str = ""


@dataclass(frozen=True)
class PolicyRuleConfig:
    """One acceptance rule: an LDAP filter over the registration, optionally a required bind DN."""

    filter: str = "(Mds-Service-hn=*)"
    bind_dn: str = ""


@dataclass(frozen=True)
class GIISConfig:
    """Everything a GIIS needs; see conf/giis.yaml for each key's meaning."""

    name: str = "site"
    listen: tuple[str, ...] = ("tcp:2135",)
    schema: tuple[str, ...] = ()
    credentials: dict[str, str] = field(default_factory=dict)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    policy: tuple[PolicyRuleConfig, ...] = (PolicyRuleConfig(),)
    max_registrants: int = 10000
    max_lease: float = 86400.0
    default_timeout: float = 20.0
    default_cachettl: float = 30.0
    late_answer_limit: float = 120.0
    max_depth: int = 16
    max_entries_per_child: int = 200000
    sweep_interval: float = 30.0
    children: tuple[StaticChildConfig, ...] = ()
    register: tuple[RegisterConfig, ...] = ()
    source: str = "<defaults>"

    @property
    def suffix(self) -> str:
        return f"mds-vo-name={self.name},o=grid"


def _optional(tp: Any) -> Any:
    """``X`` for ``X | None`` (and ``Optional[X]``); None for any other type."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0]
    return None


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    inner = _optional(tp)
    if inner is not None:
        return _describe(inner)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin is tuple:
        return f"a list of {_describe(get_args(tp)[0])}"
    if origin is dict:
        value = get_args(tp)[1]
        return "a mapping of strings to " + ("strings" if value is str else "mappings")
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

    inner = _optional(tp)
    if inner is not None:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return None
        return _convert(node, inner, path, source)
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
        return tp(**values)  # type: ignore[operator]
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
        value_type = get_args(tp)[1]
        return {str(k.value): _convert(v, value_type, f"{path}.{k.value}", source) for k, v in node.value}
    if not isinstance(node, yaml.ScalarNode):
        raise fail(_describe(tp))
    value = yaml.safe_load(yaml.serialize(node))
    if origin is Literal:
        if value not in get_args(tp):
            raise fail(_describe(tp))
        return value
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
    for name in ("ldif", "schema", "providers", "plugins"):
        if hasattr(config, name):
            changes[name] = tuple(str((base / p) if not os.path.isabs(p) else Path(p)) for p in getattr(config, name))
    vm = getattr(config, "vm", None)
    if vm is not None and vm.journal and not os.path.isabs(vm.journal):
        changes["vm"] = replace(vm, journal=str(base / vm.journal))
    return replace(config, **changes) if changes else config
