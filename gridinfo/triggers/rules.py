"""Trigger rules: read from a config's ``triggers:`` section or from ``*.yaml`` files in a folder,
and compiled against a backend's change stream into :class:`~gridinfo.triggers.engine.Rule`.

A rule file holds one rule (a mapping; its ``name`` defaults to the file's name without
``.yaml``) or a list of rules.  It is read as the daemon's config is (:mod:`gridinfo.config`):
an unknown key, a value of the wrong type, a bad filter or a missing program is an error naming
the file, the line and the key, and that file's rules are refused while every other rule keeps
working.  Folder entries skipped are those providers skip too (dotfiles, editor backups).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gridinfo.config import TriggerConfig, _convert
from gridinfo.directory import filters as F
from gridinfo.directory.dn import is_descendant_key, parent_key
from gridinfo.directory.query import Scope, SearchRequest
from gridinfo.directory.schema import Schema
from gridinfo.errors import ConfigError, NoSuchObject
from gridinfo.triggers.engine import Rule, filter_reads, filter_requires

SCOPES = {"base": Scope.BASE, "one": Scope.ONE, "sub": Scope.SUB}
MAX_RULE_FILE_BYTES = 1 << 20

_SKIPPED_SUFFIXES = ("~", ".bak", ".orig", ".swp", ".rpmsave", ".rpmnew", ".dpkg-old", ".dpkg-new", ".dpkg-dist")


@dataclass(frozen=True)
class LoadedRule:
    """A rule and where it was written (for messages)."""

    config: TriggerConfig
    source: str  # file:line, or config file: triggers[i]


def rule_files(folder: str) -> list[Path]:
    """The ``*.yaml`` (and ``*.yml``) rule files of a folder, sorted; leftovers skipped."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    out = []
    for name in names:
        if name.startswith(".") or name.endswith(_SKIPPED_SUFFIXES) or not name.endswith((".yaml", ".yml")):
            continue
        path = Path(folder) / name
        if path.is_file():
            out.append(path)
    return out


def read_rule_file(path: str | os.PathLike[str]) -> list[LoadedRule]:
    """The rules of one file; raises :class:`ConfigError` (file, line, key) when any is bad."""
    source = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_RULE_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read rule file: {e.strerror}", source) from None
    if len(data) > MAX_RULE_FILE_BYTES:
        raise ConfigError(f"a rule file is at most {MAX_RULE_FILE_BYTES} bytes", source)
    try:
        text = data.decode("utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text ({e.reason} at byte {e.start})", source) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError(f"not valid YAML: {getattr(e, 'problem', None) or e}", source, mark.line + 1 if mark else None) from None
    if node is None:
        return []
    default_name = Path(source).name.rsplit(".", 1)[0]
    if isinstance(node, yaml.SequenceNode):
        items = [(f"[{i}]", n) for i, n in enumerate(node.value)]
    else:
        items = [("", node)]
    out: list[LoadedRule] = []
    names: set[str] = set()
    for path_text, item in items:
        line = item.start_mark.line + 1
        if isinstance(item, yaml.MappingNode) and not any(k.value == "name" for k, _ in item.value) and not path_text:
            # one rule per file: the file names it
            name_key = yaml.ScalarNode("tag:yaml.org,2002:str", "name", item.start_mark, item.start_mark)
            name_value = yaml.ScalarNode("tag:yaml.org,2002:str", default_name, item.start_mark, item.start_mark)
            item = yaml.MappingNode(item.tag, [(name_key, name_value), *item.value], item.start_mark, item.end_mark)
        rule = _convert(item, TriggerConfig, path_text, source)
        if rule.name in names:
            raise ConfigError(f"{path_text}name: expected each rule's name once, got {rule.name!r} again", source, line)
        names.add(rule.name)
        out.append(LoadedRule(rule, f"{source}:{line}"))
    return out


def config_rules(config: Any) -> list[LoadedRule]:
    """The rules of a daemon config's ``triggers:`` section (already validated)."""
    source = getattr(config, "source", "<config>")
    return [LoadedRule(rule, f"{source}: triggers[{i}]") for i, rule in enumerate(getattr(config, "triggers", ()))]


def _in_scope(base_key: str, scope: Scope) -> Callable[[str], bool]:
    if scope == Scope.BASE:
        return lambda k: k == base_key
    if scope == Scope.ONE:
        return lambda k: parent_key(k) == base_key
    return lambda k: is_descendant_key(k, base_key)


def compile_rule(config: TriggerConfig, backend: Any, schema: Schema, normalise: Callable[[str], str]) -> tuple[Rule, list[Any]]:
    """The engine's rule over ``backend``'s change stream, the entries it matches now, and the log.

    ``backend.sync_view`` gives the entries and the test; a base that does not exist yet (a
    CE that has not been published) is watched through the whole tree's view with the rule's
    own scope test, so the rule starts working when the entry appears.
    Returns ``(rule, [entries, changelog])``.
    """
    f = F.parse_filter(config.filter)
    scope = SCOPES[config.scope]
    base_key = normalise(config.base) if config.base else ""
    in_scope = _in_scope(base_key, scope)
    request = SearchRequest(config.base, scope, f)
    try:
        view = backend.sync_view(request)
        visible = view.visible
        entries = list(view.entries)
    except NoSuchObject:
        view = backend.sync_view(SearchRequest("", Scope.SUB, f))
        root_visible = view.visible

        def visible(e: Any) -> bool:
            return in_scope(e.key) and root_visible(e)

        entries = [e for e in view.entries if in_scope(e.key)]

    def canonical(name: str) -> str:
        m = schema.matching(name)
        return m.key if m is not None else name.split(";", 1)[0].strip().lower()

    def classes(value: bytes) -> frozenset[str]:
        return frozenset({value.decode("utf-8", "replace").strip().lower()})

    reads = filter_reads(f, canonical)
    operational = {"modifytimestamp", "createtimestamp", "entrycsn", "entrydn", "hassubordinates", "entryuuid"}
    if reads is not None and reads & operational:
        reads = None
    rule = Rule(
        name=config.name,
        visible=visible,
        in_scope=in_scope,
        base_key=base_key,
        events=frozenset(config.events),
        hold=config.for_,
        repeat=config.repeat,
        rate_limit=(config.rate_limit.firings, config.rate_limit.per) if config.rate_limit else None,
        reads=reads,
        requires=filter_requires(f, classes),
        watched=frozenset(canonical(a) for a in config.attributes),
    )
    return rule, [entries, view.changelog]


__all__ = ["LoadedRule", "compile_rule", "config_rules", "read_rule_file", "rule_files"]
