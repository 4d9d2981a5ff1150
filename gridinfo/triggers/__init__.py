"""Triggers and notifications: rules over a daemon's change stream that fire actions (docs/triggers.md).

* :mod:`.engine`: pure evaluation (enter / leave / change, ``for``, ``repeat``, ``rate_limit``), indexed;
* :mod:`.rules`: rule files and the config's ``triggers:``, compiled against a backend's ``sync_view``;
* :mod:`.journal`: the SQLite journal of deliveries (once per firing, across ``kill -9``);
* :mod:`.actions`: ``exec``, ``log``, ``http``, ``ldap`` (the Twisted edge);
* :mod:`.service`: the daemon's service tying them together.
"""
