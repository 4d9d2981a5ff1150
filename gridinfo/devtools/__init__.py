"""Developer tools: a deterministic GLUE-like DIT generator and an LDAP load generator.

Used by ``tools/bench``, ``tools/gendit`` and the integration tests; never imported by the
daemons.  Nothing here depends on Twisted.
"""
