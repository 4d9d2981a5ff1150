"""Configuration: YAML files validated into frozen dataclasses, in one place.

Why one module: the dataclasses, the YAML reader that checks each value's type against them (naming
file and line), and the one :func:`validate` are the three views of the same keys and change
together whenever a key is added; keeping them side by side is what keeps conf/*.yaml, the types
and the checks in step.

Every daemon reads one YAML file (``conf/gris.yaml``, ``conf/giis.yaml``).  The file is parsed
with ``yaml.safe_load`` semantics but through the node tree, so that every error names the
file, the line, the key and what was expected: an unknown key, a value of the wrong type, a
number out of range.  Command-line flags override the file for the common cases; the merge
happens in the CLI, and the result is the same frozen dataclass.
"""

from __future__ import annotations

import keyword
import os
import re
import shutil
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
    max_connections_per_address: int = 256
    request_timeout: float = 30.0
    close_timeout: float = 10.0
    send_buffer_bytes: int = 64 * 1024
    bind_failure_delay: float = 0.5
    bind_failure_max_delay: float = 16.0
    stream_buffer_entries: int = 10000  # undelivered DNs per change stream before it must refresh


@dataclass(frozen=True)
class TLSConfig:
    """TLS for the LDAP listeners and our clients (``tls:`` in conf/gris.yaml, conf/giis.yaml).

    Configured (``certificate`` and ``key`` set): StartTLS is offered, and a simple bind with a
    password over a connection not under TLS is refused unless ``allow_plain_passwords``.
    ``ca`` verifies client certificates and, in our own clients, the servers we connect to.
    """

    certificate: str = ""  # PEM: the server's certificate (then its chain)
    key: str = ""  # PEM: its private key
    ca: str = ""  # PEM: the CA certificates trusted (client certificates; servers we connect to)
    client_certificates: Literal["none", "optional", "required"] = "none"
    allow_plain_passwords: bool = False

    @property
    def configured(self) -> bool:
        return bool(self.certificate)


@dataclass(frozen=True)
class ProviderConfig:
    """Settings of one information provider; ``None`` means "use the defaults".

    The same shape serves ``provider_defaults`` (site-wide) and each ``provider.<name>`` entry;
    a provider's value is its own, else the site default, else the built-in default
    (:data:`BUILTIN_PROVIDER_DEFAULTS`, the one place those are written).
    """

    ttl: float | None = None  # seconds its output is fresh (MDS cachetime)
    keepto: float | None = None  # grace period after ttl during which failures keep old data
    timelimit: float | None = None  # seconds before the run is killed
    sizelimit: int | None = None  # maximum entries per run
    max_output_bytes: int | None = None  # maximum bytes on stdout per run
    retry: float | None = None  # seconds between attempts after a failed run
    args: tuple[str, ...] | None = None
    env: dict[str, str] | None = None
    base: str | tuple[str, ...] | None = None  # the subtree(s) it owns (default: the GRIS suffix and GLUE 2 suffix)
    refresh: Literal["on-demand", "background"] | None = None
    enabled: bool | None = None
    feeds: Literal["vm"] | None = None  # vm: its GridinfoVM / GridinfoJob entries become hypervisor / batch events (docs/vm.md)


#: What a provider gets for a setting neither its own entry nor ``provider_defaults`` sets.  The one
#: place these are written: gridinfo.gris.providers reads them from here, and conf/gris.yaml's
#: provider_defaults section documents the same values (a test in tests/config keeps them equal).
BUILTIN_PROVIDER_DEFAULTS = ProviderConfig(
    ttl=60.0,
    keepto=600.0,
    timelimit=20.0,
    sizelimit=10_000,
    max_output_bytes=16 << 20,
    retry=30.0,
    args=(),
    env={},
    base=None,  # the GRIS suffix (and GLUE 2 suffix)
    refresh="on-demand",
    enabled=True,
)


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


#: Numeric attributes the web view's history store samples by default (free CPUs, running and
#: waiting jobs in GLUE 1.3 and GLUE 2, host load, path RTT and loss).
DEFAULT_HISTORY_ATTRIBUTES = (
    "GlueCEStateFreeCPUs",
    "GlueCEStateRunningJobs",
    "GlueCEStateWaitingJobs",
    "GlueCEStateTotalJobs",
    "GLUE2ComputingShareFreeSlots",
    "GLUE2ComputingShareRunningJobs",
    "GLUE2ComputingShareWaitingJobs",
    "GridinfoHostLoad1",
    "GlueHostProcessorLoadLast1Min",
    "GridinfoPathRTTAvg",
    "GridinfoPathLoss",
)


