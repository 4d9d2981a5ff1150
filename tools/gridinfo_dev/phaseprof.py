"""Run a Python program under cProfile, one profile per phase, phases marked by SIGUSR1.

    python -m gridinfo_dev.phaseprof PREFIX -m module [args...]

The first SIGUSR1 starts a profile, the next stops it and writes ``PREFIX.<n>`` (n = 1, 2, ...),
and so on; nothing is profiled between phases.  A profile still running when the program exits
is written too.  The bench (``tools/bench-giis --giis-profile``) signals the GIIS around each
phase, so registration, cold, warm and status searches each get their own profile.
"""

from __future__ import annotations

import atexit
import cProfile
import runpy
import signal
import sys
from types import FrameType


def main() -> None:
    prefix = sys.argv[1]
    if len(sys.argv) < 4 or sys.argv[2] != "-m":
        raise SystemExit("usage: python -m gridinfo_dev.phaseprof PREFIX -m module [args...]")
    module = sys.argv[3]
    state: dict[str, object] = {"profile": None, "n": 0}

    def stop() -> None:
        profile = state["profile"]
        if isinstance(profile, cProfile.Profile):
            # taken out first: the next phase's signal may come while this one is being written
            state["profile"] = None
            profile.disable()
            n = state["n"] = int(str(state["n"])) + 1
            profile.dump_stats(f"{prefix}.{n}")

    def toggle(signum: int, frame: FrameType | None) -> None:
        if state["profile"] is None:
            profile = cProfile.Profile()
            state["profile"] = profile
            profile.enable()
        else:
            stop()

    signal.signal(signal.SIGUSR1, toggle)
    atexit.register(stop)
    sys.argv = [module, *sys.argv[4:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
