"""Which interpreter a provider runs with: gridinfo's own Python for the scripts marked as ours."""

from __future__ import annotations

import sys
from pathlib import Path

from gridinfo.config import GRISConfig
from gridinfo.gris.providers import interpreter_for, scan_folders
from gridinfo.providers_lib import BUNDLED_PROVIDERS


def _script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_marked_python_scripts_run_with_gridinfos_interpreter(tmp_path: Path) -> None:
    """A script with the `# gridinfo: python-provider` line runs with the GRIS's Python, not PATH's."""
    ours = _script(tmp_path / "ours", "#!/usr/bin/env python3\n# gridinfo: python-provider\nprint()\n")
    assert interpreter_for(ours) == sys.executable


def test_other_providers_keep_their_own_interpreter(tmp_path: Path) -> None:
    """A site's own script (no marker, or the marker not in a comment line of its own) is executed as it is."""
    plain = _script(tmp_path / "plain", "#!/usr/bin/env python3\nprint()\n")
    shell = _script(tmp_path / "shell", "#!/bin/sh\necho '# gridinfo: python-provider'\n")
    binary = _script(tmp_path / "binary", "\x7fELF...\n# gridinfo: python-provider\n")
    assert interpreter_for(plain) is None
    assert interpreter_for(shell) is None
    assert interpreter_for(binary) is None
    assert interpreter_for(tmp_path / "missing") is None


def test_bundled_providers_are_found_from_the_package_and_marked() -> None:
    """`bundled_providers: true` adds the package's own folder; each of its scripts runs with our Python."""
    assert scan_folders(GRISConfig()).definitions == {}
    found = scan_folders(GRISConfig(bundled_providers=True)).definitions
    assert set(found) == {"batch", "host", "hypervisor", "network", "site"}
    for definition in found.values():
        assert Path(definition.path).parent == BUNDLED_PROVIDERS
        assert definition.interpreter == sys.executable


def test_a_site_folder_overrides_a_bundled_provider(tmp_path: Path) -> None:
    """A same-named script in a configured folder wins over the bundled one."""
    _script(tmp_path / "host", "#!/bin/sh\necho\n")
    found = scan_folders(GRISConfig(providers=(str(tmp_path),), bundled_providers=True)).definitions
    assert found["host"].path == str(tmp_path / "host")
    assert found["host"].interpreter is None
