"""Reading an existing BDII installation: ``bdii.conf`` and ``site-urls.conf`` / ``top-urls.conf``.

gridinfo replaces EGI's BDII (OpenLDAP slapd fed by ``bdii-update``) on the same folders.  This
module is pure: it turns BDII's files into gridinfo's config dataclasses, and every bad line
becomes a :class:`~gridinfo.errors.ConfigError` naming the file and the line.

``bdii.conf``
    ``KEY=value`` lines; ``#`` starts a comment anywhere on a line; blank lines are skipped.
    ``bdii-update`` splits each line at its first ``=`` and strips both sides; the start scripts
    also source the file with the shell.  We accept what both read alike: an optional
    ``export``, a shell variable name, ``=``, a value that may be wrapped in one pair of quotes
    and may refer to keys set earlier in the file (``$BDII_VAR_DIR`` / ``${BDII_VAR_DIR}``).  A
    later line setting the same key wins, as in both readers.  Anything else (a line without
    ``=``, a key that is not a variable name, a reference to a key not set above, a number that is
    not one, a log level BDII does not know) is an error for that line.

    What each key means to BDII and what it becomes here (``BDII_KEYS`` is the table the code
    reads):

    ====================  ================================  =====================================
    key                   BDII                              gridinfo (GRIS)
    ====================  ================================  =====================================
    BDII_LDIF_DIR         ``*.ldif`` read every cycle       ``ldif:`` (read at start)
    BDII_PROVIDER_DIR     executables printing LDIF         ``providers:``
    BDII_PLUGIN_DIR       executables printing modify-LDIF  ``plugins:``
    BDII_BREATHE_TIME     seconds between update cycles     ``provider_defaults.ttl``, and
                                                            ``refresh: background``
    BDII_READ_TIMEOUT     seconds a provider may run        ``provider_defaults.timelimit``
    BDII_DELETE_DELAY     seconds vanished entries linger   ``provider_defaults.keepto``
    BDII_PORT/SLAPD_PORT  slapd's port (2170)               ``listen: tcp:PORT``
    SLAPD_HOST            slapd's interface (0.0.0.0)       the listener's interface
    BDII_IPV6_SUPPORT     ``yes``: also listen on           a ``tcp6:`` listener on SLAPD_HOST6
                          SLAPD_HOST6 (``::``)
    BDII_LOG_LEVEL        bdii-update's log level           the daemon's log level
    ====================  ================================  =====================================

    The other keys BDII knows (log and pid files, user, var/run/db folders, the slapd binary and
    its config, archive and RAM-disk settings, the host name in its UpdateStats DN) configure
    slapd and bdii-update themselves and have no meaning for gridinfo: they are accepted and
    listed in :attr:`BDIIConf.ignored`.  A key BDII does not know is accepted too (the file is
    also a shell fragment) and listed in :attr:`BDIIConf.unknown` with its line.

``site-urls.conf`` / ``top-urls.conf``
    One source per line, ``NAME ldap://host:port/base``: NAME is letters, digits, ``_``, ``-``
    and ``.``; blanks between; the URL names a host, a numeric port and a non-empty base.  ``#``
    starts a comment anywhere on a line; blank lines are skipped.  BDII's reader silently skips a
    line that has no ``ldap://`` after a blank, and logs and skips other lines it cannot split;
    here every such line is an error naming its line, and so is a NAME used twice (BDII keeps one
    cache file per NAME, so the second line would overwrite the first one's data).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gridinfo.config import GRISConfig, StaticChildConfig
from gridinfo.errors import ConfigError

#: BDII's resource-level suffixes: what a resource BDII publishes, and so what the ``bdii``
#: profile of the GRIS serves (the GLUE 2 one once the GRIS serves o=glue).
BDII_RESOURCE_SUFFIX = "mds-vo-name=resource,o=grid"
BDII_RESOURCE_GLUE2_SUFFIX = "GLUE2GroupID=resource,o=glue"
BDII_PORT = 2170
BDII_FOLDERS = {
    "BDII_LDIF_DIR": "/var/lib/bdii/gip/ldif",
    "BDII_PROVIDER_DIR": "/var/lib/bdii/gip/provider",
    "BDII_PLUGIN_DIR": "/var/lib/bdii/gip/plugin",
}
#: bdii-update's defaults where its shipped bdii.conf leaves a key out.
BDII_DEFAULTS = {"BDII_BREATHE_TIME": 120.0, "BDII_READ_TIMEOUT": 300.0, "BDII_DELETE_DELAY": 0.0}

#: BDII's log levels (Python logging names) -> gridinfo's.
LOG_LEVELS = {"CRITICAL": "error", "ERROR": "error", "WARNING": "warn", "INFO": "info", "DEBUG": "debug"}

#: Every key BDII's tools read, with what it is to gridinfo: "mapped" (see the table above),
#: or why it is ignored.
BDII_KEYS: dict[str, str] = {
    **{key: "mapped" for key in BDII_FOLDERS},
    **{key: "mapped" for key in BDII_DEFAULTS},
    "BDII_PORT": "mapped",
    "SLAPD_PORT": "mapped",
    "SLAPD_HOST": "mapped",
    "SLAPD_HOST6": "mapped",
    "BDII_IPV6_SUPPORT": "mapped",
    "BDII_LOG_LEVEL": "mapped",
    "BDII_LOG_FILE": "bdii-update's log file (gridinfo logs to stderr: redirect it or use the journal)",
    "BDII_PID_FILE": "bdii-update's pid file (gridinfo runs in the foreground)",
    "BDII_RUN_DIR": "bdii-update's run folder (password files for slapd)",
    "BDII_USER": "the user slapd and bdii-update run as (run gridinfo as that user)",
    "BDII_VAR_DIR": "bdii-update's state folder (old.ldif, delayed deletes, archive)",
    "BDII_ARCHIVE_SIZE": "how many gzipped snapshots bdii-update keeps",
    "BDII_HOSTNAME": "the host name bdii-update writes its UpdateStats under",
    "BDII_RAM_DISK": "slapd's database on a RAM disk (gridinfo's tree is in memory)",
    "BDII_RAM_SIZE": "the RAM disk's size",
    "BDII_UPDATE": "the bdii-update program",
    "SLAPD": "the slapd program",
    "SLAPD_CONF": "slapd's configuration (suffixes, indexes, root passwords)",
    "SLAPD_DB_DIR": "slapd's database folder",
    "SLAPD_PID_FILE": "slapd's pid file",
    "SLAPD_LOCK_FILE": "slapd's lock file",
    "LOCK_DIR": "the init script's lock folder",
    "DB_CONFIG": "Berkeley DB tuning for slapd",
    "DELAYED_DELETE": "bdii-update's delayed-delete state file",
}

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_URL_LINE = re.compile(r"(?P<name>[-.\w]+)\s+(?P<url>\S+)\Z")
_URL = re.compile(r"ldap://(?P<host>\[[0-9A-Fa-f:.]+\]|[^/:\s\[\]]+):(?P<port>[0-9]+)/(?P<base>.+)\Z")


class BDIIFileError(ConfigError):
    """Every bad line of one BDII file: ``problems`` holds one error per line, in file order."""

    def __init__(self, problems: list[ConfigError]):
        self.problems = problems
        first = problems[0]
        super().__init__(first.message, first.source, first.line)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


@dataclass(frozen=True)
class Setting:
    key: str
    value: str
    line: int


@dataclass(frozen=True)
class BDIIConf:
    """A parsed ``bdii.conf``: each key's last setting, with the line it came from."""

    source: str
    settings: dict[str, Setting] = field(default_factory=dict)

    def get(self, key: str, default: str = "") -> str:
        s = self.settings.get(key)
        return s.value if s is not None else default

    @property
    def ignored(self) -> list[tuple[Setting, str]]:
        """Keys BDII knows that mean nothing to gridinfo, with why."""
        return [(s, BDII_KEYS[k]) for k, s in self.settings.items() if BDII_KEYS.get(k, "mapped") != "mapped"]

    @property
    def unknown(self) -> list[Setting]:
        """Keys that BDII does not read either (a typo, or a variable for the shell)."""
        return [s for k, s in self.settings.items() if k not in BDII_KEYS]


