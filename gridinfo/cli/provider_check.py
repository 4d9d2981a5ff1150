"""``gridinfo-provider-check``: run one information provider the way the GRIS would, and judge it.

    gridinfo-provider-check PATH [--config conf/gris.yaml] [--timelimit S] [--base DN]
                            [--plugin] [--quiet]

Runs PATH once (in its own process group, with its configured timelimit, output cap, args and
environment), then reports its entries, the DNs outside its subtree, the schema violations, the
time it took and its exit status.  Exits 0 when the GRIS would publish its output, 1 when the
run fails, 2 on a usage or config error.  This is what a site admin runs before dropping a
script into a providers folder.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from gridinfo.config import GRISConfig, load_config
from gridinfo.errors import GridinfoError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gridinfo-provider-check",
        description="Run one information provider once, as the GRIS would, and report what it published.",
    )
    p.add_argument("path", metavar="PATH", help="the provider (executable) or static *.ldif file")
    p.add_argument("--config", "-c", help="GRIS config whose suffix, schema and provider settings apply")
    p.add_argument("--timelimit", type=float, help="seconds before the run is killed (default: configured)")
    p.add_argument("--base", help="the subtree the provider owns (default: configured, else the suffix)")
    p.add_argument("--plugin", action="store_true", help="judge it as a plugin (prints changetype: modify)")
    p.add_argument("--quiet", "-q", action="store_true", help="only the verdict line")
    return p


def report(out: TextIO, definition: Any, output: Any, result: Any, skip: str | None, quiet: bool) -> None:
    """Write a human-readable account of one run."""
    from gridinfo.gris.softstate import describe_exit

    w = out.write
    if not quiet:
        w(f"provider:   {definition.name} ({definition.path})\n")
        w(f"kind:       {definition.kind}; {definition.base_text}\n")
        w(
            f"limits:     timelimit {definition.timelimit:g} s, sizelimit {definition.sizelimit} entries,"
            f" max_output_bytes {definition.max_output_bytes}\n"
        )
        if skip is not None:
            w(f"warning:    a providers folder scan would skip this file: {skip}\n")
        w(f"run:        exit {describe_exit(output)} after {output.duration:.3f} s, {output.stdout_bytes} bytes\n")
        if result.entries:
            w(f"entries:    {len(result.entries)}\n")
            for e in result.entries:
                w(f"  {e.dn}\n")
        if result.modifications:
            w(f"modifies:   {len(result.modifications)} entries\n")
            for _, dn, mods in result.modifications:
                w(f"  {dn} ({len(mods)} changes)\n")
        if result.outside:
            w(f"outside its subtree (dropped with a warning): {len(result.outside)}\n")
            for dn in result.outside:
                w(f"  {dn}\n")
        if result.violations:
            w(f"schema violations: {len(result.violations)}\n")
            for v in result.violations:
                w(f"  {v}\n")
    if result.ok:
        w(f"OK: the GRIS would publish {len(result.entries) or len(result.modifications)} entries\n")
    else:
        w(f"FAILED: {result.error}\n")
        if output.stderr_tail and not quiet:
            w("stderr (last lines, as in its status entry under o=infosys):\n")
            for line in output.stderr_tail.splitlines():
                w(f"  {line}\n")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from gridinfo.directory.schema import load_schema
        from gridinfo.directory.tree import DirectoryTree
        from gridinfo.gris.providers import make_definition, skip_reason

        config = load_config(args.config, GRISConfig) if args.config else GRISConfig()
        path = Path(args.path)
        if not path.exists():
            sys.stderr.write(f"gridinfo-provider-check: {path}: no such file\n")
            return 2
        kind = "plugin" if args.plugin else ("static" if path.name.endswith(".ldif") else "provider")
        definition = make_definition(path.absolute(), kind, config)
        if args.timelimit is not None:
            definition = replace(definition, timelimit=args.timelimit)
        if args.base is not None:
            definition = replace(definition, base=args.base)
        tree = DirectoryTree(load_schema(config.schema))
        for base in definition.bases:
            tree.key(base)
    except GridinfoError as e:
        sys.stderr.write(f"gridinfo-provider-check: {e}\n")
        return 2

    from twisted.internet import reactor as global_reactor
    from twisted.internet import task

    from gridinfo.cli.common import start_logging
    from gridinfo.gris.runner import ProviderRunner
    from gridinfo.gris.softstate import interpret_output

    start_logging("warn")
    status = {"code": 1}

    def run(reactor: Any) -> Any:
        d = ProviderRunner(reactor, extra_env={"GRIDINFO_SUFFIX": config.suffix, "GRIDINFO_GLUE2_SUFFIX": config.glue2_suffix}).run_now(definition)

        def judged(output: Any) -> None:
            result = interpret_output(definition, output, tree)
            report(sys.stdout, definition, output, result, skip_reason(path), args.quiet)
            sys.stdout.flush()
            status["code"] = 0 if result.ok else 1

        return d.addCallback(judged)

    try:
        task.react(run, (), _reactor=global_reactor)
    except SystemExit as e:
        if e.code not in (0, None):
            return int(e.code) if isinstance(e.code, int) else 1
    return status["code"]


if __name__ == "__main__":
    sys.exit(main())