@dataclass(frozen=True)
class WebConfig:
    """The web view, JSON API and /metrics served on the ``http:`` endpoints (docs/web.md)."""

    bind_dn: str = ""  # the identity its searches carry ("": anonymous); must be in credentials
    history: str = ""  # SQLite history file (relative: to the config file's folder; "": in memory)
    history_attributes: tuple[str, ...] = DEFAULT_HISTORY_ATTRIBUTES
    history_max_bytes: int = 64 << 20  # the file's bound: oldest rows go first past it
    sample_interval: float = 60.0  # seconds between checks of the tree for changed values (0: none)
    live_interval: float = 5.0  # seconds between checks for the live view (server-sent events)
    url: str = ""  # the web view's URL published as GridinfoWebURL ("": each listener's own address)
    hierarchy_depth: int = 5  # levels below this node the hierarchy page walks (1-20)
    hierarchy_timeout: float = 5.0  # seconds for each node the hierarchy page visits (all its requests)


@dataclass(frozen=True)
class TriggerActionConfig:
    """One action of a trigger rule: exactly one of ``exec``, ``log``, ``http``, ``ldap`` (docs/triggers.md)."""

    exec: str | tuple[str, ...] | None = None  # a program (absolute, or found on PATH) and its arguments
    log: Literal["debug", "info", "warn", "error", "critical"] | None = None  # a structured log line at this level
    http: str | None = None  # POST a JSON document to this http:// or https:// URL
    ldap: bool | None = None  # true: publish the firing under ou=alerts,o=infosys
    timelimit: float = 20.0  # seconds one attempt may take (exec: then its process group is killed)
    retries: int = 3  # attempts after the first one failed
    retry_delay: float = 10.0  # seconds before the first retry; doubled for each next one
    env: dict[str, str] = field(default_factory=dict)  # exec: extra environment variables

    @property
    def kind(self) -> str:
        """Which action this is: exec, log, http or ldap ("" when none is set)."""
        for kind in TRIGGER_ACTIONS:
            if getattr(self, kind) is not None and getattr(self, kind) is not False:
                return kind
        return ""

    @property
    def argv(self) -> tuple[str, ...]:
        """exec: the program and its arguments."""
        return (self.exec,) if isinstance(self.exec, str) else tuple(self.exec or ())


@dataclass(frozen=True)
class RateLimitConfig:
    """At most ``firings`` firings of one rule in any ``per`` seconds; more are dropped and logged."""

    firings: int = 10
    per: float = 3600.0


@dataclass(frozen=True)
class TriggerConfig:
    """One trigger rule (``triggers:`` in conf/gris.yaml and conf/giis.yaml, or a file in triggers_dir)."""

    name: str = ""
    base: str = ""  # where the rule looks ("": every naming context)
    scope: Literal["base", "one", "sub"] = "sub"
    filter: str = "(objectClass=*)"  # the condition holds for an entry while it matches
    on: str | tuple[str, ...] = ("enter",)  # enter, leave, change
    attributes: tuple[str, ...] = ()  # on change: the attributes whose change fires (none: any)
    for_: float = 0.0  # YAML key ``for``: seconds the condition must hold (or stop) before firing
    repeat: float = 0.0  # seconds between re-firings while it still holds (0: never)
    rate_limit: RateLimitConfig | None = None
    actions: tuple[TriggerActionConfig, ...] = ()
    enabled: bool = True

    @property
    def events(self) -> tuple[str, ...]:
        return (self.on,) if isinstance(self.on, str) else tuple(self.on)


TRIGGER_ACTIONS = ("exec", "log", "http", "ldap")
TRIGGER_EVENTS = ("enter", "leave", "change")


