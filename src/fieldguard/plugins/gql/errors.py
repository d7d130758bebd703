"""Turning fieldguard errors into GraphQL errors with ``extensions.code``.

Engine and storage failures keep their details out of the response (they go
to the audit record and the log): a caller learns *that* the policy could not
decide, not why.

Example:
    >>> from fieldguard.errors import QuotaExceeded, Reason
    >>> err = to_graphql_error(QuotaExceeded("used up", retry_after=60,
    ...                        reasons=[Reason("quota.records_day", "used up")]))
    >>> err.extensions["code"], err.extensions["retry_after"]
    ('RATE_LIMITED', 60)
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError

from fieldguard.errors import (
    AccessError,
    EngineError,
    FieldGuardError,
    QuotaExceeded,
    StorageError,
)

_PUBLIC_MESSAGES = {
    "POLICY_UNAVAILABLE": "The access policy could not be evaluated; nothing was released.",
    "POLICY_UNDEFINED": "The access policy gave no decision; nothing was released.",
    "POLICY_MALFORMED": "The access policy answered unexpectedly; nothing was released.",
    "STORAGE_UNAVAILABLE": "A required store is unavailable; nothing was released.",
}


def error_extensions(exc: FieldGuardError) -> dict[str, Any]:
    """The ``extensions`` object for ``exc`` (code, reasons, retry_after…)."""
    ext: dict[str, Any] = {"code": exc.code}
    if isinstance(exc, AccessError):
        if exc.reasons:
            ext["reasons"] = [r.as_dict() for r in exc.reasons]
        if exc.decision_id:
            ext["decision_id"] = exc.decision_id
        ext.update(exc.extra)
    if isinstance(exc, QuotaExceeded) and exc.retry_after is not None:
        ext["retry_after"] = exc.retry_after
    return ext


def public_message(exc: FieldGuardError) -> str:
    """A message safe to show callers."""
    if isinstance(exc, EngineError | StorageError):
        return _PUBLIC_MESSAGES.get(exc.code, "The request could not be authorised.")
    return exc.message


def to_graphql_error(exc: FieldGuardError) -> GraphQLError:
    """A GraphQL error for ``exc`` (no internal detail for engine/storage errors)."""
    return GraphQLError(public_message(exc), extensions=error_extensions(exc),
                        original_error=None)


_STATUS = {
    "RATE_LIMITED": 429,
    "FORBIDDEN": 403,
    "CHALLENGE_REQUIRED": 403,
    "BAD_REQUEST": 400,
    "GRAPHQL_PARSE_FAILED": 400,
    "GRAPHQL_VALIDATION_FAILED": 400,
    "BAD_USER_INPUT": 400,
    "POLICY_UNAVAILABLE": 503,
    "POLICY_UNDEFINED": 503,
    "POLICY_MALFORMED": 503,
    "STORAGE_UNAVAILABLE": 503,
}


def http_status(data: Any, errors: Any) -> tuple[int, dict[str, str]]:
    """HTTP status and headers for a GraphQL result served over HTTP.

    A result with data is 200 (field errors travel in the body); a refused
    operation takes the status of its first error's code, with
    ``Retry-After`` for throttling.

    Example:
        >>> err = GraphQLError("slow down", extensions={"code": "RATE_LIMITED",
        ...                                             "retry_after": 30})
        >>> http_status(None, [err])
        (429, {'Retry-After': '30'})
    """
    if data is not None or not errors:
        return 200, {}
    ext = getattr(errors[0], "extensions", None) or {}
    status = _STATUS.get(ext.get("code", ""), 400)
    headers = {}
    if status == 429 and ext.get("retry_after") is not None:
        headers["Retry-After"] = str(int(ext["retry_after"]))
    return status, headers
