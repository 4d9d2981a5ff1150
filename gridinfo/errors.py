"""The gridinfo error tree.

Errors that reach an LDAP client carry their result code (RFC 4511, section 4.1.9) and a
diagnostic message; the server turns them into LDAP results in one place.  Errors in input
files (schema, LDIF, config) name the file and the line.
"""

from __future__ import annotations

import enum


class ResultCode(enum.IntEnum):
    """LDAP result code codes used by gridinfo (RFC 4511 appendix A)."""

    SUCCESS = 0
    OPERATIONS_ERROR = 1
    PROTOCOL_ERROR = 2
    TIME_LIMIT_EXCEEDED = 3
    SIZE_LIMIT_EXCEEDED = 4
    COMPARE_FALSE = 5
    COMPARE_TRUE = 6
    AUTH_METHOD_NOT_SUPPORTED = 7
    STRONGER_AUTH_REQUIRED = 8
    REFERRAL = 10
    ADMIN_LIMIT_EXCEEDED = 11
    UNAVAILABLE_CRITICAL_EXTENSION = 12
    CONFIDENTIALITY_REQUIRED = 13
    NO_SUCH_ATTRIBUTE = 16
    UNDEFINED_ATTRIBUTE_TYPE = 17
    INAPPROPRIATE_MATCHING = 18
    CONSTRAINT_VIOLATION = 19
    ATTRIBUTE_OR_VALUE_EXISTS = 20
    INVALID_ATTRIBUTE_SYNTAX = 21
    NO_SUCH_OBJECT = 32
    INVALID_DN_SYNTAX = 34
    INAPPROPRIATE_AUTHENTICATION = 48
    INVALID_CREDENTIALS = 49
    INSUFFICIENT_ACCESS_RIGHTS = 50
    BUSY = 51
    UNAVAILABLE = 52
    UNWILLING_TO_PERFORM = 53
    NAMING_VIOLATION = 64
    OBJECT_CLASS_VIOLATION = 65
    NOT_ALLOWED_ON_NON_LEAF = 66
    ENTRY_ALREADY_EXISTS = 68
    OTHER = 80


class GridinfoError(Exception):
    """Base of every error gridinfo raises on purpose."""


class LDAPError(GridinfoError):
    """An error that becomes an LDAP result: a result code plus a diagnostic message."""

    code: ResultCode = ResultCode.OTHER

    def __init__(self, message: str = "", matched_dn: str = "", code: ResultCode | None = None):
        super().__init__(message)
        self.message = message
        self.matched_dn = matched_dn
        if code is not None:
            self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.name}, {self.message!r})"


class ProtocolError(LDAPError):
    """LDAP result code protocol_error (2)."""

    code = ResultCode.PROTOCOL_ERROR


class TimeLimitExceeded(LDAPError):
    """LDAP result code time_limit_exceeded (3)."""

    code = ResultCode.TIME_LIMIT_EXCEEDED


class SizeLimitExceeded(LDAPError):
    """LDAP result code size_limit_exceeded (4)."""

    code = ResultCode.SIZE_LIMIT_EXCEEDED


class AuthMethodNotSupported(LDAPError):
    """LDAP result code auth_method_not_supported (7)."""

    code = ResultCode.AUTH_METHOD_NOT_SUPPORTED


class AdminLimitExceeded(LDAPError):
    """LDAP result code admin_limit_exceeded (11)."""

    code = ResultCode.ADMIN_LIMIT_EXCEEDED


class UnavailableCriticalExtension(LDAPError):
    """LDAP result code unavailable_critical_extension (12)."""

    code = ResultCode.UNAVAILABLE_CRITICAL_EXTENSION


class UndefinedAttributeType(LDAPError):
    """LDAP result code undefined_attribute_type (17)."""

    code = ResultCode.UNDEFINED_ATTRIBUTE_TYPE


class InappropriateMatching(LDAPError):
    """LDAP result code inappropriate_matching (18)."""

    code = ResultCode.INAPPROPRIATE_MATCHING


class ConstraintViolation(LDAPError):
    """LDAP result code constraint_violation (19)."""

    code = ResultCode.CONSTRAINT_VIOLATION


class InvalidAttributeSyntax(LDAPError):
    """LDAP result code invalid_attribute_syntax (21)."""

    code = ResultCode.INVALID_ATTRIBUTE_SYNTAX


class NoSuchObject(LDAPError):
    """LDAP result code no_such_object (32)."""

    code = ResultCode.NO_SUCH_OBJECT


class InvalidDNSyntax(LDAPError):
    """LDAP result code invalid_dn_syntax (34)."""

    code = ResultCode.INVALID_DN_SYNTAX


class InvalidCredentials(LDAPError):
    """LDAP result code invalid_credentials (49)."""

    code = ResultCode.INVALID_CREDENTIALS


class InsufficientAccessRights(LDAPError):
    """LDAP result code insufficient_access_rights (50)."""

    code = ResultCode.INSUFFICIENT_ACCESS_RIGHTS


class Busy(LDAPError):
    """LDAP result code busy (51)."""

    code = ResultCode.BUSY


class Unavailable(LDAPError):
    """LDAP result code unavailable (52)."""

    code = ResultCode.UNAVAILABLE


class UnwillingToPerform(LDAPError):
    """LDAP result code unwilling_to_perform (53)."""

    code = ResultCode.UNWILLING_TO_PERFORM


class ObjectClassViolation(LDAPError):
    """LDAP result code object_class_violation (65)."""

    code = ResultCode.OBJECT_CLASS_VIOLATION


class EntryAlreadyExists(LDAPError):
    """LDAP result code entry_already_exists (68)."""

    code = ResultCode.ENTRY_ALREADY_EXISTS


class InputError(GridinfoError):
    """Bad content in an input file (schema, LDIF, config): names the file and the line."""

    def __init__(self, message: str, source: str = "<input>", line: int | None = None):
        self.message = message
        self.source = source
        self.line = line
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")


class SchemaError(InputError):
    """A schema file that cannot be loaded, or two definitions that clash."""


class LDIFError(InputError):
    """An LDIF file or stream that breaks RFC 2849 or one of our limits."""


class ConfigError(InputError):
    """A config file with an unknown key or a bad value."""