def _strip_comment(text: str) -> str:
    index = text.find("#")
    return (text[:index] if index >= 0 else text).strip()


def parse_bdii_conf(text: str, source: str = "<bdii.conf>") -> BDIIConf:
    """Parse ``bdii.conf`` text; raises :class:`BDIIFileError` listing every bad line."""
    settings: dict[str, Setting] = {}
    problems: list[ConfigError] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw)
        if not line:
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[len("export") :].strip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            problems.append(ConfigError(f"expected KEY=value, got {line!r}", source, number))
            continue
        if not _KEY.match(key):
            problems.append(ConfigError(f"expected a variable name before '=', got {key!r}", source, number))
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            quote, value = value[0], value[1:-1]
        else:
            quote = ""
        if quote != "'":
            missing = [m.group(1) or m.group(2) for m in _REFERENCE.finditer(value)
                       if (m.group(1) or m.group(2)) not in settings]
            if missing:
                problems.append(ConfigError(
                    f"{key}: ${missing[0]} is not set above this line (only keys set earlier in the file "
                    "can be referred to)", source, number))
                continue
            value = _REFERENCE.sub(lambda m: settings[m.group(1) or m.group(2)].value, value)
        problem = _check_setting(key, value)
        if problem:
            problems.append(ConfigError(f"{key}: {problem}", source, number))
            continue
        settings[key] = Setting(key, value, number)
    if problems:
        raise BDIIFileError(problems)
    return BDIIConf(source, settings)


