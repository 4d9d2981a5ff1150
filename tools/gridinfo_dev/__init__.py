"""Developer tooling for gridinfo: never installed, never imported by the daemons.

- ``gendit``: a deterministic GLUE 1.3-shaped DIT of exactly N entries (LDIF);
- ``loadgen``: a multi-process LDAP search load generator that frames BER only;
- ``slapd``: a throw-away OpenLDAP slapd on loopback (the differential tests' and the bench's peer);
- ``daemon``: waiting for a gridinfo daemon started as a subprocess;
- ``ports``: free loopback ports for servers started as subprocesses;
- ``giisbench``: the GIIS scale benchmark behind ``tools/bench-giis``.

The ``tools/*`` scripts put this folder (``tools/``) on ``sys.path``; pytest does the same
(``pythonpath`` in pyproject.toml), so the tests import it as ``gridinfo_dev``.  It depends on
the ``gridinfo`` package, never the other way round (``tests/test_layering.py`` checks).
"""
