"""Domain errors. Each subclass is mapped to one gRPC status code in ``aicollect.rpc.errors``.

A domain error's message is written for the caller (dashboard, support, an engineer with
grpcurl): brief, actionable, and never carrying a secret. ``reason`` is the stable,
machine-readable ``google.rpc.ErrorInfo.reason``; ``metadata`` adds safe context.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a caller is meant to see."""

    default_reason = "DOMAIN_ERROR"

    def __init__(
        self, message: str, *, reason: str | None = None, metadata: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})


class InvalidArgument(DomainError):
    """The request is malformed: a field is missing, out of range or ill-formed."""

    default_reason = "FIELD_INVALID"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        meta = dict(metadata or {})
        if field is not None:
            meta.setdefault("field", field)
        super().__init__(message, reason=reason, metadata=meta)
        self.field = field


class NotFound(DomainError):
    default_reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    """The system is not in a state that allows the call (flag off, kill switch, reauth)."""

    default_reason = "FAILED_PRECONDITION"


class PermissionDenied(DomainError):
    default_reason = "PERMISSION_DENIED"


class Unauthenticated(DomainError):
    default_reason = "UNAUTHENTICATED"


class ConcurrentModification(DomainError):
    """Optimistic concurrency lost: re-read and retry."""

    default_reason = "CONCURRENT_MODIFICATION"


class Unavailable(DomainError):
    """A dependency (Intuit, the database, another service) is down; retry later."""

    default_reason = "UPSTREAM_UNAVAILABLE"

    def __init__(
        self,
        message: str,
        *,
        retry_after_seconds: float | None = None,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after_seconds = retry_after_seconds


class NotImplementedYet(DomainError):
    """An RPC of the contract whose implementation lands in a later issue."""

    default_reason = "NOT_IMPLEMENTED"
