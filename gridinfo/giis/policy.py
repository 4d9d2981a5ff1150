"""Who may register with a GIIS: LDAP filters over the registration entry, plus binds.

As MDS2's ``grid-info-site-policy.conf``: each rule is an LDAP filter evaluated (with the
schema's matching rules, so ``(Mds-Service-port>=2135)`` compares numbers) against the
registration message as an entry.  Rules are tried in order; the first whose filter matches
decides.  A rule may demand that the registrant has bound as a given DN (the server checks
the password against its ``credentials``).  No matching rule, or a missing or wrong bind,
refuses the registration; the refusal carries a message and is logged.

The open policy of the Globus install is one rule, ``(Mds-Service-hn=*)``.  The filter sees
``Mds-Service-Ldap-suffix`` normalised (``Mds-Vo-name=Local, O=Grid`` reads
``mds-vo-name=local,o=grid``), so a rule cannot be dodged by spelling.  What a rule allows
beyond the filter (``shared`` suffixes, ``third_party`` host names) is applied by
:mod:`gridinfo.giis.ownership`; the rule's position is the registrant's rank when two children
serve the same DN.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.logger import Logger

from gridinfo.config import PolicyRuleConfig
from gridinfo.directory.dn import loose_key
from gridinfo.directory.entry import EntryBuilder
from gridinfo.directory.evaluate import FilterCompiler, Predicate
from gridinfo.directory.filters import parse_filter
from gridinfo.directory.schema import Schema
from gridinfo.errors import ConfigError, InsufficientAccessRights, InvalidCredentials, LDAPError
from gridinfo.giis.leases import Registration

log = Logger()

OPEN_POLICY = "(Mds-Service-hn=*)"


class RegistrationPolicy:
    """Compiled acceptance rules; :meth:`check` raises on refusal."""

    def __init__(self, rules: Sequence[PolicyRuleConfig], schema: Schema, *, source: str = "policy"):
        self.rules = tuple(rules)
        self.builder = EntryBuilder(schema)
        compiler = FilterCompiler(schema)
        self._compiled: list[tuple[PolicyRuleConfig, Predicate]] = []
        for i, rule in enumerate(self.rules):
            try:
                predicate = compiler.compile(parse_filter(rule.filter))
            except LDAPError as e:
                raise ConfigError(f"policy rule {i + 1}: bad filter {rule.filter!r}: {e.message}", source) from None
            self._compiled.append((rule, predicate))

    @classmethod
    def open(cls, schema: Schema) -> RegistrationPolicy:
        return cls([PolicyRuleConfig(OPEN_POLICY)], schema)

    def check(self, dn: str, registration: Registration, bind_dn: str = "") -> PolicyRuleConfig:
        return self.check_ranked(dn, registration, bind_dn)[1]

    def check_ranked(self, dn: str, registration: Registration, bind_dn: str = "") -> tuple[int, PolicyRuleConfig]:
        """Return the rule that accepts the registration, or raise the refusal.

        InsufficientAccessRights when no rule matches or the registrant is bound as someone
        else; InvalidCredentials when a rule demands a bind and the registrant is anonymous.
        """
        suffix = registration.suffix_key.encode("utf-8")
        entry = self.builder.build(dn, [
            (name, [suffix] if name.lower() == "mds-service-ldap-suffix" else list(vals))
            for name, vals in registration.attributes
        ])
        who = registration.url
        for rank, (rule, predicate) in enumerate(self._compiled):
            if predicate(entry) is not True:
                continue
            if rule.bind_dn and loose_key(bind_dn) != loose_key(rule.bind_dn):
                if not bind_dn:
                    error: LDAPError = InvalidCredentials(
                        f"registration of {who} must be made by a client bound as {rule.bind_dn}"
                    )
                else:
                    error = InsufficientAccessRights(
                        f"registration of {who} must be made as {rule.bind_dn}, not {bind_dn}"
                    )
                log.warn("refused registration of {url}: {why}", url=who, why=error.message, bind_dn=bind_dn)
                raise error
            return rank, rule
        error = InsufficientAccessRights(f"the GIIS's policy does not accept registrations of {who}")
        log.warn("refused registration of {url}: {why}", url=who, why=error.message, bind_dn=bind_dn)
        raise error

