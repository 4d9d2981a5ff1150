"""The LDAP wire edge: server protocol, fast entry encoding, downstream client."""
