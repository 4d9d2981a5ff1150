"""The pure data core: DNs, entries, LDIF, schema, filters and the directory tree.

Nothing here imports ``twisted.internet``; time is passed in.
"""