def _check_setting(key: str, value: str) -> str | None:
    if key in ("BDII_PORT", "SLAPD_PORT"):
        if not value.isdigit() or not 0 < int(value) < 65536:
            return f"expected a TCP port (1-65535), got {value!r}"
    elif key in BDII_DEFAULTS or key == "BDII_ARCHIVE_SIZE":
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not number >= 0 or number == float("inf"):
            return f"expected a non-negative number of {'entries' if key == 'BDII_ARCHIVE_SIZE' else 'seconds'}, got {value!r}"
    elif key == "BDII_LOG_LEVEL" and value not in LOG_LEVELS:
        return f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}"
    elif key == "BDII_IPV6_SUPPORT" and value not in ("yes", "no"):
        return f"expected yes or no, got {value!r}"
    elif key in BDII_FOLDERS and not value:
        return "expected a folder, got nothing"
    return None


def read_bdii_conf(path: str | Path) -> BDIIConf:
    """Read and parse a ``bdii.conf`` file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        raise ConfigError(f"cannot read BDII config file: {e.strerror}", source) from None
    return parse_bdii_conf(text, source)


def listen_endpoints(conf: BDIIConf) -> tuple[str, ...]:
    """Where BDII's slapd listened: ``SLAPD_PORT`` (else ``BDII_PORT``, else 2170) on ``SLAPD_HOST``."""
    port = conf.get("SLAPD_PORT") or conf.get("BDII_PORT") or str(BDII_PORT)
    host = conf.get("SLAPD_HOST", "0.0.0.0")
    out = [f"tcp:{port}" + (f":interface={host}" if host not in ("", "0.0.0.0") else "")]
    if conf.get("BDII_IPV6_SUPPORT") == "yes":
        host6 = conf.get("SLAPD_HOST6", "::").strip("[]")
        out.append(f"tcp6:{port}:interface=" + host6.replace(":", "\\:"))
    return tuple(out)


def log_level(conf: BDIIConf) -> str:
    """gridinfo's log level for BDII's ``BDII_LOG_LEVEL`` (BDII's default: ERROR)."""
    return LOG_LEVELS[conf.get("BDII_LOG_LEVEL", "ERROR")]