@dataclass(frozen=True)
class GRISConfig:
    """Everything a GRIS needs; see conf/gris.yaml for each key's meaning."""

    listen: tuple[str, ...] = ("tcp:2135",)
    suffix: str = "mds-vo-name=local,o=grid"
    glue2_suffix: str = "GLUE2GroupID=resource,o=glue"  # GLUE 2.0 entries live below it ("": no GLUE 2)
    glue2_site_id: str = ""  # GLUE2DomainID of the site: the GRIS's own GLUE2Service names it
    ldif: tuple[str, ...] = ()
    ldif_snapshot: str = ""  # folder of a verified snapshot of the static LDIF ("": none; docs/performance.md)
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
    soft_state_stamps: bool = True  # provider entries carry GridinfoSoftState (Mds-validfrom/-validto, provider)
    register: tuple[RegisterConfig, ...] = ()
    vm: VMConfig = field(default_factory=VMConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    stats_log: Literal["off", "text", "json"] = "off"  # one line per LDAP operation (slapd's stats shape)
    http: tuple[str, ...] = ()  # web view endpoints (off by default; loopback unless an interface is named)
    web: WebConfig = field(default_factory=WebConfig)
    triggers: tuple[TriggerConfig, ...] = ()  # trigger rules (docs/triggers.md)
    triggers_dir: str = ""  # a folder of *.yaml rule files, rescanned without restart ("": none)
    trigger_journal: str = ""  # SQLite file of pending firings ("": in memory, lost on restart)
    trigger_rescan_interval: float = 10.0  # seconds between rescans of triggers_dir
    alert_retention: float = 86400.0  # seconds an ldap action's entry stays under ou=alerts,o=infosys
    max_alerts: int = 10000  # entries kept under ou=alerts,o=infosys (oldest go first)
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
    password: str = ""  # or file:/path (the file's first line)
    bind_method: Literal["simple", "external"] = "simple"  # external: SASL EXTERNAL with tls.certificate


@dataclass(frozen=True)
class StaticChildConfig:
    """A child listed in the GIIS config (any LDAP server); see conf/giis.yaml."""

    url: str = ""
    mode: Literal["forward", "mirror"] = "forward"  # how it is asked when it does not push its changes
    push: bool = True  # subscribe to its change stream (RFC 4533) when it advertises one
    timeout: float = 20.0
    cachettl: float = 30.0
    keep: float = 3600.0
    period: float = 120.0
    bind_dn: str = ""
    password: str = ""
    name: str = ""  # the NAME of a BDII url line (NAME ldap://host:port/base); logs and status
    glue_base: str = ""  # layout bdii: the child's o=glue base ("": derived, "none": it has none)


@dataclass(frozen=True)
class PolicyRuleConfig:
    """One acceptance rule: an LDAP filter over the registration, optionally a required bind DN."""

    filter: str = "(Mds-Service-hn=*)"
    bind_dn: str = ""
    shared: bool = False  # its registrants may serve suffixes overlapping other shared registrants'
    third_party: bool = False  # Mds-Service-hn may name another host than the connecting peer


#: The shipped policy: GRIS children share MDS2's ``mds-vo-name=local,o=grid``; any other suffix
#: belongs to its first registrant.  Both rules keep the peer rule (Mds-Service-hn = the peer).
DEFAULT_POLICY = (
    PolicyRuleConfig(filter="(Mds-Service-Ldap-suffix=mds-vo-name=local,o=grid)", shared=True),
    PolicyRuleConfig(filter="(Mds-Service-hn=*)"),
)

#: The shipped policy in BDII's layout: resource-level children (a gridinfo GRIS, a resource BDII)
#: share their suffix, as every resource of a BDII site lands in one place; sites are their own.
BDII_DEFAULT_POLICY = (
    PolicyRuleConfig(filter="(Mds-Service-Ldap-suffix=mds-vo-name=local,o=grid)", shared=True),
    PolicyRuleConfig(filter="(Mds-Service-Ldap-suffix=mds-vo-name=resource,o=grid)", shared=True),
    PolicyRuleConfig(filter="(Mds-Service-hn=*)"),
)


@dataclass(frozen=True)
class GIISConfig:
    """Everything a GIIS needs; see conf/giis.yaml for each key's meaning."""

    name: str = "site"
    listen: tuple[str, ...] = ("tcp:2135",)
    schema: tuple[str, ...] = ()
    credentials: dict[str, str] = field(default_factory=dict)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    policy: tuple[PolicyRuleConfig, ...] = DEFAULT_POLICY
    allow_unsafe_addresses: bool = False  # let registrants name unspecified/link-local/multicast hosts
    journal: str = ""  # SQLite registration journal (relative: to the config file's folder; "": none)
    max_registrants: int = 10000
    max_lease: float = 86400.0
    default_timeout: float = 20.0
    default_cachettl: float = 30.0
    late_answer_limit: float = 120.0
    max_depth: int = 16
    max_entries_per_child: int = 200000
    sweep_interval: float = 30.0
    children: tuple[StaticChildConfig, ...] = ()
    push: bool = True  # subscribe to children's change streams where they advertise one (false: never)
    push_retry: float = 600.0  # seconds before asking again a child that had no stream to offer
    register: tuple[RegisterConfig, ...] = ()
    tls: TLSConfig = field(default_factory=TLSConfig)
    stats_log: Literal["off", "text", "json"] = "off"  # one line per LDAP operation (slapd's stats shape)
    layout: Literal["mds2", "bdii"] = "mds2"
    level: Literal["site", "top"] = "site"  # layout bdii: a site BDII or a top-level BDII
    site_name: str = ""  # layout bdii, level site: the site's name (BDII's SITE_NAME)
    drop_objectclasses: tuple[str, ...] = ("GLUE2Activity", "GLUE2ApplicationEnvironment")
    http: tuple[str, ...] = ()  # web view endpoints (off by default; loopback unless an interface is named)
    web: WebConfig = field(default_factory=WebConfig)
    triggers: tuple[TriggerConfig, ...] = ()  # trigger rules (docs/triggers.md)
    triggers_dir: str = ""  # a folder of *.yaml rule files, rescanned without restart ("": none)
    trigger_journal: str = ""  # SQLite file of pending firings ("": in memory, lost on restart)
    trigger_rescan_interval: float = 10.0  # seconds between rescans of triggers_dir
    alert_retention: float = 86400.0  # seconds an ldap action's entry stays under ou=alerts,o=infosys
    max_alerts: int = 10000  # entries kept under ou=alerts,o=infosys (oldest go first)
    source: str = "<defaults>"

    @property
    def registration_policy(self) -> tuple[PolicyRuleConfig, ...]:
        """``policy``, or in BDII's layout with the shipped policy, :data:`BDII_DEFAULT_POLICY`."""
        if self.layout == "bdii" and self.policy == DEFAULT_POLICY:
            return BDII_DEFAULT_POLICY
        return self.policy

    @property
    def suffix(self) -> str:
        """Where registrations go (``Mds-Vo-Op-name=register,<suffix>``) and the GIIS's own entry."""
        if self.layout == "bdii":
            return f"mds-vo-name={self.site_name if self.level == 'site' else 'local'},o=grid"
        return f"mds-vo-name={self.name},o=grid"


def _str_or_list(tp: Any) -> bool:
    """``str | tuple[str, ...]`` (optionally ``| None``): one string or a list of them."""
    if get_origin(tp) not in (Union, types.UnionType):
        return False
    args = {a for a in get_args(tp) if a is not type(None)}
    return args == {str, tuple[str, ...]}


def _optional(tp: Any) -> Any:
    """``X`` for ``X | None`` (and ``Optional[X]``); None for any other type."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0]
    return None


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if _str_or_list(tp):
        return "a string or a list of strings"
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

    if _str_or_list(tp):
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null" and type(None) in get_args(tp):
            return None
        return _convert(node, tuple[str, ...] if isinstance(node, yaml.SequenceNode) else str, path, source)
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
            if keyword.iskeyword(name):  # ``for:`` is the field ``for_``
                name += "_"
            if name not in known:
                shown = sorted(k.rstrip("_") for k in known)
                raise ConfigError(
                    f"unknown key {path + '.' if path else ''}{key!s} (known keys: {', '.join(shown)})",
                    source,
                    key_node.start_mark.line + 1,
                )
            key_path = f"{path + '.' if path else ''}{key}"
            values[name] = _convert(value_node, hints[name], key_path, source)
            problem = check_value(tp, name, values[name], key_path)
            if problem:
                raise ConfigError(problem, source, value_node.start_mark.line + 1)
        made = tp(**values)  # type: ignore[operator]
        problem = check_object(made, path)
        if problem:
            raise ConfigError(problem, source, line)
        return made
    origin = get_origin(tp)
    if origin is tuple:
        item = get_args(tp)[0]
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return ()
        if not isinstance(node, yaml.SequenceNode):
            # a scalar where a list is meant (``ldif: conf/ldif``) is a typo more often than not
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


# -- validation: one place for every check of a value or of values together ----------------------
#
# check_value() runs on each key as the YAML is read (so the error has its line) and again,
# from validate(), on the final config, whose values may also come from command-line flags or
# from code.  validate() adds what needs more than one value: files that must exist, index
# attributes the schema must know, the VM section's dependencies.  The daemons' wiring
# (gridinfo.service) calls validate() before building anything.

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")
VM_SOURCES = ("cloud", "hypervisor", "vm", "batch")


def check_giis_name(name: str) -> str | None:
    if not name or not set(name) <= _NAME_CHARS:
        return f"expected a GIIS name of letters, digits, - and . (MDS: a printable string, no _), got {name!r}"
    return None


def check_endpoint(endpoint: str) -> str | None:
    """A Twisted server endpoint string (parsed, not listened on)."""
    from twisted.internet import endpoints
    from twisted.internet.testing import MemoryReactor

    try:
        endpoints.serverFromString(MemoryReactor(), endpoint)
    except (ValueError, TypeError, KeyError) as e:
        return (
            f"expected a Twisted endpoint string such as tcp:2135:interface=127.0.0.1 or "
            f"'tcp6:2135:interface=\\:\\:1', got {endpoint!r} ({e})"
        )
    return None


def check_ldap_url(url: str, example: str) -> str | None:
    """An ldap:// URL naming host, port and suffix."""
    from gridinfo.ldap.client import LDAPURL

    try:
        parsed = LDAPURL.parse(url)
    except ValueError as e:
        return f"expected an LDAP URL such as {example}, got {url!r} ({e})"
    if not parsed.base:
        return f"expected an LDAP URL with a suffix, such as {example}, got {url!r}"
    return None


def _check_filter(text: str) -> str | None:
    from gridinfo.directory.filters import parse_filter
    from gridinfo.errors import LDAPError

    try:
        parse_filter(text)
    except LDAPError as e:
        return f"expected an LDAP filter such as (Mds-Service-hn=*.example.org), got {text!r} ({e.message})"
    return None


def _check_dn(text: str) -> str | None:
    from gridinfo.directory.dn import parse_dn
    from gridinfo.errors import LDAPError

    try:
        parse_dn(text)
    except LDAPError as e:
        return f"expected a DN such as GlueClusterUniqueID=ce1,mds-vo-name=local,o=grid, got {text!r} ({e.message})"
    return None


def _under_o_glue(text: str) -> bool:
    from gridinfo.directory.dn import is_descendant_key, loose_key

    return is_descendant_key(loose_key(text), loose_key("o=glue"))


def check_value(kind: Any, name: str, value: Any, path: str) -> str | None:
    """The problem with one key's value (``path: expected ..., got ...``), or None."""
    problem: str | None = None
    if kind is GIISConfig and name == "name":
        problem = check_giis_name(value)
    elif name in ("listen", "http") and kind in (GRISConfig, GIISConfig):
        for i, endpoint in enumerate(value):
            problem = check_endpoint(endpoint)
            if problem:
                return f"{path}[{i}]: {problem}"
    elif kind is WebConfig and name == "history" and value and os.path.isdir(value):
        problem = f"expected the path of an SQLite file (created if missing), got the folder {value!r}"
    elif kind is WebConfig and name == "history_max_bytes" and value < (1 << 20):
        problem = f"expected at least 1048576 bytes (1 MiB), got {value}"
    elif kind is WebConfig and name == "live_interval" and value < 0.5:
        problem = f"expected at least 0.5 seconds, got {value}"
    elif kind is WebConfig and name == "url" and value and not re.fullmatch(r"https?://[^\s/?#]+(/\S*)?", value):
        problem = f"expected an http:// or https:// URL such as https://giis.example.org/gridinfo/, got {value!r}"
    elif kind is WebConfig and name == "hierarchy_depth" and not 1 <= value <= 20:
        problem = f"expected a number of levels from 1 to 20, got {value}"
    elif kind is WebConfig and name == "hierarchy_timeout" and not 0 < value <= 300:
        problem = f"expected seconds above 0 and at most 300, got {value}"
    elif kind is RegisterConfig and name == "url":
        problem = check_ldap_url(value, "ldap://giis.example.org:2135/mds-vo-name=site,o=grid")
    elif kind is StaticChildConfig and name == "url":
        problem = check_ldap_url(value, "ldap://bdii.example.org:2170/mds-vo-name=resource,o=grid")
    elif kind is StaticChildConfig and name == "glue_base" and value and value.lower() != "none":
        problem = _check_dn(value) or (
            None if value.lower().replace(" ", "").endswith("o=glue")
            else f"expected a base under o=glue such as GLUE2GroupID=resource,o=glue (or none), got {value!r}"
        )
    elif kind is StaticChildConfig and name == "name" and value and not re.fullmatch(r"[-.\w]+", value):
        problem = f"expected a name of letters, digits, _, - and . (as in a BDII url line), got {value!r}"
    elif kind is GIISConfig and name == "site_name" and value:
        problem = check_giis_name(value)
    elif kind is GIISConfig and name == "journal" and value and os.path.isdir(value):
        problem = f"expected the path of an SQLite file (created if missing), got the folder {value!r}"
    elif name == "sge_qmaster_port" and value is not None and not 0 < value < 65536:
        problem = f"expected a TCP port (1-65535), got {value}"
    elif name == "ce_id_format" and isinstance(value, str):
        try:
            value.format(host="h", lrms="l", partition="p")
        except (KeyError, IndexError, ValueError) as e:
            problem = f"expected a format using only {{host}}, {{lrms}} and {{partition}}, got {value!r} ({e!r})"
    elif kind is TriggerConfig:
        problem = check_trigger_value(name, value)
    elif kind is TriggerActionConfig:
        problem = check_trigger_action_value(name, value)
    elif kind in (GRISConfig, GIISConfig) and name == "trigger_journal" and value and os.path.isdir(value):
        problem = f"expected the path of an SQLite file (created if missing), got the folder {value!r}"
    elif kind is RateLimitConfig and name == "firings" and value < 1:
        problem = f"expected at least 1 firing, got {value}"
    elif kind is RateLimitConfig and name == "per" and value <= 0:
        problem = f"expected a positive number of seconds, got {value}"
    elif kind is VMConfig and name == "sources":
        for dn, source in value.items():
            if source not in VM_SOURCES:
                return f"{path}.{dn}: expected one of {', '.join(VM_SOURCES)}, got {source!r}"
    return f"{path}: {problem}" if problem else None


_RULE_NAME = re.compile(r"[A-Za-z0-9][-.\w]*")


def check_trigger_value(name: str, value: Any) -> str | None:
    """The problem with one key of a trigger rule, or None."""
    if name == "name" and not _RULE_NAME.fullmatch(value):
        return f"expected a rule name of letters, digits, _, - and . (it names the rule in logs and alerts), got {value!r}"
    if name == "filter":
        return _check_filter(value)
    if name == "base" and value:
        return _check_dn(value)
    if name == "on":
        events = (value,) if isinstance(value, str) else value
        bad = [e for e in events if e not in TRIGGER_EVENTS]
        if bad or not events:
            return f"expected one or more of {', '.join(TRIGGER_EVENTS)}, got {', '.join(map(repr, bad)) or 'none'}"
    if name == "actions" and not value:
        return "expected at least one action (exec, log, http or ldap)"
    return None


def check_trigger_action_value(name: str, value: Any) -> str | None:
    """The problem with one key of a trigger action, or None."""
    if name == "exec" and value is not None:
        argv = (value,) if isinstance(value, str) else value
        if not argv or not argv[0]:
            return "expected a program and its arguments, got nothing"
        program = argv[0]
        if os.path.isabs(program):
            if not (os.path.isfile(program) and os.access(program, os.X_OK)):
                return f"expected an executable program, got {program!r} (no such executable file)"
        elif os.sep in program or shutil.which(program) is None:
            return f"expected an absolute path or a program on PATH, got {program!r} (not found)"
    if name == "http" and value is not None and not re.match(r"https?://[^/\s]+", value):
        return f"expected an http:// or https:// URL, got {value!r}"
    if name == "ldap" and value is False:
        return "expected true (publish the firing under ou=alerts,o=infosys); leave the action out otherwise"
    if name == "timelimit" and value <= 0:
        return f"expected a positive number of seconds, got {value}"
    return None


def check_object(obj: Any, path: str) -> str | None:
    """The problem with keys of one mapping taken together (read as ``obj``), or None."""
    where = f"{path}: " if path else ""
    if isinstance(obj, TriggerActionConfig):
        kinds = [k for k in TRIGGER_ACTIONS if getattr(obj, k) is not None]
        if len(kinds) != 1:
            return f"{where}expected exactly one of {', '.join(TRIGGER_ACTIONS)} in an action, got {', '.join(kinds) or 'none'}"
    if isinstance(obj, TriggerConfig):
        if not obj.name:
            return f"{where}a trigger rule needs a name"
        if not obj.actions:
            return f"{where}a trigger rule needs at least one action (exec, log, http or ldap)"
        if obj.repeat and "enter" not in obj.events:
            return f"{where}repeat re-fires enter: it needs on: enter"
        if obj.attributes and "change" not in obj.events:
            return f"{where}attributes name what fires on change: it needs on: change"
    return None


def validate(config: Any) -> Any:
    """Check a whole config (read from YAML, merged with flags, or built in code); returns it.

    Raises ConfigError naming the config file, the key and what was expected.
    """
    source = getattr(config, "source", "<defaults>")
    problems: list[str] = []

    def check(kind: Any, obj: Any, prefix: str) -> None:
        for f in fields(obj):
            if f.name == "source":
                continue
            problem = check_value(kind, f.name, getattr(obj, f.name), prefix + f.name)
            if problem:
                problems.append(problem)

    check(type(config), config, "")
    if isinstance(config, GIISConfig):
        problems.extend(_check_bdii_layout(config))
    for i, target in enumerate(getattr(config, "register", ())):
        check(RegisterConfig, target, f"register[{i}].")
    for i, child in enumerate(getattr(config, "children", ())):
        check(StaticChildConfig, child, f"children[{i}].")
    problems.extend(_check_triggers(config))
    for key in ("ldif", "providers", "plugins", "schema"):
        for i, p in enumerate(getattr(config, key, ())):
            if not os.path.exists(p):
                problems.append(f"{key}[{i}]: expected an existing file or folder, got {p!r} (no such file or folder)")
    tls = getattr(config, "tls", None)
    if tls is not None:
        problems.extend(_check_tls(tls))
        for i, target in enumerate(getattr(config, "register", ())):
            if target.bind_method == "external" and not (tls.certificate and (tls.ca or target.url.startswith("ldaps:"))):
                problems.append(
                    f"register[{i}].bind_method: external needs tls.certificate and tls.key (presented as the "
                    "client certificate) and TLS to the parent (tls.ca for StartTLS, or an ldaps:// url)"
                )
    for name, secret in _secrets(config):
        problem = check_secret(secret, name)
        if problem:
            problems.append(problem)
    for i, rule in enumerate(getattr(config, "policy", ())):
        problem = _check_filter(rule.filter)
        if problem:
            problems.append(f"policy[{i}].filter: {problem}")
    web = getattr(config, "web", None)
    if web is not None:
        check(WebConfig, web, "web.")
        known = {dse_key(dn) for dn in getattr(config, "credentials", {})}
        if web.bind_dn and dse_key(web.bind_dn) not in known:
            problems.append(f"web.bind_dn: expected a DN listed in credentials, got {web.bind_dn!r}")
        if not problems and web.history_attributes != DEFAULT_HISTORY_ATTRIBUTES:  # the defaults are known
            from gridinfo.directory.schema import load_schema

            schema = load_schema(getattr(config, "schema", ()))
            for i, attr in enumerate(web.history_attributes):
                if schema.matching(attr) is None:
                    problems.append(f"web.history_attributes[{i}]: expected an attribute type the schema defines, got {attr!r}")
    if isinstance(config, GRISConfig):
        for name, settings in [("provider_defaults", config.provider_defaults),
                               *((f"provider.{n}", p) for n, p in config.provider.items())]:
            bases = (settings.base,) if isinstance(settings.base, str) else (settings.base or ())
            for i, base in enumerate(bases):
                problem = _check_dn(base) if base else None
                if problem:
                    where = f"{name}.base" if isinstance(settings.base, str) else f"{name}.base[{i}]"
                    problems.append(f"{where}: {problem}")
        if config.glue2_suffix:
            problem = _check_dn(config.glue2_suffix)
            if problem is None and not _under_o_glue(config.glue2_suffix):
                problem = f"expected a DN ending in o=glue (GLUE 2.0's naming context), got {config.glue2_suffix!r}"
            if problem:
                problems.append(f"glue2_suffix: {problem}")
        vm = config.vm
        check(VMConfig, vm, "vm.")
        if vm.enabled and not vm.journal:
            problems.append("vm.journal: a file path is needed when vm.enabled is true")
        for name, settings in [("provider_defaults", config.provider_defaults),
                               *((f"provider.{n}", p) for n, p in config.provider.items())]:
            if settings.feeds == "vm" and not vm.enabled:
                problems.append(f"{name}.feeds: vm needs the vm section enabled (vm.enabled: true)")
        if config.index and not problems:
            from gridinfo.directory.schema import load_schema

            schema = load_schema(config.schema)
            for i, attr in enumerate(config.index):
                if schema.matching(attr) is None:
                    problems.append(f"index[{i}]: expected an attribute type the schema defines, got {attr!r}")
    if problems:
        raise ConfigError("; ".join(problems), source)
    return config


def _check_triggers(config: Any) -> list[str]:
    """The ``triggers`` section and ``triggers_dir`` (each rule's keys, and names used once)."""
    problems: list[str] = []
    seen: set[str] = set()
    for i, rule in enumerate(getattr(config, "triggers", ())):
        prefix = f"triggers[{i}]."
        for f in fields(rule):
            problem = check_value(TriggerConfig, f.name, getattr(rule, f.name), prefix + f.name.rstrip("_"))
            if problem:
                problems.append(problem)
        for j, action in enumerate(rule.actions):
            for f in fields(action):
                problem = check_value(TriggerActionConfig, f.name, getattr(action, f.name), f"{prefix}actions[{j}].{f.name}")
                if problem:
                    problems.append(problem)
        problem = check_object(rule, f"triggers[{i}]") or next(
            (p for j, a in enumerate(rule.actions) if (p := check_object(a, f"{prefix}actions[{j}]"))), None
        )
        if problem:
            problems.append(problem)
        if rule.name in seen:
            problems.append(f"{prefix}name: expected each rule's name once, got {rule.name!r} again")
        seen.add(rule.name)
    folder = getattr(config, "triggers_dir", "")
    if folder and not os.path.isdir(folder):
        problems.append(f"triggers_dir: expected an existing folder, got {folder!r} (no such folder)")
    return problems


def _check_bdii_layout(config: GIISConfig) -> list[str]:
    """The keys of ``layout: bdii`` (conf/giis.yaml, "BDII layout")."""
    problems: list[str] = []
    if config.layout != "bdii":
        if config.site_name:
            problems.append("site_name: only meaningful with layout: bdii (MDS2's layout names the GIIS by name:)")
        return problems
    if config.level == "site" and not config.site_name:
        problems.append("site_name: layout: bdii with level: site needs the site's name (BDII's SITE_NAME)")
    if config.level == "top" and config.site_name:
        problems.append("site_name: a top-level BDII (level: top) has no site name; remove it")
    for i, child in enumerate(config.children):
        base = child.url.split("/", 3)[3] if child.url.count("/") >= 3 else ""
        flat = base.lower().replace(" ", "")
        if base and not (flat.endswith("o=grid") or flat.endswith("o=glue")):
            problems.append(
                f"children[{i}].url: layout: bdii serves o=grid and o=glue; expected a base under one of them, "
                f"got {base!r}"
            )
    return problems
def dse_key(dn: str) -> str:
    """A DN compared as the LDAP server compares bind DNs."""
    from gridinfo.ldap.dse import normalise_dn

    return normalise_dn(dn)


def _secrets(config: Any) -> list[tuple[str, str]]:
    """(key, value) of every password in a config."""
    out = [(f"credentials.{dn}", pw) for dn, pw in getattr(config, "credentials", {}).items()]
    for key in ("register", "children"):
        out += [(f"{key}[{i}].password", t.password) for i, t in enumerate(getattr(config, key, ())) if t.password]
    return out


def check_secret(value: str, key: str) -> str | None:
    """The problem with a password value: a file: that cannot be read, a malformed {SSHA}."""
    from gridinfo.ldap.passwords import check_ssha, is_ssha

    if value.startswith("file:"):
        try:
            read_secret(value)
        except OSError as e:
            return f"{key}: expected a readable file holding the password, got {value!r} ({e.strerror})"
        return None
    if is_ssha(value):
        if key.startswith(("register", "children")):
            return f"{key}: expected the password itself or file:/path (a hash cannot be sent), got an {{SSHA}} hash"
        problem = check_ssha(value)
        return f"{key}: {problem}, got {value!r}" if problem else None
    return None


def read_secret(value: str) -> str:
    """A password from config: ``file:/path`` gives the file's first line, else the value."""
    if not value.startswith("file:"):
        return value
    with open(value[len("file:") :], encoding="utf-8") as f:
        return f.readline().rstrip("\r\n")


def _check_tls(tls: TLSConfig) -> list[str]:
    """The tls section: files that exist and load, and keys that need each other."""
    problems = []
    for name in ("certificate", "key", "ca"):
        path = getattr(tls, name)
        if path and not os.path.isfile(path):
            problems.append(f"tls.{name}: expected an existing PEM file, got {path!r} (no such file)")
    if bool(tls.certificate) != bool(tls.key):
        problems.append("tls: certificate and key go together (expected both, or neither)")
    if tls.client_certificates != "none" and not tls.ca:
        problems.append(f"tls.client_certificates: {tls.client_certificates} needs tls.ca (the CA that signs them)")
    if tls.client_certificates != "none" and not tls.certificate:
        problems.append("tls.client_certificates: needs tls.certificate and tls.key (the server's own)")
    if not problems and tls.configured:
        from gridinfo.ldap.tls import server_context

        try:
            server_context(tls.certificate, tls.key, tls.ca, tls.client_certificates)
        except ConfigError as e:
            problems.append(e.message)
    elif not problems and tls.ca:
        from gridinfo.ldap.tls import read_certificates

        try:
            read_certificates(tls.ca)
        except ConfigError as e:
            problems.append(e.message)
    return problems


def resolve_paths(config: Any, base: Path) -> Any:
    """Relative paths (``ldif``, ``schema``, tls files, ``file:`` passwords) are relative to the
    config file's folder."""
    changes: dict[str, Any] = {}
    for name in ("ldif", "schema", "providers", "plugins"):
        if hasattr(config, name):
            changes[name] = tuple(str((base / p) if not os.path.isabs(p) else Path(p)) for p in getattr(config, name))
    for name in ("journal", "trigger_journal", "triggers_dir"):
        value = getattr(config, name, None)
        if isinstance(value, str) and value and not os.path.isabs(value):
            changes[name] = str(base / value)

    def secret_path(value: str) -> str:
        if value.startswith("file:") and not os.path.isabs(value[5:]):
            return "file:" + str(base / value[5:])
        return value

    if getattr(config, "credentials", None):
        changes["credentials"] = {dn: secret_path(pw) for dn, pw in config.credentials.items()}
    for key in ("register", "children"):
        if getattr(config, key, ()):
            changes[key] = tuple(replace(t, password=secret_path(t.password)) for t in getattr(config, key))
    tls = getattr(config, "tls", None)
    if tls is not None:
        resolved = {
            name: str(base / getattr(tls, name))
            for name in ("certificate", "key", "ca")
            if getattr(tls, name) and not os.path.isabs(getattr(tls, name))
        }
        if resolved:
            changes["tls"] = replace(tls, **resolved)
    vm = getattr(config, "vm", None)
    if vm is not None and vm.journal and not os.path.isabs(vm.journal):
        changes["vm"] = replace(vm, journal=str(base / vm.journal))
    web = getattr(config, "web", None)
    if web is not None and web.history and not os.path.isabs(web.history):
        changes["web"] = replace(web, history=str(base / web.history))
    return replace(config, **changes) if changes else config
