"""What every bundled provider needs around its own logic.

- The suffix its DNs end with: ``$GRIDINFO_SUFFIX``, else ``mds-vo-name=local,o=grid``; and the
  GLUE 2.0 suffix its GLUE 2 DNs end with: ``$GRIDINFO_GLUE2_SUFFIX``, else
  ``GLUE2GroupID=resource,o=glue`` (BDII's resource level; set but empty: publish no GLUE 2).
- Its config: a YAML file named by ``--config`` or ``$GRIDINFO_PROVIDER_CONFIG``, validated into
  the provider's frozen dataclass by :func:`gridinfo.config.load_config` (an unknown key or a bad
  value names the file and the line); no file means the defaults.
- Its state folder (``--state-dir``, ``$GRIDINFO_STATE_DIR``, else ``/var/tmp/gridinfo-<uid>/``).
- Logging on stderr (the GRIS tags each line with the provider's name), stdout is LDIF only.
- Bounded subprocess calls: each external command gets a timeout, and on timeout its whole
  process group is killed, so a hung ``squeue`` or ``xl`` cannot hang the provider.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

SUFFIX_ENV = "GRIDINFO_SUFFIX"
CONFIG_ENV = "GRIDINFO_PROVIDER_CONFIG"
STATE_ENV = "GRIDINFO_STATE_DIR"
DEFAULT_SUFFIX = "mds-vo-name=local,o=grid"
GLUE2_SUFFIX_ENV = "GRIDINFO_GLUE2_SUFFIX"
DEFAULT_GLUE2_SUFFIX = "GLUE2GroupID=resource,o=glue"

#: Exit status of a provider whose config file is wrong (the GRIS shows the run as failed).
EXIT_CONFIG = 2

ConfigT = TypeVar("ConfigT")


def suffix(environ: dict[str, str] | None = None) -> str:
    """The naming context the provider's DNs end with."""
    env = os.environ if environ is None else environ
    return env.get(SUFFIX_ENV, "").strip() or DEFAULT_SUFFIX


def glue2_suffix(environ: dict[str, str] | None = None) -> str:
    """The suffix of the provider's GLUE 2.0 DNs; "" when the GRIS publishes no GLUE 2."""
    env = os.environ if environ is None else environ
    if GLUE2_SUFFIX_ENV in env:
        return env[GLUE2_SUFFIX_ENV].strip()
    return DEFAULT_GLUE2_SUFFIX


def default_state_dir() -> Path:
    """``/var/tmp/gridinfo-<uid>/``: per user, survives reboots less often than /tmp does."""
    return Path(tempfile.gettempdir() if not os.path.isdir("/var/tmp") else "/var/tmp") / f"gridinfo-{os.getuid()}"


def argument_parser(description: str) -> argparse.ArgumentParser:
    """The options every bundled provider understands."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", help=f"YAML config file (default: ${CONFIG_ENV}, else built-in defaults)")
    parser.add_argument("--state-dir", help=f"folder for state kept between runs (default: ${STATE_ENV}, else {default_state_dir()})")
    parser.add_argument("--suffix", help=f"suffix of the DNs (default: ${SUFFIX_ENV}, else {DEFAULT_SUFFIX})")
    parser.add_argument(
        "--glue2-suffix",
        help=f"suffix of the GLUE 2.0 DNs, '' for none (default: ${GLUE2_SUFFIX_ENV}, else {DEFAULT_GLUE2_SUFFIX})",
    )
    return parser


def load_provider_config(path: str | None, kind: type[ConfigT]) -> ConfigT:
    """The provider's config from ``path`` (or ``$GRIDINFO_PROVIDER_CONFIG``), else defaults.

    Raises :class:`gridinfo.errors.ConfigError` naming the file and line of a bad value.
    """
    from gridinfo.config import load_config  # imported late: it pulls in yaml

    chosen = path or os.environ.get(CONFIG_ENV, "").strip() or None
    if chosen is None:
        return kind()
    loaded: ConfigT = load_config(chosen, kind)
    return loaded


def state_dir(option: str | None) -> Path:
    """The state folder, created (mode 0700) if needed."""
    chosen = Path(option or os.environ.get(STATE_ENV, "").strip() or default_state_dir())
    chosen.mkdir(mode=0o700, parents=True, exist_ok=True)
    return chosen


def setup_logging(name: str) -> logging.Logger:
    """A logger writing ``name: LEVEL: message`` lines on stderr."""
    logger = logging.getLogger(f"gridinfo.providers.{name}")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"{name}: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


class SourceFailed(Exception):
    """The provider's configured source is there but failed; the run exits 1 (the GRIS keeps
    the last good data and shows the message in the provider's status)."""


