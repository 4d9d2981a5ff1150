"""The gridinfo error tree.

Errors that reach an LDAP client carry their result code (RFC 4511, section 4.1.9) and a
diagnostic message; the server turns them into LDAP results in one place.  Errors in input
files (schema, LDIF, config) name the file and the line.
"""

from __future__ import annotations

import enum


class ResultCode(enum.IntEnum):
    """LDAP result codes used by gridinfo (RFC 4511 appendix A)."""

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


def _ldap_error(name: str, code: ResultCode) -> type[LDAPError]:
    return type(name, (LDAPError,), {"code": code, "__doc__": f"LDAP result {code.name} ({int(code)})."})


ProtocolError = _ldap_error("ProtocolError", ResultCode.PROTOCOL_ERROR)
TimeLimitExceeded = _ldap_error("TimeLimitExceeded", ResultCode.TIME_LIMIT_EXCEEDED)
SizeLimitExceeded = _ldap_error("SizeLimitExceeded", ResultCode.SIZE_LIMIT_EXCEEDED)
AuthMethodNotSupported = _ldap_error("AuthMethodNotSupported", ResultCode.AUTH_METHOD_NOT_SUPPORTED)
AdminLimitExceeded = _ldap_error("AdminLimitExceeded", ResultCode.ADMIN_LIMIT_EXCEEDED)
UnavailableCriticalExtension = _ldap_error(
    "UnavailableCriticalExtension", ResultCode.UNAVAILABLE_CRITICAL_EXTENSION
)
UndefinedAttributeType = _ldap_error("UndefinedAttributeType", ResultCode.UNDEFINED_ATTRIBUTE_TYPE)
InappropriateMatching = _ldap_error("InappropriateMatching", ResultCode.INAPPROPRIATE_MATCHING)
ConstraintViolation = _ldap_error("ConstraintViolation", ResultCode.CONSTRAINT_VIOLATION)
InvalidAttributeSyntax = _ldap_error("InvalidAttributeSyntax", ResultCode.INVALID_ATTRIBUTE_SYNTAX)
NoSuchObject = _ldap_error("NoSuchObject", ResultCode.NO_SUCH_OBJECT)
InvalidDNSyntax = _ldap_error("InvalidDNSyntax", ResultCode.INVALID_DN_SYNTAX)
InvalidCredentials = _ldap_error("InvalidCredentials", ResultCode.INVALID_CREDENTIALS)
InsufficientAccessRights = _ldap_error("InsufficientAccessRights", ResultCode.INSUFFICIENT_ACCESS_RIGHTS)
Busy = _ldap_error("Busy", ResultCode.BUSY)
Unavailable = _ldap_error("Unavailable", ResultCode.UNAVAILABLE)
UnwillingToPerform = _ldap_error("UnwillingToPerform", ResultCode.UNWILLING_TO_PERFORM)
ObjectClassViolation = _ldap_error("ObjectClassViolation", ResultCode.OBJECT_CLASS_VIOLATION)
EntryAlreadyExists = _ldap_error("EntryAlreadyExists", ResultCode.ENTRY_ALREADY_EXISTS)


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
