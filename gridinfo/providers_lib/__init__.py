"""Shared code of the bundled information providers (``providers/host``, ``hypervisor``,
``network``, ``batch``).

Each provider is a small executable that the GRIS runs as a subprocess; the scripts in
``bundled/`` (package data, installed with gridinfo; the source tree's ``providers/`` is a link
to that folder) only call ``main()`` of the matching module here, so that the logic can be
imported and tested in-process.  The modules use the standard library, psutil and pyyaml only
(libvirt's bindings when present), never Twisted: a provider is a short-lived process that reads
its source, prints LDIF on stdout, logs on stderr and exits 0.

- ``output``: DN and LDIF formatting (RFC 4514 escaping, RFC 2849 safe strings).
- ``runtime``: suffix, config file, state folder, logging and bounded subprocess calls.
- ``host``, ``hypervisor``, ``network``, ``batch``: one provider each.
"""

from pathlib import Path

#: The folder of the bundled provider scripts, wherever gridinfo is installed (package data).
BUNDLED_PROVIDERS = Path(__file__).resolve().parent / "bundled"