#: Exit status of a run whose configured source failed.
EXIT_SOURCE_FAILED = 1


class CommandMissing(Exception):
    """The external command is not installed (not on PATH)."""


class CommandFailed(Exception):
    """The external command timed out or exited non-zero; the message says which."""


@dataclass(frozen=True)
class CommandResult:
    """What a finished command printed and how it exited."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def find_command(name: str, search_path: str | None = None) -> str | None:
    """Absolute path of ``name`` on PATH (plus the sbin folders, where admin tools live)."""
    path = search_path or os.environ.get("PATH", os.defpath)
    extra = [d for d in ("/usr/sbin", "/sbin", "/usr/local/sbin") if d not in path.split(os.pathsep)]
    return shutil.which(name, path=os.pathsep.join([path, *extra]))


def run_command(
    argv: Sequence[str],
    timeout: float,
    *,
    env: dict[str, str] | None = None,
    check: bool = True,
    max_output: int = 16 << 20,
) -> CommandResult:
    """Run ``argv`` in its own process group, killing the group after ``timeout`` seconds.

    Raises :class:`CommandMissing` when the program is not installed and, with ``check``,
    :class:`CommandFailed` on timeout or a non-zero exit.  Output beyond ``max_output`` bytes is
    cut off (the caller parses what it got).
    """
    program = find_command(argv[0]) if os.sep not in argv[0] else argv[0]
    if program is None or not os.path.exists(program):
        raise CommandMissing(argv[0])
    started = time.monotonic()
    full_env = None if env is None else {**os.environ, **env}
    process = subprocess.Popen(
        [program, *argv[1:]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=full_env,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        out, err = process.communicate()
        if check:
            raise CommandFailed(f"{argv[0]} did not finish within {timeout:g} s") from None
    elapsed = time.monotonic() - started
    result = CommandResult(
        tuple(argv),
        process.returncode,
        out[:max_output].decode("utf-8", "replace"),
        err[:max_output].decode("utf-8", "replace"),
        elapsed,
    )
    if check and result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1:] or [""]
        raise CommandFailed(f"{argv[0]} exited with status {result.returncode}: {detail[0][:200]}")
    return result


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()


def run_provider(
    name: str,
    description: str,
    kind: type[ConfigT],
    produce: Callable[[ConfigT, argparse.Namespace, logging.Logger], str],
    argv: Sequence[str] | None = None,
) -> int:
    """The common ``main``: parse options, load config, write ``produce``'s LDIF on stdout.

    Returns the exit status: 0 after a run (also when the source is absent: nothing is published),
    :data:`EXIT_SOURCE_FAILED` when a configured source failed, :data:`EXIT_CONFIG` when the
    config file is wrong.
    """
    from gridinfo.errors import ConfigError

    log = setup_logging(name)
    args = argument_parser(description).parse_args(argv)
    try:
        config = load_provider_config(args.config, kind)
    except ConfigError as e:
        log.error("%s", e)
        return EXIT_CONFIG
    args.suffix = args.suffix or suffix()
    args.glue2_suffix = glue2_suffix() if args.glue2_suffix is None else args.glue2_suffix.strip()
    started = time.monotonic()
    try:
        text = produce(config, args, log)
    except SourceFailed as e:
        log.error("%s", e)
        return EXIT_SOURCE_FAILED
    sys.stdout.write(text)
    sys.stdout.flush()
    log.debug("run took %.3f s", time.monotonic() - started)
    return 0


def config_source(config: Any) -> str:
    """Where a config came from, for log lines."""
    return str(getattr(config, "source", "<defaults>"))