def gris_config_from_bdii(conf: BDIIConf, base: GRISConfig | None = None) -> GRISConfig:
    """The GRIS config that serves a BDII's folders as its resource BDII did (the ``bdii`` profile).

    ``base`` (a GRIS YAML config, or the defaults) gives everything bdii.conf does not say:
    limits, TLS, credentials, registration...  bdii.conf replaces ``listen``, ``suffix``, ``ldif``,
    ``providers`` and ``plugins``, and fills the provider defaults ``ttl``, ``timelimit``,
    ``keepto`` and ``refresh`` the YAML left unset.  A folder that does not exist is an error on
    the line that names it (bdii-update refuses to start too).
    """
    base = base if base is not None else GRISConfig()
    problems: list[ConfigError] = []
    folders: dict[str, str] = {}
    for key, default in BDII_FOLDERS.items():
        setting = conf.settings.get(key)
        path = setting.value if setting is not None else default
        if not Path(path).is_dir():
            where = setting.line if setting is not None else None
            said = f"{key}={path}" if setting is not None else f"{key} (not set: BDII's default {path})"
            problems.append(ConfigError(f"{said}: expected an existing folder (no such folder)", conf.source, where))
        folders[key] = str(Path(path).resolve()) if Path(path).is_dir() else path
    if problems:
        raise BDIIFileError(problems)

    def seconds(key: str) -> float:
        value = conf.get(key)
        return float(value) if value else BDII_DEFAULTS[key]

    d = base.provider_defaults
    defaults = replace(
        d,
        ttl=d.ttl if d.ttl is not None else seconds("BDII_BREATHE_TIME"),
        timelimit=d.timelimit if d.timelimit is not None else seconds("BDII_READ_TIMEOUT"),
        keepto=d.keepto if d.keepto is not None else seconds("BDII_DELETE_DELAY"),
        refresh=d.refresh if d.refresh is not None else "background",
    )
    changes: dict[str, Any] = dict(
        listen=listen_endpoints(conf),
        suffix=BDII_RESOURCE_SUFFIX,
        ldif=(folders["BDII_LDIF_DIR"],),
        providers=(folders["BDII_PROVIDER_DIR"],),
        plugins=(folders["BDII_PLUGIN_DIR"],),
        provider_defaults=defaults,
        # a BDII site above pulls our entries into a slapd that knows only BDII's schemas
        soft_state_stamps=False,
    )
    # the GLUE 2 side: the GRIS serves o=glue from the glue2_suffix key where it has one
    if "glue2_suffix" in {f.name for f in fields(GRISConfig)}:
        changes["glue2_suffix"] = BDII_RESOURCE_GLUE2_SUFFIX
    if base.source == "<defaults>":
        changes["source"] = conf.source
    return replace(base, **changes)


# -- site-urls.conf / top-urls.conf ---------------------------------------------------------------


@dataclass(frozen=True)
class BDIISource:
    """One ``NAME ldap://host:port/base`` line."""

    name: str
    host: str
    port: int
    base: str
    line: int

    @property
    def url(self) -> str:
        return f"ldap://{self.host}:{self.port}/{self.base}"


def parse_bdii_urls(text: str, source: str = "<site-urls.conf>") -> list[BDIISource]:
    """Parse ``site-urls.conf`` / ``top-urls.conf`` text; raises :class:`BDIIFileError` listing every bad line."""
    out: list[BDIISource] = []
    seen: dict[str, int] = {}
    problems: list[ConfigError] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw)
        if not line:
            continue
        m = _URL_LINE.match(line)
        if not m:
            problems.append(ConfigError(f"expected NAME ldap://host:port/base, got {line!r}", source, number))
            continue
        name, url = m.group("name"), m.group("url")
        u = _URL.match(url)
        if not u:
            problems.append(ConfigError(
                f"{name}: expected an URL ldap://host:port/base (a host, a port number and a base DN), got {url!r}",
                source, number))
            continue
        port = int(u.group("port"))
        if not 0 < port < 65536:
            problems.append(ConfigError(f"{name}: expected a TCP port (1-65535), got {port}", source, number))
            continue
        if name in seen:
            problems.append(ConfigError(
                f"{name}: this NAME is already used on line {seen[name]} (each source needs its own name)",
                source, number))
            continue
        seen[name] = number
        out.append(BDIISource(name, u.group("host").strip("[]"), port, u.group("base"), number))
    if problems:
        raise BDIIFileError(problems)
    return out


def read_bdii_urls(path: str | Path) -> list[BDIISource]:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        raise ConfigError(f"cannot read BDII URL file: {e.strerror}", source) from None
    return parse_bdii_urls(text, source)


#: How a BDII site or top pulls each source: the whole subtree every cycle (``mirror``), waiting
#: at most 30 s for it and reusing the last good copy for 600 s when a pull fails (facts of BDII's
#: LDAP provider), once per breathe time (120 s).
BDII_CHILD = StaticChildConfig(mode="mirror", timeout=30.0, keep=600.0, period=120.0)


def static_children(sources: list[BDIISource], template: StaticChildConfig = BDII_CHILD) -> tuple[StaticChildConfig, ...]:
    """The GIIS's static children for BDII's URL lines (the NAME goes along where the config has a ``name``)."""
    has_name = "name" in {f.name for f in fields(StaticChildConfig)}
    children = []
    for s in sources:
        child = replace(template, url=s.url)
        if has_name:
            extra: dict[str, Any] = {"name": s.name}
            child = replace(child, **extra)
        children.append(child)
    return tuple(children)

